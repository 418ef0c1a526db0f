/* fuzz_extlog.c — libFuzzer target for the extlog reader (an external power meter's log, CSV
 * `timestamp,watts` or JSON lines): any bytes either parse into finite, non-negative watts at
 * non-decreasing timestamps, or fail with an input error naming the file and line. A log that
 * parses is aligned to two run windows (one around the whole log, one inside it) and the
 * resulting record is summarised: no crash, samples stay in time order.
 *
 * The bytes are given through a file (an in-memory memfd, reached by its /proc/self/fd path) so
 * the harness drives the real reader — whether it slurps the file or streams it line by line —
 * through its public entry point. Built with -DETOK_FUZZ=ON (make fuzz). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "etok/energy.h"
#include "etok/record.h"
#include "meter/driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void align_once(const double *ts, const double *w, size_t n, double t0, double t_end, double gap) {
    etok_record r;
    etok_record_init(&r);
    r.t0_wall_s = t0;
    r.window_start_s = 0;
    r.window_end_s = t_end;
    etok_trace *tr = etok_record_add_trace(&r);
    if (!tr) abort();
    snprintf(tr->meter, sizeof tr->meter, "extlog");
    snprintf(tr->domain, sizeof tr->domain, "fuzz.log");
    snprintf(tr->raw_unit, sizeof tr->raw_unit, "W");
    tr->source = ETOK_SOURCE_EXTERNAL;
    tr->boundary = ETOK_BOUNDARY_NODE;
    tr->scale_to_si = 1.0;
    tr->summable = 1;
    etok_err err;
    memset(&err, 0, sizeof err);
    if (etok_extlog_align(&r, 0, ts, w, n, t_end, gap, &err) == 0) {
        const etok_trace *t = &r.traces[0];
        if (t->n_samples > n) abort();
        for (size_t i = 1; i < t->n_samples; i++)
            if (t->samples[i].t_s < t->samples[i - 1].t_s) abort();
        etok_energy_summary s;
        etok_energy_summarize(&r, &s);
        etok_energy_summary_free(&s);
    }
    etok_record_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz.log", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    double *ts = NULL, *w = NULL;
    size_t n = 0;
    etok_err err;
    memset(&err, 0, sizeof err);
    if (etok_extlog_parse(path, &ts, &w, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(ts[i]) || !isfinite(w[i]) || w[i] < 0) abort();
            if (i && ts[i] < ts[i - 1]) abort();
        }
        if (n) {
            double span = ts[n - 1] - ts[0];
            double gap = size % 2 ? 0.3 : 2.0;
            align_once(ts, w, n, ts[0] - 0.25, span + 0.5, gap);     /* the run covers the log */
            align_once(ts, w, n, ts[0] + span / 3, span / 3, gap);   /* the run inside the log */
        }
        free(ts);
        free(w);
    } else {
        if (ts || w) abort(); /* nothing handed out on failure */
        if (!strstr(err.msg, path) || err.exit_code != ETOK_EXIT_INPUT) {
            fprintf(stderr, "extlog error without path or with code %d: '%s'\n", err.exit_code, err.msg);
            abort();
        }
    }
    return 0;
}
