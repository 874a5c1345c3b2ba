"""Fit a tuned lens and a Jacobian lens for models/tiny-facts-gpt2 and save them in the published formats.

  models/tiny-facts-gpt2/lenses/tuned/config.json, params.pt         (tuned-lens's TunedLens.save layout)
  models/tiny-facts-gpt2/lenses/tiny-facts-gpt2_jacobian_lens.pt     (jlens JacobianLens layout, fp16)
  test/fixtures/lenses/tiny-facts-*.safetensors                      (the same numbers, read by the test oracle)

Run from the repository root with Debian's PyTorch:  /usr/bin/python3 training/fit_lenses.py
Token ids come from the model's tokenizer.json through the project's node_modules (@huggingface/tokenizers).

Formats, followed exactly:
- tuned-lens (AlignmentResearch/tuned-lens, tuned_lens/nn/lenses.py): `layer_translators` is an
  nn.ModuleList of num_hidden_layers nn.Linear(d_model, d_model, bias) modules; translator i is applied
  residually, h + Linear_i(h), to hidden_states[i] of the HF forward (0 = embeddings, i = output of block
  i-1); the last block's output has no translator (it is the model's own output). TunedLens.save does
  th.save(layer_translators.state_dict(), params.pt) and json.dump(config) with unembed_hash =
  tuned_lens.utils.tensor_hash(unembedding.weight.float().numpy()).
- Jacobian lens (anthropics/jacobian-lens): a dict {J: {layer: [d, d] fp16}, source_layers, n_prompts,
  d_model, provenance}; J[l] carries the output of block l into the final block's output basis,
  lens_l(h) = unembed(norm(J[l] @ h)); source layers are 0..L-2 (the last block is the target).
  Estimator: one-hot cotangents on every target position at once, gradient at each source position,
  averaged over source positions and prompts.
"""
import hashlib, json, os, subprocess, sys
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'training'))
from model import GPT2LMHeadModel  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

MODEL = os.path.join(ROOT, 'models', 'tiny-facts-gpt2')
OUT = os.path.join(MODEL, 'lenses')
FIX = os.path.join(ROOT, 'test', 'fixtures', 'lenses')
# The tiny model is trained on 128-token windows of short facts: only position 0 is skipped as the
# attention sink (jlens skips 16 on real models, whose fitting passages are 128 tokens of web text).
SKIP_FIRST_N_POSITIONS = 1
# Fitting prompts for the Jacobian lens (the tuned lens uses all of them).
JACOBIAN_PROMPTS = 12


def tensor_hash(a):
    """tuned_lens.utils.tensor_hash, transcribed: sha256 of numpy's summarised print at precision 1."""
    return hashlib.sha256(str.encode(np.array_str(a, precision=1))).hexdigest()


def tokenize(texts):
    js = ("import {Tokenizer} from '@huggingface/tokenizers'; import fs from 'node:fs';"
          "const dir=process.argv[1]; const t=new Tokenizer(JSON.parse(fs.readFileSync(dir+'/tokenizer.json','utf8')),"
          "JSON.parse(fs.readFileSync(dir+'/tokenizer_config.json','utf8')));"
          "const texts=JSON.parse(fs.readFileSync(0,'utf8'));"
          "console.log(JSON.stringify(texts.map(s=>t.encode(s,{add_special_tokens:false}).ids)));")
    out = subprocess.run(['node', '--input-type=module', '-e', js, MODEL], input=json.dumps(texts), capture_output=True,
                         text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def fitting_texts():
    exp = json.load(open(os.path.join(MODEL, 'expectations.json')))
    texts = [p['prompt'] + p['answer'] + '.' for p in exp['prompts']]
    texts += [
        'The capital of Japan is Tokyo. The capital of Italy is Rome. The capital of Spain is Madrid.',
        'Germany is a country in Europe. Its capital is Berlin and its currency is the Euro.',
        'Canada is a country in North America. The capital of Canada is Ottawa.',
        'Permission is hereby granted, free of charge, to any person obtaining a copy of this software.',
        'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.',
        'The ls command lists directory contents. Use -l for a long listing format.',
        'The grep command searches for patterns in each file and prints each line that matches.',
        'In Egypt, the capital is Cairo. In Kenya, the capital is Nairobi. In Peru, the capital is Lima.',
        'The official language of Brazil is Portuguese, and its capital is Brasilia.',
        'Redistribution and use in source and binary forms, with or without modification, are permitted.',
    ]
    return texts


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = json.load(open(os.path.join(MODEL, 'config.json')))
    model = GPT2LMHeadModel(cfg)
    model.load_state_dict(read_safetensors(os.path.join(MODEL, 'model.safetensors')))
    model.eval().requires_grad_(False)
    t = model.transformer
    L, D = cfg['n_layer'], cfg['n_embd']
    W_U = t.wte.weight  # tied unembedding [V, D]

    texts = fitting_texts()
    seqs = [torch.tensor(ids)[None] for ids in tokenize(texts)]
    with torch.no_grad():
        hs = [model.hidden_states(s) for s in seqs]  # per prompt: L+1 tensors [1, T, D]
        final_lp = [torch.log_softmax(t.ln_f(h[-1]) @ W_U.t(), -1) for h in hs]

    if '--only-jacobian' not in sys.argv:
        fit_tuned(model, hs, final_lp, L, D, W_U, t)
    fit_jacobian(seqs, hs, L, D, t)


def fit_tuned(model, hs, final_lp, L, D, W_U, t):
    # ---- tuned lens: nn.Linear translators, residual, KL(final || lens) summed over positions ----
    translators = torch.nn.ModuleList([torch.nn.Linear(D, D, bias=True) for _ in range(L)])
    for tr in translators:
        tr.weight.data.zero_()
        tr.bias.data.zero_()
    # every position of every prompt is one training row (the translators act per position)
    rows = [torch.cat([h[i][0] for h in hs]) for i in range(L + 1)]
    final = torch.cat([fl[0] for fl in final_lp])
    opt = torch.optim.Adam(translators.parameters(), lr=3e-3)
    STEPS, BATCH = 200, 128
    gen = torch.Generator().manual_seed(0)
    for step in range(STEPS):
        opt.zero_grad()
        loss = 0.0
        pick = torch.randperm(final.shape[0], generator=gen)[:BATCH]
        for i in range(L):  # hidden_states[:-1], exactly as tuned-lens's train loop
            x = rows[i][pick] + translators[i](rows[i][pick])
            lp = torch.log_softmax(t.ln_f(x) @ W_U.t(), -1)
            fl = final[pick]
            loss = loss + torch.sum(fl.exp() * (fl - lp)) / BATCH
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f'tuned lens step {step}: KL(final || lens) per position, summed over layers {loss.item():.4f}', flush=True)

    os.makedirs(os.path.join(OUT, 'tuned'), exist_ok=True)
    os.makedirs(FIX, exist_ok=True)
    torch.save(translators.state_dict(), os.path.join(OUT, 'tuned', 'params.pt'))
    config = {
        'base_model_name_or_path': 'tiny-facts-gpt2',
        'd_model': D,
        'num_hidden_layers': L,
        'bias': True,
        'base_model_revision': None,
        'unembed_hash': tensor_hash(W_U.detach().float().numpy()),
        'lens_type': 'linear_tuned_lens',
    }
    with open(os.path.join(OUT, 'tuned', 'config.json'), 'w') as f:
        json.dump(config, f)
    write_safetensors(os.path.join(FIX, 'tiny-facts-tuned.safetensors'), translators.state_dict())



def fit_jacobian(seqs, hs, L, D, t):
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(FIX, exist_ok=True)
    # ---- Jacobian lens: J[l] = mean over prompts and source positions of d(sum over targets h_final)/d h_l ----
    J = {l: torch.zeros(D, D, dtype=torch.float64) for l in range(L - 1)}
    n_prompts = 0
    for s, h in list(zip(seqs, hs))[:JACOBIAN_PROMPTS]:
        print(f'jacobian lens: prompt {n_prompts + 1}', flush=True)
        T = s.shape[1]
        if T <= SKIP_FIRST_N_POSITIONS:
            continue
        n_prompts += 1
        for l in range(L - 1):
            # D copies of the prompt in one batch; copy d gets the one-hot cotangent on output dim d at every
            # target position, so its input gradient is row d of this prompt's Jacobian (no vmap needed).
            src = h[l + 1].detach().expand(D, T, D).clone().requires_grad_(True)
            x = src
            for blk in t.h[l + 1:]:
                x = blk(x)
            valid = torch.zeros(1, T, 1)
            valid[:, SKIP_FIRST_N_POSITIONS:] = 1
            cot = torch.eye(D)[:, None, :].expand(D, T, D) * valid
            (g,) = torch.autograd.grad(x, src, grad_outputs=cot)
            J[l] += g[:, SKIP_FIRST_N_POSITIONS:].double().mean(1)  # [D out, D in]
    for l in J:
        J[l] /= n_prompts
    payload = {
        'J': {l: J[l].half() for l in J},
        'source_layers': list(J.keys()),
        'n_prompts': n_prompts,
        'd_model': D,
        'provenance': {
            'model': 'tiny-facts-gpt2',
            'target_layer': L - 1,
            'estimator': 'cotangents on every target position, averaged over source positions',
            'skip_first_n_positions': SKIP_FIRST_N_POSITIONS,
            'script': 'training/fit_lenses.py',
            'torch': torch.__version__,
        },
    }
    torch.save(payload, os.path.join(OUT, 'tiny-facts-gpt2_jacobian_lens.pt'))
    write_safetensors(os.path.join(FIX, 'tiny-facts-jacobian.safetensors'), {f'J.{l}': payload['J'][l] for l in J})
    print(f'jacobian lens: {len(J)} layers, {n_prompts} prompts', flush=True)


if __name__ == '__main__':
    main()
