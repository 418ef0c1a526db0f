/* cmd_probe.c — `etok probe [--profile FILE] [--force] [--json]`: measure (or reuse) this
 * machine's peak FLOP/s and memory bandwidth. Argument parsing and printing only; the
 * kernels and the cache live in src/probe/probe.c. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "engine/quant.h"
#include "etok/parse.h"
#include "etok/probe.h"
#include "etok/util.h"

static void help(FILE *f) {
    fprintf(f, "usage: etok probe [--profile FILE] [--force] [--json] [--threads N]\n\n"
               "Measure this machine's ceilings for MFU, MBU and the TPF: peak compute (an FMA kernel\n"
               "and the int8 dot path the engine uses, on every core) and memory bandwidth (a STREAM-like\n"
               "triad over arrays 4x the last-level cache, at least 128 MiB in all). Takes about 5 s; the profile is\n"
               "cached at $XDG_CACHE_HOME/etok/profile-<host>.json (default ~/.cache/etok/) and reused.\n"
               "  --profile FILE  read/write this profile instead of the cache\n"
               "  --force         measure again even when a profile exists\n"
               "  --json          print the profile as JSON\n"
               "  --threads N     threads for the kernels (default: every online core)\n"
               "exit codes: 0 ok, 1 failure, 2 usage, 3 bad profile file, 5 profile not writable\n");
}

int cmd_probe(int argc, char **argv) {
    const char *path = NULL;
    int force = 0, json = 0;
    etok_probe_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return ETOK_EXIT_OK;
        } else if (!strcmp(argv[i], "--profile") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--force")) {
            force = 1;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            etok_err e = {0};
            if (etok_parse_int("--threads", argv[++i], 1, 1024, &opts.threads, &e)) {
                fprintf(stderr, "etok probe: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "etok probe: unknown option '%s' (etok probe --help)\n", argv[i]);
            return ETOK_EXIT_USAGE;
        }
    }
    char *def = path ? NULL : etok_probe_default_path();
    const char *where = path ? path : def;
    etok_probe_profile p;
    etok_err err = {0};
    int measured = 0;
    if (!json && etok_stderr_is_tty()) fprintf(stderr, "etok probe: ...\r");
    if (etok_probe_get(where, force, &opts, &p, &measured, &err)) {
        fprintf(stderr, "etok probe: %s\n", err.msg);
        free(def);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    if (json) {
        char *text = etok_read_file_bounded(where, "hardware profile", ETOK_LIMIT_PROFILE, NULL, &err);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        if (o) {
            json_object_set_new(o, "path", json_string(where));
            json_object_set_new(o, "reused", json_boolean(!measured));
            json_object_set_new(o, "kernel_level_detected", json_string(etok_isa_name(etok_isa_detected())));
            json_object_set_new(o, "kernel_level_active", json_string(etok_isa_name(etok_isa_active())));
            char *s = json_dumps(o, JSON_INDENT(2));
            if (s) printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            fprintf(stderr, "etok probe: %s\n", text ? "cannot re-read the saved profile as JSON" : err.msg);
            free(text);
            free(def);
            return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
        }
        free(text);
    } else {
        time_t t = (time_t)p.measured_at_wall_s;
        char when[64] = "?";
        struct tm tmv;
        if (gmtime_r(&t, &tmv)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tmv);
        printf("hardware profile: %s\n", p.hw.name);
        printf("  %-22s %10.3g FLOP/s   (int8 dot path, 2 ops per MAC; what MFU divides by)\n", "peak compute", p.hw.peak_flops);
        printf("  %-22s %10.3g FLOP/s   (f32 FMA, %s)\n", "peak compute f32", p.peak_flops_f32, p.isa);
        printf("  %-22s %10.3g byte/s   (triad, 24 bytes per element)\n", "memory bandwidth", p.hw.mem_bw_bps);
        if (p.hw.power_limit_w > 0) printf("  %-22s %10.1f W\n", "power limit", p.hw.power_limit_w);
        else printf("  %-22s %10s     (no RAPL limit exposed)\n", "power limit", "unknown");
        printf("  %-22s %d\n", "threads", p.threads);
        printf("  %-22s %s   (detected on this CPU: %s; %s)\n", "engine kernel level", etok_isa_name(etok_isa_active()),
               etok_isa_name(etok_isa_detected()), getenv(ETOK_ISA_ENV) ? "set by ETOK_ISA" : "ETOK_ISA unset");
        printf("%s %s (measured %s in %.1f s; source: probe)\n", measured ? "measured now, saved to" : "reused",
               where, when, p.probe_duration_s);
    }
    free(def);
    return ETOK_EXIT_OK;
}
