// npm run --silent lens -- --model DIR --prompt TEXT [--top-k 5] [--track] [--json] [--layers 0,3,5] …
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LensError, type LensKind, type LensPoint, type LensResult, openModel } from '../lens/index.js';
import { loadReporter } from './progress.js';

const USAGE = `usage: npm run --silent lens -- --model DIR --prompt TEXT [options]
  --model DIR          Hugging Face model directory (config.json, *.safetensors, tokenizer.json)
  --prompt TEXT        text to run the lens on
  --top-k N            top tokens per cell (default 5)
  --track              also return per-position trajectories (mode 2)
  --layers LIST        comma-separated layer subset, e.g. 0,6,11 (default: all)
  --attention          also lens the residual after each block's attention
  --stats              entropy, KL to the final layer, rank of the final top-1
  --generate N         continue the prompt greedily for up to N tokens (stops after EOS) and lens those positions too
  --model-type TYPE    override architecture detection (gpt2, llama, …)
  --device D           auto | cpu | cuda (default auto)
  --dtype T            float32 | float16 compute (default: float16 on CUDA for F16/BF16 checkpoints, else float32)
  --quantize Q         int8 | int4: weight-only quantization of the blocks (CPU; cached in DIR/lensgate-quantized)
  --tuned DIR          load a tuned lens (tuned-lens folder: config.json + params.pt)
  --jacobian FILE      load a Jacobian lens (*_jacobian_lens.pt)
  --lens KIND          logit | tuned | jacobian (default logit)
  --json               one JSON document on stdout
  --naive              benchmark path: full logits back to JS`;

function fail(message: string, code = 2): never {
  process.stderr.write(`lens: ${message}\n`);
  process.exit(code);
}

function parse() {
  try {
    return parseArgs({
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        'top-k': { type: 'string', default: '5' },
        track: { type: 'boolean', default: false },
        layers: { type: 'string' },
        attention: { type: 'boolean', default: false },
        stats: { type: 'boolean', default: false },
        generate: { type: 'string' },
        'model-type': { type: 'string' },
        device: { type: 'string', default: 'auto' },
        dtype: { type: 'string' },
        quantize: { type: 'string' },
        tuned: { type: 'string' },
        jacobian: { type: 'string' },
        lens: { type: 'string', default: 'logit' },
        json: { type: 'boolean', default: false },
        naive: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    fail(`${(e as Error).message}\n${USAGE}`);
  }
}

function toJson(r: LensResult) {
  const { id, modelType, numLayers, hiddenSize, vocabSize } = r.model;
  return {
    model: { id, modelType, numLayers, hiddenSize, vocabSize },
    lens: r.lens,
    tokens: r.tokens,
    layers: r.layers,
    topK: r.topK,
    topIndices: r.topIndices,
    topProbs: r.topProbs,
    tracked: r.tracked,
    ...(r.attention ? { attention: r.attention } : {}),
    ...(r.stats ? { stats: r.stats } : {}),
    ...(r.generation ? { generation: r.generation } : {}),
  };
}

/** Layer × position grid of the top-1 token and its probability. */
function table(r: LensResult, decode: (id: number) => string): string {
  const show = (s: string) => JSON.stringify(s).slice(1, -1).slice(0, 14);
  const cells = r.layers.map((l, li) => [`L${l}`, ...r.tokens.map((_, p) => `${show(decode(r.topIndices[li][p][0]))} ${r.topProbs[li][p][0].toFixed(2)}`)]);
  // Generated tokens are marked with a leading "+".
  const header = ['', ...r.tokens.map((t) => (t.generated ? `+${show(t.text)}` : show(t.text)))];
  const rows = [header, ...cells.reverse()];
  const widths = header.map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c])).join(' │ ')).join('\n');
}

async function main() {
  const args = parse();
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!args.model) fail(`--model is required\n${USAGE}`);
  if (args.prompt === undefined) fail(`--prompt is required\n${USAGE}`);
  const topK = Number(args['top-k']);
  const layers = args.layers?.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
  const device = args.device as 'auto' | 'cpu' | 'cuda';
  if (!['auto', 'cpu', 'cuda'].includes(device)) fail(`--device must be auto, cpu or cuda`);
  const points: LensPoint[] = args.attention ? ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] : ['BLOCK_OUTPUT'];
  const dtype = args.dtype as 'float32' | 'float16' | undefined;
  if (dtype !== undefined && !['float32', 'float16'].includes(dtype)) fail(`--dtype must be float32 or float16`);
  const generate = args.generate === undefined ? undefined : { maxNewTokens: Number(args.generate) };
  if (generate && args.naive) fail('--generate and --naive do not go together');
  const quantize = args.quantize as 'int8' | 'int4' | undefined;
  if (quantize !== undefined && !['int8', 'int4'].includes(quantize)) fail(`--quantize must be int8 or int4`);
  const lens = args.lens.toUpperCase() as LensKind;
  if (!['LOGIT', 'TUNED', 'JACOBIAN'].includes(lens)) fail(`--lens must be logit, tuned or jacobian`);
  const progress = loadReporter(basename(resolve(args.model)), process.stderr, 'lens: ');
  const lenses = { tuned: args.tuned, jacobian: args.jacobian };
  const model = await openModel(args.model, { modelType: args['model-type'], device, dtype, lenses, quantize, onProgress: (p) => progress.onProgress(p) }).then(
    (m) => (progress.done(true), m),
    (err: unknown) => {
      progress.done(false);
      throw err;
    },
  );
  try {
    const options = { lens, topK, layers, trackAcrossLayers: args.track, stats: args.stats, points, generate };
    const r = args.naive ? await model.lensNaive(args.prompt, options) : await model.lens(args.prompt, options);
    if (args.json) {
      process.stdout.write(`${JSON.stringify(toJson(r))}\n`);
    } else {
      process.stdout.write(`${r.model.id} (${r.model.modelType}, ${r.model.numLayers} layers, ${r.model.device}, ${r.model.computeType}) — ${r.lens.toLowerCase()} lens, top-1 per layer and position\n`);
      process.stdout.write(`${table(r, (id) => model.decode(id))}\n`);
      if (r.generation) {
        const g = r.generation;
        const text = r.tokens.filter((t) => t.generated).map((t) => t.text).join('');
        process.stdout.write(`generated ${g.newTokens} token(s)${g.stoppedAtEos ? ' (stopped at EOS)' : ''}: ${JSON.stringify(text)}\n`);
      }
      process.stdout.write(`${r.timings.totalMs.toFixed(1)} ms\n`);
    }
  } finally {
    await model.close();
  }
}

main().catch((e) => {
  if (e instanceof LensError) fail(`${e.code}: ${e.message}`);
  fail((e as Error).stack ?? String(e), 1);
});
