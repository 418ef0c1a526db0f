/* cmd_run.c — `etok run [OPTIONS] -- CMD [ARGS...]`: measure the energy of any command.
 *
 * Owns the command line and the order of events: check the output path and the command
 * (before anything is measured, so nothing is lost), open the meters, start the sampler,
 * idle baseline, run the command (drive/command.c), stop, write the record (record/), then
 * analyse (analyse/energy.c) and print the summary (render/run_summary.c) on stderr, so the
 * command's own stdout stays exactly its own.
 *
 * Signals: SIGINT/SIGTERM are blocked in every thread (before the sampler starts) and read
 * from a signalfd: during the idle baseline they end it; during the command they are
 * forwarded to its process group (a second one, or --kill-after seconds, kills the group;
 * drive/command.c). Either way a valid record marked partial is written. No process of the
 * command's group outlives etok: what it leaves running when it exits is ended too. The command's exit status is etok's exit status (130 when interrupted before
 * the command started). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/parse.h"
#include "etok/command.h"
#include "etok/bgload.h"
#include "etok/cpuload.h"
#include "etok/energy.h"
#include "etok/levers_hw.h"
#include "etok/meter.h"
#include "etok/procenergy.h"
#include "etok/record.h"
#include "etok/run_summary.h"
#include "etok/util.h"

#ifndef ETOK_VERSION
#define ETOK_VERSION "0.1.0"
#endif

#define DEFAULT_RECORD "etok-run.json"
#define MAX_METERS 16

/* --per-process: the command's tree split by CPU-time share (procenergy.h), updated by a
 * thread from the meters' live total. */
typedef struct {
    etok_meter_set *ms;
    etok_procenergy *pe; /* NULL without --per-process */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int stop, started;
} run_pp;

static void pp_update(run_pp *p) {
    etok_energy_snapshot snap;
    if (etok_meters_snapshot(p->ms, &snap) != 0) return;
    etok_err e = {0};
    (void)etok_procenergy_update(p->pe, snap.energy_j, &e);
}

static void *pp_thread(void *arg) {
    run_pp *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        pp_update(p);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        while (!p->stop && pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The command's process group exists: its tree is the "own" work of the CPU-load readings. */
static void run_on_group(void *ctx, long pgid) {
    run_pp *p = ctx;
    (void)etok_meters_set_cpu_scope(p->ms, ETOK_CPU_SCOPE_GROUP, pgid);
    if (p->pe) {
        pthread_mutex_lock(&p->mu);
        etok_procenergy_set_pgrp(p->pe, pgid);
        pthread_mutex_unlock(&p->mu);
    }
}

static int cmp_energy_desc(const void *a, const void *b) {
    double x = ((const etok_proc_energy *)a)->energy_j, y = ((const etok_proc_energy *)b)->energy_j;
    return (x < y) - (x > y);
}

/* The processes of the command's tree, largest first (text or a JSON array). */
static json_t *pp_report(etok_procenergy *pe, FILE *f) {
    etok_procenergy_view v;
    etok_procenergy_view_get(pe, &v);
    etok_proc_energy *s = malloc((v.n_procs + 1) * sizeof *s);
    json_t *arr = f ? NULL : json_array();
    if (!s) return arr;
    memcpy(s, v.procs, v.n_procs * sizeof *s);
    qsort(s, v.n_procs, sizeof *s, cmp_energy_desc);
    double sum = 0;
    for (size_t i = 0; i < v.n_procs; i++) sum += s[i].energy_j;
    if (f) {
        fprintf(f, "  per process     attribution model (share of busy CPU time per interval, not a measurement): "
                   "%.4g J to %zu processes of the command's tree, %.4g J to the rest of the machine, of %.4g J\n",
                sum, v.n_procs, v.proc_unattributed_j + v.proc_exited_j, v.covered_j);
        for (size_t i = 0; i < v.n_procs && i < 10; i++)
            fprintf(f, "    pid %-8ld %-16s %10.4g J%s\n", s[i].pid, s[i].comm, s[i].energy_j, s[i].exited ? "  (exited)" : "");
        if (v.n_procs > 10) fprintf(f, "    ... %zu more (--json lists them all)\n", v.n_procs - 10);
    } else if (arr) {
        for (size_t i = 0; i < v.n_procs; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "pid", json_integer(s[i].pid));
            json_object_set_new(o, "comm", json_string(s[i].comm));
            json_object_set_new(o, "energy_j", json_real(s[i].energy_j));
            json_object_set_new(o, "exited", json_boolean(s[i].exited));
            json_array_append_new(arr, o);
        }
    }
    free(s);
    return arr;
}

/* The per-process split as the record keeps it (config.per_process; docs/RECORD.md): the same
 * figures the summary prints, every process listed. */
static json_t *pp_config(etok_procenergy *pe) {
    etok_procenergy_view v;
    etok_procenergy_view_get(pe, &v);
    double sum = 0;
    for (size_t i = 0; i < v.n_procs; i++) sum += v.procs[i].energy_j;
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "model", json_string("cpu_time_share"));
    json_object_set_new(o, "intervals", json_integer((json_int_t)v.n_updates));
    json_object_set_new(o, "covered_j", json_real(v.covered_j));
    json_object_set_new(o, "processes_j", json_real(sum));
    /* the tree's processes that could not stay listed (out of memory; normally 0) */
    json_object_set_new(o, "unlisted_j", json_real(v.proc_exited_j));
    json_object_set_new(o, "rest_j", json_real(v.proc_unattributed_j));
    json_object_set_new(o, "processes", pp_report(pe, NULL));
    return o;
}

/* Another process on a GPU during the idle baseline (before the command starts, every GPU
 * process is another's): a warning fault in the baseline (bgload repeats it). */
static void gpu_others(etok_record *rec) {
    char who[400];
    if (etok_nvml_gpu_processes(-1, -1, who, sizeof who) > 0)
        etok_record_add_fault(rec, rec->idle_start_s + 0.5 * (rec->idle_end_s - rec->idle_start_s), "gpu_processes", "",
                              "warning", "another process holds the GPU during the idle baseline (%s): the GPU's idle "
                              "power and device figures include its work", who);
}

/* A window edge: a reading of every meter now (etok_meters_mark), then its record time. */
static double run_edge_s(etok_meter_set *ms) {
    (void)etok_meters_mark(ms, NULL);
    return etok_meters_now(ms);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok run [OPTIONS] -- CMD [ARGS...]\n"
            "\n"
            "Measure the energy of a command: an idle baseline, then the command's window, with\n"
            "every available meter (or those named). Writes the run record (JSON) and prints a\n"
            "summary on stderr: duration, energy per meter and in total with boundary, source and\n"
            "uncertainty, mean and idle power, dynamic energy, J/token, PUE-adjusted power.\n"
            "The command's stdout/stderr pass through unchanged; its exit status is etok's.\n"
            "\n"
            "  --tokens N          the command produced N output tokens\n"
            "  --tokens-regex RE   take the token count from the command's output: POSIX extended\n"
            "                      regex with one capture group (e.g. 'generated ([0-9]+) tokens');\n"
            "                      which matching lines count: --tokens-pick\n"
            "  --tokens-pick WHICH last (default: the last matching line, a final summary), first,\n"
            "                      or sum (add every match: one count printed per request)\n"
            "  --meter NAME        use this meter (repeatable or comma-separated): rapl, perf, hwmon,\n"
            "                      nvml, amdsmi, extlog, estimate. Default: every available counter/power\n"
            "                      meter; `estimate` (a model) only when asked or when none exists\n"
            "  --idle SECONDS      idle baseline before the command (default 5; 0 skips it)\n"
            "  --pue X             power usage effectiveness for PUE-adjusted power (default 1)\n"
            "  --cpu-tdp IDLE:MAX  estimate meter: per-package idle and max watts\n"
            "  --extlog FILE       extlog meter: external power-meter log (CSV or JSON lines)\n"
            "  --rate HZ           power sampling rate (default 10)\n"
            "  -o FILE             run record path (default ./" DEFAULT_RECORD ")\n"
            "  --json              print the summary as JSON (on stderr) instead of text\n"
            "  --boundary process  also show the energy attributed to the command's process group\n"
            "                      by its CPU-time share (an attribution model, beside the device\n"
            "                      figure; docs/RECORD.md \"Background load\")\n"
            "  --per-process       also the energy of each process of the command's tree by its share\n"
            "                      of busy CPU time (an attribution model, the exporter's; the summary,\n"
            "                      --json and the record's config.per_process list them;\n"
            "                      docs/PROMETHEUS.md)\n"
            "  --no-idle-history   neither compare the idle baseline with this host's earlier quiet\n"
            "                      ones nor remember it (~/.local/state/etok; docs/RECORD.md)\n"
            "  --kill-after S      after a forwarded Ctrl-C/SIGTERM, SIGKILL the command's process\n"
            "                      group if it is still running S seconds later (default 10)\n"
            "  --window-start RE   open the measured window at the first output line matching RE (POSIX\n"
            "                      ERE), e.g. after the model has loaded; default: the command's start\n"
            "  --window-end RE     close it at the first later line matching RE; default: the command's exit\n"
            "                      (an edge is when etok reads the line: line-buffer the command's output,\n"
            "                      e.g. stdbuf -oL; a regex that never matches is warned about)\n"
            "  --cpu-max-freq F    cap every online CPU's cpufreq scaling_max_freq at F (2.0GHz, 1800MHz\n"
            "                      or kHz) while the command runs, idle baseline included; restored on\n"
            "                      exit and on Ctrl-C; exit 2 where not writable\n"
            "  --gpu-power-limit W set every NVIDIA GPU's power limit to W watts (NVML) likewise; exit 2\n"
            "                      where NVML does not allow it (docs/LEVERS.md)\n"
            "  -h, --help          this help\n"
            "\n"
            "Without --window-start the measured window is the whole command, start-up (e.g. model load)\n"
            "included: J/token covers loading too; open the window on an output line, measure a long\n"
            "enough run, or subtract a load-only run. Tokens (--tokens-regex) are counted over all output.\n"
            "The command runs in a process group of its own (with the terminal, when etok has it).\n"
            "Ctrl-C/SIGTERM to etok: forwarded to that group; a second one, or --kill-after, kills\n"
            "the group. The record is still written, marked partial. Processes the command leaves\n"
            "running in its group when it exits get SIGTERM, then SIGKILL 2 s later: none outlives\n"
            "etok (a process that leaves the group, e.g. with setsid, is not followed).\n"
            "exit codes: the command's; 127/126 command not found/not executable; 2 usage, or a\n"
            "lever the machine does not allow; 4 meter permission; 5 record not writable; 130\n"
            "interrupted before the command; 1 a lever not restored after a command that exited 0\n");
}

/* A strict number for OPT in range r; prints why not. */
static int parse_opt(const char *opt, const char *s, etok_range r, double *out) {
    etok_err e = {0};
    if (etok_parse_double(opt, s, r, out, &e) == 0) return 0;
    fprintf(stderr, "etok run: %s\n", e.msg);
    return -1;
}

/* The output path must be writable before anything is measured (util.h: what "writable"
 * means for a symlink, a FIFO, a device; nothing at the path is changed by the check). */
static int check_output(const char *path, etok_err *err) {
    etok_err e = {{0}, 0};
    if (etok_check_output_path(path, &e) != 0) return etok_errc(err, ETOK_EXIT_OUTPUT, "run record: %s", e.msg);
    return 0;
}

/* argv joined for the record, single-quoting words a shell would split or expand. */
static void join_command(char *out, size_t cap, char *const argv[]) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] && n + 1 < cap; i++) {
        const char *a = argv[i];
        int quote = *a == '\0' || strpbrk(a, " \t\n'\"\\$`*?[]{}()<>|&;#~!") != NULL;
        if (i) n += (size_t)snprintf(out + n, cap - n, " ");
        if (n + 1 >= cap) break;
        if (!quote) {
            n += (size_t)snprintf(out + n, cap - n, "%s", a);
        } else {
            if (n + 1 < cap) out[n++] = '\'';
            for (; *a && n + 5 < cap; a++) {
                if (*a == '\'') { memcpy(out + n, "'\\''", 4); n += 4; }
                else out[n++] = *a;
            }
            if (n + 1 < cap) out[n++] = '\'';
            out[n] = '\0';
        }
        if (n >= cap) n = cap - 1;
    }
}

typedef struct {
    long long tokens;
    int tokens_given;
    const char *tokens_regex;
    int tokens_pick, tokens_pick_given;
    etok_cli_meters meters;
    double idle_s, pue, rate_hz, cpu_idle_w, cpu_max_w;
    double kill_after_s; /* 0 = drive/command.c's default (10 s) */
    const char *extlog;
    const char *out_path;
    int json;
    int process_boundary; /* --boundary process */
    const char *window_start, *window_end; /* --window-start/--window-end: edges on output lines */
    int no_idle_history;  /* --no-idle-history */
    int per_process;      /* --per-process */
    etok_hw_levers_opts hwo; /* --cpu-max-freq, --gpu-power-limit */
} run_opts;

/* --window-start/--window-end: a line of the command's output moves a window edge to now. */
typedef struct {
    etok_meter_set *ms;
    etok_record *rec;
} window_edges;

static void run_on_window_edge(void *ctx, int edge) {
    window_edges *w = ctx;
    double t = run_edge_s(w->ms);
    if (edge == 0) w->rec->window_start_s = t;
    else w->rec->window_end_s = t;
}

static char *config_text(const run_opts *o, const etok_command_result *cr, json_t *per_process,
                         const etok_hw_levers *hw) {
    json_t *c = json_object();
    if (!c) {
        json_decref(per_process);
        return NULL;
    }
    json_t *m = json_array();
    for (int i = 0; i < o->meters.n_names; i++) json_array_append_new(m, json_string(o->meters.names[i]));
    json_object_set_new(c, "meters", m);
    json_object_set_new(c, "idle_s", json_real(o->idle_s));
    json_object_set_new(c, "rate_hz", json_real(o->rate_hz > 0 ? o->rate_hz : 10));
    if (o->cpu_max_w > 0) {
        json_object_set_new(c, "cpu_idle_w", json_real(o->cpu_idle_w));
        json_object_set_new(c, "cpu_max_w", json_real(o->cpu_max_w));
    }
    if (o->extlog) json_object_set_new(c, "extlog", json_string(o->extlog));
    if (o->tokens_given) {
        json_object_set_new(c, "tokens_source", json_string("--tokens"));
    } else if (o->tokens_regex) {
        json_object_set_new(c, "tokens_source", json_string("--tokens-regex"));
        json_object_set_new(c, "tokens_regex", json_string(o->tokens_regex));
        static const char *const picks[] = {"last", "first", "sum"};
        json_object_set_new(c, "tokens_pick", json_string(picks[o->tokens_pick]));
        if (cr && cr->tokens_found) {
            json_object_set_new(c, "tokens_line", json_string(cr->tokens_line));
            json_object_set_new(c, "tokens_matches", json_integer(cr->tokens_matches));
        }
    }
    /* where the window's edges came from */
    json_object_set_new(c, "window_start", json_string(cr && cr->window_opened ? "output line" : "command start"));
    json_object_set_new(c, "window_end", json_string(cr && cr->window_closed ? "output line" : "command exit"));
    if (o->window_start) json_object_set_new(c, "window_start_regex", json_string(o->window_start));
    if (o->window_end) json_object_set_new(c, "window_end_regex", json_string(o->window_end));
    if (cr && cr->window_opened) json_object_set_new(c, "window_start_line", json_string(cr->window_start_line));
    if (cr && cr->window_closed) json_object_set_new(c, "window_end_line", json_string(cr->window_end_line));
    /* what had to be ended (drive/command.c): the record keeps it */
    if (cr && cr->grace_expired) json_object_set_new(c, "group_killed_after_s", json_real(o->kill_after_s > 0 ? o->kill_after_s : 10.0));
    if (cr && cr->leftover) json_object_set_new(c, "leftover_processes_ended", json_true());
    if (per_process) json_object_set_new(c, "per_process", per_process); /* --per-process */
    etok_hw_levers_to_config(hw, c); /* the machine levers applied, as bench records them */
    char *txt = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(c);
    return txt;
}

int cmd_run(int argc, char **argv) {
    static const struct option lopts[] = {
        {"tokens", required_argument, NULL, 't'},  {"tokens-regex", required_argument, NULL, 'r'},
        {"tokens-pick", required_argument, NULL, 'P'},
        {"meter", required_argument, NULL, 'm'},   {"idle", required_argument, NULL, 'i'},
        {"pue", required_argument, NULL, 'p'},     {"cpu-tdp", required_argument, NULL, 'c'},
        {"extlog", required_argument, NULL, 'e'},  {"rate", required_argument, NULL, 'R'},
        {"output", required_argument, NULL, 'o'},  {"json", no_argument, NULL, 'j'},
        {"kill-after", required_argument, NULL, 'K'}, {"boundary", required_argument, NULL, 'B'},
        {"window-start", required_argument, NULL, 'S'}, {"window-end", required_argument, NULL, 'E'},
        {"no-idle-history", no_argument, NULL, 'H'}, {"per-process", no_argument, NULL, 'X'},
        {"cpu-max-freq", required_argument, NULL, 'F'}, {"gpu-power-limit", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    run_opts o = {.idle_s = 5, .pue = 1, .out_path = DEFAULT_RECORD};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+o:h", lopts, NULL)) != -1) {
        switch (c) {
        case 't': {
            etok_err e = {0};
            long long v;
            /* the record holds at most 9e18 tokens (docs/RECORD.md) */
            if (etok_parse_i64("--tokens", optarg, 0, 9000000000000000000LL, &v, &e)) {
                fprintf(stderr, "etok run: %s\n", e.msg);
                return ETOK_EXIT_USAGE;
            }
            o.tokens = v;
            o.tokens_given = 1;
            break;
        }
        case 'r': o.tokens_regex = optarg; break;
        case 'P':
            o.tokens_pick_given = 1;
            if (!strcmp(optarg, "last")) o.tokens_pick = ETOK_TOKENS_LAST;
            else if (!strcmp(optarg, "first")) o.tokens_pick = ETOK_TOKENS_FIRST;
            else if (!strcmp(optarg, "sum")) o.tokens_pick = ETOK_TOKENS_SUM;
            else {
                fprintf(stderr, "etok run: --tokens-pick takes last, first or sum, not '%s'\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            break;
        case 'm':
            if (etok_cli_meters_add("run", &o.meters, optarg) != 0) return ETOK_EXIT_USAGE;
            break;
        case 'i':
            if (parse_opt("--idle", optarg, ETOK_RANGE(0, 86400), &o.idle_s)) return ETOK_EXIT_USAGE;
            break;
        case 'p':
            if (parse_opt("--pue", optarg, ETOK_RANGE(ETOK_PUE_MIN, ETOK_PUE_MAX), &o.pue)) return ETOK_EXIT_USAGE;
            break;
        case 'c':
            if (etok_cli_cpu_tdp("run", optarg, &o.cpu_idle_w, &o.cpu_max_w) != 0) return ETOK_EXIT_USAGE;
            break;
        case 'e': o.extlog = optarg; break;
        case 'R':
            if (parse_opt("--rate", optarg, ETOK_RANGE_POS(1000), &o.rate_hz)) return ETOK_EXIT_USAGE;
            break;
        case 'K':
            if (parse_opt("--kill-after", optarg, ETOK_RANGE_POS(86400), &o.kill_after_s)) return ETOK_EXIT_USAGE;
            break;
        case 'o': o.out_path = optarg; break;
        case 'j': o.json = 1; break;
        case 'S': o.window_start = optarg; break;
        case 'E': o.window_end = optarg; break;
        case 'B':
            if (strcmp(optarg, "process") && strcmp(optarg, "device")) {
                fprintf(stderr, "etok run: --boundary: expected \"process\" or \"device\", got '%s'\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            o.process_boundary = !strcmp(optarg, "process");
            break;
        case 'H': o.no_idle_history = 1; break;
        case 'X': o.per_process = 1; break;
        case 'F':
            if (etok_cli_hw_lever_opt("run", "cpu-max-freq", optarg, &o.hwo)) return ETOK_EXIT_USAGE;
            break;
        case 'G':
            if (etok_cli_hw_lever_opt("run", "gpu-power-limit", optarg, &o.hwo)) return ETOK_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok run: unknown or incomplete option '%s' (etok run --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "etok run: no command given (etok run [OPTIONS] -- CMD [ARGS...])\n");
        return ETOK_EXIT_USAGE;
    }
    if (o.tokens_pick_given && !o.tokens_regex) {
        fprintf(stderr, "etok run: --tokens-pick needs --tokens-regex\n");
        return ETOK_EXIT_USAGE;
    }
    if (o.tokens_given && o.tokens_regex) {
        fprintf(stderr, "etok run: give --tokens or --tokens-regex, not both\n");
        return ETOK_EXIT_USAGE;
    }
    char **cmd = argv + optind;
    etok_err err = {0};
    if ((o.tokens_regex && etok_command_check_regex(o.tokens_regex, &err) != 0) ||
        (o.window_start && etok_command_check_window_regex("--window-start", o.window_start, &err) != 0) ||
        (o.window_end && etok_command_check_window_regex("--window-end", o.window_end, &err) != 0)) {
        fprintf(stderr, "etok run: %s\n", err.msg);
        return ETOK_EXIT_USAGE;
    }
    /* Nothing measured yet: fail now rather than after the run. */
    if (check_output(o.out_path, &err) != 0 || etok_command_resolve(cmd[0], &err) != 0) {
        fprintf(stderr, "etok run: %s\n", err.msg);
        return err.exit_code;
    }

    /* Block SIGINT/SIGTERM in this thread before any other starts, so every thread inherits
     * the mask and the signals arrive only on the signalfd. */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    signal(SIGPIPE, SIG_IGN);
    int sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sig_fd < 0) {
        fprintf(stderr, "etok run: signalfd: %s\n", strerror(errno));
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return ETOK_EXIT_FAIL;
    }

    /* machine levers: before the meters (the idle baseline is measured capped too), restored
     * below on every path; signals reach only sig_fd, so a Ctrl-C still gets there */
    etok_hw_levers *hw = etok_hw_levers_apply(&o.hwo, &err);
    if (!hw) {
        fprintf(stderr, "etok run: %s\n", err.msg);
        close(sig_fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return err.exit_code ? err.exit_code : ETOK_EXIT_USAGE;
    }
    etok_meter_config mc = {
        .names = etok_cli_meters_names(&o.meters),
        .n_names = o.meters.n_names,
        .rate_hz = o.rate_hz,
        .cpu_idle_w = o.cpu_idle_w,
        .cpu_max_w = o.cpu_max_w,
        .extlog_path = o.extlog,
    };
    etok_meter_set *ms = etok_meters_open(&mc, &err);
    if (!ms) {
        fprintf(stderr, "etok run: %s\n", err.msg);
        (void)etok_hw_levers_restore(hw);
        close(sig_fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }

    etok_record rec;
    etok_record_init(&rec);
    snprintf(rec.tool_version, sizeof rec.tool_version, "%s", ETOK_VERSION);
    snprintf(rec.kind, sizeof rec.kind, "run");
    join_command(rec.command, sizeof rec.command, cmd);
    etok_cli_host_info(&rec);
    rec.hw.power_limit_w = etok_hw_levers_gpu_limit_w(hw); /* the applied limit (0: none; then the meter's) */
    rec.pue = o.pue;
    rec.t0_wall_s = etok_wall_s();
    /* background load: own = the command's process group, none before it starts */
    (void)etok_meters_set_cpu_scope(ms, ETOK_CPU_SCOPE_GROUP, 0);
    if (etok_meters_start(ms, &rec, &err) != 0) {
        fprintf(stderr, "etok run: %s\n", err.msg);
        etok_meters_close(ms);
        (void)etok_hw_levers_restore(hw);
        etok_record_free(&rec);
        close(sig_fd);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    /* wall time of the record's t = 0, from the set's own t0 */
    rec.t0_wall_s = etok_wall_s() - (etok_mono_s() - etok_meters_t0_mono_s(ms));

    int interrupted = 0, ran = 0, rc = ETOK_EXIT_OK;
    etok_command_result cr;
    memset(&cr, 0, sizeof cr);
    if (o.idle_s > 0) {
        if (!o.json) fprintf(stderr, "etok run: idle baseline %g s (--idle 0 skips it)...\n", o.idle_s);
        rec.idle_start_s = run_edge_s(ms);
        interrupted = etok_wait_or_signal(sig_fd, o.idle_s);
        rec.idle_end_s = run_edge_s(ms);
        gpu_others(&rec);
    }
    rec.window_start_s = run_edge_s(ms);
    run_pp pp = {.ms = ms};
    if (o.per_process && !interrupted) {
        etok_err e2 = {0};
        pp.pe = etok_procenergy_open(0, 0, &e2);
        if (pp.pe) {
            etok_procenergy_set_pgrp(pp.pe, -1); /* nothing until the command's group exists */
            etok_procenergy_keep_exited(pp.pe, 1);
            pthread_mutex_init(&pp.mu, NULL);
            pthread_cond_init(&pp.cv, NULL);
            pp.started = pthread_create(&pp.th, NULL, pp_thread, &pp) == 0;
            if (!pp.started) {
                pthread_mutex_destroy(&pp.mu);
                pthread_cond_destroy(&pp.cv);
            }
        }
        if (!pp.started) {
            fprintf(stderr, "etok run: --per-process: %s\n", e2.msg[0] ? e2.msg : "cannot start its thread");
            etok_procenergy_close(pp.pe);
            pp.pe = NULL;
        }
    }
    if (!interrupted) {
        window_edges edges = {ms, &rec};
        etok_command_opts co = {.tokens_regex = o.tokens_regex, .tokens_pick = o.tokens_pick, .signal_fd = sig_fd, .kill_grace_s = o.kill_after_s,
                                .on_group = run_on_group, .on_group_ctx = &pp,
                                .window_start_regex = o.window_start, .window_end_regex = o.window_end,
                                .on_window_edge = run_on_window_edge, .on_window_ctx = &edges};
        if (etok_command_run(cmd, &co, &cr, &err) != 0) {
            /* it vanished between the check and now: report it, still write the record */
            fprintf(stderr, "etok run: %s\n", err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
            rec.partial = 1;
        } else {
            ran = 1;
            interrupted = cr.interrupted;
            if (cr.grace_expired && !o.json)
                fprintf(stderr, "etok run: the command was still running %g s after the signal: its process group was "
                                "killed (SIGKILL)\n", o.kill_after_s > 0 ? o.kill_after_s : 10.0);
            if (cr.leftover && !o.json)
                fprintf(stderr, "etok run: the command left processes running in its process group: ended them "
                                "(%s)\n", cr.interrupted ? "SIGKILL" : "SIGTERM, then SIGKILL after 2 s");
            rec.exit_status = cr.exit_status;
            rc = cr.exit_status;
        }
    } else {
        rc = ETOK_EXIT_INTERRUPTED;
    }
    if (pp.started) { /* a last update at the window's end, then the thread stops */
        pthread_mutex_lock(&pp.mu);
        pp.stop = 1;
        pthread_cond_signal(&pp.cv);
        pthread_mutex_unlock(&pp.mu);
        pthread_join(pp.th, NULL);
        pp_update(&pp);
        pthread_mutex_destroy(&pp.mu);
        pthread_cond_destroy(&pp.cv);
    }
    if (!(ran && cr.window_closed)) rec.window_end_s = run_edge_s(ms);
    if (ran && o.window_start && !cr.window_opened)
        fprintf(stderr, "etok run: warning: --window-start '%s' matched no output line: the window is the whole command "
                        "(start-up included)\n", o.window_start);
    if (ran && o.window_end && !cr.window_closed)
        fprintf(stderr, "etok run: warning: --window-end '%s' matched no output line%s: the window ends when the command "
                        "exits\n", o.window_end, o.window_start && cr.window_opened ? " after the start line" : "");
    if (etok_meters_stop(ms, &err) != 0) fprintf(stderr, "etok run: stopping the meters: %s\n", err.msg);
    etok_meters_close(ms);
    rec.config_json = config_text(&o, ran ? &cr : NULL, pp.pe ? pp_config(pp.pe) : NULL, hw);
    /* the levers back before the record is written (a value not restored is said on stderr) */
    if (etok_hw_levers_restore(hw) && rc == ETOK_EXIT_OK) rc = ETOK_EXIT_FAIL;

    rec.partial |= interrupted;
    if (o.tokens_given) {
        rec.tokens_known = 1;
        rec.tokens_out = o.tokens;
    } else if (o.tokens_regex && cr.tokens_found) {
        rec.tokens_known = 1;
        rec.tokens_out = cr.tokens;
    }
    etok_cli_idle_history("run", &rec, !o.no_idle_history); /* before the analysis: it adds a warning */
    etok_bgload_fill_record(&rec); /* per-phase background load, in the record */

    const char *saved_path = o.out_path;
    char rescue[4096];
    int saved = etok_record_save(&rec, o.out_path, &err) == 0;
    if (!saved) {
        /* checked writable before the run, but it changed: do not lose the measurement */
        fprintf(stderr, "etok run: %s\n", err.msg);
        const char *tmp = getenv("TMPDIR");
        snprintf(rescue, sizeof rescue, "%s/etok-run-%d.json", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        etok_err err2 = {0};
        if (etok_record_save(&rec, rescue, &err2) == 0) {
            fprintf(stderr, "etok run: the record was saved to %s instead\n", rescue);
            saved = 1;
            saved_path = rescue;
        }
        if (rc == ETOK_EXIT_OK) rc = ETOK_EXIT_OUTPUT;
    }

    etok_energy_summary sum;
    if (etok_energy_summarize(&rec, &sum) == 0) {
        if (o.json) {
            json_t *j = etok_run_summary_json(&rec, &sum);
            if (j) {
                if (o.process_boundary) json_object_set_new(j, "background", etok_run_summary_background_json(&rec, &sum, 1));
                if (pp.pe) json_object_set_new(j, "processes", pp_report(pp.pe, NULL));
                if (saved) json_object_set_new(j, "record", json_string(saved_path));
                json_dumpf(j, stderr, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
                fputc('\n', stderr);
                json_decref(j);
            }
        } else {
            etok_run_summary_text(stderr, &rec, &sum, saved ? saved_path : NULL);
            etok_run_summary_background(stderr, &rec, &sum, o.process_boundary);
            if (pp.pe) (void)pp_report(pp.pe, stderr);
            if (o.tokens_regex && ran && !cr.tokens_found)
                fprintf(stderr, "  note: --tokens-regex '%s' matched no line with an integer count\n", o.tokens_regex);
            else if (o.tokens_regex && cr.tokens_found)
                fprintf(stderr, "  tokens from     --tokens-regex, %s of %d matching lines%s: %s%s\n",
                        o.tokens_pick == ETOK_TOKENS_SUM ? "sum" : o.tokens_pick == ETOK_TOKENS_FIRST ? "first" : "last",
                        cr.tokens_matches, cr.tokens_capped ? " (capped at 9e18)" : "",
                        o.tokens_pick == ETOK_TOKENS_SUM ? "last: " : "", cr.tokens_line);
        }
    } else {
        fprintf(stderr, "etok run: cannot analyse the record (invalid windows)\n");
    }
    etok_energy_summary_free(&sum);
    etok_record_free(&rec);
    etok_procenergy_close(pp.pe);
    /* Signals kept blocked until the record is written; one that came after the command
     * ended is consumed here rather than killing us on unblock. */
    close(sig_fd);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&sigs, NULL, &zero) > 0) {}
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
