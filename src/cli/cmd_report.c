/* cmd_report.c — `etok report RUN.json [--format text|md|json|csv] [-o FILE]`: re-analyse a
 * saved run record offline. Thin: load (record/), analyse (analyse/energy.c), render
 * (render/run_summary.c). Argument parsing lives here and nowhere else. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "etok/energy.h"
#include "etok/metrics.h"
#include "etok/report.h"
#include "etok/record.h"
#include "etok/run_summary.h"
#include "etok/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok report RUN.json [--format text|md|json|csv|html] [-o FILE]\n"
            "\n"
            "Re-analyse a run record written by `etok run` (or bench/serve) offline: energy per\n"
            "meter and in total (boundary, source, uncertainty), idle power, dynamic energy,\n"
            "J/token, PUE-adjusted power, warnings and faults.\n"
            "\n"
            "  --format F   text (default), md (Markdown), json, csv, html (bench/serve records)\n"
            "\n"
            "For a record with requests (etok bench, etok serve) the full reporting set is rendered\n"
            "(docs/METRICS.md §3, docs/REPORT.md): J/output-token ... goodput, with units, sources and\n"
            "uncertainties; json then is run.json (the record plus a \"metrics\" object), html the\n"
            "report page.\n"
            "  -o FILE      write the report to FILE instead of stdout\n"
            "  -h, --help   this help\n"
            "\n"
            "exit codes: 0 ok, 2 usage, 3 bad record, 5 output not writable\n");
}

int cmd_report(int argc, char **argv) {
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "text", *out_path = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': out_path = optarg; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok report: unknown or incomplete option '%s' (etok report --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (strcmp(format, "text") && strcmp(format, "md") && strcmp(format, "markdown") && strcmp(format, "json") &&
        strcmp(format, "csv") && strcmp(format, "html")) {
        fprintf(stderr, "etok report: unknown format '%s' (text, md, json, csv, html)\n", format);
        return ETOK_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "etok report: give exactly one run record (etok report RUN.json)\n");
        return ETOK_EXIT_USAGE;
    }
    const char *path = argv[optind];

    etok_record rec;
    etok_err err = {0};
    if (etok_record_load(&rec, path, &err) != 0) {
        fprintf(stderr, "etok report: %s\n", err.msg);
        etok_record_free(&rec);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    etok_energy_summary sum;
    if (etok_energy_summarize(&rec, &sum) != 0) {
        fprintf(stderr, "etok report: %s: cannot analyse (invalid window or out of memory)\n", path);
        etok_energy_summary_free(&sum);
        etok_record_free(&rec);
        return ETOK_EXIT_INPUT;
    }

    /* rendered into memory, then written in one piece: a failure leaves no partial report
     * and never replaces what -o points at with a truncated one (util.h) */
    char *buf = NULL;
    size_t buf_len = 0;
    FILE *f = open_memstream(&buf, &buf_len);
    if (!f) {
        fprintf(stderr, "etok report: out of memory\n");
        etok_energy_summary_free(&sum);
        etok_record_free(&rec);
        return ETOK_EXIT_FAIL;
    }
    int rc = ETOK_EXIT_OK;
    int has_requests = rec.n_requests > 0 || !strcmp(rec.kind, "bench") || !strcmp(rec.kind, "serve");
    etok_metrics met;
    memset(&met, 0, sizeof met);
    int have_met = 0;
    if (has_requests || !strcmp(format, "html")) {
        if (etok_metrics_compute(&rec, NULL, &met, &err) != 0) {
            fprintf(stderr, "etok report: %s: %s\n", path, err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
            goto close_out;
        }
        have_met = 1;
    }
    if (have_met && strcmp(format, "csv")) {
        char *txt = !strcmp(format, "json") ? etok_report_json(&rec, &met)
                    : !strcmp(format, "html") ? etok_report_html(&rec, &met)
                                              : etok_report_md(&rec, &met, 0);
        if (!txt || fputs(txt, f) < 0) {
            fprintf(stderr, "etok report: out of memory rendering the report\n");
            rc = ETOK_EXIT_FAIL;
        }
        if (txt && !strcmp(format, "json")) fputc('\n', f);
        free(txt);
    } else if (!strcmp(format, "json")) {
        json_t *j = etok_run_summary_json(&rec, &sum);
        if (!j || json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) != 0) {
            fprintf(stderr, "etok report: out of memory rendering the report\n");
            rc = ETOK_EXIT_FAIL;
        } else {
            fputc('\n', f);
        }
        json_decref(j);
    } else if (!strcmp(format, "csv")) {
        etok_run_summary_csv(f, &rec, &sum);
    } else if (!strcmp(format, "text")) {
        etok_run_summary_text(f, &rec, &sum, path);
    } else {
        etok_run_summary_markdown(f, &rec, &sum);
    }
close_out:
    etok_metrics_free(&met);
    if (fclose(f) != 0 || !buf) {
        fprintf(stderr, "etok report: out of memory rendering the report\n");
        if (rc == ETOK_EXIT_OK) rc = ETOK_EXIT_FAIL;
    } else if (rc == ETOK_EXIT_OK && etok_write_file_atomic(out_path ? out_path : "-", buf, buf_len, &err) != 0) {
        fprintf(stderr, "etok report: %s\n", err.msg);
        rc = ETOK_EXIT_OUTPUT;
    }
    free(buf);
    etok_energy_summary_free(&sum);
    etok_record_free(&rec);
    return rc;
}
