/* main.c — `etok COMMAND [ARGS]`: dispatch to one subcommand, and the one check of standard
 * output at exit (a command's output lost to a full disk or a closed pipe is exit 5, never a
 * silent 0), and the check of ETOK_ISA and ETOK_HUGEPAGES before any command (exit 3 when invalid). Nothing else
 * lives here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "engine/hugemem.h"
#include "engine/quant.h"
#include "etok/util.h"

#ifndef ETOK_VERSION
#define ETOK_VERSION "0.1.0"
#endif

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"bench", cmd_bench, "energy-to-token evaluation of the built-in engine or an endpoint"},
    {"sweep", cmd_sweep, "a grid of bench runs and the energy-latency Pareto frontier at (q*, s*)"},
    {"run", cmd_run, "measure the energy of any command: etok run [opts] -- CMD [ARGS]"},
    {"meters", cmd_meters, "list every energy meter and whether it is available here"},
    {"report", cmd_report, "re-analyse a saved run record (JSON, Markdown, CSV, HTML)"},
    {"compare", cmd_compare, "candidates vs a baseline: deltas with 95% CIs, (q*, s*) gate, verdict"},
    {"generate", cmd_generate, "generate text with the built-in GGUF engine"},
    {"tpf", cmd_tpf, "Token Production Function: ceilings, binding constraint, sweeps, levers"},
    {"probe", cmd_probe, "measure this machine's peak FLOP/s and memory bandwidth"},
    {"serve", cmd_serve, "OpenAI-compatible server over the engine, with per-request energy"},
    {"exporter", cmd_exporter, "Prometheus exporter of this node's energy meters"},
};

static void usage(FILE *f) {
    fprintf(f, "etok %s — LLM inference evaluated as energy-to-token production\n\n"
               "usage: etok COMMAND [OPTIONS]   (etok COMMAND --help for each)\n\ncommands:\n",
            ETOK_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

/* Everything printed to stdout must have reached it: the final flush and close are checked
 * (buffered output to /dev/full fails only here) and so is the stream's error flag (an earlier
 * write that failed). A command that already failed keeps its own exit code; one that already
 * reported an output error (exit 5) is not reported twice. */
static int finish_stdout(const char *cmd, int rc) {
    errno = 0;
    int bad = ferror(stdout);
    if (fflush(stdout) != 0) bad = 1;
    int e = errno;
    if (fclose(stdout) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad || rc == ETOK_EXIT_OUTPUT) return rc; /* 5: the command has said what it could not write */
    fprintf(stderr, "etok%s%s: cannot write to standard output: %s\n", cmd ? " " : "", cmd ? cmd : "",
            e ? strerror(e) : "write error");
    return rc == ETOK_EXIT_OK ? ETOK_EXIT_OUTPUT : rc;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return ETOK_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return ETOK_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("etok %s\n", ETOK_VERSION);
        return ETOK_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) {
            /* the engine's kernel level override (quant.h) and ETOK_HUGEPAGES (engine/hugemem.h):
             * a bad value stops every command here rather than running otherwise than asked */
            char err[256];
            if (etok_isa_from_env(err, sizeof err) || etok_hugemem_env_check(err, sizeof err)) {
                fprintf(stderr, "etok %s: %s\n", COMMANDS[i].name, err);
                return ETOK_EXIT_INPUT;
            }
            return COMMANDS[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "etok: unknown command '%s' (etok --help lists them)\n", argv[1]);
    return ETOK_EXIT_USAGE;
}

int main(int argc, char **argv) {
    int rc = dispatch(argc, argv);
    const char *cmd = NULL;
    for (size_t i = 0; argc >= 2 && i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) cmd = COMMANDS[i].name;
    return finish_stdout(cmd, rc);
}
