import { describe, expect, it } from 'vitest';
import type { ModelPlan } from '../../src/architectures/spec.js';
import { loopRows, markWidensPerCall, runUnembed } from '../../src/runtime/unembed.js';
import { ort, type OrtSession } from '../../src/runtime/sessions.js';

// The 1B shape's head: one row per call under the event-loop budget.
const plan = { hiddenSize: 2048, vocabSize: 128256 } as ModelPlan;

/** Counts calls and answers each with one output row per input row. */
function countingSession() {
  const calls: number[] = [];
  const session = {
    inputNames: ['hidden'],
    run: async (feeds: Record<string, ort.Tensor>) => {
      const rows = feeds.hidden.dims[0];
      calls.push(rows);
      return { out: new ort.Tensor('float32', new Float32Array(rows), [rows]) };
    },
  };
  return { calls, session: session as unknown as OrtSession };
}

describe('runUnembed call splitting', () => {
  const hidden = new Float32Array(20 * plan.hiddenSize);

  it('splits a float32 head into event-loop-sized calls', async () => {
    const { calls, session } = countingSession();
    const out = await runUnembed(session, plan, { head: { hidden, k: 5 } });
    expect(loopRows(plan)).toBe(1);
    expect(calls).toEqual(Array(20).fill(1));
    expect(out.out.dims).toEqual([20]);
  });

  it('runs a head that widens its 16-bit matrix per call whole (splitting repeats the widening)', async () => {
    const { calls, session } = countingSession();
    markWidensPerCall(session);
    await runUnembed(session, plan, { head: { hidden, k: 5 } });
    expect(calls).toEqual([20]);
  });
});
