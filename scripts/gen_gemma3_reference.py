#!/usr/bin/env python3
# gen_gemma3_reference.py MODEL.gguf < ids.txt > top10.json — an independent float32 numpy
# forward pass of Gemma 3 (written from the Hugging Face Gemma3 architecture, sharing no code
# with etok) over a GGUF's weights dequantised by gguf-py (llama.cpp's Python package: `pip
# install gguf numpy` in a venv). Reads one prompt a line as token ids; prints, for each, the
# top-10 log-probs of the next token. Made tests/fixtures/reference/gemma3_top10.json (see the
# README there). CPU only; minutes for 5 short prompts.
import sys, json, numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
r = GGUFReader(sys.argv[1])
kv = {f.name: f for f in r.fields.values()}
def val(k):
    f = kv[k]; return f.parts[f.data[0]][0]
T = {t.name: t for t in r.tensors}
def W(n):
    t = T[n]; a = dequantize(t.data, t.tensor_type).astype(np.float32)
    return a.reshape([int(x) for x in reversed(t.shape)]) if a.ndim == 1 and len(t.shape) > 1 else a
A = 'gemma3'
L = int(val(A + '.block_count')); d = int(val(A + '.embedding_length')); nh = int(val(A + '.attention.head_count'))
nkv = int(val(A + '.attention.head_count_kv')); hd = int(val(A + '.attention.key_length'))
eps = float(val(A + '.attention.layer_norm_rms_epsilon')); base = float(val(A + '.rope.freq_base'))
win = int(val(A + '.attention.sliding_window'))
emb = W('token_embd.weight')
def rms(x, w): return x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps).astype(np.float32) * w
def rope(x, pos, b):  # x [T, H, hd], NeoX / rotate-half
    half = hd // 2
    inv = b ** (-np.arange(0, half, dtype=np.float64) * 2 / hd)
    ang = np.outer(pos, inv)
    c = np.cos(ang)[:, None, :].astype(np.float32); s = np.sin(ang)[:, None, :].astype(np.float32)
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], -1)
def gelu(x): return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
layers = []
for l in range(L):
    p = 'blk.%d.' % l
    layers.append({k: W(p + k + '.weight') for k in ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up',
        'ffn_down', 'attn_norm', 'ffn_norm', 'attn_q_norm', 'attn_k_norm', 'post_attention_norm', 'post_ffw_norm']})
onorm = W('output_norm.weight')
out = []
for line in sys.stdin:
    ids = [int(x) for x in line.split()]
    n = len(ids); pos = np.arange(n)
    x = emb[ids] * np.float32(np.sqrt(d))
    for l, P in enumerate(layers):
        glob = (l + 1) % 6 == 0
        h = rms(x, P['attn_norm'])
        q = (h @ P['attn_q'].T).reshape(n, nh, hd); k = (h @ P['attn_k'].T).reshape(n, nkv, hd); v = (h @ P['attn_v'].T).reshape(n, nkv, hd)
        q = rope(rms(q, P['attn_q_norm']), pos, base if glob else 10000.0)
        k = rope(rms(k, P['attn_k_norm']), pos, base if glob else 10000.0)
        o = np.zeros((n, nh, hd), np.float32)
        for hh in range(nh):
            kh = k[:, hh // (nh // nkv)]; vh = v[:, hh // (nh // nkv)]
            s = q[:, hh] @ kh.T / np.sqrt(hd)
            mask = pos[None, :] > pos[:, None]
            if not glob: mask |= (pos[:, None] - pos[None, :]) >= win
            s[mask] = -np.inf
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            o[:, hh] = s @ vh
        a = o.reshape(n, nh * hd) @ P['attn_output'].T
        x = x + rms(a, P['post_attention_norm'])
        h = rms(x, P['ffn_norm'])
        f = (gelu(h @ P['ffn_gate'].T) * (h @ P['ffn_up'].T)) @ P['ffn_down'].T
        x = x + rms(f, P['post_ffw_norm'])
    lg = rms(x[-1:], onorm) @ emb.T
    lg = lg[0].astype(np.float64); lp = lg - lg.max(); lp = lp - np.log(np.exp(lp).sum())
    top = np.argsort(-lp)[:10]
    out.append({'tokens': ids, 'top10': [[int(t), round(float(lp[t]), 5)] for t in top]})
print(json.dumps(out))
