/* cmd_tpf.c — `etok tpf`. Not built yet: says so and fails, so nothing pretends to work. */
#include <stdio.h>

#include "commands.h"
#include "etok/util.h"

int cmd_tpf(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "etok tpf: not implemented yet\n");
    return ETOK_EXIT_FAIL;
}
