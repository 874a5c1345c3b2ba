// The heavy per-request work (the lens head over 128 positions × 2 read points with top-100,
// trajectories and stats; decoding 38,400 predictions into cells; the store write) does not hold
// the event loop: /health, pinged every 10 ms from a worker thread, keeps answering during a batch
// of worst-case requests. Before the fix one such request stalled the loop for 3.7–9 s.
//
// ORT runs on its own thread (src/runtime/ort-thread.ts); what is left on the loop (completing the
// cells, serializing the JSON, the store write, per-position reductions) gives it back every few ms.
// Bounds, for a 2-core CI machine shared with other jobs: the target is p99 ≤ 100 ms. Measured
// on the 2-core development machine at load average 6–13 (other helpers' suites and benches running):
// p99 88–98 ms, max 387–858 ms (the max is a major GC or the process descheduled); the code before
// (ORT, JSON and the store write on the loop) at load 6–7: p99 124–158 ms, max 1034–2175 ms.
// p99 ≤ 150 / max ≤ 1000 hold under that load and fail the old code (on max in both runs measured).
import { expect, test } from 'vitest';
import { percentile, probeHealth } from '../helpers/health-probe.js';
import { startGateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const P99_BOUND_MS = 150;
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
    const run = (i: number) =>
      fetch(gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // Different prompts: nothing is answered from the cache.
        body: JSON.stringify({ query, variables: { p: "abcd"[i] + prompt.slice(1) } }),
      }).then(async (r) => (await r.json()) as { data?: { lens: { cells: unknown[][] } }; errors?: unknown[] });
    const probe = probeHealth(new URL('/health', gw.url).href, 10);
    const answers = await Promise.all([0, 1, 2, 3].map(run));
    const latencies = await probe.stop();
    for (const a of answers) {
      expect(a.errors, JSON.stringify(a.errors)).toBeUndefined();
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
