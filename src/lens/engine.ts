import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { detectArchitecture } from '../architectures/registry.js';
import type { ModelPlan } from '../architectures/spec.js';
import { openCheckpoint } from '../checkpoint/hf-dir.js';
import { roundToDtype } from '../checkpoint/dtype.js';
import { quantizedBlocks, type QuantRequest } from './quantized-blocks.js';
import { readRows, type StTensor } from '../checkpoint/safetensors.js';
import { loadTokenizer, type TextTokenizer } from '../checkpoint/tokenizer.js';
import { buildBlockGraph } from '../graph/block.js';
import { buildDivergenceGraph, buildLogitsGraph, DIVERGENCE, LOGITS } from '../graph/compare.js';
import { buildGatherGraph, buildUnembedGraph, UNEMBED } from '../graph/head.js';
import { WeightBinder } from '../graph/weights.js';
import { eosTokenIds } from '../checkpoint/generation.js';
import { BlockStack, KvCache } from '../runtime/blocks.js';
import { Embedder } from '../runtime/inputs.js';
import { ort, sessionFactory, type OrtSession, type SessionFactory } from '../runtime/sessions.js';
import { runUnembed } from '../runtime/unembed.js';
import { planPrepacking } from './prepack.js';
import { naiveLens } from './naive.js';
import { cellStats, trajectories } from './post.js';
import { chunkByRows } from './reduce.js';
import { CPU_HEAD_ROWS, lengthGroups, MAX_PADDING_SHARE } from './batching.js';
import {
  type CellStats,
  type Divergences,
  LensError,
  type LensKind,
  type LensModel,
  type LensOptions,
  type LensPoint,
  type LensRequest,
  type LensResult,
  type ModelInfo,
  type OpenOptions,
  type PositionEvent,
  type Token,
  type TrackedPosition,
} from './types.js';
import { loadLenses, type ModelLenses } from './translators.js';
import { validate, type ValidRequest } from './validate.js';
import { translatorInput } from '../graph/translator.js';

type Session = OrtSession;

/**
 * Rows per head call so one [rows, V] float32 logits tensor stays ≤ 64 MB; with exp and its float64
 * copy for the log-sum-exp the call's peak is about five times that, and ORT's arena keeps its peak.
 * At 128 MB (256 rows of V 128256) deferred head calls grew RSS by ~0.7 GB each on the 1B shape.
 * GPT-2's vocabulary gets the CPU's 128 rows per call (batching.ts).
 */
export const HEAD_BYTES = 64 * 2 ** 20;

/** One (request, layer, point) slab of residual rows waiting for the lens head. */
interface Slab {
  job: Job;
  point: LensPoint | 'FINAL';
  layerIndex: number;
  rows: number;
  hidden: Float32Array;
  /** Translator stack entry for the job's lens kind (0 = identity: logit lens, final layer). */
  entry: number;
}

interface PointState {
  topIndices: number[][][];
  topProbs: number[][][];
  normed: Float32Array[];
  lse: Float64Array[];
  tracked?: TrackedPosition[];
}

interface Job {
  req: ValidRequest;
  row: number;
  len: number;
  points: Map<LensPoint, PointState>;
  finalNormed?: Float32Array;
  finalTop1?: number[];
  error?: LensError;
  keepStates: boolean;
}

export class OnnxLensModel implements LensModel {
  private lock: Promise<unknown> = Promise.resolve();
  private gatherSession?: Promise<Session>;
  private logitsSession?: Promise<Session>;
  private divergenceSession?: Promise<Session>;

  private constructor(
    readonly info: ModelInfo,
    private readonly plan: ModelPlan,
    private readonly tokenizer: TextTokenizer,
    private readonly embedder: Embedder,
    private readonly blocks: Session[],
    /** The one session holding the unembedding: lens head, stats and the naive baseline. */
    private readonly head: Session,
    private readonly factory: SessionFactory,
    private readonly gatherGraph: Uint8Array,
    private readonly compareGraphs: { logits: Uint8Array; divergence: Uint8Array },
    /** The unembedding in the checkpoint; trajectories read just their rows from it. */
    private readonly unembedRows: { weight: StTensor; bias?: StTensor },
    private readonly batching: { headRows: number; maxPaddingShare: number },
    /** Token ids that end a generation (see eosTokenIds). */
    readonly eosTokenIds: number[] = [],
    /** Tuned / Jacobian translators inside the lens head, if the operator loaded any. */
    private readonly translators: ModelLenses | null = null,
  ) {}

  static async open(dir: string, opts: OpenOptions = {}): Promise<OnnxLensModel> {
    const ckpt = openCheckpoint(dir);
    const spec = detectArchitecture(ckpt.config, opts.modelType);
    const plan = spec.plan(ckpt.config);
    if (opts.dtype !== undefined && opts.dtype !== 'float32' && opts.dtype !== 'float16') {
      throw new LensError('BAD_USER_INPUT', `dtype must be "float32" or "float16" (got ${JSON.stringify(opts.dtype)})`);
    }
    // The provider decides the default compute type, so it is chosen before any graph is built.
    // Quantized blocks run on the CPU (MatMulNBits), so `auto` means the CPU for them.
    const device = opts.device ?? 'auto';
    const factory = await sessionFactory(ckpt.dataRoot, opts.quantize && device === 'auto' ? 'cpu' : device);
    const ckptDtype = new WeightBinder(ckpt).dominantDtype();
    const computeType = opts.dtype ?? (factory.provider === 'cuda' && (ckptDtype === 'F16' || ckptDtype === 'BF16') ? 'float16' : 'float32');
    // On CPU, 16-bit weights stay memory-mapped and are widened per call, a chunk at a time: folding
    // them to float32 at load held 2× the file (an 8B BF16 checkpoint needs > 32 GB that way).
    const castPerCall = factory.provider === 'cpu' && computeType === 'float32' && (ckptDtype === 'F16' || ckptDtype === 'BF16');
    const w = new WeightBinder(ckpt, spec.optionalPrefixes, computeType === 'float16' ? 'float16' : 'float', castPerCall, opts.weightChunkBytes);
    const quant = opts.quantize === undefined ? undefined : quantizedBlocks(opts, ckpt, factory.provider, computeType);
    const embedder = new Embedder(plan.embedding, w, plan.hiddenSize, plan.vocabSize, plan.maxPositions);
    const id = opts.id ?? basename(ckpt.dir);
    const unembedWeight = w.tensor(plan.unembed.weight, [plan.vocabSize, plan.hiddenSize]);
    const translators =
      opts.lenses && (opts.lenses.tuned || opts.lenses.jacobian)
        ? await loadLenses(opts.lenses, {
            id,
            numLayers: plan.numLayers,
            hiddenSize: plan.hiddenSize,
            vocabSize: plan.vocabSize,
            unembedRow: (r) => readRows(unembedWeight, [r]),
          })
        : null;
    let headGraph = buildUnembedGraph(plan, w, translators?.stacks);
    // The first session's share counts the embedding too (read by the Embedder, bound before it), so
    // the bytes mapped reach bytesTotal once every session exists.
    const headBytes = w.usedBytes();
    // A quantized model's block graphs hold their weights, so each is built right before its session
    // (and dropped after); this first build only validates the layout and records what to quantize.
    const blockGraphs: Array<{ graph: Uint8Array | null; bytes: number; quantized: QuantRequest[] }> = [];
    w.quantized = quant;
    for (const [i, b] of plan.blocks.entries()) {
      const before = w.usedBytes();
      const graph = buildBlockGraph(b, i, plan.hiddenSize, w);
      blockGraphs.push({ graph: quant ? null : graph, bytes: w.usedBytes() - before, quantized: quant?.takeRequests() ?? [] });
    }
    w.quantized = undefined;
    const gatherGraph = buildGatherGraph(plan);
    const compareGraphs = { logits: buildLogitsGraph(plan, w), divergence: buildDivergenceGraph(plan, w) };
    const unembedRows = {
      weight: w.tensor(plan.unembed.weight, [plan.vocabSize, plan.hiddenSize]),
      bias: plan.unembed.bias ? w.tensor(plan.unembed.bias, [plan.vocabSize]) : undefined,
    };
    const ignored = plan.unembed.ignored;
    const unused = w.unused(plan.skip).filter((name) => ignored === undefined || w.find(ignored)?.name !== name);
    if (unused.length) {
      throw new LensError(
        'CHECKPOINT_INVALID',
        `${unused.length} checkpoint tensor(s) match nothing in the ${plan.family} layout (e.g. ${unused.slice(0, 4).join(', ')}); wrong model type?`,
      );
    }
    const tokenizer = loadTokenizer(ckpt.tokenizerJson, ckpt.tokenizerConfig);
    let parameters = 0;
    for (const name of w.used) parameters += ckpt.tensors.get(name)!.shape.reduce((a, d) => a * d, 1);
    const allLayers = Array.from({ length: plan.numLayers }, (_, i) => i);
    const info: ModelInfo = {
      id,
      modelType: plan.family,
      numLayers: plan.numLayers,
      hiddenSize: plan.hiddenSize,
      vocabSize: plan.vocabSize,
      maxPositions: plan.maxPositions,
      device: factory.provider,
      deviceNote: factory.note,
      dtype: ckptDtype,
      computeType,
      parameters,
      quantization: quant?.weights.info ?? null,
      tokenizerHash: tokenizerHash(ckpt.tokenizerJson),
      lenses: [
        { kind: 'LOGIT', layers: allLayers, about: null, contentHash: null },
        ...(translators?.files ?? []).map((f) => ({
          kind: f.kind,
          layers: [...translators!.entries.get(f.kind)!.keys()].sort((a, b) => a - b),
          about: f.about,
          contentHash: translators!.hashes.get(f.kind)!,
        })),
      ],
    };
    const prepack = planPrepacking({
      mode: opts.prepack ?? 'auto',
      budget: opts.memoryBudget,
      castPerCall,
      provider: factory.provider,
      headFloat32Bytes: plan.vocabSize * plan.hiddenSize * 4,
      blocksFloat32Bytes: blockGraphs.reduce((a, b) => a + (b.bytes * 4) / bytesPerElement(ckptDtype), 0),
      weightBytes: w.usedBytes(),
    });
    const headFloat32Rows = Math.floor(prepack.headFloat32 * plan.vocabSize);
    if (headFloat32Rows) headGraph = buildUnembedGraph(plan, w, translators?.stacks, { float32Rows: headFloat32Rows });
    // Blocks that widen 16-bit chunks (or run quantized) allocate the same chunk-sized buffers in every
    // layer: from the shared heap instead of one arena per session, the 1B shape held 3.47 GB instead of
    // 4.26 GB after streamed lenses, at the same block time (measured side by side on a loaded machine).
    const blockArena = !(castPerCall || quant);
    const memoryRows = Math.max(1, Math.floor(HEAD_BYTES / (plan.vocabSize * 4)));
    const batching = {
      headRows: Math.max(1, Math.min(memoryRows, opts.batching?.headRows ?? (factory.provider === 'cpu' ? CPU_HEAD_ROWS : memoryRows))),
      maxPaddingShare: opts.batching?.maxPaddingShare ?? MAX_PADDING_SHARE,
    };
    const progress = { sessionsBuilt: 0, sessions: blockGraphs.length + 1, layersBuilt: 0, layers: plan.numLayers, bytesMapped: 0, bytesTotal: w.usedBytes() };
    // Awaited, so a slow listener holds the load back and a throwing one abandons it.
    const report = () => opts.onProgress?.({ ...progress, info });
    const sessions: Session[] = [];
    try {
      await report();
      // A head that widens its 16-bit unembedding per call allocates the same 64 MiB chunk buffers on every
      // call: from the shared heap rather than an arena of its own (1B shape after a streamed and a deferred
      // lens: RSS 3.18 → 2.99 GB = 1.29x → 1.21x the files, CPU time within noise; loaded machine).
      // A head with float32 rows folds constants (its per-call chunks are overridable initializers, which
      // ORT does not fold), so it needs no castPerCall tuning; it widens per call unless all rows are float32.
      const headWidens = castPerCall && headFloat32Rows < plan.vocabSize;
      const head = await factory.create(headGraph, {
        castPerCall: castPerCall && !headFloat32Rows,
        castSome: headWidens && headFloat32Rows > 0,
        prepack: prepack.head,
        arena: !headWidens,
      });
      sessions.push(head);
      Object.assign(progress, { sessionsBuilt: 1, bytesMapped: headBytes });
      await report();
      const blocks: Session[] = [];
      for (const [i, b] of blockGraphs.entries()) {
        let graph = b.graph;
        if (!graph) {
          await quant!.prepare(b.quantized);
          w.quantized = quant;
          graph = buildBlockGraph(plan.blocks[i], i, plan.hiddenSize, w);
          w.quantized = undefined;
          quant!.release();
        }
        // MatMulNBits runs its fast kernels only on weights ORT has prepacked (unpacked, it
        // dequantizes the whole matrix on every call); the packed copy replaces the quantized one.
        const s = await factory.create(graph, { castPerCall, prepack: prepack.blocks || !!quant, arena: blockArena });
        sessions.push(s);
        blocks.push(s);
        progress.sessionsBuilt++;
        progress.layersBuilt++;
        progress.bytesMapped += b.bytes;
        await report();
      }
      return new OnnxLensModel(info, plan, tokenizer, embedder, blocks, head, factory, gatherGraph, compareGraphs, unembedRows, batching, eosTokenIds(ckpt.dir, ckpt.config), translators);
    } catch (e) {
      // A failed or abandoned load releases what it built, so a server that goes on without this model leaks nothing.
      for (const s of sessions) await s.release().catch(() => undefined);
      throw e;
    }
  }

  tokenize(text: string): Token[] {
    return this.tokenizer.encode(text).map((id, position) => ({ position, id, text: this.tokenizer.decodeOne(id) }));
  }

  decode(id: number): string {
    return this.tokenizer.decodeOne(id);
  }

  async lens(prompt: string, options: LensOptions = {}): Promise<LensResult> {
    const [r] = await this.lensBatch([{ prompt, options }]);
    if (r instanceof LensError) throw r;
    return r;
  }

  async lensBatch(requests: LensRequest[]): Promise<Array<LensResult | LensError>> {
    const queued = performance.now();
    const results: Array<LensResult | LensError> = new Array(requests.length);
    const valid: Array<{ index: number; req: ValidRequest }> = [];
    requests.forEach(({ prompt, options = {} }, index) => {
      try {
        valid.push({ index, req: validate(prompt, this.promptIds(prompt, options), options, this.info) });
      } catch (e) {
        results[index] = asLensError(e);
      }
    });
    if (!valid.length) return results;
    const out = await this.exclusive(async () => {
      const out: Array<LensResult | LensError> = new Array(valid.length);
      // Generation requests run one at a time after the batch: each step feeds one new position
      // against its own KV cache, so there is nothing to pad them together with.
      const plain = valid.map((v, i) => i).filter((i) => valid[i].req.maxNewTokens === 0);
      // Prompts of very different lengths run as separate passes rather than one mostly-padding one.
      for (const group of lengthGroups(plain.map((i) => valid[i].req.ids.length), this.batching.maxPaddingShare)) {
        const members = group.map((g) => plain[g]);
        const queueMs = performance.now() - queued;
        try {
          const rs = await this.run(members.map((i) => valid[i].req), queueMs);
          members.forEach((i, j) => (out[i] = rs[j]));
        } catch (e) {
          const err = asLensError(e);
          for (const i of members) out[i] = err;
        }
      }
      for (let i = 0; i < valid.length; i++) {
        if (valid[i].req.maxNewTokens === 0) continue;
        try {
          out[i] = await this.generate(valid[i].req, performance.now() - queued);
        } catch (e) {
          out[i] = asLensError(e);
        }
      }
      return out;
    });
    valid.forEach((v, i) => (results[v.index] = out[i]));
    return results;
  }

  async lensNaive(prompt: string, options: LensOptions = {}): Promise<LensResult> {
    const req = validate(prompt, this.promptIds(prompt, options), options, this.info);
    if (req.maxNewTokens) throw new LensError('BAD_USER_INPUT', 'the naive benchmark path does not generate');
    if (req.lens !== 'LOGIT') throw new LensError('BAD_USER_INPUT', 'lensNaive (a benchmark baseline) reads the logit lens only');
    return this.exclusive(async () =>
      naiveLens(req, {
        plan: this.plan,
        info: this.info,
        embed: (rows, T) => this.embedder.embed(rows, T),
        blocks: (lengths, T) => new BlockStack(this.plan, this.blocks, lengths, T),
        head: this.head,
        decode: (id) => this.tokenizer.decodeOne(id),
      }),
    );
  }

  async close(): Promise<void> {
    await this.lock.catch(() => undefined);
    const gather = await this.gatherSession?.catch(() => undefined);
    const cmp = await Promise.all([this.logitsSession, this.divergenceSession].map((s) => s?.catch(() => undefined)));
    for (const s of [this.head, ...this.blocks, gather, ...cmp]) await s?.release();
  }

  /** The caller's tokenization when it passed one, else this model's (once per request either way). */
  private promptIds(prompt: unknown, options: LensOptions): number[] {
    if (options.promptIds) return options.promptIds;
    return typeof prompt === 'string' ? this.tokenizer.encode(prompt) : [];
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  async logitsOf(normed: Float32Array, rows: number): Promise<Float32Array> {
    const session = await (this.logitsSession ??= this.factory.create(this.compareGraphs.logits));
    const out = await session.run({ [LOGITS.inputs.normed]: new ort.Tensor('float32', normed, [rows, this.plan.hiddenSize]) });
    return out[LOGITS.outputs.logits].data as Float32Array;
  }

  async divergence(logitsA: Float32Array, normedB: Float32Array, rows: number): Promise<Divergences> {
    const session = await (this.divergenceSession ??= this.factory.create(this.compareGraphs.divergence));
    const out = await session.run({
      [DIVERGENCE.inputs.logitsA]: new ort.Tensor('float32', logitsA, [rows, this.plan.vocabSize]),
      [DIVERGENCE.inputs.normedB]: new ort.Tensor('float32', normedB, [rows, this.plan.hiddenSize]),
    });
    return {
      klAB: out[DIVERGENCE.outputs.klAB].data as Float64Array,
      klBA: out[DIVERGENCE.outputs.klBA].data as Float64Array,
      js: out[DIVERGENCE.outputs.js].data as Float64Array,
    };
  }

  /** The trajectories' gather session (no weights), created on first use. */
  private gather(): Promise<Session> {
    this.gatherSession ??= this.factory.create(this.gatherGraph);
    return this.gatherSession;
  }

  // ---- the forward pass: embed → blocks (→ lens head per layer) → trajectories → stats ----

  private async run(reqs: ValidRequest[], queueMs: number): Promise<Array<LensResult | LensError>> {
    const t0 = performance.now();
    const { plan } = this;
    const L = plan.numLayers;
    const D = plan.hiddenSize;
    const B = reqs.length;
    const T = Math.max(...reqs.map((r) => r.ids.length));
    const jobs: Job[] = reqs.map((req, row) => ({
      req,
      row,
      len: req.ids.length,
      keepStates: req.track || req.stats || !!req.onNormed,
      points: new Map(req.points.map((p) => [p, { topIndices: [], topProbs: [], normed: [], lse: [] }])),
    }));
    const timing = { embedMs: 0, blocksMs: 0, headMs: 0, trackMs: 0, statsMs: 0 };

    let hidden = this.embedder.embed(reqs.map((r) => r.ids), T);
    timing.embedMs = performance.now() - t0;
    const stack = new BlockStack(plan, this.blocks, reqs.map((r) => r.ids.length), T);

    const lastLayer = Math.max(...reqs.map((r) => (r.stats ? L - 1 : r.layers[r.layers.length - 1])));
    const streaming = reqs.some((r) => r.onLayer);
    const deferred: Slab[] = [];
    const live = () => jobs.filter((j) => !j.error);

    for (let l = 0; l <= lastLayer; l++) {
      for (const j of live()) if (j.req.signal?.aborted) j.error = new LensError('CANCELLED', 'the request was cancelled');
      if (!live().length) break;
      const tb = performance.now();
      const out = await stack.run(l, hidden);
      hidden = out.hidden;
      const { afterAttn } = out;
      timing.blocksMs += performance.now() - tb;

      const slabs: Slab[] = [];
      for (const job of live()) {
        const rows = (src: Float32Array) => src.slice(job.row * T * D, (job.row * T + job.len) * D);
        const li = job.req.layers.indexOf(l);
        if (li >= 0) {
          // Residual-stream order: the read after attention comes before the block's output.
          const entry = this.translatorEntry(job.req, l);
          for (const point of [...job.req.points].reverse()) {
            slabs.push({ job, point, layerIndex: li, rows: job.len, hidden: rows(point === 'BLOCK_OUTPUT' ? hidden : afterAttn), entry });
          }
        }
        if (job.req.stats && l === L - 1) slabs.push({ job, point: 'FINAL', layerIndex: -1, rows: job.len, hidden: rows(hidden), entry: 0 });
      }
      if (streaming) {
        const th = performance.now();
        await this.reduce(slabs);
        timing.headMs += performance.now() - th;
        for (const s of slabs) if (s.point !== 'FINAL') this.emit(s);
      } else {
        deferred.push(...slabs);
      }
    }
    if (!streaming && deferred.length) {
      const th = performance.now();
      await this.reduce(deferred.filter((s) => !s.job.error));
      timing.headMs += performance.now() - th;
    }
    for (const j of live()) if (j.req.signal?.aborted) j.error = new LensError('CANCELLED', 'the request was cancelled');

    const tt = performance.now();
    for (const job of live()) if (job.req.track) await this.track(job);
    timing.trackMs = performance.now() - tt;
    const ts = performance.now();
    const stats = new Map<PointState, CellStats>();
    for (const job of live()) {
      if (!job.req.stats) continue;
      for (const st of job.points.values()) stats.set(st, await this.cellStats(job, st));
    }
    timing.statsMs = performance.now() - ts;

    const totalMs = performance.now() - t0 + queueMs;
    for (const job of live()) giveNormed(job);
    return jobs.map((job) => {
      if (job.error) return job.error;
      const [primary, second] = job.req.points;
      const p = job.points.get(primary)!;
      const a = second ? job.points.get(second)! : undefined;
      return {
        model: this.info,
        lens: job.req.lens,
        tokens: job.req.ids.map((id, position) => ({ position, id, text: this.tokenizer.decodeOne(id) })),
        layers: job.req.layers,
        point: primary,
        topK: job.req.topK,
        topIndices: p.topIndices,
        topProbs: p.topProbs,
        tracked: p.tracked ?? null,
        stats: stats.get(p) ?? null,
        attention: a
          ? { topIndices: a.topIndices, topProbs: a.topProbs, tracked: a.tracked ?? null, stats: stats.get(a) ?? null }
          : null,
        timings: { totalMs, queueMs, ...timing, batchSize: B },
      };
    });
  }

  /** Which translator of the request's lens kind reads layer l (the request was validated against the lens's layers). */
  private translatorEntry(req: ValidRequest, l: number): number {
    if (req.lens === 'LOGIT') return 0;
    return this.translators!.entries.get(req.lens)!.get(l)!;
  }

  /** Head feeds naming the translator of one call; every row of a call shares it. */
  private translatorFeeds(kind: LensKind, entry: number): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const s of this.translators?.stacks ?? []) {
      feeds[translatorInput(s.kind)] = new ort.Tensor('int64', BigInt64Array.from([BigInt(s.kind === kind ? entry : 0)]), [1]);
    }
    return feeds;
  }

  /** Runs the lens head over the slabs' rows (as few calls as memory allows) and files the results. */
  private async reduce(slabs: Slab[]): Promise<void> {
    const D = this.plan.hiddenSize;
    // One head call applies one translator, so slabs are grouped by (lens kind, translator) first.
    const groups = new Map<string, Slab[]>();
    for (const s of slabs) {
      const key = s.entry === 0 ? 'identity' : `${s.job.req.lens}:${s.entry}`;
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const group of groups.values()) {
      const first = group[0];
      await this.reduceGroup(group, D, this.translatorFeeds(first.job.req.lens, first.entry));
    }
  }

  private async reduceGroup(slabs: Slab[], D: number, feeds: Record<string, ort.Tensor>): Promise<void> {
    for (const chunk of chunkByRows(slabs, this.batching.headRows)) {
      const N = chunk.reduce((a, s) => a + s.rows, 0);
      const k = Math.max(...chunk.map((s) => s.job.req.topK));
      const stacked = new Float32Array(N * D);
      let at = 0;
      for (const s of chunk) {
        stacked.set(s.hidden, at * D);
        at += s.rows;
      }
      const out = await runUnembed(this.head, this.plan, { head: { hidden: stacked, k, translators: feeds } });
      const logp = out[UNEMBED.outputs.topLogProbs].data as Float64Array;
      const ids = out[UNEMBED.outputs.topIds].data as BigInt64Array;
      const lse = out[UNEMBED.outputs.lse].data as Float64Array;
      const normed = out[UNEMBED.outputs.normed].data as Float32Array;
      if (!lse.every(Number.isFinite)) {
        const hint = this.info.computeType === 'float16' ? '; float16 activations overflowed? open the model with dtype float32' : '';
        throw new LensError('INTERNAL', `the lens head produced non-finite logits${hint}`);
      }
      at = 0;
      for (const s of chunk) {
        const kk = s.job.req.topK;
        const topIdx: number[][] = [];
        const topP: number[][] = [];
        for (let r = 0; r < s.rows; r++) {
          const base = (at + r) * k;
          topIdx.push(Array.from({ length: kk }, (_, j) => Number(ids[base + j])));
          topP.push(Array.from({ length: kk }, (_, j) => Math.exp(logp[base + j])));
        }
        const keptNormed = s.job.keepStates ? normed.slice(at * D, (at + s.rows) * D) : new Float32Array(0);
        if (s.point === 'FINAL') {
          s.job.finalNormed = keptNormed;
          s.job.finalTop1 = topIdx.map((row) => row[0]);
        } else {
          const st = s.job.points.get(s.point)!;
          st.topIndices[s.layerIndex] = topIdx;
          st.topProbs[s.layerIndex] = topP;
          if (s.job.keepStates) {
            st.normed[s.layerIndex] = keptNormed;
            st.lse[s.layerIndex] = lse.slice(at, at + s.rows);
          }
        }
        at += s.rows;
      }
    }
  }

  // ---- generation: prefill once, then one cached position per new token ----

  /**
   * Greedy generation with the lens at every position. The prompt runs once (its layers stream
   * through onLayer as usual); then each step feeds only the newest token against the KV cache,
   * lenses that one position at every requested layer (onPosition), and appends the final layer's
   * top-1 — the model's own greedy choice. The last written token gets its column too.
   */
  private async generate(req: ValidRequest, queueMs: number): Promise<LensResult> {
    const t0 = performance.now();
    const { plan } = this;
    const L = plan.numLayers;
    const rot = plan.blocks[0]?.attn.rotary;
    const timing = { embedMs: 0, blocksMs: 0, headMs: 0, trackMs: 0, statsMs: 0 };
    const acc = newJob(req, 0);
    const ids = [...req.ids];
    const promptLen = ids.length;
    let cache = new KvCache(L);
    let stoppedAtEos = false;
    for (;;) {
      if (req.signal?.aborted) throw new LensError('CANCELLED', 'the request was cancelled');
      // LongRoPE picks its frequencies by sequence length: once the sequence grows past `beyond`, HF
      // rotates every position with the long ones, so the cache (rotated with the short ones) is
      // rebuilt by one pass over the whole sequence.
      if (rot?.long && cache.length > 0 && cache.length <= rot.long.beyond && ids.length > rot.long.beyond) cache = new KvCache(L);
      const start = cache.length;
      const S = ids.length - start;
      const step = newJob(req, S);
      const te = performance.now();
      let hidden = this.embedder.embed([ids.slice(start)], S, start);
      timing.embedMs += performance.now() - te;
      const stack = new BlockStack(plan, this.blocks, [S], S, cache);
      const prefill = start === 0 && acc.len === 0;
      const deferred: Slab[] = [];
      for (let l = 0; l < L; l++) {
        if (req.signal?.aborted) throw new LensError('CANCELLED', 'the request was cancelled');
        const tb = performance.now();
        const out = await stack.run(l, hidden);
        hidden = out.hidden;
        timing.blocksMs += performance.now() - tb;
        const slabs: Slab[] = [];
        const li = req.layers.indexOf(l);
        if (li >= 0) {
          const entry = this.translatorEntry(req, l);
          for (const point of [...req.points].reverse()) {
            slabs.push({ job: step, point, layerIndex: li, rows: S, hidden: point === 'BLOCK_OUTPUT' ? hidden : out.afterAttn, entry });
          }
        }
        // The final distribution (the model's own, whatever the lens kind) picks the next token and is the stats' reference.
        if (l === L - 1) slabs.push({ job: step, point: 'FINAL', layerIndex: -1, rows: S, hidden, entry: 0 });
        if (prefill && req.onLayer) {
          const th = performance.now();
          await this.reduce(slabs);
          timing.headMs += performance.now() - th;
          for (const sl of slabs) this.emit(sl);
          if (step.error) throw step.error;
        } else {
          deferred.push(...slabs);
        }
      }
      const th = performance.now();
      await this.reduce(deferred);
      timing.headMs += performance.now() - th;
      const first = acc.len;
      appendJob(acc, step, first - start);
      for (let p = Math.max(first, promptLen); p < ids.length; p++) this.emitPosition(acc, p, ids[p]);
      if (acc.error) throw acc.error;
      const written = ids.length - promptLen;
      const last = ids[ids.length - 1];
      if (written > 0 && this.eosTokenIds.includes(last)) {
        stoppedAtEos = true;
        break;
      }
      if (written === req.maxNewTokens) break;
      ids.push(acc.finalTop1![ids.length - 1]);
    }

    const tt = performance.now();
    if (req.track) await this.track(acc);
    timing.trackMs = performance.now() - tt;
    const ts = performance.now();
    const stats = new Map<PointState, CellStats>();
    if (req.stats) for (const st of acc.points.values()) stats.set(st, await this.cellStats(acc, st));
    timing.statsMs = performance.now() - ts;
    giveNormed(acc);
    if (acc.error) throw acc.error;
    const [primary, second] = req.points;
    const p = acc.points.get(primary)!;
    const a = second ? acc.points.get(second)! : undefined;
    return {
      model: this.info,
      lens: req.lens,
      tokens: ids.map((id, position) => ({ position, id, text: this.tokenizer.decodeOne(id), generated: position >= promptLen })),
      layers: req.layers,
      point: primary,
      topK: req.topK,
      topIndices: p.topIndices,
      topProbs: p.topProbs,
      tracked: p.tracked ?? null,
      stats: stats.get(p) ?? null,
      attention: a ? { topIndices: a.topIndices, topProbs: a.topProbs, tracked: a.tracked ?? null, stats: stats.get(a) ?? null } : null,
      timings: { totalMs: performance.now() - t0 + queueMs, queueMs, ...timing, batchSize: 1 },
      generation: { maxNewTokens: req.maxNewTokens, newTokens: ids.length - promptLen, stoppedAtEos, eosTokenIds: this.eosTokenIds },
    };
  }

  private emitPosition(job: Job, position: number, id: number): void {
    const { onPosition } = job.req;
    if (!onPosition || job.error) return;
    const token: Token = { position, id, text: this.tokenizer.decodeOne(id), generated: true };
    for (const [point, st] of job.points) {
      const event: PositionEvent = {
        position,
        token,
        point,
        topIndices: st.topIndices.map((layer) => layer[position]),
        topProbs: st.topProbs.map((layer) => layer[position]),
      };
      try {
        onPosition(event);
      } catch (e) {
        job.error = new LensError('INTERNAL', `onPosition listener failed: ${(e as Error)?.message ?? e}`);
        return;
      }
    }
  }

  private emit(s: Slab): void {
    const { job } = s;
    if (s.point === 'FINAL' || !job.req.onLayer || job.error) return;
    const st = job.points.get(s.point)!;
    try {
      job.req.onLayer({
        layer: job.req.layers[s.layerIndex],
        index: s.layerIndex,
        count: job.req.layers.length,
        point: s.point,
        topIndices: st.topIndices[s.layerIndex],
        topProbs: st.topProbs[s.layerIndex],
      });
    } catch (e) {
      // A failing listener ends its own request, never the batch it shares.
      job.error = new LensError('INTERNAL', `onLayer listener failed: ${(e as Error)?.message ?? e}`);
    }
  }

  /** Unembedding rows as the head sees them: rounded to float16 when the graphs compute in float16. */
  private unembedColumns(t: StTensor, ids: number[]): Float32Array {
    const rows = readRows(t, ids);
    return this.info.computeType === 'float16' ? rows.map((x) => roundToDtype(x, 'F16')) : rows;
  }

  /** Mode 2, for each read point of the job. */
  private async track(job: Job): Promise<void> {
    const session = await this.gather();
    const columns = (ids: number[]) => ({
      weight: this.unembedColumns(this.unembedRows.weight, ids),
      bias: this.unembedRows.bias ? this.unembedColumns(this.unembedRows.bias, ids) : undefined,
    });
    for (const st of job.points.values()) st.tracked = await trajectories(st, job.len, this.plan.hiddenSize, session, columns);
  }

  /** Stats of one read point against the final layer's distribution. */
  private async cellStats(job: Job, st: PointState): Promise<CellStats> {
    return cellStats(st.normed, job.len, job.finalNormed!, job.finalTop1!, this.head, this.plan);
  }
}

function newJob(req: ValidRequest, len: number): Job {
  return {
    req,
    row: 0,
    len,
    keepStates: req.track || req.stats || !!req.onNormed,
    points: new Map(req.points.map((p) => [p, { topIndices: [], topProbs: [], normed: [], lse: [] }])),
  };
}

/** Hash of what decides token ids: tokenizer.json's model, added tokens, normalizer and pre/post-processing. */
function tokenizerHash(json: unknown): string {
  const t = (json ?? {}) as Record<string, unknown>;
  const parts = ['model', 'added_tokens', 'normalizer', 'pre_tokenizer', 'post_processor'].map((k) => t[k] ?? null);
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function giveNormed(job: Job): void {
  if (!job.req.onNormed || job.error) return;
  try {
    job.req.onNormed(job.points.get(job.req.points[0])!.normed);
  } catch (e) {
    job.error = new LensError('INTERNAL', `onNormed listener failed: ${(e as Error)?.message ?? e}`);
  }
}

function concatF32(a: Float32Array | undefined, b: Float32Array): Float32Array {
  if (!a?.length) return b;
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function concatF64(a: Float64Array | undefined, b: Float64Array): Float64Array {
  if (!a?.length) return b;
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Appends a step's positions from `skip` on (earlier ones were already reported) to the running job. */
function appendJob(acc: Job, step: Job, skip: number): void {
  const D = step.len ? (step.finalNormed?.length ?? 0) / step.len : 0;
  for (const [point, st] of step.points) {
    const into = acc.points.get(point)!;
    st.topIndices.forEach((rows, li) => (into.topIndices[li] = [...(into.topIndices[li] ?? []), ...rows.slice(skip)]));
    st.topProbs.forEach((rows, li) => (into.topProbs[li] = [...(into.topProbs[li] ?? []), ...rows.slice(skip)]));
    if (acc.keepStates) {
      st.normed.forEach((n, li) => (into.normed[li] = concatF32(into.normed[li], n.subarray((skip * n.length) / step.len))));
      st.lse.forEach((x, li) => (into.lse[li] = concatF64(into.lse[li], x.subarray(skip))));
    }
  }
  acc.finalTop1 = [...(acc.finalTop1 ?? []), ...step.finalTop1!.slice(skip)];
  if (acc.keepStates) acc.finalNormed = concatF32(acc.finalNormed, step.finalNormed!.subarray(skip * D));
  acc.len += step.len - skip;
  if (step.error) acc.error = step.error;
}

function bytesPerElement(dtype: string): number {
  return dtype === 'F32' ? 4 : dtype === 'F64' ? 8 : 2;
}

function asLensError(e: unknown): LensError {
  if (e instanceof LensError) return e;
  return new LensError('INTERNAL', (e as Error)?.message ?? String(e));
}
