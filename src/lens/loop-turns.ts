// Work in JavaScript on the gateway's thread (per-position reductions of a large result) gives the
// event loop back every few milliseconds, so /health and other clients' streams are answered
// while it runs. ORT itself runs on its own thread (runtime/ort-thread.ts).

/** Yields to the event loop (one setImmediate) once `sliceMs` have passed since the last yield. */
export class LoopTurns {
  private deadline: number;

  constructor(private readonly sliceMs = 5) {
    this.deadline = performance.now() + sliceMs;
  }

  /** Resolves at once while within the slice; else after one event-loop turn. */
  async check(): Promise<void> {
    if (performance.now() < this.deadline) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.deadline = performance.now() + this.sliceMs;
  }
}
