#!/usr/bin/env python3
"""Independent NumPy (float64) re-implementation of HF GPT-2 straight from config.json +
model.safetensors; checks every entry of expectations.json (last-layer top-1 id/prob and the
per-layer logit-lens top-1 ids).   /usr/bin/python3 training/check_numpy.py"""
import json, math, os, struct, sys
import numpy as np

D = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'models', 'tiny-facts-gpt2')
cfg = json.load(open(os.path.join(D, 'config.json')))
raw = open(os.path.join(D, 'model.safetensors'), 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
W = {}
for k, v in hdr.items():
    if k == '__metadata__':
        continue
    dt = {'F32': '<f4', 'F16': '<f2'}[v['dtype']]
    s, e = v['data_offsets']
    W[k] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype=dt).reshape(v['shape']).astype(np.float64)
eps, H = cfg['layer_norm_epsilon'], cfg['n_head']


def ln(x, p):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * W[p + '.weight'] + W[p + '.bias']


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def lens(ids):
    T = len(ids); Dm = cfg['n_embd']; hd = Dm // H
    h = W['transformer.wte.weight'][ids] + W['transformer.wpe.weight'][:T]
    out = []
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}.'
        qkv = ln(h, p + 'ln_1') @ W[p + 'attn.c_attn.weight'] + W[p + 'attn.c_attn.bias']
        q, k, v = (qkv[:, j * Dm:(j + 1) * Dm].reshape(T, H, hd).transpose(1, 0, 2) for j in range(3))
        a = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        a = np.where(np.tril(np.ones((T, T), bool)), a, -np.inf)
        a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
        y = (a @ v).transpose(1, 0, 2).reshape(T, Dm)
        h = h + y @ W[p + 'attn.c_proj.weight'] + W[p + 'attn.c_proj.bias']
        m = gelu_new(ln(h, p + 'ln_2') @ W[p + 'mlp.c_fc.weight'] + W[p + 'mlp.c_fc.bias'])
        h = h + m @ W[p + 'mlp.c_proj.weight'] + W[p + 'mlp.c_proj.bias']
        out.append(ln(h[-1], 'transformer.ln_f') @ W['transformer.wte.weight'].T)
    return out


exp = json.load(open(os.path.join(D, 'expectations.json')))
bad = 0
for e in exp['prompts']:
    L = lens(e['prompt_ids'])
    top = [int(np.argmax(l)) for l in L]
    p = np.exp(L[-1] - L[-1].max()); p /= p.sum()
    ok = top == e['per_layer_top1_ids'] and abs(p[top[-1]] - e['last_layer_top1_prob']) < 1e-4
    bad += not ok
    print('OK ' if ok else 'BAD', repr(e['prompt']), top, round(float(p[top[-1]]), 6), e['last_layer_top1_prob'])
print('all match' if not bad else f'{bad} mismatches')
sys.exit(1 if bad else 0)
