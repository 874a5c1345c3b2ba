/// <reference lib="dom" />
// A small SVG line chart: probability (0–1) against layer. Gaps (null) break the line, which is how
// a token that left the top-k shows up when trajectories were not requested.

export interface Series {
  color: string;
  label: string;
  /** Points sorted by x; y null = unknown at that x. `hollow` marks attention sub-layer reads. */
  points: Array<{ x: number; y: number | null; hollow?: boolean }>;
}

const SVG = 'http://www.w3.org/2000/svg';
const W = 320;
const H = 190;
const M = { left: 34, right: 10, top: 10, bottom: 28 };

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export function renderChart(host: HTMLElement, layers: number[], series: Series[]): void {
  host.replaceChildren();
  if (layers.length === 0 || series.length === 0) return;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const x0 = Math.min(layers[0], ...xs);
  const x1 = Math.max(layers[layers.length - 1], ...xs);
  const sx = (x: number) => M.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const sy = (y: number) => M.top + (1 - y) * (H - M.top - M.bottom);

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  svg.setAttribute('aria-label', `Probability by layer for ${series.map((s) => s.label).join(', ')}`);
  for (const y of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el('line', { class: y === 0 ? 'axis' : 'grid', x1: M.left, x2: W - M.right, y1: sy(y), y2: sy(y) }));
    const t = el('text', { x: M.left - 5, y: sy(y) + 4, 'text-anchor': 'end' });
    t.textContent = String(y);
    svg.append(t);
  }
  const step = Math.max(1, Math.ceil(layers.length / 12));
  layers.forEach((l, i) => {
    if (i % step !== 0 && i !== layers.length - 1) return;
    const t = el('text', { x: sx(l), y: H - M.bottom + 14, 'text-anchor': 'middle' });
    t.textContent = String(l);
    svg.append(t);
  });
  const xl = el('text', { x: (M.left + W - M.right) / 2, y: H - 2, 'text-anchor': 'middle' });
  xl.textContent = 'layer';
  svg.append(xl);

  for (const s of series) {
    let d = '';
    let pen = false;
    for (const p of s.points) {
      if (p.y == null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;
      pen = true;
    }
    svg.append(el('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
    for (const p of s.points) {
      if (p.y == null) continue;
      const dot = el('circle', {
        cx: sx(p.x),
        cy: sy(p.y),
        r: p.hollow ? 2.5 : 3,
        fill: p.hollow ? '#fff' : s.color,
        stroke: s.color,
        'stroke-width': 1.5,
      });
      const title = el('title', {});
      title.textContent = `${s.label} · ${p.hollow ? `${Math.ceil(p.x)} attn` : `layer ${p.x}`}: ${(p.y * 100).toFixed(1)}%`;
      dot.append(title);
      svg.append(dot);
    }
  }
  host.append(svg);
}
