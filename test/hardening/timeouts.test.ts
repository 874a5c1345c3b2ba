// A client that sends its body slowly (or never finishes it) is answered 408 REQUEST_TIMEOUT and
// disconnected after the body timeout, instead of holding the connection for Node's default 300 s.
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let gw: Gateway;
let model: LensModel;
beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model], { bodyTimeoutMs: 500 });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

test('a body trickling in slower than the timeout gets 408 REQUEST_TIMEOUT and the connection closes', async () => {
  const { port } = new URL(gw.url);
  const socket = connect(Number(port), '127.0.0.1');
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve('closed')));
  socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":');
  const trickle = setInterval(() => socket.write(' '), 100);
  const t0 = performance.now();
  const outcome = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), 5000))]);
  clearInterval(trickle);
  socket.destroy();
  expect(outcome).toBe('closed');
  expect(performance.now() - t0).toBeLessThan(3000);
  expect(answer).toMatch(/^HTTP\/1\.1 408/);
  expect(answer).toMatch(/REQUEST_TIMEOUT/);
});

test('headers trickling in slower than the timeout: the connection is answered 408 and closed (Node headersTimeout)', async () => {
  const { port } = new URL(gw.url);
  const socket = connect(Number(port), '127.0.0.1');
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString()));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve('closed')));
  socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\n');
  const trickle = setInterval(() => socket.write('X-Pad: 1\r\n'), 100);
  const t0 = performance.now();
  const outcome = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open'), 8000))]);
  clearInterval(trickle);
  socket.destroy();
  expect(outcome).toBe('closed');
  // 500 ms timeout, checked every 500 ms: well before Node's defaults (60 s headers, 300 s request).
  expect(performance.now() - t0).toBeLessThan(5000);
  expect(answer).toMatch(/^HTTP\/1\.1 408/);
});
