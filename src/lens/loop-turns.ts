// Work in JavaScript on the gateway's thread (per-position reductions of a large result, completing
// and serializing a large answer, packing it into the store) gives the event loop back every few
// milliseconds, so /health and other clients' streams are answered while it runs. ORT itself runs
// on its own thread (runtime/ort-thread.ts).
//
// Every such piece of work waits for its turn in ONE queue for the whole process: one slice per
// event-loop iteration, whoever it belongs to. With a setImmediate per job instead, each iteration
// ran one slice of every job in progress (four big answers and two lenses: ~30 ms of slices, more
// on a busy machine) before the loop got back to the network.

let lastTurn: Promise<void> = Promise.resolve();

/**
 * Resolves in a later event-loop iteration than any turn handed out before it (one setImmediate
 * after the previous turn resolved), so queued work runs one slice per iteration, in FIFO order.
 */
export function nextTurn(): Promise<void> {
  lastTurn = lastTurn.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
  return lastTurn;
}

/** Waits for its turn (nextTurn) once `sliceMs` have passed since the last one. */
export class LoopTurns {
  private deadline: number;

  constructor(private readonly sliceMs = 5) {
    this.deadline = performance.now() + sliceMs;
  }

  /** Resolves at once while within the slice; else at the caller's next turn. */
  async check(): Promise<void> {
    if (performance.now() < this.deadline) return;
    await nextTurn();
    this.deadline = performance.now() + this.sliceMs;
  }
}
