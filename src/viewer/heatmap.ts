/// <reference lib="dom" />
// The heatmap table (rows = layer reads, last layer on top; columns = input tokens) and its legend.

import { cellColors, gradient, type ColorMode, type Scale } from './colors.js';
import { tokenNodes } from './dom.js';
import { pct, quoted } from './format.js';
import { cellValue, isPinned, type Pin, type Run } from './state.js';

/** The cells of a drawn run: cells[row][position], rows in the run's display order. */
export interface Heatmap {
  table: HTMLTableElement;
  cells: HTMLTableCellElement[][];
}

export function buildHeatmap(wrap: HTMLElement, run: Run, active: { r: number; c: number }): Heatmap {
  const table = document.createElement('table');
  table.className = 'heatmap';
  table.id = 'heatmap';
  table.setAttribute('role', 'grid');
  table.setAttribute('aria-label', 'Top-1 next-token prediction per layer (rows, last on top) and input position (columns)');
  const tbody = table.createTBody();
  const cells: HTMLTableCellElement[][] = [];
  run.rows.forEach((row, ri) => {
    const tr = tbody.insertRow();
    tr.className = row.point === 'ATTENTION_OUTPUT' ? 'attn' : 'block';
    const th = document.createElement('th');
    th.scope = 'row';
    th.className = 'layer';
    th.textContent = row.point === 'ATTENTION_OUTPUT' ? `${row.layer} attn` : `L${row.layer}`;
    th.title = row.point === 'ATTENTION_OUTPUT' ? `Layer ${row.layer}, after its attention sub-layer` : `After block ${row.layer}`;
    tr.append(th);
    const tds: HTMLTableCellElement[] = [];
    run.tokens.forEach((_, p) => {
      const td = tr.insertCell();
      td.className = 'pending';
      td.setAttribute('role', 'gridcell');
      td.dataset.layer = String(row.layer);
      td.dataset.point = row.point;
      td.dataset.pos = String(p);
      td.dataset.row = String(ri);
      td.tabIndex = ri === active.r && p === active.c ? 0 : -1;
      td.setAttribute('aria-label', `layer ${row.layer}, position ${p}: waiting`);
      tds.push(td);
    });
    cells.push(tds);
  });
  const foot = table.createTFoot().insertRow();
  const corner = document.createElement('th');
  corner.className = 'layer';
  corner.textContent = 'input →';
  foot.append(corner);
  run.tokens.forEach((t) => {
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
  wrap.replaceChildren(table);
  const map = { table, cells };
  fitCells(wrap, map, run.tokens.length);
  // Long prompts scroll sideways; start at the end, where the prediction being studied usually is.
  wrap.scrollLeft = wrap.scrollWidth;
  return map;
}

/** Cells share the panel's width (readable tokens for short prompts), scrolling past a minimum. */
export function fitCells(wrap: HTMLElement, map: Heatmap, nTokens: number): void {
  const label = 64;
  const w = Math.floor((wrap.clientWidth - label) / Math.max(1, nTokens)) - 3;
  map.table.style.setProperty('--cell-w', `${Math.max(62, Math.min(150, w))}px`);
}

function paintCell(map: Heatmap, run: Run, ri: number, p: number, scale: Scale): void {
  const row = run.rows[ri];
  if (!row.preds?.[p]) return;
  const td = map.cells[ri][p];
  const value = cellValue(run, row, p, scale);
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

export function fillRow(map: Heatmap, run: Run, ri: number, scale: Scale, pins: Pin[]): void {
  const row = run.rows[ri];
  map.cells[ri].forEach((td, p) => {
    const preds = row.preds?.[p];
    if (!preds?.length) return;
    const top = preds[0];
    td.classList.remove('pending');
    td.replaceChildren(...tokenNodes(top.text));
    td.dataset.token = top.text;
    td.dataset.tokenId = String(top.id);
    td.dataset.prob = String(top.prob);
    // Teacher-forced view: mark where the layer already predicts the prompt's actual next token.
    td.classList.toggle('hit', p + 1 < run.tokens.length && run.tokens[p + 1].id === top.id);
    const where = row.point === 'ATTENTION_OUTPUT' ? `layer ${row.layer} attention` : `layer ${row.layer}`;
    td.setAttribute('aria-label', `${where}, after ${quoted(run.tokens[p].text)}: ${quoted(top.text)} ${pct(top.prob)}`);
    paintCell(map, run, ri, p, scale);
  });
  markPinned(map, pins);
}

export function recolor(map: Heatmap, run: Run, scale: Scale): void {
  run.rows.forEach((_, ri) => {
    for (let p = 0; p < run.tokens.length; p++) paintCell(map, run, ri, p, scale);
  });
}

export function markPinned(map: Heatmap, pins: Pin[]): void {
  for (const tds of map.cells) {
    tds.forEach((td, p) => td.classList.toggle('pinned', isPinned(pins, p, Number(td.dataset.tokenId))));
  }
}

/** The colour bar; `wanted` differs from the scale's mode while a stat mode has no stats yet. */
export function renderLegend(legend: HTMLElement, scale: Scale, wanted: ColorMode, statsOn: boolean): void {
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
  if (wanted !== scale.mode) note = statsOn ? ' (stats arrive when the run completes)' : ' (turn on stats for this mode)';
  title.textContent = scale.title + note;
  legend.replaceChildren(title, box);
}

/** The heatmap cell an event happened on, if any. */
export function cellAt(target: EventTarget | null): HTMLTableCellElement | null {
  const td = (target as HTMLElement | null)?.closest?.('td');
  return td && td.closest('#heatmap') ? (td as HTMLTableCellElement) : null;
}
