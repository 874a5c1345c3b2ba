/// <reference lib="dom" />
// The tooltip of a heatmap cell: the top-k of that read and, with stats, its entropy, KL and rank.

import { tokenNodes } from './dom.js';
import { pct } from './format.js';
import { rowStats, type Run } from './state.js';

export function showTooltip(tooltip: HTMLElement, wrap: HTMLElement, td: HTMLTableCellElement, run: Run | null): void {
  const row = run?.rows[Number(td.dataset.row)];
  const p = Number(td.dataset.pos);
  const preds = row?.preds?.[p];
  if (!run || !row || !preds) return hideTooltip(tooltip);
  const head = document.createElement('div');
  head.className = 'tt-head';
  const where = row.point === 'ATTENTION_OUTPUT' ? `layer ${row.layer} · after attention` : `layer ${row.layer}`;
  const b = document.createElement('b');
  b.append(...tokenNodes(run.tokens[p].text));
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
  tooltip.replaceChildren(head, list);
  const s = rowStats(run, row);
  if (s) {
    const st = document.createElement('div');
    st.className = 'tt-stats';
    const rank = s.finalTop1Rank[row.li][p];
    st.textContent =
      `entropy ${s.entropy[row.li][p].toFixed(3)} nats · KL to final ${s.klToFinal[row.li][p].toFixed(3)} nats · ` +
      `final top-1 ${rank === 0 ? 'is top-1 here' : `ranks ${rank} here`}`;
    tooltip.append(st);
  }
  tooltip.hidden = false;
  const rect = td.getBoundingClientRect();
  const tip = tooltip.getBoundingClientRect();
  // Right of the cell while that stays over the heatmap (the side panels hold the pins), else left.
  const edge = Math.min(window.innerWidth, wrap.getBoundingClientRect().right + 24);
  let x = rect.right + 8;
  if (x + tip.width > edge - 8) x = Math.max(8, rect.left - tip.width - 8);
  let y = rect.top;
  if (y + tip.height > window.innerHeight - 8) y = Math.max(8, window.innerHeight - tip.height - 8);
  tooltip.style.left = `${x}px`;
  tooltip.style.top = `${y}px`;
}

export function hideTooltip(tooltip: HTMLElement): void {
  tooltip.hidden = true;
}
