// app.js: draws the page map from the server's event stream (no libraries, works offline).
const COLORS = [
  '#f4f4f4',
  '#4c8bf5',
  '#34a853',
  '#e8453c',
  '#fbbc04',
  '#9c27b0',
  '#000000',
  '#9e9e9e',
  '#795548',
];
const COUNTERS = [
  'physPages',
  'freePages',
  'activePages',
  'inactivePages',
  'wiredPages',
  'loanedPages',
  'orphanPages',
  'loansObj',
  'loansAnon',
  'loansOA',
  'loansZero',
  'unloans',
  'loanBreaks',
  'orphansFreed',
  'cowFaults',
  'pageouts',
  'pageins',
];
const canvas = document.getElementById('map');
const ctx = canvas.getContext('2d');
let frames = 0;
let cols = 64;
let cell = 8;
let states = new Uint8Array(0);

const source = new EventSource('/events');
source.addEventListener('legend', (e) => {
  const legend = JSON.parse(e.data);
  frames = legend.frames;
  cols = Math.ceil(Math.sqrt(frames));
  cell = Math.max(1, Math.floor(512 / cols));
  canvas.width = canvas.height = cols * cell;
  document.getElementById('legend').innerHTML = legend.states
    .map((name, i) => `<span><i style="background:${COLORS[i]}"></i>${name}</span>`)
    .join('');
});
source.onmessage = (e) => {
  const u = JSON.parse(e.data);
  states = Uint8Array.from(atob(u.states), (c) => c.charCodeAt(0));
  draw();
  // for scripts and tests: how many frames are on loan to the kernel right now
  canvas.dataset.loanedToKernel = String(states.filter((s) => s === 3).length);
  canvas.dataset.updates = String(Number(canvas.dataset.updates ?? 0) + 1);
  document.getElementById('counters').innerHTML = COUNTERS.map(
    (k) => `<tr><td>${k}</td><td class="n" data-counter="${k}">${u.stats[k]}</td></tr>`,
  ).join('');
  const trace = document.getElementById('trace');
  for (const ev of u.trace) {
    const line = document.createElement('div');
    line.textContent = `${(ev.time / 1000).toFixed(3)}s ${ev.kind} frame ${ev.frame}${ev.detail ? ` (${ev.detail})` : ''}`;
    trace.prepend(line);
  }
  while (trace.childNodes.length > 200) trace.lastChild.remove();
};

function draw() {
  for (let f = 0; f < states.length; f++) {
    ctx.fillStyle = COLORS[states[f]] ?? '#fff';
    ctx.fillRect((f % cols) * cell, Math.floor(f / cols) * cell, cell, cell);
  }
}

let shown = -1;
canvas.addEventListener('mousemove', async (e) => {
  const r = canvas.getBoundingClientRect();
  const f = Math.floor((e.clientY - r.top) / cell) * cols + Math.floor((e.clientX - r.left) / cell);
  if (f < 0 || f >= frames || f === shown) return;
  shown = f;
  const res = await fetch(`/frame/${f}`);
  if (res.ok) document.getElementById('frame').textContent = JSON.stringify(await res.json(), null, 1);
});
