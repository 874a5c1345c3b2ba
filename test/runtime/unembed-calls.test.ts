import { describe, expect, it } from 'vitest';
import type { ModelPlan } from '../../src/architectures/spec.js';
import { UNEMBED } from '../../src/graph/head.js';
import { runUnembed } from '../../src/runtime/unembed.js';
import { ort, type OrtSession } from '../../src/runtime/sessions.js';

// The 1B shape's head: the event-loop budget of the main-thread days was one row per call.
const plan = { hiddenSize: 2048, vocabSize: 128256 } as ModelPlan;
const TRANSLATOR = 'tuned_translator';

/** Records each call's rows and translator index, answering one output row per input row. */
function countingSession() {
  const calls: Array<{ rows: number; translator: bigint }> = [];
  const session: OrtSession = {
    inputNames: [UNEMBED.inputs.hidden, TRANSLATOR],
    outputNames: ['out'],
    run: async (feeds: Record<string, ort.Tensor>) => {
      const rows = feeds[UNEMBED.inputs.hidden].dims[0];
      calls.push({ rows, translator: (feeds[TRANSLATOR].data as BigInt64Array)[0] });
      return { out: new ort.Tensor('float32', new Float32Array(rows), [rows]) };
    },
    release: async () => undefined,
  };
  return { calls, session };
}

describe('runUnembed calls', () => {
  const hidden = new Float32Array(20 * plan.hiddenSize);

  // ORT runs on its own thread: splitting a call into event-loop-sized row chunks only repeated
  // per-call costs (a 16-bit head widened per chunk: 320 head calls instead of 16 for 20 tokens).
  it('runs the rows it is given in one call, with the call’s translator index', async () => {
    const { calls, session } = countingSession();
    const translators = { [TRANSLATOR]: new ort.Tensor('int64', BigInt64Array.from([3n]), [1]) };
    const out = await runUnembed(session, plan, { head: { hidden, k: 5, translators } });
    expect(calls).toEqual([{ rows: 20, translator: 3n }]);
    expect(out.out.dims).toEqual([20]);
  });

  it('gives calls that name no translator the identity (entry 0)', async () => {
    const { calls, session } = countingSession();
    await runUnembed(session, plan, { naive: hidden });
    expect(calls.map((c) => c.translator)).toEqual([0n]);
  });
});
