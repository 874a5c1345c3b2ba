/// <reference lib="dom" />
// The lensgate viewer: pick a model, type a prompt, and watch the logit-lens heatmap (rows = layers,
// last on top; columns = input tokens; cell = top-1 next-token prediction) fill in layer by layer
// from Subscription.lensLayers. Bundled for the browser by serve.ts; talks GraphQL over SSE.

import {
  ModelsDocument,
  ViewerLensDocument,
  ViewerWidgetDocument,
  type LensInput,
  type LensPoint,
  type ModelsQuery,
  type ViewerLensSubscription,
} from '../client/graphql.js';
import { renderChart, type Series } from './chart.js';
import { cellColors, gradient, makeScale, type ColorMode, type Scale } from './colors.js';
import { GatewayError, query, subscribe } from './transport.js';

type Model = ModelsQuery['models'][number];
type LensEvent = ViewerLensSubscription['lensLayers'];
type Started = Extract<LensEvent, { __typename: 'LensStarted' }>;
type Completed = Extract<LensEvent, { __typename: 'LensCompleted' }>['result'];
type Token = Started['tokens'][number];
interface Pred {
  id: number;
  text: string;
  prob: number;
}

interface Row {
  layer: number;
  /** Index of `layer` among the requested layers (how stats and trajectories are indexed). */
  li: number;
  point: LensPoint;
  tds: HTMLTableCellElement[];
  /** [position] top-k, filled when the layer arrives. */
  preds: Pred[][] | null;
}

interface Run {
  input: LensInput;
  tokens: Token[];
  layers: number[];
  points: LensPoint[];
  rows: Row[];
  received: number;
  expected: number;
  result: Completed | null;
  t0: number;
  tFirst: number | null;
  tEnd: number | null;
}

interface Pin {
  position: number;
  tokenId: number;
  text: string;
  color: string;
}

const PIN_COLORS = ['#d9480f', '#2557c7', '#2b8a3e', '#ae3ec9', '#e8590c', '#0c8599', '#c2255c', '#5c940d'];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  form: $<HTMLFormElement>('controls'),
  model: $<HTMLSelectElement>('model'),
  modelInfo: $('model-info'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  run: $<HTMLButtonElement>('run'),
  stop: $<HTMLButtonElement>('stop'),
  topk: $<HTMLInputElement>('topk'),
  layers: $<HTMLInputElement>('layers'),
  track: $<HTMLInputElement>('track'),
  stats: $<HTMLInputElement>('stats'),
  attn: $<HTMLInputElement>('attn'),
  color: $<HTMLSelectElement>('color'),
  error: $('error'),
  status: $('status'),
  progress: $('progress'),
  legend: $('legend'),
  wrap: $('heatmap-wrap'),
  tooltip: $('tooltip'),
  chart: $('chart'),
  pins: $<HTMLUListElement>('pins'),
  pinsEmpty: $('pins-empty'),
  timings: $('timings'),
  exportBtn: $<HTMLButtonElement>('export'),
  deviceNote: $('device-note'),
};

let models: Model[] = [];
let run: Run | null = null;
let controller: AbortController | null = null;
let pins: Pin[] = [];
let active = { r: 0, c: 0 };
let runCount = 0;

// ---------------------------------------------------------------------------------------------
// Small helpers

function setState(state: 'idle' | 'running' | 'done' | 'error' | 'stopped'): void {
  document.body.dataset.state = state;
  document.body.dataset.runs = String(runCount);
}

function status(text: string): void {
  ui.status.textContent = text;
}

function showError(err: unknown): void {
  const code = err instanceof GatewayError ? err.code : 'ERROR';
  const message = err instanceof Error ? err.message : String(err);
  const c = document.createElement('code');
  c.textContent = code;
  ui.error.replaceChildren(c, document.createTextNode(message));
  ui.error.dataset.code = code;
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  delete ui.error.dataset.code;
}

/** Token text as nodes, with whitespace made visible (faint), since " Paris" ≠ "Paris" matters here. */
function tokenNodes(text: string): Node[] {
  if (text === '') return [faint('∅')];
  const out: Node[] = [];
  for (const part of text.split(/(\s+)/)) {
    if (part === '') continue;
    if (/^\s+$/.test(part)) out.push(faint(part.replace(/ /g, '·').replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/\r/g, '␍')));
    else out.push(document.createTextNode(part));
  }
  return out;
}

function faint(text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = 'sp';
  s.textContent = text;
  return s;
}

function quoted(text: string): string {
  return JSON.stringify(text);
}

function pct(p: number): string {
  if (p >= 0.995) return `${(p * 100).toFixed(0)}%`;
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  return p > 0 ? p.toExponential(1) : '0';
}

function ms(v: number): string {
  return v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** "0-3, 6, -1" → [0, 1, 2, 3, 6, numLayers-1]; negative numbers count from the end, as in Python. */
export function parseLayers(text: string, numLayers: number): number[] | null {
  const t = text.trim();
  if (t === '' || t === 'all') return null;
  const out: number[] = [];
  for (const part of t.split(/[\s,]+/).filter(Boolean)) {
    const range = /^(\d+)\s*(?:-|\.\.|:)\s*(\d+)$/.exec(part);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      for (let l = Math.min(a, b); l <= Math.max(a, b); l++) out.push(l);
    } else if (/^-?\d+$/.test(part)) {
      const n = Number(part);
      out.push(n < 0 ? numLayers + n : n);
    } else {
      throw new GatewayError('BAD_USER_INPUT', `layers: cannot read "${part}" (use e.g. "0-3, 6, -1")`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Models

function selectedModel(): Model | undefined {
  return models.find((m) => m.id === ui.model.value);
}

function renderModelInfo(): void {
  const m = selectedModel();
  ui.modelInfo.replaceChildren();
  if (!m) return;
  // Weights' dtype and the type the graphs compute in (computeType: only from servers that have it).
  const compute = (m as { computeType?: string }).computeType;
  const chips: Array<[string, boolean?]> = [
    [m.modelType ?? '?'],
    [`${m.numLayers ?? '?'} layers`],
    [`d ${m.hiddenSize ?? '?'}`],
    [`vocab ${m.vocabSize?.toLocaleString('en-US') ?? '?'}`],
    [`${m.parameters == null ? '?' : compact(m.parameters)} params`],
    [compute ? `${m.dtype} → ${compute}` : (m.dtype ?? '?')],
    [`device: ${m.device ?? '?'}`, m.deviceNote != null],
  ];
  for (const [text, warn] of chips) {
    const s = document.createElement('span');
    s.className = warn ? 'chip warn' : 'chip';
    s.textContent = text;
    if (warn && m.deviceNote) s.title = m.deviceNote;
    ui.modelInfo.append(s);
  }
  // The note can be long (a library path); it sits under the run panel rather than in the header.
  ui.deviceNote.textContent = m.deviceNote ?? '';
  ui.deviceNote.hidden = !m.deviceNote;
}

async function loadModels(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      models = (await query(ModelsDocument, {})).models;
    } catch (err) {
      showError(err);
      status('Could not load the model list.');
      setState('error');
      return;
    }
    if (models.some((m) => m.status === 'READY')) break;
    // The server listens before its models are loaded (/ready says 503 meanwhile).
    status(attempt === 0 ? 'Models are loading…' : `Models are loading… (${attempt * 2} s)`);
    await new Promise((r) => setTimeout(r, 2000));
  }
  const wanted = hashParams().get('model');
  ui.model.replaceChildren(
    ...models.map((m) => {
      const o = document.createElement('option');
      o.value = m.id;
      o.textContent = m.status === 'READY' ? m.id : `${m.id} (${m.status.toLowerCase()})`;
      o.disabled = m.status !== 'READY';
      return o;
    }),
  );
  ui.model.value = models.some((m) => m.id === wanted && m.status === 'READY') ? wanted! : models.find((m) => m.status === 'READY')!.id;
  ui.model.disabled = false;
  renderModelInfo();
  status('Ready.');
  setState('idle');
}

// ---------------------------------------------------------------------------------------------
// URL state (a view can be bookmarked or shared)

function hashParams(): URLSearchParams {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

function restoreFromHash(): void {
  const h = hashParams();
  if (h.has('prompt')) ui.prompt.value = h.get('prompt')!;
  if (h.has('k')) ui.topk.value = h.get('k')!;
  if (h.has('layers')) ui.layers.value = h.get('layers')!;
  if (h.has('track')) ui.track.checked = h.get('track') === '1';
  if (h.has('stats')) ui.stats.checked = h.get('stats') === '1';
  if (h.has('attn')) ui.attn.checked = h.get('attn') === '1';
  const color = h.get('color');
  if (color && [...ui.color.options].some((o) => o.value === color)) ui.color.value = color;
}

function saveToHash(): void {
  const h = new URLSearchParams({
    model: ui.model.value,
    prompt: ui.prompt.value,
    k: ui.topk.value,
    track: ui.track.checked ? '1' : '0',
    stats: ui.stats.checked ? '1' : '0',
    attn: ui.attn.checked ? '1' : '0',
    color: ui.color.value,
  });
  if (ui.layers.value.trim()) h.set('layers', ui.layers.value.trim());
  history.replaceState(null, '', `#${h.toString()}`);
}

// ---------------------------------------------------------------------------------------------
// Running the lens

function readInput(): LensInput {
  const m = selectedModel();
  if (!m) throw new GatewayError('MODEL_NOT_FOUND', 'No model is selected');
  const topK = Number(ui.topk.value);
  if (ui.topk.value.trim() === '' || !Number.isInteger(topK)) {
    throw new GatewayError('BAD_USER_INPUT', `top-k must be a whole number, got "${ui.topk.value}"`);
  }
  const points: LensPoint[] = ui.attn.checked ? ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] : ['BLOCK_OUTPUT'];
  return {
    model: m.id,
    prompt: ui.prompt.value,
    topK,
    layers: parseLayers(ui.layers.value, m.numLayers ?? 0),
    trackAcrossLayers: ui.track.checked,
    stats: ui.stats.checked,
    points,
  };
}

function setRunning(running: boolean): void {
  ui.run.disabled = running;
  ui.stop.disabled = !running;
  ui.progress.hidden = !running;
}

function progress(done: number, total: number): void {
  (ui.progress.firstElementChild as HTMLElement).style.width = `${total ? (100 * done) / total : 0}%`;
}

async function startRun(): Promise<void> {
  controller?.abort();
  clearError();
  hideTooltip();
  let input: LensInput;
  try {
    input = readInput();
  } catch (err) {
    showError(err);
    setState('error');
    return;
  }
  saveToHash();
  const abort = new AbortController();
  controller = abort;
  runCount++;
  setState('running');
  setRunning(true);
  progress(0, 1);
  status('Connecting…');
  const t0 = performance.now();
  let current: Run | null = null;
  try {
    for await (const r of subscribe(ViewerLensDocument, { input, k: input.topK }, abort.signal)) {
      if (r.errors?.length) throw GatewayError.from(r.errors);
      const ev = r.data?.lensLayers;
      if (!ev) continue;
      if (ev.__typename === 'LensStarted') {
        current = beginRun(input, ev, t0);
      } else if (ev.__typename === 'LayerResult' && current) {
        onLayer(current, ev);
      } else if (ev.__typename === 'LensCompleted' && current) {
        onCompleted(current, ev.result);
      }
    }
    if (controller !== abort) return;
    if (!current?.result) throw new GatewayError('INCOMPLETE', 'The stream ended before the result was complete');
    setState('done');
  } catch (err) {
    if (controller !== abort) return; // superseded by a newer run
    if (abort.signal.aborted) {
      status(current ? `Stopped after ${current.received} of ${current.expected} layer reads.` : 'Stopped.');
      setState('stopped');
    } else {
      showError(err);
      status(current ? `Failed after ${current.received} of ${current.expected} layer reads.` : 'Failed.');
      setState('error');
    }
  } finally {
    if (controller === abort) {
      setRunning(false);
      controller = null;
    }
  }
}

function beginRun(input: LensInput, ev: Started, t0: number): Run {
  const sameTokens =
    run != null && run.tokens.length === ev.tokens.length && run.tokens.every((t, i) => t.id === ev.tokens[i].id);
  if (!sameTokens) pins = [];
  const layersDesc = [...ev.layers].map((layer, li) => ({ layer, li })).sort((a, b) => b.layer - a.layer);
  const rows: Row[] = [];
  for (const { layer, li } of layersDesc) {
    // Last layer on top; inside a block the attention read comes before the block output, so below it.
    for (const point of ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const) {
      if (ev.points.includes(point)) rows.push({ layer, li, point, tds: [], preds: null });
    }
  }
  run = {
    input,
    tokens: ev.tokens,
    layers: ev.layers,
    points: ev.points,
    rows,
    received: 0,
    expected: rows.length,
    result: null,
    t0,
    tFirst: null,
    tEnd: null,
  };
  active = { r: 0, c: Math.max(0, ev.tokens.length - 1) };
  buildTable(run);
  renderLegend();
  renderPins();
  renderTimings();
  ui.exportBtn.disabled = true;
  status(`Running: 0 of ${rows.length} layer reads…`);
  return run;
}

function onLayer(r: Run, ev: Extract<LensEvent, { __typename: 'LayerResult' }>): void {
  const row = r.rows.find((x) => x.layer === ev.layer && x.point === ev.point);
  if (!row) return;
  r.tFirst ??= performance.now();
  row.preds = [];
  for (const cell of ev.cells) row.preds[cell.position] = cell.topk;
  r.received++;
  fillRow(r, row);
  progress(r.received, r.expected);
  status(`Running: ${r.received} of ${r.expected} layer reads (layer ${ev.layer}${ev.point === 'ATTENTION_OUTPUT' ? ' attn' : ''})…`);
  if (pins.length) renderPins();
}

function onCompleted(r: Run, result: Completed): void {
  r.result = result;
  r.tEnd = performance.now();
  recolor(r);
  renderLegend();
  renderPins();
  renderTimings();
  ui.exportBtn.disabled = false;
  progress(1, 1);
  const first = r.tFirst != null ? `, first layer after ${ms(r.tFirst - r.t0)}` : '';
  status(`Done: ${r.layers.length} layers × ${r.tokens.length} tokens in ${ms(r.tEnd - r.t0)}${first}.`);
}

// ---------------------------------------------------------------------------------------------
// Heatmap

function buildTable(r: Run): void {
  const table = document.createElement('table');
  table.className = 'heatmap';
  table.id = 'heatmap';
  table.setAttribute('role', 'grid');
  table.setAttribute('aria-label', 'Top-1 next-token prediction per layer (rows, last on top) and input position (columns)');
  const tbody = table.createTBody();
  r.rows.forEach((row, ri) => {
    const tr = tbody.insertRow();
    tr.className = row.point === 'ATTENTION_OUTPUT' ? 'attn' : 'block';
    const th = document.createElement('th');
    th.scope = 'row';
    th.className = 'layer';
    th.textContent = row.point === 'ATTENTION_OUTPUT' ? `${row.layer} attn` : `L${row.layer}`;
    th.title = row.point === 'ATTENTION_OUTPUT' ? `Layer ${row.layer}, after its attention sub-layer` : `After block ${row.layer}`;
    tr.append(th);
    r.tokens.forEach((_, p) => {
      const td = tr.insertCell();
      td.className = 'pending';
      td.setAttribute('role', 'gridcell');
      td.dataset.layer = String(row.layer);
      td.dataset.point = row.point;
      td.dataset.pos = String(p);
      td.dataset.row = String(ri);
      td.tabIndex = ri === active.r && p === active.c ? 0 : -1;
      td.setAttribute('aria-label', `layer ${row.layer}, position ${p}: waiting`);
      row.tds.push(td);
    });
  });
  const foot = table.createTFoot().insertRow();
  const corner = document.createElement('th');
  corner.className = 'layer';
  corner.textContent = 'input →';
  foot.append(corner);
  r.tokens.forEach((t) => {
    const th = document.createElement('th');
    th.scope = 'col';
    const tok = document.createElement('span');
    tok.className = 'tok';
    tok.append(...tokenNodes(t.text));
    tok.title = `${quoted(t.text)} (id ${t.id})`;
    const pos = document.createElement('span');
    pos.className = 'pos';
    pos.textContent = String(t.position);
    th.append(tok, pos);
    foot.append(th);
  });
  ui.wrap.replaceChildren(table);
  fitCells();
  // Long prompts scroll sideways; start at the end, where the prediction being studied usually is.
  ui.wrap.scrollLeft = ui.wrap.scrollWidth;
}

/** Cells share the panel's width (readable tokens for short prompts), scrolling past a minimum. */
function fitCells(): void {
  const table = document.getElementById('heatmap');
  if (!table || !run) return;
  const label = 64;
  const w = Math.floor((ui.wrap.clientWidth - label) / Math.max(1, run.tokens.length)) - 3;
  table.style.setProperty('--cell-w', `${Math.max(62, Math.min(150, w))}px`);
}

/** The stats of the read a row shows: block output, or the read right after attention. */
function rowStats(r: Run, row: Row) {
  return row.point === 'BLOCK_OUTPUT' ? r.result?.stats : r.result?.attention?.stats;
}

function statValue(r: Run, row: Row, p: number, mode: ColorMode): number | null {
  const s = rowStats(r, row);
  if (!s) return null;
  if (mode === 'entropy') return s.entropy[row.li][p];
  if (mode === 'kl') return s.klToFinal[row.li][p];
  if (mode === 'rank') return s.finalTop1Rank[row.li][p];
  return null;
}

/** The mode the cells can actually show now: stat modes need stats, which come with the last event. */
function effectiveMode(r: Run | null): ColorMode {
  const want = ui.color.value as ColorMode;
  if (want === 'prob' || !r?.result?.stats) return 'prob';
  return want;
}

function currentScale(r: Run | null): Scale {
  const mode = effectiveMode(r);
  let max = 0;
  if (r && mode !== 'prob') {
    for (const row of r.rows) {
      for (let p = 0; p < r.tokens.length; p++) max = Math.max(max, statValue(r, row, p, mode) ?? 0);
    }
  }
  return makeScale(mode, max);
}

function paintCell(r: Run, row: Row, p: number, scale: Scale): void {
  const td = row.tds[p];
  const preds = row.preds?.[p];
  if (!preds) return;
  let value: number | null = preds[0].prob;
  if (scale.mode !== 'prob') value = statValue(r, row, p, scale.mode);
  td.classList.toggle('nostat', value == null);
  if (value == null) {
    td.style.background = '';
    td.style.color = '';
    return;
  }
  const { bg, fg } = cellColors(scale.mode, scale.toT(value));
  td.style.background = bg;
  td.style.color = fg;
}

function fillRow(r: Run, row: Row): void {
  const scale = currentScale(r);
  row.tds.forEach((td, p) => {
    const preds = row.preds?.[p];
    if (!preds?.length) return;
    const top = preds[0];
    td.classList.remove('pending');
    td.replaceChildren(...tokenNodes(top.text));
    td.dataset.token = top.text;
    td.dataset.tokenId = String(top.id);
    td.dataset.prob = String(top.prob);
    // Teacher-forced view: mark where the layer already predicts the prompt's actual next token.
    td.classList.toggle('hit', p + 1 < r.tokens.length && r.tokens[p + 1].id === top.id);
    const where = row.point === 'ATTENTION_OUTPUT' ? `layer ${row.layer} attention` : `layer ${row.layer}`;
    td.setAttribute('aria-label', `${where}, after ${quoted(r.tokens[p].text)}: ${quoted(top.text)} ${pct(top.prob)}`);
    paintCell(r, row, p, scale);
  });
  markPinned();
}

function recolor(r: Run): void {
  const scale = currentScale(r);
  for (const row of r.rows) for (let p = 0; p < r.tokens.length; p++) paintCell(r, row, p, scale);
}

function renderLegend(): void {
  const scale = currentScale(run);
  const wanted = ui.color.value as ColorMode;
  const bar = document.createElement('div');
  bar.className = 'bar';
  bar.style.background = gradient(scale.mode);
  const ticks = document.createElement('div');
  ticks.className = 'ticks';
  for (const t of scale.ticks) {
    const s = document.createElement('span');
    s.textContent = t;
    ticks.append(s);
  }
  const box = document.createElement('div');
  box.className = 'scale';
  box.append(bar, ticks);
  const title = document.createElement('span');
  let note = '';
  if (wanted !== scale.mode) note = ui.stats.checked ? ' (stats arrive when the run completes)' : ' (turn on stats for this mode)';
  title.textContent = scale.title + note;
  ui.legend.replaceChildren(title, box);
}

function cellAt(target: EventTarget | null): HTMLTableCellElement | null {
  const td = (target as HTMLElement | null)?.closest?.('td');
  return td && td.closest('#heatmap') ? (td as HTMLTableCellElement) : null;
}

function rowOf(td: HTMLTableCellElement): Row | undefined {
  return run?.rows[Number(td.dataset.row)];
}

// ---------------------------------------------------------------------------------------------
// Tooltip

function showTooltip(td: HTMLTableCellElement): void {
  const r = run;
  const row = rowOf(td);
  const p = Number(td.dataset.pos);
  const preds = row?.preds?.[p];
  if (!r || !row || !preds) return hideTooltip();
  const head = document.createElement('div');
  head.className = 'tt-head';
  const where = row.point === 'ATTENTION_OUTPUT' ? `layer ${row.layer} · after attention` : `layer ${row.layer}`;
  const b = document.createElement('b');
  b.append(...tokenNodes(r.tokens[p].text));
  head.append(`${where} · position ${p} · next after `, b);
  const list = document.createElement('ol');
  for (const pred of preds) {
    const li = document.createElement('li');
    const t = document.createElement('span');
    t.className = 't';
    const barEl = document.createElement('i');
    barEl.style.width = `${Math.max(1, pred.prob * 100)}%`;
    const label = document.createElement('span');
    label.append(...tokenNodes(pred.text));
    t.append(barEl, label);
    const pr = document.createElement('span');
    pr.className = 'p';
    pr.textContent = pct(pred.prob);
    li.append(t, pr);
    list.append(li);
  }
  ui.tooltip.replaceChildren(head, list);
  const s = rowStats(r, row);
  if (s) {
    const st = document.createElement('div');
    st.className = 'tt-stats';
    const rank = s.finalTop1Rank[row.li][p];
    st.textContent =
      `entropy ${s.entropy[row.li][p].toFixed(3)} nats · KL to final ${s.klToFinal[row.li][p].toFixed(3)} nats · ` +
      `final top-1 ${rank === 0 ? 'is top-1 here' : `ranks ${rank} here`}`;
    ui.tooltip.append(st);
  }
  ui.tooltip.hidden = false;
  const rect = td.getBoundingClientRect();
  const tip = ui.tooltip.getBoundingClientRect();
  // Right of the cell while that stays over the heatmap (the side panels hold the pins), else left.
  const edge = Math.min(window.innerWidth, ui.wrap.getBoundingClientRect().right + 24);
  let x = rect.right + 8;
  if (x + tip.width > edge - 8) x = Math.max(8, rect.left - tip.width - 8);
  let y = rect.top;
  if (y + tip.height > window.innerHeight - 8) y = Math.max(8, window.innerHeight - tip.height - 8);
  ui.tooltip.style.left = `${x}px`;
  ui.tooltip.style.top = `${y}px`;
}

function hideTooltip(): void {
  ui.tooltip.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Pinned trajectories

function togglePin(td: HTMLTableCellElement): void {
  if (!run || td.classList.contains('pending') || td.dataset.tokenId == null) return;
  const position = Number(td.dataset.pos);
  const tokenId = Number(td.dataset.tokenId);
  const i = pins.findIndex((p) => p.position === position && p.tokenId === tokenId);
  if (i >= 0) pins.splice(i, 1);
  else {
    const used = new Set(pins.map((p) => p.color));
    const color = PIN_COLORS.find((c) => !used.has(c)) ?? PIN_COLORS[pins.length % PIN_COLORS.length];
    pins.push({ position, tokenId, text: td.dataset.token ?? '', color });
  }
  renderPins();
}

function markPinned(): void {
  if (!run) return;
  for (const row of run.rows) {
    row.tds.forEach((td, p) => {
      const id = Number(td.dataset.tokenId);
      td.classList.toggle('pinned', pins.some((pin) => pin.position === p && pin.tokenId === id));
    });
  }
}

/**
 * A pin's probabilities by layer: exact from `tracked` once the run completes with trajectories;
 * until then (or without them) from the streamed top-k, with gaps where the token was not in it.
 */
function pinSeries(r: Run, pin: Pin): Series {
  const points: Series['points'] = [];
  const exact = r.result?.tracked?.find((t) => t.position === pin.position);
  const exactAttn = r.result?.attention?.tracked?.find((t) => t.position === pin.position);
  const byKey = new Map(r.rows.map((row) => [`${row.point}/${row.layer}`, row]));
  for (const [li, layer] of r.layers.entries()) {
    for (const point of ['ATTENTION_OUTPUT', 'BLOCK_OUTPUT'] as const) {
      const row = byKey.get(`${point}/${layer}`);
      if (!row) continue;
      const tracked = point === 'BLOCK_OUTPUT' ? exact : exactAttn;
      let y: number | null = null;
      const j = tracked?.tokenIds.indexOf(pin.tokenId) ?? -1;
      if (tracked && j >= 0) y = tracked.probs[li][j];
      else y = row.preds?.[pin.position]?.find((q) => q.id === pin.tokenId)?.prob ?? null;
      points.push({ x: point === 'ATTENTION_OUTPUT' ? layer - 0.5 : layer, y, hollow: point === 'ATTENTION_OUTPUT' });
    }
  }
  return { color: pin.color, label: `${quoted(pin.text)} @${pin.position}`, points };
}

function renderPins(): void {
  markPinned();
  ui.pins.replaceChildren();
  ui.pinsEmpty.hidden = pins.length > 0;
  const r = run;
  if (!r || pins.length === 0) {
    ui.chart.replaceChildren();
    return;
  }
  renderChart(ui.chart, r.layers, pins.map((pin) => pinSeries(r, pin)));
  const partial = !r.result?.tracked;
  for (const pin of pins) {
    const li = document.createElement('li');
    li.className = 'pin';
    li.dataset.position = String(pin.position);
    li.dataset.tokenId = String(pin.tokenId);
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = pin.color;
    const label = document.createElement('span');
    label.className = 'label';
    label.append(...tokenNodes(pin.text));
    const small = document.createElement('small');
    small.textContent = `  at position ${pin.position} (after ${quoted(r.tokens[pin.position]?.text ?? '')})`;
    label.append(small);
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.textContent = 'remove';
    rm.setAttribute('aria-label', `Remove trajectory of ${quoted(pin.text)} at position ${pin.position}`);
    rm.addEventListener('click', () => {
      pins = pins.filter((x) => x !== pin);
      renderPins();
    });
    li.append(sw, label, rm);
    ui.pins.append(li);
  }
  if (partial) {
    const note = document.createElement('li');
    note.className = 'muted';
    note.textContent = r.result
      ? 'Trajectories were off: points show only layers where the token was in the top-k.'
      : 'Exact trajectories arrive when the run completes.';
    ui.pins.append(note);
  }
}

// ---------------------------------------------------------------------------------------------
// Timings and export

function renderTimings(): void {
  ui.timings.replaceChildren();
  const r = run;
  if (!r) return;
  const rows: Array<[string, string]> = [
    ['tokens', String(r.tokens.length)],
    ['layers', r.layers.length === selectedModel()?.numLayers ? `all ${r.layers.length}` : r.layers.join(', ')],
  ];
  const t = r.result?.timings;
  if (r.tFirst != null) rows.push(['first layer (client)', ms(r.tFirst - r.t0)]);
  if (r.tEnd != null) rows.push(['complete (client)', ms(r.tEnd - r.t0)]);
  if (t) {
    rows.push(
      ['server total', ms(t.totalMs)],
      ['queue', ms(t.queueMs)],
      ['embed', ms(t.embedMs)],
      ['blocks', ms(t.blocksMs)],
      ['lens head', ms(t.headMs)],
      ['trajectories', ms(t.trackMs)],
      ['stats', ms(t.statsMs)],
      ['batch size', String(t.batchSize)],
    );
  }
  const m = selectedModel();
  if (m && m.id === r.input.model) rows.push(['device', m.device ?? '?']);
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    ui.timings.append(dt, dd);
  }
}

async function exportWidget(): Promise<void> {
  const id = run?.result?.id;
  if (!id) return;
  try {
    const res = await query(ViewerWidgetDocument, { id });
    if (!res.lensResult) throw new GatewayError('NOT_FOUND', 'The server no longer holds this result; run it again');
    const blob = new Blob([JSON.stringify(res.lensResult.widget)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `logit-lens-${id}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) {
    showError(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Events

function focusCell(r: number, c: number): void {
  const cur = run;
  if (!cur || cur.rows.length === 0) return;
  r = Math.max(0, Math.min(cur.rows.length - 1, r));
  c = Math.max(0, Math.min(cur.tokens.length - 1, c));
  cur.rows[active.r]?.tds[active.c]?.setAttribute('tabindex', '-1');
  active = { r, c };
  const td = cur.rows[r].tds[c];
  td.tabIndex = 0;
  td.focus();
}

function wire(): void {
  ui.form.addEventListener('submit', (e) => {
    e.preventDefault();
    void startRun();
  });
  ui.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !e.shiftKey)) {
      // Enter runs (Shift+Enter for a newline), as in a chat box: prompts are usually one line.
      e.preventDefault();
      void startRun();
    }
  });
  ui.stop.addEventListener('click', () => controller?.abort());
  ui.model.addEventListener('change', renderModelInfo);
  ui.color.addEventListener('change', () => {
    if (run) recolor(run);
    renderLegend();
    saveToHash();
  });
  ui.stats.addEventListener('change', renderLegend);
  ui.exportBtn.addEventListener('click', () => void exportWidget());

  ui.wrap.addEventListener('mouseover', (e) => {
    const td = cellAt(e.target);
    if (td) showTooltip(td);
  });
  ui.wrap.addEventListener('mouseleave', hideTooltip);
  ui.wrap.addEventListener('focusin', (e) => {
    const td = cellAt(e.target);
    if (!td) return;
    active = { r: Number(td.dataset.row), c: Number(td.dataset.pos) };
    showTooltip(td);
  });
  ui.wrap.addEventListener('focusout', hideTooltip);
  ui.wrap.addEventListener('click', (e) => {
    const td = cellAt(e.target);
    if (!td) return;
    focusCell(Number(td.dataset.row), Number(td.dataset.pos));
    togglePin(td);
  });
  ui.wrap.addEventListener('keydown', (e) => {
    const td = cellAt(e.target);
    if (!td) return;
    const moves: Record<string, [number, number]> = {
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
      ArrowLeft: [0, -1],
      ArrowRight: [0, 1],
    };
    if (moves[e.key]) {
      e.preventDefault();
      focusCell(active.r + moves[e.key][0], active.c + moves[e.key][1]);
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      focusCell(active.r, e.key === 'Home' ? 0 : Infinity);
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      togglePin(td);
    } else if (e.key === 'Escape') {
      hideTooltip();
    }
  });
  window.addEventListener('scroll', hideTooltip, { passive: true });
  window.addEventListener('resize', fitCells);
}

async function main(): Promise<void> {
  restoreFromHash();
  wire();
  renderLegend();
  await loadModels();
  // Show something worth looking at straight away: the default prompt on the default model.
  if (models.length && ui.prompt.value.trim() && hashParams().get('autorun') !== '0') await startRun();
}

main().catch((err: unknown) => {
  showError(err);
  setState('error');
});
