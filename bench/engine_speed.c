/* engine_speed.c — prefill and decode speed of the built-in engine, llama-bench style
 * (decode "tg" starts from an empty context, as llama-bench's tg test does; "tg@d" decodes
 * after the prompt, which reads the prompt's KV cache every step):
 * prefill = one forward pass over an N-token prompt (tokens/s), decode = M single-token
 * steps after it (tokens/s), R repetitions; prints mean and standard deviation, plus the
 * modelled bytes and FLOPs per decode token (from the model's shapes; an estimate of the
 * work, not a measurement of traffic). Beside each rate: the process's CPU time per token
 * (user + system, CLOCK_PROCESS_CPUTIME_ID, all threads): on a shared machine the CPU time of a
 * single-threaded run (-t 1) is steadier than the wall-clock rate, as waiting for the CPU
 * does not count.
 * usage: bench_engine_speed [-m MODEL] [-t THREADS] [-p 512] [-n 128] [-r 5] [--kv 16] [-w FORMAT] (--help) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/hugemem.h"
#include "engine/quant.h"
#include "etok/engine.h"

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* Decode up to n_gen tokens of the engine's one sequence: wall-clock tokens/s and process CPU
 * ms per token. -1 with err on an engine error. */
static int decode(etok_engine *e, int n_gen, double *rate, double *cpu_ms, etok_err *err) {
    etok_step_result st;
    const double t1 = etok_mono_s(), c1 = cpu_s();
    int n = 0;
    while (n < n_gen) {
        if (etok_engine_step(e, &st, err)) return -1;
        n += st.decode_tokens;
        if (st.n_events && st.events[0].finished) break;
    }
    const double t2 = etok_mono_s(), c2 = cpu_s();
    *rate = n / (t2 - t1);
    *cpu_ms = (c2 - c1) * 1e3 / n;
    return 0;
}

int main(int argc, char **argv) {
    const char *model = getenv("ETOK_MODEL") ? getenv("ETOK_MODEL") : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const char *weights = NULL;
    int threads = 2, n_prompt = 512, n_gen = 128, reps = 5, kv = 16;
    const char *usage = "usage: %s [-m MODEL] [-t THREADS] [-p N] [-n N] [-r R] [--kv 32|16|8] [-w FORMAT]\n"
                        "  prefill (pp N), decode from an empty context (tg N) and after the prompt (tg N@dN),\n"
                        "  wall-clock tokens/s and process CPU ms/token, mean +- sd of R runs after a warm-up;\n"
                        "  -w: the weights re-encoded at load, as etok bench --weights (q8_0, q4_0, ...)\n";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf(usage, argv[0]);
            return 0;
        }
    if (argc % 2 == 0) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) model = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--kv")) kv = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-w")) weights = argv[i + 1];
        else {
            fprintf(stderr, usage, argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 100 || n_prompt < 1 || n_gen < 0 || threads < 0 || (kv != 32 && kv != 16 && kv != 8)) {
        fprintf(stderr, "%s: need 1 <= R <= 100, N >= 1 for -p, N >= 0 for -n, THREADS >= 0, --kv 32, 16 or 8\n", argv[0]);
        return 2;
    }
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(model, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    if (weights && etok_model_set_weights(m, weights, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    const etok_model_info *in = etok_model_get_info(m);
    etok_engine_opts o = {threads, 1, n_prompt + n_gen + 8, n_prompt, kv, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    if (!e) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    uint64_t s = 12345;
    for (int i = 0; i < n_prompt; i++) { /* random ordinary tokens, like llama-bench */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = 100 + (int32_t)((s >> 33) % (uint64_t)(in->vocab_size - 200));
    }
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    double *tg0 = calloc((size_t)reps, sizeof *tg0);
    double *cpp = calloc((size_t)reps, sizeof *cpp), *ctg = calloc((size_t)reps, sizeof *ctg),
           *ctg0 = calloc((size_t)reps, sizeof *ctg0); /* CPU ms per token */
    double *depth = calloc((size_t)reps, sizeof *depth), *cdepth = calloc((size_t)reps, sizeof *cdepth);
    if (!prompt || !pp || !tg || !tg0 || !cpp || !ctg || !ctg0 || !depth || !cdepth) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    /* Each round decodes from an empty context (llama-bench's tg), then prefills the prompt and
     * decodes after it (pp, tg at depth): the two decodes of a round share the moment, so their
     * ratio (the depth goal's figure) is paired against a shared machine's drift. r = -1: warm-up. */
    for (int r = -1; r < reps; r++) {
        int id = etok_engine_add(e, prompt, 1, n_gen + 1, NULL, &err);
        if (id < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        etok_step_result st;
        double rate, cpu_ms;
        if (etok_engine_step(e, &st, &err)) return 1; /* the 1-token prompt */
        if (decode(e, n_gen, &rate, &cpu_ms, &err)) return 1;
        etok_engine_remove(e, id);
        if (r >= 0) {
            tg0[r] = rate;
            ctg0[r] = cpu_ms;
        }
        id = etok_engine_add(e, prompt, n_prompt, n_gen + 1, NULL, &err);
        if (id < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t0 = etok_mono_s(), c0 = cpu_s();
        if (etok_engine_step(e, &st, &err)) return 1; /* the whole prompt (chunk = n_prompt) */
        double t1 = etok_mono_s(), c1 = cpu_s();
        if (decode(e, n_gen, &rate, &cpu_ms, &err)) return 1;
        etok_engine_remove(e, id);
        if (r >= 0) {
            pp[r] = n_prompt / (t1 - t0);
            tg[r] = rate;
            cpp[r] = (c1 - c0) * 1e3 / n_prompt;
            ctg[r] = cpu_ms;
            depth[r] = tg[r] / tg0[r];
            cdepth[r] = ctg0[r] / ctg[r];
        }
    }
    double pm, ps, tm, ts, t0m, t0s;
    stats(pp, reps, &pm, &ps);
    stats(tg, reps, &tm, &ts);
    stats(tg0, reps, &t0m, &t0s);
    printf("etok model=%s threads=%d kv=%s kernel_level=%s (detected %s)\n", in->name, threads,
           kv == 8 ? "Q8_0" : kv == 32 ? "F32" : "F16", etok_isa_name(etok_isa_active()),
           etok_isa_name(etok_isa_detected()));
    char thp[32];
    printf("etok weights placed at load: %.1f MB, %.1f MB of them in 2 MiB pages (transparent huge pages: %s, %s)\n",
           in->weight_placed_bytes / 1e6, in->weight_huge_bytes / 1e6, etok_thp_mode(thp, sizeof thp),
           etok_hugemem_wanted() ? "asked for" : "not asked for, " ETOK_HUGEMEM_ENV "=0");
    printf("etok pp%d: %.2f +- %.2f tokens/s (measured, %d runs)\n", n_prompt, pm, ps, reps);
    printf("etok tg%d: %.2f +- %.2f tokens/s (measured, %d runs, from an empty context)\n", n_gen, t0m, t0s, reps);
    printf("etok tg%d@d%d: %.2f +- %.2f tokens/s (measured, %d runs, after the %d-token prompt)\n", n_gen, n_prompt,
           tm, ts, reps, n_prompt);
    double cm, cs;
    stats(cpp, reps, &cm, &cs);
    printf("etok cpu pp%d: %.3f +- %.3f ms/token (process CPU time, %d runs)\n", n_prompt, cm, cs, reps);
    stats(ctg0, reps, &cm, &cs);
    printf("etok cpu tg%d: %.3f +- %.3f ms/token (process CPU time, %d runs, from an empty context)\n", n_gen, cm, cs, reps);
    stats(ctg, reps, &cm, &cs);
    printf("etok cpu tg%d@d%d: %.3f +- %.3f ms/token (process CPU time, %d runs, after the %d-token prompt)\n", n_gen,
           n_prompt, cm, cs, reps, n_prompt);
    stats(depth, reps, &cm, &cs);
    printf("etok depth ratio tg%d@d%d / tg%d: %.3f +- %.3f (wall clock, each run's pair of decodes, %d runs)\n", n_gen,
           n_prompt, n_gen, cm, cs, reps);
    stats(cdepth, reps, &cm, &cs);
    printf("etok cpu depth ratio tg%d@d%d / tg%d: %.3f +- %.3f (process CPU time per token, paired, %d runs)\n", n_gen,
           n_prompt, n_gen, cm, cs, reps);
    double wb = etok_model_weight_bytes(m), kvb = etok_model_kv_bytes_per_token(m, kv);
    double pos = n_prompt + n_gen / 2.0;
    printf("etok decode bytes/token (model estimate): %.1f MB weights + %.2f MB KV at position %.0f\n", wb / 1e6,
           kvb * pos / 1e6, pos);
    printf("etok decode FLOPs/token (model estimate): %.3f GFLOP at position %.0f\n",
           etok_model_flops_per_token(m, (int)pos) / 1e9, pos);
    printf("etok achieved decode: %.2f GB/s weights+KV, %.2f GFLOP/s (estimates from the shapes x measured rate)\n",
           tm * (wb + kvb * pos) / 1e9, tm * etok_model_flops_per_token(m, (int)pos) / 1e9);
    free(prompt);
    free(pp);
    free(tg);
    free(tg0);
    free(cpp);
    free(ctg);
    free(ctg0);
    free(depth);
    free(cdepth);
    etok_engine_free(e);
    etok_model_free(m);
    return 0;
}
