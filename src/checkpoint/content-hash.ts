// A model's content hash: what identical-request caching keys on. It covers every byte the loader
// reads (config, tokenizer files, the safetensors index and every weight file), so a checkpoint
// retrained in place with the same shapes gets a new hash — headers, sizes or mtimes alone would
// not see that. Hashing 16 GB takes seconds, so each file's digest is remembered under
// (host, real path, size, mtime, inode): restarts and unchanged files cost one stat each.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, realpathSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { weightFiles } from './hf-dir.js';

/** Remembers file digests across runs (the persistent store implements it). */
export interface DigestMemo {
  getDigest(key: string): string | null | Promise<string | null>;
  setDigest(key: string, digest: string): void | Promise<void>;
}

const SIDE_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json'];

/** The files whose bytes decide a model's outputs, in a fixed order. */
export function contentFiles(dir: string): string[] {
  const real = realpathSync(dir);
  const side = SIDE_FILES.map((f) => join(real, f)).filter((f) => existsSync(f));
  return [...side, ...weightFiles(real)];
}

async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 over (file name, sha256 of its bytes) for every content file; hex. */
export async function modelContentHash(dir: string, memo?: DigestMemo): Promise<string> {
  const total = createHash('sha256');
  for (const file of contentFiles(dir)) {
    const real = realpathSync(file);
    const st = statSync(real);
    const key = `${hostname()}\u0000${real}\u0000${st.size}\u0000${st.mtimeMs}\u0000${st.ino}`;
    let digest = (await memo?.getDigest(key)) ?? null;
    if (!digest) {
      digest = await fileDigest(real);
      await memo?.setDigest(key, digest);
    }
    total.update(`${basename(file)}\u0000${digest}\n`);
  }
  return total.digest('hex');
}
