/* The scans the proxy runs over every large request's bytes before it forwards them.
 *
 *   split_object(data) the members of a compact JSON object as (key start, key end, value start,
 *                      value end), the whole document checked on the way (its UTF-8, strictly,
 *                      and its JSON, as msgspec's decoder checks it), or None: declined, because
 *                      it is not such an object, not valid, or not surely read the way msgspec and
 *                      json.loads read it. The caller then splits with msgspec (providers/body.py).
 *   utf8_valid(data)   whether data is UTF-8 exactly as codecs.utf_8_decode(data, "strict") accepts
 *                      it: no overlong forms, no encoded surrogates, nothing above U+10FFFF, no
 *                      sequence cut short.
 *   media_type(data)   whether data holds "type", optional JSON whitespace, ':', optional
 *                      whitespace, then one of the media types as a string: the same question as
 *                      tokens/media.py's regular expression, which stays the reference.
 *
 * Why C: on a megabyte request the UTF-8 check, msgspec's split and the media expression were
 * ~1.1 ms of the proxy's per-megabyte work in Python (msgspec skips a string a byte at a time; the
 * expression's literal prefix matches every content block's "type"), more than the whole added
 * latency of a bare pass-through. Here strings are skipped 16 bytes a step (SSE2), the UTF-8 is
 * checked 32 a step (AVX2, chosen at run time; a byte loop elsewhere), and the GIL is released
 * over large buffers so other requests' small work goes on meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Buffers from this size on are scanned without the GIL (the scan only reads the exported bytes,
 * which the buffer protocol keeps alive and which bytes never change). */
#define NOGIL_MIN 65536

/* The length of the ASCII run at s[0:n]. */
static Py_ssize_t ascii_run(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
#if defined(__SSE2__)
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i)), b = _mm_loadu_si128((const __m128i *)(s + i + 16)),
                c = _mm_loadu_si128((const __m128i *)(s + i + 32)), d = _mm_loadu_si128((const __m128i *)(s + i + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)))) break;
    }
    for (; i + 16 <= n; i += 16) {
        int mask = _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(s + i)));
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
#else
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ULL) break;
    }
#endif
    while (i < n && s[i] < 0x80) i++;
    return i;
}

/* Unicode's table of well-formed byte sequences (The Unicode Standard, Table 3-7), which is what
 * Python's strict UTF-8 decoder accepts. */
static int utf8_valid_scalar(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        i += ascii_run(s + i, n - i);
        /* a few multi-byte characters, then usually ASCII again */
        while (i < n && s[i] >= 0x80) {
            unsigned char c = s[i];
            if (c >= 0xC2 && c <= 0xDF) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
                i += 2;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (i + 2 >= n) return 0;
                unsigned char c1 = s[i + 1];
                unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
                if (c1 < lo || c1 > hi || (s[i + 2] & 0xC0) != 0x80) return 0;
                i += 3;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (i + 3 >= n) return 0;
                unsigned char c1 = s[i + 1];
                unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
                if (c1 < lo || c1 > hi || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
                i += 4;
            } else {
                return 0; /* a continuation byte without its lead, C0, C1 or F5..FF */
            }
        }
    }
    return 1;
}


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* The same table checked 32 bytes at a time with AVX2, by looking up each byte's high nibble and
 * its predecessor's two nibbles: the "lookup" algorithm of J. Keiser and D. Lemire, "Validating
 * UTF-8 in less than one instruction per byte" (Software: Practice and Experience, 2021), as
 * simdjson implements it. Each table entry is a set of error bits; a byte pair is an error where
 * all three lookups share a bit. The second and third continuation bytes a 3- or 4-byte lead
 * needs are checked from the bytes two and three back. */
#define TOO_SHORT (1 << 0)  /* 11______ followed by 0_______ or 11______ */
#define TOO_LONG (1 << 1)   /* 0_______ followed by 10______ */
#define OVERLONG_3 (1 << 2) /* 11100000 100_____ */
#define TOO_LARGE (1 << 3)  /* 11110100 1001____ and above */
#define SURROGATE (1 << 4)  /* 11101101 101_____ */
#define OVERLONG_2 (1 << 5) /* 1100000_ 10______ */
#define TOO_LARGE_1000 (1 << 6)
#define OVERLONG_4 (1 << 6) /* 11110000 1000____ */
#define TWO_CONTS (1 << 7)  /* 10______ 10______ */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

__attribute__((target("avx2"))) static inline __m256i table16(char b0, char b1, char b2, char b3, char b4, char b5,
                                                               char b6, char b7, char b8, char b9, char b10,
                                                               char b11, char b12, char b13, char b14, char b15) {
    return _mm256_setr_epi8(b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15,
                            b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15);
}

/* input shifted right by n bytes across the block boundary: byte i is the byte n before it */
#define PREV(input, prev, n) _mm256_alignr_epi8((input), _mm256_permute2x128_si256((prev), (input), 0x21), 16 - (n))

__attribute__((target("avx2"))) static inline __m256i block_errors(__m256i input, __m256i prev_input) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i byte_1_high_table = table16(
        TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
        TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
        TOO_SHORT | OVERLONG_2, TOO_SHORT, TOO_SHORT | OVERLONG_3 | SURROGATE,
        TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4);
    const __m256i byte_1_low_table = table16(
        CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4, CARRY | OVERLONG_2, CARRY, CARRY,
        CARRY | TOO_LARGE, CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE, CARRY | TOO_LARGE | TOO_LARGE_1000,
        CARRY | TOO_LARGE | TOO_LARGE_1000);
    const __m256i byte_2_high_table = table16(
        TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
        TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT);
    __m256i prev1 = PREV(input, prev_input, 1);
    __m256i b1h = _mm256_shuffle_epi8(byte_1_high_table, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low4));
    __m256i b1l = _mm256_shuffle_epi8(byte_1_low_table, _mm256_and_si256(prev1, low4));
    __m256i b2h = _mm256_shuffle_epi8(byte_2_high_table, _mm256_and_si256(_mm256_srli_epi16(input, 4), low4));
    __m256i special = _mm256_and_si256(_mm256_and_si256(b1h, b1l), b2h);
    /* 0x80 where the byte must be a lead's second or third continuation (111_____ two back, 1111____ three back) */
    __m256i third = _mm256_subs_epu8(PREV(input, prev_input, 2), _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(PREV(input, prev_input, 3), _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, special);
}

__attribute__((target("avx2"))) static int utf8_valid_avx2(const unsigned char *s, Py_ssize_t n) {
    __m256i prev = _mm256_setzero_si256(), error = _mm256_setzero_si256();
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i input = _mm256_loadu_si256((const __m256i *)(s + i));
        error = _mm256_or_si256(error, block_errors(input, prev));
        prev = input;
    }
    /* the tail (under 32 bytes) and at least one zero after it: a sequence cut short by the end of
     * the data is followed by ASCII, an error (without a tail, by the previous block's end) */
    unsigned char last[32] = {0};
    memcpy(last, s + i, (size_t)(n - i));
    error = _mm256_or_si256(error, block_errors(_mm256_loadu_si256((const __m256i *)last), prev));
    return _mm256_testz_si256(error, error);
}
#endif

static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
#ifdef HAVE_AVX2_PATH
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") != 0;
    if (avx2) return utf8_valid_avx2(s, n);
#endif
    return utf8_valid_scalar(s, n);
}

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* tokens/media.py _MEDIA_TYPES, each with its closing quote */
static const struct {
    const char *text;
    Py_ssize_t len;
} MEDIA[] = {{"image\"", 6}, {"image_url\"", 10}, {"document\"", 9}, {"input_image\"", 12},
             {"input_file\"", 11}, {"file\"", 5}};

/* Whether s[at:] (just after "type") continues as the regular expression's tail. */
static int media_tail(const unsigned char *s, Py_ssize_t n, Py_ssize_t at) {
    while (at < n && is_ws(s[at])) at++;
    if (at >= n || s[at] != ':') return 0;
    at++;
    while (at < n && is_ws(s[at])) at++;
    if (at >= n || s[at] != '"') return 0;
    at++;
    for (size_t k = 0; k < sizeof MEDIA / sizeof MEDIA[0]; k++)
        if (n - at >= MEDIA[k].len && memcmp(s + at, MEDIA[k].text, (size_t)MEDIA[k].len) == 0) return 1;
    return 0;
}

static int media_type(const unsigned char *s, Py_ssize_t n) {
    static const char needle[] = "\"type\"";
    Py_ssize_t i = 0;
#if defined(__SSE2__)
    /* candidates: a quote, a 't' after it and a quote five bytes on ("text" passes too; memcmp decides) */
    const __m128i quote = _mm_set1_epi8('"'), t = _mm_set1_epi8('t');
    for (; i + 21 <= n; i += 16) {
        __m128i first = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + i)), quote);
        __m128i second = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + i + 1)), t);
        __m128i last = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(s + i + 5)), quote);
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_and_si128(first, second), last));
        while (mask) {
            Py_ssize_t at = i + __builtin_ctz(mask);
            mask &= mask - 1;
            if (memcmp(s + at, needle, 6) == 0 && media_tail(s, n, at + 6)) return 1;
        }
    }
#endif
    for (; i + 6 <= n; i++) {
        const unsigned char *hit = memchr(s + i, '"', (size_t)(n - 6 - i + 1));
        if (hit == NULL) break;
        i = hit - s;
        if (memcmp(s + i, needle, 6) == 0 && media_tail(s, n, i + 6)) return 1;
    }
    return 0;
}

/* ---- split_object: a compact JSON object's top-level members, the document validated ---------- */

/* A strict JSON reader that only checks: it accepts nothing msgspec's decoder or json.loads would
 * refuse (RFC 8259 without extensions: no NaN, no trailing commas, no comments), and declines --
 * the caller then asks msgspec, as before -- whatever it is not sure to read the way they do:
 * a \u escape of a surrogate (msgspec refuses a lone one, json.loads takes it), a number of 64
 * characters or more (json.loads limits an int's digits) or with an exponent of three digits or
 * more (msgspec refuses 1e400, json.loads reads inf), an object key written with an escape or
 * repeated in its object (json.loads keeps the last: the request checks refuse it), nesting deeper
 * than MAX_DEPTH. So where it answers, msgspec's decoder and json.loads give the same value for
 * every part (providers/body.py decodes the small ones with msgspec then). */
#define MAX_DEPTH 512
#define MAX_NUMBER 64
#define MAX_EXPONENT_DIGITS 2

typedef struct {
    const unsigned char *p;
    Py_ssize_t len;
    Py_ssize_t value_start, value_end; /* the member's value, as offsets into the document */
} Key;

typedef struct {
    Py_ssize_t key_start, key_end, value_start, value_end;
} Member;

typedef struct {
    const unsigned char *s;
    Py_ssize_t n, i;
    Key *keys; /* the keys of the objects being read, innermost last (a stack) */
    Py_ssize_t nkeys, capkeys;
} Reader;

static int push_key(Reader *r, Py_ssize_t start, Py_ssize_t end) {
    if (r->nkeys == r->capkeys) {
        Py_ssize_t cap = r->capkeys ? r->capkeys * 2 : 64;
        Key *grown = realloc(r->keys, (size_t)cap * sizeof(Key));
        if (grown == NULL) return 0; /* declined: msgspec decides */
        r->keys = grown;
        r->capkeys = cap;
    }
    r->keys[r->nkeys++] = (Key){r->s + start, end - start, 0, 0};
    return 1;
}

static int key_order(const void *a, const void *b) {
    const Key *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, (size_t)x->len);
}

/* Whether the n keys (all written without escapes) are distinct. */
static int distinct(Key *keys, Py_ssize_t n) {
    if (n <= 16) {
        for (Py_ssize_t a = 1; a < n; a++)
            for (Py_ssize_t b = 0; b < a; b++)
                if (keys[a].len == keys[b].len && memcmp(keys[a].p, keys[b].p, (size_t)keys[a].len) == 0) return 0;
        return 1;
    }
    qsort(keys, (size_t)n, sizeof(Key), key_order); /* the object's own slice of the stack */
    for (Py_ssize_t a = 1; a < n; a++)
        if (key_order(&keys[a - 1], &keys[a]) == 0) return 0;
    return 1;
}

static inline void skip_ws(Reader *r) {
    while (r->i < r->n && is_ws(r->s[r->i])) r->i++;
}

static int hex4(const unsigned char *s, unsigned *code) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = s[k];
        unsigned d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *code = v;
    return 1;
}

/* r->s[r->i] is the opening quote; on success r->i is just after the closing one. *escaped tells
 * whether the string held an escape. */
static int read_string(Reader *r, int *escaped) {
    const unsigned char *s = r->s;
    Py_ssize_t i = r->i + 1, n = r->n;
    for (;;) {
#if defined(__SSE2__)
        /* the next quote, backslash or control character, 16 bytes a step */
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                      flip = _mm_set1_epi8((char)0x80), low = _mm_set1_epi8((char)(0x20 ^ 0x80));
        while (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                       _mm_cmplt_epi8(_mm_xor_si128(v, flip), low));
            int mask = _mm_movemask_epi8(hit);
            if (mask) {
                i += __builtin_ctz((unsigned)mask);
                break;
            }
            i += 16;
        }
#endif
        while (i < n && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20) i++;
        if (i >= n || s[i] < 0x20) return 0;
        if (s[i] == '"') {
            r->i = i + 1;
            return 1;
        }
        *escaped = 1;
        if (i + 1 >= n) return 0;
        switch (s[i + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            i += 2;
            break;
        case 'u': {
            unsigned code;
            if (i + 6 > n || !hex4(s + i + 2, &code)) return 0;
            if (code >= 0xD800 && code <= 0xDFFF) return 0; /* not sure: msgspec and json.loads differ */
            i += 6;
            break;
        }
        default:
            return 0;
        }
    }
}

static int digits(Reader *r) {
    Py_ssize_t start = r->i;
    while (r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9') r->i++;
    return r->i > start;
}

static int read_number(Reader *r) {
    Py_ssize_t start = r->i;
    if (r->s[r->i] == '-') r->i++;
    if (r->i >= r->n) return 0;
    if (r->s[r->i] == '0') r->i++;
    else if (!digits(r)) return 0;
    if (r->i < r->n && r->s[r->i] == '.') {
        r->i++;
        if (!digits(r)) return 0;
    }
    if (r->i < r->n && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
        r->i++;
        if (r->i < r->n && (r->s[r->i] == '+' || r->s[r->i] == '-')) r->i++;
        Py_ssize_t exponent = r->i;
        if (!digits(r) || r->i - exponent > MAX_EXPONENT_DIGITS) return 0;
    }
    return r->i - start < MAX_NUMBER;
}

static int read_literal(Reader *r, const char *word, Py_ssize_t len) {
    if (r->n - r->i < len || memcmp(r->s + r->i, word, (size_t)len) != 0) return 0;
    r->i += len;
    return 1;
}

static int read_value(Reader *r, int depth);

/* The object at r->s[r->i] ('{'): each key (written without an escape) is pushed on r->keys with its
 * value's span, for the caller to check and pop. compact: no whitespace between the tokens (the
 * document's top level, which the caller splits). 1 when read, 0 when invalid or not sure. */
static int read_members(Reader *r, int depth, int compact) {
    if (depth >= MAX_DEPTH) return 0;
    r->i++;
    if (!compact) skip_ws(r);
    if (r->i < r->n && r->s[r->i] == '}') {
        r->i++;
        return 1;
    }
    for (;;) {
        int escaped = 0;
        Py_ssize_t key = r->i;
        if (r->i >= r->n || r->s[r->i] != '"' || !read_string(r, &escaped) || escaped) return 0;
        if (!push_key(r, key + 1, r->i - 1)) return 0;
        Py_ssize_t index = r->nkeys - 1; /* an index, not a pointer: a nested object may grow r->keys */
        if (!compact) skip_ws(r);
        if (r->i >= r->n || r->s[r->i] != ':') return 0;
        r->i++;
        if (!compact) skip_ws(r);
        Py_ssize_t value = r->i;
        if (!read_value(r, depth + 1)) return 0;
        r->keys[index].value_start = value;
        r->keys[index].value_end = r->i;
        if (!compact) skip_ws(r);
        if (r->i >= r->n) return 0;
        if (r->s[r->i] == '}') {
            r->i++;
            return 1;
        }
        if (r->s[r->i] != ',') return 0;
        r->i++;
        if (!compact) skip_ws(r);
    }
}

/* One value at r->s[r->i] (no whitespace before it); 1 when read, 0 when invalid or not sure. */
static int read_value(Reader *r, int depth) {
    if (r->i >= r->n) return 0;
    int escaped = 0;
    switch (r->s[r->i]) {
    case '"':
        return read_string(r, &escaped);
    case '{': {
        Py_ssize_t base = r->nkeys;
        int ok = read_members(r, depth, 0) && distinct(r->keys + base, r->nkeys - base);
        r->nkeys = base;
        return ok;
    }
    case '[':
        if (depth >= MAX_DEPTH) return 0;
        r->i++;
        skip_ws(r);
        if (r->i < r->n && r->s[r->i] == ']') {
            r->i++;
            return 1;
        }
        for (;;) {
            if (!read_value(r, depth + 1)) return 0;
            skip_ws(r);
            if (r->i >= r->n) return 0;
            if (r->s[r->i] == ']') {
                r->i++;
                return 1;
            }
            if (r->s[r->i] != ',') return 0;
            r->i++;
            skip_ws(r);
        }
    case 't':
        return read_literal(r, "true", 4);
    case 'f':
        return read_literal(r, "false", 5);
    case 'n':
        return read_literal(r, "null", 4);
    default:
        if (r->s[r->i] == '-' || (r->s[r->i] >= '0' && r->s[r->i] <= '9')) return read_number(r);
        return 0;
    }
}

/* The members of a document that is exactly {"key":value,...} (no whitespace at the top level),
 * in order. Returns their count (>= 0), or -1 (declined: the caller decides another way), or -2
 * (out of memory). The document is valid UTF-8 and valid JSON, and no object in it repeats a key,
 * when this returns >= 0. */
static Py_ssize_t split_members(const unsigned char *s, Py_ssize_t n, Member **out) {
    Reader r = {s, n, 0, NULL, 0, 0};
    Py_ssize_t count = -1;
    *out = NULL;
    if (n < 2 || s[0] != '{' || !utf8_valid(s, n)) return -1;
    if (!read_members(&r, 0, 1) || r.i != n) goto done; /* anything after the closing brace: declined */
    Member *members = malloc((size_t)(r.nkeys ? r.nkeys : 1) * sizeof(Member));
    if (members == NULL) {
        count = -2;
        goto done;
    }
    for (Py_ssize_t k = 0; k < r.nkeys; k++) /* in order: distinct() may sort the keys */
        members[k] = (Member){r.keys[k].p - s, r.keys[k].p - s + r.keys[k].len, r.keys[k].value_start,
                              r.keys[k].value_end};
    if (!distinct(r.keys, r.nkeys)) {
        free(members);
        goto done;
    }
    *out = members;
    count = r.nkeys;
done:
    free(r.keys);
    return count;
}

static PyObject *bytescan_split_object(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    Member *members;
    Py_ssize_t count;
    if (buf.len >= NOGIL_MIN) {
        Py_BEGIN_ALLOW_THREADS
        count = split_members(buf.buf, buf.len, &members);
        Py_END_ALLOW_THREADS
    } else {
        count = split_members(buf.buf, buf.len, &members);
    }
    PyBuffer_Release(&buf);
    if (count == -2) return PyErr_NoMemory();
    if (count == -1) Py_RETURN_NONE;
    PyObject *list = PyList_New(count);
    for (Py_ssize_t k = 0; list != NULL && k < count; k++) {
        PyObject *item = Py_BuildValue("nnnn", members[k].key_start, members[k].key_end, members[k].value_start,
                                       members[k].value_end);
        if (item == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, k, item);
    }
    free(members);
    return list;
}

typedef int (*Scan)(const unsigned char *, Py_ssize_t);

static PyObject *run(PyObject *arg, Scan scan) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    int found;
    if (buf.len >= NOGIL_MIN) {
        Py_BEGIN_ALLOW_THREADS
        found = scan(buf.buf, buf.len);
        Py_END_ALLOW_THREADS
    } else {
        found = scan(buf.buf, buf.len);
    }
    PyBuffer_Release(&buf);
    return PyBool_FromLong(found);
}

static PyObject *bytescan_utf8_valid(PyObject *self, PyObject *arg) { return run(arg, utf8_valid); }
static PyObject *bytescan_media_type(PyObject *self, PyObject *arg) { return run(arg, media_type); }

static PyMethodDef methods[] = {
    {"utf8_valid", bytescan_utf8_valid, METH_O, "Whether the bytes are strict UTF-8."},
    {"media_type", bytescan_media_type, METH_O, "Whether the JSON bytes hold an object typed as media."},
    {"split_object", bytescan_split_object, METH_O,
     "A compact JSON object's members as (key start, key end, value start, value end), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bytescan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__bytescan(void) { return PyModule_Create(&module); }
