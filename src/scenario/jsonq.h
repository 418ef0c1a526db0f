/* jsonq.h — private helpers shared by catalog.c and scenario.c: quantities with units,
 * integer fields, unknown-key checks, and hardware/model objects from JSON (jansson). */
#ifndef ETOK_SCENARIO_JSONQ_H
#define ETOK_SCENARIO_JSONQ_H

#include <jansson.h>

#include "etok/scenario.h"

/* A number (JSON number or "VALUE UNIT" string) of dimension dim (see etok_quantity_parse). */
int jq_number(json_t *v, char dim, const char *what, const char *field, double *out, etok_err *err);
/* A whole number in [lo, hi]. */
int jq_int(json_t *v, long long lo, long long hi, const char *what, const char *field, int *out, etok_err *err);
/* Every key of obj must be in known (NULL-terminated). */
int jq_known_keys(json_t *obj, const char *const *known, const char *what, const char *prefix, etok_err *err);

/* Fill hw / m from the fields present in o (prefix names the object in errors, e.g.
 * "hardware"). require_all: a catalog file or an inline object must give every field. */
int jq_hardware(json_t *o, const char *what, const char *prefix, int require_all, etok_hw_spec *hw, etok_err *err);
int jq_model(json_t *o, const char *what, const char *prefix, int require_all, etok_model_arch *m, etok_err *err);

/* One catalog entry data/KIND/NAME.json (found as every catalog is), parsed; path receives
 * the file's path. NULL with err naming the known entries when there is none. */
json_t *jq_catalog_entry(const char *kind, const char *label, const char *name, char *path, size_t pn, etok_err *err);

/* Keys jq_hardware / jq_model understand (for the scenario's known-key lists). */
extern const char *const JQ_HW_KEYS[];
extern const char *const JQ_MODEL_KEYS[];

#endif
