/* cmd_exporter.c — `etok exporter`: argument parsing and lifetime of the Prometheus exporter
 * (src/serve/exporter.c) over this node's meters (src/serve/meter_source.c). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/parse.h"
#include "etok/meter.h"
#include "etok/serve.h"
#include "etok/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok exporter [--port 9464] [--host 127.0.0.1] [--meter NAME ...] [--tokens-file FILE]\n"
            "                     [--cpu-tdp IDLE_W:MAX_W] [--rate-hz HZ]\n"
            "                     [--per-process [--per-process-hz HZ] [--no-cgroups] [--idle-power W]]\n\n"
            "Expose this node's energy meters at http://HOST:PORT/metrics for Prometheus:\n"
            "etok_energy_joules_total{meter,domain,boundary,source} (cumulative joules since start),\n"
            "etok_power_watts, etok_energy_uncertainty_joules, etok_meter_up.\n"
            "  --port N           TCP port (default 9464; 0 = any free port, printed on stderr)\n"
            "  --host ADDR        IPv4 address to bind (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "  --meter NAME       meter to open (repeatable or comma-separated): rapl, perf, hwmon, nvml, amdsmi,\n"
            "                     estimate; default: every available counter/power meter (see `etok meters`)\n"
            "  --tokens-file FILE republish cumulative token counts as etok_tokens_total{kind}: the file\n"
            "                     holds one integer (output tokens) or lines 'input N' / 'output N',\n"
            "                     rewritten by the node's engine; re-read at every scrape\n"
            "  --cpu-tdp I:M      idle and max watts per package for the estimate meter\n"
            "  --rate-hz HZ       meter sampling rate (default 10)\n"
            "  --per-process      also etok_process_energy_joules_total{pid,comm} and\n"
            "                     etok_cgroup_energy_joules_total{cgroup}: the energy split by each process's\n"
            "                     (cgroup v2 cgroup's) share of busy CPU time per interval, an ATTRIBUTION\n"
            "                     MODEL (docs/PROMETHEUS.md), with the unattributed rest as its own series\n"
            "  --per-process-hz HZ  its update rate (default 1)\n"
            "  --no-cgroups       processes only (no cgroup walk)\n"
            "  --idle-power W     the device's idle power: the free cores' idle stays unattributed\n"
            "                     (default: not known, the whole energy is split by CPU time)\n"
            "Fleet J/token in PromQL (docs/PROMETHEUS.md):\n"
            "  sum(rate(etok_energy_joules_total[1m])) / sum(rate(etok_tokens_total{kind=\"output\"}[1m]))\n"
            "SIGINT/SIGTERM stop it cleanly.\n"
            "exit codes: 0 ok (stopped by a signal), 1 failure (cannot bind), 2 usage, 4 meter permission\n");
}

int cmd_exporter(int argc, char **argv) {
    etok_exporter_opts o = {.port = 9464};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    etok_cli_meters meters = {.n_names = 0};
    int no_cgroups = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return ETOK_EXIT_OK;
        } else if (!strcmp(a, "--port") && has) {
            etok_err e = {0};
            if (etok_parse_int("--port", argv[++i], 0, 65535, &o.port, &e)) {
                fprintf(stderr, "etok exporter: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--host") && has) {
            o.host = argv[++i];
        } else if (!strcmp(a, "--meter") && has) {
            if (etok_cli_meters_add("exporter", &meters, argv[++i]) != 0) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "--tokens-file") && has) {
            o.tokens_file = argv[++i];
        } else if (!strcmp(a, "--cpu-tdp") && has) {
            if (etok_cli_cpu_tdp("exporter", argv[++i], &cfg.cpu_idle_w, &cfg.cpu_max_w) != 0) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "--per-process")) {
            o.per_process = 1;
            o.per_process_cgroups = 1;
        } else if (!strcmp(a, "--no-cgroups")) {
            no_cgroups = 1;
        } else if (!strcmp(a, "--per-process-hz") && has) {
            etok_err e = {0};
            double hz;
            if (etok_parse_double("--per-process-hz", argv[++i], ETOK_RANGE_POS(100), &hz, &e)) {
                fprintf(stderr, "etok exporter: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
            o.per_process_period_s = 1 / hz;
        } else if (!strcmp(a, "--idle-power") && has) {
            etok_err e = {0};
            if (etok_parse_double("--idle-power", argv[++i], ETOK_RANGE_POS(1e6), &o.idle_power_w, &e)) {
                fprintf(stderr, "etok exporter: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--rate-hz") && has) {
            etok_err e = {0};
            if (etok_parse_double("--rate-hz", argv[++i], ETOK_RANGE_POS(1000), &cfg.rate_hz, &e)) {
                fprintf(stderr, "etok exporter: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "etok exporter: unknown option or missing value '%s' (etok exporter --help)\n", a);
            return ETOK_EXIT_USAGE;
        }
    }
    if (!o.per_process && (no_cgroups || o.per_process_period_s > 0 || o.idle_power_w > 0)) {
        fprintf(stderr, "etok exporter: --per-process-hz, --no-cgroups and --idle-power need --per-process\n");
        return ETOK_EXIT_USAGE;
    }
    if (no_cgroups) o.per_process_cgroups = 0;
    cfg.names = etok_cli_meters_names(&meters);
    cfg.n_names = meters.n_names;
    cfg.live_only = 1; /* a daemon: live counters only, no growing sample traces */

    /* signals are taken synchronously with sigwait (no handler, no global state); block them
     * before any thread starts so every thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    etok_err err = {0};
    etok_meter_source *ms = etok_meter_source_open(&cfg, &o.energy, &err);
    if (!ms) {
        fprintf(stderr, "etok exporter: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    etok_exporter *x = etok_exporter_start(&o, &err);
    if (!x) {
        fprintf(stderr, "etok exporter: %s\n", err.msg);
        etok_meter_source_close(ms);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    fprintf(stderr, "etok exporter: listening on http://%s:%d/metrics\n", o.host ? o.host : "127.0.0.1", etok_exporter_port(x));
    fprintf(stderr, "etok exporter: energy from %s\n", etok_meter_source_describe(ms));
    if (o.tokens_file) fprintf(stderr, "etok exporter: tokens from %s\n", o.tokens_file);
    if (o.per_process)
        fprintf(stderr, "etok exporter: per-process%s energy every %g s (an attribution model: share of busy CPU time)\n",
                o.per_process_cgroups ? " and per-cgroup" : "", o.per_process_period_s > 0 ? o.per_process_period_s : 1.0);
    fflush(stderr);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "etok exporter: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    etok_exporter_stop(x);
    etok_meter_source_close(ms);
    return ETOK_EXIT_OK;
}
