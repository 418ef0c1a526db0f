/* model.c — a Llama-family, Gemma 3, Qwen2/Qwen3 or Phi-3 model over a GGUF file, and its
 * batched forward pass.
 *
 * Owns: loading (hyper-parameters from <arch>.* keys, weight matrices checked against the
 * shapes they must have, Q4_0 matrices of 8k rows repacked into quant_q4_0.c's Q4_0x8 layout
 * on AVX2 CPUs with the file's pages released (repack_at_load; Q4_1 and Q5_1 matrices likewise
 * into quant_q4_1.c's Q4_1x8 / Q5_1x8 layouts, Q8_0 into quant_q8_0.c's Q8_0x4, Q5_0 into
 * quant_q5_0x8.c's Q5_0x8 and IQ4_NL into quant_iq4_nlx8.c's IQ4_NLx8 at the AVX2 level), the
 * tokenizer from
 * tokenizer.ggml.* via tokenizer_gguf.c), the public tokenizer
 * wrappers of engine.h, FLOP/byte accounting (METRICS.md section 1, "FLOPs and bytes per
 * token"), the KV cache and the forward pass, written top to bottom like llama2.c:
 *   embed -> for each layer: RMSNorm, Q/K/V, RoPE, attention over the cache, output
 *   projection, residual, RMSNorm, SwiGLU FFN, residual -> final RMSNorm -> LM head.
 * Gemma 3 (docs/ENGINE.md, "Architectures: gemma3") adds, in the same pass: the embedding
 * scale, per-head Q/K RMSNorm, post-attention and post-FFN RMSNorms, NeoX RoPE with a local
 * base on its sliding-window layers, GeGLU, and logit soft-capping when the file asks.
 * Qwen2 adds biases to Q, K, V; Qwen3 normalises each Q and K head (as Gemma 3); Phi-3 stores
 * Q|K|V and gate|up fused (split into row views at load); these and llama files with a sliding
 * window (Mistral) apply it on every layer; NeoX RoPE for all but llama; a rope_freqs.weight
 * tensor (Llama 3.1+) divides each RoPE frequency by its factor. Per-architecture
 * loading is in its own functions (arch_*, bind_layer_mats, load_layer_vecs); the forward pass
 * has one switch per feature, not per architecture (docs/ENGINE.md, "Architectures").
 * Every matrix multiply runs over ALL tokens of the step at once, so each weight row is read
 * once per step whatever the batch. The KV cache's per-layer layout (a Gemma 3 local layer
 * keeps a ring of its window) is here; the attention over it is attn.c's. Does not own
 * scheduling or sampling (engine.c). */
#include "engine/model.h"
#include "engine/quant_k.h"
#include "engine/matmul_float.h"
#include "engine/attn.h"
#include "engine/tokenizer_gguf.h"
#include "engine/vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------ loading */

static void repack_at_load(etok_model *m);
static void place_weights(etok_model *m);

static int get_u32_req(const etok_gguf *g, const char *key, int *out, etok_err *err) {
    uint32_t v;
    int r = etok_gguf_get_u32(g, key, &v, err);
    if (r < 0) return -1;
    if (r == 0) return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: required key '%s' is missing", key);
    if (v == 0 || v > (1u << 24)) return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key '%s' = %u is out of range", key, v);
    *out = (int)v;
    return 0;
}

static int bind_mat(const etok_gguf *g, const char *name, int64_t n_in, int64_t n_out, int required, etok_mat *m,
                    etok_err *err) {
    const etok_gguf_tensor *t = etok_gguf_find_tensor(g, name);
    memset(m, 0, sizeof *m);
    if (!t) return required ? etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' is missing", name) : 0;
    if (t->n_dims > 2 || (int64_t)t->ne[0] != n_in || (int64_t)t->ne[1] != n_out)
        return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' has shape [%llu, %llu], expected [%lld, %lld]", name,
                         (unsigned long long)t->ne[0], (unsigned long long)t->ne[1], (long long)n_in, (long long)n_out);
    if (etok_type_block_elems(t->type) == 0 || n_in % etok_type_block_elems(t->type) != 0 ||
        (etok_type_uses_q8a(t->type) && n_in % ETOK_QK != 0))
        return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' type %s cannot be used as a matrix of rows of %lld",
                         name, etok_type_name(t->type), (long long)n_in);
    m->type = t->type;
    m->n_in = n_in;
    m->n_out = n_out;
    m->row_bytes = etok_type_row_bytes(t->type, n_in);
    m->data = m->src = t->data;
    return 1;
}

static float *load_vec(const etok_gguf *g, const char *name, int64_t n, etok_err *err) {
    const etok_gguf_tensor *t = etok_gguf_find_tensor(g, name);
    if (!t) {
        etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' is missing", name);
        return NULL;
    }
    if ((int64_t)t->n_elems != n || (int64_t)t->ne[0] != n) {
        etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' has %llu values, expected %lld", name,
                  (unsigned long long)t->n_elems, (long long)n);
        return NULL;
    }
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        etok_errf(err, "out of memory");
        return NULL;
    }
    etok_dequantize_row(t->type, t->data, v, n);
    return v;
}

/* An optional vector: 1 loaded into *out, 0 absent (*out NULL), -1 error. */
static int load_vec_opt(const etok_gguf *g, const char *name, int64_t n, float **out, etok_err *err) {
    *out = NULL;
    if (!etok_gguf_find_tensor(g, name)) return 0;
    return (*out = load_vec(g, name, n, err)) ? 1 : -1;
}

static int build_tokenizer(etok_model *m, etok_err *err) {
    etok_gguf_tokenizer_spec gs;
    if (etok_gguf_tokenizer_spec_read(m->gguf, &gs, err) < 0) return -1;
    m->tok = etok_tokenizer_new(&gs.spec, err);
    if (m->tok) {
        m->info.vocab_size = gs.spec.n_vocab;
        m->info.bos_id = gs.spec.bos_id;
        m->info.eos_id = gs.spec.eos_id;
        m->info.eot_id = gs.spec.eot_id;
    }
    etok_gguf_tokenizer_spec_free(&gs);
    return m->tok ? 0 : -1;
}

/* Types and bytes of the weights as the engine holds them: the GGUF tensor table, except that
 * a tensor re-encoded at load (reenc[k] is the mapped data of such a tensor, n_reenc of them)
 * counts in reenc_type[k]. */
static void describe_types(etok_model *m, const uint8_t *const *reenc, int n_reenc, const uint32_t *reenc_type) {
    int counts[ETOK_T_COUNT] = {0};
    const etok_gguf *g = m->gguf;
    double params = 0, bytes = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const etok_gguf_tensor *t = &g->tensors[i];
        uint32_t type = t->type;
        double nb = (double)t->n_bytes;
        for (int k = 0; k < n_reenc; k++)
            if (reenc[k] == t->data) {
                type = reenc_type[k];
                nb = (double)etok_type_row_bytes(type, (int64_t)t->ne[0]) * (double)t->ne[1];
                break;
            }
        if (type < ETOK_T_COUNT) counts[type]++;
        params += (double)t->n_elems;
        bytes += nb;
    }
    m->info.n_params = params;
    m->info.weight_bytes = bytes;
    char *p = m->info.weight_types;
    size_t left = sizeof m->info.weight_types;
    p[0] = 0;
    for (int t = 0; t < ETOK_T_COUNT; t++) {
        if (!counts[t]) continue;
        int w = snprintf(p, left, "%s%s x %d", p == m->info.weight_types ? "" : ", ", etok_type_name((uint32_t)t),
                         counts[t]);
        if (w < 0 || (size_t)w >= left) break;
        p += w;
        left -= (size_t)w;
    }
}

void etok_model_free(etok_model *m) {
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->info.n_layers; l++) {
            free(m->layers[l].attn_norm);
            free(m->layers[l].ffn_norm);
            free(m->layers[l].q_norm);
            free(m->layers[l].k_norm);
            free(m->layers[l].post_attn_norm);
            free(m->layers[l].post_ffn_norm);
            free(m->layers[l].bq);
            free(m->layers[l].bk);
            free(m->layers[l].bv);
            free(m->layers[l].bo);
        }
    free(m->layers);
    free(m->output_norm);
    free(m->rope_ff);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_packed; i++) free(m->packed[i]);
    free(m->packed);
    etok_hugemem_free(&m->weights_mem);
    etok_tokenizer_free(m->tok);
    etok_gguf_close(m->gguf);
    free(m);
}

/* Bytes streamed by one forward step: every tensor except an untied embedding table (of which
 * only the step's rows are read). */
static void step_bytes(etok_model *m) {
    m->step_weight_bytes = m->info.weight_bytes;
    if (!m->info.tied_embeddings) m->step_weight_bytes -= (double)m->tok_embd.row_bytes * (double)m->info.vocab_size;
}

/* ------------------------------------------------------------------ per-architecture loading */

static const struct {
    const char *name;
    etok_arch arch;
} arch_names[] = {{"llama", ETOK_ARCH_LLAMA},
                  {"gemma3", ETOK_ARCH_GEMMA3},
                  {"qwen2", ETOK_ARCH_QWEN2},
                  {"qwen3", ETOK_ARCH_QWEN3},
                  {"phi3", ETOK_ARCH_PHI3}};

static int arch_from_name(const char *name, etok_arch *out) {
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
        if (strcmp(name, arch_names[i].name) == 0) {
            *out = arch_names[i].arch;
            return 0;
        }
    return -1;
}

/* One sliding window on every layer: <arch>.attention.sliding_window of llama files (Mistral
 * 7B v0.1) and of phi3 files, where a token at p attends to [p + 1 - window, p], as llama.cpp's
 * SWA mask. A phi3 file without the key gets llama.cpp's defaults for the Phi-3 files converted
 * before the key existed (2047 for 32 or 40 layers with a 4096 context; 262144 for the 32-layer
 * 128k model with 32 KV heads, 131072 for the 40-layer 128k one); otherwise, and when the key
 * is 0 (Phi-4), every layer is global. */
static int arch_uniform_window(etok_model *m, etok_err *err) {
    const etok_gguf *g = m->gguf;
    const etok_model_info *in = &m->info;
    char key[96];
    uint32_t v = 0, ctx = 0;
    snprintf(key, sizeof key, "%s.context_length", in->arch);
    if (etok_gguf_get_u32(g, key, &ctx, err) < 0) return -1;
    snprintf(key, sizeof key, "%s.attention.sliding_window", in->arch);
    int r = etok_gguf_get_u32(g, key, &v, err);
    if (r < 0) return -1;
    if (r == 0 && m->arch == ETOK_ARCH_PHI3) {
        const int nl = in->n_layers;
        if ((nl == 32 || nl == 40) && ctx == 4096) v = 2047;
        else if (nl == 32 && in->n_kv_heads == 32 && ctx == 131072) v = 262144;
        else if (nl == 40 && ctx == 131072) v = 131072;
    }
    m->swa_window = (int)(v > (1u << 20) ? (1u << 20) : v);
    m->swa_period = 0;
    return 0;
}

/* The layer's projection matrices. Phi-3 stores Q, K and V as one attn_qkv matrix (rows Q,
 * then K, then V) and the FFN's gate and up as one ffn_up of 2 d_ff rows (gate first, as
 * llama.cpp's fused SwiGLU splits it): wq/wk/wv and w_gate/w_up are row ranges of those, so the
 * forward pass reads them as separate matrices and each weight row still once per step. */
static void mat_rows(const etok_mat *whole, int64_t r0, int64_t n, etok_mat *out) {
    *out = *whole;
    out->n_out = n;
    out->data = whole->data + (size_t)r0 * whole->row_bytes;
    out->src = whole->src + (size_t)r0 * whole->row_bytes;
}

static int bind_layer_mats(etok_model *m, int l, etok_err *err) {
    const etok_gguf *g = m->gguf;
    const etok_model_info *in = &m->info;
    etok_layer *L = &m->layers[l];
    const int64_t d = in->d_model, kvd = (int64_t)in->n_kv_heads * in->head_dim, dff = in->d_ff, qd = m->q_dim;
    char nm[96];
#define MAT(field, suffix, nin, nout)                                                                                  \
    snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, suffix);                                                            \
    if (bind_mat(g, nm, nin, nout, 1, field, err) < 0) return -1;
    if (m->arch == ETOK_ARCH_PHI3) {
        etok_mat qkv, gate_up;
        MAT(&qkv, "attn_qkv", d, qd + 2 * kvd)
        MAT(&gate_up, "ffn_up", d, 2 * dff)
        mat_rows(&qkv, 0, qd, &L->wq);
        mat_rows(&qkv, qd, kvd, &L->wk);
        mat_rows(&qkv, qd + kvd, kvd, &L->wv);
        mat_rows(&gate_up, 0, dff, &L->w_gate);
        mat_rows(&gate_up, dff, dff, &L->w_up);
    } else {
        MAT(&L->wq, "attn_q", d, qd)
        MAT(&L->wk, "attn_k", d, kvd)
        MAT(&L->wv, "attn_v", d, kvd)
        MAT(&L->w_gate, "ffn_gate", d, dff)
        MAT(&L->w_up, "ffn_up", d, dff)
    }
    MAT(&L->wo, "attn_output", qd, d)
    MAT(&L->w_down, "ffn_down", dff, d)
#undef MAT
    return 0;
}

/* The layer's vectors beyond its two RMSNorms: per-head Q/K norms (Gemma 3, Qwen3), the
 * post-attention/FFN norms (Gemma 3), the projection biases (required by Qwen2, used when
 * present elsewhere, as llama.cpp's llama graph does). */
static int load_layer_vecs(etok_model *m, int l, etok_err *err) {
    const etok_gguf *g = m->gguf;
    const etok_model_info *in = &m->info;
    etok_layer *L = &m->layers[l];
    const int64_t d = in->d_model, kvd = (int64_t)in->n_kv_heads * in->head_dim, qd = m->q_dim;
    const int qk_norm = m->arch == ETOK_ARCH_GEMMA3 || m->arch == ETOK_ARCH_QWEN3;
    const int post_norms = m->arch == ETOK_ARCH_GEMMA3, qkv_bias = m->arch == ETOK_ARCH_QWEN2;
    struct {
        float **dst;
        const char *name;
        int64_t n;
        int required;
    } v[] = {{&L->q_norm, "attn_q_norm.weight", in->head_dim, qk_norm},
             {&L->k_norm, "attn_k_norm.weight", in->head_dim, qk_norm},
             {&L->post_attn_norm, "post_attention_norm.weight", d, post_norms},
             {&L->post_ffn_norm, "post_ffw_norm.weight", d, post_norms},
             {&L->bq, "attn_q.bias", qd, qkv_bias},
             {&L->bk, "attn_k.bias", kvd, qkv_bias},
             {&L->bv, "attn_v.bias", kvd, qkv_bias},
             {&L->bo, "attn_output.bias", d, 0}};
    char nm[96];
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        snprintf(nm, sizeof nm, "blk.%d.%s", l, v[k].name);
        /* the norms only where the architecture has them (a stray one is not used) */
        if (k < 4 && !v[k].required) continue;
        int r = load_vec_opt(g, nm, v[k].n, v[k].dst, err);
        if (r < 0) return -1;
        if (r == 0 && v[k].required)
            return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tensor '%s' is missing (%s needs it)", nm, in->arch);
    }
    return 0;
}

etok_model *etok_model_load(const char *path, etok_err *err) {
    char env_err[256];
    if (etok_hugemem_env_check(env_err, sizeof env_err)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s", env_err);
        return NULL;
    }
    etok_model *m = calloc(1, sizeof *m);
    if (!m) {
        etok_errf(err, "out of memory");
        return NULL;
    }
    m->gguf = etok_gguf_open(path, err);
    if (!m->gguf) goto fail;
    const etok_gguf *g = m->gguf;
    etok_model_info *in = &m->info;
    {
        const char *s;
        size_t len;
        int r = etok_gguf_get_str(g, "general.architecture", &s, &len, err);
        if (r < 0) goto fail;
        if (r == 0) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key 'general.architecture' is missing", path);
            goto fail;
        }
        snprintf(in->arch, sizeof in->arch, "%.*s", (int)(len < 31 ? len : 31), s);
        if (arch_from_name(in->arch, &m->arch) != 0) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF architecture '%s' is not supported (supported: %s)", path, in->arch,
                      ETOK_SUPPORTED_ARCHS);
            goto fail;
        }
        r = etok_gguf_get_str(g, "general.name", &s, &len, err);
        if (r < 0) goto fail;
        if (r == 1) snprintf(in->name, sizeof in->name, "%.*s", (int)(len < 127 ? len : 127), s);
    }
    /* hyper-parameter keys are "<arch>.<name>" */
    const char *A = in->arch;
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, A), key)
    if (get_u32_req(g, KEY("block_count"), &in->n_layers, err) ||
        get_u32_req(g, KEY("embedding_length"), &in->d_model, err) ||
        get_u32_req(g, KEY("feed_forward_length"), &in->d_ff, err) ||
        get_u32_req(g, KEY("attention.head_count"), &in->n_heads, err))
        goto fail;
    {
        uint32_t v;
        int r = etok_gguf_get_u32(g, KEY("attention.head_count_kv"), &v, err);
        if (r < 0) goto fail;
        in->n_kv_heads = r == 1 ? (int)v : in->n_heads;
        r = etok_gguf_get_u32(g, KEY("context_length"), &v, err);
        if (r < 0) goto fail;
        if (r == 1 && v == 0) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' = 0 (must be > 0)", path, key);
            goto fail;
        }
        in->ctx_max = r == 1 ? (int)(v > (1u << 20) ? (1u << 20) : v) : 2048;
        /* Hyperparameters are validated here, at the boundary: a NaN or 0 RoPE base or norm
         * epsilon loads "fine" and then yields NaN logits and empty output. */
        float f;
        r = etok_gguf_get_f32(g, KEY("rope.freq_base"), &f, err);
        if (r < 0) goto fail;
        if (r == 1 && !(isfinite(f) && f > 1.0f && f <= 1e12f)) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' = %g is out of range (a finite number in (1, 1e12])",
                      path, key, (double)f);
            goto fail;
        }
        in->rope_freq_base = r == 1 ? f : 10000.0; /* the GGUF default only when absent */
        r = etok_gguf_get_f32(g, KEY("attention.layer_norm_rms_epsilon"), &f, err);
        if (r < 0) goto fail;
        if (r == 1 && !(isfinite(f) && f > 0.0f && f < 1.0f)) {
            etok_errc(err, ETOK_EXIT_INPUT,
                      "%s: GGUF: key '%s' = %g is out of range (a finite number in (0, 1))", path, key,
                      (double)f);
            goto fail;
        }
        m->rms_eps = r == 1 ? f : (m->arch == ETOK_ARCH_GEMMA3 ? 1e-6f : 1e-5f);
        m->rope_freq_scale = 1.0f;
        r = etok_gguf_get_f32(g, KEY("rope.scaling.factor"), &f, err);
        if (r < 0) goto fail;
        if (r == 1 && f != 0.0f && f != 1.0f) {
            const char *st = NULL;
            size_t sl = 0;
            char skey[96];
            snprintf(skey, sizeof skey, "%s.rope.scaling.type", A);
            if (etok_gguf_get_str(g, skey, &st, &sl, err) < 0) goto fail;
            if (!(isfinite(f) && f > 0.0f && f <= 1024.0f) || !st || sl != 6 || memcmp(st, "linear", 6) != 0) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: RoPE scaling (%s = %g, type '%.*s') is not supported "
                          "(only linear)", path, key, (double)f, st ? (int)(sl < 32 ? sl : 32) : 4, st ? st : "none");
                goto fail;
            }
            m->rope_freq_scale = 1.0f / f;
        }
    }
    if (in->n_kv_heads <= 0 || in->n_heads % in->n_kv_heads != 0) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: inconsistent heads: %d query heads, %d KV heads, model dim %d", path,
                  in->n_heads, in->n_kv_heads, in->d_model);
        goto fail;
    }
    {
        /* the head dimension: <arch>.attention.key_length when given (Gemma 3 270M: 256 with
         * d_model 640 and 4 heads), else d_model / n_heads; values as long as keys */
        uint32_t kl = 0, vl = 0;
        int rk = etok_gguf_get_u32(g, KEY("attention.key_length"), &kl, err);
        if (rk < 0) goto fail;
        int rv = etok_gguf_get_u32(g, KEY("attention.value_length"), &vl, err);
        if (rv < 0) goto fail;
        if (rk == 1 && rv == 1 && kl != vl) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: %s.attention.key_length %u differs from value_length %u "
                      "(not supported)", path, A, kl, vl);
            goto fail;
        }
        if (rk == 0 && rv == 1) kl = vl, rk = 1;
        if (rk == 1) {
            if (kl == 0 || kl > 512) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: %s.attention.key_length %u is out of range (1..512)", path, A,
                          kl);
                goto fail;
            }
            in->head_dim = (int)kl;
        } else {
            if (in->d_model % in->n_heads != 0) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: inconsistent heads: %d query heads, %d KV heads, model dim %d",
                          path, in->n_heads, in->n_kv_heads, in->d_model);
                goto fail;
            }
            in->head_dim = in->d_model / in->n_heads;
        }
    }
    if (in->head_dim > 512 || in->head_dim % 2 || (int64_t)in->n_heads * in->head_dim > (1 << 20)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: head dimension %d is not supported (even, at most 512)", path, in->head_dim);
        goto fail;
    }
    m->q_dim = in->n_heads * in->head_dim;
    {
        uint32_t v;
        int r = etok_gguf_get_u32(g, KEY("rope.dimension_count"), &v, err);
        if (r < 0) goto fail;
        m->rope_dims = r == 1 ? (int)v : in->head_dim;
        if (m->rope_dims <= 0 || m->rope_dims > in->head_dim || m->rope_dims % 2) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: %s %d does not fit head dim %d", path, key, m->rope_dims,
                      in->head_dim);
            goto fail;
        }
    }
    /* architecture defaults (docs/ENGINE.md, "Architectures") */
    m->embd_scale = 1.0f;
    m->attn_scale = 1.0f / sqrtf((float)in->head_dim);
    m->rope_theta_scale_local = 0.0f;
    if (m->arch == ETOK_ARCH_GEMMA3) {
        /* Gemma 3: NeoX RoPE, GeGLU, embeddings x sqrt(d_model); local layers with a sliding
         * window and RoPE base 10000, every 6th layer (il % 6 == 5) global with rope.freq_base
         * (the rule of Gemma 3's reference code and of llama.cpp, which the GGUF does not
         * store; <arch>.attention.sliding_window_pattern overrides it when present). The
         * attention scale is 1/sqrt(key_length) (query_pre_attn_scalar), except the 27B model
         * (62 layers), whose scalar is d_model / n_heads. */
        m->rope_neox = 1;
        m->ffn_gelu = 1;
        m->embd_scale = sqrtf((float)in->d_model);
        if (in->n_layers == 62) m->attn_scale = 1.0f / sqrtf((float)in->d_model / (float)in->n_heads);
        m->rope_theta_scale_local = powf(10000.0f, -2.0f / (float)m->rope_dims);
        uint32_t v;
        int r = etok_gguf_get_u32(g, KEY("attention.sliding_window"), &v, err);
        if (r < 0) goto fail;
        if (r == 0 || v == 0) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' is missing or 0 (gemma3 needs its local window)", path,
                      key);
            goto fail;
        }
        m->swa_window = (int)(v > (1u << 20) ? (1u << 20) : v);
        m->swa_period = 6;
        r = etok_gguf_get_u32(g, KEY("attention.sliding_window_pattern"), &v, err);
        if (r < 0) goto fail;
        if (r == 1) {
            if (v == 0 || v > 1024) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' = %u is out of range (1..1024)", path, key, v);
                goto fail;
            }
            m->swa_period = (int)v;
        }
        float f;
        r = etok_gguf_get_f32(g, KEY("final_logit_softcapping"), &f, err);
        if (r < 0) goto fail;
        if (r == 1 && f != 0.0f) {
            if (!(isfinite(f) && f > 0.0f)) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' = %g is out of range (> 0)", path, key, (double)f);
                goto fail;
            }
            m->logit_softcap = f;
        }
    }
    if (m->arch == ETOK_ARCH_QWEN2 || m->arch == ETOK_ARCH_QWEN3 || m->arch == ETOK_ARCH_PHI3) m->rope_neox = 1;
    if ((m->arch == ETOK_ARCH_LLAMA || m->arch == ETOK_ARCH_PHI3) && arch_uniform_window(m, err)) goto fail;
    if (m->arch == ETOK_ARCH_PHI3 &&
        (etok_gguf_find_tensor(g, "rope_factors_long.weight") || etok_gguf_find_tensor(g, "rope_factors_short.weight"))) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: rope_factors_long/short (Phi-3 128k LongRoPE) are not supported", path);
        goto fail;
    }
#undef KEY
    if (build_tokenizer(m, err)) goto fail;
    {
        /* <arch>.vocab_size, when given, must be the tokenizer's size (the embedding's rows). */
        uint32_t v;
        char vkey[64];
        snprintf(vkey, sizeof vkey, "%s.vocab_size", in->arch);
        int r = etok_gguf_get_u32(g, vkey, &v, err);
        if (r < 0) goto fail;
        if (r == 1 && (int64_t)v != (int64_t)in->vocab_size) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: key '%s' = %u does not match the tokenizer's %d tokens", path,
                      vkey, v, in->vocab_size);
            goto fail;
        }
    }

    const int64_t d = in->d_model, kvd = (int64_t)in->n_kv_heads * in->head_dim, dff = in->d_ff, V = in->vocab_size,
                  qd = m->q_dim;
    if (bind_mat(g, "token_embd.weight", d, V, 1, &m->tok_embd, err) < 0) goto fail;
    int r = bind_mat(g, "output.weight", d, V, 0, &m->output, err);
    if (r < 0) goto fail;
    in->tied_embeddings = r == 0;
    if (r == 0) m->output = m->tok_embd;
    if (!(m->output_norm = load_vec(g, "output_norm.weight", d, err))) goto fail;
    /* Llama 3.1+'s RoPE frequency factors (llama.cpp divides angle i by factor i; 1 = unchanged) */
    if (load_vec_opt(g, "rope_freqs.weight", m->rope_dims / 2, &m->rope_ff, err) < 0) goto fail;
    for (int i = 0; m->rope_ff && i < m->rope_dims / 2; i++)
        if (!(isfinite(m->rope_ff[i]) && m->rope_ff[i] > 0.0f)) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: rope_freqs.weight[%d] = %g is out of range (> 0)", path, i,
                      (double)m->rope_ff[i]);
            goto fail;
        }
    m->layers = calloc((size_t)in->n_layers, sizeof *m->layers);
    if (!m->layers) {
        etok_errf(err, "out of memory");
        goto fail;
    }
    for (int l = 0; l < in->n_layers; l++) {
        etok_layer *L = &m->layers[l];
        char nm[96];
        if (bind_layer_mats(m, l, err) || load_layer_vecs(m, l, err)) goto fail;
        /* llama.cpp's converter stores Gemma's RMSNorm weights as 1 + w (HF multiplies by
         * 1 + w): they are used as stored, like every other norm weight */
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        if (!(L->attn_norm = load_vec(g, nm, d, err))) goto fail;
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        if (!(L->ffn_norm = load_vec(g, nm, d, err))) goto fail;
        /* Gemma 3: every swa_period-th layer global, the others local with their own RoPE
         * base; llama/phi3 with a window (swa_period 0): every layer has it */
        if (m->swa_window > 0) L->window = m->swa_period == 0 || (l + 1) % m->swa_period != 0 ? m->swa_window : 0;
        L->rope_local = m->arch == ETOK_ARCH_GEMMA3 && L->window > 0;
    }
    /* theta_i = pos * theta_scale^i, built per token in the forward pass (a running float
     * product, as llama.cpp does, so both engines round the angles alike) */
    m->rope_theta_scale = powf((float)in->rope_freq_base, -2.0f / (float)m->rope_dims);
    repack_at_load(m);
    place_weights(m);
    describe_types(m, NULL, 0, NULL);
    step_bytes(m);
    m->matmul_params = (double)in->n_layers * (double)(2 * d * qd + 2 * d * kvd + 3 * d * dff);
    return m;
fail:
    if (err && m->gguf == NULL && strstr(err->msg, path) == NULL) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        msg[sizeof msg - 1] = 0;
        etok_errc(err, err->exit_code ? err->exit_code : ETOK_EXIT_INPUT, "%.300s: %.700s", path, msg);
    }
    etok_model_free(m);
    return NULL;
}

const etok_model_info *etok_model_get_info(const etok_model *m) { return &m->info; }

/* ------------------------------------------------------------------ Q4_0 repacked at load */

void etok_mat_dequantize_row(const etok_mat *m, int64_t r, float *out) {
    switch (m->layout) {
    case ETOK_LAYOUT_Q4_0X8: etok_q4_0x8_dequantize_row(m->data, m->n_in, r, out); break;
    case ETOK_LAYOUT_Q41X8: etok_q41x8_dequantize_row(m->type, m->data, m->n_in, r, out); break;
    case ETOK_LAYOUT_Q8X4: etok_q8x4_dequantize_row(m->data, m->n_in, r, out); break;
    case ETOK_LAYOUT_Q50X8: etok_q50x8_dequantize_row(m->data, m->n_in, r, out); break;
    case ETOK_LAYOUT_IQ4NLX8: etok_iq4nlx8_dequantize_row(m->data, m->n_in, r, out); break;
    case ETOK_LAYOUT_FILE: etok_dequantize_row(m->type, m->data + (size_t)r * m->row_bytes, out, m->n_in); break;
    }
}

/* The rows a matrix no longer reads: a re-encoded buffer is freed; pages of the file's
 * mapping wholly inside [p, p + n) are released (MADV_DONTNEED: a read-only private file
 * mapping drops them from the resident set and would read them again from the file). */
static void release_rows(etok_model *m, const uint8_t *p, size_t n) {
    for (int i = 0; i < m->n_owned; i++)
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = NULL;
            return;
        }
    for (int i = 0; i < m->n_packed; i++)
        if (m->packed[i] == p) {
            free(m->packed[i]);
            m->packed[i] = NULL;
            return;
        }
    const etok_gguf *g = m->gguf;
    const long pg = sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (uintptr_t)p, base = g ? (uintptr_t)g->base : 0;
    if (!g || !g->owns_map || pg <= 0 || lo < base || lo - base > g->size || n > g->size - (lo - base)) return;
    const uintptr_t a = (lo + (uintptr_t)pg - 1) / (uintptr_t)pg * (uintptr_t)pg, b = (lo + n) / (uintptr_t)pg * (uintptr_t)pg;
    if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0) m->released_bytes += (double)(b - a);
}

/* Every matrix a repacked layout takes is copied at load into it and its file rows released,
 * so the resident weights do not double: Q4_0 of 8k rows into Q4_0x8 on any SIMD level (the
 * 8-row kernel, etok_q4_0_8x8_applies), and likewise Q4_1 / Q5_1 into Q4_1x8 / Q5_1x8,
 * Q8_0 into Q8_0x4, Q5_0 into Q5_0x8 and IQ4_NL into IQ4_NLx8 (docs/ENGINE.md, "... repacked at
 * load").
 * The LM head is packed; a tied embedding table is the same matrix, and the embedding lookup
 * reads its rows from the copy. A matrix whose copy cannot be allocated stays in the file's
 * layout (the file-layout 8-row kernel gives the same bits). Phi-3's row views are packed
 * one by one. */
static void repack_at_load(etok_model *m) {
    if (!etok_simd_active()) return;
    /* Q4_1 / Q5_1 / Q8_0 / Q5_0 / IQ4_NL on every SIMD level: the repacked kernels are AVX2 code
     * with the file-layout kernels' bits, and on a real AVX-512 + AMX Xeon they decoded 1.2-2.7x
     * faster than the avx512 level's file-layout kernels (docs/ENGINE.md); at amx the Q8_0x4
     * copy also feeds the AMX prefill kernel (etok_matmul_q8x4) */
    const int q41 = etok_simd_active();
    const etok_model_info *in = &m->info;
    for (int l = -1; l < in->n_layers; l++) {
        etok_layer *L = l >= 0 ? &m->layers[l] : NULL;
        etok_mat *one[1] = {&m->output};
        etok_mat *lm[7] = {L ? &L->wq : NULL, L ? &L->wk : NULL, L ? &L->wv : NULL, L ? &L->wo : NULL,
                           L ? &L->w_gate : NULL, L ? &L->w_up : NULL, L ? &L->w_down : NULL};
        etok_mat **mats = L ? lm : one;
        for (int k = 0; k < (L ? 7 : 1); k++) {
            etok_mat *M = mats[k];
            const etok_layout to = etok_q4_0_8x8_applies(M->type, M->n_out, M->n_in)   ? ETOK_LAYOUT_Q4_0X8
                                   : q41 && etok_q41x8_applies(M->type, M->n_out, M->n_in) ? ETOK_LAYOUT_Q41X8
                                   : q41 && etok_q8x4_applies(M->type, M->n_out, M->n_in)  ? ETOK_LAYOUT_Q8X4
                                   : q41 && etok_q50x8_applies(M->type, M->n_out, M->n_in) ? ETOK_LAYOUT_Q50X8
                                   : q41 && etok_iq4nlx8_applies(M->type, M->n_out, M->n_in) ? ETOK_LAYOUT_IQ4NLX8
                                                                                            : ETOK_LAYOUT_FILE;
            if (M->layout != ETOK_LAYOUT_FILE || to == ETOK_LAYOUT_FILE) continue;
            const size_t n = (size_t)M->n_out * M->row_bytes;
            if (m->n_packed == m->cap_packed) {
                const int cap = m->cap_packed ? 2 * m->cap_packed : 64;
                uint8_t **np = realloc(m->packed, (size_t)cap * sizeof *np);
                if (!np) return;
                m->packed = np;
                m->cap_packed = cap;
            }
            uint8_t *buf = aligned_alloc(64, (n + 63) / 64 * 64);
            if (!buf) continue;
            if (to == ETOK_LAYOUT_Q4_0X8)
                etok_q4_0x8_pack(M->data, M->row_bytes, M->n_out, M->n_in, buf);
            else if (to == ETOK_LAYOUT_Q41X8)
                etok_q41x8_pack(M->type, M->data, M->row_bytes, M->n_out, M->n_in, buf);
            else if (to == ETOK_LAYOUT_Q50X8)
                etok_q50x8_pack(M->data, M->row_bytes, M->n_out, M->n_in, buf);
            else if (to == ETOK_LAYOUT_IQ4NLX8)
                etok_iq4nlx8_pack(M->data, M->row_bytes, M->n_out, M->n_in, buf);
            else
                etok_q8x4_pack(M->data, M->row_bytes, M->n_out, M->n_in, buf);
            m->packed[m->n_packed++] = buf;
            m->packed_bytes += (double)n;
            const uint8_t *old = M->data;
            M->data = buf;
            M->layout = to;
            if (L == NULL && in->tied_embeddings) m->tok_embd = m->output;
            release_rows(m, old, n);
        }
    }
}

/* Every matrix a forward step streams, copied at load into one buffer in 2 MiB pages
 * (hugemem.h), in the order the step reads them: layer by layer wq, wk, wv, wo, gate, up, down,
 * then the LM head (with a tied embedding table, the same copy). Each matrix's former rows are
 * released (a repacked or re-encoded buffer freed, the file's pages dropped), so the resident
 * weights do not double; a previous placement (before --weights) is unmapped whole, since every
 * matrix moves to the new one. An untied embedding table stays in the file: a step reads one row
 * of it per token. With ETOK_HUGEPAGES=0, or when the buffer cannot be mapped, the weights stay
 * where they are and info.weight_huge_bytes says 0. */
static void place_weights(etok_model *m) {
    const etok_model_info *in = &m->info;
    m->info.weight_placed_bytes = 0;
    m->info.weight_huge_bytes = 0;
    if (!etok_hugemem_wanted()) return;
    /* the step's order: each layer's seven matrices, then the LM head */
    const int n = 7 * in->n_layers + 1;
    etok_mat **mats = malloc((size_t)n * sizeof *mats);
    if (!mats) return;
    for (int l = 0; l < in->n_layers; l++) {
        etok_layer *L = &m->layers[l];
        etok_mat *lm[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        memcpy(mats + 7 * l, lm, sizeof lm);
    }
    mats[n - 1] = &m->output;
    size_t total = 0;
    for (int i = 0; i < n; i++) total += ((size_t)mats[i]->n_out * mats[i]->row_bytes + 63) / 64 * 64; /* each on a line */
    etok_hugemem mem;
    if (total == 0 || etok_hugemem_alloc(&mem, total)) {
        free(mats);
        return;
    }
    const int tied = m->tok_embd.data == m->output.data;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        etok_mat *M = mats[i];
        const size_t bytes = (size_t)M->n_out * M->row_bytes;
        const uint8_t *old = M->data;
        M->data = memcpy(mem.base + off, old, bytes);
        off += (bytes + 63) / 64 * 64;
        release_rows(m, old, bytes);
    }
    free(mats);
    if (tied) m->tok_embd = m->output;
    etok_hugemem_free(&m->weights_mem); /* a previous placement: nothing reads it now */
    m->weights_mem = mem;
    m->info.weight_placed_bytes = (double)total;
    const double hb = etok_hugemem_huge_bytes(&mem);
    m->info.weight_huge_bytes = hb > 0 ? hb : 0;
}

/* ------------------------------------------------------------------ weight format at load */

static const struct {
    const char *name;
    uint32_t type;
    uint32_t fallback; /* for rows that are not whole 256-value blocks (llama-quantize's choice); 0: none */
} weight_formats[] = {{"f32", ETOK_T_F32, 0},        {"f16", ETOK_T_F16, 0},        {"bf16", ETOK_T_BF16, 0},
                      {"q8_0", ETOK_T_Q8_0, 0},      {"q4_0", ETOK_T_Q4_0, 0},      {"q4_1", ETOK_T_Q4_1, 0},
                      {"q5_0", ETOK_T_Q5_0, 0},      {"q5_1", ETOK_T_Q5_1, 0},      {"iq4_nl", ETOK_T_IQ4_NL, 0},
                      {"q2_k", ETOK_T_Q2_K, ETOK_T_IQ4_NL}, {"q3_k", ETOK_T_Q3_K, ETOK_T_IQ4_NL},
                      {"q4_k", ETOK_T_Q4_K, ETOK_T_Q5_0},   {"q5_k", ETOK_T_Q5_K, ETOK_T_Q5_1},
                      {"q6_k", ETOK_T_Q6_K, ETOK_T_Q8_0}};

int etok_weights_format_check(const char *format, etok_err *err) {
    if (!format || strcmp(format, "keep") == 0) return 0;
    for (size_t i = 0; i < sizeof weight_formats / sizeof weight_formats[0]; i++)
        if (strcmp(format, weight_formats[i].name) == 0) return 0;
    return etok_errc(err, ETOK_EXIT_USAGE,
                     "--weights: unknown format '%.40s' (keep, f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, "
                     "q2_k, q3_k, q4_k, q5_k or q6_k)",
                     format);
}

/* One matrix into `type`: every row dequantised to floats, then quantised (F32: the exact
 * values; F16: one rounding of each). The new buffer is owned by the model. */
static int reencode_mat(etok_model *m, etok_mat *mat, uint32_t type, float *row, etok_err *err) {
    const size_t rb = etok_type_row_bytes(type, mat->n_in);
    uint8_t *buf = malloc(rb * (size_t)mat->n_out);
    if (!buf) return etok_errf(err, "--weights %s: out of memory for %.1f MB", etok_type_name(type),
                               (double)rb * (double)mat->n_out / 1e6);
    for (int64_t r = 0; r < mat->n_out; r++) {
        etok_mat_dequantize_row(mat, r, row);
        etok_quantize_row(type, row, buf + (size_t)r * rb, mat->n_in);
    }
    m->owned[m->n_owned++] = buf;
    if (mat->layout != ETOK_LAYOUT_FILE) { /* the repacked copy */
        m->packed_bytes -= (double)mat->n_out * (double)mat->row_bytes;
        release_rows(m, mat->data, (size_t)mat->n_out * mat->row_bytes);
    }
    mat->type = type;
    mat->row_bytes = rb;
    mat->data = buf;
    mat->layout = ETOK_LAYOUT_FILE;
    return 0;
}

int etok_model_set_weights(etok_model *m, const char *format, etok_err *err) {
    if (etok_weights_format_check(format, err)) return -1;
    if (!format || strcmp(format, "keep") == 0) return 0;
    if (m->n_owned) return etok_errc(err, ETOK_EXIT_USAGE, "--weights: the weights were already re-encoded");
    uint32_t type = 0, fallback = 0;
    for (size_t i = 0; i < sizeof weight_formats / sizeof weight_formats[0]; i++)
        if (strcmp(format, weight_formats[i].name) == 0) {
            type = weight_formats[i].type;
            fallback = weight_formats[i].fallback;
        }
    const etok_model_info *in = &m->info;
    /* every matrix the forward pass reads; the LM head only when it is its own tensor */
    const int n_mats = 7 * in->n_layers + 1 + !in->tied_embeddings;
    etok_mat **mats = malloc((size_t)n_mats * sizeof *mats);
    const uint8_t **orig = malloc((size_t)n_mats * sizeof *orig);
    uint32_t *types = malloc((size_t)n_mats * sizeof *types), *orig_types = malloc((size_t)n_mats * sizeof *orig_types);
    int64_t wide = in->d_model > in->d_ff ? in->d_model : in->d_ff;
    if (m->q_dim > wide) wide = m->q_dim;
    float *row = malloc((size_t)wide * sizeof *row);
    m->owned = calloc((size_t)n_mats, sizeof *m->owned);
    int n = 0, n_orig = 0, rc = -1;
    if (!mats || !orig || !types || !orig_types || !row || !m->owned) {
        etok_errf(err, "--weights: out of memory");
        goto done;
    }
    mats[n++] = &m->tok_embd;
    if (!in->tied_embeddings) mats[n++] = &m->output;
    for (int l = 0; l < in->n_layers; l++) {
        etok_layer *L = &m->layers[l];
        etok_mat *lm[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) mats[n++] = lm[k];
    }
    /* a K format's 256-value blocks: a matrix whose rows are not whole blocks takes the format
     * llama-quantize falls back to (q2_k, q3_k: IQ4_NL; q4_k: Q5_0; q5_k: Q5_1; q6_k: Q8_0) */
    for (int i = 0; i < n; i++) {
        types[i] = type;
        if (fallback && mats[i]->n_in % etok_type_block_elems(type) != 0) types[i] = fallback;
        if (mats[i]->n_in % etok_type_block_elems(types[i]) != 0) {
            etok_errc(err, ETOK_EXIT_USAGE, "--weights %s: rows of %lld values are not whole %d-value blocks", format,
                      (long long)mats[i]->n_in, etok_type_block_elems(types[i]));
            goto done;
        }
    }
    /* A matrix already in the format stays as stored (re-quantising would only lose precision). */
    for (int i = 0; i < n; i++) {
        if (mats[i]->type == types[i]) continue;
        orig_types[n_orig] = types[i];
        orig[n_orig++] = mats[i]->src;
        if (reencode_mat(m, mats[i], types[i], row, err)) goto done;
    }
    if (in->tied_embeddings) m->output = m->tok_embd;
    repack_at_load(m); /* the re-encoded matrices, as at load */
    place_weights(m);
    describe_types(m, orig, n_orig, orig_types);
    step_bytes(m);
    rc = 0;
done:
    free(mats);
    free(orig);
    free(types);
    free(orig_types);
    free(row);
    return rc;
}

/* ------------------------------------------------------------------ tokenizer wrappers */

int etok_tokenize(const etok_model *m, const char *text, int add_bos, int parse_special, int32_t *out, int cap,
                  etok_err *err) {
    int n = etok_tokenizer_encode(m->tok, text, add_bos, parse_special, out, cap, err);
    if (n > cap) return etok_errc(err, ETOK_EXIT_INPUT, "text is %d tokens, more than the %d allowed", n, cap);
    return n;
}

const char *etok_token_piece(const etok_model *m, int32_t token, size_t *len) {
    return etok_tokenizer_piece(m->tok, token, len);
}

char *etok_detokenize(const etok_model *m, const int32_t *tokens, int n) {
    return etok_tokenizer_decode(m->tok, tokens, n);
}

int etok_token_is_eog(const etok_model *m, int32_t token) { return etok_tokenizer_is_eog(m->tok, token); }

int etok_tokenize_chat(const etok_model *m, const char *const *roles, const char *const *contents, int n, int add_bos,
                       int32_t *out, int cap, etok_err *err) {
    return etok_tokenizer_encode_chat(m->tok, roles, contents, n, add_bos, out, cap, err);
}

char *etok_chat_format_messages(const etok_model *m, const char *const *roles, const char *const *contents, int n,
                                etok_err *err) {
    return etok_tokenizer_chat_messages(m->tok, roles, contents, n, err);
}

const char *etok_chat_template_name(const etok_model *m, int *from_file) {
    return etok_tokenizer_chat_name(m ? m->tok : NULL, from_file);
}

char *etok_chat_format(const etok_model *m, const char *system, const char *user, etok_err *err) {
    return etok_tokenizer_chat(m->tok, system, user, err);
}

/* ------------------------------------------------------------------ accounting (METRICS.md s.1) */

double etok_model_flops_per_token(const etok_model *m, int position) {
    const etok_model_info *in = &m->info;
    /* matmul FLOPs = 2 * active matmul params (LM head 2*d*V included) */
    double f = 2.0 * (m->matmul_params + (double)in->d_model * in->vocab_size);
    /* attention: 4 * n_h * d_h * sum over layers of t_eff, t_eff = tokens attended (position
     * + 1, at most the layer's own window) */
    f += 4.0 * in->n_heads * in->head_dim * etok_model_attended_positions(m, position + 1);
    return f;
}

double etok_model_attended_positions(const etok_model *m, int t_eff) {
    double s = 0;
    for (int l = 0; l < m->info.n_layers; l++) {
        int w = m->layers[l].window;
        s += (double)(w > 0 && w < t_eff ? w : t_eff);
    }
    return s;
}

double etok_model_weight_bytes(const etok_model *m) { return m->step_weight_bytes; }

double etok_model_kv_bytes_per_token(const etok_model *m, int kv_bits) {
    /* 2 * L * n_kv * d_h * bytes_per_elem */
    double be = kv_bits == 32 ? 4.0 : kv_bits == 8 ? (double)sizeof(etok_block_q8_0) / ETOK_QK : 2.0;
    return 2.0 * m->info.n_layers * m->info.n_kv_heads * m->info.head_dim * be;
}

/* ------------------------------------------------------------------ KV cache */

void etok_layer_attn_window(const etok_model *m, int layer, int attn_window, int sinks, int *win, int *win_sinks) {
    const int own = m->layers[layer].window;
    *win = attn_window;
    *win_sinks = attn_window > 0 ? sinks : 0;
    if (own > 0 && (attn_window <= 0 || own < attn_window)) {
        *win = own;
        *win_sinks = 0;
    }
}

int etok_kv_cache_init(etok_kv_cache *kv, const etok_model *m, int n_slots, int rows, int kv_bits, int sinks,
                       int attn_window, int max_run, etok_err *err) {
    memset(kv, 0, sizeof *kv);
    if (kv_bits != 8 && kv_bits != 16 && kv_bits != 32)
        return etok_errc(err, ETOK_EXIT_USAGE, "KV cache: kv_bits must be 8 (Q8_0), 16 or 32, not %d", kv_bits);
    if (kv_bits == 8 && m->info.head_dim % ETOK_QK != 0)
        return etok_errc(err, ETOK_EXIT_USAGE,
                         "--kv-type q8_0: the head dimension %d is not a multiple of the %d-value Q8_0 block",
                         m->info.head_dim, ETOK_QK);
    if (sinks < 0 || sinks >= rows)
        return etok_errc(err, ETOK_EXIT_USAGE, "KV cache: %d sink rows do not fit %d rows", sinks, rows);
    if (max_run < 1) max_run = 1;
    kv->n_slots = n_slots;
    kv->rows = rows;
    kv->sinks = sinks;
    kv->ring = rows - sinks;
    kv->kv_bits = kv_bits;
    kv->type = kv_bits == 32 ? ETOK_T_F32 : kv_bits == 16 ? ETOK_T_F16 : ETOK_T_Q8_0;
    kv->n_layers = m->info.n_layers;
    kv->kv_dim = m->info.n_kv_heads * m->info.head_dim;
    kv->row_bytes = etok_type_row_bytes(kv->type, kv->kv_dim);
    kv->head_bytes = etok_type_row_bytes(kv->type, m->info.head_dim);
    kv->layout = calloc((size_t)kv->n_layers, sizeof *kv->layout);
    if (!kv->layout) return etok_errf(err, "KV cache: out of memory");
    for (int l = 0; l < kv->n_layers; l++) {
        etok_kv_layout *ly = &kv->layout[l];
        int win, wsinks;
        etok_layer_attn_window(m, l, attn_window, sinks, &win, &wsinks);
        ly->rows = rows;
        ly->sinks = sinks;
        if (win > 0 && wsinks == 0 && win == m->layers[l].window && (int64_t)win + max_run < rows) {
            /* the layer's own window: a ring of the window and one step's tokens */
            ly->rows = win + max_run;
            ly->sinks = 0;
        }
        ly->ring = ly->rows - ly->sinks;
        ly->first_row = kv->slot_rows;
        kv->slot_rows += (size_t)ly->rows;
    }
    size_t n = (size_t)n_slots * kv->slot_rows * kv->row_bytes;
    kv->bytes = n;
    /* Anonymous mappings (hugemem.h): zeroed pages, only touched as positions are written, and
     * 2 MiB aligned, so a KV head's F16 or F32 row (a multiple of 64 bytes from 32 values up)
     * starts on a cache line. calloc's large blocks start 16 bytes into a page, and every
     * 64-byte read of such a row straddled two lines. (A Q8_0 head row, 34 bytes a block, is
     * not a multiple of 64 either way.) In 2 MiB pages a decode step's pass over the cache
     * crosses 512 times fewer pages. */
    if (etok_hugemem_alloc(&kv->k_mem, n) || etok_hugemem_alloc(&kv->v_mem, n)) {
        etok_kv_cache_free(kv);
        return etok_errf(err, "KV cache: cannot allocate 2 x %.1f MB", (double)n / 1e6);
    }
    kv->k = kv->k_mem.base;
    kv->v = kv->v_mem.base;
    return 0;
}

void etok_kv_cache_free(etok_kv_cache *kv) {
    etok_hugemem_free(&kv->k_mem);
    etok_hugemem_free(&kv->v_mem);
    free(kv->layout);
    kv->k = kv->v = NULL;
    kv->layout = NULL;
}

/* ------------------------------------------------------------------ forward state */

struct etok_fwd_state {
    int max_tokens, n_threads, ctx_len;
    float *x;        /* [T][d] residual stream */
    float *xb;       /* [T][max(d, d_ff)] normed input / FFN hidden */
    float *q;        /* [T][max(d, q_dim)] */
    float *k, *v;    /* [T][kv_dim] */
    float *att;      /* [T][q_dim] attention output */
    float *gate, *up;/* [T][d_ff] */
    float *rope_cs;  /* [2][T][rope_dims] cos, sin pairs: global layers, then local ones */
    etok_block_q8a *xq; /* [T][max(d, d_ff, q_dim)/32] */
    etok_block_q8k *xk; /* [T][max(d, d_ff, q_dim)/256]: K-quant matrices' activations */
    float *xr;       /* [T][max(d, d_ff, q_dim)]: F16/BF16 matrices' activations, rounded (matmul_float.h) */
    float *scores;   /* [n_threads][etok_attn_scratch_floats(.., ctx_len)] */
    size_t scores_per_thread;
    float *lm_x;     /* [T][d] rows that want logits */
};

void etok_fwd_state_free(etok_fwd_state *s) {
    if (!s) return;
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->gate);
    free(s->up);
    free(s->rope_cs);
    free(s->xq);
    free(s->xk);
    free(s->xr);
    free(s->scores);
    free(s->lm_x);
    free(s);
}

etok_fwd_state *etok_fwd_state_new(const etok_model *m, int max_tokens, int n_threads, int ctx_len, etok_err *err) {
    etok_fwd_state *s = calloc(1, sizeof *s);
    if (!s) {
        etok_errf(err, "out of memory");
        return NULL;
    }
    const etok_model_info *in = &m->info;
    size_t T = (size_t)max_tokens, d = (size_t)in->d_model, kvd = (size_t)in->n_kv_heads * (size_t)in->head_dim,
           dff = (size_t)in->d_ff, qd = (size_t)m->q_dim, wide = d > dff ? d : dff;
    if (qd > wide) wide = qd;
    const size_t dq = d > qd ? d : qd;
    s->max_tokens = max_tokens;
    s->n_threads = n_threads;
    s->ctx_len = ctx_len;
    s->x = malloc(T * d * sizeof(float));
    s->xb = malloc(T * wide * sizeof(float));
    s->q = malloc(T * dq * sizeof(float));
    s->k = malloc(T * kvd * sizeof(float));
    s->v = malloc(T * kvd * sizeof(float));
    s->att = malloc(T * qd * sizeof(float));
    s->gate = malloc(T * dff * sizeof(float));
    s->up = malloc(T * dff * sizeof(float));
    s->rope_cs = malloc(2 * T * (size_t)m->rope_dims * sizeof(float));
    s->xq = malloc(T * (wide / ETOK_QK + 1) * sizeof(etok_block_q8a));
    s->xk = malloc(T * (wide / ETOK_QK_K + 1) * sizeof(etok_block_q8k));
    s->xr = malloc(T * wide * sizeof(float));
    s->scores_per_thread = etok_attn_scratch_floats(in->n_heads, in->n_kv_heads, ctx_len);
    s->scores = malloc((size_t)n_threads * s->scores_per_thread * sizeof(float));
    s->lm_x = malloc(T * d * sizeof(float));
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->gate || !s->up || !s->rope_cs || !s->xq || !s->xk || !s->xr ||
        !s->scores || !s->lm_x) {
        etok_fwd_state_free(s);
        etok_errf(err, "forward state: out of memory for %d tokens", max_tokens);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------------ parallel pieces */

/* Chunks of rows in a one-token matmul on one thread (else 8 per thread). Fewer, longer chunks
 * make the decode kernels' parts (quant_simd.h, etok_part_order; matmul_float.c's row parts)
 * long sequential streams: one pinned thread, SmolLM2 tg64, 3 alternating rounds, 8 chunks and
 * one stream vs 2 chunks in parts: Q4_1 120 vs 140 tokens/s, F16 57 vs 72 (docs/ENGINE.md,
 * "Decode in parts"). With two threads, 2 chunks each decoded 5-9% slower than 8 (a thread
 * that finished early found no work), so more threads keep 8. */
#define DECODE_CHUNKS_ONE_THREAD 2

/* Up to three matrices sharing one input (Q/K/V, gate/up). Threads claim chunks of rows of
 * the concatenated matrices from an atomic counter, so when the machine is shared and one
 * thread is descheduled the others take over its share; every row is computed the same way
 * whichever thread takes it, so results do not depend on the split. */
typedef struct {
    int n_mats;
    const etok_mat *mat[3];
    float *out[3];            /* [T][n_out] each */
    const etok_block_q8a *xq; /* [T][n_in/32] when the type uses q8a */
    const etok_block_q8k *xk; /* [T][n_in/256] when a K-quant matrix is among them */
    const float *xf;          /* [T][n_in] */
    const float *xr;          /* [T][n_in] rounded for the float matrices (F32: xf) */
    int n_tokens;
    int64_t chunk_rows;
    atomic_llong next_chunk;
} matmul_task;

static void matmul_worker(void *ctxp, int ith, int nth) {
    matmul_task *t = ctxp;
    (void)ith;
    (void)nth;
    int64_t total = 0;
    for (int i = 0; i < t->n_mats; i++) total += t->mat[i]->n_out;
    for (;;) {
        int64_t r0 = (int64_t)atomic_fetch_add(&t->next_chunk, 1) * t->chunk_rows;
        if (r0 >= total) break;
        int64_t r1 = r0 + t->chunk_rows < total ? r0 + t->chunk_rows : total, base = 0;
        for (int i = 0; i < t->n_mats && r0 < r1; i++) {
            const etok_mat *M = t->mat[i];
            int64_t lo = r0 > base ? r0 - base : 0, hi = r1 - base < M->n_out ? r1 - base : M->n_out;
            if (lo < hi && M->layout == ETOK_LAYOUT_Q4_0X8) /* llama.cpp's 8-row order over etok's repacked copy */
                etok_matmul_q4_0x8(M->data, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i], (size_t)M->n_out);
            else if (lo < hi && M->layout == ETOK_LAYOUT_Q41X8) /* Q4_1 / Q5_1 repacked: the file-layout kernels' bits */
                etok_matmul_q41x8(M->type, M->data, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i], (size_t)M->n_out);
            else if (lo < hi && M->layout == ETOK_LAYOUT_Q8X4) /* Q8_0 repacked: the file-layout kernels' bits */
                etok_matmul_q8x4(M->data, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i], (size_t)M->n_out);
            else if (lo < hi && M->layout == ETOK_LAYOUT_Q50X8) /* Q5_0 repacked: the file-layout kernels' bits */
                etok_matmul_q50x8(M->data, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i], (size_t)M->n_out);
            else if (lo < hi && M->layout == ETOK_LAYOUT_IQ4NLX8) /* IQ4_NL repacked: the file-layout kernels' bits */
                etok_matmul_iq4nlx8(M->data, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i], (size_t)M->n_out);
            else if (lo < hi && etok_q4_0_8x8_applies(M->type, M->n_out, M->n_in)) /* the same, file layout */
                etok_matmul_rows_q4_0_8x8(M->data, M->row_bytes, lo, hi, t->xq, M->n_in, t->n_tokens, t->out[i],
                                          (size_t)M->n_out);
            else if (lo < hi && etok_type_is_float(M->type)) /* llama.cpp's tinyBLAS / vec_dot orders */
                etok_matmul_rows_float(M->type, M->data, M->row_bytes, lo, hi, t->xr, M->n_in, t->n_tokens,
                                       etok_float_gemm_applies(M->n_out, M->n_in, t->n_tokens), t->out[i],
                                       (size_t)M->n_out);
            else if (lo < hi && etok_type_uses_q8k(M->type))
                etok_matmul_rows_q8k(M->type, M->data, M->row_bytes, lo, hi, t->xk, M->n_in, t->n_tokens, t->out[i],
                                     (size_t)M->n_out);
            else if (lo < hi)
                etok_matmul_rows(M->type, M->data, M->row_bytes, lo, hi, t->xq, t->xf, M->n_in, t->n_tokens,
                                 t->out[i], (size_t)M->n_out);
            base += M->n_out;
        }
    }
}

/* Below this many tokens per step, per-token elementwise work stays on the calling thread
 * (a pool hand-off costs more than it saves). */
#define PARALLEL_MIN_TOKENS 8

typedef struct {
    const float *x;
    etok_block_q8a *xq; /* NULL: not needed */
    etok_block_q8k *xk; /* NULL: not needed */
    int64_t n_in;
    int n_tokens;
} quant_task;

static void quant_rows(const quant_task *q, int j) {
    const float *x = q->x + (size_t)j * (size_t)q->n_in;
    if (q->xq) etok_quantize_q8a(x, q->xq + (size_t)j * (size_t)(q->n_in / ETOK_QK), q->n_in);
    if (q->xk) etok_quantize_q8k(x, q->xk + (size_t)j * (size_t)(q->n_in / ETOK_QK_K), q->n_in);
}

static void quant_worker(void *ctxp, int ith, int nth) {
    const quant_task *q = ctxp;
    for (int j = ith; j < q->n_tokens; j += nth) quant_rows(q, j);
}

typedef struct {
    float *gate;
    const float *up;
    size_t n;
    int row; /* values per token (d_ff) */
} swiglu_task;

/* SiLU(gate) * up row by row, with exp() as llama.cpp evaluates it (engine/vmath.h) */
static void swiglu_worker(void *ctxp, int ith, int nth) {
    const swiglu_task *w = ctxp;
    const size_t rows = w->n / (size_t)w->row;
    for (size_t r = (size_t)ith; r < rows; r += (size_t)nth)
        etok_silu_mul(w->gate + r * (size_t)w->row, w->up + r * (size_t)w->row, w->row);
}

/* out_i[T][n_out_i] = x[T][n_in] . M_i^T for the n mats (all with the same n_in). */
static void matmul(etok_threadpool *pool, etok_fwd_state *st, int n, const etok_mat **mats, float **outs,
                   const float *x, int T) {
    matmul_task t;
    memset(&t, 0, sizeof t);
    t.n_mats = n;
    int need_q8 = 0, need_q8k = 0;
    uint32_t round_type = ETOK_T_F32; /* F16/BF16: the activations are rounded to it first */
    for (int i = 0; i < n; i++)
        if (mats[i]->type == ETOK_T_F16 || mats[i]->type == ETOK_T_BF16) {
            if (round_type != ETOK_T_F32 && round_type != mats[i]->type) { /* F16 beside BF16: one at a time */
                for (int k = 0; k < n; k++) matmul(pool, st, 1, &mats[k], &outs[k], x, T);
                return;
            }
            round_type = mats[i]->type;
        }
    for (int i = 0; i < n; i++) {
        t.mat[i] = mats[i];
        t.out[i] = outs[i];
        /* K-quant matrices take Q8_K activations (llama.cpp's vec_dot_type for them) */
        if (etok_type_uses_q8k(mats[i]->type))
            need_q8k = 1;
        else
            need_q8 |= etok_type_uses_q8a(mats[i]->type);
    }
    int64_t n_in = mats[0]->n_in;
    if (need_q8 || need_q8k) {
        quant_task q = {x, need_q8 ? st->xq : NULL, need_q8k ? st->xk : NULL, n_in, T};
        if (T >= PARALLEL_MIN_TOKENS)
            etok_threadpool_run(pool, quant_worker, &q);
        else
            for (int j = 0; j < T; j++) quant_rows(&q, j);
        t.xq = q.xq;
        t.xk = q.xk;
    }
    t.xf = x;
    t.xr = x;
    if (round_type != ETOK_T_F32) {
        etok_float_round_act(round_type, x, st->xr, (int64_t)T * n_in);
        t.xr = st->xr;
    }
    t.n_tokens = T;
    /* chunks: about 8 per thread (a one-token step on one thread: DECODE_CHUNKS_ONE_THREAD),
     * whole groups of 8 rows (the Q4_0 8-row kernel's unit; the other decode kernels take 4) */
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += mats[i]->n_out;
    const int nth = etok_threadpool_size(pool);
    int64_t per = total / ((T == 1 && nth == 1 ? DECODE_CHUNKS_ONE_THREAD : 8) * (int64_t)nth) + 1;
    t.chunk_rows = (per + 7) / 8 * 8;
    atomic_init(&t.next_chunk, 0);
    /* mixed float / q8a matrices in one call are fine: each kernel takes what it needs */
    etok_threadpool_run(pool, matmul_worker, &t);
}

/* ------------------------------------------------------------------ the forward pass */

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

/* RoPE, llama.cpp's "normal" mode for LLaMA: rotate ADJACENT pairs (x[2i], x[2i+1]) by
 * pos * base^(-2i/rope_dims). (The GGUF converter permuted the Q/K rows so that this is
 * equivalent to Hugging Face's rotate-half.) NeoX mode (Gemma): pair x[i] with
 * x[i + rope_dims/2], the same angles. */
static void rope(float *x, int n_heads, int head_dim, int rope_dims, const float *cs, int neox) {
    const int half = rope_dims / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * (size_t)head_dim;
        for (int i = 0; i < half; i++) {
            const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float c = cs[2 * i], s = cs[2 * i + 1], x0 = v[i0], x1 = v[i1];
            /* written as fused multiply-adds: the rounding llama.cpp's compiled code gets */
            v[i0] = fmaf(x0, c, -(x1 * s));
            v[i1] = fmaf(x0, s, x1 * c);
        }
    }
}

static void add_bias(float *x, const float *b, int n) {
    for (int i = 0; i < n; i++) x[i] += b[i];
}

/* GELU, tanh approximation (Gemma's gelu_pytorch_tanh), in float. */
static float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * x * (1.0f + 0.044715f * x * x)));
}

static void geglu_worker(void *ctxp, int ith, int nth) {
    const swiglu_task *w = ctxp;
    size_t lo = w->n * (size_t)ith / (size_t)nth, hi = w->n * (size_t)(ith + 1) / (size_t)nth;
    for (size_t i = lo; i < hi; i++) w->gate[i] = gelu_tanh(w->gate[i]) * w->up[i];
}

int etok_model_forward(const etok_model *m, etok_threadpool *pool, etok_kv_cache *kv, etok_fwd_state *st,
                       const etok_batch *b, int attn_window, float *logits, etok_err *err) {
    const etok_model_info *in = &m->info;
    const int T = b->n_tokens, d = in->d_model, dff = in->d_ff, hd = in->head_dim;
    const int kvd = in->n_kv_heads * hd, rd = m->rope_dims, qd = m->q_dim;
    if (T <= 0) return 0;
    if (T > st->max_tokens) return etok_errf(err, "forward: %d tokens exceed the step capacity %d", T, st->max_tokens);
    for (int t = 0; t < T; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= in->vocab_size)
            return etok_errc(err, ETOK_EXIT_INPUT, "forward: token id %d outside the vocabulary (%d)", b->tokens[t],
                             in->vocab_size);
        if (b->pos[t] < 0 || (attn_window <= 0 && b->pos[t] >= kv->rows) || b->slot[t] < 0 ||
            b->slot[t] >= kv->n_slots)
            return etok_errf(err, "forward: position %d / slot %d outside the KV cache", b->pos[t], b->slot[t]);
    }
    /* a slot's tokens of this step are written before any attends: a layer's ring must keep
     * the window of the run's first token while its last one is written */
    for (int l = 0; l < in->n_layers; l++) {
        const etok_kv_layout *ly = &kv->layout[l];
        int win, wsinks;
        etok_layer_attn_window(m, l, attn_window, kv->sinks, &win, &wsinks);
        if (win <= 0) continue;
        for (int t = 0, run = 1; t < T; t++, run++) {
            if (t > 0 && b->slot[t] != b->slot[t - 1]) run = 1;
            if (b->pos[t] >= ly->sinks + ly->ring && win + run - 1 > ly->ring)
                return etok_errf(err, "forward: %d tokens of one sequence in a step overflow the %d-row KV ring of "
                                 "layer %d (window %d)", run, ly->ring, l, win);
        }
    }

    /* embeddings (x embd_scale) and the RoPE angles of each token: the global layers' in
     * rope_cs[0], the local layers' (Gemma 3) in rope_cs[1] */
    const int n_bases = m->rope_theta_scale_local > 0.0f ? 2 : 1;
    for (int t = 0; t < T; t++) {
        float *xt = st->x + (size_t)t * d;
        etok_mat_dequantize_row(&m->tok_embd, b->tokens[t], xt);
        if (m->embd_scale != 1.0f)
            for (int i = 0; i < d; i++) xt[i] *= m->embd_scale;
        /* theta_i = pos * base^(-2i/rope_dims), built as a running float product like
         * llama.cpp so that both engines round the angles the same way */
        for (int k = 0; k < n_bases; k++) {
            float *cs = st->rope_cs + ((size_t)k * (size_t)T + (size_t)t) * rd;
            const float ts = k == 0 ? m->rope_theta_scale : m->rope_theta_scale_local;
            const float fs = k == 0 ? m->rope_freq_scale : 1.0f;
            const float *ff = k == 0 ? m->rope_ff : NULL; /* (th / ff) * fs, llama.cpp's order */
            float th = (float)b->pos[t];
            for (int i = 0; i < rd / 2; i++) {
                const float a = (ff ? th / ff[i] : th) * fs;
                cs[2 * i] = cosf(a);
                cs[2 * i + 1] = sinf(a);
                th *= ts;
            }
        }
    }

    for (int l = 0; l < in->n_layers; l++) {
        const etok_layer *L = &m->layers[l];

        /* attention block: RMSNorm -> Q, K, V (one pass over the three matrices) */
        for (int t = 0; t < T; t++) rmsnorm(st->xb + (size_t)t * d, st->x + (size_t)t * d, L->attn_norm, d, m->rms_eps);
        {
            const etok_mat *ms[3] = {&L->wq, &L->wk, &L->wv};
            float *os[3] = {st->q, st->k, st->v};
            matmul(pool, st, 3, ms, os, st->xb, T);
        }
        /* (Qwen2: + bias), (Gemma 3, Qwen3: RMSNorm of each Q and K head), RoPE on Q and K; K
         * and V go into the cache at each token's position */
        const float *rcs = st->rope_cs + (L->rope_local ? (size_t)T * rd : 0);
        for (int t = 0; t < T; t++) {
            const float *cs = rcs + (size_t)t * rd;
            float *qt = st->q + (size_t)t * qd, *kt = st->k + (size_t)t * kvd;
            if (L->bq) add_bias(qt, L->bq, qd);
            if (L->bk) add_bias(kt, L->bk, kvd);
            if (L->bv) add_bias(st->v + (size_t)t * kvd, L->bv, kvd);
            if (L->q_norm)
                for (int h = 0; h < in->n_heads; h++) rmsnorm(qt + (size_t)h * hd, qt + (size_t)h * hd, L->q_norm, hd, m->rms_eps);
            if (L->k_norm)
                for (int h = 0; h < in->n_kv_heads; h++)
                    rmsnorm(kt + (size_t)h * hd, kt + (size_t)h * hd, L->k_norm, hd, m->rms_eps);
            rope(qt, in->n_heads, hd, rd, cs, m->rope_neox);
            rope(kt, in->n_kv_heads, hd, rd, cs, m->rope_neox);
            for (int h = 0; h < in->n_kv_heads; h++) { /* each KV head's row in its own run (model.h) */
                uint8_t *kr = etok_kv_row(kv, kv->k, b->slot[t], l, b->pos[t], h),
                        *vr = etok_kv_row(kv, kv->v, b->slot[t], l, b->pos[t], h);
                const float *kh = kt + (size_t)h * hd, *vh = st->v + (size_t)t * kvd + (size_t)h * hd;
                if (kv->type == ETOK_T_F16) {
                    etok_f32_to_f16_row(kh, kr, hd);
                    etok_f32_to_f16_row(vh, vr, hd);
                } else if (kv->type == ETOK_T_Q8_0) {
                    etok_quantize_kv_q8_0(kh, kr, hd); /* as llama.cpp writes its q8_0 cache (vmath.h) */
                    etok_quantize_kv_q8_0(vh, vr, hd);
                } else {
                    memcpy(kr, kh, (size_t)hd * sizeof(float));
                    memcpy(vr, vh, (size_t)hd * sizeof(float));
                }
            }
        }
        /* causal GQA attention of every token over its own sequence's cache; a layer with its
         * own window (Gemma 3's local layers) attends to that window, or to the run's
         * --attn-window (with its sinks) when that one is narrower */
        {
            etok_attn_args aa = {kv, b, l, 0, 0, in->n_heads, in->n_kv_heads, hd, qd, m->attn_scale, st->q, st->att,
                                 st->scores, st->scores_per_thread};
            etok_layer_attn_window(m, l, attn_window, kv->sinks, &aa.window, &aa.sinks);
            etok_attention(pool, &aa);
        }
        /* output projection, (+ bias), (Gemma 3: RMSNorm), residual */
        {
            const etok_mat *ms[1] = {&L->wo};
            float *os[1] = {st->q};
            matmul(pool, st, 1, ms, os, st->att, T);
            if (L->bo)
                for (int t = 0; t < T; t++) add_bias(st->q + (size_t)t * d, L->bo, d);
            if (L->post_attn_norm)
                for (int t = 0; t < T; t++)
                    rmsnorm(st->q + (size_t)t * d, st->q + (size_t)t * d, L->post_attn_norm, d, m->rms_eps);
            for (size_t i = 0; i < (size_t)T * d; i++) st->x[i] += st->q[i];
        }

        /* After the last attention only the rows that want logits matter: as llama.cpp (its
         * inp_out_ids), keep those, row r of x = logit row r (gathered through lm_x), and run
         * the last FFN on them alone, so its matmuls see that token count (the summation
         * order of a float matmul depends on it: matmul_float.h). */
        int Tf = T;
        if (l == in->n_layers - 1) {
            for (int t = 0; t < T; t++)
                if (b->logit_row[t] >= 0)
                    memcpy(st->lm_x + (size_t)b->logit_row[t] * d, st->x + (size_t)t * d, (size_t)d * sizeof(float));
            memcpy(st->x, st->lm_x, (size_t)b->n_logit_rows * (size_t)d * sizeof(float));
            Tf = b->n_logit_rows;
            if (Tf == 0) break;
        }

        /* FFN block: RMSNorm -> down(act(gate(x)) * up(x)) with act SiLU (SwiGLU) or GELU-tanh
         * (GeGLU), (Gemma 3: RMSNorm), residual */
        for (int t = 0; t < Tf; t++) rmsnorm(st->xb + (size_t)t * d, st->x + (size_t)t * d, L->ffn_norm, d, m->rms_eps);
        {
            const etok_mat *ms[2] = {&L->w_gate, &L->w_up};
            float *os[2] = {st->gate, st->up};
            matmul(pool, st, 2, ms, os, st->xb, Tf);
        }
        {
            swiglu_task w = {st->gate, st->up, (size_t)Tf * dff, dff};
            void (*fn)(void *, int, int) = m->ffn_gelu ? geglu_worker : swiglu_worker;
            if (Tf >= PARALLEL_MIN_TOKENS)
                etok_threadpool_run(pool, fn, &w);
            else
                fn(&w, 0, 1);
        }
        {
            const etok_mat *ms[1] = {&L->w_down};
            float *os[1] = {st->q};
            matmul(pool, st, 1, ms, os, st->gate, Tf);
            if (L->post_ffn_norm)
                for (int t = 0; t < Tf; t++)
                    rmsnorm(st->q + (size_t)t * d, st->q + (size_t)t * d, L->post_ffn_norm, d, m->rms_eps);
            for (size_t i = 0; i < (size_t)Tf * d; i++) st->x[i] += st->q[i];
        }
    }

    /* final RMSNorm and the LM head, only for the rows that want logits (row r of x is logit
     * row r now, see above) */
    if (b->n_logit_rows > 0) {
        for (int r = 0; r < b->n_logit_rows; r++)
            rmsnorm(st->lm_x + (size_t)r * d, st->x + (size_t)r * d, m->output_norm, d, m->rms_eps);
        const etok_mat *ms[1] = {&m->output};
        float *os[1] = {logits};
        matmul(pool, st, 1, ms, os, st->lm_x, b->n_logit_rows);
        if (m->logit_softcap > 0.0f) {
            const float c = m->logit_softcap;
            for (size_t i = 0; i < (size_t)b->n_logit_rows * (size_t)in->vocab_size; i++)
                logits[i] = c * tanhf(logits[i] / c);
        }
    }
    return 0;
}
