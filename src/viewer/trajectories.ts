/// <reference lib="dom" />
// The pinned-trajectories panel: one line per pinned (position, token) across layers, and its list.

import { renderChart } from './chart.js';
import type { Elements } from './dom.js';
import { tokenNodes } from './dom.js';
import { quoted } from './format.js';
import { pinSeries, type Pin, type Run } from './state.js';

export function renderTrajectories(ui: Elements, run: Run | null, pins: Pin[], onRemove: (pin: Pin) => void): void {
  ui.pins.replaceChildren();
  ui.pinsEmpty.hidden = pins.length > 0;
  if (!run || pins.length === 0) {
    ui.chart.replaceChildren();
    return;
  }
  renderChart(ui.chart, run.layers, pins.map((pin) => pinSeries(run, pin)));
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
    small.textContent = `  at position ${pin.position} (after ${quoted(run.tokens[pin.position]?.text ?? '')})`;
    label.append(small);
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.textContent = 'remove';
    rm.setAttribute('aria-label', `Remove trajectory of ${quoted(pin.text)} at position ${pin.position}`);
    rm.addEventListener('click', () => onRemove(pin));
    li.append(sw, label, rm);
    ui.pins.append(li);
  }
  if (!run.result?.tracked) {
    const note = document.createElement('li');
    note.className = 'muted';
    note.textContent = run.result
      ? 'Trajectories were off: points show only layers where the token was in the top-k.'
      : 'Exact trajectories arrive when the run completes.';
    ui.pins.append(note);
  }
}
