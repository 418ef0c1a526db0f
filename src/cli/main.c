/* main.c — `etok COMMAND [ARGS]`: dispatch to one subcommand. Nothing else lives here. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
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
    {"run", cmd_run, "measure the energy of any command: etok run [opts] -- CMD [ARGS]"},
    {"meters", cmd_meters, "list every energy meter and whether it is available here"},
    {"report", cmd_report, "re-analyse a saved run record (JSON, Markdown, CSV, HTML)"},
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

int main(int argc, char **argv) {
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
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "etok: unknown command '%s' (etok --help lists them)\n", argv[1]);
    return ETOK_EXIT_USAGE;
}
