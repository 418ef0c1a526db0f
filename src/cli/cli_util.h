/* cli_util.h — what several subcommands parse or fill the same way: the meter options
 * (--meter, --cpu-tdp) with the same one-line errors, and the host description of a record.
 * Argument parsing stays in src/cli/; each helper prints its error as "etok CMD: ..." and the
 * caller returns ETOK_EXIT_USAGE. */
#ifndef ETOK_CLI_UTIL_H
#define ETOK_CLI_UTIL_H

#include "etok/record.h"
#include "etok/engine.h"
#include "etok/levers_hw.h"
#include "etok/budget.h"
#include "etok/evalset.h"

#define ETOK_CLI_MAX_METERS 16

/* Meter names from repeated --meter options, each one name or a comma-separated list. */
typedef struct {
    const char *names[ETOK_CLI_MAX_METERS];
    int n_names;
    char buf[512];
} etok_cli_meters;

/* Adds the names in arg ("rapl" or "rapl,nvml"); -1 after printing why (too many). */
int etok_cli_meters_add(const char *cmd, etok_cli_meters *m, const char *arg);
/* The names for etok_meter_config.names (NULL when none were given: every available meter). */
const char *const *etok_cli_meters_names(const etok_cli_meters *m);

/* Idle-baseline history (issue 17; docs/RECORD.md "Idle history"): a per-host file of earlier
 * quiet idle baselines, $XDG_STATE_HOME/etok/idle-history-<host>.tsv (else
 * ~/.local/state/etok/), one line "t0_wall idle_w signature" (signature: boundary and the
 * summed meter:domain list). When at least 3 earlier baselines with the same meters exist and
 * this one is above 1.25 x their median (the last 20) + 0.5 W, a fault "idle_history" /
 * "warning" goes into the record (bgload's warning repeats it). A baseline whose background
 * was at most 0.05 cores (machine busy cores when own work is unknown) is appended. Best
 * effort: I/O failures change nothing. enabled 0 (--no-idle-history): nothing read or written. */
int etok_cli_idle_history(const char *cmd, etok_record *r, int enabled);
int etok_cli_idle_history_path(char *out, size_t cap);

/* One note on stderr ("etok CMD: note: ...") when the model's chat format was not read from
 * the file (no tokenizer.chat_template: usually a base model, which does not answer in turns;
 * docs/ENGINE.md, "Chat on a file without a template"); nothing when the GGUF carries one. */
void etok_cli_chat_note(const char *cmd, const char *model_path, const etok_model *m);

/* --cpu-tdp IDLE_W:MAX_W for the estimate meter; -1 after printing why. */
int etok_cli_cpu_tdp(const char *cmd, const char *arg, double *idle_w, double *max_w);

/* The engine's levers (issue 16), shared by bench, serve and generate: --weights FORMAT,
 * --kv-type f16|q8_0|f32 (kv-int8 = q8_0), --attn-window N, --attn-sinks S. */
typedef struct {
    const char *weights; /* NULL = keep */
    int kv_bits;         /* 0 = engine default (F16) */
    int attn_window, attn_sinks;
} etok_cli_levers;

#define ETOK_CLI_LEVERS_HELP                                                                                        \
    "  --weights FORMAT       re-encode the weights in memory at load: keep (default), f32, f16, bf16,\n"     \
    "                         q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k (bytes\n"      \
    "                         moved per token change, the model otherwise the same); a matrix whose rows\n"   \
    "                         are not whole 256-value blocks takes llama-quantize's fallback for a K\n"       \
    "                         format: q2_k, q3_k -> iq4_nl, q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0\n"       \
    "  --kv-type TYPE         KV cache format: f16 (default), q8_0 (kv-int8), f32\n"                               \
    "  --attn-window N        sliding attention window of N tokens (the KV cache stops growing)\n"               \
    "  --attn-sinks S         with --attn-window: keep the first S tokens attended (StreamingLLM)\n"

/* Parse one lever option by its long name (without "--"): 1 when name is not a lever, 0 on
 * success, -1 after printing why (caller returns ETOK_EXIT_USAGE). */
int etok_cli_lever_opt(const char *cmd, const char *name, const char *arg, etok_cli_levers *lv);
/* After parsing: --attn-sinks needs --attn-window; -1 after printing why. */
int etok_cli_levers_check(const char *cmd, const etok_cli_levers *lv);
/* Is any lever set (for commands where they do not apply, e.g. bench --endpoint)? */
int etok_cli_levers_any(const etok_cli_levers *lv);
/* Name of the KV type for records: "f16", "q8_0", "f32". */
const char *etok_cli_kv_type_name(int kv_bits);
/* How the built-in engine runs, into a record's config (bench and serve alike): the kernel level
 * (quant.h: scalar / avx2 / avx512 / amx; forced by ETOK_ISA) active and detected, and the
 * weights' memory (engine/hugemem.h): bytes placed at load, bytes of them in 2 MiB pages, the
 * kernel's THP mode and whether huge pages were asked for (ETOK_HUGEPAGES). `cfg` is a json_t *. */
void etok_cli_engine_config(void *cfg, const etok_model_info *mi);

/* The machine levers (issue 16; etok/levers_hw.h): --cpu-max-freq F, --gpu-power-limit W. */
#define ETOK_CLI_HW_LEVERS_HELP                                                                                     \
    "  --cpu-max-freq F       cap every online CPU's cpufreq scaling_max_freq at F (2.0GHz, 1800MHz or\n"         \
    "                         kHz) for the run, restored on exit and on Ctrl-C; exit 2 where not writable\n"      \
    "  --gpu-power-limit W    set every NVIDIA GPU's power limit to W watts (NVML) for the run, restored\n"        \
    "                         on exit and on Ctrl-C; exit 2 where NVML does not allow it\n"
/* Parse --cpu-max-freq / --gpu-power-limit (name without "--") into o;
 * -1 after printing why. */
int etok_cli_hw_lever_opt(const char *cmd, const char *name, const char *arg, etok_hw_levers_opts *o);

/* --budget POLICY (issue 16; etok/budget.h), bench only: each eval item's max_tokens. */
#define ETOK_CLI_BUDGET_HELP                                                                                        \
    "  --budget POLICY        each eval item's max_tokens: fixed:N (all N, as --max-tokens N),\n"                 \
    "                         by-field:FIELD (the item's numeric FIELD, e.g. budget; else --max-tokens)\n"       \
    "                         or adaptive (by the item's difficulty: easy 0.5x, medium 1x, hard 2x\n"           \
    "                         --max-tokens; else --max-tokens); built-in engine only, but fixed:N.\n"          \
    "                         Items' \"stop\" strings end generation in the built-in engine\n"
/* Parse --budget into p; -1 after printing why. */
int etok_cli_budget_opt(const char *cmd, const char *arg, etok_budget_policy *p);
/* After parsing (p NULL = no --budget): with --endpoint only fixed:N; fixed:N sets *max_tokens.
 * -1 after printing why. */
int etok_cli_budget_check(const char *cmd, const etok_budget_policy *p, int endpoint, double *max_tokens);
/* After loading the eval set: *budgets (malloc'ed, one per item; NULL without --budget) and
 * *n_fallback from etok_budget_assign (endpoint: unused; --endpoint sends items' stop strings
 * itself, bench.c). -1 after printing why (the caller exits ETOK_EXIT_INPUT). */
int etok_cli_budget_items(const char *cmd, const etok_budget_policy *p, const etok_evalset *ev, int fallback,
                          int endpoint, int **budgets, int *n_fallback);

/* Host name, kernel, online CPUs and CPU model (from ETOK_PROC_ROOT/cpuinfo) into the record. */
void etok_cli_host_info(etok_record *r);

#endif
