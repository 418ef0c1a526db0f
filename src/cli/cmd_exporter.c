/* cmd_exporter.c — `etok exporter`. Not built yet: says so and fails, so nothing pretends to work. */
#include <stdio.h>

#include "commands.h"
#include "etok/util.h"

int cmd_exporter(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "etok exporter: not implemented yet\n");
    return ETOK_EXIT_FAIL;
}
