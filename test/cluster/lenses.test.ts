// Tuned and Jacobian lenses in distributed mode: `npm run worker -- --model d16=DIR --lens d16=TUNED_DIR
// --lens d16=JACOBIAN.pt` (src/cli/worker.ts as a child process) behind a gateway process on a real
// Redis. What the cluster answers equals the single-process result (the lens core called directly on
// the same files); a generating subscription streams its written positions from the worker
// (PositionResult), and its cached replay sends the same events.

import { print, type FormattedExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument, ModelsDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import { openModel } from '../../src/lens/index.js';
import type { LensModel, LensPoint } from '../../src/lens/types.js';
import { LENS_FILES_D16, LENSED_D16, makeCheckpoint } from '../helpers/fixtures.js';
import { noRedisReason, redisAvailable, startTestRedis, type TestRedis } from '../helpers/redis.js';
import { http, sseClient } from '../server/harness.js';
import { spawnTsx, startServer, type Child } from '../server/spawn.js';

type Event = LensLayersSubscription['lensLayers'];
const PROMPT = 'Hello world, hello';
const POINTS: LensPoint[] = ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'];

async function stream(url: string, input: object): Promise<Event[]> {
  const client = sseClient(url);
  const out: Event[] = [];
  for await (const r of client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } })) {
    expect((r as FormattedExecutionResult).errors).toBeUndefined();
    out.push((r.data as LensLayersSubscription).lensLayers);
  }
  client.dispose();
  return out;
}

const run = redisAvailable ? describe : describe.skip;
run(`lens kinds on a cluster worker (${redisAvailable ? 'redis' : noRedisReason})`, () => {
  let redis: TestRedis;
  const children: Child[] = [];
  let gw: Child & { url: string };
  let direct: LensModel;

  beforeAll(async () => {
    redis = await startTestRedis(3);
    const dir = makeCheckpoint(LENSED_D16);
    const worker = spawnTsx('src/cli/worker.ts', [
      '--redis', redis.url, '--device', 'cpu', '--id', 'lw1', '--heartbeat-ms', '500',
      '--model', `d16=${dir}`, '--lens', `d16=${LENS_FILES_D16.tuned}`, '--lens', `d16=${LENS_FILES_D16.jacobian}`,
    ]);
    children.push(worker);
    [gw, direct] = await Promise.all([
      startServer(['--redis', redis.url]).then((c) => (children.push(c), c)),
      openModel(dir, { id: 'd16', device: 'cpu', lenses: LENS_FILES_D16 }),
      worker.waitFor(/ready as lw1/),
    ]);
    // The gateway learns the worker's models from its heartbeats.
    for (let i = 0; i < 100; i++) {
      const r = await http(gw.url, ModelsDocument).catch((e: Error) => {
        throw new Error(`${e.message}\n--- gateway:\n${gw.output()}\n--- worker:\n${worker.output()}`);
      });
      if (r.data?.models.some((m) => m.id === 'd16' && m.status === 'READY')) break;
      await new Promise((res) => setTimeout(res, 200));
    }
  }, 300_000);
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill('SIGKILL')));
    await direct?.close();
    await redis?.stop();
  });

  test('Model.lenses lists the kinds the worker loaded', async () => {
    const r = await http(gw.url, ModelsDocument);
    expect(r.data!.models.find((m) => m.id === 'd16')!.lenses).toEqual(direct.info.lenses.map((l) => ({ kind: l.kind, layers: l.layers })));
    expect(r.data!.models.find((m) => m.id === 'd16')!.lenses.map((l) => l.kind)).toEqual(['LOGIT', 'TUNED', 'JACOBIAN']);
  });

  for (const lens of ['TUNED', 'JACOBIAN'] as const) {
    test(`${lens} through gateway + worker equals the single-process result (both read points, stats, trajectories)`, async () => {
      const opts = { lens, topK: 3, stats: true, trackAcrossLayers: true, points: POINTS };
      const r = await http(gw.url, LensDocument, { input: { model: 'd16', prompt: PROMPT, ...opts } });
      expect(r.errors).toBeUndefined();
      const want = await direct.lens(PROMPT, opts);
      const got = r.data!.lens;
      expect(got.layers).toEqual(want.layers);
      expect(got.topIndices).toEqual(want.topIndices);
      expect(got.topProbs).toEqual(want.topProbs);
      expect(got.stats).toEqual(want.stats);
      expect(got.tracked!.map((t) => ({ position: t.position, tokenIds: t.tokenIds, probs: t.probs }))).toEqual(want.tracked);
    });
  }

  test('a generating TUNED subscription: PositionResults come from the worker, as the core computes; the cached replay sends the same', async () => {
    const opts = { lens: 'TUNED' as const, topK: 3, points: POINTS, generate: { maxNewTokens: 3 } };
    const input = { model: 'd16', prompt: `${PROMPT} again`, ...opts };
    const live = await stream(gw.url, input);
    const want = await direct.lens(input.prompt, opts);
    const promptLen = want.tokens.filter((t) => !t.generated).length;
    const L = want.layers.length;
    expect(live.map((e) => e.__typename)).toEqual(['LensStarted', ...Array(2 * L).fill('LayerResult'), ...Array(6).fill('PositionResult'), 'LensCompleted']);
    for (const e of live) {
      if (e.__typename === 'LayerResult') {
        expect(e.worker).toBe('lw1');
        const read = e.point === 'BLOCK_OUTPUT' ? want : want.attention!;
        expect(e.topIndices).toEqual(read.topIndices[e.index].slice(0, promptLen));
        expect(e.topProbs).toEqual(read.topProbs[e.index].slice(0, promptLen));
      }
      if (e.__typename === 'PositionResult') {
        const read = e.point === 'BLOCK_OUTPUT' ? want : want.attention!;
        expect(e.token).toEqual({ ...want.tokens[e.position], generated: true });
        expect(e.topIndices).toEqual(read.topIndices.map((rows) => rows[e.position]));
        expect(e.topProbs).toEqual(read.topProbs.map((rows) => rows[e.position]));
      }
    }
    expect(live.filter((e) => e.__typename === 'PositionResult').map((e) => e.position)).toEqual([
      promptLen, promptLen, promptLen + 1, promptLen + 1, promptLen + 2, promptLen + 2,
    ]);

    const replay = await stream(gw.url, input);
    const done = (ev: Event[]) => ev.at(-1) as Extract<Event, { __typename: 'LensCompleted' }>;
    expect([done(live).result.cached, done(replay).result.cached]).toEqual([false, true]);
    // Only what names this run may differ: `cached`, and which worker sent a layer (a replay has none).
    const strip = (ev: Event[]) =>
      ev.map((e) => (e.__typename === 'LensCompleted' ? { ...e, result: { ...e.result, cached: null } } : e.__typename === 'LayerResult' ? { ...e, worker: null } : e));
    expect(strip(replay)).toEqual(strip(live));
  });
});
