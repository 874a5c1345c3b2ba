// Every ONNX Runtime session of the process lives on one worker thread (ort-host.mjs); the sessions
// handed out here are proxies with the InferenceSession calls the rest of the code uses. onnxruntime-
// node computes synchronously on the thread that calls `run` (and builds a session the same way), so
// on the main thread one layer of a large model blocked every other client for its whole duration.
// Weights stay memory-mapped once: the thread is in the same process, ORT maps them there.
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { LensError, type LensErrorCode } from '../errors.js';

type Outputs = ort.InferenceSession.OnnxValueMapType;
type Feeds = Record<string, ort.Tensor>;

/** What the code needs of a session; the proxy below and ort.InferenceSession both have it. */
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Feeds are copied to the ORT thread (the caller keeps them); views on a SharedArrayBuffer are
   * copied by the ORT thread rather than the caller's, and must not be written until the run
   * settles. Outputs arrive as buffers of their own.
   */
  run(feeds: Feeds, fetches?: readonly string[]): Promise<Outputs>;
  release(): Promise<void>;
}

interface WireTensor {
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ort.Tensor.DataType;
}

interface Reply {
  id: number;
  error?: { message: string; code?: string };
  session?: number;
  inputNames?: string[];
  outputNames?: string[];
  outputs?: Record<string, WireTensor>;
}

const CODES = new Set<string>([
  'BAD_USER_INPUT',
  'CANCELLED',
  'CHECKPOINT_INVALID',
  'DEVICE_UNAVAILABLE',
  'INTERNAL',
  'UNAVAILABLE',
]);

function asError(e: { message: string; code?: string }): Error {
  return e.code && CODES.has(e.code) ? new LensError(e.code as LensErrorCode, e.message) : new Error(e.message);
}

/**
 * A feed's data as it crosses to the thread: a view on part of a buffer is copied to a buffer of its
 * own and moved (structured clone would copy the whole underlying buffer); a whole buffer is cloned;
 * a view on a SharedArrayBuffer is shared (and copied on the ORT thread).
 */
function wireFeeds(feeds: Feeds): { feeds: Record<string, WireTensor>; transfer: ArrayBuffer[] } {
  const out: Record<string, WireTensor> = {};
  const transfer: ArrayBuffer[] = [];
  for (const [name, t] of Object.entries(feeds)) {
    let data = t.data;
    // A SharedArrayBuffer is shared with the thread and copied there, not on this thread.
    if (ArrayBuffer.isView(data) && !(data.buffer instanceof SharedArrayBuffer)) {
      const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      if (!whole) {
        data = (data as unknown as { slice(): ort.Tensor.DataType }).slice();
        transfer.push((data as unknown as ArrayBufferView).buffer as ArrayBuffer);
      }
    }
    out[name] = { type: t.type, dims: t.dims, data };
  }
  return { feeds: out, transfer };
}

interface Pending {
  resolve(r: Reply): void;
  reject(e: Error): void;
}

/** The process's ORT thread: started on first use, unreferenced while idle so it never keeps the process alive. */
export class OrtThread {
  private worker?: Worker;
  /** Bumped when a thread ends: sessions of an earlier thread are gone with it. */
  private generation = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** Builds a session on the thread. `model` is copied; ORT maps external weights from `options`' folder there. */
  async create(model: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<OrtSession> {
    const generation = this.start();
    const r = await this.call({ op: 'create', model, options });
    return new RemoteSession(this, generation, r.session!, r.inputNames!, r.outputNames!);
  }

  /** Ends the thread; whatever was sent and not answered rejects with CANCELLED. */
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.end(new LensError('CANCELLED', 'the ONNX Runtime thread was closed'));
    // The host ends itself after the operation it is computing (ort-host.mjs: terminating it
    // mid-run aborts the process); answers still in flight find no one waiting and are dropped.
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.ref();
    w.postMessage({ op: 'close' });
    await exited;
  }

  /** Sessions and calls in flight (for tests and shutdown). */
  get busy(): number {
    return this.pending.size;
  }

  /** @internal */
  isCurrent(generation: number): boolean {
    return this.worker !== undefined && generation === this.generation;
  }

  /** @internal */
  call(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<Reply> {
    const w = this.worker;
    if (!w) return Promise.reject(new LensError('CANCELLED', 'the ONNX Runtime thread was closed'));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) w.ref();
      try {
        w.postMessage({ ...msg, id }, transfer);
      } catch (e) {
        this.settle(id);
        reject(e as Error);
      }
    });
  }

  private start(): number {
    if (this.worker) return this.generation;
    const w = new Worker(new URL('./ort-host.mjs', import.meta.url), {
      // The host is plain JavaScript: no TypeScript loader (tsx's --import) is needed in the thread.
      execArgv: [],
      name: 'onnxruntime',
    });
    w.unref();
    w.on('message', (r: Reply) => {
      const p = this.settle(r.id);
      if (!p) return;
      if (r.error) p.reject(asError(r.error));
      else p.resolve(r);
    });
    w.on('error', (e) => {
      if (this.worker === w) this.end(new LensError('INTERNAL', `the ONNX Runtime thread failed: ${e.message}`));
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.end(new LensError('INTERNAL', `the ONNX Runtime thread exited (code ${code})`));
    });
    this.worker = w;
    return this.generation;
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if (p && this.pending.size === 0) this.worker?.unref();
    return p;
  }

  private end(err: LensError): void {
    this.worker = undefined;
    this.generation++;
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(err);
  }
}

class RemoteSession implements OrtSession {
  private released = false;

  constructor(
    private readonly thread: OrtThread,
    private readonly generation: number,
    private readonly id: number,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  async run(feeds: Feeds, fetches?: readonly string[]): Promise<Outputs> {
    // Nothing should run a closed model (the registry stops routing to it first): a bug, so INTERNAL.
    if (this.released) throw new LensError('INTERNAL', 'the session was released (model closed)');
    if (!this.thread.isCurrent(this.generation)) throw new LensError('CANCELLED', 'the ONNX Runtime thread holding this session has ended');
    const wire = wireFeeds(feeds);
    const r = await this.thread.call({ op: 'run', session: this.id, feeds: wire.feeds, fetches }, wire.transfer);
    const out: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(r.outputs!)) out[name] = new ort.Tensor(t.type, t.data as Float32Array, t.dims);
    return out;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (!this.thread.isCurrent(this.generation)) return;
    await this.thread.call({ op: 'release', session: this.id });
  }
}

let shared: OrtThread | undefined;

/** The one ORT thread of this process. */
export function ortThread(): OrtThread {
  shared ??= new OrtThread();
  return shared;
}
