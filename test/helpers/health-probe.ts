// Measures how long /health takes to answer while something else runs, from a worker thread (its
// own event loop, so a stall of the server's loop shows up as latency instead of hiding it).

import { Worker } from 'node:worker_threads';

const PINGER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
let running = true;
parentPort.on('message', () => { running = false; });
function ping() {
  if (!running) { agent.destroy(); parentPort.postMessage(latencies); return; }
  const t0 = performance.now();
  const req = http.get(workerData.url, { agent }, (res) => {
    res.resume();
    res.on('end', () => { latencies.push(performance.now() - t0); setTimeout(ping, workerData.intervalMs); });
  });
  req.on('error', () => { latencies.push(Infinity); setTimeout(ping, workerData.intervalMs); });
}
ping();
`;

export interface HealthProbe {
  /** Stops pinging; resolves with every latency in ms (Infinity for a failed ping). */
  stop(): Promise<number[]>;
}

/** Pings `healthUrl` every `intervalMs` (one at a time) until stop(). */
export function probeHealth(healthUrl: string, intervalMs = 10): HealthProbe {
  const worker = new Worker(PINGER, { eval: true, workerData: { url: healthUrl, intervalMs } });
  const result = new Promise<number[]>((resolve, reject) => {
    worker.once('message', (m: number[]) => resolve(m));
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const latencies = await result;
      await worker.terminate();
      return latencies;
    },
  };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
