// Large lists of objects are completed by graphql-js synchronously once their values are there: a
// `cells` answer of 12,800 cells with 100 predictions each held the event loop for over a second.
// Returning the items as promises that resolve group by group, one event-loop turn per group, lets
// graphql-js complete one group per turn, so /health and other streams are answered in between.
// The turns are the process-wide queue of src/lens/loop-turns.ts: four such answers at once still
// complete one group per event-loop turn (with a queue per answer, each turn completed a group of
// every answer), and the lens reductions and serializers take their turns from the same queue.

import { nextTurn } from '../src/lens/loop-turns.js';

/** About this many nested values (e.g. top-k predictions) are completed per turn. */
const VALUES_PER_TURN = 1000;

/**
 * `items` as promises resolving in consecutive event-loop turns, `perItem` nested values each. Typed
 * as T[] for Pothos, whose list types do not admit promise items; graphql-js completes list items
 * that are promises (GraphQL spec: list items may resolve asynchronously).
 */
export function inTurns<T>(items: readonly T[], perItem: number): T[] {
  return promisedInTurns(items, perItem) as unknown as T[];
}

function promisedInTurns<T>(items: readonly T[], perItem: number): Array<Promise<T>> {
  const perTurn = Math.max(1, Math.floor(VALUES_PER_TURN / Math.max(1, perItem)));
  const out: Array<Promise<T>> = [];
  for (let i = 0; i < items.length; i += perTurn) {
    const ready = nextTurn();
    for (const item of items.slice(i, i + perTurn)) out.push(ready.then(() => item));
  }
  return out;
}

/** A [rows][cols] grid whose cells resolve in turns (row-major order). */
export function gridInTurns<T>(grid: readonly (readonly T[])[], perItem: number): T[][] {
  const flat = inTurns(grid.flat() as T[], perItem);
  let at = 0;
  return grid.map((row) => flat.slice(at, (at += row.length)));
}
