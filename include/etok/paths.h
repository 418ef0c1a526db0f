/* paths.h — where etok finds its data and the default model: one resolution for every command
 * (and for libetok), documented in docs/INSTALL.md ("Where etok looks").
 *
 * Data (catalogs, eval sets): $ETOK_DATA_DIR, else ../share/etok beside the binary (or beside
 * libetok.so when etok is used as a library), else the source tree's data/ (compiled in).
 * Default model: -m, else $ETOK_MODEL, else $XDG_CACHE_HOME/etok/models/NAME (or
 * ~/.cache/etok/models/NAME), else ./models/NAME, else the source tree's models/NAME. */
#ifndef ETOK_PATHS_H
#define ETOK_PATHS_H

#include <stddef.h>

#include "etok/util.h"

#define ETOK_DEFAULT_MODEL_NAME "SmolLM2-135M-Instruct.Q4_1.gguf"

/* The data directory (see above). The environment is read on every call; the installed
 * location is found once. Never NULL. Thread-safe. */
const char *etok_data_dir(void);
/* Where the data directory came from: "ETOK_DATA_DIR", "installed" or "source tree". */
const char *etok_data_dir_origin(void);

/* $XDG_CACHE_HOME/etok/models (absolute XDG_CACHE_HOME only), else $HOME/.cache/etok/models.
 * Returns 0, or -1 when neither is set (out is then ""). */
int etok_model_cache_dir(char *out, size_t cap);

/* Resolve the model a command uses. given: the -m value or NULL. On success writes the path
 * to out and returns 0. Else -1 with err (exit code ETOK_EXIT_INPUT): a -m or $ETOK_MODEL path
 * that cannot be read is named as such; without either, the message lists every place that
 * was searched and how to fetch the default model. cmd names the command in the message. */
int etok_model_resolve(const char *cmd, const char *given, char *out, size_t cap, etok_err *err);

#endif
