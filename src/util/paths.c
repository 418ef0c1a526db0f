/* paths.c — the data directory and the default model, resolved the same way for every command
 * and for libetok (see include/etok/paths.h; documented in docs/INSTALL.md). Owns: the search
 * order and the "not found" messages. Does not own: reading catalogs (scenario/) or models
 * (engine/). */
#include "etok/paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef ETOK_SOURCE_DIR
#define ETOK_SOURCE_DIR "."
#endif

static char installed_dir[PATH_MAX];
static pthread_once_t installed_once = PTHREAD_ONCE_INIT;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* DIR_OF(file)/../share/etok if it holds catalogs. */
static int share_beside(const char *file, char *out, size_t cap) {
    char real[PATH_MAX];
    if (!file || !*file || !realpath(file, real)) return -1;
    char *slash = strrchr(real, '/');
    if (!slash) return -1;
    *slash = '\0';
    char cand[PATH_MAX + 32], probe[PATH_MAX + 64];
    snprintf(cand, sizeof cand, "%s/../share/etok", real);
    snprintf(probe, sizeof probe, "%s/hardware", cand);
    if (!is_dir(probe)) return -1;
    char canon[PATH_MAX];
    if (!realpath(cand, canon)) return -1;
    if (strlen(canon) >= cap) return -1;
    memcpy(out, canon, strlen(canon) + 1);
    return 0;
}

static void find_installed(void) {
    installed_dir[0] = '\0';
    /* libetok.so (when etok is a library in someone else's program), then the executable */
    Dl_info info;
    if (dladdr((void *)&etok_data_dir, &info) && info.dli_fname &&
        share_beside(info.dli_fname, installed_dir, sizeof installed_dir) == 0)
        return;
    if (share_beside("/proc/self/exe", installed_dir, sizeof installed_dir) == 0) return;
    installed_dir[0] = '\0';
}

const char *etok_data_dir(void) {
    const char *e = getenv("ETOK_DATA_DIR");
    if (e && *e) return e;
    pthread_once(&installed_once, find_installed);
    return installed_dir[0] ? installed_dir : ETOK_SOURCE_DIR "/data";
}

const char *etok_data_dir_origin(void) {
    const char *e = getenv("ETOK_DATA_DIR");
    if (e && *e) return "ETOK_DATA_DIR";
    pthread_once(&installed_once, find_installed);
    return installed_dir[0] ? "installed" : "source tree";
}

int etok_model_cache_dir(char *out, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(out, cap, "%s/etok/models", xdg);
    else if (home && home[0])
        n = snprintf(out, cap, "%s/.cache/etok/models", home);
    else {
        if (cap) out[0] = '\0';
        return -1;
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap) out[0] = '\0';
        return -1;
    }
    return 0;
}

static int readable_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, R_OK) == 0;
}

static int put(char *out, size_t cap, const char *p) {
    size_t n = strlen(p);
    if (n >= cap) return -1;
    memcpy(out, p, n + 1);
    return 0;
}

int etok_model_resolve(const char *cmd, const char *given, char *out, size_t cap, etok_err *err) {
    if (cap) out[0] = '\0';
    if (given && *given) {
        if (!readable_file(given))
            return etok_errc(err, ETOK_EXIT_INPUT, "etok %s: model file '%s' (given with -m) not found or not a readable file",
                             cmd, given);
        if (put(out, cap, given)) return etok_errc(err, ETOK_EXIT_INPUT, "etok %s: model path too long", cmd);
        return 0;
    }
    const char *env = getenv("ETOK_MODEL");
    if (env && *env) {
        if (!readable_file(env))
            return etok_errc(err, ETOK_EXIT_INPUT, "etok %s: model file '%s' (from $ETOK_MODEL) not found or not a readable file",
                             cmd, env);
        if (put(out, cap, env)) return etok_errc(err, ETOK_EXIT_INPUT, "etok %s: model path too long", cmd);
        return 0;
    }
    char cache[PATH_MAX], places[3][PATH_MAX + 64];
    int n = 0;
    if (etok_model_cache_dir(cache, sizeof cache) == 0)
        snprintf(places[n++], sizeof places[0], "%s/%s", cache, ETOK_DEFAULT_MODEL_NAME);
    snprintf(places[n++], sizeof places[0], "models/%s", ETOK_DEFAULT_MODEL_NAME);
    snprintf(places[n++], sizeof places[0], "%s/models/%s", ETOK_SOURCE_DIR, ETOK_DEFAULT_MODEL_NAME);
    for (int i = 0; i < n; i++)
        if (readable_file(places[i])) {
            if (put(out, cap, places[i])) return etok_errc(err, ETOK_EXIT_INPUT, "etok %s: model path too long", cmd);
            return 0;
        }
    /* how to fetch it: the installed script when there is one, else the source tree's */
    char script[PATH_MAX + 64];
    snprintf(script, sizeof script, "%s/scripts/fetch_model.sh", etok_data_dir());
    if (!readable_file(script)) snprintf(script, sizeof script, "%s/scripts/fetch_model.sh", ETOK_SOURCE_DIR);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    return etok_errc(err, ETOK_EXIT_INPUT,
                     "etok %s: no model: -m not given, $ETOK_MODEL not set, and the default model %s is in none of: "
                     "%s; ./models/ (in %s); %s/models/. Fetch it with `sh %s` (or `make model` in the source tree), "
                     "or give -m FILE.gguf / ETOK_MODEL",
                     cmd, ETOK_DEFAULT_MODEL_NAME, n == 3 ? places[0] : "($XDG_CACHE_HOME and $HOME unset)", cwd,
                     ETOK_SOURCE_DIR, script);
}
