// The default result store: one SQLite file (node-sqlite3-wasm: SQLite compiled to WebAssembly with
// a VFS on node:fs, so `npm ci` needs no compiler and no binary download).
//
// Durability: WAL journal with synchronous=NORMAL. Each put is one transaction whose pages are
// written to the file (write(2)) before put() resolves, so a result whose query already returned
// survives `kill -9`; only an OS crash or power loss can roll back the last commits (fsync happens
// at WAL checkpoints). WAL without shared memory needs locking_mode=EXCLUSIVE: one process owns the
// file. The WASM VFS locks with a `<file>.lock` directory that a killed process leaves behind, so
// the owner's pid is written next to it and a lock whose owner is gone is cleared on open.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import sqlite from 'node-sqlite3-wasm';
import type { DigestMemo } from '../checkpoint/content-hash.js';
import {
  deserializeResult,
  EXPIRED_IDS_KEPT,
  expiredError,
  serializeResult,
  type EvictionReason,
  type ResultStore,
  type ResultStoreStats,
  type StoredResult,
} from './result-store.js';

const { Database } = sqlite;
type Db = InstanceType<typeof Database>;

export interface SqliteStoreOptions {
  /** Total size of stored results; the oldest are deleted past it. Default 1 GiB. */
  maxBytes?: number;
  /** How long a result is kept after it was stored; default: until the byte budget evicts it. */
  ttlMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS results (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  model_id TEXT NOT NULL,
  prompt TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  cache_key TEXT,
  bytes INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS results_cache_key ON results(cache_key, seq);
CREATE TABLE IF NOT EXISTS file_digests (key TEXT PRIMARY KEY, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS expired (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE);
`;
// Files written before results had a time to live get the column (NULL: never expires).
const EXPIRY_COLUMN = 'ALTER TABLE results ADD COLUMN expires_at INTEGER';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Clears a lock left by a killed owner; refuses a file another live process holds. */
function claim(file: string): void {
  const ownerFile = `${file}.owner`;
  let owner = NaN;
  try {
    owner = Number(readFileSync(ownerFile, 'utf8').trim());
  } catch {
    // no owner file: never opened, or closed cleanly
  }
  if (Number.isInteger(owner) && owner !== process.pid && pidAlive(owner)) {
    throw new Error(`result store ${file} is in use by process ${owner}; give each server its own --store file`);
  }
  rmSync(`${file}.lock`, { recursive: true, force: true });
  writeFileSync(ownerFile, String(process.pid));
}

export class SqliteResultStore implements ResultStore, DigestMemo {
  readonly file: string;
  private readonly db: Db;
  private readonly maxBytes: number;
  private readonly ttlMs: number | null;
  private readonly now: () => number;
  private totalBytes: number;
  private closed = false;
  private readonly evictions: Record<EvictionReason, number> = { bytes: 0, count: 0, ttl: 0, too_large: 0 };

  constructor(file: string, options: SqliteStoreOptions = {}) {
    this.file = resolve(file);
    this.maxBytes = options.maxBytes ?? 1024 ** 3;
    this.ttlMs = options.ttlMs ?? null;
    this.now = options.now ?? Date.now;
    mkdirSync(dirname(this.file), { recursive: true });
    claim(this.file);
    this.db = new Database(this.file);
    try {
      this.db.exec('PRAGMA locking_mode=EXCLUSIVE');
      this.db.get('PRAGMA journal_mode=WAL');
      this.db.exec('PRAGMA synchronous=NORMAL');
      this.db.exec(SCHEMA);
      const columns = this.db.all('PRAGMA table_info(results)').map((c) => c.name);
      if (!columns.includes('expires_at')) this.db.exec(EXPIRY_COLUMN);
      this.db.exec('CREATE INDEX IF NOT EXISTS results_expires_at ON results(expires_at)');
      this.totalBytes = Number(this.db.get('SELECT COALESCE(SUM(bytes), 0) AS n FROM results')?.n ?? 0);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  async put(record: StoredResult): Promise<void> {
    const body = Buffer.from(await serializeResult(record), 'utf8');
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const old = this.db.get('SELECT bytes FROM results WHERE id = ?', [record.id]);
      if (old) {
        this.db.run('DELETE FROM results WHERE id = ?', [record.id]);
        this.totalBytes -= Number(old.bytes);
      }
      const now = this.now();
      this.db.run(
        'INSERT INTO results (id, model_id, prompt, created_at, cache_key, bytes, body, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        [record.id, record.modelId, record.prompt, record.createdAt.getTime(), record.cacheKey ?? null, body.length, body, this.ttlMs === null ? null : now + this.ttlMs],
      );
      this.db.run('DELETE FROM expired WHERE id = ?', [record.id]);
      this.totalBytes += body.length;
      this.sweep(now);
      this.evict();
      this.db.exec('COMMIT');
    } catch (err) {
      this.db.exec('ROLLBACK');
      this.totalBytes = Number(this.db.get('SELECT COALESCE(SUM(bytes), 0) AS n FROM results')?.n ?? 0);
      throw err;
    }
  }

  /** Oldest first until the budget holds; the newest result is always kept. */
  private evict(): void {
    while (this.totalBytes > this.maxBytes) {
      const oldest = this.db.get(
        'SELECT seq, bytes FROM results WHERE seq < (SELECT MAX(seq) FROM results) ORDER BY seq LIMIT 1',
      );
      if (!oldest) return;
      this.db.run('DELETE FROM results WHERE seq = ?', [Number(oldest.seq)]);
      this.totalBytes -= Number(oldest.bytes);
      this.evictions.bytes++;
    }
  }

  /** Moves results past their time to live to the expired ids (inside the caller's transaction). */
  private sweep(now: number): void {
    const gone = this.db.all('SELECT id, bytes FROM results WHERE expires_at <= ?', [now]);
    if (!gone.length) return;
    for (const row of gone) {
      this.db.run('INSERT OR REPLACE INTO expired (id) VALUES (?)', [row.id as string]);
      this.totalBytes -= Number(row.bytes);
      this.evictions.ttl++;
    }
    this.db.run('DELETE FROM results WHERE expires_at <= ?', [now]);
    this.db.run('DELETE FROM expired WHERE seq <= (SELECT MAX(seq) FROM expired) - ?', [EXPIRED_IDS_KEPT]);
  }

  async get(id: string): Promise<StoredResult | null> {
    const row = this.db.get('SELECT body, expires_at FROM results WHERE id = ?', [id]);
    if (row && (row.expires_at === null || Number(row.expires_at) > this.now())) return this.row(row);
    if (row) {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        this.sweep(this.now());
        this.db.exec('COMMIT');
      } catch (err) {
        this.db.exec('ROLLBACK');
        throw err;
      }
    }
    if (this.db.get('SELECT 1 AS x FROM expired WHERE id = ?', [id])) throw expiredError(id);
    return null;
  }

  async findByCacheKey(key: string): Promise<StoredResult | null> {
    return this.row(
      this.db.get('SELECT body FROM results WHERE cache_key = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq DESC LIMIT 1', [key, this.now()]),
    );
  }

  private row(row: Record<string, unknown> | null): StoredResult | null {
    if (!row) return null;
    const body = row.body as Uint8Array;
    return deserializeResult(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  }

  getDigest(key: string): string | null {
    return (this.db.get('SELECT digest FROM file_digests WHERE key = ?', [key])?.digest as string | undefined) ?? null;
  }

  setDigest(key: string, digest: string): void {
    this.db.run('INSERT OR REPLACE INTO file_digests (key, digest) VALUES (?, ?)', [key, digest]);
  }

  /** Results held, their bytes (stored JSON) and evictions since this process opened the file. */
  stats(): ResultStoreStats {
    if (this.ttlMs !== null && this.db.get('SELECT 1 AS x FROM results WHERE expires_at <= ? LIMIT 1', [this.now()])) {
      this.db.exec('BEGIN IMMEDIATE');
      this.sweep(this.now());
      this.db.exec('COMMIT');
    }
    const results = Number(this.db.get('SELECT COUNT(*) AS n FROM results')?.n ?? 0);
    return { results, bytes: this.totalBytes, maxBytes: this.maxBytes, evictions: { ...this.evictions } };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
    rmSync(`${this.file}.owner`, { force: true });
  }
}
