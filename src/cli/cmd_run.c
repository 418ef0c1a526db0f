/* cmd_run.c — `etok run`. Not built yet: says so and fails, so nothing pretends to work. */
#include <stdio.h>

#include "commands.h"
#include "etok/util.h"

int cmd_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "etok run: not implemented yet\n");
    return ETOK_EXIT_FAIL;
}
