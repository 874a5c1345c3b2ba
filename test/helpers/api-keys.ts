// An `--api-keys` file (format in src/server/api-keys.ts) in its own temporary folder. A key left
// unspecified is `<name>-secret` and the limit 600 requests a minute, so a test lists only what matters
// to it (admin, a digest instead of the key, a low limit).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiKeys } from '../../src/server/api-keys.js';

export type KeySpec = ConstructorParameters<typeof ApiKeys>[0][number];

export interface ApiKeysFile {
  file: string;
  remove(): void;
}

export function writeApiKeys(keys: KeySpec[]): ApiKeysFile {
  const dir = mkdtempSync(join(tmpdir(), 'lensgate-keys-'));
  const file = join(dir, 'keys.json');
  const entries = keys.map((k) => ({ requestsPerMinute: 600, ...(k.key || k.sha256 ? {} : { key: `${k.name}-secret` }), ...k }));
  writeFileSync(file, JSON.stringify({ keys: entries }));
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
