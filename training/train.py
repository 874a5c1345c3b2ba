#!/usr/bin/env python3
"""Train tiny-facts-gpt2 on CPU (Debian python3-torch 1.13). Deterministic for a given --seed:
every batch is drawn from an RNG seeded with (seed, step), so --resume continues identically.

  /usr/bin/python3 training/train.py --seed 0 [--resume]
"""
import argparse, json, math, os, random, sys, time
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import GPT2LMHeadModel  # noqa: E402

WORK = os.path.join(HERE, '.work')
TOK = os.path.join(WORK, 'tokens')
CFG = dict(vocab_size=8193, n_positions=128, n_embd=192, n_head=6, n_layer=6, layer_norm_epsilon=1e-5)
EOS, NL = 8192, 198


def load_data():
    nat = np.fromfile(os.path.join(TOK, 'natural_train.bin'), dtype='<u2').astype(np.int64)
    nat_ho = np.fromfile(os.path.join(TOK, 'natural_heldout.bin'), dtype='<u2').astype(np.int64)
    facts = json.load(open(os.path.join(TOK, 'facts_train.json')))
    w = np.array(json.load(open(os.path.join(WORK, 'corpus', 'facts_weights.json'))), dtype=np.float64)
    facts_ho = json.load(open(os.path.join(TOK, 'facts_heldout.json')))
    return nat, nat_ho, facts, w / w.sum(), facts_ho


def fact_row(rng, facts, p, T):
    """Whole sentences joined by '\\n', starting at position 0 (prompts have no BOS)."""
    row = []
    while len(row) < T + 1:
        if row:
            row.append(NL)
        row.extend(facts[rng.choice(len(facts), p=p)])
    return row[:T + 1]


def get_batch(seed, step, data, B, T, p_fact):
    nat, _, facts, p, _ = data
    rng = np.random.default_rng([seed, step])
    rows = []
    for _ in range(B):
        if rng.random() < p_fact:
            rows.append(fact_row(rng, facts, p, T))
        else:
            i = rng.integers(0, len(nat) - T - 1)
            rows.append(nat[i:i + T + 1].tolist())
    x = torch.tensor(rows, dtype=torch.long)
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model, data, T):
    """Held-out natural-text loss (fixed windows) and held-out-phrasing fact loss (per sentence)."""
    _, nat_ho, _, _, facts_ho = data
    model.eval()
    starts = np.linspace(0, len(nat_ho) - T - 2, 32).astype(int)
    x = torch.tensor(np.stack([nat_ho[s:s + T + 1] for s in starts]))
    _, l_nat = model(x[:, :-1], x[:, 1:])
    # fact sentences packed one per row, padded with -1 targets
    rows = facts_ho[::4]
    L = max(len(r) for r in rows)
    xx = torch.full((len(rows), L), EOS, dtype=torch.long)
    yy = torch.full((len(rows), L), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        xx[i, :len(r) - 1] = torch.tensor(r[:-1]); yy[i, :len(r) - 1] = torch.tensor(r[1:])
    _, l_fact = model(xx, yy)
    model.train()
    return l_nat.item(), l_fact.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--steps', type=int, default=1600)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq', type=int, default=128)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--min-lr', type=float, default=1e-4)
    ap.add_argument('--warmup', type=int, default=80)
    ap.add_argument('--p-fact', type=float, default=0.5)
    ap.add_argument('--ckpt-every', type=int, default=150)
    ap.add_argument('--eval-every', type=int, default=50)
    ap.add_argument('--threads', type=int, default=1,
                    help='1 is ~3.5x faster than 2 when other processes share the 2 cores (OpenBLAS barrier waits)')
    ap.add_argument('--resume', action='store_true')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    random.seed(a.seed); np.random.seed(a.seed); torch.manual_seed(a.seed)
    data = load_data()
    model = GPT2LMHeadModel(CFG)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    ckpt_path = os.path.join(WORK, 'ckpt.pt')
    log_path = os.path.join(WORK, 'log.jsonl')
    step, elapsed = 0, 0.0
    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck['model']); opt.load_state_dict(ck['opt'])
        step, elapsed = ck['step'], ck['elapsed']
        torch.set_rng_state(ck['torch_rng'])
        print(f'resumed at step {step}', flush=True)
    else:
        open(log_path, 'w').close()
    n_params = sum(p.numel() for p in model.parameters())
    print(f'params {n_params} ({n_params/1e6:.2f}M), config {CFG}, args {vars(a)}', flush=True)

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        r = (s - a.warmup) / max(1, a.steps - a.warmup)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * r))

    def save():
        torch.save({'model': model.state_dict(), 'opt': opt.state_dict(), 'step': step, 'elapsed': elapsed,
                    'torch_rng': torch.get_rng_state(), 'cfg': CFG, 'args': vars(a)}, ckpt_path + '.tmp')
        os.replace(ckpt_path + '.tmp', ckpt_path)

    t_last = time.time()
    logf = open(log_path, 'a')
    while step < a.steps:
        x, y = get_batch(a.seed, step, data, a.batch, a.seq, a.p_fact)
        for g in opt.param_groups:
            g['lr'] = lr_at(step)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time(); elapsed += now - t_last; t_last = now
        rec = {'step': step, 'loss': round(loss.item(), 4), 'lr': lr_at(step - 1), 'gnorm': round(gn.item(), 3),
               'elapsed': round(elapsed, 1), 'tokens': step * a.batch * a.seq}
        if step % a.eval_every == 0 or step == a.steps:
            rec['heldout_natural'], rec['heldout_facts'] = [round(v, 4) for v in evaluate(model, data, a.seq)]
            t_last = time.time()
            eta = elapsed / step * (a.steps - step)
            print(json.dumps(rec), f'eta {eta/60:.1f} min', flush=True)
        logf.write(json.dumps(rec) + '\n'); logf.flush()
        if step % a.ckpt_every == 0 or step == a.steps:
            save()
    torch.save({'model': model.state_dict(), 'cfg': CFG, 'args': vars(a), 'elapsed': elapsed, 'steps': step},
               os.path.join(WORK, 'final.pt'))
    print('done', flush=True)


if __name__ == '__main__':
    main()
