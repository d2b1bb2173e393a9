// app.js: the live page map in the browser (no libraries, no build, works offline).
//
// What the page is doing is always on it, in the status badge (body[data-state]):
//   connecting    before the first update (the map area says so: it is never blank)
//   live          updates arrive; the picture is the kernel now
//   paused        a walkthrough is held at a step by the viewer: the kernel waits, the picture is true
//   disconnected  the server stopped (it says goodbye) or cannot be reached: the picture is greyed,
//                 says when it was last true, and the page retries (1, 2, 4, then every 5 s; or now)
//
// The frames are drawn two ways. The focus shows the rows of frames that are in use -- or were in the
// last LINGER_MS, so that a burst stays visible -- at a readable size (at least 8 px a frame, 12 and
// more where there is room), and folds the free stretches between them into one line each; when all
// of RAM fits at that size it shows all of it. It is drawn only where it is scrolled to, so any RAM
// size costs the same. "All RAM" is the whole grid, zoomable, one cell per frame; the mini-map is all
// of RAM at one pixel per frame or less, where a pixel standing for several frames takes the colour
// of the most telling of them, so a lone loaned frame still shows.

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
const CSS_COLORS = COLORS.map((c) => `rgb(${c.join(',')})`);
const FREE = 0;
const LOANED_TO_KERNEL = 3;
const ORPHAN = 5;
const KERNEL = 8;
// the colour words a walkthrough's [notes] may use, by state code
const COLOR_WORDS = { blue: 1, green: 2, red: 3, yellow: 4, purple: 5, black: 6, grey: 7, gray: 7, brown: 8 };
// which state a mini-map pixel standing for several frames shows: the most telling (higher first)
const PRIORITY = [0, 2, 3, 8, 7, 6, 5, 4, 1];
// what each state means, for the legend's tooltips
const STATE_HELP = [
  'not in use',
  "a process's anonymous memory (an anon owns it)",
  'a page of an object: a file in the page cache, or shared memory',
  'lent to the kernel (A->K or O->K): wired, read-only to its owner',
  "a file's page lent to an anon (O->A): copy-on-write for the borrower",
  'still on loan, but its owner let go of it: only the borrowers keep it',
  'the one shared zero page: every zero-fill loan borrows it',
  'busy: being read or written (I/O in progress)',
  "the kernel's own memory: e.g. a socket's receive area, which the network reads into",
];

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
    'loans and transfers',
    [
      ['loansObj', 'O->K (object to kernel)'],
      ['loansAnon', 'A->K (anon to kernel)'],
      ['loansOA', 'O->A (object to anon)'],
      ['loansZero', 'zero-fill'],
      ['unloans', 'unloans'],
      ['loanBreaks', 'loan breaks'],
      ['orphansFreed', 'orphans freed'],
      ['pagesTransferred', 'pages transferred in'],
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
      ['mbuf.recvCopiedBytes', 'received by copy', 'bytes'],
      ['mbuf.recvTransferredBytes', 'received by transfer', 'bytes'],
      ['mbuf.loanedBytes', 'sent by loan', 'bytes'],
      ['mbuf.copiedBytes', 'sent by copy', 'bytes'],
      ['mbuf.loanChains', 'loaned chains'],
      ['mbuf.copyChains', 'copied chains'],
      ['mbuf.clustersInUse', 'clusters in use'],
      ['mbuf.kvaPagesInUse', 'loan KVA pages in use'],
      ['mbuf.loanFallbacks', 'loans that fell back to copy'],
      ['mbuf.recvFallbacks', 'receives that fell back to copy'],
    ],
  ],
];
const TRACE_LINES = 200;
// a row of the focus stays shown this long after its frames were last in use or touched
const LINGER_MS = 10_000;
// reconnect after 1, 2, 4 s, then every 5 s
const RETRY_MS = [1000, 2000, 4000, 5000];
// the focus: a cell is at least this big (px), aims at TARGET_CELL, at most MAX_CELL
const MIN_CELL = 8;
const TARGET_CELL = 12;
const MAX_CELL = 32;
const GAP_H = 22;

const $ = (id) => document.getElementById(id);
const view = {
  frames: 0,
  names: [],
  cols: 1,
  rows: 1,
  cell: 4,
  title: 'loanout',
  intervalMs: 250,
  clock: null,
  tab: 'focus',
  zoomed: false,
};
let states = new Uint8Array(0);
let arrived = new Uint8Array(0);
let lastBusy = new Float64Array(0);
let counts = [];
let latest = null;
let narration = null;
let hovered = -1;
let pinned = -1;
const history = new Map(); // frame -> its latest trace events, newest last
const recentKinds = []; // [time, kinds] of the updates of the last second

// ---------------------------------------------------------------------------------------------
// the connection and the page's state

const conn = {
  source: null,
  attempt: 0,
  retryAt: 0,
  timer: null,
  lastUpdate: 0,
  lastWall: 0,
  why: '',
  fresh: true,
  opened: false,
};

function connect() {
  clearTimeout(conn.timer);
  $('retry').hidden = true;
  if (conn.attempt > 0) setState('disconnected', `${conn.why}; reconnecting now (attempt ${conn.attempt})`);
  const source = new EventSource('/events');
  conn.source = source;
  conn.fresh = true;
  conn.opened = false;
  source.addEventListener('legend', (e) => setUp(JSON.parse(e.data)));
  source.addEventListener('bye', () => lost('the page map server stopped'));
  source.onmessage = (e) => update(JSON.parse(e.data));
  source.onerror = () =>
    lost(conn.opened ? 'lost the connection to the page map server' : 'cannot reach the page map server');
}

// lost: the stream ended or failed: say so, grey the picture, and retry
function lost(why) {
  if (conn.source === null) return;
  conn.source.close();
  conn.source = null;
  conn.why = why;
  const delay = RETRY_MS[Math.min(conn.attempt, RETRY_MS.length - 1)];
  conn.attempt++;
  conn.retryAt = Date.now() + delay;
  // for scripts and tests: the reconnect attempt to come, and how long the page waits before it
  document.body.dataset.retry = `${conn.attempt}:${delay}`;
  conn.timer = setTimeout(connect, delay);
  $('retry').hidden = false;
  document.body.classList.toggle('stale', view.frames > 0);
  showRetry();
  showNarrationControls();
}

function showRetry() {
  const s = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
  setState('disconnected', `${conn.why}; reconnecting in ${s} s (attempt ${conn.attempt})`);
  if (conn.lastWall > 0)
    $('stale-note').textContent =
      `Not live: this is the kernel as it was at ${clockTime(conn.lastWall)}, the last update.`;
}

function setState(state, detail) {
  document.body.dataset.state = state;
  $('status').textContent = state;
  $('status-detail').textContent = detail;
  document.title = `${view.title}: page map (${state})`;
}

// the state once updates flow: paused if a walkthrough is held at a step, else live
function liveState() {
  if (narration !== null && narration.state === 'paused')
    setState('paused', `paused at step ${narration.step}: the kernel waits until you resume or step`);
  else setState('live', `live: an update every ${view.intervalMs} ms`);
}

// retry now: the attempt to come, without waiting for its countdown
$('retry').onclick = () => connect();

// a second's ticker: countdowns, and a live page that has stopped hearing from its server
setInterval(() => {
  if (document.body.dataset.state === 'disconnected' && conn.source === null) showRetry();
  showNarrationTimer();
  const quiet = Date.now() - conn.lastUpdate;
  if (conn.source !== null && conn.lastUpdate > 0 && quiet > Math.max(5000, 10 * view.intervalMs))
    $('status-detail').textContent = `no update for ${Math.round(quiet / 1000)} s: the kernel may be busy`;
}, 250);

// ---------------------------------------------------------------------------------------------
// the legend (start of a stream) and each update

function setUp(legend) {
  conn.opened = true;
  const again = legend.frames === view.frames;
  view.frames = legend.frames;
  view.names = legend.states;
  view.title = legend.title;
  view.intervalMs = legend.intervalMs;
  view.clock = legend.clock;
  view.cols = 2 ** Math.ceil(Math.log2(Math.sqrt(legend.frames)));
  view.rows = Math.ceil(legend.frames / view.cols);
  if (!again) {
    states = new Uint8Array(legend.frames);
    arrived = new Uint8Array(Math.ceil(legend.frames / 8));
    lastBusy = new Float64Array(legend.frames).fill(Number.NEGATIVE_INFINITY);
    hovered = pinned = -1;
    history.clear();
    showFrameInfo(null, -1);
  }
  $('title').textContent = legend.title;
  $('about').replaceChildren(...withSwatches(legend.about));
  $('about').hidden = legend.about === '';
  $('trace-origin').textContent =
    `(newest first; times in seconds since the page map started, at ${clockTime(legend.clock.startedWall)})`;
  if (conn.attempt > 0) traceNote(`reconnected at ${clockTime(Date.now())}`);
  else if ($('trace').childNodes.length === 0)
    traceNote('nothing yet: what the kernel does shows here as it happens');
  setState('connecting', 'connected; waiting for the first update…');
  $('placeholder').textContent = 'connected; waiting for the first update…';
}

function update(u) {
  if (view.frames === 0) return;
  conn.lastUpdate = Date.now();
  conn.lastWall = Date.now();
  conn.attempt = 0;
  $('retry').hidden = true;
  document.body.classList.remove('stale');
  latest = u;
  decode(u);
  narration = u.narration;
  liveState();
  if (conn.fresh) firstUpdate();
  showNarration();
  drawAll();
  showLegend();
  showCounters(u);
  showFlow(u);
  showTrace(u.trace, u.dropped);
  if (pinned >= 0) showFrame(pinned);
  // for scripts and tests: frames on loan to the kernel now, and how many updates have arrived
  document.body.dataset.loanedToKernel = String(counts[LOANED_TO_KERNEL]);
  document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
}

function firstUpdate() {
  conn.fresh = false;
  $('placeholder').hidden = true;
  showTab(view.tab);
}

// decode: the update's frame states and transfer marks; note which frames are in use or touched
function decode(u) {
  const raw = atob(u.states);
  const now = performance.now();
  counts = new Array(view.names.length).fill(0);
  for (let f = 0; f < raw.length; f++) {
    const s = raw.charCodeAt(f);
    states[f] = s;
    counts[s]++;
    if (s !== FREE) lastBusy[f] = now;
  }
  const marks = atob(u.arrived);
  for (let i = 0; i < marks.length; i++) arrived[i] = marks.charCodeAt(i);
  for (const ev of u.trace) {
    lastBusy[ev.frame] = now;
    remember(ev);
  }
  recentKinds.push([now, u.kinds]);
  while (recentKinds.length > 0 && recentKinds[0][0] < now - 1000) recentKinds.shift();
}

function isArrived(f) {
  return (arrived[f >> 3] & (1 << (f & 7))) !== 0;
}

function countArrived() {
  let n = 0;
  for (const byte of arrived) for (let b = byte; b !== 0; b &= b - 1) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// the walkthrough's step, and its controls

function showNarration() {
  const box = $('narration');
  box.hidden = narration === null;
  if (narration === null) return;
  narration.arrivedAt = performance.now();
  $('step-number').textContent =
    narration.of !== null ? `step ${narration.step} of ${narration.of}` : `step ${narration.step}`;
  $('step-title').textContent = narration.title;
  const text = $('step-text');
  if (text.dataset.source !== narration.text) {
    text.replaceChildren(...withSwatches(narration.text));
    text.dataset.source = narration.text;
  }
  box.dataset.step = String(narration.step);
  box.dataset.walk = narration.state;
  showNarrationControls();
  showNarrationTimer();
}

// withSwatches: a step's text as nodes, its [colour] and [colour: words] notes as swatches
function withSwatches(text) {
  const nodes = [];
  let at = 0;
  for (const m of text.matchAll(/\[([a-z]+)(?::\s*([^\]]*))?\]/gi)) {
    const code = COLOR_WORDS[m[1].toLowerCase()];
    if (code === undefined) continue;
    nodes.push(document.createTextNode(text.slice(at, m.index)));
    const chip = document.createElement('span');
    chip.className = 'chip';
    chip.title = view.names[code] ?? '';
    const i = document.createElement('i');
    i.style.background = CSS_COLORS[code];
    chip.append(i, m[2] ?? view.names[code] ?? m[1]);
    nodes.push(chip);
    at = m.index + m[0].length;
  }
  nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

function showNarrationControls() {
  if (narration === null) return;
  const offline = conn.source === null;
  const over = narration.state === 'done';
  $('step-pause').hidden = narration.state !== 'running';
  $('step-resume').hidden = narration.state !== 'paused';
  for (const id of ['step-pause', 'step-resume', 'step-next']) $(id).disabled = offline || over;
}

function showNarrationTimer() {
  if (narration === null) return;
  let say = '';
  if (narration.state === 'done') say = 'the walkthrough is over; the page map stays up';
  else if (narration.state === 'paused') say = 'paused: the kernel waits at this step';
  else if (narration.remainingMs !== null) {
    const left = narration.remainingMs - (performance.now() - narration.arrivedAt);
    say = left > 0 ? `next step in ${Math.ceil(left / 1000)} s` : 'moving on…';
  }
  if (conn.source === null) say = 'not connected: the controls wait for the server';
  $('step-timer').textContent = say;
}

async function control(action) {
  if (narration === null) return;
  const res = await fetch('/control', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ action, step: narration.step }),
  }).catch(() => null);
  if (res === null) return;
  const body = await res.json().catch(() => ({}));
  if (res.ok && body.narration && body.narration.step === narration.step) {
    narration = body.narration;
    liveState();
    showNarration();
  } else if (!res.ok) $('step-timer').textContent = body.error ?? `refused (${res.status})`;
}

$('step-pause').onclick = () => control('pause');
$('step-resume').onclick = () => control('resume');
$('step-next').onclick = () => control('next');

// ---------------------------------------------------------------------------------------------
// the views: focus (frames in use), all RAM (zoomable), and the mini-map

function showTab(tab) {
  view.tab = tab;
  $('view-focus').setAttribute('aria-selected', String(tab === 'focus'));
  $('view-all').setAttribute('aria-selected', String(tab === 'all'));
  $('focusbox').hidden = tab !== 'focus' || latest === null;
  $('gridbox').hidden = tab !== 'all' || latest === null;
  $('zoom').hidden = tab !== 'all';
  if (latest === null) return;
  if (tab === 'all' && !view.zoomed) zoomToFit();
  else drawAll();
}

$('view-focus').onclick = () => showTab('focus');
$('view-all').onclick = () => showTab('all');

function drawAll() {
  if (latest === null) return;
  if (view.tab === 'focus') {
    layoutFocus();
    drawFocus();
  } else drawGrid();
  drawMinimap();
  showGeometry();
}

// drawView: redraw the view showing as it is laid out (a hover, a pin)
function drawView() {
  if (latest === null) return;
  if (view.tab === 'focus') drawFocus();
  else drawGrid();
}

function showGeometry() {
  const g = $('geometry');
  if (view.tab === 'all') {
    g.textContent = `all ${view.frames} frames, ${view.cols} per row, ${view.cell} px each`;
    return;
  }
  const shown = focus.bands.reduce((n, b) => n + (b.type === 'rows' ? b.count : 0), 0);
  const folded = focus.bands.reduce((n, b) => n + (b.type === 'gap' ? b.frames : 0), 0);
  g.textContent =
    folded === 0
      ? `all ${view.frames} frames, ${focus.cols} per row, ${focus.cell} px each`
      : `${shown} rows of ${focus.cols} frames at ${focus.cell} px: the rows in use now or in the last ` +
        `${LINGER_MS / 1000} s; ${folded} free frames folded (see all RAM)`;
}

// ---- focus

const focus = { cols: 16, cell: TARGET_CELL, gutter: 40, bands: [], total: 0, height: 0, width: 0 };

// focusMaxHeight: the most of the window the focus may take
function focusMaxHeight() {
  return Math.max(160, Math.floor(window.innerHeight * (window.innerWidth < 860 ? 0.6 : 0.7)));
}

// layoutFocus: its columns and cell size, then which rows it shows and where. Rows fill the width.
// All of RAM, if it fits the window at TARGET_CELL or more; else the largest cell (up to MAX_CELL,
// down to TARGET_CELL) at which the rows in use fit; if they fit at none, the smallest of those, and
// the focus scrolls. Only a window too narrow for TARGET_CELL gets less (never below MIN_CELL).
function layoutFocus() {
  const box = $('focusbox');
  const ctx = $('focus').getContext('2d');
  ctx.font = '10px ui-monospace, monospace';
  focus.gutter = Math.ceil(ctx.measureText(String(view.frames)).width) + 8;
  focus.width = box.clientWidth;
  const avail = Math.max(MIN_CELL * 8, focus.width - focus.gutter - 2);
  const sizes = [];
  // from as few columns as fill the width at MAX_CELL (a narrow column of big cells helps no one)
  const most = Math.min(128, view.cols);
  const fewest = Math.min(most, 2 ** Math.ceil(Math.log2(avail / MAX_CELL)));
  for (let cols = Math.max(1, fewest); cols <= most; cols *= 2) {
    const cell = Math.min(MAX_CELL, Math.floor(avail / cols));
    if (cell >= MIN_CELL) sizes.push({ cols, cell });
  }
  const maxH = focusMaxHeight();
  const now = performance.now();
  const whole = sizes.find((z) => z.cell >= TARGET_CELL && Math.ceil(view.frames / z.cols) * z.cell <= maxH);
  /* the cells worth reading: TARGET_CELL and up (or, where the width allows none, the biggest there is) */
  const readable = sizes.filter((z) => z.cell >= TARGET_CELL);
  const pool = whole !== undefined ? [whole] : readable.length > 0 ? readable : sizes.slice(0, 1);
  let chosen = null;
  for (const z of pool) {
    chosen = { ...z, bands: focusBands(now, z.cols, z.cell) };
    if (bandsHeight(chosen.bands) <= maxH) break;
  }
  Object.assign(focus, { cols: chosen.cols, cell: chosen.cell, bands: chosen.bands });
  focus.total = bandsHeight(focus.bands);
  focus.height = Math.min(focus.total, maxH);
}

function bandsHeight(bands) {
  const last = bands.at(-1);
  return last === undefined ? 0 : last.y + last.h;
}

// focusBands: rows (runs of shown rows) and gaps (runs of folded free rows), top to bottom
function focusBands(now, cols, cell) {
  const nRows = Math.ceil(view.frames / cols);
  const all = nRows * cell <= focusMaxHeight();
  const shown = new Uint8Array(nRows);
  for (let r = 0; r < nRows; r++) shown[r] = all || rowActive(r, cols, now) ? 1 : 0;
  // a lone folded row costs more as a gap line than as a row
  for (let r = 1; r + 1 < nRows; r++) if (!shown[r] && shown[r - 1] && shown[r + 1]) shown[r] = 2;
  const bands = [];
  let y = 0;
  for (let r = 0; r < nRows; ) {
    let end = r;
    while (end < nRows && Boolean(shown[end]) === Boolean(shown[r])) end++;
    if (shown[r]) bands.push({ type: 'rows', first: r, count: end - r, y, h: (end - r) * cell });
    else {
      const from = r * cols;
      const to = Math.min(view.frames, end * cols) - 1;
      bands.push({ type: 'gap', first: r, count: end - r, from, to, frames: to - from + 1, y, h: GAP_H });
    }
    y += bands.at(-1).h;
    r = end;
  }
  return bands;
}

function rowActive(r, cols, now) {
  const end = Math.min(view.frames, (r + 1) * cols);
  for (let f = r * cols; f < end; f++) if (lastBusy[f] > now - LINGER_MS) return true;
  return false;
}

function drawFocus() {
  const box = $('focusbox');
  const canvas = $('focus');
  const dpr = window.devicePixelRatio || 1;
  const { width, height } = focus;
  box.style.height = `${height + 2}px`;
  $('focus-spacer').style.height = `${focus.total - height}px`;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const top = box.scrollTop;
  for (const b of focus.bands) {
    if (b.y + b.h <= top || b.y >= top + height) continue;
    if (b.type === 'rows') drawRows(ctx, b, top, height);
    else drawGap(ctx, b, b.y - top, width);
  }
  outlineFocus(ctx, pinned, '#000');
  outlineFocus(ctx, hovered, '#555');
}

function drawRows(ctx, b, top, height) {
  const { cols, cell, gutter } = focus;
  const first = Math.max(b.first, b.first + Math.floor((top - b.y) / cell));
  const last = Math.min(b.first + b.count - 1, b.first + Math.floor((top + height - b.y) / cell));
  ctx.font = '10px ui-monospace, monospace';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let r = first; r <= last; r++) {
    const y = b.y + (r - b.first) * cell - top;
    if (cell >= 10 || r % 2 === 0) {
      ctx.fillStyle = '#777';
      ctx.fillText(String(r * cols), gutter - 5, y + cell / 2);
    }
    for (let c = 0; c < cols; c++) {
      const f = r * cols + c;
      if (f >= view.frames) break;
      ctx.fillStyle = CSS_COLORS[states[f]] ?? '#fff';
      ctx.fillRect(gutter + c * cell, y, cell - 1, cell - 1);
      if (isArrived(f)) drawMark(ctx, gutter + c * cell, y, cell);
    }
  }
}

// drawMark: a white dot ringed in dark, on a frame that came into a process by page transfer
function drawMark(ctx, x, y, cell) {
  ctx.beginPath();
  ctx.arc(x + (cell - 1) / 2, y + (cell - 1) / 2, Math.max(2, cell * 0.2), 0, 2 * Math.PI);
  ctx.fillStyle = '#fff';
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = '#222';
  ctx.stroke();
  ctx.lineWidth = 1;
}

function drawGap(ctx, b, y, width) {
  ctx.fillStyle = '#f7f7f7';
  ctx.fillRect(0, y + 3, width, GAP_H - 6);
  ctx.fillStyle = '#777';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.fillText(`⋯ frames ${b.from}–${b.to}: free (${b.frames}) ⋯`, width / 2, y + GAP_H / 2);
}

function outlineFocus(ctx, frame, color) {
  const r = focusCell(frame);
  if (r === null) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.strokeRect(r.x - 1, r.y - 1, focus.cell + 1, focus.cell + 1);
  ctx.lineWidth = 1;
}

// focusCell: where a frame's cell is on the focus canvas now (css px), or null if it is not shown
function focusCell(frame) {
  if (frame < 0 || frame >= view.frames) return null;
  const row = Math.floor(frame / focus.cols);
  const b = focus.bands.find((x) => x.type === 'rows' && row >= x.first && row < x.first + x.count);
  if (b === undefined) return null;
  const y = b.y + (row - b.first) * focus.cell - $('focusbox').scrollTop;
  return { x: focus.gutter + (frame % focus.cols) * focus.cell, y };
}

function frameAtFocus(e) {
  const rect = $('focus').getBoundingClientRect();
  const x = e.clientX - rect.left - focus.gutter;
  const y = e.clientY - rect.top + $('focusbox').scrollTop;
  const b = focus.bands.find((band) => y >= band.y && y < band.y + band.h);
  if (b === undefined || b.type !== 'rows' || x < 0 || x >= focus.cols * focus.cell) return -1;
  const f = (b.first + Math.floor((y - b.y) / focus.cell)) * focus.cols + Math.floor(x / focus.cell);
  return f < view.frames ? f : -1;
}

$('focusbox').addEventListener('scroll', () => {
  drawFocus();
  drawMinimap(false);
});

// ---- all RAM: drawn at one pixel per frame offscreen, then scaled without smoothing

const pixels = document.createElement('canvas');

function drawGrid() {
  const canvas = $('map');
  if (pixels.width !== view.cols || pixels.height !== view.rows) {
    pixels.width = view.cols;
    pixels.height = view.rows;
  }
  const pctx = pixels.getContext('2d');
  const image = pctx.createImageData(view.cols, view.rows);
  paint(image.data, (f) => f);
  pctx.putImageData(image, 0, 0);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(pixels, 0, 0, canvas.width, canvas.height);
  if (view.cell >= 8) gridLinesAndMarks(ctx);
  outlineGrid(ctx, pinned, '#000');
  outlineGrid(ctx, hovered, '#555');
}

// paint: every frame's colour into an RGBA image, frame f at pixel at(f)
function paint(px, at) {
  for (let f = 0; f < view.frames; f++) {
    const rgb = COLORS[states[f]] ?? [255, 255, 255];
    const i = 4 * at(f);
    px[i] = rgb[0];
    px[i + 1] = rgb[1];
    px[i + 2] = rgb[2];
    px[i + 3] = 255;
  }
}

function gridLinesAndMarks(ctx) {
  const { cell, cols, rows } = view;
  ctx.strokeStyle = 'rgba(255,255,255,0.7)';
  ctx.beginPath();
  for (let c = 1; c < cols; c++) {
    ctx.moveTo(c * cell + 0.5, 0);
    ctx.lineTo(c * cell + 0.5, rows * cell);
  }
  for (let r = 1; r < rows; r++) {
    ctx.moveTo(0, r * cell + 0.5);
    ctx.lineTo(cols * cell, r * cell + 0.5);
  }
  ctx.stroke();
  for (let f = 0; f < view.frames; f++)
    if (isArrived(f)) drawMark(ctx, (f % cols) * cell, Math.floor(f / cols) * cell, cell);
}

function outlineGrid(ctx, frame, color) {
  if (frame < 0) return;
  const { cell, cols } = view;
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.min(3, cell / 4));
  ctx.strokeRect((frame % cols) * cell, Math.floor(frame / cols) * cell, cell, cell);
  ctx.lineWidth = 1;
}

// zoom: cell size in pixels, 1 to 32
function setCell(cell) {
  view.cell = Math.max(1, Math.min(32, cell));
  const canvas = $('map');
  canvas.width = view.cols * view.cell;
  canvas.height = view.rows * view.cell;
  drawAll();
}

function zoomToFit() {
  const box = $('gridbox');
  const width = box.clientWidth - 2;
  const height = Math.max(window.innerHeight * 0.7, 200) - 2;
  view.zoomed = false;
  box.scrollTo(0, 0);
  setCell(Math.floor(Math.min(width / view.cols, height / view.rows)));
}

$('zoom-in').onclick = () => {
  view.zoomed = true;
  setCell(view.cell * 2);
};
$('zoom-out').onclick = () => {
  view.zoomed = true;
  setCell(Math.floor(view.cell / 2));
};
$('zoom-fit').onclick = zoomToFit;

function frameAtGrid(e) {
  const r = $('map').getBoundingClientRect();
  const col = Math.floor((e.clientX - r.left) / view.cell);
  const row = Math.floor((e.clientY - r.top) / view.cell);
  const f = row * view.cols + col;
  return col >= 0 && col < view.cols && f >= 0 && f < view.frames ? f : -1;
}

// ---- the mini-map: all of RAM, a pixel for one frame or for a square of them (the most telling)

const mini = { d: 1, cols: 1, rows: 1, scale: 1 };
const miniPixels = document.createElement('canvas');

// drawMinimap: repaint it from the frames (after an update), or only redraw what the main view shows
function drawMinimap(repaint = true) {
  if (repaint) {
    let d = 1;
    while (view.cols / d > 256 || view.rows / d > 256) d *= 2;
    mini.d = d;
    mini.cols = Math.ceil(view.cols / d);
    mini.rows = Math.ceil(view.rows / d);
    miniPixels.width = mini.cols;
    miniPixels.height = mini.rows;
    const pctx = miniPixels.getContext('2d');
    const image = pctx.createImageData(mini.cols, mini.rows);
    paintMini(image.data);
    pctx.putImageData(image, 0, 0);
  }
  const room = Math.min(320, $('side').clientWidth - 4);
  mini.scale = Math.max(1, Math.min(16, room / mini.cols));
  const canvas = $('minimap');
  canvas.width = Math.round(mini.cols * mini.scale);
  canvas.height = Math.round(mini.rows * mini.scale);
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(miniPixels, 0, 0, canvas.width, canvas.height);
  outlineShown(ctx);
}

function paintMini(px) {
  const best = new Int8Array(mini.cols * mini.rows).fill(-1);
  for (let f = 0; f < view.frames; f++) {
    const p =
      Math.floor(Math.floor(f / view.cols) / mini.d) * mini.cols + Math.floor((f % view.cols) / mini.d);
    const s = states[f];
    if (best[p] < 0 || PRIORITY[s] > PRIORITY[best[p]]) best[p] = s;
  }
  for (let p = 0; p < best.length; p++) {
    const rgb = best[p] < 0 ? [255, 255, 255] : COLORS[best[p]];
    px.set([rgb[0], rgb[1], rgb[2], 255], 4 * p);
  }
}

// outlineShown: on the mini-map, the stretch of RAM the main view shows now
function outlineShown(ctx) {
  const [from, to] = shownRange();
  if (from < 0) return;
  const k = mini.scale / mini.d;
  const y0 = Math.floor(from / view.cols) * k;
  const y1 = (Math.floor(to / view.cols) + 1) * k;
  ctx.strokeStyle = 'rgba(0,0,0,0.8)';
  ctx.lineWidth = 1;
  ctx.strokeRect(0.5, Math.floor(y0) + 0.5, ctx.canvas.width - 1, Math.max(2, Math.ceil(y1 - y0) - 1));
}

// shownRange: the first and last frame the main view shows where it is scrolled to ([-1, -1] if none)
function shownRange() {
  if (view.tab === 'all') {
    const box = $('gridbox');
    const first = Math.floor(box.scrollTop / view.cell) * view.cols;
    const last = Math.ceil((box.scrollTop + box.clientHeight) / view.cell) * view.cols - 1;
    return [first, Math.min(view.frames - 1, last)];
  }
  const top = $('focusbox').scrollTop;
  const seen = focus.bands.filter((b) => b.type === 'rows' && b.y + b.h > top && b.y < top + focus.height);
  if (seen.length === 0) return [-1, -1];
  const a = seen[0];
  const z = seen.at(-1);
  const firstRow = a.first + Math.max(0, Math.floor((top - a.y) / focus.cell));
  const lastRow =
    Math.min(z.first + z.count, z.first + Math.ceil((top + focus.height - z.y) / focus.cell)) - 1;
  return [firstRow * focus.cols, Math.min(view.frames - 1, (lastRow + 1) * focus.cols - 1)];
}

$('minimap').addEventListener('click', (e) => {
  const r = $('minimap').getBoundingClientRect();
  const col = Math.floor((e.clientX - r.left) / mini.scale) * mini.d;
  const row = Math.floor((e.clientY - r.top) / mini.scale) * mini.d;
  goTo(Math.min(view.frames - 1, row * view.cols + col));
});

// goTo: bring a frame into view: in the focus if it shows that row, else in all RAM
function goTo(frame) {
  const cell = focusCell(frame);
  if (cell !== null) {
    showTab('focus');
    $('focusbox').scrollTop += cell.y - focus.height / 2;
  } else {
    showTab('all');
    const box = $('gridbox');
    box.scrollTop = Math.floor(frame / view.cols) * view.cell - box.clientHeight / 2;
    box.scrollLeft = (frame % view.cols) * view.cell - box.clientWidth / 2;
  }
  drawAll();
}
$('gridbox').addEventListener('scroll', () => drawMinimap(false));

// ---- pointing at frames, in either view

for (const [id, at] of [
  ['focus', frameAtFocus],
  ['map', frameAtGrid],
]) {
  const canvas = $(id);
  canvas.addEventListener('mousemove', (e) => {
    const f = at(e);
    if (f === hovered) return;
    hovered = f;
    drawView();
    if (pinned < 0 && f >= 0) showFrame(f);
  });
  canvas.addEventListener('mouseleave', () => {
    hovered = -1;
    drawView();
  });
  canvas.addEventListener('click', (e) => {
    const f = at(e);
    pinned = f === pinned ? -1 : f;
    drawView();
    if (f >= 0) showFrame(f);
  });
}

window.addEventListener('resize', () => {
  if (latest === null) return;
  if (view.tab === 'all' && !view.zoomed) zoomToFit();
  else drawAll();
});

// ---------------------------------------------------------------------------------------------
// the legend, the counters, the network's flow

function showLegend() {
  const items = view.names.map((name, i) => {
    const span = document.createElement('span');
    span.dataset.state = String(i);
    span.title = STATE_HELP[i] ?? '';
    const sw = document.createElement('i');
    sw.style.background = CSS_COLORS[i];
    const n = document.createElement('b');
    n.textContent = String(counts[i]);
    span.append(sw, `${name} `, n);
    return span;
  });
  const marked = countArrived();
  if (marked > 0 || (latest?.stats.pagesTransferred ?? 0) > 0) {
    const span = document.createElement('span');
    span.className = 'mark';
    span.title = 'came into a process by page transfer (a receive, no copy), and not free since';
    const n = document.createElement('b');
    n.textContent = String(marked);
    span.append(document.createElement('i'), 'came in by page transfer ', n);
    items.push(span);
  }
  $('legend').replaceChildren(...items);
}

function counterValue(u, key) {
  if (!key.startsWith('mbuf.')) return u.stats[key] ?? 0;
  const v = u.mbuf[key.slice(5)] ?? 0;
  return typeof v === 'object' ? Object.values(v).reduce((a, b) => a + b, 0) : v;
}

function showCounters(u) {
  const tables = COUNTERS.map(([group, rows]) => {
    const table = document.createElement('table');
    table.createCaption().textContent = group;
    for (const [key, label, unit] of rows) {
      const v = counterValue(u, key);
      const tr = table.insertRow();
      tr.insertCell().textContent = label;
      const td = tr.insertCell();
      td.className = 'n';
      td.dataset.counter = key;
      td.dataset.value = String(v);
      td.textContent = unit === 'bytes' ? bytes(v) : String(v);
    }
    return table;
  });
  $('counters').replaceChildren(...tables);
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

// showFlow: once the network has moved anything, how bytes came in and went out, and where the
// frames are now: receive areas (kernel memory) -> page transfer -> the process -> loan -> network
function showFlow(u) {
  const m = u.mbuf;
  const moved = m.recvCopiedBytes + m.recvTransferredBytes + m.loanedBytes + m.copiedBytes;
  if (moved === 0 && u.stats.pagesTransferred === 0) return;
  $('flow').hidden = false;
  const perSecond = (kind) => recentKinds.reduce((n, [, k]) => n + (k[kind] ?? 0), 0);
  $('flow-stages').replaceChildren(
    stage('network', null, null),
    arrow('→'),
    stage('receive areas', KERNEL, counts[KERNEL]),
    arrow(`→ transfer (${perSecond('transfer')}/s) →`),
    stage('in a process, came by transfer', -1, countArrived()),
    arrow(`→ loan (${perSecond('loan')}/s) →`),
    stage('on loan to the network', LOANED_TO_KERNEL, counts[LOANED_TO_KERNEL]),
  );
  // orphans are on loan too: the network holds pages their owner has let go of
  if (counts[ORPHAN] > 0) $('flow-stages').append(stage('and orphans', ORPHAN, counts[ORPHAN]));
  const rows = [
    ['', 'by copy', 'zero-copy'],
    ['in: network → process', bytes(m.recvCopiedBytes), `by transfer ${bytes(m.recvTransferredBytes)}`],
    ['out: process → network', bytes(m.copiedBytes), `by loan ${bytes(m.loanedBytes)}`],
  ];
  const table = $('flow-table');
  table.replaceChildren();
  for (const r of rows) {
    const tr = table.insertRow();
    for (const cell of r) tr.insertCell().textContent = cell;
  }
}

function stage(label, code, n) {
  const s = document.createElement('span');
  s.className = 'stage';
  if (code !== null) {
    const sw = document.createElement('i');
    sw.className = 'swatch';
    if (code >= 0) sw.style.background = CSS_COLORS[code];
    else Object.assign(sw.style, { borderRadius: '50%', border: '2px solid #222', background: '#fff' });
    s.append(sw);
  }
  s.append(n === null ? label : `${label}: ${n}`);
  return s;
}

function arrow(text) {
  const a = document.createElement('span');
  a.className = 'arrow';
  a.textContent = text;
  return a;
}

// ---------------------------------------------------------------------------------------------
// the trace, in words, timed from the page map's start

const TRACE_WORDS = {
  loan: (d) => (d === 'anon' ? 'lent to an anon (O->A)' : 'lent to the kernel (wired, read-only)'),
  unloan: () => 'loan returned (unloan)',
  loanbreak: (d) =>
    d === 'pagedaemon'
      ? 'loan broken by the pagedaemon, to page the owner out'
      : 'loan broken: its owner wrote, and got a copy',
  orphan: () => 'now an orphan: its owner let go, its borrowers keep it',
  adopt: () => 'orphan adopted by the anon that borrowed it',
  pageout: () => 'paged out',
  pagein: () => 'paged in',
  free: () => 'freed',
  transfer: (d) => `moved into a process at ${d} by page transfer (a receive, no copy)`,
};

function traceWords(ev) {
  return (TRACE_WORDS[ev.kind] ?? (() => ev.kind))(ev.detail);
}

// since: a kernel time (performance.now() in the server) as seconds since the page map started
function since(time) {
  return `+${((time - (view.clock?.startedAt ?? 0)) / 1000).toFixed(3)} s`;
}

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function showTrace(events, dropped) {
  const trace = $('trace');
  if (dropped > 0)
    traceNote(`… ${dropped} more events not listed (too many to show; the counters have them all)`);
  for (const ev of events) {
    const line = document.createElement('div');
    line.className = ev.kind;
    line.textContent = `${since(ev.time)}  frame ${ev.frame}  ${traceWords(ev)}  [${ev.kind}]`;
    trace.prepend(line);
  }
  while (trace.childNodes.length > TRACE_LINES) trace.lastChild.remove();
}

function traceNote(text) {
  const line = document.createElement('div');
  line.className = 'note';
  line.textContent = text;
  $('trace').prepend(line);
}

function remember(ev) {
  const list = history.get(ev.frame) ?? [];
  list.push(ev);
  if (list.length > 3) list.shift();
  history.delete(ev.frame);
  history.set(ev.frame, list);
  if (history.size > 4096) history.delete(history.keys().next().value);
}

// ---------------------------------------------------------------------------------------------
// one frame, in words, with NetBSD's names beside them (ddb's `show page`)

const FRAME_ROWS = [
  ['state', 'what it is', 'from all of these'],
  ['owner', 'owner', 'pg->uobject, pg->uanon'],
  ['offset', 'where in its object', 'pg->offset'],
  ['loans', 'loans', 'pg->loan_count'],
  ['borrowers', 'borrowed by', 'wire_count, uanon'],
  ['wired', 'wired', 'pg->wire_count'],
  ['anonOwns', 'the anon owns it', 'pg->pqflags & PQ_ANON'],
  ['queue', 'page queue', 'pg->pqflags (PQ_*)'],
  ['busy', 'busy', 'pg->flags & PG_BUSY'],
  ['mappings', 'mapped by', "pmap's pv entries"],
  ['freeBlock', 'free block', 'uvm_pgfl (buddy here)'],
  ['events', 'recently', 'UVMHIST (the trace)'],
];

function frameTable() {
  const table = $('frame-table');
  for (const [key, label, netbsd] of FRAME_ROWS) {
    const tr = table.insertRow();
    const th = document.createElement('th');
    const code = document.createElement('code');
    code.textContent = netbsd;
    th.append(label, code);
    tr.append(th);
    tr.insertCell().id = `f-${key}`;
  }
}
frameTable();
showFrameInfo(null, -1);

async function showFrame(f) {
  const res = await fetch(`/frame/${f}`).catch(() => null);
  if (res === null || !res.ok) return;
  const info = await res.json();
  if (f !== (pinned >= 0 ? pinned : hovered)) return;
  showFrameInfo(info, f);
}

function showFrameInfo(info, f) {
  $('frame-id').textContent = info === null ? '—' : `${f}${pinned === f ? ' (pinned)' : ''}`;
  $('frame-panel').dataset.frame = info === null ? '' : String(f);
  const words = info === null ? {} : describe(info);
  for (const [key] of FRAME_ROWS) $(`f-${key}`).textContent = words[key] ?? '—';
}

const STATE_WORDS = {
  free: 'free: not in use',
  anon: "a process's anonymous memory",
  object: "a page of an object (a file's page in the page cache, or shared memory)",
  'loaned to kernel': 'on loan to the kernel: wired, and read-only to its owner until the loan ends',
  'loaned to anon (O->A)': "a file's page lent to an anon (O->A): the anon reads it, a write gets a copy",
  orphan: 'an orphan: still on loan, but its owner let go; freed when the last loan ends',
  'zero page': 'the shared zero page: zero-fill loans all borrow it',
  busy: 'busy: being read in or written out',
  'kernel memory': "the kernel's own memory (e.g. a socket's receive area, which the network reads into)",
};

// describe: FrameInfo (kernel.frameInfo) in a student's words, one entry per FRAME_ROWS key
function describe(info) {
  return {
    state: `${STATE_WORDS[info.state] ?? info.state}${isArrived(info.frame) ? '; it came into its process by page transfer (a receive, no copy)' : ''}`,
    owner: ownerWords(info.owner),
    offset:
      info.offset === null ? 'none (not an object page)' : `byte ${info.offset} (page ${info.offset / 4096})`,
    loans: loanWords(info),
    borrowers: borrowerWords(info),
    wired:
      info.wireCount === 0
        ? 'no (it could be paged out)'
        : `yes, ${info.wireCount} time${info.wireCount === 1 ? '' : 's'}: it stays in RAM`,
    anonOwns: info.anonOwns ? 'yes' : 'no',
    queue: queueWords(info.queue),
    busy: info.busy ? 'yes: I/O in progress' : 'no',
    mappings: mappingWords(info.mappings),
    freeBlock:
      info.freeBlock === null ? '—' : `${info.freeBlock.pages} free frames from ${info.freeBlock.first}`,
    events: eventWords(info.frame),
  };
}

function ownerWords(owner) {
  if (owner === 'none') return 'nobody';
  if (owner.startsWith('none (orphan')) return 'nobody: an orphan, kept alive by its loans';
  if (owner === 'anon') return 'an anon: a page of a process’s anonymous memory';
  if (owner.startsWith('anon (borrowed')) return 'an anon that only borrowed it; its owner is gone';
  const lent = owner.endsWith(' (lent to an anon)');
  const obj = lent ? owner.slice(0, -' (lent to an anon)'.length) : owner;
  let who = obj;
  if (obj.startsWith('vnode ')) who = `the file ${obj.slice(6)} (its page in the page cache)`;
  else if (obj === 'aobj object') who = 'shared anonymous memory (an aobj)';
  else if (obj === 'kernel object') who = 'the kernel (kernel_object)';
  else if (obj === 'zero object') who = 'the zero page’s object';
  return lent ? `${who}; an anon borrows it` : who;
}

// loanWords: how many loans, and of what kind (from who owns it and who holds it)
function loanWords(info) {
  const n = info.loanCount;
  if (n === 0) return 'not on loan';
  if (info.state === 'zero page') return `${n} zero-fill loan${n === 1 ? '' : 's'} of the zero page`;
  const kinds = [];
  if (info.wireCount > 0) {
    if (info.owner.startsWith('anon')) kinds.push('A->K');
    else if (info.owner.startsWith('none')) kinds.push('to the kernel');
    else kinds.push('O->K');
  }
  if (borrowedByAnon(info)) kinds.push('O->A');
  const orphan = info.state === 'orphan' ? '; its owner is gone' : '';
  return `${n} loan${n === 1 ? '' : 's'}${kinds.length > 0 ? ` (${kinds.join(' and ')})` : ''}${orphan}`;
}

// borrowedByAnon: an anon holds the page without owning it (an O->A loan, or what is left of one)
function borrowedByAnon(info) {
  return info.owner.endsWith('(lent to an anon)') || info.owner.startsWith('anon (borrowed');
}

function borrowerWords(info) {
  if (info.loanCount === 0) return 'nobody';
  if (info.state === 'zero page') return 'every zero-fill loan (memory no process has written yet)';
  const who = [];
  if (info.wireCount > 0) who.push('the kernel (e.g. an mbuf on its way to the network)');
  if (borrowedByAnon(info)) who.push('an anon (O->A): a process reads it copy-on-write');
  return who.length > 0 ? who.join('; ') : 'the kernel';
}

function queueWords(q) {
  const words = {
    none: 'none (wired or busy pages sit on no queue)',
    free: 'the free list',
    active: 'active: recently used',
    inactive: 'inactive: a candidate for paging out',
  };
  return words[q] ?? q;
}

function mappingWords(maps) {
  if (maps.length === 0) return 'no process maps it';
  const words = maps
    .slice(0, 4)
    .map(
      (m) =>
        `${m.pid >= 0 ? `process ${m.pid}` : 'a process'} at 0x${m.va.toString(16)} (${m.writable ? 'writable' : 'read-only'})`,
    );
  if (maps.length > 4) words.push(`and ${maps.length - 4} more`);
  return words.join('; ');
}

function eventWords(frame) {
  const list = history.get(frame);
  if (list === undefined) return 'nothing seen yet';
  return list
    .slice()
    .reverse()
    .map((ev) => `${since(ev.time)} ${traceWords(ev)}`)
    .join('; ');
}

// ---------------------------------------------------------------------------------------------
// for scripts and tests: where a frame's cell is on the screen now, in the view showing

window.pageMap = {
  cellRect(frame) {
    if (view.tab === 'focus') {
      const c = focusCell(frame);
      if (c === null) return null;
      const r = $('focus').getBoundingClientRect();
      return {
        x: r.left + c.x,
        y: r.top + c.y,
        width: focus.cell - 1,
        height: focus.cell - 1,
        view: 'focus',
      };
    }
    const r = $('map').getBoundingClientRect();
    const x = r.left + (frame % view.cols) * view.cell;
    return {
      x,
      y: r.top + Math.floor(frame / view.cols) * view.cell,
      width: view.cell,
      height: view.cell,
      view: 'all',
    };
  },
  // the frames marked as come in by page transfer
  marked() {
    const out = [];
    for (let f = 0; f < view.frames; f++) if (isArrived(f)) out.push(f);
    return out;
  },
  goTo,
};

connect();
