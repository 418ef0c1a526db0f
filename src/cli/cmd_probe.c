/* cmd_probe.c — `etok probe`. Not built yet: says so and fails, so nothing pretends to work. */
#include <stdio.h>

#include "commands.h"
#include "etok/util.h"

int cmd_probe(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "etok probe: not implemented yet\n");
    return ETOK_EXIT_FAIL;
}
