/* etok.h — the public C API of libetok: measure the energy of named windows inside any program,
 * the way `etok run` measures a whole command. This is the only installed header; everything
 * else under include/etok/ is internal and may change. Documented in docs/API.md.
 *
 *     etok_meter *m = etok_meter_open(NULL, err, sizeof err);      // every available meter
 *     etok_meter_begin(m, "decode");
 *     ... work ...
 *     etok_reading r;
 *     etok_meter_end(m, "decode", &r);                                // r.energy_j ± r.energy_uncertainty_j
 *     etok_meter_set_tokens(m, "decode", 0, n_tokens);              // J/token in later readings
 *     etok_meter_save(m, "run.json");                                // `etok report run.json`
 *     etok_meter_close(m);
 *
 * Meters follow `--meter`'s rules: with no names every available counter/power meter is used;
 * the `estimate` meter is used only when asked for by name or when no meter exists at all, and
 * every figure from it says `estimate`. Never a silent fallback: a named meter that cannot be
 * read makes etok_meter_open fail, saying why.
 *
 * Windows are named; any number may be open at once, nested or overlapping, as long as the open
 * ones have different names (a name can be reused once its window has ended).
 *
 * Thread safety: every function may be called from any thread, concurrently with the others on
 * the same etok_meter, except etok_meter_close (no other call on that meter may be in flight or
 * follow). etok_generator functions are not thread-safe on the same generator (use one per
 * thread).
 *
 * Errors: functions returning int return 0 on success and -1 on failure; etok_meter_error()
 * then says why (the message of the calling thread's last failure on that meter is kept until
 * the next failure). */
#ifndef ETOK_ETOK_H
#define ETOK_ETOK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Incremented on any incompatible change of this header (also the SONAME major number). */
#define ETOK_API_VERSION 1

#if defined(__GNUC__) && !defined(ETOK_API)
#define ETOK_API __attribute__((visibility("default")))
#elif !defined(ETOK_API)
#define ETOK_API
#endif

/* ETOK_API_VERSION of the library actually loaded (compare with the header's). */
ETOK_API int etok_api_version(void);
/* The etok version string ("0.1.0"). */
ETOK_API const char *etok_version(void);

typedef struct etok_meter etok_meter;

typedef struct {
    const char *meters;      /* comma-separated meter names, as --meter ("rapl,nvml", "estimate");
                                NULL or "" = every available counter/power meter */
    double rate_hz;          /* power sampling rate; 0 = 10 Hz */
    double cpu_idle_w;       /* estimate meter: per-package idle and max watts (--cpu-tdp); */
    double cpu_max_w;        /* 0 = from the CPU catalog / defaults */
    const char *extlog_path; /* extlog meter: the power-meter log (--extlog) */
} etok_meter_options;

/* What a window measured. Times are seconds since etok_meter_open. */
typedef struct {
    char name[64];
    char request_id[64];          /* "" unless attached */
    double t_begin_s, t_end_s, duration_s;
    int has_energy;               /* 0: no meter covered the window (then energy figures are NAN) */
    double energy_j;              /* total energy in the window at `boundary` */
    double energy_uncertainty_j;  /* 1-sigma: counter resolution, sampling, estimate error band */
    double mean_power_w;
    char source[16];              /* "counter", "power", "external", "estimate" (the weakest summed) */
    char boundary[16];            /* "device", "node", "facility" */
    long long tokens_in, tokens_out;            /* -1 = not attached */
    double joules_per_output_token;             /* NAN unless tokens_out > 0 */
    double joules_per_output_token_uncertainty;
    int final;                    /* 1: from the complete record (after etok_meter_save), 0: live */
} etok_reading;

/* Open a measurement session: the meters start sampling now. opts may be NULL (defaults).
 * Returns NULL on failure with the reason in errbuf (may be NULL). */
ETOK_API etok_meter *etok_meter_open(const etok_meter_options *opts, char *errbuf, size_t errlen);

/* Begin a window named name (1..63 bytes): the meters are read now. Fails when a window of that
 * name is already open, or after etok_meter_save. */
ETOK_API int etok_meter_begin(etok_meter *m, const char *name);

/* End the open window name (the meters are read now) and fill out (may be NULL). */
ETOK_API int etok_meter_end(etok_meter *m, const char *name, etok_reading *out);

/* Attach token counts (>= 0) or a request id to the window name: the open one of that name, else
 * the one of that name that ended last. Readings after this carry them. */
ETOK_API int etok_meter_set_tokens(etok_meter *m, const char *name, long long tokens_in, long long tokens_out);
ETOK_API int etok_meter_set_request_id(etok_meter *m, const char *name, const char *request_id);

/* Read the window name again (as for set_tokens): after etok_meter_save the figures come from
 * the complete record, exactly as `etok report` computes them (final = 1). */
ETOK_API int etok_meter_reading(etok_meter *m, const char *name, etok_reading *out);

/* The session's source label (the weakest source among the summed meters: "counter", "power",
 * "external", "estimate") and boundary ("device", "node", "facility"). Never NULL. */
ETOK_API const char *etok_meter_source(etok_meter *m);
ETOK_API const char *etok_meter_boundary(etok_meter *m);

/* Stop the meters and save the session as a run record (kind "api"; every window a request with
 * its id, times, tokens and energy) that `etok report` and `etok compare` read. Every window must
 * have ended. After this, begin fails; readings are final. Writes atomically. */
ETOK_API int etok_meter_save(etok_meter *m, const char *path);

/* The last error message on this meter ("" when none). Never NULL. */
ETOK_API const char *etok_meter_error(etok_meter *m);

/* Stop the meters (if still running) and free everything. NULL is allowed. */
ETOK_API void etok_meter_close(etok_meter *m);

/* ---- the built-in engine, for measuring a generation loop (examples/generate_loop.c) ---- */

typedef struct etok_generator etok_generator;

/* Load a GGUF model (NULL = the default model, found as `etok generate` finds it: $ETOK_MODEL,
 * the cache directory, ./models; docs/INSTALL.md). threads 0 = every online core. */
ETOK_API etok_generator *etok_generator_open(const char *model_path, int threads, char *errbuf, size_t errlen);
/* Start generating from prompt (greedy; chat != 0 wraps it in the model's chat template) for at
 * most max_tokens tokens. Returns the number of prompt tokens, or -1. */
ETOK_API int etok_generator_start(etok_generator *g, const char *prompt, int chat, int max_tokens);
/* Produce the next token: returns 1 and writes its text (NUL-terminated, cut to cap) to piece;
 * 0 when generation has ended; -1 on error. */
ETOK_API int etok_generator_next(etok_generator *g, char *piece, size_t cap);
ETOK_API int etok_generator_tokens_in(const etok_generator *g);
ETOK_API int etok_generator_tokens_out(const etok_generator *g);
ETOK_API const char *etok_generator_error(const etok_generator *g);
ETOK_API void etok_generator_close(etok_generator *g);

#ifdef __cplusplus
}
#endif
#endif
