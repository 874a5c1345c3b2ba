// Real server processes for tests that need restarts, SIGKILL or several machines' worth of
// processes: `npm start` / `lensgate worker` run as children on loopback, port 0.

import { spawn, type ChildProcess } from 'node:child_process';

export interface Child {
  proc: ChildProcess;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string | null>;
  /** Everything printed so far. */
  output(): string;
  /** Resolves once the output matches; rejects if the process exits first or after timeoutMs. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export function spawnTsx(script: string, args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<number | string | null>((r) => proc.on('exit', (code, signal) => r(code ?? signal)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const l of listeners) l();
  });
  return {
    proc,
    exited,
    output: () => out,
    waitFor(pattern, timeoutMs = 150_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`timed out waiting for ${pattern}:\n${out}`)), timeoutMs);
        const check = () => {
          const m = pattern.exec(out);
          if (m) finish(null, m);
          else if (done) finish(new Error(`process exited before ${pattern}:\n${out}`));
        };
        function finish(err: Error | null, m?: RegExpExecArray) {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve(m!);
        }
        listeners.add(check);
        check();
      });
    },
    kill(signal = 'SIGTERM') {
      if (!done) proc.kill(signal);
      return exited;
    },
  };
}

/** `npm start` with these arguments on a free loopback port; resolves once it is ready. */
export async function startServer(args: string[], env: Record<string, string> = {}): Promise<Child & { url: string }> {
  const child = spawnTsx('src/cli/serve.ts', ['--host', '127.0.0.1', '--port', '0', '--device', 'cpu', ...args], env);
  const [, url] = await child.waitFor(/listening on (\S+)/);
  await child.waitFor(/lensgate: ready/);
  return Object.assign(child, { url });
}
