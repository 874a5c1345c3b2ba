import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../graph/onnx-builder.js';
import { LensError } from '../errors.js';
import { ortThread, type OrtSession } from './ort-thread.js';

export type { OrtSession } from './ort-thread.js';

ort.env.logLevel = 'error';

/** What an operator asks for; `auto` takes CUDA when it loads, else the CPU. */
export type Device = 'auto' | 'cpu' | 'cuda';

export type Provider = 'cpu' | 'cuda';

export interface SessionFactory {
  provider: Provider;
  /** Why the provider differs from the request (e.g. CUDA unavailable → CPU). */
  note: string | null;
  /** A session on the process's ORT thread (ort-thread.ts), so its calls never block the event loop. */
  create(model: Uint8Array, tuning?: SessionTuning): Promise<OrtSession>;
}

export interface SessionTuning {
  /**
   * The graph widens 16-bit weights per call (WeightBinder.castPerCall): constant folding must stay
   * off, or ORT would fold every Cast into a float32 copy of the weights at session creation.
   */
  castPerCall?: boolean;
  /**
   * The graph widens some 16-bit weights per call behind overridable initializers and lets ORT fold the
   * rest (a lens head with float32 rows, WeightBinder.bindRowChunks): constant folding stays on, but the
   * level is 'extended', as with castPerCall (level 'all' kills ORT 1.29 on a float16 initializer that
   * is not a constant feeding a Cast).
   */
  castSome?: boolean;
  /**
   * Let ORT repack constant MatMul/Gemm weights into its GEMM layout: faster GEMMs, but a packed
   * copy of each weight in anonymous memory next to the memory-mapped original.
   */
  prepack?: boolean;
  /**
   * ORT's CPU arena (default on): keeps each session's peak allocations for reuse. Off, buffers come
   * from the process heap, which all sessions share, so memory is bounded by one session's peak
   * rather than the sum over sessions.
   */
  arena?: boolean;
}

function options(dataRoot: string, provider: Provider, tuning: SessionTuning = {}): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    // Level 'all' adds only layout (NCHWc) passes, none of which apply to these graphs; with constant
    // folding off it also crashes ORT 1.29 on float16 initializers feeding a Cast (a failed assertion).
    graphOptimizationLevel: tuning.castPerCall || tuning.castSome ? 'extended' : 'all',
    enableCpuMemArena: tuning.arena ?? true,
    extra: {
      session: {
        // External-data locations are relative to this folder (the checkpoint's real directory).
        model_external_initializers_file_folder_path: dataRoot,
        // Off: weights stay memory-mapped instead of repacked copies (GPT-2 head: 77 MB RSS vs 224 MB).
        disable_prepacking: tuning.prepack ? '0' : '1',
        // Blocks and heads are separate sessions run back to back; a finished session's pool spinning
        // for work stole the cores from the next one (GPT-2 small, 20 tokens: 400 → 95 ms).
        intra_op: { allow_spinning: '0' },
      },
      // Semicolon-separated; a comma-separated list is silently ignored.
      ...(tuning.castPerCall ? { optimization: { disable_specified_optimizers: 'ConstantFolding' } } : {}),
    },
  };
}

/** Where onnxruntime-node looks for provider libraries on this platform. */
export function ortBinaryDir(): string {
  const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
}

export const CUDA_PROVIDER_LIB = 'libonnxruntime_providers_cuda.so';

/**
 * Why CUDA cannot even be tried, or null when its provider library is in place.
 * `dir` is where onnxruntime-node loads providers from (a parameter for tests only).
 */
export function cudaProviderMissing(dir: string = ortBinaryDir()): string | null {
  if (process.platform !== 'linux') return null;
  const lib = join(dir, CUDA_PROVIDER_LIB);
  return existsSync(lib) ? null : `CUDA provider library not installed (${lib}); run npm run setup:cuda`;
}

/** x[1,4] · W[4,2]: small, but creating and running it initialises the device and its BLAS. */
function defaultProbe(): Uint8Array {
  const g = new GraphBuilder('cuda_probe');
  const x = g.input('x', 'float', [1, 4]);
  g.output(g.op('MatMul', [x, g.constFloat32([1, 2, 3, 4, 5, 6, 7, 8], [4, 2])]), 'y', 'float', [1, 2]);
  return g.toBytes();
}

export interface FactoryOptions {
  /** Graph the CUDA probe session runs; default: a tiny MatMul. */
  probe?: Uint8Array;
  /** Where to look for the CUDA provider library (tests); ORT itself always loads from ortBinaryDir(). */
  providerDir?: string;
}

/**
 * Picks the execution provider once per model. `auto` tries CUDA with a probe session and falls
 * back to CPU with the reason; `cuda` fails loudly. ORT throws (rather than falling back) when the
 * CUDA provider library is missing, so the probe is what decides.
 */
export async function sessionFactory(dataRoot: string, device: Device, opts: FactoryOptions = {}): Promise<SessionFactory> {
  let note: string | null = null;
  const missing = device === 'cpu' ? null : cudaProviderMissing(opts.providerDir);
  if (missing) {
    if (device === 'cuda') throw new LensError('DEVICE_UNAVAILABLE', `CUDA execution provider unavailable: ${missing}`);
    note = `using CPU: ${missing}`;
  } else if (device !== 'cpu') {
    try {
      const s = await ortThread().create(opts.probe ?? defaultProbe(), options(dataRoot, 'cuda'));
      try {
        if (!opts.probe) await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 1, 1, 1]), [1, 4]) });
      } finally {
        await s.release();
      }
      return { provider: 'cuda', note: null, create: (m, t) => ortThread().create(m, options(dataRoot, 'cuda', t)) };
    } catch (e) {
      let reason = (e as Error).message.split('\n')[0];
      // ORT names the missing dependency only in its own log; say where to look.
      if (/Failed to load shared library/.test(reason)) {
        reason += ' (a CUDA 13 library it links against is missing or off LD_LIBRARY_PATH: npm run setup:cuda -- --check lists them)';
      }
      if (device === 'cuda') throw new LensError('DEVICE_UNAVAILABLE', `CUDA execution provider unavailable: ${reason}`);
      note = `CUDA unavailable, using CPU: ${reason}`;
    }
  }
  return {
    provider: 'cpu',
    note,
    create: async (m, t) => {
      try {
        return await ortThread().create(m, options(dataRoot, 'cpu', t));
      } catch (e) {
        throw new LensError('CHECKPOINT_INVALID', `ONNX Runtime rejected a graph: ${(e as Error).message}`);
      }
    },
  };
}

export { ort };
