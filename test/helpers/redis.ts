// A real Redis for the distributed-mode tests. CI (.ci/run) starts one redis-server and sets
// LENSGATE_TEST_REDIS_URL; each test file then takes its own database number and flushes it.
// Outside CI a test file starts its own redis-server on a free loopback port when the binary is
// installed (Debian package redis-server), and the tests are skipped with a reason when it is not.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export interface TestRedis {
  url: string;
  stop(): Promise<void>;
}

const BINARIES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/usr/sbin/redis-server'];

export const redisServerBinary = BINARIES.find((b) => existsSync(b)) ?? null;
export const redisAvailable = Boolean(process.env.LENSGATE_TEST_REDIS_URL || redisServerBinary);
export const noRedisReason = 'no Redis: set LENSGATE_TEST_REDIS_URL (as .ci/run does) or install redis-server';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPing(url: string, child?: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child && child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await r.connect();
      await r.ping();
      return;
    } catch {
      await new Promise((res) => setTimeout(res, 100));
    } finally {
      r.disconnect();
    }
  }
  throw new Error(`Redis at ${url} did not answer`);
}

/** A clean Redis database for one test file: `db` must differ between files sharing CI's server. */
export async function startTestRedis(db: number): Promise<TestRedis> {
  const shared = process.env.LENSGATE_TEST_REDIS_URL;
  if (shared) {
    const url = `${shared.replace(/\/\d*$/, '')}/${db}`;
    await waitForPing(url);
    const flush = async () => {
      const r = new Redis(url, { maxRetriesPerRequest: 1 });
      await r.flushdb();
      r.disconnect();
    };
    await flush();
    return { url, stop: flush };
  }
  if (!redisServerBinary) throw new Error(noRedisReason);
  const port = await freePort();
  const child = spawn(redisServerBinary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}/${db}`;
  await waitForPing(url, child);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
