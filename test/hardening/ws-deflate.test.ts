// graphql-ws permessage-deflate keeps one deflate context per socket for as long as the socket stays
// open, from its first compressed message on: its window and memory level are bounded
// (bench/deflate.ts measures the settings against the streamed wire size).
import { execFileSync } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import type { LensModel } from '../../src/lens/types.js';
import { PER_MESSAGE_DEFLATE } from '../../src/server/ws.js';
import { startGateway } from '../server/harness.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
beforeAll(async () => {
  model = await openDeepGpt2();
});
afterAll(() => model.close());

function upgrade(url: string): Promise<{ ws: WebSocket; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    // ws's client offers what browsers do: permessage-deflate; client_max_window_bits
    const ws = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: true });
    let headers: IncomingMessage['headers'] = {};
    ws.once('upgrade', (res) => (headers = res.headers));
    ws.once('open', () => resolve({ ws, headers }));
    ws.once('error', reject);
  });
}

test('a compressed socket negotiates a bounded deflate window', async () => {
  const gw = await startGateway([model]);
  try {
    const probe = await upgrade(gw.wsUrl);
    // ws compresses with the window it announces (RFC 7692 server_max_window_bits; 15 when absent).
    const bits = /server_max_window_bits=(\d+)/.exec(String(probe.headers['sec-websocket-extensions']))?.[1];
    expect(Number(bits)).toBeLessThanOrEqual(13);
    probe.ws.close();
  } finally {
    await gw.stop();
  }
});

test("the server's deflate context, kept by every socket that was sent a compressed message, stays under 200 KiB", () => {
  // ws's own compressor with the server's settings, 100 of them after one LayerResult-sized message
  // each, in a fresh process (zlib allocates with malloc, which V8's external memory does not see).
  const wsRequire = createRequire(import.meta.url);
  const script = `
    const PMD = require(${JSON.stringify(join(dirname(wsRequire.resolve('ws')), 'lib', 'permessage-deflate.js'))});
    const options = JSON.parse(process.argv[1]);
    const data = Buffer.from(Array.from({ length: 6000 }, (_, i) => String.fromCharCode(48 + ((i * 7919) % 75))).join(''));
    (async () => {
      const one = (held) => new Promise((resolve, reject) => {
        // What browsers offer: permessage-deflate; client_max_window_bits
        const p = new PMD({ ...options, isServer: true });
        p.accept([{ client_max_window_bits: [true] }]);
        p.compress(data, true, (err) => (err ? reject(err) : resolve(held.push(p))));
      });
      await one([]);
      gc();
      const before = process.memoryUsage().rss;
      const held = [];
      for (let i = 0; i < 100; i++) await one(held);
      gc();
      console.log((process.memoryUsage().rss - before) / 100);
    })();`;
  const perSocket = Number(execFileSync(process.execPath, ['--expose-gc', '-e', script, JSON.stringify(PER_MESSAGE_DEFLATE)]).toString());
  // With zlib's 15-bit window: 235–250 KiB (the server's settings: about 150 KiB).
  expect(perSocket).toBeGreaterThan(0);
  expect(perSocket).toBeLessThan(200 * 1024);
});
