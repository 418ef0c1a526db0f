/* cmd_serve.c — `etok serve`. Not built yet: says so and fails, so nothing pretends to work. */
#include <stdio.h>

#include "commands.h"
#include "etok/util.h"

int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "etok serve: not implemented yet\n");
    return ETOK_EXIT_FAIL;
}
