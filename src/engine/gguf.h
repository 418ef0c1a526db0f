/* gguf.h — a validating reader of GGUF v2/v3 files (the llama.cpp model container).
 *
 * Owns: parsing the header, the metadata key/values (every value type, arrays included,
 * nested arrays too), the tensor infos and the data section, over an mmap of the file (or a
 * caller's buffer, for the fuzzer). Everything is checked against the file size before use:
 * counts, string lengths, dimensions, type ids, offsets, overflow, alignment, overlapping
 * tensor data. A malformed file gives one error naming what is wrong (ETOK_EXIT_INPUT).
 * Does not own: what the tensors mean (model.c) or their block formats (quant.h). */
#ifndef ETOK_ENGINE_GGUF_H
#define ETOK_ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "etok/util.h"

/* Metadata value types (the GGUF spec's numbering). */
typedef enum {
    ETOK_GGUF_U8 = 0,
    ETOK_GGUF_I8 = 1,
    ETOK_GGUF_U16 = 2,
    ETOK_GGUF_I16 = 3,
    ETOK_GGUF_U32 = 4,
    ETOK_GGUF_I32 = 5,
    ETOK_GGUF_F32 = 6,
    ETOK_GGUF_BOOL = 7,
    ETOK_GGUF_STRING = 8,
    ETOK_GGUF_ARRAY = 9,
    ETOK_GGUF_U64 = 10,
    ETOK_GGUF_I64 = 11,
    ETOK_GGUF_F64 = 12,
    ETOK_GGUF_NTYPES
} etok_gguf_vtype;

#define ETOK_GGUF_MAX_DIMS 4
#define ETOK_GGUF_DEFAULT_ALIGNMENT 32

/* One metadata entry. For a scalar, `data` points at the value in the file (unaligned: read
 * it with the accessors). For a string, `data` points at its bytes and `n` is its length.
 * For an array, `arr_type` is the element type, `n` the element count and `data` the first
 * element (for strings: the first u64 length prefix). */
typedef struct {
    char *key;               /* NUL-terminated copy */
    uint32_t type;           /* etok_gguf_vtype */
    uint32_t arr_type;       /* element type when type == ARRAY */
    uint64_t n;              /* string length or array element count */
    const uint8_t *data;
} etok_gguf_kv;

typedef struct {
    char *name;              /* NUL-terminated copy */
    int n_dims;
    uint64_t ne[ETOK_GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims = 1 */
    uint32_t type;           /* ggml type id (quant.h: ETOK_T_*) */
    uint64_t offset;         /* relative to the data section */
    uint64_t n_elems;
    uint64_t n_bytes;
    const void *data;        /* inside the mapping */
} etok_gguf_tensor;

typedef struct etok_gguf {
    const uint8_t *base;     /* whole file */
    size_t size;
    int owns_map;            /* 1: base is our mmap */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    etok_gguf_kv *kvs;
    etok_gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;    /* start of the data section in the file */
} etok_gguf;

/* Open and validate a file (read-only mmap). NULL with err set (ETOK_EXIT_INPUT for a bad
 * file, ETOK_EXIT_FAIL when it cannot be opened). */
etok_gguf *etok_gguf_open(const char *path, etok_err *err);
/* Parse a buffer the caller keeps alive until etok_gguf_close (used by the fuzzer/tests). */
etok_gguf *etok_gguf_open_buffer(const void *buf, size_t size, etok_err *err);
void etok_gguf_close(etok_gguf *g);

const etok_gguf_kv *etok_gguf_find(const etok_gguf *g, const char *key);
const etok_gguf_tensor *etok_gguf_find_tensor(const etok_gguf *g, const char *name);
const char *etok_gguf_type_name(uint32_t vtype);

/* Accessors by key. Return 1 when found and converted, 0 when the key is absent, -1 when it
 * is present with an incompatible type or value (err set, ETOK_EXIT_INPUT). */
/* String: pointer into the file (NOT NUL-terminated) and its length. */
int etok_gguf_get_str(const etok_gguf *g, const char *key, const char **s, size_t *len, etok_err *err);
/* String as a malloc'd NUL-terminated copy (*out = NULL when absent). */
int etok_gguf_get_strdup(const etok_gguf *g, const char *key, char **out, etok_err *err);
/* Any integer type whose value fits. */
int etok_gguf_get_u32(const etok_gguf *g, const char *key, uint32_t *out, etok_err *err);
int etok_gguf_get_i64(const etok_gguf *g, const char *key, int64_t *out, etok_err *err);
/* F32 or F64. */
int etok_gguf_get_f32(const etok_gguf *g, const char *key, float *out, etok_err *err);
int etok_gguf_get_bool(const etok_gguf *g, const char *key, int *out, etok_err *err);
/* Array of strings: malloc'd arrays of pointers into the file (not NUL-terminated) and
 * lengths; free both with free(). */
int etok_gguf_get_str_array(const etok_gguf *g, const char *key, const char ***strs, size_t **lens,
                            uint64_t *n, etok_err *err);
/* Array of numbers converted to malloc'd floats / int32s (integers must fit in int32). */
int etok_gguf_get_f32_array(const etok_gguf *g, const char *key, float **out, uint64_t *n, etok_err *err);
int etok_gguf_get_i32_array(const etok_gguf *g, const char *key, int32_t **out, uint64_t *n, etok_err *err);

#endif
