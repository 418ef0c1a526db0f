/* scenario.h — reading the TPF catalogs (data/hardware, data/models, data/scenarios) and
 * scenario files into the pure model's types (etok/tpf.h). I/O lives here, beside the
 * model, never in it. Every error names the file and the field, with ETOK_EXIT_INPUT. */
#ifndef ETOK_SCENARIO_H
#define ETOK_SCENARIO_H

#include <stddef.h>

#include "etok/tpf.h"
#include "etok/util.h"

#define ETOK_SCENARIO_MAX_LEVERS 16

/* The catalog directory: $ETOK_DATA_DIR, else ETOK_SOURCE_DIR "/data" (compiled in). */
const char *etok_data_dir(void);

/* Names of the catalog entries of one kind ("hardware", "models", "scenarios"), sorted; only
 * *.json files count. *names is a malloc'd array of malloc'd strings (free with
 * etok_catalog_names_free). */
int etok_catalog_names(const char *kind, char ***names, size_t *n, etok_err *err);
void etok_catalog_names_free(char **names, size_t n);

int etok_catalog_hardware(const char *name, etok_hw_spec *out, etok_err *err);
int etok_catalog_model(const char *name, etok_model_arch *out, etok_err *err);

/* A scenario file: the model scenario plus what the file asks for around it. */
typedef struct {
    etok_tpf_scenario s;
    char name[64];
    char description[256];
    size_t n_levers;
    char levers[ETOK_SCENARIO_MAX_LEVERS][64];
    double price_per_kwh;   /* < 0: not given */
} etok_scenario_file;

/* Loads a scenario file; `path` may also be a catalog scenario name ("h100x8-llama31-8b-kv-int8"). */
int etok_scenario_load(const char *path, etok_scenario_file *out, etok_err *err);
/* The same from JSON text; `what` names the source in errors. */
int etok_scenario_from_json_text(const char *text, const char *what, etok_scenario_file *out, etok_err *err);

/* ---------- published measurements (data/measurements/NAME.json, docs/TPF.md "Validation") ---------- */
typedef struct {
    char id[96];
    char hardware[64], model[64];       /* catalog names */
    int devices;                        /* devices measured (GPUs of the system or replica) */
    int devices_per_replica;            /* tensor-parallel degree; devices / it replicas (default: devices) */
    double power_limit_w;               /* per-device power limit set in the run (MLPerf MaxQ); 0 = none */
    etok_dtype weight_dtype, kv_dtype;
    int batch, input_tokens, output_tokens; /* batch: sequences per replica */
    double joules_per_output_token;     /* published, at the point's energy boundary */
    double output_tps;                  /* published output token/s of all `devices` */
    double power_w;                     /* published mean power at the boundary; 0 = not given */
    int calibrate;                      /* 1: used to fit the hardware calibration; 0: held out */
    /* Energy boundary of the published figures: GPU (the devices alone, e.g. NVML) or SYSTEM (AC
     * wall power of the whole system, e.g. MLPerf Power). At the system boundary the model adds the
     * rest of the system: predicted power = devices' modelled power / psu_efficiency + host_power_w. */
    enum { ETOK_BOUNDARY_GPU = 0, ETOK_BOUNDARY_SYSTEM = 1 } boundary;
    double host_power_w;                /* system: non-GPU power at the wall (CPUs, memory, fans, NICs) */
    double host_power_uncertainty_w;    /* system: +- of host_power_w (>= 0) */
    double psu_efficiency;              /* system: GPU power -> wall power, (0, 1]; default 1 */
    char host_power_source[256];        /* system: where host_power_w comes from (a source or "assumption: ...") */
} etok_measurement;

typedef struct {
    char name[64];
    char description[256];
    char source_title[384], source_url[256];
    char energy_boundary[256];
    size_t n;
    etok_measurement *points;           /* malloc'd */
} etok_measurement_set;

/* Loads one measurement file (a path, or a name in data/measurements). Every set must name its
 * source (title and url) and energy boundary; every point its conditions. */
int etok_measurements_load(const char *path, etok_measurement_set *out, etok_err *err);
void etok_measurement_set_free(etok_measurement_set *set);

/* The scenario of one published point: catalog hardware and model, `devices` devices in replicas of
 * `devices_per_replica`, the point's per-device power limit, no facility, U = 1, Phi = 1. */
int etok_measurement_scenario(const etok_measurement *m, etok_tpf_scenario *s, etok_err *err);
/* The model's J/output-token and power at the point's energy boundary, from the device-boundary
 * result `r` of etok_measurement_scenario: GPU = r's figures; SYSTEM = the devices' modelled power
 * / psu_efficiency + host_power_w (lo/hi: host_power_w -+ its uncertainty). NULL outputs skipped. */
void etok_measurement_at_boundary(const etok_measurement *m, const etok_tpf_result *r, double *joules_per_output_token,
                                  double *power_w, double *joules_lo, double *joules_hi);

/* Parses a quantity "2 MW", "3.35 TB/s", "80 GB", "989 TFLOP/s" or a plain number, checking
 * that its dimension is the expected one: 'P' power (W), 'M' bytes, 'B' byte/s, 'F' FLOP/s,
 * '1' dimensionless. Returns 0, or -1 with err naming `field`. Exposed for tests. */
int etok_quantity_parse(const char *text, char dimension, const char *field, double *out, etok_err *err);

#endif
