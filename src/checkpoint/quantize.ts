// Weight-only block quantization for ONNX Runtime's com.microsoft MatMulNBits (the format
// onnxruntime-genai uses on CPU): per output row, blocks of `blockSize` inputs share one float32
// scale and one uint8 zero point; w ≈ (q − zero) · scale with q in [0, 2^bits − 1].
//
// Quantized weights are cached next to the checkpoint in `lensgate-quantized/<int4|int8>-b<block>/`,
// one safetensors file per weight plus a manifest naming the source files (size, mtime) they came
// from; the checkpoint's own files are only read. A stale cache (source changed) is rebuilt.

import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LensError } from '../errors.js';
import { f16ToF32, readSafetensorsHeader, safetensorsPrefix, type StDtype, type StTensor } from './safetensors.js';

export type QuantizeMode = 'int8' | 'int4';

export const QUANTIZE_MODES: readonly QuantizeMode[] = ['int8', 'int4'];

/** Inputs per scale: onnxruntime-genai's CPU default, and small enough that int4 keeps ~1% error. */
export const QUANT_BLOCK = 32;

/** Bump when the cached bytes would differ for the same source and settings. */
const CACHE_FORMAT = 1;

export const CACHE_FOLDER = 'lensgate-quantized';

/** One weight W [N, K] (N outputs, K inputs) in MatMulNBits layout. */
export interface QuantizedWeight {
  bits: 4 | 8;
  blockSize: number;
  N: number;
  K: number;
  /** [N, blocks, blockSize·bits/8]; int4: two values per byte, the even index in the low nibble. */
  q: Uint8Array;
  /** [N · blocks] */
  scales: Float32Array;
  /** [N · ceil(blocks·bits/8)]; int4: packed like q. */
  zeros: Uint8Array;
}

export function bitsOf(mode: QuantizeMode): 4 | 8 {
  return mode === 'int4' ? 4 : 8;
}

/** Sizes of the three MatMulNBits inputs for W [N, K]. */
export function quantizedShape(N: number, K: number, bits: number, blockSize: number) {
  const blocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const zeroBytes = Math.ceil((blocks * bits) / 8);
  return { blocks, blob, zeroBytes, qBytes: N * blocks * blob, scaleCount: N * blocks, zeroCount: N * zeroBytes };
}

/**
 * Asymmetric min/max quantization of rows [n0, n0 + rows) of W [N, K] given as float32 `src`
 * ([rows, K], row-major) into `out`. The range always contains 0 so a zero weight stays exact;
 * inputs past K (the last block's padding) get the zero point and dequantize to 0.
 */
export function quantizeRows(src: Float32Array, n0: number, rows: number, out: QuantizedWeight): void {
  const { bits, blockSize: bs, K } = out;
  const { blocks, blob, zeroBytes } = quantizedShape(out.N, K, bits, bs);
  const maxq = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    const n = n0 + r;
    const row = r * K;
    for (let b = 0; b < blocks; b++) {
      const k0 = b * bs;
      const k1 = Math.min(K, k0 + bs);
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const x = src[row + k];
        if (x < lo) lo = x;
        else if (x > hi) hi = x;
      }
      const scale = hi > lo ? (hi - lo) / maxq : 1;
      const zero = Math.min(maxq, Math.max(0, Math.round(-lo / scale)));
      out.scales[n * blocks + b] = scale;
      const inv = 1 / scale;
      const at = (n * blocks + b) * blob;
      if (bits === 8) {
        out.zeros[n * zeroBytes + b] = zero;
        for (let j = 0; j < bs; j++) {
          const k = k0 + j;
          out.q[at + j] = k < k1 ? Math.min(maxq, Math.max(0, Math.round(src[row + k] * inv) + zero)) : zero;
        }
      } else {
        out.zeros[n * zeroBytes + (b >> 1)] |= zero << ((b & 1) * 4);
        for (let j = 0; j < bs; j += 2) {
          const k = k0 + j;
          const v0 = k < k1 ? Math.min(maxq, Math.max(0, Math.round(src[row + k] * inv) + zero)) : zero;
          const v1 = k + 1 < k1 ? Math.min(maxq, Math.max(0, Math.round(src[row + k + 1] * inv) + zero)) : zero;
          out.q[at + (j >> 1)] = v0 | (v1 << 4);
        }
      }
    }
  }
}

export function emptyQuantized(N: number, K: number, bits: 4 | 8, blockSize: number): QuantizedWeight {
  const s = quantizedShape(N, K, bits, blockSize);
  return { bits, blockSize, N, K, q: new Uint8Array(s.qBytes), scales: new Float32Array(s.scaleCount), zeros: new Uint8Array(s.zeroCount) };
}

let f16Table: Float32Array | undefined;

/** Float data of any checkpoint float dtype → float32, fast paths for the 16-bit ones. */
function toFloat32(bytes: Uint8Array, dtype: string): Float32Array {
  if (dtype === 'F32') return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const out = new Float32Array(h.length);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  } else if (dtype === 'F16') {
    f16Table ??= Float32Array.from({ length: 65536 }, (_, i) => f16ToF32(i));
    for (let i = 0; i < h.length; i++) out[i] = f16Table[h[i]];
  } else {
    throw new LensError('CHECKPOINT_INVALID', `cannot quantize a ${dtype} weight`);
  }
  return out;
}

function readBytes(fd: number, offset: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n <= 0) throw new LensError('CHECKPOINT_INVALID', 'short read while quantizing');
    done += n;
  }
  return buf;
}

/** Rows per read while quantizing a torch-layout weight: bounds the float32 copy to ~16 MB. */
const ROWS_BYTES = 16 * 2 ** 20;

/**
 * Quantizes a checkpoint weight. `layout` 'out_in' is torch Linear [N, K], read a slab of rows at a
 * time; 'in_out' (GPT-2 Conv1D [K, N]) is read whole and transposed. Yields to the event loop
 * between slabs so a server stays responsive while an 8B model quantizes.
 */
export async function quantizeTensor(t: StTensor, layout: 'out_in' | 'in_out', bits: 4 | 8, blockSize: number): Promise<QuantizedWeight> {
  const [d0, d1] = t.shape;
  const [N, K] = layout === 'out_in' ? [d0, d1] : [d1, d0];
  const out = emptyQuantized(N, K, bits, blockSize);
  const el = t.byteLength / (d0 * d1);
  const fd = openSync(t.file, 'r');
  try {
    if (layout === 'in_out') {
      const w = toFloat32(readBytes(fd, t.fileOffset, t.byteLength), t.dtype);
      const tr = new Float32Array(N * K);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) tr[n * K + k] = w[k * N + n];
      quantizeRows(tr, 0, N, out);
      return out;
    }
    const per = Math.max(1, Math.floor(ROWS_BYTES / (4 * K)));
    for (let n0 = 0; n0 < N; n0 += per) {
      const rows = Math.min(per, N - n0);
      quantizeRows(toFloat32(readBytes(fd, t.fileOffset + n0 * K * el, rows * K * el), t.dtype), n0, rows, out);
      await new Promise((r) => setImmediate(r));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

interface Manifest {
  format: number;
  bits: number;
  blockSize: number;
  /** The checkpoint files the weights were read from: a change in any invalidates the cache. */
  sources: Array<{ file: string; size: number; mtimeMs: number }>;
}

/** Where the quantized weights of a model live and whether they come from a cache. */
export interface QuantizationInfo {
  mode: QuantizeMode;
  bits: 4 | 8;
  blockSize: number;
  /** Folder of the cached weights; null when they are quantized at every load (folder not writable). */
  cacheDir: string | null;
  /** Why there is no cache, or null. */
  note: string | null;
}

/**
 * Quantized weights for the block graphs: read from the cache folder when it holds them for the
 * current source files, else quantized from the checkpoint (and written to the cache when possible).
 */
export class QuantizedWeights {
  readonly bits: 4 | 8;
  readonly blockSize = QUANT_BLOCK;
  readonly info: QuantizationInfo;
  private readonly dir: string | null;

  constructor(
    readonly mode: QuantizeMode,
    checkpointDir: string,
    sourceFiles: string[],
    cacheRoot: string | null = join(checkpointDir, CACHE_FOLDER),
  ) {
    if (!QUANTIZE_MODES.includes(mode)) throw new LensError('BAD_USER_INPUT', `quantize must be "int8" or "int4" (got ${JSON.stringify(mode)})`);
    this.bits = bitsOf(mode);
    let dir: string | null = null;
    let note: string | null = cacheRoot ? null : 'cache disabled: weights are quantized at every load';
    if (cacheRoot) {
      const folder = join(cacheRoot, `${mode}-b${this.blockSize}`);
      try {
        mkdirSync(folder, { recursive: true });
        prepareCache(folder, {
          format: CACHE_FORMAT,
          bits: this.bits,
          blockSize: this.blockSize,
          sources: sourceFiles.map((f) => ({ file: f, size: statSync(f).size, mtimeMs: statSync(f).mtimeMs })),
        });
        dir = folder;
      } catch (e) {
        note = `no cache (${(e as Error).message}): weights are quantized at every load`;
      }
    }
    this.dir = dir;
    this.info = { mode, bits: this.bits, blockSize: this.blockSize, cacheDir: dir, note };
  }

  /** The weight quantized, from the cache or computed now (and cached). */
  async get(t: StTensor, layout: 'out_in' | 'in_out'): Promise<QuantizedWeight> {
    const file = this.dir ? join(this.dir, `${t.name}.safetensors`) : null;
    if (file && existsSync(file)) {
      const hit = readCached(file, this.bits, this.blockSize);
      if (hit) return hit;
    }
    const w = await quantizeTensor(t, layout, this.bits, this.blockSize);
    if (file) {
      try {
        writeCached(file, w);
      } catch {
        // A full disk costs the next load a re-quantization, not this one.
      }
    }
    return w;
  }
}

/** Keeps the folder's weights if the manifest matches; else removes them and writes the new manifest. */
function prepareCache(folder: string, m: Manifest): void {
  const path = join(folder, 'manifest.json');
  const want = JSON.stringify(m, null, 2);
  if (existsSync(path) && readFileSync(path, 'utf8') === want) return;
  for (const f of readdirSync(folder)) if (f.endsWith('.safetensors') || f.endsWith('.partial')) rmSync(join(folder, f));
  writeFileSync(`${path}.partial`, want);
  renameSync(`${path}.partial`, path);
}

function writeCached(file: string, w: QuantizedWeight): void {
  const parts: Array<[string, StDtype, number[], Uint8Array]> = [
    ['q', 'U8', [w.N, w.q.length / w.N], w.q],
    ['scales', 'F32', [w.scales.length], new Uint8Array(w.scales.buffer, w.scales.byteOffset, w.scales.byteLength)],
    ['zeros', 'U8', [w.zeros.length], w.zeros],
  ];
  const prefix = safetensorsPrefix(
    parts.map(([name, dtype, shape, bytes]) => ({ name, dtype, shape, byteLength: bytes.length })),
    { bits: String(w.bits), block_size: String(w.blockSize), N: String(w.N), K: String(w.K) },
  );
  const tmp = `${file}.partial`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    for (const [, , , bytes] of parts) writeSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** A cached weight, or null when the file does not hold what these settings need. */
function readCached(file: string, bits: 4 | 8, blockSize: number): QuantizedWeight | null {
  try {
    const { tensors, metadata } = readSafetensorsHeader(file);
    if (Number(metadata.bits) !== bits || Number(metadata.block_size) !== blockSize) return null;
    const N = Number(metadata.N);
    const K = Number(metadata.K);
    const s = quantizedShape(N, K, bits, blockSize);
    const by = new Map(tensors.map((t) => [t.name, t]));
    const q = by.get('q');
    const sc = by.get('scales');
    const z = by.get('zeros');
    if (!q || !sc || !z || q.byteLength !== s.qBytes || sc.byteLength !== s.scaleCount * 4 || z.byteLength !== s.zeroCount) return null;
    const fd = openSync(file, 'r');
    try {
      if (fstatSync(fd).size < z.fileOffset + z.byteLength) return null;
      const scales = readBytes(fd, sc.fileOffset, sc.byteLength);
      return {
        bits,
        blockSize,
        N,
        K,
        q: readBytes(fd, q.fileOffset, q.byteLength),
        scales: new Float32Array(scales.buffer, scales.byteOffset, s.scaleCount),
        zeros: readBytes(fd, z.fileOffset, z.byteLength),
      };
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}
