/* fake_amdsmi.c — a stand-in libamd_smi for the tests (built as build/fake_amdsmi.so and
 * loaded through ETOK_AMDSMI_LIB). Implements only the amd-smi entry points etok's amdsmi meter
 * uses, with the real ABI (src/meter/amdsmi_abi.h), driven by environment variables read at
 * amdsmi_init:
 *   FAKE_AMDSMI_MODE        energy (default) | noinit (amdsmi_init fails with INIT_ERROR)
 *                           | noperm (amdsmi_init fails with NO_PERM)
 *   FAKE_AMDSMI_SOCKETS     sockets (default 1); FAKE_AMDSMI_GPUS_PER_SOCKET (default 1)
 *   FAKE_AMDSMI_WATTS       comma-separated power per GPU (default 100; the last value repeats)
 *   FAKE_AMDSMI_RESOLUTION  counter_resolution in µJ (default 15.3)
 *   FAKE_AMDSMI_START       accumulator at init (default 1000; near 2^64 to test the wrap)
 *   FAKE_AMDSMI_NOCOUNTER   index of a GPU whose energy count is NOT_SUPPORTED (default none)
 *   FAKE_AMDSMI_LOST_GPU    index of a GPU that is lost (NOT_FOUND) after
 *   FAKE_AMDSMI_LOST_AFTER  reads of it (default 5)
 *   FAKE_AMDSMI_RESET_AFTER reads of each GPU after which its counter restarts from 0 (driver
 *                           reload); default never
 * The accumulator is start + watts x monotonic time since amdsmi_init / resolution, modulo
 * 2^64 (uint64 arithmetic). Test code: process-wide state is fine here. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meter/amdsmi_abi.h"

#define FAKE_MAX 8

static int g_inited = 0, g_sockets = 1, g_per = 1, g_nocounter = -1, g_lost = -1, g_lost_after = 5, g_reset_after = 0;
static double g_watts[FAKE_MAX], g_t0 = 0;
static float g_res = 15.3f;
static uint64_t g_start = 1000;
static int g_reads[FAKE_MAX];
static int g_socket_tag[FAKE_MAX], g_gpu_tag[FAKE_MAX]; /* handles point into these */

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *env(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && *v ? v : d;
}

amdsmi_status_t amdsmi_init(uint64_t flags) {
    if (!(flags & AMDSMI_INIT_AMD_GPUS)) return AMDSMI_STATUS_INVAL;
    const char *mode = env("FAKE_AMDSMI_MODE", "energy");
    if (!strcmp(mode, "noinit")) return AMDSMI_STATUS_INIT_ERROR;
    if (!strcmp(mode, "noperm")) return AMDSMI_STATUS_NO_PERM;
    g_sockets = atoi(env("FAKE_AMDSMI_SOCKETS", "1"));
    g_per = atoi(env("FAKE_AMDSMI_GPUS_PER_SOCKET", "1"));
    if (g_sockets < 0) g_sockets = 0;
    if (g_per < 0) g_per = 0;
    if (g_sockets > FAKE_MAX) g_sockets = FAKE_MAX;
    if (g_sockets * g_per > FAKE_MAX) g_per = FAKE_MAX / (g_sockets ? g_sockets : 1);
    const char *w = env("FAKE_AMDSMI_WATTS", "100");
    double last = 100;
    for (int i = 0; i < FAKE_MAX; i++) {
        if (w && *w) {
            char *end;
            last = strtod(w, &end);
            w = *end == ',' ? end + 1 : NULL;
        }
        g_watts[i] = last;
    }
    g_res = (float)atof(env("FAKE_AMDSMI_RESOLUTION", "15.3"));
    g_start = strtoull(env("FAKE_AMDSMI_START", "1000"), NULL, 10);
    g_nocounter = atoi(env("FAKE_AMDSMI_NOCOUNTER", "-1"));
    g_lost = atoi(env("FAKE_AMDSMI_LOST_GPU", "-1"));
    g_lost_after = atoi(env("FAKE_AMDSMI_LOST_AFTER", "5"));
    g_reset_after = atoi(env("FAKE_AMDSMI_RESET_AFTER", "0"));
    for (int i = 0; i < FAKE_MAX; i++) {
        g_socket_tag[i] = i;
        g_gpu_tag[i] = i;
        g_reads[i] = 0;
    }
    g_t0 = mono();
    g_inited = 1;
    return AMDSMI_STATUS_SUCCESS;
}

amdsmi_status_t amdsmi_shut_down(void) {
    g_inited = 0;
    return AMDSMI_STATUS_SUCCESS;
}

amdsmi_status_t amdsmi_status_code_to_string(amdsmi_status_t r, const char **s) {
    if (!s) return AMDSMI_STATUS_INVAL;
    switch (r) {
    case AMDSMI_STATUS_SUCCESS: *s = "AMDSMI_STATUS_SUCCESS: Call succeeded."; break;
    case AMDSMI_STATUS_NOT_SUPPORTED: *s = "AMDSMI_STATUS_NOT_SUPPORTED: Command not supported."; break;
    case AMDSMI_STATUS_NOT_FOUND: *s = "AMDSMI_STATUS_NOT_FOUND: Device Not found."; break;
    case AMDSMI_STATUS_INIT_ERROR: *s = "AMDSMI_STATUS_INIT_ERROR: An error occurred when initializing internal data structures."; break;
    default: *s = "An unknown error occurred"; return AMDSMI_STATUS_UNKNOWN_ERROR;
    }
    return AMDSMI_STATUS_SUCCESS;
}

/* The real library's count/array protocol: NULL array -> count only; else fill at most *count. */
amdsmi_status_t amdsmi_get_socket_handles(uint32_t *count, amdsmi_socket_handle *h) {
    if (!g_inited) return AMDSMI_STATUS_NOT_INIT;
    if (!count) return AMDSMI_STATUS_INVAL;
    if (!h) {
        *count = (uint32_t)g_sockets;
        return AMDSMI_STATUS_SUCCESS;
    }
    uint32_t n = *count < (uint32_t)g_sockets ? *count : (uint32_t)g_sockets;
    for (uint32_t i = 0; i < n; i++) h[i] = &g_socket_tag[i];
    *count = n;
    return AMDSMI_STATUS_SUCCESS;
}

amdsmi_status_t amdsmi_get_processor_handles(amdsmi_socket_handle s, uint32_t *count, amdsmi_processor_handle *h) {
    if (!g_inited) return AMDSMI_STATUS_NOT_INIT;
    if (!count || !s) return AMDSMI_STATUS_INVAL;
    int si = *(int *)s;
    if (si < 0 || si >= g_sockets) return AMDSMI_STATUS_INVAL;
    if (!h) {
        *count = (uint32_t)g_per;
        return AMDSMI_STATUS_SUCCESS;
    }
    uint32_t n = *count < (uint32_t)g_per ? *count : (uint32_t)g_per;
    for (uint32_t i = 0; i < n; i++) h[i] = &g_gpu_tag[si * g_per + (int)i];
    *count = n;
    return AMDSMI_STATUS_SUCCESS;
}

amdsmi_status_t amdsmi_get_energy_count(amdsmi_processor_handle p, uint64_t *acc, float *res, uint64_t *ts) {
    if (!g_inited) return AMDSMI_STATUS_NOT_INIT;
    if (!p || !acc || !res || !ts) return AMDSMI_STATUS_INVAL;
    int g = *(int *)p;
    if (g < 0 || g >= FAKE_MAX) return AMDSMI_STATUS_INVAL;
    if (g == g_nocounter) return AMDSMI_STATUS_NOT_SUPPORTED;
    g_reads[g]++;
    if (g == g_lost && g_reads[g] > g_lost_after) return AMDSMI_STATUS_NOT_FOUND;
    double t = mono() - g_t0;
    uint64_t counts = (uint64_t)(g_watts[g] * t * 1e6 / (double)g_res);
    if (g_reset_after > 0 && g_reads[g] > g_reset_after) *acc = counts / 1000; /* restarted near 0 */
    else *acc = g_start + counts; /* unsigned: wraps modulo 2^64 like the real accumulator */
    *res = g_res;
    *ts = (uint64_t)(t * 1e9);
    return AMDSMI_STATUS_SUCCESS;
}

amdsmi_status_t amdsmi_get_gpu_bdf_id(amdsmi_processor_handle p, uint64_t *bdf) {
    if (!g_inited) return AMDSMI_STATUS_NOT_INIT;
    if (!p || !bdf) return AMDSMI_STATUS_INVAL;
    int g = *(int *)p;
    /* domain 0, bus 0x0c + g, device 0, function 0 */
    *bdf = ((uint64_t)(0x0c + g) << 8);
    return AMDSMI_STATUS_SUCCESS;
}
