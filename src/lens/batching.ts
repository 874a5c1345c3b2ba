// How one lensBatch call is cut into forward passes and head calls so that a batch costs what its
// rows cost (measured in bench/gateway.ts; numbers in docs/engineering-notes.md).

/**
 * Default share of a padded batch's rows that may be padding. Every padded position runs through
 * every block like a real one, so a batch of a 5-token and a 200-token prompt would cost ~2x a
 * batch of their real rows; past this share the batch runs as several length groups instead.
 */
export const MAX_PADDING_SHARE = 0.25;

/**
 * Splits request indices into groups run as separate padded passes: sorted by length (longest
 * first), a group grows while its padding stays within `maxShare` of its rows. Groups keep the
 * requests' original order inside; the groups come longest first.
 */
export function lengthGroups(lengths: number[], maxShare = MAX_PADDING_SHARE): number[][] {
  const order = lengths.map((len, i) => ({ len, i })).sort((a, b) => b.len - a.len || a.i - b.i);
  const groups: number[][] = [];
  let group: number[] = [];
  let longest = 0;
  let rows = 0;
  for (const { len, i } of order) {
    const padded = (group.length + 1) * longest;
    if (group.length && padded - (rows + len) > maxShare * padded) {
      groups.push(group);
      group = [];
    }
    if (!group.length) {
      longest = len;
      rows = 0;
    }
    group.push(i);
    rows += len;
  }
  if (group.length) groups.push(group);
  return groups.map((g) => g.sort((a, b) => a - b));
}

/**
 * Most rows per lens-head call on CPU. A call materialises [rows, V] logits several times over
 * (exp, a float64 copy for the log-sum-exp); past a few hundred rows that traffic grows faster
 * than the rows (a batch of 8 × 12 layers × 20 tokens in 667-row calls cost more per row than solo
 * requests' ~250-row calls). The head session's ORT arena also keeps the largest call's peak for
 * good: GPT-2-small with stats + trajectories held 1209 MB after 3 lenses at 256 rows, 957 MB at
 * 128, at the same time per lens (bench memory, side by side), so calls stay at half a solo
 * request. CUDA keeps the memory bound only.
 */
export const CPU_HEAD_ROWS = 128;
