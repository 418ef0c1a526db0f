/* hugemem.h — the engine's large buffers (weights read every token, the KV cache) in 2 MiB pages
 * where the kernel grants them.
 *
 * A one-thread decode step streams every weight once. On 4 KiB pages that stream crosses a page,
 * a TLB miss and the end of the hardware prefetcher's run every 4 KiB; on 2 MiB pages it does
 * so 512 times less often (docs/ENGINE.md, "Weights in 2 MiB pages": SmolLM2 Q4_1 decode ran
 * 12-23% faster on an EPYC guest). The pages are transparent huge pages asked for with
 * madvise(MADV_HUGEPAGE): the kernel may grant fewer (or none, when
 * /sys/kernel/mm/transparent_hugepage/enabled is "never"), so the buffer works either way and
 * etok_hugemem_huge_bytes says how much was granted. ETOK_HUGEPAGES=0 asks for none and leaves
 * the weights where they were (in the file's mapping, or in separate copies), for side-by-side
 * measurement. */
#ifndef ETOK_ENGINE_HUGEMEM_H
#define ETOK_ENGINE_HUGEMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ETOK_HUGEMEM_ENV "ETOK_HUGEPAGES"
#define ETOK_HUGE_PAGE ((size_t)2 << 20)

typedef struct {
    uint8_t *base; /* 2 MiB aligned; NULL when empty */
    size_t bytes;  /* as asked */
    size_t mapped; /* bytes rounded up to whole pages, and a guard page: what etok_hugemem_free unmaps */
    int huge;      /* 1: MADV_HUGEPAGE was asked for and accepted */
} etok_hugemem;

/* Zeroed anonymous memory of `bytes` (> 0), 2 MiB aligned, with huge pages asked for unless
 * ETOK_HUGEPAGES=0. Returns 0, or -1 when the mapping fails (h left empty). */
int etok_hugemem_alloc(etok_hugemem *h, size_t bytes);
void etok_hugemem_free(etok_hugemem *h);

/* Are huge pages asked for: ETOK_HUGEPAGES unset or "1" (not "0")? */
int etok_hugemem_wanted(void);
/* ETOK_HUGEPAGES unset, "0" or "1": 0; anything else: -1 with a message in err (the CLI stops
 * before any command, as for ETOK_ISA; etok_model_load refuses to load). */
int etok_hugemem_env_check(char *err, size_t errlen);

/* Bytes of [base, base + bytes) backed by huge pages now: the AnonHugePages of the mapping in
 * /proc/self/smaps (always the real one: ETOK_PROC_ROOT fixtures cannot hold this process's
 * addresses). 0 for an empty buffer; -1 when smaps cannot be read or has no such mapping. */
double etok_hugemem_huge_bytes(const etok_hugemem *h);

/* The AnonHugePages (bytes) of the mapping that holds address `addr` in an smaps text; -1 when
 * there is no such mapping or it has no such field. Split out to be tested on fixture text. */
double etok_smaps_anon_huge(FILE *smaps, uintptr_t addr);

/* The kernel's transparent huge page mode, the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled (under ETOK_SYSFS_ROOT): "always", "madvise" or
 * "never"; "unknown" when it cannot be read. */
const char *etok_thp_mode(char *buf, size_t cap);

#endif
