/* hugemem.c — large buffers in transparent huge pages (hugemem.h) */
#include "engine/hugemem.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "etok/util.h"

int etok_hugemem_wanted(void) {
    const char *e = getenv(ETOK_HUGEMEM_ENV);
    return !(e && strcmp(e, "0") == 0);
}

int etok_hugemem_env_check(char *err, size_t errlen) {
    const char *e = getenv(ETOK_HUGEMEM_ENV);
    if (!e || strcmp(e, "0") == 0 || strcmp(e, "1") == 0) return 0;
    if (err && errlen)
        snprintf(err, errlen, "%s='%.40s': expected 0 (weights and KV cache on 4 KiB pages) or 1 (2 MiB pages asked for)",
                 ETOK_HUGEMEM_ENV, e);
    return -1;
}

int etok_hugemem_alloc(etok_hugemem *h, size_t bytes) {
    memset(h, 0, sizeof *h);
    const long pg = sysconf(_SC_PAGESIZE);
    const size_t page = pg > 0 ? (size_t)pg : 4096;
    if (bytes == 0 || bytes > SIZE_MAX - ETOK_HUGE_PAGE - 2 * page) return -1; /* mapped and over below fit */
    /* the buffer, then one inaccessible guard page: it keeps the kernel from merging the
     * mapping with a neighbour (so smaps reports this buffer alone) and faults an overrun */
    const size_t mapped = (bytes + page - 1) / page * page + page;
    /* map one huge page more, then unmap the slack on both sides: the buffer starts on a 2 MiB
     * boundary, so every whole 2 MiB extent inside it can be one huge page */
    const size_t over = mapped + ETOK_HUGE_PAGE;
    uint8_t *p = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    const uintptr_t a = ((uintptr_t)p + ETOK_HUGE_PAGE - 1) & ~(uintptr_t)(ETOK_HUGE_PAGE - 1);
    uint8_t *base = (uint8_t *)a;
    if (base > p) munmap(p, (size_t)(base - p));
    if (p + over > base + mapped) munmap(base + mapped, (size_t)(p + over - (base + mapped)));
    mprotect(base + mapped - page, page, PROT_NONE);
    h->base = base;
    h->bytes = bytes;
    h->mapped = mapped;
#ifdef MADV_HUGEPAGE
    if (etok_hugemem_wanted()) h->huge = madvise(base, mapped - page, MADV_HUGEPAGE) == 0;
#endif
    return 0;
}

void etok_hugemem_free(etok_hugemem *h) {
    if (h->base) munmap(h->base, h->mapped);
    memset(h, 0, sizeof *h);
}

double etok_smaps_anon_huge(FILE *f, uintptr_t addr) {
    char line[512];
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        /* a mapping's header: "lo-hi perms offset dev inode [path]", both addresses in hex */
        const char *dash = strchr(line, '-'), *sp = strchr(line, ' ');
        if (dash && sp && dash < sp && sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2) {
            if (in) return -1; /* the mapping ended without the field */
            in = lo <= addr && addr < hi;
            continue;
        }
        unsigned long long kb;
        if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) return (double)kb * 1024.0;
    }
    return -1;
}

double etok_hugemem_huge_bytes(const etok_hugemem *h) {
    if (!h->base) return 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    const double b = etok_smaps_anon_huge(f, (uintptr_t)h->base);
    fclose(f);
    return b;
}

const char *etok_thp_mode(char *buf, size_t cap) {
    char path[1024], line[256];
    snprintf(path, sizeof path, "%s/kernel/mm/transparent_hugepage/enabled", etok_sysfs_root());
    snprintf(buf, cap, "unknown");
    FILE *f = fopen(path, "r");
    if (!f) return buf;
    if (fgets(line, sizeof line, f)) {
        const char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b && b > a + 1) snprintf(buf, cap, "%.*s", (int)(b - a - 1), a + 1);
    }
    fclose(f);
    return buf;
}
