// stringifyInTurns: the same text as JSON.stringify, given back to the event loop while it runs.
import { describe, expect, it } from 'vitest';
import { stringifyInTurns } from '../../src/server/json-in-turns.js';

/** A `cells`-shaped answer: rows × positions × k predictions (~3 MB of JSON at the default sizes). */
function cells(rows = 3, positions = 128, k = 100) {
  return {
    data: {
      lens: {
        id: 'r1',
        cells: Array.from({ length: rows }, (_, l) =>
          Array.from({ length: positions }, (_, p) => ({
            token: { id: p, text: ` t"${p}\n`, prob: 1 / (p + 1) },
            prob: p === 3 ? null : Math.sin(l + p),
            topk: Array.from({ length: k }, (_, j) => ({ id: j * 7 + l, text: `w${j}\u00e9`, prob: j / (k * (p + 1)) })),
          })),
        ),
      },
    },
  };
}

describe('stringifyInTurns', () => {
  it('equals JSON.stringify on edge cases', async () => {
    const big = Array.from({ length: 10_000 }, (_, i) => (i % 7 === 0 ? undefined : i % 5 === 0 ? NaN : i / 3));
    const values: unknown[] = [
      null,
      0,
      'x',
      [],
      {},
      [undefined, () => 1, Symbol('s'), Infinity, -0],
      { a: undefined, b: () => 1, c: 1, d: [1, { e: undefined }], 'k"ey': 'v\u2028' },
      { when: new Date(0), nested: { toJSON: (k: string) => `key:${k}` } },
      { big, deep: { deeper: Array.from({ length: 3000 }, (_, i) => ({ i, s: String(i) })) } },
      cells(2, 20, 10),
    ];
    for (const v of values) expect(await stringifyInTurns(v)).toBe(JSON.stringify(v));
  });

  it('rejects a cycle as JSON.stringify does', async () => {
    const a: Record<string, unknown> = { list: Array.from({ length: 5000 }, (_, i) => i) };
    a.self = { back: a, pad: Array.from({ length: 3000 }, () => ({ x: 1 })) };
    await expect(stringifyInTurns(a)).rejects.toThrow(TypeError);
  });

  it('gives the event loop back while serializing a large answer', async () => {
    const value = cells();
    const t0 = performance.now();
    const want = JSON.stringify(value);
    const nativeMs = performance.now() - t0;
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const text = await stringifyInTurns(value, 2);
    clearInterval(timer);
    expect(text).toBe(want);
    // JSON.stringify would hold the loop for its whole run (no timer turn); here the timer runs in between.
    expect(nativeMs).toBeGreaterThan(5);
    expect(turns).toBeGreaterThan(2);
  });
});

describe('jsonBytesInTurns', () => {
  it('is the UTF-8 encoding of JSON.stringify, across its 64 KiB pieces', async () => {
    const { jsonBytesInTurns } = await import('../../src/server/json-in-turns.js');
    // Non-ASCII text (2-, 3- and 4-byte UTF-8) on both sides of many piece boundaries.
    const value = { ...cells(2, 60, 40), extra: Array.from({ length: 5000 }, (_, i) => `é€😀${i}`) };
    const bytes = await jsonBytesInTurns(value, 1);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(bytes!.byteLength).toBeGreaterThan(4 * 64 * 1024);
    expect(Buffer.from(bytes!).equals(Buffer.from(JSON.stringify(value), 'utf8'))).toBe(true);
    expect(await jsonBytesInTurns(undefined)).toBeUndefined();
    expect(Buffer.from((await jsonBytesInTurns('x'))!).toString()).toBe('"x"');
  });
});
