/* measure_loop.c — measure a plain C loop with libetok (docs/API.md).
 *
 *     cc measure_loop.c $(pkg-config --cflags --libs etok) -o measure_loop
 *     ./measure_loop [METERS] [RUN.json]      e.g. ./measure_loop estimate run.json
 *
 * Opens a session on the meters (default: every available counter/power meter), measures one
 * window around a floating-point loop and a nested window around its second half, attaches a
 * "token" count (here: iterations / 1e6), prints energy ± uncertainty with its source and
 * boundary, and saves the session as a run record (`etok report RUN.json`). */
#include <etok/etok.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double work(long n) {
    double x = 0;
    for (long i = 1; i <= n; i++) x += sqrt((double)i) / (double)i;
    return x;
}

static void print_reading(const etok_reading *r) {
    printf("%-8s %.3f s  %.4f J ± %.4f J  (%s, %s boundary)", r->name, r->duration_s, r->energy_j,
           r->energy_uncertainty_j, r->source, r->boundary);
    if (r->tokens_out > 0) printf("  %.6f J/token", r->joules_per_output_token);
    printf("\n");
}

int main(int argc, char **argv) {
    if (etok_api_version() != ETOK_API_VERSION) {
        fprintf(stderr, "measure_loop: built for etok API %d, libetok is %d\n", ETOK_API_VERSION, etok_api_version());
        return 1;
    }
    char err[1024];
    etok_meter_options o = {0};
    o.meters = argc > 1 ? argv[1] : NULL;
    etok_meter *m = etok_meter_open(&o, err, sizeof err);
    if (!m) {
        fprintf(stderr, "measure_loop: %s\n", err);
        return 1;
    }
    long n = 40 * 1000 * 1000;
    volatile double sink = 0;
    etok_reading outer, inner;
    if (etok_meter_begin(m, "loop") != 0) goto fail;
    sink += work(n / 2);
    if (etok_meter_begin(m, "second-half") != 0) goto fail;
    sink += work(n / 2);
    if (etok_meter_end(m, "second-half", &inner) != 0) goto fail;
    if (etok_meter_end(m, "loop", NULL) != 0) goto fail;
    if (etok_meter_set_tokens(m, "loop", 0, n / 1000000) != 0) goto fail;
    if (etok_meter_reading(m, "loop", &outer) != 0) goto fail;
    print_reading(&outer);
    print_reading(&inner);
    printf("session: source %s, boundary %s (checksum %.3f)\n", etok_meter_source(m), etok_meter_boundary(m), sink);
    if (argc > 2) {
        if (etok_meter_save(m, argv[2]) != 0) goto fail;
        if (etok_meter_reading(m, "loop", &outer) != 0) goto fail;
        printf("saved %s; final: ", argv[2]);
        print_reading(&outer);
    }
    etok_meter_close(m);
    return 0;
fail:
    fprintf(stderr, "measure_loop: %s\n", etok_meter_error(m));
    etok_meter_close(m);
    return 1;
}
