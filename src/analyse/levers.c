/* levers.c — named what-if transformations of a TPF scenario (METRICS.md §1 Phi_system and
 * the lever list of docs/TPF.md). Each lever is a pure edit of the scenario with a one-line rationale
 * and a source; the model (tpf.c) then shows what moved. Owns: the lever table and parsing of
 * "NAME" / "NAME=VALUE". Does not own: evaluation or printing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/parse.h"
#include "etok/tpf.h"

static const etok_lever_info LEVERS[] = {
    {"fp8", 0, "FP8 weights and activations: half the weight bytes of bf16 and the FP8 tensor-core peak",
     "Micikevicius et al., FP8 Formats for Deep Learning, arXiv:2209.05433"},
    {"int8", 0, "INT8 weights and activations (W8A8): half the weight bytes of bf16 and the INT8 tensor-core peak",
     "Xiao et al., SmoothQuant, arXiv:2211.10438"},
    {"int4", 0, "4-bit weights with fp16 group scales (W4A16, g128): ~3.9x fewer weight bytes, compute stays bf16",
     "Lin et al., AWQ, arXiv:2306.00978"},
    {"kv-int8", 0, "8-bit KV cache: half the KV bytes read and stored per token of context",
     "Hooper et al., KVQuant, arXiv:2401.18079"},
    {"kv-fp8", 0, "FP8 (e4m3) KV cache: half the KV bytes read and stored per token of context",
     "vLLM documentation, Quantized KV Cache (docs.vllm.ai/en/latest/features/quantization/quantized_kvcache.html)"},
    {"mla", 0, "Multi-head latent attention: cache a 4*d_h latent + d_h/2 rope key per layer instead of 2*n_kv*d_h",
     "DeepSeek-AI, DeepSeek-V2, arXiv:2405.04434; Meng et al., TransMLA, arXiv:2502.07864"},
    {"window", 1, "Sliding-window attention of N tokens: attention FLOPs and KV cache stop growing past N",
     "Jiang et al., Mistral 7B, arXiv:2310.06825; Beltagy et al., Longformer, arXiv:2004.05150"},
    {"moe-topk", 1, "Route each token to K experts: active FFN parameters scale with K",
     "Fedus et al., Switch Transformers, arXiv:2101.03961"},
    {"batch", 1, "Serve N sequences per replica at once: one weight read per step serves N tokens",
     "Yu et al., Orca (OSDI 2022); Kwon et al., vLLM PagedAttention, arXiv:2309.06180"},
    {"adaptive-reasoning", 1,
     "Keep a fraction F of output tokens at the same accuracy: shorter outputs, Phi multiplied by 1/F",
     "Han et al., Token-Budget-Aware LLM Reasoning, arXiv:2412.18547"},
    {"phi", 1, "Multiply Phi_system by X: any system lever measured elsewhere as a token-rate multiplier",
     "docs/METRICS.md §1 (Liu et al., arXiv:2605.11733)"},
};
#define N_LEVERS (sizeof LEVERS / sizeof LEVERS[0])

size_t etok_lever_count(void) { return N_LEVERS; }
const etok_lever_info *etok_lever_at(size_t i) { return i < N_LEVERS ? &LEVERS[i] : NULL; }

static int parse_num(const char *lever, const char *v, double *out, etok_err *err) {
    if (!v || !*v) return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: needs a value (%s=VALUE)", lever, lever);
    etok_err e = {0};
    if (etok_parse_double(lever, v, ETOK_RANGE(-INFINITY, INFINITY), out, &e))
        return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: '%s' is not a number", lever, v);
    return 0;
}

static int need_int(const char *lever, double x, double lo, double hi, int *out, etok_err *err) {
    if (x != floor(x) || x < lo || x > hi)
        return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: must be a whole number in %.0f..%.0f (got %g)", lever, lo, hi, x);
    *out = (int)x;
    return 0;
}

int etok_lever_apply(etok_tpf_scenario *s, const char *lever, etok_err *err) {
    char name[64];
    const char *eq = strchr(lever, '=');
    size_t nlen = eq ? (size_t)(eq - lever) : strlen(lever);
    if (nlen == 0 || nlen >= sizeof name) return etok_errc(err, ETOK_EXIT_USAGE, "lever '%s': empty or too long a name", lever);
    memcpy(name, lever, nlen);
    name[nlen] = '\0';
    const char *val = eq ? eq + 1 : NULL;
    const etok_lever_info *info = NULL;
    for (size_t i = 0; i < N_LEVERS; i++)
        if (!strcmp(LEVERS[i].name, name)) info = &LEVERS[i];
    if (!info) {
        char list[512] = "";
        for (size_t i = 0; i < N_LEVERS; i++) {
            strncat(list, LEVERS[i].name, sizeof list - strlen(list) - 1);
            if (LEVERS[i].takes_arg) strncat(list, "=N", sizeof list - strlen(list) - 1);
            if (i + 1 < N_LEVERS) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return etok_errc(err, ETOK_EXIT_USAGE, "unknown lever '%s' (known: %s)", name, list);
    }
    if (info->takes_arg && !val) return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: needs a value (%s=VALUE)", name, name);
    if (!info->takes_arg && val) return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: takes no value", name);

    double x = 0;
    if (info->takes_arg && parse_num(name, val, &x, err)) return -1;
    etok_model_arch *m = &s->model;
    if (!strcmp(name, "fp8")) { s->weight_dtype = ETOK_DT_FP8; s->compute_dtype_set = 0; }
    else if (!strcmp(name, "int8")) { s->weight_dtype = ETOK_DT_INT8; s->compute_dtype_set = 0; }
    else if (!strcmp(name, "int4")) { s->weight_dtype = ETOK_DT_INT4; s->compute_dtype_set = 0; }
    else if (!strcmp(name, "kv-int8")) s->kv_dtype = ETOK_DT_INT8;
    else if (!strcmp(name, "kv-fp8")) s->kv_dtype = ETOK_DT_FP8;
    else if (!strcmp(name, "mla")) {
        if (m->kv_lora_rank > 0) return etok_errc(err, ETOK_EXIT_USAGE, "lever mla: model %s already uses MLA", m->name);
        int dh = m->head_dim > 0 ? m->head_dim : m->d_model / m->n_heads;
        m->kv_lora_rank = 4 * dh;
        m->qk_rope_head_dim = dh / 2 > 0 ? dh / 2 : 1;
        m->qk_nope_head_dim = dh;
        m->v_head_dim = dh;
        m->q_lora_rank = 0;
    } else if (!strcmp(name, "window")) {
        if (need_int(name, x, 1, etok_tpf_field_limit("model.attention_window")->range.hi, &m->attention_window, err)) return -1;
    } else if (!strcmp(name, "moe-topk")) {
        if (m->n_experts <= 0) return etok_errc(err, ETOK_EXIT_USAGE, "lever moe-topk: model %s is not a mixture of experts", m->name);
        if (need_int(name, x, 1, m->n_experts, &m->top_k, err)) return -1;
    } else if (!strcmp(name, "batch")) {
        if (need_int(name, x, 1, etok_tpf_field_limit("workload.batch")->range.hi, &s->batch, err)) return -1;
    } else if (!strcmp(name, "adaptive-reasoning")) {
        if (!(x > 0 && x <= 1)) return etok_errc(err, ETOK_EXIT_USAGE, "lever adaptive-reasoning: F must be in (0, 1] (got %g)", x);
        double out = floor(s->output_tokens * x + 0.5);
        s->output_tokens = out < 1 ? 1 : (int)out;
        s->phi_system /= x;
    } else if (!strcmp(name, "phi")) {
        if (!(x > 0)) return etok_errc(err, ETOK_EXIT_USAGE, "lever phi: X must be > 0 (got %g)", x);
        s->phi_system *= x;
    }
    /* A lever must not carry Phi past the limit a scenario file may give it. */
    etok_err le = {0};
    if (etok_tpf_check_field("phi", s->phi_system, &le))
        return etok_errc(err, ETOK_EXIT_USAGE, "lever %s: the resulting Phi %g is out of range (%s)", name, s->phi_system, le.msg);
    return 0;
}
