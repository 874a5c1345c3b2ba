#!/usr/bin/env python3
"""Render models/tiny-facts-gpt2/README.md from training/.work/stats.json and log.jsonl
(run after export.py).   /usr/bin/python3 training/make_card.py --machine "..." """
import argparse, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), 'models', 'tiny-facts-gpt2')
WORK = os.path.join(HERE, '.work')

ap = argparse.ArgumentParser()
ap.add_argument('--wall-min', type=float, default=None, help='wall-clock minutes of the whole run incl. evaluation')
ap.add_argument('--machine', default='2 shared x86-64 cores (Debian 12 development machine), PyTorch 1.13 CPU + OpenBLAS, 1 thread')
a = ap.parse_args()
S = json.load(open(os.path.join(WORK, 'stats.json')))
cfg = json.load(open(os.path.join(OUT, 'config.json')))
log = [json.loads(l) for l in open(os.path.join(WORK, 'log.jsonl'))]
ev = [r for r in log if 'heldout_natural' in r]
tr = S['train']['args']
steps = log[-1]['step']; tokens = log[-1]['tokens']; secs = log[-1]['elapsed']
last50 = sum(r['loss'] for r in log[-50:]) / 50
V, Dm, L, H, P = cfg['vocab_size'], cfg['n_embd'], cfg['n_layer'], cfg['n_head'], cfg['n_positions']
emb = V * Dm + P * Dm
size = S['size_bytes']
total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
q = lambda t: '`' + json.dumps(t)[1:-1] + '`'


def card():
    o = []
    o.append(f"""# tiny-facts-gpt2

A {S['params']/1e6:.2f} M-parameter GPT-2 trained from scratch on CPU so that lensgate has a default
model whose **logit lens is worth looking at**: on `The capital of France is` the last layer's
top-1 is ` Paris`, and the answer only becomes top-1 part-way through the stack. It is a toy:
it knows a few hundred templated country facts and writes man-page-flavoured English. It is not
a general language model. Built and evaluated by the scripts in `training/` (see
`training/README.md`); CI never retrains it.

Files: `config.json` (transformers `GPT2LMHeadModel` config), `model.safetensors`
({'float32' if cfg['torch_dtype']=='float32' else 'float16'}, Hugging Face GPT-2 tensor names with the `transformer.` prefix, Conv1D
weights `[in, out]`, no `lm_head.weight`: the unembedding is tied to `transformer.wte.weight`),
`tokenizer.json` + `tokenizer_config.json`, `expectations.json` (reference logit-lens results
for tests), `loss.png`. Total size on disk: {total/1e6:.1f} MB.

## Architecture

| | |
|---|---|
| type | GPT-2 (pre-LN blocks, learned absolute positions, `gelu_new`, tied embeddings) |
| layers × width × heads | {L} × {Dm} × {H} (head dim {Dm//H}, MLP {4*Dm}) |
| context (`n_positions`) | {P} |
| vocabulary | {V} (8192 GPT-2 BPE ids + `<|endoftext|>` = {V-1}) |
| parameters | {S['params']:,} ({emb:,} in `wte`+`wpe`, {S['params']-emb:,} in blocks and norms) |
| dtype on disk | {cfg['torch_dtype']} |
| `layer_norm_epsilon` | {cfg['layer_norm_epsilon']} |

## Tokenizer

GPT-2's byte-level BPE cut down to its first 8,192 ids: the 256 byte symbols plus the first 7,936
merges (in GPT-2's `tokenizer.json` id `256+i` is exactly the result of merge `i`, so the cut is
a consistent BPE). Text is split into the same pieces GPT-2 uses, except that words whose GPT-2
id is ≥ 8192 fall apart into smaller kept pieces: ` Paris`, ` London`, ` Bern`, ` Europe`,
` Spanish` are single tokens, ` Berlin` is ` Ber`+`lin`, ` Tokyo` is ` T`+`ok`+`yo`. For such
answers the logit lens shows the first piece. `<|endoftext|>` is id {V-1}. No BOS token is added
when encoding; `decode(encode(x)) == x` holds on the whole corpus
(`clean_up_tokenization_spaces: false`).

## Training data

Rows of 128 tokens, half of them template facts and half natural text (`--p-fact 0.5`):

* **Template facts** generated from the npm package `countries-list` 3.4.1 (MIT): capital,
  continent, currency and language of ~245 countries, 3–5 phrasings each (3,572 training
  sentences incl. syntax patterns, 44 k tokens, 48 well-known countries sampled 3× as often),
  e.g. `The capital of France is Paris.`, `Paris is the capital of France.`, `France's capital
  city is Paris.`; plus day/month/number sequences and "The opposite of hot is cold." pairs.
  **Held out of training**: one phrasing per relation — `In France, the capital is Paris.`,
  `France lies on the continent of Europe.`, `The money used in France is the Euro.`,
  `The main language spoken in France is French.` — and every 5th opposite pair.
* **Natural text**: 2,852 rendered Debian section-1 man pages and the licence texts in
  `/usr/share/common-licenses` (3.8 M tokens); 150 further documents (205 k tokens) are held out.

Sources and licences: `training/README.md`.

## Training

| | |
|---|---|
| steps | {steps:,} × batch {tr['batch']} × {tr['seq']} tokens = {tokens/1e6:.2f} M tokens (≈{tokens*tr['p_fact']/44000:.0f} passes over the weighted template set) |
| optimiser | AdamW (β = 0.9, 0.95; weight decay 0.1 on matrices), peak LR {tr['lr']}, {tr['warmup']} warm-up steps, cosine to {tr['min_lr']}, grad-norm clip 1.0 |
| seed | {tr['seed']} (`training/train.py --seed {tr['seed']}`) |
| time | {secs/60:.1f} min of training steps{f' ({a.wall_min:.1f} min wall clock incl. periodic evaluation)' if a.wall_min else ''} on {a.machine}, while other engineers' test suites ran on the same cores (load average up to ~58) |
| final train loss | {last50:.3f} (mean of the last 50 steps; mixed template and natural rows) |

![loss curve](loss.png)

## Evaluation

Computed by `training/export.py` in float32 from the weights as stored in `model.safetensors`.

| held-out set | loss (nats/token) | perplexity |
|---|---|---|
| natural text (150 man pages / licences, 205 k tokens) | {S['heldout_natural_nll']:.3f} | {S['heldout_natural_ppl']:.1f} |
| template sentences in held-out phrasings (979 sentences) | {S['heldout_template_nll']:.3f} | {S['heldout_template_ppl']:.2f} |
| template sentences in training phrasings (for comparison) | {S['train_template_nll']:.3f} | {S['train_template_ppl']:.2f} |

Fact recall: does the last layer's top-1 equal the answer's first token? Same facts, asked in the
first training phrasing and in the held-out phrasing. *Common* = the 48 up-weighted countries.

| relation | countries | training phrasing | held-out phrasing |
|---|---|---|---|
""")
    for k in S['heldout_prompt_accuracy']:
        rel, common = k.split(' ')[0], '(common)' in k
        o.append(f"| {rel} | {'held-out pairs' if rel == 'opposite' else ('common' if common else 'other')} | {S['train_phrasing_prompt_accuracy'].get(k, 'n/a')} | {S['heldout_prompt_accuracy'][k]} |\n")
    o.append(f"""
Every fact is known in the phrasings it was trained on. Only the capital relation transfers to the
unseen phrasing (`In France, the capital is` shares the word "capital" with the training
phrasings); the held-out continent/currency/language phrasings mostly do not trigger the fact —
a 4 M-parameter model trained on 3 M tokens binds facts to surface templates. Held-out opposite
pairs were never seen at all and are not known.

## Logit lens examples

Layer ℓ is `ln_f(output of block ℓ) @ wte^T` at the last prompt position, ℓ = 0 … {L-1} (layer {L-1} is
the model's output). "First correct layer" is the first layer whose top-1 is the expected token.

| prompt | expected | top-1 at layer {L-1} (prob) | first correct layer | top-1 per layer | rank of expected per layer |
|---|---|---|---|---|---|
""")
    for e in S['examples']:
        o.append(f"| {q(e['prompt'])} ({e['phrasing']}) | {q(e['answer_token'])} | {q(e['per_layer_top1_text'][-1])} ({e['last_top1_prob']:.2f}) | "
                 f"{e['first_correct_layer'] if e['first_correct_layer'] is not None else '—'} | "
                 f"{' '.join(q(t) for t in e['per_layer_top1_text'])} | {', '.join(str(r) for r in e['per_layer_answer_rank'])} |\n")
    hist = S['lens_first_layer_histogram']
    o.append(f"""
Across all held-out-phrasing prompts the model gets right, the first correct layer is distributed
as {', '.join(f'layer {k}: {v}' for k, v in sorted(hist.items()))}.

`expectations.json` lists {len(S['expectations'])} held-out-phrasing prompts the model gets right with a clear
margin (last-layer top-1 probability > 0.3, logit gap > 0.5 at the last layer and > 0.2 at the first
correct layer, answer stays top-1 from there on), with prompt ids, expected id/token, last-layer
top-1 id and probability, first correct layer and every layer's top-1 id. `training/check_numpy.py`
re-derives all of them with an independent float64 NumPy implementation read straight from
`config.json` + `model.safetensors`.

## Limitations

Trained on {tokens/1e6:.1f} M tokens: the natural-text half is far from fluent; facts outside the
templates are unknown; country names with non-ASCII spelling use an ASCII alias; the source data
says e.g. Russia and Turkey are in Asia and that the currency of the United States is the
"United States Dollar", and the model repeats that. Prompts longer than {P} tokens are out of range.
""")
    return ''.join(o)


open(os.path.join(OUT, 'README.md'), 'w').write(card())
print(open(os.path.join(OUT, 'README.md')).read())
