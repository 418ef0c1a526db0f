/* isa_logits.c — the engine end to end at one kernel level, for comparing levels across
 * machines and emulators: loads a GGUF, greedily generates N tokens from a prompt with one
 * thread, and prints the kernel level, the token ids and an FNV-1a hash of every step's logits
 * (their bits). Two levels that return the same bits (avx2, avx512; docs/ENGINE.md "Kernel
 * levels") print the same hash; run it natively and under the emulator (static build:
 * -DETOK_ISA_STATIC=ON) with ETOK_ISA set, and compare the lines.
 * usage: isa_logits MODEL.gguf [PROMPT] [N]   Exit 0, 1 on an engine error, 2 usage, 3 ETOK_ISA. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant.h"
#include "etok/engine.h"

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: isa_logits MODEL.gguf [PROMPT] [N]\n");
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "The capital of France is";
    const int n_new = argc > 3 ? atoi(argv[3]) : 4;
    char msg[256];
    if (etok_isa_from_env(msg, sizeof msg)) {
        fprintf(stderr, "isa_logits: %s\n", msg);
        return 3;
    }
    etok_err err = {0};
    etok_model *m = etok_model_load(argv[1], &err);
    if (!m) {
        fprintf(stderr, "isa_logits: %s\n", err.msg);
        return 1;
    }
    int32_t toks[256];
    const int nt = etok_tokenize(m, prompt, 1, 0, toks, 256, &err);
    etok_engine_opts o = {.n_threads = 1, .max_seqs = 1, .ctx_len = 256};
    etok_engine *e = nt > 0 ? etok_engine_new(m, &o, &err) : NULL;
    etok_sampling s = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 1};
    const int id = e ? etok_engine_add(e, toks, nt, n_new, &s, &err) : -1;
    if (id < 0) {
        fprintf(stderr, "isa_logits: %s\n", nt > 0 ? err.msg : "cannot tokenize the prompt");
        etok_engine_free(e);
        etok_model_free(m);
        return 1;
    }
    etok_engine_set_ignore_eos(e, id, 1);
    const int vocab = etok_model_get_info(m)->vocab_size;
    uint64_t h = 1469598103934665603ull;
    printf("isa_logits: kernel level %s (detected %s); prompt tokens %d; tokens:", etok_isa_name(etok_isa_active()),
           etok_isa_name(etok_isa_detected()), nt);
    int rc = 0;
    while (etok_engine_active(e)) {
        etok_step_result r;
        if (etok_engine_step(e, &r, &err)) {
            fprintf(stderr, "\nisa_logits: %s\n", err.msg);
            rc = 1;
            break;
        }
        const float *lg = etok_engine_logits(e, id);
        for (int i = 0; lg && i < vocab; i++) {
            uint32_t b;
            memcpy(&b, &lg[i], 4);
            for (int k = 0; k < 4; k++) h = (h ^ ((b >> (8 * k)) & 0xFF)) * 1099511628211ull;
        }
        int done = 0;
        for (int k = 0; k < r.n_events; k++) {
            if (r.events[k].new_token >= 0) printf(" %d", r.events[k].new_token);
            done |= r.events[k].finished;
        }
        if (done) etok_engine_remove(e, id);
    }
    printf("\nisa_logits: logits hash %016llx\n", (unsigned long long)h);
    etok_engine_free(e);
    etok_model_free(m);
    return rc;
}
