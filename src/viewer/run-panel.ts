/// <reference lib="dom" />
// The run panel: model facts, status line, progress bar, error box and timings.

import type { Elements } from './dom.js';
import { compact } from './format.js';
import { GatewayError } from './transport.js';
import { timingRows, type Model, type Run } from './state.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** "loading 5/12 layers, 120 / 475 MiB (25%)", "failed (CHECKPOINT_INVALID)" or "ready". */
export function modelStatusText(m: Model): string {
  const p = m.progress;
  if (m.status === 'FAILED') return `failed (${m.error?.code ?? 'INTERNAL'})`;
  if (m.status === 'READY') return 'ready';
  if (p.layersTotal === null || p.bytesTotal === null) return 'waiting to load';
  return `loading ${p.layersBuilt}/${p.layersTotal} layers, ${mib(p.bytesMapped)} / ${mib(p.bytesTotal)} (${Math.round(100 * (p.fraction ?? 0))}%)`;
}

export function renderModelInfo(ui: Elements, m: Model | undefined): void {
  ui.modelInfo.replaceChildren();
  if (!m) return;
  // Weights' dtype and the type the graphs compute in (computeType: only from servers that have it).
  const compute = (m as { computeType?: string | null }).computeType;
  const chips: Array<[string, boolean?]> = [];
  if (m.status !== 'READY') chips.push([modelStatusText(m), true]);
  if (m.modelType !== null) {
    chips.push(
      [m.modelType],
      [`${m.numLayers} layers`],
      [`d ${m.hiddenSize}`],
      [`vocab ${m.vocabSize?.toLocaleString('en-US')}`],
      [`${m.parameters === null ? '?' : compact(m.parameters)} params`],
      [compute ? `${m.dtype} → ${compute}` : (m.dtype ?? '?')],
      [`device: ${m.device}`, m.deviceNote != null],
    );
  }
  for (const [text, warn] of chips) {
    const s = document.createElement('span');
    s.className = warn ? 'chip warn' : 'chip';
    s.textContent = text;
    if (warn && m.deviceNote) s.title = m.deviceNote;
    if (warn && m.error) s.title = m.error.message;
    ui.modelInfo.append(s);
  }
  // The note can be long (a library path); it sits under the run panel rather than in the header.
  ui.deviceNote.textContent = m.deviceNote ?? '';
  ui.deviceNote.hidden = !m.deviceNote;
}

/** What to tell the user about an API-key refusal, before the server's own message; null for other errors. */
export function keyAdvice(err: GatewayError): string | null {
  switch (err.code) {
    case 'UNAUTHENTICATED':
      return 'This server needs an API key: enter yours in the API key field of the Run panel (kept for this browser session only).';
    case 'FORBIDDEN':
      return 'Your API key is not allowed to do this.';
    case 'RATE_LIMITED':
      return `Your API key is over its request rate${err.retryAfter ? `: retry in ${err.retryAfter} s` : '; retry in a moment'}.`;
    default:
      return null;
  }
}

export function showError(ui: Elements, err: unknown): void {
  const code = err instanceof GatewayError ? err.code : 'ERROR';
  const message = err instanceof Error ? err.message : String(err);
  const advice = err instanceof GatewayError ? keyAdvice(err) : null;
  const c = document.createElement('code');
  c.textContent = code;
  const nodes: Node[] = [c];
  if (advice) {
    const strong = document.createElement('strong');
    strong.textContent = advice;
    nodes.push(strong, document.createTextNode(` (${message})`));
  } else nodes.push(document.createTextNode(message));
  ui.error.replaceChildren(...nodes);
  ui.error.dataset.code = code;
  ui.error.hidden = false;
  // A key that is missing or unknown: the field says so, and the cursor goes there.
  const keyWrong = code === 'UNAUTHENTICATED';
  ui.apiKey.setAttribute('aria-invalid', String(keyWrong));
  if (keyWrong) ui.apiKey.focus();
}

export function clearError(ui: Elements): void {
  ui.error.hidden = true;
  ui.error.replaceChildren();
  delete ui.error.dataset.code;
}

export function setRunning(ui: Elements, running: boolean): void {
  ui.run.disabled = running;
  ui.stop.disabled = !running;
  ui.progress.hidden = !running;
}

export function setProgress(ui: Elements, done: number, total: number): void {
  (ui.progress.firstElementChild as HTMLElement).style.width = `${total ? (100 * done) / total : 0}%`;
}

export function renderTimings(ui: Elements, run: Run | null, model: Model | undefined): void {
  ui.timings.replaceChildren();
  if (!run) return;
  for (const [k, v] of timingRows(run, model)) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    ui.timings.append(dt, dd);
  }
}
