// Distributed mode for real: a redis-server, two gateways and two workers as separate processes on
// loopback. Gateway A streams a lens computed on a worker; a worker is SIGKILLed mid-stream and the
// job finishes on the other worker holding the model (each layer sent once); with no worker left
// the client gets UNAVAILABLE; results survive a gateway restart and are shared between gateways.

import { Queue } from 'bullmq';
import { createClient as createSseClient } from 'graphql-sse';
import { print, type FormattedExecutionResult } from 'graphql';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  LensDocument,
  LensLayersDocument,
  LensResultByIdDocument,
  ModelPlacementsDocument,
  type LensLayersSubscription,
} from '../../src/client/graphql.js';
import { keys, queueName } from '../../src/server/cluster/redis.js';
import { writeApiKeys } from '../helpers/api-keys.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { noRedisReason, redisAvailable, startTestRedis, type TestRedis } from '../helpers/redis.js';
import { http, sseClient } from '../server/harness.js';
import { DEEP_GPT2 } from '../server/models.js';
import { spawnTsx, startServer, type Child } from '../server/spawn.js';

type Event = LensLayersSubscription['lensLayers'];
type LayerEv = Extract<Event, { __typename: 'LayerResult' }>;

let redis: TestRedis;
const children: Child[] = [];
let tinyDir: string;
let deepDir: string;
// Long enough that a job is still running when its first layer has arrived (24 layers, two reads each, stats).
const LONG_PROMPT = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
const deepInput = { model: 'deep', prompt: LONG_PROMPT, stats: true, points: ['BLOCK_OUTPUT' as const, 'ATTENTION_OUTPUT' as const] };

function startWorker(id: string, models: string[], extra: string[] = []): Child {
  const child = spawnTsx('src/cli/worker.ts', [
    '--redis', redis.url, '--device', 'cpu', '--id', id, ...extra,
    ...models.flatMap((m) => ['--model', m]),
    // Fast failure detection for the test: a dead worker's job is retried within ~10 s (a shorter lock
    // is falsely lost on a heavily loaded CI machine whose event loop stalls).
    '--lock-ms', '8000', '--stalled-ms', '2000', '--heartbeat-ms', '500',
  ]);
  children.push(child);
  return child;
}

async function startGatewayProcess(): Promise<Child & { url: string }> {
  const gw = await startServer(['--redis', redis.url]);
  children.push(gw);
  return gw;
}

/** Streams a subscription; calls onEvent for each event as it arrives. */
async function stream(url: string, input: object, onEvent: (e: Event) => void = () => undefined) {
  const out: Array<FormattedExecutionResult<LensLayersSubscription>> = [];
  const client = sseClient(url);
  for await (const r of client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } })) {
    out.push(r as FormattedExecutionResult<LensLayersSubscription>);
    if (r.data) onEvent((r.data as LensLayersSubscription).lensLayers);
  }
  client.dispose();
  return out;
}

const run = redisAvailable ? describe : describe.skip;
run(`distributed mode (${redisAvailable ? 'redis' : noRedisReason})`, () => {
  let gwA: Child & { url: string };
  let gwB: Child & { url: string };
  const workers: Record<string, Child> = {};

  beforeAll(async () => {
    redis = await startTestRedis(1);
    tinyDir = makeCheckpoint(RECIPES['gpt2-tiny']);
    deepDir = makeCheckpoint(DEEP_GPT2);
    workers.w1 = startWorker('w1', [`deep=${deepDir}`, `tiny=${tinyDir}`]);
    workers.w2 = startWorker('w2', [`deep=${deepDir}`]);
    // One job at a time: while one runs, the next waits in the queue (the cancel-while-queued test).
    workers.w4 = startWorker('w4', [`solo=${deepDir}`], ['--concurrency', '1']);
    [gwA, gwB] = await Promise.all([
      startGatewayProcess(),
      startGatewayProcess(),
      workers.w1.waitFor(/ready as w1/),
      workers.w2.waitFor(/ready as w2/),
      workers.w4.waitFor(/ready as w4/),
    ]);
  }, 300_000);
  afterAll(async () => {
    await Promise.all(children.map((c) => c.kill('SIGKILL')));
    await redis?.stop();
  });

  test('Query.models lists what the cluster serves and where', async () => {
    // Gateways re-read heartbeats every second.
    let models: Array<{ id: string; servedBy: Array<{ worker: string }> }> = [];
    for (let i = 0; i < 50; i++) {
      const r = await http(gwA.url, ModelPlacementsDocument);
      models = (r.data?.models ?? []) as typeof models;
      if (models.find((m) => m.id === 'deep')?.servedBy.length === 2 && models.some((m) => m.id === 'tiny') && models.some((m) => m.id === 'solo')) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const where = Object.fromEntries(models.map((m) => [m.id, m.servedBy.map((p) => p.worker).sort()]));
    expect(where).toEqual({ deep: ['w1', 'w2'], tiny: ['w1'], solo: ['w4'] });
  });

  test('a lens streamed from gateway A is computed on a worker; gateway B serves the stored result', async () => {
    const events: Event[] = [];
    const out = await stream(gwA.url, { model: 'tiny', prompt: 'The quick brown fox' }, (e) => events.push(e));
    for (const e of out) expect(e.errors).toBeUndefined();
    expect(events.map((e) => e.__typename)).toEqual(['LensStarted', 'LayerResult', 'LayerResult', 'LayerResult', 'LensCompleted']);
    const layers = events.filter((e): e is LayerEv => e.__typename === 'LayerResult');
    expect(new Set(layers.map((l) => l.worker))).toEqual(new Set(['w1']));
    const done = events.at(-1) as Extract<Event, { __typename: 'LensCompleted' }>;
    expect(done.result.topIndices).toEqual(layers.map((l) => l.topIndices));

    const fromB = await http(gwB.url, LensResultByIdDocument, { id: done.result.id });
    expect(fromB.data!.lensResult!.topProbs).toEqual(done.result.topProbs);
    // The identical request on the other gateway is answered from the shared store.
    const again = await http(gwB.url, LensDocument, { input: { model: 'tiny', prompt: 'The quick brown fox' } });
    expect(again.data!.lens.cached).toBe(true);
    expect(again.data!.lens.id).toBe(done.result.id);
  });

  test('API keys in distributed mode: jobs carry their key to the worker, results belong to it, the cache is per key, limits per key at the gateway', async () => {
    const keysFile = writeApiKeys([{ name: 'alice' }, { name: 'bob' }, { name: 'ops', admin: true }, { name: 'slow', requestsPerMinute: 2 }]);
    const gw = await startServer(['--redis', redis.url, '--api-keys', keysFile.file]);
    children.push(gw);
    const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
    const input = { model: 'tiny', prompt: 'Keys in the cluster' };
    try {
      const anonymous = await http(gw.url, LensDocument, { input });
      expect(anonymous.status).toBe(401);
      expect(anonymous.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');

      // Alice streams it over SSE (computed on a worker, which stores the result with her as owner).
      const client = createSseClient({ url: gw.url, retryAttempts: 0, headers: as('alice-secret').headers });
      const events: Event[] = [];
      for await (const r of client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } })) {
        expect(r.errors).toBeUndefined();
        events.push((r.data as LensLayersSubscription).lensLayers);
      }
      client.dispose();
      const done = events.at(-1) as Extract<Event, { __typename: 'LensCompleted' }>;
      const id = done.result.id;
      const conn = new Redis(redis.url);
      const stored = JSON.parse((await conn.get(keys.result(id)))!) as { owner: string };
      conn.disconnect();
      expect(stored.owner).toBe('alice');

      const read = (key: string) => http(gw.url, LensResultByIdDocument, { id }, as(key));
      expect((await read('alice-secret')).data?.lensResult?.id).toBe(id);
      expect((await read('ops-secret')).data?.lensResult?.id).toBe(id);
      const bob = await read('bob-secret');
      expect(bob.errors?.[0].extensions?.code).toBe('FORBIDDEN');
      expect(JSON.stringify(bob)).not.toContain('Keys in the cluster');

      // The identical request: cached for alice, computed anew for bob (and then cached for him).
      const againAlice = await http(gw.url, LensDocument, { input }, as('alice-secret'));
      expect(againAlice.data?.lens).toMatchObject({ id, cached: true });
      const bobRun = await http(gw.url, LensDocument, { input }, as('bob-secret'));
      expect(bobRun.data?.lens.cached).toBe(false);
      expect(bobRun.data?.lens.id).not.toBe(id);
      expect((await http(gw.url, LensDocument, { input }, as('bob-secret'))).data?.lens).toMatchObject({ id: bobRun.data?.lens.id, cached: true });
      expect((await http(gw.url, LensDocument, { input }, as('alice-secret'))).data?.lens).toMatchObject({ id, cached: true });

      // Rate limits per key: slow gets two requests a minute, the others are not affected.
      const codes: Array<string | undefined> = [];
      for (let i = 0; i < 3; i++) codes.push((await http(gw.url, ModelPlacementsDocument, undefined, as('slow-secret'))).errors?.[0].extensions?.code as string | undefined);
      expect(codes).toEqual([undefined, undefined, 'RATE_LIMITED']);
      expect((await http(gw.url, ModelPlacementsDocument, undefined, as('alice-secret'))).errors).toBeUndefined();
    } finally {
      await gw.kill('SIGTERM');
      keysFile.remove();
    }
  }, 180_000);

  test('cancelling a queued job removes it from the queue: no worker runs it', async () => {
    // w4 runs one job at a time: while job A runs, job B waits in the queue.
    const conn = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(queueName('solo'), { connection: conn });
    try {
      let aStarted = false;
      for (let i = 0; i < 50 && !aStarted; i++) {
        aStarted = (await http(gwA.url, ModelPlacementsDocument)).data?.models.some((m) => m.id === 'solo') ?? false;
        if (!aStarted) await new Promise((res) => setTimeout(res, 200));
      }
      let aRunning!: () => void;
      const aFirstLayer = new Promise<void>((res) => (aRunning = res));
      const a = stream(gwA.url, { ...deepInput, model: 'solo' }, (e) => e.__typename === 'LayerResult' && aRunning());
      await Promise.race([aFirstLayer, a.then((out) => Promise.reject(new Error(`A ended before its first layer: ${JSON.stringify(out.at(-1))}`)))]);

      const client = sseClient(gwB.url);
      const b = client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input: { model: 'solo', prompt: 'queued behind A' } } });
      const started = (await b.next()).value?.data?.lensLayers;
      expect(started?.__typename).toBe('LensStarted');
      const id = (started as Extract<Event, { __typename: 'LensStarted' }>).resultId;
      let state = '';
      for (let i = 0; i < 100 && state !== 'waiting'; i++) {
        state = await queue.getJobState(id);
        if (state !== 'waiting') await new Promise((res) => setTimeout(res, 50));
      }
      expect(state, 'B waits while A runs').toBe('waiting');

      await b.return?.(undefined); // the client goes away
      client.dispose();
      let job = await queue.getJob(id);
      for (let i = 0; i < 100 && job; i++) {
        await new Promise((res) => setTimeout(res, 50));
        job = await queue.getJob(id);
      }
      expect(job, 'the cancelled job is gone from the queue').toBeFalsy();

      // A completes; the worker is free again, yet B never runs: no result, nothing left queued.
      const outA = await a;
      expect(outA.at(-1)?.data?.lensLayers.__typename).toBe('LensCompleted');
      await new Promise((res) => setTimeout(res, 1500));
      expect(await conn.exists(`lensgate:result:${id}`)).toBe(0);
      // (A itself may still be finishing in BullMQ's books on a loaded machine; B is nowhere.)
      expect(await queue.getJobState(id)).toBe('unknown');
      expect(await queue.getJobCounts('waiting')).toMatchObject({ waiting: 0 });
      for (const list of [await queue.getActive(), await queue.getCompleted(), await queue.getFailed()]) expect(list.map((j) => j.id)).not.toContain(id);
    } finally {
      await queue.close();
      conn.disconnect();
      workers.w4.proc.kill('SIGKILL');
    }
  }, 120_000);

  test('a worker killed mid-stream: the job finishes on the other worker, each layer sent once', async () => {
    let killed: string | null = null;
    const events: Event[] = [];
    const out = await stream(gwA.url, deepInput, (e) => {
      events.push(e);
      if (e.__typename === 'LayerResult' && !killed) {
        killed = e.worker!;
        workers[killed].proc.kill('SIGKILL');
      }
    });
    for (const e of out) expect(e.errors).toBeUndefined();
    const layers = events.filter((e): e is LayerEv => e.__typename === 'LayerResult');
    const keys = layers.map((l) => `${l.point}:${l.layer}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.length).toBe(48);
    const survivor = killed === 'w1' ? 'w2' : 'w1';
    expect(layers.at(-1)!.worker).toBe(survivor);
    const done = events.at(-1) as Extract<Event, { __typename: 'LensCompleted' }>;
    expect(done.__typename).toBe('LensCompleted');
    expect(done.result.layers).toHaveLength(24);
    // The result equals the same request computed from scratch on the surviving worker.
    const fresh = await http(gwB.url, LensDocument, { input: { ...deepInput, topK: 4 } });
    expect(fresh.errors).toBeUndefined();
    expect(done.result.topIndices.map((l) => l.map((p) => p.slice(0, 4)))).toEqual(fresh.data!.lens.topIndices);
  });

  test('with no worker left for the model the client gets UNAVAILABLE, not a hang', async () => {
    const alive = Object.entries(workers).filter(([, c]) => c.proc.exitCode === null && c.proc.signalCode === null);
    let killed = false;
    const out = await stream(gwB.url, { ...deepInput, prompt: `${LONG_PROMPT} again` }, (e) => {
      if (e.__typename === 'LayerResult' && !killed) {
        killed = true;
        for (const [, c] of alive) c.proc.kill('SIGKILL');
      }
    });
    expect(killed).toBe(true);
    const last = out.at(-1)!;
    expect(last.errors?.[0]?.extensions?.code).toBe('UNAVAILABLE');
    const direct = await http(gwA.url, LensDocument, { input: { model: 'deep', prompt: 'hello' } });
    expect(direct.errors?.[0]?.extensions?.code).toMatch(/UNAVAILABLE|MODEL_NOT_FOUND/);
  });

  test('results survive a gateway restart, and a new gateway reads them with no worker left for their model', async () => {
    // A fresh worker for tiny, then compute, SIGKILL gateway A and every worker, and read the result
    // back from a new gateway that never saw the model served.
    workers.w3 = startWorker('w3', [`tiny=${tinyDir}`]);
    await workers.w3.waitFor(/ready as w3/);
    let first = await http(gwA.url, LensDocument, { input: { model: 'tiny', prompt: 'Paris is the capital of' } });
    for (let i = 0; i < 20 && first.errors; i++) {
      await new Promise((res) => setTimeout(res, 250));
      first = await http(gwA.url, LensDocument, { input: { model: 'tiny', prompt: 'Paris is the capital of' } });
    }
    expect(first.errors).toBeUndefined();
    const gone = [gwA, ...Object.values(workers)];
    for (const c of gone) c.proc.kill('SIGKILL');
    await Promise.all(gone.map((c) => c.exited));
    const gwA2 = await startGatewayProcess();
    const back = await http(gwA2.url, LensResultByIdDocument, { id: first.data!.lens.id });
    expect(back.errors).toBeUndefined();
    expect(back.data!.lensResult!.topProbs).toEqual(first.data!.lens.topProbs);
  }, 300_000);
});
