/// <reference lib="dom" />
// Comparison mode: the lensCompare grid. Rows are paired layers (last on top), columns the aligned
// positions; each cell shows a's and b's top-1 and is coloured by the Jensen–Shannon divergence
// (0 … ln 2, darker = the two distributions disagree more); a red frame marks a different top-1.

import type { LensComparison } from '../lens/compare.js';
import { cellColors } from './colors.js';

/** Query.lensCompare's numbers (src/lens/compare.ts), with each side's tokens and decoded top-1. */
export interface ComparisonView extends Omit<LensComparison, 'top1A' | 'top1B'> {
  tokensA: Array<{ text: string; generated: boolean }>;
  tokensB: Array<{ text: string; generated: boolean }>;
  /** [layerIndex][position] decoded top-1 and its probability, for each side. */
  top1A: Array<Array<{ token: string; prob: number }>>;
  top1B: Array<Array<{ token: string; prob: number }>>;
}

const show = (s: string) => s.replace(/ /g, '·').replace(/\n/g, '↵');

function tokenLabel(a: { text: string; generated: boolean }, b: { text: string; generated: boolean }, same: boolean): HTMLElement {
  const th = document.createElement('th');
  th.scope = 'col';
  const line = (t: { text: string; generated: boolean }, cls: string) => {
    const s = document.createElement('span');
    s.className = `tok ${cls}${t.generated ? ' generated' : ''}`;
    s.textContent = show(t.text);
    s.title = `${JSON.stringify(t.text)}${t.generated ? ' (generated)' : ''}`;
    return s;
  };
  th.append(line(a, 'a'));
  if (!same) th.append(line(b, 'b'));
  else {
    const s = document.createElement('span');
    s.className = 'tok same';
    s.textContent = '=';
    s.title = 'same token in b';
    th.append(s);
  }
  return th;
}

/** Replaces `wrap`'s content with the comparison grid; returns the table. */
export function renderComparison(wrap: HTMLElement, c: ComparisonView, labels: { a: string; b: string }): HTMLTableElement {
  const table = document.createElement('table');
  table.className = 'heatmap compare';
  table.id = 'compare';
  table.setAttribute('aria-label', `Comparison of ${labels.a} and ${labels.b}: Jensen–Shannon divergence per paired layer and aligned position`);
  const tbody = table.createTBody();
  const order = c.layersA.map((_, li) => li).reverse();
  for (const li of order) {
    const tr = tbody.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.className = 'layer';
    th.textContent = c.layersA[li] === c.layersB[li] ? `L${c.layersA[li]}` : `L${c.layersA[li]}↔${c.layersB[li]}`;
    tr.append(th);
    for (let p = 0; p < c.positions; p++) {
      const td = tr.insertCell();
      const js = c.js[li][p];
      const { bg, fg } = cellColors('rank', js / Math.LN2);
      td.style.background = bg;
      td.style.color = fg;
      td.dataset.layer = String(li);
      td.dataset.pos = String(p);
      if (c.top1Differs[li][p]) td.classList.add('differs');
      const a = c.top1A[li][p];
      const b = c.top1B[li][p];
      const top = document.createElement('span');
      top.className = 'pa';
      top.textContent = show(a.token);
      const bottom = document.createElement('span');
      bottom.className = 'pb';
      bottom.textContent = c.top1Differs[li][p] ? show(b.token) : '=';
      td.append(top, bottom);
      td.title =
        `${labels.a}: ${JSON.stringify(a.token)} ${(100 * a.prob).toFixed(1)}%\n` +
        `${labels.b}: ${JSON.stringify(b.token)} ${(100 * b.prob).toFixed(1)}%\n` +
        `JS ${js.toFixed(4)} · KL(a‖b) ${c.kl[li][p].toFixed(4)} · KL(b‖a) ${c.klReverse[li][p].toFixed(4)} nats`;
    }
  }
  const foot = table.createTFoot().insertRow();
  const corner = document.createElement('th');
  corner.className = 'layer';
  corner.textContent = 'a / b →';
  foot.append(corner);
  for (let p = 0; p < c.positions; p++) foot.append(tokenLabel(c.tokensA[p], c.tokensB[p], c.sameToken[p]));
  wrap.replaceChildren(table);
  return table;
}
