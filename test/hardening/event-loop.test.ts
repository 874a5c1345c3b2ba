// The heavy per-request work (the lens head over 128 positions × 2 read points with top-100,
// trajectories and stats; decoding 38,400 predictions into cells; the store write; the 5 MB JSON
// answer) does not hold the event loop: /health, pinged every 10 ms from a worker thread, keeps
// answering during a batch of worst-case requests. Before the fix one such request stalled the loop
// for 3.7–9 s.
//
// ORT runs on its own thread (src/runtime/ort-thread.ts); what is left on the loop (completing the
// cells, serializing and encoding the JSON, the store write, per-position reductions) gives it back
// every few ms. The clients post from a worker thread (test/helpers/client-thread.ts): parsing four
// 5 MB answers on the server's loop was most of what this test used to measure. The file runs after
// the rest of the suite, alone (vitest.config.ts, project `timing`), so the bound is the issue's:
// /health p99 ≤ 100 ms, plus a generous max (a major GC on a busy machine takes a few hundred ms;
// the old code's stalls reached 1–2 s). Measured numbers: docs/engineering-notes.md.
import { expect, test } from 'vitest';
import { postInThread } from '../helpers/client-thread.js';
import { percentile, probeHealth } from '../helpers/health-probe.js';
import { startGateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const P99_BOUND_MS = 100;
const MAX_BOUND_MS = 1000;

test('/health stays responsive during a batch of worst-case requests', async () => {
  const model = await openTinyGpt2();
  const gw = await startGateway([model], { scheduler: { maxQueue: 64, maxPerClient: 64 } });
  try {
    // " a" is one GPT-2 token: the longest prompt the model takes.
    const prompt = 'a' + ' a'.repeat(model.info.maxPositions - 1);
    const query = `query($p: String!) {
      lens(input: {model: "gpt2-tiny", prompt: $p, topK: 100, trackAcrossLayers: true, stats: true, points: [BLOCK_OUTPUT, ATTENTION_OUTPUT]}) {
        id topIndices topProbs tracked { tokenIds probs } stats { entropy klToFinal finalTop1Rank }
        cells { token prob topk { id text prob } }
      }
    }`;
    // Different prompts: nothing is answered from the cache.
    const bodies = [0, 1, 2, 3].map((i) => JSON.stringify({ query, variables: { p: 'abcd'[i] + prompt.slice(1) } }));
    const probe = probeHealth(new URL('/health', gw.url).href, 10);
    const raw = await postInThread(gw.url, bodies);
    const latencies = await probe.stop();
    for (const { status, body } of raw) {
      const a = JSON.parse(Buffer.from(body).toString('utf8')) as { data?: { lens: { cells: unknown[][] } }; errors?: unknown[] };
      expect(a.errors, JSON.stringify(a.errors)).toBeUndefined();
      expect(status).toBe(200);
      expect(a.data!.lens.cells).toHaveLength(3);
      expect(a.data!.lens.cells[0]).toHaveLength(128);
    }
    const p99 = percentile(latencies, 99);
    const max = Math.max(...latencies);
    console.log(`/health during the batch: ${latencies.length} pings, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`);
    expect(latencies.length).toBeGreaterThan(20);
    expect(p99).toBeLessThanOrEqual(P99_BOUND_MS);
    expect(max).toBeLessThanOrEqual(MAX_BOUND_MS);
  } finally {
    await gw.stop();
    await model.close();
  }
}, 180_000);
