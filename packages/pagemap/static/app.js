// app.js: draws the page map from the server's event stream (no libraries, works offline).
//
// The grid is drawn once per update at one pixel per frame into an offscreen canvas, then scaled
// up without smoothing: cheap at any size, sharp at any zoom.

// colours by frame state code (FRAME_STATE_NAMES in @loanout/core: free, anon, object, loaned to
// kernel, loaned to anon, orphan, zero page, busy, kernel memory)
const COLORS = [
  [244, 244, 244],
  [76, 139, 245],
  [52, 168, 83],
  [232, 69, 60],
  [251, 188, 4],
  [156, 39, 176],
  [0, 0, 0],
  [158, 158, 158],
  [121, 85, 72],
];
const LOANED_TO_KERNEL = 3;

// [group, [[key, label, unit?]...]]; keys are kernel.stats() fields, or mbuf.* for mbufStats()
const COUNTERS = [
  [
    'memory (pages)',
    [
      ['physPages', 'physical'],
      ['freePages', 'free'],
      ['activePages', 'active'],
      ['inactivePages', 'inactive'],
      ['wiredPages', 'wired'],
      ['busyPages', 'busy'],
      ['loanedPages', 'on loan'],
      ['orphanPages', 'orphans'],
    ],
  ],
  [
    'loans',
    [
      ['loansObj', 'O->K (object to kernel)'],
      ['loansAnon', 'A->K (anon to kernel)'],
      ['loansOA', 'O->A (object to anon)'],
      ['loansZero', 'zero-fill'],
      ['unloans', 'unloans'],
      ['loanBreaks', 'loan breaks'],
      ['orphansFreed', 'orphans freed'],
    ],
  ],
  [
    'faults and paging',
    [
      ['faults', 'faults'],
      ['cowFaults', 'copy-on-write faults'],
      ['zeroFills', 'zero fills'],
      ['pageouts', 'pageouts'],
      ['pageins', 'pageins'],
    ],
  ],
  [
    'network (mbufs)',
    [
      ['mbuf.loanedBytes', 'bytes loaned', 'bytes'],
      ['mbuf.copiedBytes', 'bytes copied', 'bytes'],
      ['mbuf.loanChains', 'loaned chains'],
      ['mbuf.copyChains', 'copied chains'],
      ['mbuf.clustersInUse', 'clusters in use'],
      ['mbuf.kvaPagesInUse', 'loan KVA pages in use'],
    ],
  ],
];
const TRACE_LINES = 200;

const canvas = document.getElementById('map');
const ctx = canvas.getContext('2d');
const pixels = document.createElement('canvas');
const view = { frames: 0, cols: 1, rows: 1, cell: 4, names: [] };
let states = new Uint8Array(0);
let image = null;
let hovered = -1;
let pinned = -1;

const source = new EventSource('/events');
source.addEventListener('legend', (e) => setUp(JSON.parse(e.data)));
source.onmessage = (e) => update(JSON.parse(e.data));

// setUp: size the grid for `frames` cells, a power-of-two number of columns so rows start at round frame numbers
function setUp(legend) {
  view.frames = legend.frames;
  view.names = legend.states;
  view.cols = 2 ** Math.ceil(Math.log2(Math.sqrt(legend.frames)));
  view.rows = Math.ceil(legend.frames / view.cols);
  pixels.width = view.cols;
  pixels.height = view.rows;
  image = pixels.getContext('2d').createImageData(view.cols, view.rows);
  document.getElementById('title').textContent = `${legend.title}: physical memory, live`;
  document.title = `${legend.title}: live page map`;
  zoomToFit();
}

function update(u) {
  states = Uint8Array.from(atob(u.states), (c) => c.charCodeAt(0));
  draw();
  showLegend();
  showCounters(u);
  showTrace(u.trace, u.dropped);
  if (pinned >= 0) showFrame(pinned);
  // for scripts and tests: frames on loan to the kernel now, and how many updates have arrived
  canvas.dataset.loanedToKernel = String(countOf(LOANED_TO_KERNEL));
  canvas.dataset.updates = String(Number(canvas.dataset.updates ?? 0) + 1);
}

function countOf(state) {
  let n = 0;
  for (const s of states) if (s === state) n++;
  return n;
}

function draw() {
  if (image === null) return;
  const px = image.data;
  for (let f = 0; f < states.length; f++) {
    const rgb = COLORS[states[f]] ?? [255, 255, 255];
    px[4 * f] = rgb[0];
    px[4 * f + 1] = rgb[1];
    px[4 * f + 2] = rgb[2];
    px[4 * f + 3] = 255;
  }
  pixels.getContext('2d').putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(pixels, 0, 0, canvas.width, canvas.height);
  if (view.cell >= 8) drawGridLines();
  outline(pinned, '#000');
  outline(hovered, '#555');
}

function drawGridLines() {
  ctx.strokeStyle = 'rgba(255,255,255,0.7)';
  ctx.beginPath();
  for (let c = 1; c < view.cols; c++) {
    ctx.moveTo(c * view.cell + 0.5, 0);
    ctx.lineTo(c * view.cell + 0.5, canvas.height);
  }
  for (let r = 1; r < view.rows; r++) {
    ctx.moveTo(0, r * view.cell + 0.5);
    ctx.lineTo(canvas.width, r * view.cell + 0.5);
  }
  ctx.stroke();
}

function outline(frame, color) {
  if (frame < 0) return;
  const { cell, cols } = view;
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.min(3, cell / 4));
  ctx.strokeRect((frame % cols) * cell, Math.floor(frame / cols) * cell, cell, cell);
  ctx.lineWidth = 1;
}

function showLegend() {
  const counts = new Array(view.names.length).fill(0);
  for (const s of states) counts[s]++;
  document.getElementById('legend').innerHTML = view.names
    .map(
      (name, i) =>
        `<span data-state="${i}"><i style="background:rgb(${COLORS[i].join(',')})"></i>${name} <b>${counts[i]}</b></span>`,
    )
    .join('');
}

function showCounters(u) {
  const value = (key) => (key.startsWith('mbuf.') ? u.mbuf[key.slice(5)] : u.stats[key]);
  document.getElementById('counters').innerHTML = COUNTERS.map(
    ([group, rows]) =>
      `<table><caption>${group}</caption>${rows
        .map(([key, label, unit]) => {
          const v = value(key);
          return `<tr><td>${label}</td><td class="n" data-counter="${key}" data-value="${v}">${unit === 'bytes' ? bytes(v) : v}</td></tr>`;
        })
        .join('')}</table>`,
  ).join('');
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function showTrace(events, dropped) {
  const trace = document.getElementById('trace');
  if (dropped > 0)
    trace.prepend(traceLine('dropped', `… ${dropped} older events not shown (too many to list)`));
  for (const ev of events) {
    const detail = ev.detail ? ` (${ev.detail})` : '';
    trace.prepend(
      traceLine(ev.kind, `${(ev.time / 1000).toFixed(3)}s ${ev.kind} frame ${ev.frame}${detail}`),
    );
  }
  while (trace.childNodes.length > TRACE_LINES) trace.lastChild.remove();
}

function traceLine(kind, text) {
  const line = document.createElement('div');
  line.className = kind;
  line.textContent = text;
  return line;
}

// zoom: cell size in pixels, 1 to 32
function setCell(cell) {
  view.cell = Math.max(1, Math.min(32, cell));
  canvas.width = view.cols * view.cell;
  canvas.height = view.rows * view.cell;
  document.getElementById('geometry').textContent =
    `${view.frames} frames, ${view.cols} per row, ${view.cell} px each`;
  draw();
}

function zoomToFit() {
  const box = document.getElementById('gridbox');
  const width = Math.min(window.innerWidth * 0.62, 1024) - 2;
  const height = Math.max(window.innerHeight * 0.78, 256) - 2;
  box.scrollTo(0, 0);
  setCell(Math.floor(Math.min(width / view.cols, height / view.rows)));
}

document.getElementById('zoom-in').onclick = () => setCell(view.cell * 2);
document.getElementById('zoom-out').onclick = () => setCell(Math.floor(view.cell / 2));
document.getElementById('zoom-fit').onclick = zoomToFit;

function frameAt(e) {
  const r = canvas.getBoundingClientRect();
  const col = Math.floor((e.clientX - r.left) / view.cell);
  const row = Math.floor((e.clientY - r.top) / view.cell);
  const f = row * view.cols + col;
  return col >= 0 && col < view.cols && f >= 0 && f < view.frames ? f : -1;
}

canvas.addEventListener('mousemove', (e) => {
  const f = frameAt(e);
  if (f === hovered) return;
  hovered = f;
  draw();
  if (pinned < 0 && f >= 0) showFrame(f);
});
canvas.addEventListener('mouseleave', () => {
  hovered = -1;
  draw();
});
canvas.addEventListener('click', (e) => {
  const f = frameAt(e);
  pinned = f === pinned ? -1 : f;
  draw();
  if (f >= 0) showFrame(f);
});

async function showFrame(f) {
  const res = await fetch(`/frame/${f}`);
  if (!res.ok) return;
  const info = await res.json();
  if (f !== (pinned >= 0 ? pinned : hovered)) return;
  const el = document.getElementById('frame');
  el.textContent = `${pinned === f ? '(pinned) ' : ''}${JSON.stringify(info, null, 1)}`;
  el.dataset.frame = String(f);
}
