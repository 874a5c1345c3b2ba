/// <reference lib="dom" />
// createViewer(root, transport): the viewer as a component over the page's elements under `root`.
// It holds the state (state.ts decides how it changes) and redraws the view modules; nothing
// happens until start(). app.ts is the page's entry that creates one over document.body.

import { ModelsDocument, ModelStatusDocument, ViewerCompareDocument, ViewerLensDocument, ViewerResultDocument, ViewerWidgetDocument, type LensInput } from '../client/graphql.js';
import { storedApiKey, storeApiKey } from './api-key.js';
import { gradient, type ColorMode } from './colors.js';
import { renderComparison } from './compare.js';
import { findElements } from './dom.js';
import { ms } from './format.js';
import { buildHeatmap, cellAt, fillRow, fitCells, markPinned, recolor, renderLegend, type Heatmap } from './heatmap.js';
import { clearError, modelStatusText, renderModelInfo, renderTimings, setProgress, setRunning, showError } from './run-panel.js';
import {
  applyCompleted,
  applyLayer,
  applyPosition,
  colorScale,
  compareInputs,
  lensInput,
  sameTokens,
  lensKinds,
  shownRun,
  shownSettings,
  startRun,
  storedRun,
  storedSettings,
  togglePin,
  type Model,
  type Phase,
  type Pin,
  type Run,
  type Settings,
  type Shown,
  type ViewTitle,
  viewTitle,
} from './state.js';
import { hideTooltip, showTooltip } from './tooltip.js';
import { renderTrajectories } from './trajectories.js';
import { GatewayError, type Transport } from './transport.js';
import { hashFlag, settingsFromHash, settingsToHash } from './url-state.js';

export interface ViewerState {
  settings: Settings;
  models: Model[];
  phase: Phase;
  /** Runs started so far (tests wait on it). */
  runs: number;
  run: Run | null;
  pins: Pin[];
  status: string;
  /** The headings: which lens the grid shows, generated positions, comparison mode. */
  title: ViewTitle;
}

export interface Viewer {
  /** Loads the model list, applies the URL fragment and, unless `#autorun=0`, runs the prompt. */
  start(): Promise<void>;
  getState(): ViewerState;
  /** Changes settings (the form follows) and/or pins; redraws. Does not start a run. */
  setState(patch: Partial<Settings> & { pins?: Pin[] }): void;
  /** Runs the lens for the current settings; resolves when the run ends (done, stopped or failed). */
  run(): Promise<void>;
  stop(): void;
  destroy(): void;
}

export function createViewer(root: HTMLElement, transport: Transport): Viewer {
  const ui = findElements(root);
  let models: Model[] = [];
  let phase: Phase = 'loading';
  let runs = 0;
  let current: Run | null = null;
  let heatmap: Heatmap | null = null;
  let pins: Pin[] = [];
  let active = { r: 0, c: 0 };
  let controller: AbortController | null = null;
  /** What the grid shows (null before anything is): the headings describe it. */
  let shown: Shown | null = null;
  const cleanup: Array<() => void> = [];

  function readSettings(): Settings {
    return {
      model: ui.model.value,
      prompt: ui.prompt.value,
      topK: ui.topk.value,
      layers: ui.layers.value,
      track: ui.track.checked,
      stats: ui.stats.checked,
      attn: ui.attn.checked,
      color: ui.color.value as ColorMode,
      generate: ui.generate.value,
      compare: ui.compare.checked,
      modelB: ui.modelB.value,
      promptB: ui.promptB.value,
      lens: ui.lens.value,
    };
  }

  function writeSettings(s: Partial<Settings>): void {
    if (s.model !== undefined && models.some((m) => m.id === s.model)) ui.model.value = s.model;
    if (s.prompt !== undefined) ui.prompt.value = s.prompt;
    if (s.topK !== undefined) ui.topk.value = s.topK;
    if (s.layers !== undefined) ui.layers.value = s.layers;
    if (s.track !== undefined) ui.track.checked = s.track;
    if (s.stats !== undefined) ui.stats.checked = s.stats;
    if (s.attn !== undefined) ui.attn.checked = s.attn;
    if (s.color !== undefined && [...ui.color.options].some((o) => o.value === s.color)) ui.color.value = s.color;
    if (s.generate !== undefined) ui.generate.value = s.generate;
    if (s.compare !== undefined) ui.compare.checked = s.compare;
    if (s.modelB !== undefined && models.some((m) => m.id === s.modelB)) ui.modelB.value = s.modelB;
    if (s.promptB !== undefined) ui.promptB.value = s.promptB;
    ui.compareRow.hidden = !ui.compare.checked;
    if (s.model !== undefined) fillLenses();
    if (s.lens !== undefined && [...ui.lens.options].some((o) => o.value === s.lens)) ui.lens.value = s.lens;
  }

  /** The lens picker offers the kinds the selected model serves; the choice survives a model switch when it can. */
  function fillLenses(): void {
    const keep = ui.lens.value;
    const names: Record<string, string> = { LOGIT: 'logit', TUNED: 'tuned', JACOBIAN: 'Jacobian' };
    ui.lens.replaceChildren(
      ...lensKinds(selectedModel()).map((k) => {
        const o = document.createElement('option');
        o.value = k;
        o.textContent = names[k] ?? k;
        return o;
      }),
    );
    ui.lens.value = [...ui.lens.options].some((o) => o.value === keep) ? keep : 'LOGIT';
    ui.lens.disabled = ui.lens.options.length < 2;
  }

  const selectedModel = () => models.find((m) => m.id === ui.model.value);
  const wantedColor = () => ui.color.value as ColorMode;

  function setPhase(next: Phase): void {
    phase = next;
    root.dataset.state = next;
    root.dataset.runs = String(runs);
  }

  function status(text: string): void {
    ui.status.textContent = text;
  }

  /** The settings, plus `result=<id>` while the view shows a completed result (a link that reopens it). */
  function saveToHash(resultId?: string): void {
    const hash = settingsToHash(readSettings());
    history.replaceState(null, '', resultId ? `${hash}&result=${encodeURIComponent(resultId)}` : hash);
  }

  /** Opens a stored result by id (the `#result=<id>` link) without running the model. */
  async function openStored(id: string): Promise<void> {
    controller?.abort();
    clearError(ui);
    hideTooltip(ui.tooltip);
    runs++;
    setPhase('running');
    status(`Opening stored result ${id}…`);
    try {
      const res = await transport.query(ViewerResultDocument, { id });
      if (!res.lensResult) {
        throw new GatewayError('NOT_FOUND', `The server holds no result ${id}: it never existed here, or was evicted to keep the store within its budget`);
      }
      const next = storedRun(res.lensResult, performance.now());
      writeSettings(storedSettings(next, models.find((m) => m.id === next.input.model)?.numLayers ?? undefined));
      renderModelInfo(ui, selectedModel());
      present(next);
      const scale = colorScale(next, wantedColor());
      next.rows.forEach((_, ri) => fillRow(heatmap!, next, ri, scale, pins));
      drawColors();
      drawPins();
      renderTimings(ui, next, selectedModel());
      ui.exportBtn.disabled = false;
      setProgress(ui, 1, 1);
      saveToHash(id);
      status(`Stored result ${id}: ${next.layers.length} layers × ${next.tokens.length} tokens (opened from the server's store, not recomputed).`);
      setPhase('done');
    } catch (err) {
      showError(ui, err);
      status('Could not open the stored result.');
      setPhase('error');
    }
  }

  function drawLegend(): void {
    renderLegend(ui.legend, colorScale(current, wantedColor()), wantedColor(), ui.stats.checked);
  }

  function drawPins(): void {
    if (heatmap) markPinned(heatmap, pins);
    renderTrajectories(ui, current, pins, (pin) => {
      pins = pins.filter((x) => x !== pin);
      drawPins();
    });
  }

  function drawColors(): void {
    if (heatmap && current) recolor(heatmap, current, colorScale(current, wantedColor()));
    drawLegend();
  }

  /** The headings name what the grid shows; before anything is shown, what Run would show. */
  function heading(): ViewTitle {
    const settings = readSettings();
    return viewTitle(shown ?? shownSettings(settings, selectedModel(), models.find((m) => m.id === settings.modelB)));
  }

  function drawHeading(): void {
    const t = heading();
    ui.subtitle.textContent = t.subtitle;
    ui.heatmapTitle.textContent = t.panel;
    document.title = t.document;
  }

  const isReady = (m: Model) => m.status === 'READY';

  /** Options for every configured model, in both pickers (a and the comparison's b); only READY ones can be picked. */
  function renderModelOptions(): void {
    const options = () =>
      models.map((m) => {
        const o = document.createElement('option');
        o.value = m.id;
        o.textContent = isReady(m) ? m.id : `${m.id} — ${modelStatusText(m)}`;
        o.disabled = !isReady(m);
        return o;
      });
    for (const select of [ui.model, ui.modelB]) {
      const keep = select.value;
      select.replaceChildren(...options());
      if (models.some((m) => m.id === keep && isReady(m))) select.value = keep;
    }
  }

  /** While no model serves yet: the loading one's progress in the status line and the bar. */
  function renderLoading(): void {
    const loading = models.find((m) => m.status === 'LOADING' && m.progress.layersTotal !== null) ?? models.find((m) => m.status === 'LOADING');
    if (!loading) return;
    status(`Loading ${loading.id}: ${modelStatusText(loading)}`);
    // Shown (not selectable) so the header says which model this is and what it will be.
    ui.model.value = loading.id;
    renderModelInfo(ui, loading);
    ui.progress.hidden = false;
    setProgress(ui, loading.progress.fraction ?? 0, 1);
  }

  /**
   * Follows Subscription.modelStatus while models load: options and the run panel update as each
   * model gets ready or fails. Resolves once a model is READY, or when none is loading any more.
   */
  function watchModels(): Promise<void> {
    if (!models.some((m) => m.status === 'LOADING')) return Promise.resolve();
    const ac = new AbortController();
    cleanup.push(() => ac.abort());
    return new Promise<void>((resolve) => {
      void (async () => {
        try {
          for await (const ev of transport.subscribe(ModelStatusDocument, {}, ac.signal)) {
            const m = ev.data?.modelStatus;
            if (!m) continue;
            models = models.map((x) => (x.id === m.id ? m : x));
            renderModelOptions();
            if (phase === 'loading') renderLoading();
            else {
              fillLenses();
              renderModelInfo(ui, selectedModel());
            }
            if (models.some(isReady)) resolve();
          }
        } catch {
          // The list as last seen stays; a reload fetches it again.
        }
        resolve();
      })();
    });
  }

  async function loadModels(): Promise<void> {
    setPhase('loading');
    try {
      models = (await transport.query(ModelsDocument, {})).models;
    } catch (err) {
      showError(ui, err);
      status('Could not load the model list.');
      setPhase('error');
      return;
    }
    renderModelOptions();
    if (!models.some(isReady)) {
      // The server listens before its models are loaded: show how far they are.
      renderLoading();
      await watchModels();
      ui.progress.hidden = true;
    } else void watchModels();
    const ready = models.filter(isReady);
    if (!ready.length) {
      const failed = models.filter((m) => m.status === 'FAILED');
      showError(ui, new GatewayError(failed[0]?.error?.code ?? 'MODEL_FAILED', failed.length ? `No model could be loaded: ${failed.map((m) => `${m.id}: ${m.error?.message}`).join('; ')}` : 'No models are configured.'));
      status('No model is available.');
      setPhase('error');
      return;
    }
    const wanted = settingsFromHash(location.hash, readSettings()).model;
    ui.model.value = ready.some((m) => m.id === wanted) ? wanted : ready[0].id;
    ui.model.disabled = false;
    const wantedB = settingsFromHash(location.hash, readSettings()).modelB;
    ui.modelB.value = wantedB && ready.some((m) => m.id === wantedB) ? wantedB : ui.model.value;
    fillLenses();
    const wantedLens = settingsFromHash(location.hash, readSettings()).lens;
    if (wantedLens && [...ui.lens.options].some((o) => o.value === wantedLens)) ui.lens.value = wantedLens;
    renderModelInfo(ui, selectedModel());
    drawHeading();
    status('Ready.');
    setPhase('idle');
  }

  /** Puts a run on screen: a fresh grid (pins kept only over the same tokens) and its headings. */
  function present(next: Run): void {
    if (!sameTokens(current, next)) pins = [];
    current = next;
    active = { r: 0, c: Math.max(0, next.tokens.length - 1) };
    heatmap = buildHeatmap(ui.wrap, next, active);
    shown = shownRun(next);
    drawHeading();
  }

  function begin(input: LensInput, ev: Parameters<typeof startRun>[1], t0: number): Run {
    const next = startRun(input, ev, t0);
    present(next);
    drawLegend();
    drawPins();
    renderTimings(ui, next, selectedModel());
    ui.exportBtn.disabled = true;
    status(`Running: 0 of ${next.rows.length} layer reads…`);
    return next;
  }

  /**
   * One run's life, shared by lens runs and comparisons: it supersedes the previous run, shows
   * progress, and ends done, stopped (Stop) or failed. `work` returns early once superseded.
   */
  async function track(starting: string, work: (abort: AbortController) => Promise<void>, soFar: () => string = () => ''): Promise<void> {
    const abort = new AbortController();
    controller = abort;
    runs++;
    setPhase('running');
    setRunning(ui, true);
    setProgress(ui, 0, 1);
    status(starting);
    try {
      await work(abort);
      if (controller === abort) setPhase('done');
    } catch (err) {
      if (controller !== abort) return; // superseded by a newer run
      if (abort.signal.aborted) {
        status(`Stopped${soFar()}.`);
        setPhase('stopped');
      } else {
        showError(ui, err);
        status(`Failed${soFar()}.`);
        setPhase('error');
      }
    } finally {
      if (controller === abort) {
        setRunning(ui, false);
        controller = null;
      }
    }
  }

  /** Comparison mode: one lensCompare query, drawn as the JS-divergence grid. */
  async function compare(inputs: { a: LensInput; b: LensInput }, abort: AbortController): Promise<void> {
    const t0 = performance.now();
    const res = await transport.query(ViewerCompareDocument, inputs, abort.signal);
    if (controller !== abort) return;
    const c = res.lensCompare;
    current = null;
    heatmap = null;
    pins = [];
    const top1 = (cells: typeof c.a.cells) => cells.map((layer) => layer.map((cell) => ({ token: cell.token, prob: cell.prob })));
    renderComparison(
      ui.wrap,
      { ...c, tokensA: c.a.tokens, tokensB: c.b.tokens, top1A: top1(c.a.cells), top1B: top1(c.b.cells) },
      { a: `a (${c.a.model.id})`, b: `b (${c.b.model.id})` },
    );
    shown = {
      mode: 'compare',
      lensA: inputs.a.lens ?? 'LOGIT',
      lensB: inputs.b.lens ?? 'LOGIT',
      generated: c.a.tokens.filter((t) => t.generated).length,
      maxNewTokens: inputs.a.generate?.maxNewTokens ?? 0,
    };
    drawHeading();
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.background = gradient('rank');
    const ticks = document.createElement('div');
    ticks.className = 'ticks';
    for (const t of ['0', '0.35', 'ln 2']) ticks.append(Object.assign(document.createElement('span'), { textContent: t }));
    const box = document.createElement('div');
    box.className = 'scale';
    box.append(bar, ticks);
    const title = document.createElement('span');
    title.textContent = 'JS divergence a ↔ b (nats); red frame = top-1 differs';
    ui.legend.replaceChildren(title, box);
    renderTrajectories(ui, null, [], () => undefined);
    // The run panel describes lens runs; a comparison's numbers are in the grid and the status line.
    ui.timings.replaceChildren();
    ui.exportBtn.disabled = true;
    setProgress(ui, 1, 1);
    const differ = c.top1Differs.flat().filter(Boolean).length;
    status(
      `Compared: ${c.layersA.length} layers × ${c.positions} aligned positions in ${ms(performance.now() - t0)}; ` +
        `top-1 differs in ${differ} of ${c.layersA.length * c.positions} cells.`,
    );
  }

  /** A lens run: one subscription; rows fill as layers arrive, columns grow as tokens are written. */
  async function lens(input: LensInput, abort: AbortController, onStart: (r: Run) => void): Promise<void> {
    const t0 = performance.now();
    let r: Run | null = null;
    for await (const res of transport.subscribe(ViewerLensDocument, { input }, abort.signal)) {
      if (res.errors?.length) throw GatewayError.from(res.errors);
      const ev = res.data?.lensLayers;
      if (!ev) continue;
      if (ev.__typename === 'LensStarted') {
        r = begin(input, ev, t0);
        onStart(r);
      } else if (ev.__typename === 'LayerResult' && r) {
        const ri = applyLayer(r, ev, performance.now());
        if (ri < 0 || !heatmap) continue;
        fillRow(heatmap, r, ri, colorScale(r, wantedColor()), pins);
        setProgress(ui, r.received, r.expected);
        status(`Running: ${r.received} of ${r.expected} layer reads (layer ${ev.layer}${ev.point === 'ATTENTION_OUTPUT' ? ' attn' : ''})…`);
        if (pins.length) drawPins();
      } else if (ev.__typename === 'PositionResult' && r && heatmap) {
        // A written token: its column grows the grid as soon as it is computed.
        const scale = colorScale(r, wantedColor());
        if (applyPosition(r, ev, performance.now())) {
          active = { r: active.r, c: r.tokens.length - 1 };
          heatmap = buildHeatmap(ui.wrap, r, active);
          r.rows.forEach((row, ri) => row.preds && fillRow(heatmap!, r!, ri, scale, pins));
          shown = shownRun(r);
          drawHeading();
        } else {
          r.rows.forEach((row, ri) => row.point === ev.point && fillRow(heatmap!, r!, ri, scale, pins));
        }
        setProgress(ui, r.received, r.expected);
        status(`Writing: position ${ev.position} ${JSON.stringify(ev.token.text)} (${r.received} of ${r.expected} reads)…`);
        if (pins.length) drawPins();
      } else if (ev.__typename === 'LensCompleted' && r) {
        applyCompleted(r, ev.result, performance.now());
        drawColors();
        drawPins();
        renderTimings(ui, r, selectedModel());
        ui.exportBtn.disabled = false;
        setProgress(ui, 1, 1);
        const first = r.tFirst != null ? `, first layer after ${ms(r.tFirst - r.t0)}` : '';
        const gen = ev.result.generation;
        const wrote = gen ? `, ${gen.newTokens} written${gen.stoppedAtEos ? ' (stopped at EOS)' : ''}` : '';
        status(`Done: ${r.layers.length} layers × ${r.tokens.length} tokens${wrote} in ${ms(r.tEnd! - r.t0)}${first}.`);
        saveToHash(ev.result.id);
      }
    }
    if (controller !== abort) return;
    if (!r?.result) throw new GatewayError('INCOMPLETE', 'The stream ended before the result was complete');
  }

  async function run(): Promise<void> {
    controller?.abort();
    clearError(ui);
    hideTooltip(ui.tooltip);
    const settings = readSettings();
    let start: () => Promise<void>;
    try {
      if (settings.compare) {
        const inputs = compareInputs(settings, selectedModel(), models.find((m) => m.id === settings.modelB));
        start = () => track('Comparing…', (abort) => compare(inputs, abort));
      } else {
        const input = lensInput(settings, selectedModel());
        let r: Run | null = null;
        const soFar = () => (r ? ` after ${r.received} of ${r.expected} layer reads` : '');
        start = () => track('Connecting…', (abort) => lens(input, abort, (started) => (r = started)), soFar);
      }
    } catch (err) {
      showError(ui, err);
      setPhase('error');
      return;
    }
    saveToHash();
    return start();
  }

  async function exportWidget(): Promise<void> {
    const id = current?.result?.id;
    if (!id) return;
    try {
      const res = await transport.query(ViewerWidgetDocument, { id });
      if (!res.lensResult) throw new GatewayError('NOT_FOUND', 'The server no longer holds this result; run it again');
      const blob = new Blob([JSON.stringify(res.lensResult.widget)], { type: 'application/json' });
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = `logit-lens-${id}.json`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (err) {
      showError(ui, err);
    }
  }

  function focusCell(r: number, c: number): void {
    if (!current || !heatmap || current.rows.length === 0) return;
    r = Math.max(0, Math.min(current.rows.length - 1, r));
    c = Math.max(0, Math.min(current.tokens.length - 1, c));
    heatmap.cells[active.r]?.[active.c]?.setAttribute('tabindex', '-1');
    active = { r, c };
    const td = heatmap.cells[r][c];
    td.tabIndex = 0;
    td.focus();
  }

  function pinCell(td: HTMLTableCellElement): void {
    if (!current || td.classList.contains('pending') || td.dataset.tokenId == null) return;
    pins = togglePin(pins, Number(td.dataset.pos), Number(td.dataset.tokenId), td.dataset.token ?? '');
    drawPins();
  }

  function on<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, fn);
    cleanup.push(() => target.removeEventListener(type, fn));
  }

  function wire(): void {
    on(ui.form, 'submit', (e) => {
      e.preventDefault();
      void run();
    });
    on(ui.prompt, 'keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !e.shiftKey)) {
        // Enter runs (Shift+Enter for a newline), as in a chat box: prompts are usually one line.
        e.preventDefault();
        void run();
      }
    });
    on(ui.stop, 'click', () => controller?.abort());
    on(ui.model, 'change', () => {
      fillLenses();
      renderModelInfo(ui, selectedModel());
      drawHeading();
    });
    on(ui.compare, 'change', () => {
      ui.compareRow.hidden = !ui.compare.checked;
      saveToHash();
      drawHeading();
    });
    // Before anything is shown the headings follow the form (what Run would show).
    for (const input of [ui.lens, ui.generate, ui.modelB]) on(input, 'change', drawHeading);
    on(ui.color, 'change', () => {
      drawColors();
      saveToHash();
    });
    on(ui.stats, 'change', drawLegend);
    on(ui.exportBtn, 'click', () => void exportWidget());
    on(ui.apiKey, 'change', useKey);
    on(ui.apiKey, 'keydown', (e) => {
      if (e.key === 'Enter') useKey();
    });
    on(ui.wrap, 'mouseover', (e) => {
      const td = cellAt(e.target);
      if (td) showTooltip(ui.tooltip, ui.wrap, td, current);
    });
    on(ui.wrap, 'mouseleave', () => hideTooltip(ui.tooltip));
    on(ui.wrap, 'focusin', (e) => {
      const td = cellAt(e.target);
      if (!td) return;
      active = { r: Number(td.dataset.row), c: Number(td.dataset.pos) };
      showTooltip(ui.tooltip, ui.wrap, td, current);
    });
    on(ui.wrap, 'focusout', () => hideTooltip(ui.tooltip));
    on(ui.wrap, 'click', (e) => {
      const td = cellAt(e.target);
      if (!td) return;
      focusCell(Number(td.dataset.row), Number(td.dataset.pos));
      pinCell(td);
    });
    on(ui.wrap, 'keydown', (e) => {
      const td = cellAt(e.target);
      if (!td) return;
      const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      if (moves[e.key]) {
        e.preventDefault();
        focusCell(active.r + moves[e.key][0], active.c + moves[e.key][1]);
      } else if (e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        focusCell(active.r, e.key === 'Home' ? 0 : Infinity);
      } else if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        pinCell(td);
      } else if (e.key === 'Escape') {
        hideTooltip(ui.tooltip);
      }
    });
    const onScroll = () => hideTooltip(ui.tooltip);
    const onResize = () => {
      if (heatmap && current) fitCells(ui.wrap, heatmap, current.tokens.length);
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    window.addEventListener('resize', onResize);
    cleanup.push(() => window.removeEventListener('scroll', onScroll), () => window.removeEventListener('resize', onResize));
  }

  /** Loads the models, then opens the linked result or runs the prompt (the page's first steps). */
  async function boot(): Promise<void> {
    await loadModels();
    const stored = hashFlag(location.hash, 'result');
    if (stored && models.length) return openStored(stored);
    // Show something worth looking at straight away: the default prompt on the default model.
    if (models.some(isReady) && ui.prompt.value.trim() && hashFlag(location.hash, 'autorun') !== '0') await run();
  }

  /** A key typed into the Run panel: kept for the session; what the missing key stopped is done again. */
  let usedKey = storedApiKey() ?? '';
  function useKey(): void {
    const key = ui.apiKey.value.trim();
    if (key === usedKey) return;
    usedKey = key;
    storeApiKey(key);
    ui.apiKey.setAttribute('aria-invalid', 'false');
    const blocked = ui.error.dataset.code === 'UNAUTHENTICATED' || ui.error.dataset.code === 'FORBIDDEN';
    if (!blocked || phase === 'running') return;
    clearError(ui);
    if (!models.length) void boot();
    else void run();
  }

  return {
    async start() {
      writeSettings(settingsFromHash(location.hash, readSettings()));
      ui.apiKey.value = usedKey;
      wire();
      drawLegend();
      await boot();
    },
    getState: () => ({
      settings: readSettings(),
      models,
      phase,
      runs,
      run: current,
      pins,
      status: ui.status.textContent ?? '',
      title: heading(),
    }),
    setState(patch) {
      const { pins: nextPins, ...settings } = patch;
      writeSettings(settings);
      if (settings.model !== undefined) renderModelInfo(ui, selectedModel());
      if (nextPins) pins = nextPins;
      drawHeading();
      drawColors();
      drawPins();
      if (phase !== 'loading') saveToHash();
    },
    run,
    stop: () => controller?.abort(),
    destroy() {
      controller?.abort();
      for (const undo of cleanup.splice(0)) undo();
    },
  };
}
