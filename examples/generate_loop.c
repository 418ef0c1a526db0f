/* generate_loop.c — measure a generation loop of etok's built-in engine with libetok
 * (docs/API.md): one window around the whole generation, the tokens attached, J/token printed.
 *
 *     cc generate_loop.c $(pkg-config --cflags --libs etok) -o generate_loop
 *     ./generate_loop [MODEL.gguf|-] [METERS] [MAX_TOKENS]   ("-" = the default model)
 *
 * Exit 0 ok, 1 failure, 77 no model available (tests skip). */
#include <etok/etok.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *model = argc > 1 && strcmp(argv[1], "-") ? argv[1] : NULL;
    etok_meter_options o = {0};
    o.meters = argc > 2 ? argv[2] : NULL;
    int max_tokens = argc > 3 ? atoi(argv[3]) : 16;
    char err[1024];
    etok_generator *g = etok_generator_open(model, 0, err, sizeof err);
    if (!g) {
        fprintf(stderr, "generate_loop: %s\n", err);
        return strstr(err, "no model") || strstr(err, "not found") ? 77 : 1;
    }
    etok_meter *m = etok_meter_open(&o, err, sizeof err);
    if (!m) {
        fprintf(stderr, "generate_loop: %s\n", err);
        etok_generator_close(g);
        return 1;
    }
    int rc = 1;
    etok_reading r;
    char piece[256];
    if (etok_meter_begin(m, "generate") != 0) goto out;
    int n_in = etok_generator_start(g, "What is the capital of France?", 1, max_tokens);
    if (n_in < 0) {
        fprintf(stderr, "generate_loop: %s\n", etok_generator_error(g));
        goto out;
    }
    int k;
    while ((k = etok_generator_next(g, piece, sizeof piece)) == 1) fputs(piece, stdout);
    if (k < 0) {
        fprintf(stderr, "generate_loop: %s\n", etok_generator_error(g));
        goto out;
    }
    printf("\n");
    if (etok_meter_end(m, "generate", NULL) != 0 ||
        etok_meter_set_tokens(m, "generate", etok_generator_tokens_in(g), etok_generator_tokens_out(g)) != 0 ||
        etok_meter_reading(m, "generate", &r) != 0)
        goto out;
    printf("generate: %lld tokens in, %lld out, %.3f s, %.4f J ± %.4f J, %.6f J/output-token (%s, %s boundary)\n",
           r.tokens_in, r.tokens_out, r.duration_s, r.energy_j, r.energy_uncertainty_j, r.joules_per_output_token,
           r.source, r.boundary);
    rc = r.tokens_out > 0 && r.has_energy ? 0 : 1;
out:
    if (rc) fprintf(stderr, "generate_loop: %s\n", etok_meter_error(m));
    etok_meter_close(m);
    etok_generator_close(g);
    return rc;
}
