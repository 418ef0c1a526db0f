/* commands.h — one entry point per subcommand; each lives in src/cli/cmd_<name>.c and owns
 * its argument parsing. argv[0] is the subcommand name. Returns a process exit code. */
#ifndef ETOK_CLI_COMMANDS_H
#define ETOK_CLI_COMMANDS_H

#include <getopt.h>

int cmd_meters(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tpf(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_exporter(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
/* etok tpf --calibrate (src/cli/tpf_calibrate.c) */
int cmd_tpf_calibrate(int n, char **runs, const char *out_path, const char *model_name, int json);

/* etok bench's options (cmd_bench.c), the one list: getopt_long parses bench with it and
 * `etok sweep` derives its pass-through options and grid keys from it (has_arg). Ends with a
 * {NULL, 0, NULL, 0} entry. */
extern const struct option etok_bench_long_options[];

#endif
