/* synth_gguf.c — see synth_gguf.h. The file is assembled in memory: header, metadata,
 * tensor infos, padding, then each tensor's data at an aligned offset, quantised with the
 * engine's own reference quantisers (quant.h). */
#include "synth_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

void etok_gbuf_bytes(etok_gbuf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) abort();
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
void etok_gbuf_u32(etok_gbuf *b, uint32_t v) { etok_gbuf_bytes(b, &v, 4); }
void etok_gbuf_u64(etok_gbuf *b, uint64_t v) { etok_gbuf_bytes(b, &v, 8); }
void etok_gbuf_str(etok_gbuf *b, const char *s) {
    etok_gbuf_u64(b, strlen(s));
    etok_gbuf_bytes(b, s, strlen(s));
}
void etok_gbuf_pad(etok_gbuf *b, size_t align) {
    static const uint8_t zero[256] = {0};
    while (b->n % align) etok_gbuf_bytes(b, zero, (align - b->n % align) > 256 ? 256 : align - b->n % align);
}
void etok_gbuf_free(etok_gbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

void etok_tiny_gguf_defaults(etok_tiny_gguf_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_layers = 2;
    o->d_model = 64;
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->d_ff = 128;
    o->ctx_len = 256;
    o->weight_type = ETOK_T_Q4_1;
    o->embd_type = ETOK_T_Q8_0;
    o->output_type = 0;
    o->tied = 1;
    o->rope_freq_base = 10000.0f;
    o->rms_eps = 1e-5f;
    o->weight_scale = 0.08f;
    o->seed = 1;
}

/* ---- the tiny vocabulary ---- */

static const char *const k_merges[][2] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"e", "r"},
                                          {"Ġ", "a"}, {"o", "n"}, {"Ġ", "s"}, {"l", "l"}, {"Ġ", "w"}};
#define N_MERGES (int)(sizeof k_merges / sizeof k_merges[0])
#define N_SPECIAL 3

int etok_tiny_gguf_vocab_size(void) { return N_SPECIAL + 256 + N_MERGES; }

/* GPT-2's byte -> code point map, as UTF-8 text. */
static void byte_token(int byte, char out[8]) {
    int cp;
    if ((byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255)) {
        cp = byte;
    } else {
        int n = 0; /* index among the remapped bytes */
        for (int b = 0; b < byte; b++)
            if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* ---- metadata writers ---- */

static void kv_str(etok_gbuf *b, const char *k, const char *v) {
    etok_gbuf_str(b, k);
    etok_gbuf_u32(b, ETOK_GGUF_STRING);
    etok_gbuf_str(b, v);
}
static void kv_u32(etok_gbuf *b, const char *k, uint32_t v) {
    etok_gbuf_str(b, k);
    etok_gbuf_u32(b, ETOK_GGUF_U32);
    etok_gbuf_u32(b, v);
}
static void kv_f32(etok_gbuf *b, const char *k, float v) {
    etok_gbuf_str(b, k);
    etok_gbuf_u32(b, ETOK_GGUF_F32);
    etok_gbuf_bytes(b, &v, 4);
}
static void kv_bool(etok_gbuf *b, const char *k, int v) {
    uint8_t x = (uint8_t)(v != 0);
    etok_gbuf_str(b, k);
    etok_gbuf_u32(b, ETOK_GGUF_BOOL);
    etok_gbuf_bytes(b, &x, 1);
}

typedef struct {
    char name[64];
    int n_dims;
    uint64_t ne[2];
    uint32_t type;
    uint64_t offset;
    float *values;
} tensor_plan;

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rng_sym(uint64_t *s) { return (float)((double)(rng_next(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

int etok_test_write_tiny_gguf(const char *path, const etok_tiny_gguf_opts *opts) {
    etok_tiny_gguf_opts o;
    if (opts)
        o = *opts;
    else
        etok_tiny_gguf_defaults(&o);
    if (o.output_f32) o.output_type = ETOK_T_F32;
    else if (!o.output_type) o.output_type = o.d_model % 256 == 0 ? ETOK_T_Q6_K : ETOK_T_Q8_0;
    const char *arch = o.arch ? o.arch : "llama";
    const int gemma = strcmp(arch, "gemma3") == 0, qwen2 = strcmp(arch, "qwen2") == 0,
              qwen3 = strcmp(arch, "qwen3") == 0, phi3 = strcmp(arch, "phi3") == 0;
    const int d = o.d_model, dff = o.d_ff, hd = o.key_length > 0 ? o.key_length : d / o.n_heads,
              kvd = o.n_kv_heads * hd, qd = o.n_heads * hd, V = etok_tiny_gguf_vocab_size() + (o.pad_vocab > 0 ? o.pad_vocab : 0);
    const float gain = o.post_norm_gain > 0 ? o.post_norm_gain : 1.0f,
                gain_ffw = o.post_ffw_gain > 0 ? o.post_ffw_gain : 1.0f;
    const uint32_t align = o.alignment ? o.alignment : 32;
    static const uint32_t cycle[] = {ETOK_T_Q4_1, ETOK_T_Q8_0, ETOK_T_Q4_0, ETOK_T_Q4_K,
                                     ETOK_T_Q6_K, ETOK_T_F16,  ETOK_T_BF16, ETOK_T_F32,
                                     ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_IQ4_NL, ETOK_T_Q2_K,
                                     ETOK_T_Q3_K, ETOK_T_Q5_K};
    int n_t = 4 + 13 * o.n_layers;
    tensor_plan *tp = calloc((size_t)n_t, sizeof *tp);
    if (!tp) return -1;
    int k = 0, ci = 0;
    uint64_t rs = o.seed * 7919 + 1;
#define ADD(nm, n0, n1, ty, sc)                                                                                        \
    do {                                                                                                               \
        if (o.omit_tensor && strcmp(nm, o.omit_tensor) == 0) break;                                                    \
        tensor_plan *t = &tp[k++];                                                                                     \
        snprintf(t->name, sizeof t->name, "%s", nm);                                                                   \
        t->n_dims = (n1) > 0 ? 2 : 1;                                                                                  \
        t->ne[0] = (uint64_t)(n0);                                                                                     \
        t->ne[1] = (n1) > 0 ? (uint64_t)(n1) : 1;                                                                      \
        t->type = ty;                                                                                                  \
        size_t cnt = (size_t)t->ne[0] * t->ne[1];                                                                      \
        t->values = malloc(cnt * sizeof(float));                                                                       \
        for (size_t q = 0; q < cnt; q++) t->values[q] = (sc) < 0 ? 1.0f + 0.1f * rng_sym(&rs) : (sc) * rng_sym(&rs); \
    } while (0)
    ADD("token_embd.weight", d, V, o.embd_type, 0.5f);
    ADD("output_norm.weight", d, 0, ETOK_T_F32, -1.0f);
    if (!o.tied) ADD("output.weight", d, V, o.output_type, o.weight_scale);
    for (int l = 0; l < o.n_layers; l++) {
        char nm[64];
        const char *mats[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
        int nin[7] = {d, d, d, qd, d, d, dff}, nout[7] = {qd, kvd, kvd, d, dff, dff, d}, n_mats = 7;
        if (phi3) { /* fused Q|K|V and gate|up */
            static const char *const fused[4] = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"};
            const int fin[4] = {d, qd, d, dff}, fout[4] = {qd + 2 * kvd, d, 2 * dff, d};
            for (int j = 0; j < 4; j++) {
                mats[j] = fused[j];
                nin[j] = fin[j];
                nout[j] = fout[j];
            }
            n_mats = 4;
        }
        for (int j = 0; j < n_mats; j++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, mats[j]);
            uint32_t ty = o.mixed_types                          ? cycle[ci++ % (sizeof cycle / sizeof cycle[0])]
                          : o.type_cycle && o.n_type_cycle > 0 ? o.type_cycle[ci++ % o.n_type_cycle]
                                                               : o.weight_type;
            ADD(nm, nin[j], nout[j], ty, o.weight_scale);
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        ADD(nm, d, 0, ETOK_T_F32, -1.0f);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
        ADD(nm, d, 0, ETOK_T_F32, -1.0f);
        if (qwen2) {
            snprintf(nm, sizeof nm, "blk.%d.attn_q.bias", l);
            ADD(nm, qd, 0, ETOK_T_F32, 0.3f);
            snprintf(nm, sizeof nm, "blk.%d.attn_k.bias", l);
            ADD(nm, kvd, 0, ETOK_T_F32, 0.3f);
            snprintf(nm, sizeof nm, "blk.%d.attn_v.bias", l);
            ADD(nm, kvd, 0, ETOK_T_F32, 0.3f);
        }
        if (qwen3) {
            snprintf(nm, sizeof nm, "blk.%d.attn_q_norm.weight", l);
            ADD(nm, hd, 0, ETOK_T_F32, -1.0f);
            snprintf(nm, sizeof nm, "blk.%d.attn_k_norm.weight", l);
            ADD(nm, hd, 0, ETOK_T_F32, -1.0f);
        }
        if (gemma) {
            snprintf(nm, sizeof nm, "blk.%d.attn_q_norm.weight", l);
            ADD(nm, hd, 0, ETOK_T_F32, -1.0f);
            snprintf(nm, sizeof nm, "blk.%d.attn_k_norm.weight", l);
            ADD(nm, hd, 0, ETOK_T_F32, -1.0f);
            snprintf(nm, sizeof nm, "blk.%d.post_attention_norm.weight", l);
            ADD(nm, d, 0, ETOK_T_F32, -1.0f);
            for (int q = 0; q < d; q++) tp[k - 1].values[q] *= gain;
            snprintf(nm, sizeof nm, "blk.%d.post_ffw_norm.weight", l);
            ADD(nm, d, 0, ETOK_T_F32, -1.0f);
            for (int q = 0; q < d; q++) tp[k - 1].values[q] *= gain_ffw;
        }
    }
    if (o.extra_tensor) {
        ADD(o.extra_tensor, hd / 2, 0, ETOK_T_F32, -1.0f);
        for (int q = 0; q < hd / 2; q++) tp[k - 1].values[q] = 1.0f + (float)q; /* 1, 2, ..., as Llama 3's 1..8 */
    }
#undef ADD
    n_t = k;

    etok_gbuf b = {0};
    int write_rope = o.raw_hparams || o.rope_freq_base > 0;
    int n_kv = 21 + write_rope + (o.alignment != 0) + (o.key_length > 0) + (o.sliding_window > 0) + (o.swa_pattern > 0);
    etok_gbuf_bytes(&b, "GGUF", 4);
    etok_gbuf_u32(&b, 3);
    etok_gbuf_u64(&b, (uint64_t)n_t);
    etok_gbuf_u64(&b, (uint64_t)n_kv);
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    kv_str(&b, "general.architecture", arch);
    kv_str(&b, "general.name", "etok tiny test model");
    if (o.alignment) kv_u32(&b, "general.alignment", o.alignment);
    kv_u32(&b, KEY("block_count"), (uint32_t)o.n_layers);
    kv_u32(&b, KEY("context_length"), (uint32_t)o.ctx_len);
    kv_u32(&b, KEY("embedding_length"), (uint32_t)d);
    kv_u32(&b, KEY("feed_forward_length"), (uint32_t)dff);
    kv_u32(&b, KEY("attention.head_count"), (uint32_t)o.n_heads);
    kv_u32(&b, KEY("attention.head_count_kv"), (uint32_t)o.n_kv_heads);
    if (write_rope) kv_f32(&b, KEY("rope.freq_base"), o.rope_freq_base);
    kv_f32(&b, KEY("attention.layer_norm_rms_epsilon"), o.raw_hparams || o.rms_eps > 0 ? o.rms_eps : 1e-5f);
    kv_u32(&b, KEY("rope.dimension_count"), (uint32_t)hd);
    kv_u32(&b, KEY("vocab_size"), o.vocab_size_key ? o.vocab_size_key : (uint32_t)V);
    if (o.key_length > 0) kv_u32(&b, KEY("attention.key_length"), (uint32_t)o.key_length);
    if (o.sliding_window > 0) kv_u32(&b, KEY("attention.sliding_window"), (uint32_t)o.sliding_window);
    if (o.swa_pattern > 0) kv_u32(&b, KEY("attention.sliding_window_pattern"), (uint32_t)o.swa_pattern);
#undef KEY
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "smollm");
    { /* tokens */
        etok_gbuf_str(&b, "tokenizer.ggml.tokens");
        etok_gbuf_u32(&b, ETOK_GGUF_ARRAY);
        etok_gbuf_u32(&b, ETOK_GGUF_STRING);
        etok_gbuf_u64(&b, (uint64_t)V);
        etok_gbuf_str(&b, "<|endoftext|>");
        etok_gbuf_str(&b, "<|im_start|>");
        etok_gbuf_str(&b, "<|im_end|>");
        for (int i = 0; i < 256; i++) {
            char s[8];
            byte_token(i, s);
            etok_gbuf_str(&b, s);
        }
        for (int i = 0; i < N_MERGES; i++) {
            char s[32];
            snprintf(s, sizeof s, "%s%s", k_merges[i][0], k_merges[i][1]);
            etok_gbuf_str(&b, s);
        }
        for (int i = etok_tiny_gguf_vocab_size(); i < V; i++) {
            char s[32];
            snprintf(s, sizeof s, "<|pad_%d|>", i - etok_tiny_gguf_vocab_size());
            etok_gbuf_str(&b, s);
        }
    }
    { /* token types */
        etok_gbuf_str(&b, "tokenizer.ggml.token_type");
        etok_gbuf_u32(&b, ETOK_GGUF_ARRAY);
        etok_gbuf_u32(&b, ETOK_GGUF_I32);
        etok_gbuf_u64(&b, (uint64_t)V);
        for (int i = 0; i < V; i++) etok_gbuf_u32(&b, i < N_SPECIAL || i >= etok_tiny_gguf_vocab_size() ? 3u : 1u);
    }
    { /* merges */
        etok_gbuf_str(&b, "tokenizer.ggml.merges");
        etok_gbuf_u32(&b, ETOK_GGUF_ARRAY);
        etok_gbuf_u32(&b, ETOK_GGUF_STRING);
        etok_gbuf_u64(&b, (uint64_t)N_MERGES);
        for (int i = 0; i < N_MERGES; i++) {
            char s[32];
            snprintf(s, sizeof s, "%s %s", k_merges[i][0], k_merges[i][1]);
            etok_gbuf_str(&b, s);
        }
    }
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(&b, "tokenizer.ggml.padding_token_id", 2);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", 0);
    kv_str(&b, "tokenizer.chat_template",
           "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
           "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
    /* tensor infos with aligned offsets */
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        tensor_plan *t = &tp[i];
        t->offset = off;
        off += etok_type_row_bytes(t->type, (int64_t)t->ne[0]) * t->ne[1];
        off = (off + align - 1) / align * align;
        etok_gbuf_str(&b, t->name);
        etok_gbuf_u32(&b, (uint32_t)t->n_dims);
        for (int dd = 0; dd < t->n_dims; dd++) etok_gbuf_u64(&b, t->ne[dd]);
        etok_gbuf_u32(&b, t->type);
        etok_gbuf_u64(&b, t->offset);
    }
    etok_gbuf_pad(&b, align);
    size_t data_start = b.n;
    for (int i = 0; i < n_t; i++) {
        tensor_plan *t = &tp[i];
        while (b.n < data_start + t->offset) etok_gbuf_bytes(&b, "", 1);
        size_t rb = etok_type_row_bytes(t->type, (int64_t)t->ne[0]);
        uint8_t *row = malloc(rb);
        for (uint64_t r = 0; r < t->ne[1]; r++) {
            etok_quantize_row(t->type, t->values + r * t->ne[0], row, (int64_t)t->ne[0]);
            etok_gbuf_bytes(&b, row, rb);
        }
        free(row);
    }
    etok_gbuf_pad(&b, align);
    for (int i = 0; i < n_t; i++) free(tp[i].values);
    free(tp);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (f) {
        rc = fwrite(b.p, 1, b.n, f) == b.n ? 0 : -1;
        if (fclose(f) != 0) rc = -1;
    }
    if (rc) fprintf(stderr, "synth_gguf: cannot write %s\n", path);
    etok_gbuf_free(&b);
    return rc;
}
