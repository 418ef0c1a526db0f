/* gguf.c — the validating GGUF reader (see gguf.h for what it owns).
 *
 * Parsing goes through one cursor that refuses any read past the end of the buffer, so a
 * truncated or lying file stops at the first bad field with an error naming it. Counts are
 * checked against the bytes left before anything is allocated. */
#include "engine/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/quant.h"

typedef struct {
    const uint8_t *p;
    size_t size, off;
    etok_err *err;
} cursor;

/* GGML's type ids (ggml.h's enum ggml_type, as GGUF stores them) by name, for messages about
 * types this engine does not read; NULL for ids GGML does not define either. */
static const char *ggml_type_name(uint32_t t) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",     [2] = "Q4_0",     [3] = "Q4_1",    [6] = "Q5_0",    [7] = "Q5_1",
        [8] = "Q8_0",     [9] = "Q8_1",    [10] = "Q2_K",    [11] = "Q3_K",   [12] = "Q4_K",   [13] = "Q5_K",
        [14] = "Q6_K",    [15] = "Q8_K",   [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S",
        [20] = "IQ4_NL",  [21] = "IQ3_S",  [22] = "IQ2_S",   [23] = "IQ4_XS", [24] = "I8",     [25] = "I16",
        [26] = "I32",     [27] = "I64",    [28] = "F64",     [29] = "IQ1_M",  [30] = "BF16",   [34] = "TQ1_0",
        [35] = "TQ2_0",   [39] = "MXFP4",
    };
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}
#define SUPPORTED_TYPES "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K"

static int bad(cursor *c, const char *what) {
    return etok_errc(c->err, ETOK_EXIT_INPUT, "GGUF: %s (at byte %zu of %zu)", what, c->off, c->size);
}

static int need(cursor *c, uint64_t n, const char *what) {
    if (n > c->size - c->off) {
        char buf[256];
        snprintf(buf, sizeof buf, "truncated file: %s needs %llu bytes, %zu left", what,
                 (unsigned long long)n, c->size - c->off);
        return bad(c, buf);
    }
    return 0;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    memcpy(v, c->p + c->off, 8);
    c->off += 8;
    return 0;
}

/* A string: u64 length then bytes. Returns pointer into the buffer. */
static int rd_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    if (rd_u64(c, len, what)) return -1;
    if (*len > c->size - c->off) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s: string length %llu exceeds the %zu bytes left", what,
                 (unsigned long long)*len, c->size - c->off);
        return bad(c, buf);
    }
    *s = c->p + c->off;
    c->off += *len;
    return 0;
}

static const int scalar_size[ETOK_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *etok_gguf_type_name(uint32_t t) {
    static const char *names[ETOK_GGUF_NTYPES] = {"u8",  "i8",  "u16",   "i16",   "u32", "i32", "f32",
                                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t < ETOK_GGUF_NTYPES ? names[t] : "unknown";
}

/* Skip over one value of type t (validating it), depth-limited for nested arrays. */
static int skip_value(cursor *c, uint32_t t, int depth, const char *key) {
    char buf[300];
    if (t >= ETOK_GGUF_NTYPES) {
        snprintf(buf, sizeof buf, "key '%.200s': unknown value type %u", key, t);
        return bad(c, buf);
    }
    if (t == ETOK_GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        return rd_str(c, &s, &len, key);
    }
    if (t == ETOK_GGUF_ARRAY) {
        uint32_t at;
        uint64_t n;
        if (depth > 8) {
            snprintf(buf, sizeof buf, "key '%.200s': arrays nested deeper than 8", key);
            return bad(c, buf);
        }
        if (rd_u32(c, &at, key) || rd_u64(c, &n, key)) return -1;
        if (at >= ETOK_GGUF_NTYPES) {
            snprintf(buf, sizeof buf, "key '%.200s': unknown array element type %u", key, at);
            return bad(c, buf);
        }
        if (at != ETOK_GGUF_STRING && at != ETOK_GGUF_ARRAY) {
            uint64_t sz = (uint64_t)scalar_size[at];
            if (n > (c->size - c->off) / sz) {
                snprintf(buf, sizeof buf, "key '%.200s': array of %llu %s exceeds the file", key,
                         (unsigned long long)n, etok_gguf_type_name(at));
                return bad(c, buf);
            }
            c->off += n * sz;
            return 0;
        }
        /* strings / arrays: each takes at least 8 (12) bytes, bound n before looping */
        if (n > (c->size - c->off) / 8) {
            snprintf(buf, sizeof buf, "key '%.200s': array count %llu exceeds the file", key,
                     (unsigned long long)n);
            return bad(c, buf);
        }
        for (uint64_t i = 0; i < n; i++)
            if (skip_value(c, at, depth + 1, key)) return -1;
        return 0;
    }
    uint64_t sz = (uint64_t)scalar_size[t];
    if (need(c, sz, key)) return -1;
    if (t == ETOK_GGUF_BOOL && c->p[c->off] > 1) {
        snprintf(buf, sizeof buf, "key '%.200s': bool value %u is not 0 or 1", key, c->p[c->off]);
        return bad(c, buf);
    }
    c->off += sz;
    return 0;
}

static char *dup_bytes(const uint8_t *s, uint64_t len) {
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

void etok_gguf_close(etok_gguf *g) {
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kvs[i].key);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    if (g->owns_map && g->base) munmap((void *)g->base, g->size);
    free(g);
}

static int cmp_by_offset(const void *a, const void *b) {
    const etok_gguf_tensor *x = *(etok_gguf_tensor *const *)a, *y = *(etok_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns 1 if some name repeats (names[] is sorted in place; *dup set). */
static int has_dup(const char **names, uint64_t n, const char **dup) {
    qsort(names, n, sizeof *names, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            *dup = names[i];
            return 1;
        }
    return 0;
}

static int parse(etok_gguf *g, etok_err *err) {
    cursor c = {g->base, g->size, 0, err};
    char buf[400];
    uint32_t magic;
    if (rd_u32(&c, &magic, "magic")) return -1;
    if (memcmp(g->base, "GGUF", 4) != 0) return bad(&c, "bad magic (not a GGUF file)");
    if (rd_u32(&c, &g->version, "version")) return -1;
    if (g->version != 2 && g->version != 3) {
        snprintf(buf, sizeof buf, "unsupported version %u (want 2 or 3)", g->version);
        return bad(&c, buf);
    }
    uint64_t n_tensors, n_kv;
    if (rd_u64(&c, &n_tensors, "tensor count") || rd_u64(&c, &n_kv, "metadata count")) return -1;
    /* a key/value takes >= 8+1+4+1 bytes; a tensor info >= 8+1+4+8+4+8 */
    if (n_kv > (c.size - c.off) / 14) {
        snprintf(buf, sizeof buf, "metadata count %llu cannot fit in the file", (unsigned long long)n_kv);
        return bad(&c, buf);
    }
    if (n_tensors > (c.size - c.off) / 33) {
        snprintf(buf, sizeof buf, "tensor count %llu cannot fit in the file", (unsigned long long)n_tensors);
        return bad(&c, buf);
    }
    g->kvs = calloc(n_kv ? n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return etok_errf(err, "GGUF: out of memory");
    g->alignment = ETOK_GGUF_DEFAULT_ALIGNMENT;

    for (uint64_t i = 0; i < n_kv; i++) {
        etok_gguf_kv *kv = &g->kvs[i];
        const uint8_t *ks;
        uint64_t klen;
        snprintf(buf, sizeof buf, "key of metadata entry %llu", (unsigned long long)i);
        if (rd_str(&c, &ks, &klen, buf)) return -1;
        if (klen == 0 || klen > 65535 || memchr(ks, 0, klen)) {
            snprintf(buf, sizeof buf, "metadata entry %llu: invalid key (empty, too long or with NUL)",
                     (unsigned long long)i);
            return bad(&c, buf);
        }
        if (!(kv->key = dup_bytes(ks, klen))) return etok_errf(err, "GGUF: out of memory");
        g->n_kv = i + 1;
        if (rd_u32(&c, &kv->type, kv->key)) return -1;
        if (kv->type >= ETOK_GGUF_NTYPES) {
            snprintf(buf, sizeof buf, "key '%.200s': unknown value type %u", kv->key, kv->type);
            return bad(&c, buf);
        }
        size_t start = c.off;
        if (kv->type == ETOK_GGUF_ARRAY) {
            if (need(&c, 12, kv->key)) return -1;
            memcpy(&kv->arr_type, c.p + c.off, 4);
            memcpy(&kv->n, c.p + c.off + 4, 8);
            kv->data = c.p + c.off + 12;
        } else if (kv->type == ETOK_GGUF_STRING) {
            if (need(&c, 8, kv->key)) return -1;
            memcpy(&kv->n, c.p + c.off, 8);
            kv->data = c.p + c.off + 8;
        } else {
            kv->data = c.p + c.off;
            kv->n = 1;
        }
        if (skip_value(&c, kv->type, 0, kv->key)) return -1;
        (void)start;
    }
    {
        const char **names = malloc((n_kv ? n_kv : 1) * sizeof *names);
        const char *dup = NULL;
        if (!names) return etok_errf(err, "GGUF: out of memory");
        for (uint64_t i = 0; i < n_kv; i++) names[i] = g->kvs[i].key;
        int d = has_dup(names, n_kv, &dup);
        if (d) snprintf(buf, sizeof buf, "duplicate metadata key '%.200s'", dup);
        free(names);
        if (d) return bad(&c, buf);
    }
    const etok_gguf_kv *al = etok_gguf_find(g, "general.alignment");
    if (al) {
        uint32_t a;
        if (al->type != ETOK_GGUF_U32) return bad(&c, "general.alignment must be a u32");
        memcpy(&a, al->data, 4);
        if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 24)) {
            snprintf(buf, sizeof buf, "general.alignment %u is not a power of two", a);
            return bad(&c, buf);
        }
        g->alignment = a;
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        etok_gguf_tensor *t = &g->tensors[i];
        const uint8_t *ns;
        uint64_t nlen;
        snprintf(buf, sizeof buf, "name of tensor %llu", (unsigned long long)i);
        if (rd_str(&c, &ns, &nlen, buf)) return -1;
        if (nlen == 0 || nlen > 1024 || memchr(ns, 0, nlen)) {
            snprintf(buf, sizeof buf, "tensor %llu: invalid name (empty, too long or with NUL)",
                     (unsigned long long)i);
            return bad(&c, buf);
        }
        if (!(t->name = dup_bytes(ns, nlen))) return etok_errf(err, "GGUF: out of memory");
        g->n_tensors = i + 1;
        uint32_t nd;
        if (rd_u32(&c, &nd, t->name)) return -1;
        if (nd == 0 || nd > ETOK_GGUF_MAX_DIMS) {
            snprintf(buf, sizeof buf, "tensor '%.200s': %u dimensions (want 1..%d)", t->name, nd,
                     ETOK_GGUF_MAX_DIMS);
            return bad(&c, buf);
        }
        t->n_dims = (int)nd;
        uint64_t n_elems = 1;
        for (int d = 0; d < ETOK_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (rd_u64(&c, &t->ne[d], t->name)) return -1;
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) || n_elems > ((uint64_t)1 << 50) / t->ne[d]) {
                snprintf(buf, sizeof buf, "tensor '%.200s': dimension %u = %llu is zero or too large",
                         t->name, d, (unsigned long long)t->ne[d]);
                return bad(&c, buf);
            }
            n_elems *= t->ne[d];
        }
        t->n_elems = n_elems;
        if (rd_u32(&c, &t->type, t->name)) return -1;
        int be = etok_type_block_elems(t->type), bb = etok_type_block_bytes(t->type);
        if (be == 0) {
            const char *tn = ggml_type_name(t->type);
            snprintf(buf, sizeof buf, "tensor '%.200s': tensor type %u (%s) is not supported; supported: %s", t->name,
                     t->type, tn ? tn : "unknown to etok", SUPPORTED_TYPES);
            return bad(&c, buf);
        }
        if (t->ne[0] % (uint64_t)be != 0) {
            snprintf(buf, sizeof buf, "tensor '%.200s': row length %llu is not a multiple of the %s block (%d)",
                     t->name, (unsigned long long)t->ne[0], etok_type_name(t->type), be);
            return bad(&c, buf);
        }
        t->n_bytes = n_elems / (uint64_t)be * (uint64_t)bb;
        if (rd_u64(&c, &t->offset, t->name)) return -1;
        if (t->offset % g->alignment != 0) {
            snprintf(buf, sizeof buf, "tensor '%.200s': offset %llu is not a multiple of the alignment %llu",
                     t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
            return bad(&c, buf);
        }
    }
    /* data section starts at the next alignment boundary */
    uint64_t ds = ((uint64_t)c.off + g->alignment - 1) / g->alignment * g->alignment;
    if (n_tensors > 0 && ds > g->size) return bad(&c, "truncated file: no data section");
    g->data_offset = ds;
    uint64_t data_size = g->size > ds ? g->size - ds : 0;

    if (n_tensors > 0) {
        etok_gguf_tensor **by_off = malloc(n_tensors * sizeof *by_off);
        const char **names = malloc(n_tensors * sizeof *names);
        if (!by_off || !names) {
            free(by_off);
            free(names);
            return etok_errf(err, "GGUF: out of memory");
        }
        int rc = 0;
        for (uint64_t i = 0; i < n_tensors; i++) {
            by_off[i] = &g->tensors[i];
            names[i] = g->tensors[i].name;
        }
        const char *dup = NULL;
        if (has_dup(names, n_tensors, &dup)) {
            snprintf(buf, sizeof buf, "duplicate tensor name '%.200s'", dup);
            rc = bad(&c, buf);
        }
        qsort(by_off, n_tensors, sizeof *by_off, cmp_by_offset);
        for (uint64_t i = 0; rc == 0 && i < n_tensors; i++) {
            etok_gguf_tensor *t = by_off[i];
            if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
                snprintf(buf, sizeof buf,
                         "tensor '%.200s': data [%llu, +%llu) runs past the end of the file (data section %llu bytes)",
                         t->name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes,
                         (unsigned long long)data_size);
                rc = bad(&c, buf);
            } else if (i + 1 < n_tensors && t->offset + t->n_bytes > by_off[i + 1]->offset) {
                snprintf(buf, sizeof buf, "tensors '%.150s' and '%.150s' overlap in the data section", t->name,
                         by_off[i + 1]->name);
                rc = bad(&c, buf);
            }
            if (rc == 0) t->data = g->base + ds + t->offset; /* never a pointer past the mapping (UB) */
        }
        free(by_off);
        free(names);
        if (rc) return -1;
    }
    g->n_kv = n_kv;
    g->n_tensors = n_tensors;
    return 0;
}

etok_gguf *etok_gguf_open_buffer(const void *buf, size_t size, etok_err *err) {
    etok_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        etok_errf(err, "GGUF: out of memory");
        return NULL;
    }
    g->base = buf;
    g->size = size;
    if (parse(g, err)) {
        etok_gguf_close(g);
        return NULL;
    }
    return g;
}

etok_gguf *etok_gguf_open(const char *path, etok_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO is refused, not waited on */
    if (fd < 0) {
        etok_errc(err, errno == ENOENT ? ETOK_EXIT_INPUT : ETOK_EXIT_FAIL, "%s: cannot open: %s", path,
                  strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size < 24) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: GGUF: truncated file (%lld bytes, header needs 24)", path,
                  (long long)st.st_size);
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        etok_errc(err, ETOK_EXIT_FAIL, "%s: mmap failed: %s", path, strerror(errno));
        return NULL;
    }
    etok_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, (size_t)st.st_size);
        etok_errf(err, "GGUF: out of memory");
        return NULL;
    }
    g->base = map;
    g->size = (size_t)st.st_size;
    g->owns_map = 1;
    if (parse(g, err)) {
        if (err) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            msg[sizeof msg - 1] = 0;
            etok_errc(err, ETOK_EXIT_INPUT, "%.300s: %.700s", path, msg);
        }
        etok_gguf_close(g);
        return NULL;
    }
    return g;
}

const etok_gguf_kv *etok_gguf_find(const etok_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kvs[i].key, key) == 0) return &g->kvs[i];
    return NULL;
}

const etok_gguf_tensor *etok_gguf_find_tensor(const etok_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static int wrong(const etok_gguf_kv *kv, const char *want, etok_err *err) {
    etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key '%s' is a %s%s%s, expected %s", kv->key, etok_gguf_type_name(kv->type),
              kv->type == ETOK_GGUF_ARRAY ? " of " : "",
              kv->type == ETOK_GGUF_ARRAY ? etok_gguf_type_name(kv->arr_type) : "", want);
    return -1;
}

/* Read scalar of type t at p as int64 (integers/bool) or double. */
static int scalar_int(uint32_t t, const uint8_t *p, int64_t *v, uint64_t *uv, int *is_unsigned_big) {
    *is_unsigned_big = 0;
    switch (t) {
    case ETOK_GGUF_U8: case ETOK_GGUF_BOOL: *v = p[0]; return 0;
    case ETOK_GGUF_I8: { int8_t x; memcpy(&x, p, 1); *v = x; return 0; }
    case ETOK_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); *v = x; return 0; }
    case ETOK_GGUF_I16: { int16_t x; memcpy(&x, p, 2); *v = x; return 0; }
    case ETOK_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); *v = x; return 0; }
    case ETOK_GGUF_I32: { int32_t x; memcpy(&x, p, 4); *v = x; return 0; }
    case ETOK_GGUF_I64: { int64_t x; memcpy(&x, p, 8); *v = x; return 0; }
    case ETOK_GGUF_U64: {
        uint64_t x;
        memcpy(&x, p, 8);
        *uv = x;
        if (x > (uint64_t)INT64_MAX) *is_unsigned_big = 1;
        *v = (int64_t)(x & (uint64_t)INT64_MAX);
        return 0;
    }
    default: return -1;
    }
}

static int scalar_float(uint32_t t, const uint8_t *p, double *v) {
    if (t == ETOK_GGUF_F32) {
        float f;
        memcpy(&f, p, 4);
        *v = f;
        return 0;
    }
    if (t == ETOK_GGUF_F64) {
        memcpy(v, p, 8);
        return 0;
    }
    return -1;
}

int etok_gguf_get_str(const etok_gguf *g, const char *key, const char **s, size_t *len, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != ETOK_GGUF_STRING) return wrong(kv, "string", err);
    *s = (const char *)kv->data;
    if (len) *len = (size_t)kv->n;
    return 1;
}

int etok_gguf_get_strdup(const etok_gguf *g, const char *key, char **out, etok_err *err) {
    const char *s;
    size_t len;
    *out = NULL;
    int r = etok_gguf_get_str(g, key, &s, &len, err);
    if (r != 1) return r;
    if (!(*out = dup_bytes((const uint8_t *)s, len))) return etok_errf(err, "GGUF: out of memory");
    return 1;
}

int etok_gguf_get_i64(const etok_gguf *g, const char *key, int64_t *out, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    if (!kv) return 0;
    int64_t v;
    uint64_t uv = 0;
    int big;
    if (kv->type == ETOK_GGUF_BOOL || scalar_int(kv->type, kv->data, &v, &uv, &big) != 0)
        return wrong(kv, "an integer", err);
    if (big) return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key '%s' value %llu does not fit", key, (unsigned long long)uv);
    *out = v;
    return 1;
}

int etok_gguf_get_u32(const etok_gguf *g, const char *key, uint32_t *out, etok_err *err) {
    int64_t v;
    int r = etok_gguf_get_i64(g, key, &v, err);
    if (r != 1) return r;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key '%s' value %lld is out of range", key, (long long)v);
    *out = (uint32_t)v;
    return 1;
}

int etok_gguf_get_f32(const etok_gguf *g, const char *key, float *out, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    if (!kv) return 0;
    double v;
    if (scalar_float(kv->type, kv->data, &v) != 0) return wrong(kv, "f32 or f64", err);
    *out = (float)v;
    return 1;
}

int etok_gguf_get_bool(const etok_gguf *g, const char *key, int *out, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != ETOK_GGUF_BOOL) return wrong(kv, "bool", err);
    *out = kv->data[0] != 0;
    return 1;
}

int etok_gguf_get_str_array(const etok_gguf *g, const char *key, const char ***strs, size_t **lens, uint64_t *n,
                            etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    *strs = NULL;
    *lens = NULL;
    *n = 0;
    if (!kv) return 0;
    if (kv->type != ETOK_GGUF_ARRAY || kv->arr_type != ETOK_GGUF_STRING) return wrong(kv, "array of string", err);
    const char **s = malloc((kv->n ? kv->n : 1) * sizeof *s);
    size_t *l = malloc((kv->n ? kv->n : 1) * sizeof *l);
    if (!s || !l) {
        free(s);
        free(l);
        return etok_errf(err, "GGUF: out of memory");
    }
    /* already validated by the parser: walk length-prefixed strings */
    const uint8_t *p = kv->data;
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        memcpy(&len, p, 8);
        s[i] = (const char *)p + 8;
        l[i] = (size_t)len;
        p += 8 + len;
    }
    *strs = s;
    *lens = l;
    *n = kv->n;
    return 1;
}

int etok_gguf_get_f32_array(const etok_gguf *g, const char *key, float **out, uint64_t *n, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    *out = NULL;
    *n = 0;
    if (!kv) return 0;
    if (kv->type != ETOK_GGUF_ARRAY || kv->arr_type == ETOK_GGUF_STRING || kv->arr_type == ETOK_GGUF_ARRAY ||
        kv->arr_type == ETOK_GGUF_BOOL)
        return wrong(kv, "array of numbers", err);
    float *f = malloc((kv->n ? kv->n : 1) * sizeof *f);
    if (!f) return etok_errf(err, "GGUF: out of memory");
    int sz = scalar_size[kv->arr_type];
    for (uint64_t i = 0; i < kv->n; i++) {
        const uint8_t *p = kv->data + i * (uint64_t)sz;
        double d = 0;
        int64_t v = 0;
        uint64_t uv = 0;
        int big;
        if (scalar_float(kv->arr_type, p, &d) == 0)
            f[i] = (float)d;
        else {
            scalar_int(kv->arr_type, p, &v, &uv, &big);
            f[i] = big ? (float)uv : (float)v;
        }
    }
    *out = f;
    *n = kv->n;
    return 1;
}

int etok_gguf_get_i32_array(const etok_gguf *g, const char *key, int32_t **out, uint64_t *n, etok_err *err) {
    const etok_gguf_kv *kv = etok_gguf_find(g, key);
    *out = NULL;
    *n = 0;
    if (!kv) return 0;
    if (kv->type != ETOK_GGUF_ARRAY || kv->arr_type == ETOK_GGUF_STRING || kv->arr_type == ETOK_GGUF_ARRAY ||
        kv->arr_type == ETOK_GGUF_F32 || kv->arr_type == ETOK_GGUF_F64)
        return wrong(kv, "array of integers", err);
    int32_t *a = malloc((kv->n ? kv->n : 1) * sizeof *a);
    if (!a) return etok_errf(err, "GGUF: out of memory");
    int sz = scalar_size[kv->arr_type];
    for (uint64_t i = 0; i < kv->n; i++) {
        int64_t v = 0;
        uint64_t uv = 0;
        int big;
        scalar_int(kv->arr_type, kv->data + i * (uint64_t)sz, &v, &uv, &big);
        if (big || v < INT32_MIN || v > INT32_MAX) {
            free(a);
            return etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key '%s' element %llu does not fit in int32", key,
                             (unsigned long long)i);
        }
        a[i] = (int32_t)v;
    }
    *out = a;
    *n = kv->n;
    return 1;
}
