/* record.h — the run record: everything a run observed, and nothing computed from it.
 *
 * drive -> record -> analyse -> render. Drivers (etok run, etok bench, etok serve) fill a
 * record; record.c saves/loads it as JSON (docs/record.schema.json, `schema_version`);
 * analyse/ computes every METRICS.md figure from it as pure functions.
 *
 * Times are seconds on one monotonic clock, relative to the record's t = 0 (`t0_wall_s`
 * gives the wall-clock time of t = 0, so external logs can be aligned). */
#ifndef ETOK_RECORD_H
#define ETOK_RECORD_H

#include <stddef.h>

#include "etok/util.h"

#define ETOK_RECORD_SCHEMA_VERSION 1

typedef enum { ETOK_SOURCE_COUNTER, ETOK_SOURCE_POWER, ETOK_SOURCE_EXTERNAL, ETOK_SOURCE_ESTIMATE } etok_source;
typedef enum { ETOK_BOUNDARY_DEVICE, ETOK_BOUNDARY_NODE, ETOK_BOUNDARY_FACILITY } etok_boundary;

const char *etok_source_name(etok_source s);     /* "counter", "power", "external", "estimate" */
const char *etok_boundary_name(etok_boundary b); /* "device", "node", "facility" */
int etok_source_parse(const char *s, etok_source *out);
int etok_boundary_parse(const char *s, etok_boundary *out);

/* One reading: a raw counter value (in the trace's raw unit) or a power sample. */
typedef struct {
    double t_s;
    double raw;
} etok_sample;

/* The readings of one domain of one meter over the run (idle baseline included). */
typedef struct {
    char meter[32];        /* "rapl", "perf", "hwmon", "nvml", "extlog", "estimate" */
    char domain[96];       /* "package-0", "dram-0", "amdgpu/power1", "gpu0" */
    etok_source source;
    etok_boundary boundary;
    char raw_unit[8];      /* "uJ", "mJ", "J" for counters; "uW", "mW", "W" for power */
    double scale_to_si;    /* raw * scale_to_si = joules (counter) or watts (power) */
    double wrap_range_raw; /* counter wrap range in raw units; 0 = does not wrap / unknown */
    double resolution_si;  /* J (counter) or W (power): smallest step of a reading */
    double update_period_s;/* how often the hardware refreshes the value (0 = unknown) */
    double error_band;     /* relative 1-sigma model error (estimate meter); 0 for hardware */
    int summable;          /* 1: counts towards the total of its boundary (no nesting/duplicate) */
    char power_field[48];  /* nvml: which power reading was used ("instant", "average_1s") */
    size_t n_samples;
    etok_sample *samples;
} etok_trace;

/* A recorded fault: a counter that stepped backwards, a GPU lost, a gap in an external log. */
typedef struct {
    double t_s;
    char meter[32];
    char domain[96];
    char kind[32];  /* "reset", "wrap_missed", "device_lost", "gap", "stall", "short_window", ... */
    char message[256];
} etok_fault;

/* One engine step (a batched forward pass): what it computed, for the energy split. */
typedef struct {
    double t_start_s, t_end_s;
    int prefill_tokens;   /* prompt tokens processed in this step */
    int decode_tokens;    /* tokens generated in this step */
    double flops;         /* the engine's own count from the model's shapes */
    double bytes;         /* bytes of weights + KV moved */
} etok_step;

/* One request (bench, serve, endpoint). Times relative to t = 0; < 0 = never happened. */
typedef struct {
    char id[64];
    double t_send_s, t_first_token_s, t_done_s;
    int tokens_in, tokens_out;
    size_t n_token_times;
    double *token_times_s;  /* arrival time of every output token (streamed) */
    int ok;                 /* completed without a transport/engine error */
    char error[256];        /* why not, when !ok */
    int quality_checked;    /* an answer check ran */
    int quality_pass;       /* and passed */
    char *output;           /* generated text (may be NULL) */
    double energy_j;        /* attributed by the server (serve); < 0 = not attributed */
    char token_count_source[16]; /* "engine", "usage", "chunks" */
} etok_request;

/* The measured ceilings of the machine (etok probe) used for MFU/MBU. 0 = unknown. */
typedef struct {
    char name[64];
    double peak_flops;      /* FLOP/s at the precision the engine uses */
    double mem_bw_bps;      /* byte/s */
    double power_limit_w;   /* device power cap, 0 = unknown */
    char source[64];        /* "probe", "catalog:h100-sxm", ... */
} etok_hw_profile;

/* Background load (issue 17): cumulative CPU times read with the meters (src/meter/cpuload.c).
 * busy_s / total_s: the machine's busy and total CPU seconds summed over all cores
 * ($ETOK_PROC_ROOT/stat; total counts idle, iowait and steal too); own_s: CPU seconds of the
 * work being measured (see etok_cpuload.scope), < 0 when unknown. */
typedef struct {
    double t_s, busy_s, total_s, own_s;
} etok_cpu_sample;

/* One phase's averages, derived from the samples by analyse/bgload.c (kept in the record so
 * readers of run.json need not recompute them). Cores = CPU seconds per second. */
typedef struct {
    int valid;                    /* the phase exists and has samples covering it */
    double t_start_s, t_end_s;
    double machine_busy_cores;
    double own_busy_cores;        /* < 0: own work not known (scope "none") */
    double background_busy_cores; /* machine - own, >= 0; < 0 when own is unknown */
    double background_noise_cores;/* 1-sigma of the background over the phase's sampling intervals */
} etok_cpuload_phase;

enum { ETOK_PHASE_IDLE, ETOK_PHASE_WARMUP, ETOK_PHASE_WINDOW, ETOK_PHASE_COUNT };

typedef struct {
    int present;            /* CPU load was sampled (0 in records from before issue 17) */
    char scope[16];         /* whose time own_s is: "process" (etok itself: bench's built-in
                               engine, serve), "process_group" (etok run's command tree),
                               "pid" (--server-pid), "none" (--endpoint without it) */
    long pid;               /* the process (group) id for "process_group"/"pid"; 0 otherwise */
    int n_cpus;             /* cores in $ETOK_PROC_ROOT/stat */
    size_t n_samples;
    etok_cpu_sample *samples;
    etok_cpuload_phase phase[ETOK_PHASE_COUNT]; /* idle baseline, warm-up, window */
    int background_changed; /* 1: background moved between baseline and window beyond the
                               threshold / baseline noise; 0: did not; -1: not known */
} etok_cpuload;

/* The grid carbon intensity a run's CO2e figures use (issue 12, docs/CARBON.md). */
typedef struct {
    int present;                  /* 0: no --grid-intensity / --region given */
    double g_per_kwh;             /* gCO2e per kWh, > 0 */
    double uncertainty_g_per_kwh; /* 1-sigma; NAN = the source states none */
    char region[16];              /* catalog code (data/grid/CODE.json); "" for --grid-intensity */
    char basis[16];               /* "location" (catalog annual average) or "user-given" */
    int year;                     /* the value's year; 0 = not known */
    char source[320];             /* where the value comes from */
} etok_grid;

typedef struct {
    int schema_version;
    char tool_version[32];
    char kind[16];          /* "run", "bench", "serve" */
    char command[1024];     /* what was run (etok run -- CMD) or the bench configuration */
    char host[128], kernel[128], cpu_model[128];
    int cpu_count;
    double t0_wall_s;       /* wall-clock seconds since the epoch at t = 0 */

    /* Windows, relative to t = 0. idle_* both 0 when no idle baseline was taken. */
    double idle_start_s, idle_end_s;
    double window_start_s, window_end_s;

    int partial;            /* interrupted (SIGINT) or aborted: figures cover what was seen */
    char stop_reason[32];   /* why the run ended early or failed; "" = ran as asked. Values:
                               "interrupted" (SIGINT/SIGTERM), "endpoint_unreachable" (bench
                               --endpoint: the server stopped accepting connections),
                               "all_requests_failed", "error" (the driver failed) */
    int exit_status;        /* of the wrapped command (etok run); -1 if not applicable */

    /* Configuration that analysis needs (the rest is free-form in config_json). */
    double pue;             /* 1 when not given */
    char pue_source[16];    /* "assumed" (user-given or default), "measured" */
    double price_per_kwh;   /* currency per kWh, for energy_cost_per_mtok; 0 = not given */
    double quality_target;  /* q*: minimum accuracy, 0..1; < 0 = none */
    double ttft_slo_s, tpot_slo_s; /* s*; <= 0 = none */
    double deployment_utilization; /* U_dep 0..1; <= 0 = not given */
    char *config_json;      /* free-form configuration as JSON text (may be NULL) */

    /* Token totals. For bench/serve they equal the sums over requests; for `etok run`
     * they come from --tokens or --tokens-regex. tokens_known = 0 when not known. */
    int tokens_known;
    long long tokens_in, tokens_out;

    etok_hw_profile hw;

    size_t n_traces;   etok_trace *traces;
    size_t n_faults;   etok_fault *faults;
    size_t n_steps;    etok_step *steps;
    size_t n_requests; etok_request *requests;

    etok_cpuload cpuload;   /* optional ("cpu_load" in JSON) */
    etok_grid grid;         /* optional ("grid" in JSON): carbon intensity for the CO2e figures */
} etok_record;

/* Initialise with defaults (pue 1, "assumed", quality_target -1, exit_status -1, ...). */
void etok_record_init(etok_record *r);
void etok_record_free(etok_record *r);

/* Appenders (grow arrays); return a pointer to the new zeroed element or NULL on OOM. */
etok_trace *etok_record_add_trace(etok_record *r);
etok_sample *etok_trace_add_sample(etok_trace *t, double t_s, double raw);
etok_fault *etok_record_add_fault(etok_record *r, double t_s, const char *meter, const char *domain,
                                  const char *kind, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
etok_step *etok_record_add_step(etok_record *r);
etok_request *etok_record_add_request(etok_record *r);
etok_cpu_sample *etok_record_add_cpu_sample(etok_record *r);

/* JSON (record_io.c, jansson). Save writes atomically; load validates every field and
 * names the first bad one in err (exit code ETOK_EXIT_INPUT). */
int etok_record_save(const etok_record *r, const char *path, etok_err *err);
int etok_record_load(etok_record *r, const char *path, etok_err *err);
/* The record as JSON text (malloc'd), and back; used by save/load and by reports. */
char *etok_record_to_json_text(const etok_record *r);
int etok_record_from_json_text(etok_record *r, const char *text, const char *what, etok_err *err);

#endif
