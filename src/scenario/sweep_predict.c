/* sweep_predict.c (I/O beside the model) — the TPF prediction of one sweep point against the first (compare.h
 * etok_sweep_lever_prediction), kept apart from cmd_sweep.c because the sweep report's types
 * and the TPF's share names (etok_sweep_point, etok_sweep_run). Reads the two run records: a
 * --gpu-power-limit difference goes to etok_gpu_power_lever_predict (P0 from the first point's
 * first run), anything else to etok_lever_predict with the catalog model (analyse/lever_predict.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "etok/compare.h"
#include "etok/lever_predict.h"
#include "etok/record.h"
#include "scenario/cal_io.h"

/* A run record from a directory holding run.json, or a file; 0 or -1. */
static int load_record(const char *path, etok_record *r) {
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/run.json", path);
    else snprintf(file, sizeof file, "%s", path);
    etok_err e = {0};
    etok_record_init(r);
    return etok_record_load(r, file, &e);
}

void etok_sweep_lever_prediction(const char *base_dir, const char *cand_dir, const double mr[3], const double mj[3],
                                 etok_lever_prediction *out) {
    memset(out, 0, sizeof *out);
    static etok_compare_cand cc;
    memset(&cc, 0, sizeof cc);
    const double *m[2] = {mr, mj};
    const char *nm[2] = {"token_rate_tps", "joules_per_output_token"};
    for (int k = 0; k < 2; k++) {
        etok_compare_delta *dl = &cc.deltas[cc.n_deltas++];
        snprintf(dl->name, sizeof dl->name, "%s", nm[k]);
        dl->d.rel = m[k][0];
        dl->d.rel_lo = m[k][1];
        dl->d.rel_hi = m[k][2];
        dl->valid = isfinite(m[k][0]);
    }
    {
        /* the GPU power limit: engine and --endpoint runs alike */
        static etok_record rb, rc;
        int okb = load_record(base_dir, &rb) == 0, okc = okb && load_record(cand_dir, &rc) == 0;
        int handled = 0;
        if (okc) {
            const etok_record *b1[1] = {&rb}, *c1[1] = {&rc};
            handled = etok_gpu_power_lever_predict(b1, 1, c1, 1, &cc, out);
        }
        etok_record_free(&rb);
        if (okb) etok_record_free(&rc);
        if (handled) return;
    }
    static etok_cal_run base, cand;
    etok_err e = {0};
    if (etok_cal_load_run(base_dir, &base, NULL, 0, &e) || etok_cal_load_run(cand_dir, &cand, NULL, 0, &e)) return;
    static etok_model_arch model;
    if (etok_cal_find_model(&base, NULL, &model, &e)) {
        out->present = 1;
        snprintf(out->why, sizeof out->why, "no prediction: %.200s", e.msg);
        return;
    }
    static etok_hw_spec hw;
    etok_cal_roofs(&base, &hw);
    if (etok_lever_predict(&base, &cand, &hw, &model, &cc, out, &e)) {
        memset(out, 0, sizeof *out);
        out->present = 1;
        snprintf(out->why, sizeof out->why, "no prediction: %.200s", e.msg);
    }
}
