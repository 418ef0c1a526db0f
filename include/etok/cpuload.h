/* cpuload.h — background load (issue 17): reading the machine's CPU busy time and the CPU
 * time of the work being measured, so a run can tell its own load from a busy neighbour.
 *
 * One reading (etok_cpu_sample, record.h) = cumulative machine busy/total CPU seconds from
 * $ETOK_PROC_ROOT/stat (all cores) and the CPU seconds of the scope:
 *   - ETOK_CPU_SCOPE_PROCESS: etok's own process, all threads ($ETOK_PROC_ROOT/self/stat
 *     utime + stime): bench's built-in engine, serve;
 *   - ETOK_CPU_SCOPE_GROUP: every process whose process group is `pid` (etok run's command
 *     tree; children it reaped count through cutime + cstime). Each member's time is
 *     accumulated by its own positive deltas, so a member that exits keeps what it used up to
 *     the last reading (the part since then is lost: at most one sampling period). A process
 *     that leaves the group (setsid) is counted as background from then on;
 *   - ETOK_CPU_SCOPE_PID: one process (`--server-pid`), children it reaped included;
 *   - ETOK_CPU_SCOPE_NONE: nothing local (--endpoint): own_s = -1.
 * The meter set's sampler takes these readings with its own (src/meter/sampler.c,
 * etok_meters_set_cpu_scope), at most every ETOK_CPULOAD_MIN_PERIOD_S and at every mark. */
#ifndef ETOK_CPULOAD_H
#define ETOK_CPULOAD_H

#include "etok/record.h"
#include "etok/util.h"

#define ETOK_CPULOAD_MIN_PERIOD_S 0.1

typedef enum { ETOK_CPU_SCOPE_PROCESS, ETOK_CPU_SCOPE_GROUP, ETOK_CPU_SCOPE_PID, ETOK_CPU_SCOPE_NONE } etok_cpu_scope;

const char *etok_cpu_scope_name(etok_cpu_scope s); /* "process", "process_group", "pid", "none" */

typedef struct etok_cpuload_reader etok_cpuload_reader;

etok_cpuload_reader *etok_cpuload_open(etok_cpu_scope scope, long pid, etok_err *err);
/* Change whose time counts from now on (etok run: once the command's group exists). The
 * accumulated own time is kept; the new scope's time adds from its first reading. */
void etok_cpuload_set_scope(etok_cpuload_reader *cr, etok_cpu_scope scope, long pid);
etok_cpu_scope etok_cpuload_scope(const etok_cpuload_reader *cr, long *pid);
/* One reading at record time t_s. -1 with err when $ETOK_PROC_ROOT/stat cannot be read. */
int etok_cpuload_read(etok_cpuload_reader *cr, double t_s, etok_cpu_sample *out, int *n_cpus, etok_err *err);
void etok_cpuload_close(etok_cpuload_reader *cr);

#endif
