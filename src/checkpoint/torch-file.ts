// PyTorch `torch.save` files (zip format) read without Python and without running anything from them.
// The pickle is parsed by pickleparser with a closed name table: tensors (rebuilt from their storages),
// plain containers and scalars. Any other global in the pickle is refused, so a file cannot make the
// reader construct or call something it did not expect.
import { Parser } from 'pickleparser';
import yauzl from 'yauzl';
import { LensError } from '../errors.js';
import type { StDtype } from './safetensors.js';

/** A tensor from a .pt file, contiguous (row-major) little-endian bytes in its stored dtype. */
export interface TorchTensor {
  readonly dtype: StDtype;
  readonly shape: number[];
  readonly bytes: Buffer;
}

/** Storage classes as pickled by torch.save: `torch.FloatStorage` etc. */
const STORAGE_DTYPES: Record<string, StDtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

type NameResolver = NonNullable<ConstructorParameters<typeof Parser>[0]>['nameResolver'];

const WIDTH: Record<StDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1 };

class StorageType {
  constructor(readonly dtype: StDtype) {}
}

class StorageRef {
  constructor(
    readonly dtype: StDtype,
    readonly key: string,
    readonly numel: number,
  ) {}
}

/** What `_rebuild_tensor_v2` describes; filled with bytes once the pickle has been read. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

function invalid(file: string, msg: string): LensError {
  return new LensError('LENS_INVALID', `${file}: ${msg}`);
}

function toInt(x: unknown): number {
  return typeof x === 'bigint' ? Number(x) : (x as number);
}

function names(file: string): NameResolver {
  const table: Record<string, (...args: any[]) => unknown> = {
    'torch._utils._rebuild_tensor_v2': (storage: unknown, offset: unknown, size: unknown, stride: unknown) => {
      if (!(storage instanceof StorageRef)) throw invalid(file, 'a tensor without a storage');
      return new TensorRef(storage, toInt(offset), (size as unknown[]).map(toInt), (stride as unknown[]).map(toInt));
    },
    // Parameters pickle as their data tensor; requires_grad and hooks mean nothing here.
    'torch._utils._rebuild_parameter': (data: unknown) => data,
    'collections.OrderedDict': () => new Map(),
    // torch.__version__ (a str subclass) in a provenance dict: NEWOBJ constructs it, and a constructor
    // cannot return a primitive, so a String object here (mapDeep unwraps it); torch.load(weights_only=True) allows it too.
    'torch.torch_version.TorchVersion': function TorchVersion(text: unknown) {
      return new String(text);
    },
    // Protocol-2 pickles carry bytes as _codecs.encode(text, 'latin1').
    '_codecs.encode': (text: unknown, encoding: unknown) => Buffer.from(String(text), encoding === 'latin1' ? 'latin1' : 'utf8'),
  };
  return {
    resolve(module: string, name: string) {
      const fqn = `${module}.${name}`;
      if (module === 'torch' && STORAGE_DTYPES[name]) return new StorageType(STORAGE_DTYPES[name]) as any;
      const fn = table[fqn];
      if (!fn) throw invalid(file, `the pickle refers to ${fqn}, which a lens file has no reason to contain (only tensors and plain containers are read)`);
      return fn;
    },
  };
}

interface ZipEntries {
  zip: yauzl.ZipFile;
  entries: Map<string, yauzl.Entry>;
}

function openZip(file: string): Promise<ZipEntries> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) => {
      if (err || !zip) return reject(invalid(file, `not a PyTorch zip checkpoint (${err?.message ?? 'unreadable'})`));
      const entries = new Map<string, yauzl.Entry>();
      zip.on('entry', (e: yauzl.Entry) => {
        entries.set(e.fileName, e);
        zip.readEntry();
      });
      zip.on('end', () => resolve({ zip, entries }));
      zip.on('error', (e: Error) => reject(invalid(file, e.message)));
      zip.readEntry();
    });
  });
}

function readEntry(file: string, zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err || !stream) return reject(invalid(file, `cannot read ${entry.fileName}: ${err?.message}`));
      const parts: Buffer[] = [];
      stream.on('data', (b: Buffer) => parts.push(b));
      stream.on('end', () => resolve(Buffer.concat(parts)));
      stream.on('error', (e: Error) => reject(invalid(file, `${entry.fileName}: ${e.message}`)));
    });
  });
}

/** Copies the (possibly strided) view out of its storage into contiguous bytes. */
function materialize(file: string, t: TensorRef, storage: Buffer): Buffer {
  const w = WIDTH[t.storage.dtype];
  const n = t.shape.reduce((a, d) => a * d, 1);
  if (storage.length < t.storage.numel * w) throw invalid(file, `storage ${t.storage.key} is shorter than its ${t.storage.numel} elements`);
  let maxAt = t.offset;
  t.shape.forEach((d, i) => (maxAt += d > 0 ? (d - 1) * t.stride[i] : 0));
  if (n > 0 && (t.offset < 0 || maxAt >= t.storage.numel)) throw invalid(file, `a tensor view reaches past its storage ${t.storage.key}`);
  const contiguous = t.shape.every((_, i) => t.shape[i] === 1 || t.stride[i] === t.shape.slice(i + 1).reduce((a, d) => a * d, 1));
  if (contiguous) return Buffer.from(storage.subarray(t.offset * w, (t.offset + n) * w));
  const out = Buffer.alloc(n * w);
  const idx = new Array(t.shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    let at = t.offset;
    for (let k = 0; k < idx.length; k++) at += idx[k] * t.stride[k];
    storage.copy(out, i * w, at * w, (at + 1) * w);
    for (let k = idx.length - 1; k >= 0; k--) {
      if (++idx[k] < t.shape[k]) break;
      idx[k] = 0;
    }
  }
  return out;
}

function mapDeep(v: unknown, f: (t: TensorRef) => TorchTensor): unknown {
  if (v instanceof TensorRef) return f(v);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, mapDeep(x, f)]));
  if (Array.isArray(v)) return v.map((x) => mapDeep(x, f));
  // A str subclass (TorchVersion) constructed by NEWOBJ: a String object, handed on as the string.
  if (v instanceof String) return v.valueOf();
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    if (v instanceof StorageRef || v instanceof StorageType) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mapDeep(x, f)]));
  }
  return v;
}

/**
 * Reads a torch.save file. Dicts come back as Maps (keys keep their Python types: a Jacobian lens
 * keys its matrices by int layer), lists and tuples as arrays, tensors as TorchTensor.
 */
export async function readTorchFile(file: string): Promise<unknown> {
  const { zip, entries } = await openZip(file);
  try {
    const pkl = [...entries.keys()].find((n) => /(^|\/)data\.pkl$/.test(n));
    if (!pkl) throw invalid(file, 'no data.pkl in the archive (a legacy, non-zip torch.save file? re-save it with a current PyTorch)');
    const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    const order = entries.get(`${prefix}byteorder`);
    if (order && (await readEntry(file, zip, order)).toString().trim() !== 'little') throw invalid(file, 'big-endian tensors are not supported');
    const refs = new Map<string, StorageRef>();
    const parser = new Parser({
      nameResolver: names(file),
      unpicklingTypeOfDictionary: 'Map',
      persistentResolver: {
        resolve(pid: unknown) {
          const [kind, type, key, , numel] = pid as [string, unknown, string, string, number];
          if (kind !== 'storage' || !(type instanceof StorageType)) throw invalid(file, `unexpected persistent id ${String(kind)}`);
          let ref = refs.get(String(key));
          if (!ref) refs.set(String(key), (ref = new StorageRef(type.dtype, String(key), toInt(numel))));
          return ref as any;
        },
      },
    });
    let root: unknown;
    try {
      root = parser.parse(await readEntry(file, zip, entries.get(pkl)!));
    } catch (e) {
      if (e instanceof LensError) throw e;
      throw invalid(file, `unreadable pickle: ${(e as Error).message}`);
    }
    const bytes = new Map<string, Buffer>();
    for (const key of refs.keys()) {
      const entry = entries.get(`${prefix}data/${key}`);
      if (!entry) throw invalid(file, `storage data/${key} is missing from the archive`);
      bytes.set(key, await readEntry(file, zip, entry));
    }
    return mapDeep(root, (t) => ({ dtype: t.storage.dtype, shape: t.shape, bytes: materialize(file, t, bytes.get(t.storage.key)!) }));
  } finally {
    zip.close();
  }
}

export function isTorchTensor(v: unknown): v is TorchTensor {
  return !!v && typeof v === 'object' && 'bytes' in v && 'shape' in v && 'dtype' in v;
}
