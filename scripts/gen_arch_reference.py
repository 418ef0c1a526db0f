#!/usr/bin/env python3
# gen_arch_reference.py MODEL.gguf ID ID ... > logits.json — an independent float32 numpy
# forward pass of the llama, qwen2, qwen3 and phi3 architectures (written from the Hugging Face
# Llama/Mistral, Qwen2, Qwen3 and Phi-3 modelling code, sharing no code with etok), over a GGUF's
# weights dequantised by gguf-py (llama.cpp's Python package: `pip install gguf numpy` in a venv).
# Prints the logits at every position of the token sequence as a JSON array of arrays. Made the
# "numpy" logits of tests/fixtures/reference/arch_logits.json (see the README there), the only
# reference for qwen3 and for llama's sliding window, which the pinned llama.cpp lacks.
#
# As GGUF stores them: llama's Q/K rows are permuted by the converter so RoPE rotates adjacent
# pairs (x[2i], x[2i+1]); the others rotate (x[i], x[i + d/2]) (NeoX). Phi-3's attn_qkv holds the
# Q, K, V rows in turn and its ffn_up the gate rows then the up rows. A sliding window w lets
# position p see [p - w + 1, p] (Mistral, Phi-3; <arch>.attention.sliding_window). A
# rope_freqs.weight tensor (Llama 3.1+) divides each rotation frequency by its factor.
import sys, json, numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

r = GGUFReader(sys.argv[1])
ids = [int(x) for x in sys.argv[2:]]
kv = {f.name: f for f in r.fields.values()}


def val(k, default=None):
    if k not in kv:
        return default
    f = kv[k]
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types and f.types[0].name == 'STRING' else v[0]


T = {t.name: t for t in r.tensors}


def W(n):
    if n not in T:
        return None
    t = T[n]
    a = dequantize(t.data, t.tensor_type).astype(np.float32)
    return a.reshape([int(x) for x in reversed(t.shape)]) if len(t.shape) > 1 else a.reshape(-1)


A = val('general.architecture')
assert A in ('llama', 'qwen2', 'qwen3', 'phi3'), A
L = int(val(A + '.block_count')); d = int(val(A + '.embedding_length')); nh = int(val(A + '.attention.head_count'))
nkv = int(val(A + '.attention.head_count_kv', nh)); hd = int(val(A + '.attention.key_length', d // nh))
eps = float(val(A + '.attention.layer_norm_rms_epsilon')); base = float(val(A + '.rope.freq_base', 10000.0))
rd = int(val(A + '.rope.dimension_count', hd)); win = int(val(A + '.attention.sliding_window', 0))
neox = A != 'llama'
emb = W('token_embd.weight'); out = W('output.weight'); out = emb if out is None else out
onorm = W('output_norm.weight')
ff = W('rope_freqs.weight')


def rms(x, w):
    return (x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps).astype(np.float32)) * w


def rope(x, pos):  # x [n, H, hd]; the first rd values of each head rotate
    half = rd // 2
    inv = base ** (-np.arange(0, half, dtype=np.float64) * 2 / rd)
    if ff is not None:  # Llama 3.1+'s rope_freqs.weight: frequency i divided by factor i
        inv = inv / ff.astype(np.float64)
    ang = np.outer(pos, inv)
    c = np.cos(ang)[:, None, :].astype(np.float32); s = np.sin(ang)[:, None, :].astype(np.float32)
    y = x.copy()
    if neox:
        x0, x1 = x[..., :half], x[..., half:rd]
        y[..., :half] = x0 * c - x1 * s; y[..., half:rd] = x0 * s + x1 * c
    else:
        x0, x1 = x[..., 0:rd:2], x[..., 1:rd:2]
        y[..., 0:rd:2] = x0 * c - x1 * s; y[..., 1:rd:2] = x0 * s + x1 * c
    return y


def silu(x):
    return x / (1 + np.exp(-x))


n = len(ids); pos = np.arange(n)
x = emb[ids].astype(np.float32)
for l in range(L):
    P = lambda k: W('blk.%d.%s' % (l, k))
    h = rms(x, P('attn_norm.weight'))
    if A == 'phi3':
        qkv = h @ P('attn_qkv.weight').T
        q, k, v = qkv[:, :nh * hd], qkv[:, nh * hd:nh * hd + nkv * hd], qkv[:, nh * hd + nkv * hd:]
    else:
        q, k, v = h @ P('attn_q.weight').T, h @ P('attn_k.weight').T, h @ P('attn_v.weight').T
        for name, arr in (('attn_q.bias', q), ('attn_k.bias', k), ('attn_v.bias', v)):
            b = P(name)
            if b is not None:
                arr += b
    q = q.reshape(n, nh, hd); k = k.reshape(n, nkv, hd); v = v.reshape(n, nkv, hd)
    if A == 'qwen3':
        q = rms(q, P('attn_q_norm.weight')); k = rms(k, P('attn_k_norm.weight'))
    q = rope(q, pos); k = rope(k, pos)
    o = np.zeros((n, nh, hd), np.float32)
    mask = pos[None, :] > pos[:, None]
    if win > 0 and A in ('llama', 'phi3'):
        mask |= (pos[:, None] - pos[None, :]) >= win
    for hh in range(nh):
        kh = k[:, hh // (nh // nkv)]; vh = v[:, hh // (nh // nkv)]
        s = q[:, hh] @ kh.T / np.float32(np.sqrt(hd))
        s[mask] = -np.inf
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        o[:, hh] = s @ vh
    a = o.reshape(n, nh * hd) @ P('attn_output.weight').T
    bo = P('attn_output.bias')
    x = x + (a if bo is None else a + bo)
    h = rms(x, P('ffn_norm.weight'))
    if A == 'phi3':
        gu = h @ P('ffn_up.weight').T
        g, u = gu[:, :gu.shape[1] // 2], gu[:, gu.shape[1] // 2:]
    else:
        g, u = h @ P('ffn_gate.weight').T, h @ P('ffn_up.weight').T
    x = x + (silu(g) * u) @ P('ffn_down.weight').T
lg = rms(x, onorm) @ out.T
print(json.dumps([[float('%.7g' % v) for v in row] for row in lg.astype(np.float64)]))
