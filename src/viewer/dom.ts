/// <reference lib="dom" />
// Small DOM helpers the view modules share.

/** Token text as nodes, with whitespace made visible (faint), since " Paris" ≠ "Paris" matters here. */
export function tokenNodes(text: string): Node[] {
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

/** The page's controls and panels, found under `root` by id (see index.html). */
export function findElements(root: ParentNode) {
  const get = <T extends HTMLElement = HTMLElement>(id: string): T => {
    const el = root.querySelector<T>(`#${id}`);
    if (!el) throw new Error(`viewer: #${id} is missing from the page`);
    return el;
  };
  return {
    form: get<HTMLFormElement>('controls'),
    model: get<HTMLSelectElement>('model'),
    modelInfo: get('model-info'),
    subtitle: get('subtitle'),
    heatmapTitle: get('heatmap-title'),
    prompt: get<HTMLTextAreaElement>('prompt'),
    run: get<HTMLButtonElement>('run'),
    stop: get<HTMLButtonElement>('stop'),
    lens: get<HTMLSelectElement>('lens'),
    topk: get<HTMLInputElement>('topk'),
    layers: get<HTMLInputElement>('layers'),
    track: get<HTMLInputElement>('track'),
    stats: get<HTMLInputElement>('stats'),
    attn: get<HTMLInputElement>('attn'),
    generate: get<HTMLInputElement>('generate'),
    compare: get<HTMLInputElement>('compare'),
    compareRow: get('compare-row'),
    modelB: get<HTMLSelectElement>('model-b'),
    promptB: get<HTMLTextAreaElement>('prompt-b'),
    color: get<HTMLSelectElement>('color'),
    error: get('error'),
    status: get('status'),
    progress: get('progress'),
    legend: get('legend'),
    wrap: get('heatmap-wrap'),
    tooltip: get('tooltip'),
    chart: get('chart'),
    pins: get<HTMLUListElement>('pins'),
    pinsEmpty: get('pins-empty'),
    timings: get('timings'),
    exportBtn: get<HTMLButtonElement>('export'),
    apiKey: get<HTMLInputElement>('api-key'),
    deviceNote: get('device-note'),
  };
}

export type Elements = ReturnType<typeof findElements>;
