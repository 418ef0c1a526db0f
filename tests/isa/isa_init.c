/* isa_init.c — /init of the initramfs that scripts/isa_emulate.sh boots in the Bochs emulator.
 *
 * Runs as PID 1 of a minimal Linux guest. It mounts devtmpfs (and proc), connects the program's
 * stdin/stdout/stderr to the first serial port (/dev/ttyS0: the host captures it to a file; the
 * kernel's own messages go to the second serial port), loads the kernel modules listed in
 * /modules (one file name a line, may be absent), runs /prog with the arguments stored
 * NUL-separated in /args and the environment PATH, HOME, TERM plus the KEY=VALUE lines of /env
 * (may be absent), waits for it and prints one marker line
 *     ETOK_ISA_EXIT=<status>        (exit status 0..255, or 128+signal when killed)
 * which the host script parses to become its own exit status, then powers the guest off.
 * Any failure of its own is reported as ETOK_ISA_EXIT=<status> with status 125..127 and a
 * message naming the step. Plain C, static, no libc beyond syscalls wrappers glibc has.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ARGS 256

static void finish(int status)
{
    printf("\nETOK_ISA_EXIT=%d\n", status);
    fflush(stdout);
    /* A tty write returns once the bytes are queued: wait until the UART has sent them, or the
     * power-off below cuts the program's last lines (and the marker) off. */
    tcdrain(1);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

/* Reads a whole small file into a NUL-terminated heap buffer; NULL when absent or unreadable. */
static char *slurp(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

static void load_modules(void)
{
    size_t len = 0;
    char *list = slurp("/modules", &len);
    if (!list)
        return;
    for (char *save = NULL, *name = strtok_r(list, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
        if (!*name)
            continue;
        int fd = open(name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            printf("isa_init: cannot open module %s: %s\n", name, strerror(errno));
            free(list);
            finish(126);
        }
        if (syscall(SYS_finit_module, fd, "", 0) != 0) {
            printf("isa_init: loading module %s failed: %s\n", name, strerror(errno));
            close(fd);
            free(list);
            finish(126);
        }
        close(fd);
    }
    free(list);
}

int main(void)
{
    (void)mkdir("/dev", 0755);
    (void)mkdir("/proc", 0555);
    (void)mkdir("/tmp", 01777);
    (void)mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    (void)mount("proc", "/proc", "proc", 0, NULL);
    int fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
    if (fd < 0)
        fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ETOK_ISA_START\n");

    load_modules();

    size_t len = 0;
    char *args = slurp("/args", &len);
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "/prog";
    if (args) {
        for (size_t i = 0; i < len && argc <= MAX_ARGS; i += strlen(args + i) + 1)
            argv[argc++] = args + i;
    }
    argv[argc] = NULL;
    char *envp[MAX_ARGS + 4];
    int envc = 0;
    envp[envc++] = "PATH=/";
    envp[envc++] = "HOME=/";
    envp[envc++] = "TERM=dumb";
    size_t envlen = 0;
    char *env = slurp("/env", &envlen);
    if (env) {
        for (char *save = NULL, *kv = strtok_r(env, "\n", &save); kv && envc < MAX_ARGS + 3; kv = strtok_r(NULL, "\n", &save))
            if (strchr(kv, '='))
                envp[envc++] = kv;
    }
    envp[envc] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        printf("isa_init: fork failed: %s\n", strerror(errno));
        finish(127);
    }
    if (pid == 0) {
        execve("/prog", argv, envp);
        printf("isa_init: exec /prog failed: %s\n", strerror(errno));
        _exit(127);
    }
    int status = 0;
    for (;;) {
        pid_t w = wait(&status);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            printf("isa_init: wait failed: %s\n", strerror(errno));
            finish(127);
        }
    }
    if (WIFEXITED(status))
        finish(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        printf("isa_init: /prog killed by signal %d\n", WTERMSIG(status));
        finish(128 + WTERMSIG(status));
    }
    finish(127);
    return 0;
}
