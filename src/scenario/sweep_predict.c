/* sweep_predict.c (I/O beside the model) — the TPF prediction of one sweep point against the first (compare.h
 * etok_sweep_lever_prediction), kept apart from cmd_sweep.c because the sweep report's types
 * and the TPF's share names (etok_sweep_point, etok_sweep_run). Reads the two run records,
 * finds the catalog model, and calls etok_lever_predict (analyse/lever_predict.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "etok/compare.h"
#include "etok/lever_predict.h"
#include "scenario/cal_io.h"

void etok_sweep_lever_prediction(const char *base_dir, const char *cand_dir, const double mr[3], const double mj[3],
                                 etok_lever_prediction *out) {
    memset(out, 0, sizeof *out);
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
    if (etok_lever_predict(&base, &cand, &hw, &model, &cc, out, &e)) {
        memset(out, 0, sizeof *out);
        out->present = 1;
        snprintf(out->why, sizeof out->why, "no prediction: %.200s", e.msg);
    }
}
