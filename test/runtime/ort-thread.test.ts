// The ORT thread (src/runtime/ort-thread.ts): sessions built and run on one worker thread behind
// proxies with the InferenceSession calls the code uses. Checked here: the main thread's event loop
// keeps turning while a long run computes, several runs in flight each get their own answer, feeds
// that are views on part of a buffer, ORT's errors, release, close, and that an idle thread never
// keeps the process alive.
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/graph/onnx-builder.js';
import { LensError } from '../../src/errors.js';
import { OrtThread, ortThread } from '../../src/runtime/ort-thread.js';
import { ort } from '../../src/runtime/sessions.js';

const CPU: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'] };

/** y = x · W, x [rows, n], W [n, m] with W[i][j] = (i + 2j) / n; also argmax(y) per row (int64). */
function matmulGraph(n: number, m: number): { bytes: Uint8Array; w: Float32Array } {
  const w = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) w[i * m + j] = (i + 2 * j) / n;
  const g = new GraphBuilder('matmul');
  const x = g.input('x', 'float', ['rows', n]);
  const y = g.op('MatMul', [x, g.embedded('w', [n, m], w)]);
  g.output(y, 'y', 'float', ['rows', m]);
  g.output(g.op('ArgMax', [y], { axis: 1, keepdims: 0 }), 'best', 'int64', ['rows']);
  return { bytes: g.toBytes(), w };
}

/** `depth` chained [n, n] MatMuls: long enough to see whether the caller's loop is blocked. */
function slowGraph(n: number, depth: number): Uint8Array {
  const g = new GraphBuilder('slow');
  let v = g.input('x', 'float', ['rows', n]);
  const w = g.embedded('w', [n, n], new Float32Array(n * n).fill(1 / n));
  for (let i = 0; i < depth; i++) v = g.op('MatMul', [v, w]);
  g.output(v, 'y', 'float', ['rows', n]);
  return g.toBytes();
}

function expected(x: Float32Array, w: Float32Array, n: number, m: number): Float32Array {
  const rows = x.length / n;
  const y = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) y[r * m + j] += x[r * n + i] * w[i * m + j];
  return y;
}

const N = 16;
const M = 8;
const graph = matmulGraph(N, M);
const input = (rows: number, seed: number) => Float32Array.from({ length: rows * N }, (_, i) => Math.sin(seed + i));

describe('the ORT thread', () => {
  afterAll(async () => {
    // The shared thread is left as other suites find it: idle, unreferenced.
    expect(ortThread().busy).toBe(0);
  });

  it('keeps the caller’s event loop turning while a run computes', async () => {
    const n = 512;
    const x = new ort.Tensor('float32', new Float32Array(64 * n).fill(1), [64, n]);
    // Deep enough that one run takes ≥ 60 ms on this machine, idle or loaded.
    let s = await ortThread().create(slowGraph(n, 48), CPU);
    for (let depth = 48; ; depth *= 2) {
      const t = performance.now();
      await s.run({ x });
      if (performance.now() - t >= 60 || depth >= 48 * 64) break;
      await s.release();
      s = await ortThread().create(slowGraph(n, depth * 2), CPU);
    }
    try {
      let last = performance.now();
      let maxGap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 2);
      const t0 = performance.now();
      let runMs = 0;
      for (let i = 0; i < 3; i++) await s.run({ x });
      runMs = (performance.now() - t0) / 3;
      clearInterval(timer);
      // On the main thread a run holds the loop for its whole duration (maxGap ≥ runMs).
      expect(runMs).toBeGreaterThan(20);
      expect(maxGap).toBeLessThan(runMs / 2);
    } finally {
      await s.release();
    }
  }, 60_000);

  it('answers several runs in flight on several sessions, each with its own outputs', async () => {
    const [a, b] = await Promise.all([ortThread().create(graph.bytes, CPU), ortThread().create(graph.bytes, CPU)]);
    try {
      expect(a.inputNames).toEqual(['x']);
      expect(a.outputNames).toEqual(['y', 'best']);
      const xs = Array.from({ length: 12 }, (_, i) => input(1 + (i % 4), i));
      const outs = await Promise.all(xs.map((x, i) => (i % 2 ? a : b).run({ x: new ort.Tensor('float32', x, [x.length / N, N]) })));
      outs.forEach((out, i) => {
        const want = expected(xs[i], graph.w, N, M);
        const y = out.y as ort.Tensor;
        expect(y).toBeInstanceOf(ort.Tensor);
        expect(y.dims).toEqual([xs[i].length / N, M]);
        (y.data as Float32Array).forEach((v, k) => expect(v).toBeCloseTo(want[k], 4));
        const best = out.best.data as BigInt64Array;
        expect(best).toBeInstanceOf(BigInt64Array);
        for (let r = 0; r < best.length; r++) {
          const row = Array.from(want.subarray(r * M, (r + 1) * M));
          expect(Number(best[r])).toBe(row.indexOf(Math.max(...row)));
        }
      });
      // The caller keeps its feeds: they were copied, not moved.
      expect(xs[0].length).toBe(N);
    } finally {
      await Promise.all([a.release(), b.release()]);
    }
  });

  it('takes feeds that are views on part of a larger buffer, and fetches a subset of outputs', async () => {
    const s = await ortThread().create(graph.bytes, CPU);
    try {
      const all = input(10, 3);
      const part = all.subarray(4 * N, 7 * N);
      const out = await s.run({ x: new ort.Tensor('float32', part, [3, N]) }, ['y']);
      expect(Object.keys(out)).toEqual(['y']);
      const want = expected(part, graph.w, N, M);
      (out.y.data as Float32Array).forEach((v, k) => expect(v).toBeCloseTo(want[k], 4));
      // The output owns its buffer (moved from the thread, not a view on a shared one).
      expect((out.y.data as Float32Array).buffer.byteLength).toBe(3 * M * 4);
    } finally {
      await s.release();
    }
  });

  it('passes ORT’s errors back, and the session keeps working after one', async () => {
    const s = await ortThread().create(graph.bytes, CPU);
    try {
      const wrongWidth = await s.run({ x: new ort.Tensor('float32', new Float32Array(5), [1, 5]) }).catch((e: unknown) => e);
      expect(wrongWidth).toBeInstanceOf(Error);
      expect((wrongWidth as Error).message).toMatch(/dimension|shape|Got invalid/i);
      const missing = await s.run({}).catch((e: unknown) => e);
      expect((missing as Error).message).toMatch(/input|feed/i);
      const out = await s.run({ x: new ort.Tensor('float32', input(1, 0), [1, N]) });
      expect(out.y.dims).toEqual([1, M]);
      const bad = await ortThread().create(new Uint8Array([1, 2, 3]), CPU).catch((e: unknown) => e);
      expect(bad).toBeInstanceOf(Error);
    } finally {
      await s.release();
    }
  });

  it('settles runs around a release: those sent before are answered, later ones reject (INTERNAL: a closed model ran)', async () => {
    const s = await ortThread().create(graph.bytes, CPU);
    const x = new ort.Tensor('float32', input(2, 1), [2, N]);
    const before = [s.run({ x }), s.run({ x })];
    const released = s.release();
    const after = s.run({ x }).catch((e: unknown) => e);
    expect((await Promise.all(before)).map((o) => o.y.dims)).toEqual([
      [2, M],
      [2, M],
    ]);
    await released;
    await s.release(); // twice is harmless
    const err = await after;
    expect(err).toBeInstanceOf(LensError);
    expect(err).toMatchObject({ code: 'INTERNAL' });
  });

  it('close rejects everything in flight with CANCELLED; the next create starts a fresh thread', async () => {
    const thread = new OrtThread();
    const s = await thread.create(slowGraph(256, 32), CPU);
    const x = new ort.Tensor('float32', new Float32Array(32 * 256).fill(1), [32, 256]);
    const inFlight = Array.from({ length: 4 }, () => s.run({ x }).catch((e: unknown) => e));
    await thread.close();
    for (const r of await Promise.all(inFlight)) {
      expect(r).toBeInstanceOf(LensError);
      expect(r).toMatchObject({ code: 'CANCELLED' });
    }
    expect(thread.busy).toBe(0);
    expect(await s.run({ x }).catch((e: unknown) => e)).toMatchObject({ code: 'CANCELLED' });
    const again = await thread.create(graph.bytes, CPU);
    const out = await again.run({ x: new ort.Tensor('float32', input(1, 2), [1, N]) });
    expect(out.y.dims).toEqual([1, M]);
    await thread.close();
  }, 60_000);

  it('does not keep the process alive once idle, even with sessions open', () => {
    // A child that opens a session, runs it and returns without releasing or closing anything.
    const script = `
      import { ortThread } from './src/runtime/ort-thread.ts';
      import { GraphBuilder } from './src/graph/onnx-builder.ts';
      import { ort } from './src/runtime/sessions.ts';
      const g = new GraphBuilder('t');
      const x = g.input('x', 'float', [1, 2]);
      g.output(g.op('Relu', [x]), 'y', 'float', [1, 2]);
      const s = await ortThread().create(g.toBytes(), { executionProviders: ['cpu'] });
      const out = await s.run({ x: new ort.Tensor('float32', new Float32Array([-1, 2]), [1, 2]) });
      console.log('ran', Array.from(out.y.data).join(','));
    `;
    const t0 = performance.now();
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('ran 0,2');
    expect(child.status).toBe(0);
    expect(performance.now() - t0).toBeLessThan(30_000);
  }, 40_000);
});

describe('shared feeds', () => {
  it('takes a feed that is a view on a SharedArrayBuffer, with the same answer', async () => {
    const s = await ortThread().create(graph.bytes, CPU);
    try {
      const x = input(3, 5);
      const shared = new Float32Array(new SharedArrayBuffer(x.byteLength + 8 * N * 4), 4 * N * 4, 3 * N);
      shared.set(x);
      const [a, b] = await Promise.all([
        s.run({ x: new ort.Tensor('float32', shared, [3, N]) }),
        s.run({ x: new ort.Tensor('float32', x, [3, N]) }),
      ]);
      expect(Array.from(a.y.data as Float32Array)).toEqual(Array.from(b.y.data as Float32Array));
    } finally {
      await s.release();
    }
  });
});
