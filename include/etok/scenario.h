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

/* Loads a scenario file; `path` may also be a catalog scenario name ("h100x8-llama8b-kv-int8"). */
int etok_scenario_load(const char *path, etok_scenario_file *out, etok_err *err);
/* The same from JSON text; `what` names the source in errors. */
int etok_scenario_from_json_text(const char *text, const char *what, etok_scenario_file *out, etok_err *err);

/* Parses a quantity "2 MW", "3.35 TB/s", "80 GB", "989 TFLOP/s" or a plain number, checking
 * that its dimension is the expected one: 'P' power (W), 'M' bytes, 'B' byte/s, 'F' FLOP/s,
 * '1' dimensionless. Returns 0, or -1 with err naming `field`. Exposed for tests. */
int etok_quantity_parse(const char *text, char dimension, const char *field, double *out, etok_err *err);

#endif
