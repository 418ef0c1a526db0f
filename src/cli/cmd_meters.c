/* cmd_meters.c — `etok meters [--json]`: every energy meter etok knows, whether it is
 * available on this machine and, if not, why (missing / permission / no driver), with its
 * source, boundary, domains, resolution and wrap range. Argument parsing and printing only;
 * detection lives in src/meter/. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/meter.h"
#include "etok/util.h"

static void help(FILE *f) {
    fprintf(f,
            "usage: etok meters [--json] [--extlog FILE] [--cpu-tdp IDLE_W:MAX_W]\n\n"
            "List every energy meter etok knows and whether it can be read here.\n"
            "  --json            machine-readable output (an array of objects)\n"
            "  --extlog FILE     also check an external power-meter log (CSV timestamp,watts or JSON lines)\n"
            "  --cpu-tdp I:M     per-package idle and max watts for the estimate meter\n"
            "Roots: ETOK_SYSFS_ROOT (default /sys), ETOK_PROC_ROOT (/proc), ETOK_NVML_LIB (libnvidia-ml.so.1),\n"
            "ETOK_AMDSMI_LIB (libamd_smi.so, then /opt/rocm/lib/libamd_smi.so).\n"
            "Sources: counter (hardware energy accumulator), power (sampled power, integrated),\n"
            "external (a power-meter log), estimate (a model, never a measurement).\n"
            "exit codes: 0 ok (also when no meter is available: the listing says why), 1 failure, 2 usage\n");
}

int cmd_meters(int argc, char **argv) {
    int json = 0;
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help(stdout);
            return ETOK_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--extlog") && i + 1 < argc) {
            cfg.extlog_path = argv[++i];
        } else if (!strcmp(argv[i], "--cpu-tdp") && i + 1 < argc) {
            if (etok_cli_cpu_tdp("meters", argv[++i], &cfg.cpu_idle_w, &cfg.cpu_max_w) != 0) return ETOK_EXIT_USAGE;
        } else {
            fprintf(stderr, "etok meters: unknown option '%s' (etok meters --help)\n", argv[i]);
            return ETOK_EXIT_USAGE;
        }
    }
    etok_meter_status st[16];
    int n = etok_meters_list(st, 16, &cfg);
    int n_avail = 0, only_estimate = 1;
    for (int i = 0; i < n; i++)
        if (st[i].available) {
            n_avail++;
            if (st[i].source != ETOK_SOURCE_ESTIMATE) only_estimate = 0;
        }
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(st[i].name));
            json_object_set_new(o, "available", json_boolean(st[i].available));
            json_object_set_new(o, "why", st[i].available ? json_null() : json_string(st[i].why));
            json_object_set_new(o, "source", json_string(etok_source_name(st[i].source)));
            json_object_set_new(o, "boundary", json_string(etok_boundary_name(st[i].boundary)));
            json_object_set_new(o, "domains", json_string(st[i].domains));
            json_object_set_new(o, "resolution_si", json_real(st[i].resolution_si));
            json_object_set_new(o, "wrap_range_j", json_real(st[i].wrap_range_j));
            json_array_append_new(arr, o);
        }
        char *text = json_dumps(arr, JSON_INDENT(2));
        json_decref(arr);
        if (!text) return ETOK_EXIT_FAIL;
        printf("%s\n", text);
        free(text);
        return ETOK_EXIT_OK;
    }
    printf("%-9s %-10s %-9s %-7s %s\n", "METER", "AVAILABLE", "SOURCE", "BOUNDARY", "DOMAINS / WHY NOT");
    for (int i = 0; i < n; i++) {
        printf("%-9s %-10s %-9s %-7s ", st[i].name, st[i].available ? "yes" : "no", etok_source_name(st[i].source),
               etok_boundary_name(st[i].boundary));
        if (st[i].available) {
            printf("%s", st[i].domains);
            if (st[i].resolution_si > 0) printf("  (resolution %.3g %s", st[i].resolution_si,
                                                st[i].source == ETOK_SOURCE_COUNTER ? "J" : "W");
            if (st[i].resolution_si > 0 && st[i].wrap_range_j > 0) printf(", wraps every %.0f J", st[i].wrap_range_j);
            if (st[i].resolution_si > 0) printf(")");
            printf("\n");
        } else {
            printf("%s\n", st[i].why);
        }
    }
    if (n_avail == 0) {
        printf("\nNo meter can be read here: etok cannot report energy on this machine.\n");
    } else if (only_estimate) {
        printf("\nOnly the `estimate` meter is available here: no hardware energy counter or power meter exists.\n"
               "Energy figures will be a MODEL (CPU busy time x a power model, with the error band above),\n"
               "labelled `estimate` everywhere, never a measurement.\n");
    }
    return ETOK_EXIT_OK;
}
