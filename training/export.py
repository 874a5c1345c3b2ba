#!/usr/bin/env python3
"""Export the trained model to models/tiny-facts-gpt2/ (config.json, model.safetensors, F32 by default),
then reload the written file and evaluate its weights in float32:
held-out perplexities, logit-lens examples, expectations.json, loss.png, and .work/stats.json.

  /usr/bin/python3 training/export.py [--ckpt training/.work/final.pt]
"""
import argparse, json, math, os, sys
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import GPT2LMHeadModel  # noqa: E402
from train import EOS  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, 'models', 'tiny-facts-gpt2')
WORK = os.path.join(HERE, '.work')
TOK = os.path.join(WORK, 'tokens')

def hf_config(cfg, dtype):
    return {
        'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2',
        'vocab_size': cfg['vocab_size'], 'n_positions': cfg['n_positions'], 'n_ctx': cfg['n_positions'],
        'n_embd': cfg['n_embd'], 'n_layer': cfg['n_layer'], 'n_head': cfg['n_head'], 'n_inner': None,
        'activation_function': 'gelu_new', 'layer_norm_epsilon': cfg['layer_norm_epsilon'],
        'resid_pdrop': 0.0, 'embd_pdrop': 0.0, 'attn_pdrop': 0.0, 'initializer_range': 0.02,
        'scale_attn_weights': True, 'scale_attn_by_inverse_layer_idx': False, 'reorder_and_upcast_attn': False,
        'tie_word_embeddings': True, 'bos_token_id': EOS, 'eos_token_id': EOS, 'use_cache': True,
        'torch_dtype': {'F32': 'float32', 'F16': 'float16'}[dtype],
    }


@torch.no_grad()
def nll_stream(model, toks, T):
    tot, n = 0.0, 0
    for s in range(0, len(toks) - 1, T):
        x = torch.tensor(toks[s:s + T + 1], dtype=torch.long)[None]
        if x.shape[1] < 2:
            break
        logits = model(x[:, :-1])
        tot += torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction='sum').item(); n += x.shape[1] - 1
    return tot / n


@torch.no_grad()
def nll_sentences(model, sents):
    tot, n = 0.0, 0
    for r in sents:
        x = torch.tensor(r)[None]
        logits = model(x[:, :-1])
        tot += torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction='sum').item(); n += len(r) - 1
    return tot / n


@torch.no_grad()
def lens(model, ids, answer_id):
    """Logit lens at the last position: per layer top-1 id/prob and the answer's rank."""
    L = model.logit_lens(torch.tensor(ids)[None])[:, -1, :].double()  # [layers, V]
    P = torch.softmax(L, -1)
    rows = []
    for l in range(L.shape[0]):
        top2 = torch.topk(L[l], 2)
        rows.append({'layer': l, 'top1_id': int(top2.indices[0]), 'top1_prob': float(P[l, top2.indices[0]]),
                     'gap': float(top2.values[0] - top2.values[1]),
                     'answer_prob': float(P[l, answer_id]),
                     'answer_rank': int((L[l] > L[l, answer_id]).sum())})
    first = next((r['layer'] for r in rows if r['top1_id'] == answer_id), None)
    stays = first is not None and all(r['top1_id'] == answer_id for r in rows[first:])
    return rows, first, stays


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ckpt', default=os.path.join(WORK, 'final.pt'))
    ap.add_argument('--dtype', default='F32', choices=['F32', 'F16'], help='F32 fits the 25 MB budget at 4.3 M params')
    ap.add_argument('--quick', action='store_true', help='subsample the evaluation (smoke test)')
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = torch.load(a.ckpt)
    cfg = ck['cfg']
    sd = {k: v for k, v in ck['model'].items()}
    os.makedirs(OUT, exist_ok=True)
    json.dump(hf_config(cfg, a.dtype), open(os.path.join(OUT, 'config.json'), 'w'), indent=2)
    write_safetensors(os.path.join(OUT, 'model.safetensors'), sd, a.dtype, metadata={'format': 'pt'})

    # reload what was written (the stored-precision weights), evaluated in float32
    model = GPT2LMHeadModel(cfg)
    loaded = read_safetensors(os.path.join(OUT, 'model.safetensors'))
    missing = set(model.state_dict()) ^ set(loaded)
    assert not missing, missing
    model.load_state_dict(loaded); model.eval()

    nat_ho = np.fromfile(os.path.join(TOK, 'natural_heldout.bin'), dtype='<u2').astype(np.int64).tolist()
    facts_ho = json.load(open(os.path.join(TOK, 'facts_heldout.json')))
    facts_tr = json.load(open(os.path.join(TOK, 'facts_train.json')))
    if a.quick:
        nat_ho, facts_ho = nat_ho[:4096], facts_ho[::10]
    stats = {'params': sum(p.numel() for p in model.parameters()),
             'heldout_natural_nll': nll_stream(model, nat_ho, cfg['n_positions']),
             'heldout_template_nll': nll_sentences(model, facts_ho),
             'train_template_nll': nll_sentences(model, facts_tr[::7] if not a.quick else facts_tr[::50])}
    for k in list(stats):
        if k.endswith('_nll'):
            stats[k.replace('_nll', '_ppl')] = math.exp(stats[k])

    # held-out phrasing prompts: accuracy of the first answer token, per relation
    prompts = json.load(open(os.path.join(TOK, 'prompts_heldout.json')))
    if a.quick:
        prompts = [p for p in prompts if p['common']]
    acc = {}
    results = []
    for p in prompts:
        ids = p['prompt_ids']
        ans = p['full_ids'][len(ids)]  # first answer token as tokenized in context
        rows, first, stays = lens(model, ids, ans)
        ok = rows[-1]['top1_id'] == ans
        key = p['relation'] + (' (common)' if p['common'] else '')
        acc.setdefault(key, [0, 0]); acc[key][0] += ok; acc[key][1] += 1
        results.append({**p, 'answer_id': ans, 'ok': ok, 'first': first, 'stays': stays, 'rows': rows})
    stats['heldout_prompt_accuracy'] = {k: f'{v[0]}/{v[1]}' for k, v in sorted(acc.items())}
    tacc = {}
    with torch.no_grad():
        for p in json.load(open(os.path.join(TOK, 'prompts_train.json'))):
            ans = p['full_ids'][len(p['prompt_ids'])]
            ok = int(model(torch.tensor(p['prompt_ids'])[None])[0, -1].argmax()) == ans
            key = p['relation'] + (' (common)' if p['common'] else '')
            tacc.setdefault(key, [0, 0]); tacc[key][0] += ok; tacc[key][1] += 1
    stats['train_phrasing_prompt_accuracy'] = {k: f'{v[0]}/{v[1]}' for k, v in sorted(tacc.items())}

    # README demo / example prompts (training phrasing for the demo, held-out phrasings otherwise)
    examples = []
    demo = json.load(open(os.path.join(TOK, 'demo_prompts.json'))) if os.path.exists(os.path.join(TOK, 'demo_prompts.json')) else []
    for d in demo:
        rows, first, stays = lens(model, d['prompt_ids'], d['answer_id'])
        examples.append({'prompt': d['prompt'], 'answer': d['answer'], 'answer_id': d['answer_id'], 'phrasing': d['phrasing'],
                         'last_top1_id': rows[-1]['top1_id'], 'last_top1_prob': rows[-1]['top1_prob'],
                         'answer_prob': rows[-1]['answer_prob'], 'first_correct_layer': first, 'stays_top1': stays,
                         'per_layer_top1': [r['top1_id'] for r in rows], 'per_layer_answer_rank': [r['answer_rank'] for r in rows],
                         'per_layer_top1_text': [tk_text(r['top1_id']) for r in rows], 'answer_token': tk_text(d['answer_id']),
                         'per_layer_answer_prob': [r['answer_prob'] for r in rows]})
    stats['examples'] = examples

    # expectations.json: held-out phrasing prompts the model gets right with clear margins
    good = [r for r in results if r['ok'] and len(r['answer_ids']) >= 1 and r['rows'][-1]['top1_prob'] > 0.3
            and r['rows'][-1]['gap'] > 0.5 and r['stays'] and r['rows'][r['first']]['gap'] > 0.2]
    good.sort(key=lambda r: (len(r['answer_ids']) > 1, not r['common'], -r['rows'][-1]['top1_prob']))  # whole-word answers first
    chosen, seen_rel, seen_ans = [], {}, set()
    for r in good:  # spread over relations and answers
        if seen_rel.get(r['relation'], 0) < 5 and r['answer_id'] not in seen_ans:
            seen_ans.add(r['answer_id'])
            chosen.append(r); seen_rel[r['relation']] = seen_rel.get(r['relation'], 0) + 1
        if len(chosen) >= 8:
            break
    exp = {
        'model': 'tiny-facts-gpt2',
        'note': 'Computed by training/export.py in PyTorch, float32 math on the weights stored in model.safetensors. '
                'Logit lens: layer l = ln_f(output of block l) @ wte^T at the last prompt position (0-based). '
                'Prompts use phrasings held out of training. Token ids from tokenizer.json (no BOS added).',
        'n_layer': cfg['n_layer'],
        'prompts': [{
            'prompt': r['prompt'], 'prompt_ids': r['prompt_ids'], 'relation': r['relation'], 'answer': r['answer'],
            'expected_token': tk_text(r['answer_id']), 'expected_id': r['answer_id'],
            'last_layer_top1_id': r['rows'][-1]['top1_id'], 'last_layer_top1_prob': round(r['rows'][-1]['top1_prob'], 6),
            'last_layer_logit_gap': round(r['rows'][-1]['gap'], 4),
            'first_correct_layer': r['first'], 'first_correct_layer_logit_gap': round(r['rows'][r['first']]['gap'], 4),
            'per_layer_top1_ids': [x['top1_id'] for x in r['rows']],
        } for r in chosen],
    }
    json.dump(exp, open(os.path.join(OUT, 'expectations.json'), 'w'), indent=2)
    stats['expectations'] = exp['prompts']
    stats['lens_first_layer_histogram'] = {}
    for r in results:
        if r['ok']:
            k = str(r['first']); stats['lens_first_layer_histogram'][k] = stats['lens_first_layer_histogram'].get(k, 0) + 1
    stats['size_bytes'] = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))}
    stats['train'] = {k: ck.get(k) for k in ('elapsed', 'steps', 'args')}
    json.dump(stats, open(os.path.join(WORK, 'stats.json'), 'w'), indent=1)
    print(json.dumps({k: v for k, v in stats.items() if k not in ('expectations',)}, indent=1))
    plot_loss()


VOCAB = None


def tk_text(i):
    global VOCAB
    if VOCAB is None:
        v = json.load(open(os.path.join(OUT, 'tokenizer.json')))['model']['vocab']
        VOCAB = {j: s for s, j in v.items()}
    bs = bytes_to_unicode_inv()
    return bytes(bs[ch] for ch in VOCAB[i]).decode('utf-8', 'replace')


def bytes_to_unicode_inv():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('\xa1'), ord('\xac') + 1)) + list(range(ord('\xae'), ord('\xff') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def plot_loss():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    recs = [json.loads(l) for l in open(os.path.join(WORK, 'log.jsonl'))]
    tok = np.array([r['tokens'] for r in recs]) / 1e6
    loss = np.array([r['loss'] for r in recs])
    k = 25
    sm = np.convolve(loss, np.ones(k) / k, mode='valid')
    ev = [r for r in recs if 'heldout_natural' in r]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(tok, loss, color='#bbbbbb', lw=0.6, label='train loss (per step, 50% template rows)')
    ax.plot(tok[k - 1:], sm, color='black', lw=1.5, label=f'train loss ({k}-step mean)')
    ax.plot([r['tokens'] / 1e6 for r in ev], [r['heldout_natural'] for r in ev], 'o-', ms=3, color='tab:blue', label='held-out natural text (man pages)')
    ax.plot([r['tokens'] / 1e6 for r in ev], [r['heldout_facts'] for r in ev], 'o-', ms=3, color='tab:red', label='held-out template phrasings')
    ax.set_xlabel('training tokens (millions)'); ax.set_ylabel('cross-entropy (nats/token)')
    ax.set_title('tiny-facts-gpt2 training (seed 0)')
    ax.set_ylim(0, 9.5); ax.grid(alpha=0.3); ax.legend()
    fig.tight_layout(); fig.savefig(os.path.join(OUT, 'loss.png')); plt.close(fig)


if __name__ == '__main__':
    main()
