"""Minimal GPT-2 (HF semantics) whose parameter names map 1:1 onto HF GPT2LMHeadModel names.

Conv1D weights are stored [in, out] exactly like Hugging Face (y = x @ W + b), so the
state_dict can be written to safetensors with a plain `transformer.` prefix.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    def __init__(self, nx, nf, std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * std)  # [in, out]
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, d, n_head, n_layer):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).split(D, dim=2)
        hd = D // self.n_head
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~mask, float('-inf'))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, D)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, d, n_layer):
        super().__init__()
        self.c_fc = Conv1D(d, 4 * d)
        self.c_proj = Conv1D(4 * d, d, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d, n_head, n_layer, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(d, n_head, n_layer)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(d, n_layer)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, vocab_size, n_positions, d, n_head, n_layer, eps=1e-5):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, d)
        self.wpe = nn.Embedding(n_positions, d)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.h = nn.ModuleList([Block(d, n_head, n_layer, eps) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d, eps=eps)


class GPT2LMHeadModel(nn.Module):
    """Parameter names: transformer.wte.weight, transformer.h.0.attn.c_attn.weight, ..."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = Transformer(cfg['vocab_size'], cfg['n_positions'], cfg['n_embd'],
                                       cfg['n_head'], cfg['n_layer'], cfg.get('layer_norm_epsilon', 1e-5))

    def hidden_states(self, ids):
        """Returns [embeddings, block_0_out, ..., block_{L-1}_out] (pre ln_f)."""
        t = self.transformer
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = t.wte(ids) + t.wpe(pos)[None]
        hs = [h]
        for blk in t.h:
            h = blk(h)
            hs.append(h)
        return hs

    def forward(self, ids, targets=None):
        t = self.transformer
        h = self.hidden_states(ids)[-1]
        logits = t.ln_f(h) @ t.wte.weight.t()  # tied unembedding
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def logit_lens(self, ids):
        """[L, T, V] float logits: ln_f then unembed applied to each block's output (layer l = block l)."""
        t = self.transformer
        hs = self.hidden_states(ids)[1:]
        return torch.stack([t.ln_f(h[0]) @ t.wte.weight.t() for h in hs])
