// Clients of a gateway under test that run on a worker thread: the gateway runs inside the test's
// process, and a client on the same event loop would put its own work (JSON.parse of a 5 MB answer,
// graphql-ws bookkeeping, building requests) into the latencies a test measures for the server. A
// real client is another process; a thread keeps the test to one process and the loop to the server.

import { Worker } from 'node:worker_threads';

const POSTER = `
const { parentPort, workerData } = require('node:worker_threads');
Promise.all(
  workerData.bodies.map((body) =>
    fetch(workerData.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(async (r) => ({
      status: r.status,
      body: await r.arrayBuffer(),
    })),
  ),
).then(
  (answers) => parentPort.postMessage({ answers }, answers.map((a) => a.body)),
  (e) => parentPort.postMessage({ error: String(e && e.stack || e) }),
);
`;

export interface RawAnswer {
  status: number;
  /** The response body's bytes, unparsed: parse them once the measurement is over. */
  body: ArrayBuffer;
}

/** POSTs every body to `url` at once from a worker thread; resolves with the raw answers in order. */
export function postInThread(url: string, bodies: string[]): Promise<RawAnswer[]> {
  return runThread<RawAnswer[]>(new Worker(POSTER, { eval: true, workerData: { url, bodies } }), (m) => (m as { answers: RawAnswer[] }).answers);
}

/** Runs an ES module (plain JS) on a worker thread with `workerData`; resolves with its one message. */
export function runInThread<T>(module: URL, workerData: unknown): Promise<T> {
  return runThread<T>(new Worker(module, { workerData }), (m) => (m as { result: T }).result);
}

function runThread<T>(worker: Worker, pick: (m: unknown) => T): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    worker.once('message', (m: { error?: string }) => {
      if (m.error) reject(new Error(m.error));
      else resolve(pick(m));
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`client thread exited (${code}) without an answer`)));
  });
}
