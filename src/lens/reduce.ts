// Pure JS reductions on the small tensors that come back from ORT (and the naive benchmark path).

/** Ascending unique union of top-k ids at one position over all layers. */
export function unionIds(topIndicesPerLayer: number[][][], position: number): number[] {
  const set = new Set<number>();
  for (const layer of topIndicesPerLayer) for (const id of layer[position]) set.add(id);
  return [...set].sort((a, b) => a - b);
}

/** Exact top-k of one row of logits via log-sum-exp in float64; ties → lower id. */
export function topKFromLogits(logits: Float32Array, offset: number, V: number, k: number): { ids: number[]; probs: number[]; lse: number } {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[offset + i] - max);
  const lse = max + Math.log(sum);
  // Keep a small sorted buffer; V is large and k small.
  const ids: number[] = [];
  for (let i = 0; i < V; i++) {
    const v = logits[offset + i];
    if (ids.length === k && v <= logits[offset + ids[k - 1]]) continue;
    let j = ids.length;
    while (j > 0 && logits[offset + ids[j - 1]] < v) j--;
    ids.splice(j, 0, i);
    if (ids.length > k) ids.pop();
  }
  return { ids, probs: ids.map((id) => Math.exp(logits[offset + id] - lse)), lse };
}

/** Splits `items` into consecutive groups whose row counts stay under `maxRows` (one item may exceed it alone). */
export function chunkByRows<T extends { rows: number }>(items: T[], maxRows: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let rows = 0;
  for (const item of items) {
    if (current.length && rows + item.rows > maxRows) {
      chunks.push(current);
      current = [];
      rows = 0;
    }
    current.push(item);
    rows += item.rows;
  }
  if (current.length) chunks.push(current);
  return chunks;
}
