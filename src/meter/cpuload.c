/* cpuload.c — background load readings (include/etok/cpuload.h): the machine's busy time from
 * $ETOK_PROC_ROOT/stat (the estimate meter's parser, so both agree on what "busy" is) and the
 * CPU time of the measured work from $ETOK_PROC_ROOT/<pid>/stat.
 * Owns: reading and accumulating; not the timing (sampler.c) nor the analysis
 * (analyse/bgload.c). Not thread-safe: the sampler serialises calls under its mutex. */
#include "etok/cpuload.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meter/driver.h"

typedef struct {
    long pid;
    unsigned long long ticks; /* utime + stime + cutime + cstime at the last reading */
    int seen;
} member;

struct etok_cpuload_reader {
    etok_cpu_scope scope;
    long pid;
    double hz;
    unsigned long long own_ticks; /* accumulated positive deltas */
    member *m;
    size_t n, cap;
};

const char *etok_cpu_scope_name(etok_cpu_scope s) {
    switch (s) {
    case ETOK_CPU_SCOPE_PROCESS: return "process";
    case ETOK_CPU_SCOPE_GROUP: return "process_group";
    case ETOK_CPU_SCOPE_PID: return "pid";
    default: return "none";
    }
}

etok_cpuload_reader *etok_cpuload_open(etok_cpu_scope scope, long pid, etok_err *err) {
    etok_cpuload_reader *cr = calloc(1, sizeof *cr);
    if (!cr) {
        etok_errc(err, ETOK_EXIT_FAIL, "cpu load: out of memory");
        return NULL;
    }
    long hz = sysconf(_SC_CLK_TCK);
    cr->hz = hz > 0 ? (double)hz : 100.0;
    etok_cpuload_set_scope(cr, scope, pid);
    return cr;
}

void etok_cpuload_set_scope(etok_cpuload_reader *cr, etok_cpu_scope scope, long pid) {
    if (!cr) return;
    cr->scope = scope;
    cr->pid = pid;
    cr->n = 0; /* members of the old scope no longer count; what they used is kept */
}

etok_cpu_scope etok_cpuload_scope(const etok_cpuload_reader *cr, long *pid) {
    if (pid) *pid = cr ? cr->pid : 0;
    return cr ? cr->scope : ETOK_CPU_SCOPE_NONE;
}

/* utime + stime + cutime + cstime and the process group of one stat file; -1 if unreadable
 * (the process has gone). */
static int proc_ticks(const char *name, unsigned long long *ticks, long *pgrp) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/stat", etok_proc_root(), name);
    char *t = etok_read_file(path, NULL);
    if (!t) return -1;
    const char *p = strrchr(t, ')'); /* comm may hold spaces and parentheses */
    unsigned long long ut, st;
    long long cut, cst;
    long pg;
    int ok = p && sscanf(p + 1, " %*c %*d %ld %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &pg, &ut, &st, &cut,
                         &cst) == 5;
    free(t);
    if (!ok) return -1;
    *ticks = ut + st + (unsigned long long)(cut > 0 ? cut : 0) + (unsigned long long)(cst > 0 ? cst : 0);
    if (pgrp) *pgrp = pg;
    return 0;
}

/* Add the positive delta of member pid (new members start from their first reading, except
 * in a process group, whose members all started inside the run: they count from 0). */
static int account(etok_cpuload_reader *cr, long pid, unsigned long long ticks, int from_zero) {
    for (size_t i = 0; i < cr->n; i++)
        if (cr->m[i].pid == pid) {
            if (ticks > cr->m[i].ticks) cr->own_ticks += ticks - cr->m[i].ticks;
            cr->m[i].ticks = ticks;
            cr->m[i].seen = 1;
            return 0;
        }
    if (cr->n == cr->cap) {
        size_t nc = cr->cap ? cr->cap * 2 : 16;
        member *nm = realloc(cr->m, nc * sizeof *nm);
        if (!nm) return -1;
        cr->m = nm;
        cr->cap = nc;
    }
    if (from_zero) cr->own_ticks += ticks;
    cr->m[cr->n++] = (member){pid, ticks, 1};
    return 0;
}

static void read_own(etok_cpuload_reader *cr) {
    unsigned long long t;
    long pg;
    for (size_t i = 0; i < cr->n; i++) cr->m[i].seen = 0;
    switch (cr->scope) {
    case ETOK_CPU_SCOPE_PROCESS:
        if (proc_ticks("self", &t, NULL) == 0) (void)account(cr, 0, t, 0);
        break;
    case ETOK_CPU_SCOPE_PID: {
        char name[32];
        snprintf(name, sizeof name, "%ld", cr->pid);
        if (proc_ticks(name, &t, NULL) == 0) (void)account(cr, cr->pid, t, 0);
        break;
    }
    case ETOK_CPU_SCOPE_GROUP: {
        if (cr->pid <= 0) break;
        DIR *d = opendir(etok_proc_root());
        if (!d) break;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!isdigit((unsigned char)e->d_name[0])) continue;
            if (proc_ticks(e->d_name, &t, &pg) == 0 && pg == cr->pid) (void)account(cr, atol(e->d_name), t, 1);
        }
        closedir(d);
        break;
    }
    default:
        return;
    }
    size_t k = 0; /* forget members that have gone (their time stays in own_ticks) */
    for (size_t i = 0; i < cr->n; i++)
        if (cr->m[i].seen) cr->m[k++] = cr->m[i];
    cr->n = k;
}

int etok_cpuload_read(etok_cpuload_reader *cr, double t_s, etok_cpu_sample *out, int *n_cpus, etok_err *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/stat", etok_proc_root());
    char *st = etok_read_file(path, NULL);
    unsigned long long busy, total;
    int n = 0;
    if (!st || etok_stat_jiffies(st, &busy, &total, &n) != 0) {
        free(st);
        return etok_errc(err, ETOK_EXIT_FAIL, "cpu load: cannot read per-core lines of %s", path);
    }
    free(st);
    read_own(cr);
    out->t_s = t_s;
    out->busy_s = (double)busy / cr->hz;
    out->total_s = (double)total / cr->hz;
    out->own_s = cr->scope == ETOK_CPU_SCOPE_NONE && cr->own_ticks == 0 ? -1.0 : (double)cr->own_ticks / cr->hz;
    if (n_cpus) *n_cpus = n;
    return 0;
}

void etok_cpuload_close(etok_cpuload_reader *cr) {
    if (!cr) return;
    free(cr->m);
    free(cr);
}
