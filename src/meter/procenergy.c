/* procenergy.c — per-process and per-cgroup energy (include/etok/procenergy.h): reads
 * $ETOK_PROC_ROOT/stat, every $ETOK_PROC_ROOT/PID/stat and the cgroup v2 tree's cpu.stat, and
 * splits each interval's device energy with attribute.h's CPU-time model.
 * Owns: reading and the per-consumer books. Not the model (analyse/attribute.c) nor the
 * exposition (serve/exporter.c). Cheap by design (bench/procenergy_overhead.md): each
 * process's stat file stays open and is re-read with pread (an open per process per update
 * costs three times as much in the kernel), up to a budget of half the open-file limit (at most
 * 4096; the rest are opened and closed each time; only on the real /proc: a fixture's files may
 * be replaced by new ones); a stale descriptor (the process exited, its
 * PID maybe reused) fails to read and the path is opened again. No allocation per process
 * beyond the arrays. */
#include "etok/procenergy.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etok/attribute.h"
#include "meter/driver.h"

#define MAX_CGROUPS 20000
#define MAX_CGROUP_DEPTH 32

struct etok_procenergy {
    int want_cgroups;
    double idle_power_w, hz;
    int primed;
    unsigned long long busy, total; /* /proc/stat jiffies at the last update */
    double energy_j;                /* the device's cumulative energy at the last update */
    etok_proc_energy *p;
    size_t np, capp;
    etok_cgroup_energy *c;
    size_t nc, capc;
    etok_procenergy_view v;
    size_t fd_budget, fds_held;
    long pgrp; /* != 0: only this process group (-1: none) */
    int keep_exited;
};

void etok_procenergy_set_pgrp(etok_procenergy *pe, long pgrp) {
    if (pe) pe->pgrp = pgrp;
}

void etok_procenergy_keep_exited(etok_procenergy *pe, int keep) {
    if (pe) pe->keep_exited = keep;
}

etok_procenergy *etok_procenergy_open(int cgroups, double idle_power_w, etok_err *err) {
    etok_procenergy *pe = calloc(1, sizeof *pe);
    if (!pe) {
        etok_errc(err, ETOK_EXIT_FAIL, "per-process energy: out of memory");
        return NULL;
    }
    pe->want_cgroups = cgroups;
    pe->idle_power_w = idle_power_w;
    long hz = sysconf(_SC_CLK_TCK);
    pe->hz = hz > 0 ? (double)hz : 100.0;
    struct rlimit rl;
    rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (soft == RLIM_INFINITY || soft > 8192) soft = 8192;
    pe->fd_budget = soft > 256 ? (size_t)(soft / 2) : 0;
    /* a fixture tree's files may be replaced (a new inode) rather than rewritten: held
     * descriptors only on the real /proc, whose files stay */
    if (strcmp(etok_proc_root(), "/proc") != 0) pe->fd_budget = 0;
    return pe;
}

void etok_procenergy_close(etok_procenergy *pe) {
    if (!pe) return;
    for (size_t i = 0; i < pe->np; i++)
        if (pe->p[i].fd >= 0) close(pe->p[i].fd);
    free(pe->p);
    free(pe->c);
    free(pe);
}

/* Small files (/proc/PID/stat, cpu.stat) into buf; length, or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = '\0';
    return n;
}

static int parse_pid_stat(const char *t, etok_proc_energy *out) {
    const char *l = strchr(t, '('), *r = strrchr(t, ')'); /* comm may hold spaces and parentheses */
    if (!l || !r || r < l) return -1;
    size_t n = (size_t)(r - l - 1);
    if (n >= sizeof out->comm) n = sizeof out->comm - 1;
    memcpy(out->comm, l + 1, n);
    out->comm[n] = '\0';
    for (char *c = out->comm; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == '"' || *c == '\\') *c = '_'; /* safe as a label value */
    unsigned long long ut, st, start;
    /* after ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime cutime cstime priority nice num_threads itrealvalue starttime */
    if (sscanf(r + 1, " %*c %*d %ld %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu", &out->pgrp,
               &ut, &st, &start) != 4)
        return -1;
    out->ticks = ut + st;
    out->start_ticks = start;
    return 0;
}

static int cmp_pid(const void *a, const void *b) {
    long x = ((const etok_proc_energy *)a)->pid, y = ((const etok_proc_energy *)b)->pid;
    return (x > y) - (x < y);
}

static int cmp_path(const void *a, const void *b) {
    return strcmp(((const etok_cgroup_energy *)a)->path, ((const etok_cgroup_energy *)b)->path);
}

/* Frees a process list, closing the descriptors it holds. */
static void drop_list(etok_procenergy *pe, etok_proc_energy *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (v[i].fd >= 0) close(v[i].fd), pe->fds_held--;
    free(v);
}

/* The previous entry of pid, or NULL (old is sorted by pid). */
static etok_proc_energy *old_entry(etok_proc_energy *old, size_t n, long pid) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (old[mid].pid == pid) return &old[mid];
        if (old[mid].pid < pid) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Every process now, sorted by pid (energy 0). A process's open stat descriptor moves from
 * its old entry to the new one. -1 on OOM or an unreadable root. */
static int scan_procs(etok_procenergy *pe, etok_proc_energy **out, size_t *n_out) {
    DIR *d = opendir(etok_proc_root());
    if (!d) return -1;
    int dfd = dirfd(d);
    size_t n = 0, cap = pe->np + 64;
    etok_proc_energy *v = malloc(cap * sizeof *v);
    if (!v) {
        closedir(d);
        return -1;
    }
    struct dirent *e;
    char rel[300], buf[1024];
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        long pid = atol(e->d_name);
        if (n == cap) {
            etok_proc_energy *nv = realloc(v, 2 * cap * sizeof *nv);
            if (!nv) {
                drop_list(pe, v, n);
                closedir(d);
                return -1;
            }
            v = nv;
            cap *= 2;
        }
        etok_proc_energy *o = old_entry(pe->p, pe->np, pid);
        int fd = o ? o->fd : -1;
        if (o) o->fd = -1;
        ssize_t len = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
        if (len <= 0 && fd >= 0) { /* stale: the process exited (its PID may be new) */
            close(fd);
            pe->fds_held--;
            fd = -1;
        }
        if (fd < 0) {
            snprintf(rel, sizeof rel, "%s/stat", e->d_name);
            fd = openat(dfd, rel, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue; /* gone meanwhile */
            len = pread(fd, buf, sizeof buf - 1, 0);
            if (pe->fds_held < pe->fd_budget && len > 0) pe->fds_held++;
            else {
                close(fd);
                fd = -1;
            }
        }
        if (len <= 0) {
            if (fd >= 0) close(fd), pe->fds_held--;
            continue;
        }
        buf[len] = '\0';
        memset(&v[n], 0, sizeof v[n]);
        v[n].pid = pid;
        v[n].fd = fd;
        if (parse_pid_stat(buf, &v[n]) == 0 && (pe->pgrp == 0 || v[n].pgrp == pe->pgrp)) n++;
        else if (fd >= 0) close(fd), pe->fds_held--;
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp_pid);
    *out = v;
    *n_out = n;
    return 0;
}

typedef struct {
    etok_cgroup_energy *v;
    size_t n, cap;
    int oom;
} cg_list;

/* usage_usec of dir/cpu.stat in seconds, or -1. */
static double cg_usage(const char *dir) {
    char path[1200], buf[2048];
    snprintf(path, sizeof path, "%s/cpu.stat", dir);
    if (slurp(path, buf, sizeof buf) <= 0) return -1;
    const char *u = strstr(buf, "usage_usec ");
    if (!u || (u != buf && u[-1] != '\n')) return -1;
    unsigned long long us;
    if (sscanf(u + 11, "%llu", &us) != 1) return -1;
    return (double)us / 1e6;
}

/* Adds dir (rel its path under the root) and its descendants, each with its total usage. */
static void cg_walk(cg_list *l, const char *dir, const char *rel, int depth) {
    double usage = cg_usage(dir);
    if (usage < 0) return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        etok_cgroup_energy *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) {
            l->oom = 1;
            return;
        }
        l->v = nv;
        l->cap = nc;
    }
    etok_cgroup_energy *me = &l->v[l->n++];
    memset(me, 0, sizeof *me);
    snprintf(me->path, sizeof me->path, "%s", *rel ? rel : "/");
    me->usage_s = usage;
    DIR *d = depth < MAX_CGROUP_DEPTH ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && l->n < MAX_CGROUPS && !l->oom) {
        if (e->d_name[0] == '.') continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
        char sub[1024], subrel[512];
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= sizeof sub) continue;
        if ((size_t)snprintf(subrel, sizeof subrel, "%s/%s", rel, e->d_name) >= sizeof l->v[0].path) continue;
        struct stat st;
        if (e->d_type == DT_UNKNOWN && (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))) continue;
        cg_walk(l, sub, subrel, depth + 1);
    }
    closedir(d);
}

/* Index of path in the sorted list, or -1. */
static long cg_find(const etok_cgroup_energy *v, size_t n, const char *path) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid].path, path);
        if (!c) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* The parent's index of cgroup i ("/a/b" -> "/a", "/a" -> "/"), or -1 for the root. */
static long cg_parent(const etok_cgroup_energy *v, size_t n, size_t i) {
    const char *p = v[i].path;
    const char *slash = strrchr(p, '/');
    if (!slash || !strcmp(p, "/")) return -1;
    char parent[256];
    size_t len = slash == p ? 1 : (size_t)(slash - p);
    memcpy(parent, p, len);
    parent[len] = '\0';
    return cg_find(v, n, parent);
}

/* Scale the consumers' cores down to the machine's busy cores when they add up to more. */
static double fit_scale(double sum_cores, double m) { return sum_cores > m && sum_cores > 0 ? m / sum_cores : 1; }

int etok_procenergy_update(etok_procenergy *pe, double energy_j, etok_err *err) {
    char path[512];
    snprintf(path, sizeof path, "%s/stat", etok_proc_root());
    char *st = etok_read_file(path, NULL);
    unsigned long long busy, total;
    int n_cpus = 0;
    if (!st || etok_stat_jiffies(st, &busy, &total, &n_cpus) != 0) {
        free(st);
        return etok_errc(err, ETOK_EXIT_FAIL, "per-process energy: cannot read per-core lines of %s", path);
    }
    free(st);
    etok_proc_energy *np = NULL;
    size_t nnp = 0;
    if (scan_procs(pe, &np, &nnp) != 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "per-process energy: cannot list %s (or out of memory)", etok_proc_root());
    cg_list cg = {0};
    if (pe->want_cgroups) {
        char root[512];
        snprintf(root, sizeof root, "%s/fs/cgroup", etok_sysfs_root());
        cg_walk(&cg, root, "", 0);
        if (cg.oom) {
            free(cg.v);
            drop_list(pe, np, nnp);
            return etok_errc(err, ETOK_EXIT_FAIL, "per-process energy: out of memory reading cgroups");
        }
        qsort(cg.v, cg.n, sizeof *cg.v, cmp_path);
        pe->v.cgroups_available = cg.n > 0;
    }
    double E = energy_j - pe->energy_j;
    double dt = pe->primed && n_cpus > 0 ? (double)(total - pe->total) / pe->hz / n_cpus : 0;
    double m = dt > 1e-9 && busy >= pe->busy ? (double)(busy - pe->busy) / pe->hz / dt : 0;
    int attribute = pe->primed && dt > 1e-9 && E >= 0 && total > pe->total;
    if (attribute) {
        pe->v.n_updates++;
        pe->v.covered_j += E;
        pe->v.last_machine_busy_cores = m;
        pe->v.last_interval_s = dt;
        double rest = etok_cpu_rest_energy(E, dt, pe->idle_power_w, m, n_cpus);
        /* processes: merge the old books into the new list (both sorted by pid) */
        double sum_c = 0;
        size_t j = 0;
        for (size_t i = 0; i < nnp; i++) {
            while (j < pe->np && pe->p[j].pid < np[i].pid) j++;
            int same = j < pe->np && pe->p[j].pid == np[i].pid && pe->p[j].start_ticks == np[i].start_ticks;
            unsigned long long prev = same ? pe->p[j].ticks : 0; /* new: born in this interval */
            double c = np[i].ticks > prev ? (double)(np[i].ticks - prev) / pe->hz / dt : 0;
            np[i].energy_j = c; /* cores for now */
            sum_c += c;
        }
        double k = fit_scale(sum_c, m), given = 0;
        j = 0;
        for (size_t i = 0; i < nnp; i++) {
            double c = np[i].energy_j * k;
            double e = etok_cpu_share_energy(E, dt, pe->idle_power_w, c, m, n_cpus);
            given += e;
            while (j < pe->np && pe->p[j].pid < np[i].pid) j++;
            int same = j < pe->np && pe->p[j].pid == np[i].pid && pe->p[j].start_ticks == np[i].start_ticks;
            np[i].energy_j = (same ? pe->p[j].energy_j : 0) + e;
        }
        pe->v.proc_unattributed_j += E - given;
        (void)rest; /* inside E - given: the rest of the model and the busy time no process shows */
        /* cgroups, the same way (keyed by path) */
        if (pe->want_cgroups) {
            double sum = 0;
            double *cores = malloc((cg.n + 1) * sizeof *cores);
            if (!cores) {
                free(cg.v);
                drop_list(pe, np, nnp);
                return etok_errc(err, ETOK_EXIT_FAIL, "per-process energy: out of memory");
            }
            /* each cgroup's own usage in the interval: its usage's growth less its children's
             * (usage is hierarchical; a new cgroup's whole usage is new) */
            for (size_t i = 0; i < cg.n; i++) {
                long o = cg_find(pe->c, pe->nc, cg.v[i].path);
                cores[i] = o >= 0 ? cg.v[i].usage_s - pe->c[o].usage_s : cg.v[i].usage_s;
            }
            for (size_t i = 0; i < cg.n; i++) {
                long par = cg_parent(cg.v, cg.n, i);
                long o = cg_find(pe->c, pe->nc, cg.v[i].path);
                double d = o >= 0 ? cg.v[i].usage_s - pe->c[o].usage_s : cg.v[i].usage_s;
                if (par >= 0) cores[par] -= d;
            }
            for (size_t i = 0; i < cg.n; i++) {
                cores[i] = cores[i] > 0 && cg_find(pe->c, pe->nc, cg.v[i].path) >= 0 ? cores[i] / dt : 0;
                sum += cores[i];
            }
            double kc = fit_scale(sum, m), cgiven = 0;
            for (size_t i = 0; i < cg.n; i++) {
                double e = etok_cpu_share_energy(E, dt, pe->idle_power_w, cores[i] * kc, m, n_cpus);
                cgiven += e;
                long o = cg_find(pe->c, pe->nc, cg.v[i].path);
                cg.v[i].energy_j = (o >= 0 ? pe->c[o].energy_j : 0) + e;
            }
            free(cores);
            pe->v.cgroup_unattributed_j += E - cgiven;
        }
    } else if (pe->primed) { /* a meter reset or a clock that did not move: keep the books */
        size_t j = 0;
        for (size_t i = 0; i < nnp; i++) {
            while (j < pe->np && pe->p[j].pid < np[i].pid) j++;
            int same = j < pe->np && pe->p[j].pid == np[i].pid && pe->p[j].start_ticks == np[i].start_ticks;
            np[i].energy_j = same ? pe->p[j].energy_j : 0;
        }
        size_t q = 0;
        for (size_t i = 0; i < cg.n; i++) {
            while (q < pe->nc && strcmp(pe->c[q].path, cg.v[i].path) < 0) q++;
            cg.v[i].energy_j = q < pe->nc && !strcmp(pe->c[q].path, cg.v[i].path) ? pe->c[q].energy_j : 0;
        }
    } else {
        for (size_t i = 0; i < nnp; i++) np[i].energy_j = 0;
    }
    /* what has gone keeps its energy in the exited / removed totals (or, kept, in the list) */
    size_t j = 0, n_keep = 0;
    for (size_t i = 0; i < pe->np; i++) {
        while (j < nnp && np[j].pid < pe->p[i].pid) j++;
        if (!(j < nnp && np[j].pid == pe->p[i].pid && np[j].start_ticks == pe->p[i].start_ticks)) {
            if (pe->keep_exited) pe->p[i].exited = 2; /* mark: keep */
            else pe->v.proc_exited_j += pe->p[i].energy_j;
            n_keep += pe->keep_exited;
        }
    }
    if (n_keep) {
        etok_proc_energy *nv = realloc(np, (nnp + n_keep) * sizeof *nv);
        if (nv) {
            np = nv;
            for (size_t i = 0; i < pe->np; i++)
                if (pe->p[i].exited == 2) {
                    np[nnp] = pe->p[i];
                    np[nnp].exited = 1;
                    np[nnp].fd = -1;
                    if (pe->p[i].fd >= 0) close(pe->p[i].fd), pe->fds_held--;
                    pe->p[i].fd = -1;
                    nnp++;
                }
            qsort(np, nnp, sizeof *np, cmp_pid);
        } else { /* out of memory: their energy goes to the exited total */
            for (size_t i = 0; i < pe->np; i++)
                if (pe->p[i].exited == 2) pe->v.proc_exited_j += pe->p[i].energy_j;
        }
    }
    size_t q = 0;
    for (size_t i = 0; i < pe->nc; i++) {
        while (q < cg.n && strcmp(cg.v[q].path, pe->c[i].path) < 0) q++;
        if (!(q < cg.n && !strcmp(cg.v[q].path, pe->c[i].path))) pe->v.cgroup_removed_j += pe->c[i].energy_j;
    }
    for (size_t i = 0; i < pe->np; i++) /* gone: descriptors not taken over by the new list */
        if (pe->p[i].fd >= 0) close(pe->p[i].fd), pe->fds_held--;
    free(pe->p);
    pe->p = np;
    pe->np = nnp;
    free(pe->c);
    pe->c = cg.v;
    pe->nc = cg.n;
    pe->busy = busy;
    pe->total = total;
    pe->energy_j = energy_j;
    pe->primed = 1;
    return 0;
}

void etok_procenergy_view_get(const etok_procenergy *pe, etok_procenergy_view *v) {
    *v = pe->v;
    v->procs = pe->p;
    v->n_procs = pe->np;
    v->cgroups = pe->c;
    v->n_cgroups = pe->nc;
}
