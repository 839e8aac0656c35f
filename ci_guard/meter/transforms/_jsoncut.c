/* Pruning on the agent's JSON bytes, without decoding the tool result (see rawcut.py).
 *
 * Three lexical functions over compact JSON, both pure and bounds-checked on any input:
 *
 *   skeleton(data, min_len, keys, placeholder)
 *                          data with the string values longer than min_len bytes of the members
 *                          whose key is written as one of keys replaced by placeholder + a number:
 *                          (skeleton, [(start, end) of each replaced literal]), or None.
 *   cut(data, start, end, max_tokens, head_lines, tail_lines)
 *                          prune.cut() of the string literal data[start:end], computed on its bytes:
 *                          None when prune.cut() gives None (a literal too short to exceed the
 *                          limit is not read: canonical() checks it), else (head_byte, cut_byte, lines,
 *                          removed, sep, chars, head_chars, tail_chars), where head_byte and cut_byte
 *                          are the byte offsets of the kept head's end and the kept tail's start;
 *                          raises ValueError when the literal is not written exactly as msgspec
 *                          writes the string it holds, or has more than MAX_NEWLINES lines (the
 *                          caller then decodes it in Python).
 *   canonical(data, start, end)
 *                          whether the literal data[start:end] is written as msgspec writes it.
 *
 * Why C: on a conversation the proxy has never seen, every oversized result is cut in one call.
 * In Python that is a msgspec decode of the result, a count of its lines and a re-encode (~40 us
 * for a 700-line test log); here it is one pass over the bytes, 64 at a time with SSE2 on x86-64
 * (2.5 us), escape by escape with memchr elsewhere.
 * The caller relies on the bytes being UTF-8: the proxy checks every large request before this.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_ssize_t ch; /* character index of the newline in the decoded string */
    Py_ssize_t at; /* byte offset of its escape, \n (two bytes), from the content's first byte */
} Newline;

/* Where the newlines are: the cut needs them, a check does not (items == NULL and cap < 0). At
 * most MAX_NEWLINES are kept (16 MiB): a literal with more is left to the Python path, so an
 * agent's megabytes of "\n" cannot make the proxy hold 8 bytes per byte it sent. */
typedef struct {
    Newline *items;
    Py_ssize_t n, cap;
} Newlines;

#define MAX_NEWLINES ((Py_ssize_t)1 << 20)
#define NOT_RECORDED {NULL, 0, -1}

/* 0, or 1: too many to keep (the literal is declined), or -1: out of memory (exception set). */
static int push(Newlines *nl, Py_ssize_t ch, Py_ssize_t at) {
    if (nl->cap < 0) return 0;
    if (nl->n == nl->cap) {
        if (nl->cap >= MAX_NEWLINES) return 1;
        Py_ssize_t cap = nl->cap ? nl->cap * 2 : 1024;
        Newline *items = PyMem_Realloc(nl->items, (size_t)cap * sizeof(Newline));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        nl->items = items;
        nl->cap = cap;
    }
    nl->items[nl->n].ch = ch;
    nl->items[nl->n].at = at;
    nl->n++;
    return 0;
}

/* Characters in s[0:n] of UTF-8: the bytes that are not continuation bytes. */
static Py_ssize_t utf8_chars(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) count += (s[i] & 0xC0) != 0x80;
    return count;
}

/* Whether s[0:n] holds a byte of 0x80 and more (*high) or a raw control character, which JSON
 * forbids in a string (returned): eight bytes at a time, no branch per byte. */
static int control_or_high(const unsigned char *s, Py_ssize_t n, int *high) {
    uint64_t low = 0, top = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        top |= w;
        /* a byte below 0x20 among bytes below 0x80: (b - 0x20) borrows into its high bit */
        low |= (w - 0x2020202020202020ULL) & ~w;
    }
    uint64_t bits = 0x8080808080808080ULL;
    int ctrl = (low & bits) != 0, hi = (top & bits) != 0;
    for (; i < n; i++) {
        ctrl |= s[i] < 0x20;
        hi |= s[i] >= 0x80;
    }
    *high = hi;
    /* with bytes of 0x80 and more the borrow trick may misfire: those words are checked byte by byte */
    if (hi && ctrl) {
        ctrl = 0;
        for (i = 0; i < n; i++) ctrl |= s[i] < 0x20;
    }
    return ctrl;
}


static int hexval(unsigned char c) {
    /* msgspec writes lowercase hex digits; anything else is not its writing */
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* An escape at s[at] (a backslash) as msgspec writes it: its length in bytes, or 0 if it is not
 * msgspec's (another escape, "\/", a \u escape of a character it writes as itself). */
static Py_ssize_t escape_len(const unsigned char *s, Py_ssize_t n, Py_ssize_t at) {
    if (at + 1 >= n) return 0;
    switch (s[at + 1]) {
    case 'n': case '"': case '\\': case 'b': case 'f': case 'r': case 't':
        return 2;
    case 'u': {
        /* msgspec writes \u00XX only for the control characters without a short escape */
        if (at + 6 > n || s[at + 2] != '0' || s[at + 3] != '0') return 0;
        int hi = hexval(s[at + 4]), lo = hexval(s[at + 5]);
        if (hi < 0 || lo < 0) return 0;
        int code = hi * 16 + lo;
        if (code >= 0x20 || code == '\b' || code == '\f' || code == '\n' || code == '\r' || code == '\t') return 0;
        return 6;
    }
    default:
        return 0;
    }
}

#if defined(__SSE2__)
#include <emmintrin.h>

/* The backslashes of s[0:16] as bits; ORs into *high its bytes (their top bits tell a byte of 0x80
 * and more), into *control a mask of its bytes below 0x20 (compared as signed after flipping the
 * top bit) and into *quote one of its quotes. They stay vectors until the end: no movemask per
 * block for them. */
static inline uint64_t block16(const unsigned char *s, __m128i *high, __m128i *control, __m128i *quote) {
    const __m128i backslash = _mm_set1_epi8('\\'), flip = _mm_set1_epi8((char)0x80),
                  low = _mm_set1_epi8((char)(0x20 ^ 0x80)), dquote = _mm_set1_epi8('"');
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    *high = _mm_or_si128(*high, v);
    *control = _mm_or_si128(*control, _mm_cmplt_epi8(_mm_xor_si128(v, flip), low));
    *quote = _mm_or_si128(*quote, _mm_cmpeq_epi8(v, dquote));
    return (uint64_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash));
}

/* walk() for ASCII content, 64 bytes at a time: every backslash found by compares, no call per
 * line. A test log has a newline every ~40 bytes, so nearly every 64-byte chunk holds one: a
 * branch per chunk is predictable where one per 16 bytes was not (~2x faster, measured).
 * 2: the content is not ASCII (walk() then counts UTF-8 characters its own way). */
static int walk_ascii(const unsigned char *s, Py_ssize_t n, Newlines *nl, Py_ssize_t *chars,
                      Py_ssize_t *escaped_quotes, int *quotes) {
    Py_ssize_t saved = 0, skip = 0; /* bytes the escapes save; the first byte past the last escape */
    uint64_t control = 0, high = 0, quote = 0;
    __m128i vhigh = _mm_setzero_si128(), vcontrol = _mm_setzero_si128(), vquote = _mm_setzero_si128();
    for (Py_ssize_t base = 0; base < n; base += 64) {
        uint64_t found = 0;
        if (base + 64 <= n) {
            found = block16(s + base, &vhigh, &vcontrol, &vquote)
                    | block16(s + base + 16, &vhigh, &vcontrol, &vquote) << 16
                    | block16(s + base + 32, &vhigh, &vcontrol, &vquote) << 32
                    | block16(s + base + 48, &vhigh, &vcontrol, &vquote) << 48;
        } else {
            for (Py_ssize_t j = 0; base + j < n; j++) {
                unsigned char c = s[base + j];
                found |= (uint64_t)(c == '\\') << j;
                high |= c >= 0x80;
                control |= c < 0x20;
                quote |= c == '"';
            }
        }
        while (found) {
            Py_ssize_t at = base + __builtin_ctzll(found);
            found &= found - 1;
            if (at < skip) continue; /* the second backslash of an escaped backslash */
            if (at + 1 < n && s[at + 1] == '"') { /* a quote: most escapes of JSON output */
                (*escaped_quotes)++;
                saved += 1;
                skip = at + 2;
                continue;
            }
            if (at + 1 < n && s[at + 1] == 'n') { /* a newline: most escapes of a log */
                if (nl->n < nl->cap) {
                    nl->items[nl->n].ch = at - saved;
                    nl->items[nl->n].at = at;
                    nl->n++;
                } else {
                    int pushed = push(nl, at - saved, at);
                    if (pushed != 0) return pushed;
                }
                saved += 1;
                skip = at + 2;
                continue;
            }
            Py_ssize_t len = escape_len(s, n, at);
            if (len == 0) return 1;
            saved += len - 1;
            skip = at + len;
        }
    }
    control |= (uint64_t)_mm_movemask_epi8(vcontrol);
    high |= (uint64_t)_mm_movemask_epi8(vhigh);
    quote |= (uint64_t)_mm_movemask_epi8(vquote);
    if (control) return 1;
    if (high) return 2;
    *chars = n - saved;
    *quotes = quote != 0;
    return 0;
}
#endif

static int walk_any(const unsigned char *s, Py_ssize_t n, Newlines *nl, Py_ssize_t *chars,
                    Py_ssize_t *escaped_quotes);

/* How many times c is in s[0:n] (JSON output in a tool result has a quote every few bytes). */
static Py_ssize_t count_byte(const unsigned char *s, Py_ssize_t n, unsigned char c) {
    Py_ssize_t count = 0, i = 0;
#if defined(__SSE2__)
    const __m128i needle = _mm_set1_epi8((char)c);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
        count += __builtin_popcount((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)));
    }
#endif
    for (; i < n; i++) count += s[i] == c;
    return count;
}

/* One pass over the content of a string literal (between its quotes): its length in characters
 * and every newline. 0: written as msgspec writes it; 1: not (another escape, a raw control
 * character or quote, a surrogate escape); -1: out of memory (exception set). */
static int walk(const unsigned char *s, Py_ssize_t n, Newlines *nl, Py_ssize_t *chars) {
    Py_ssize_t escaped_quotes = 0;
    int walked, quotes = 1;
#if defined(__SSE2__)
    walked = walk_ascii(s, n, nl, chars, &escaped_quotes, &quotes);
    if (walked == 2) { /* not ASCII: counted again */
        nl->n = 0;
        escaped_quotes = 0;
        quotes = 1;
        walked = walk_any(s, n, nl, chars, &escaped_quotes);
    }
#else
    walked = walk_any(s, n, nl, chars, &escaped_quotes);
#endif
    /* every quote in the content must be the second byte of a \" escape (a raw one ends a literal) */
    if (walked == 0 && quotes && count_byte(s, n, '"') != escaped_quotes) return 1;
    return walked;
}

/* walk() for any content: escape by escape, counting UTF-8 characters in between. */
static int walk_any(const unsigned char *s, Py_ssize_t n, Newlines *nl, Py_ssize_t *chars,
                    Py_ssize_t *escaped_quotes) {
    int high = 0;
    if (control_or_high(s, n, &high)) return 1;
    Py_ssize_t ch = 0, p = 0;
    while (p < n) {
        const unsigned char *q = memchr(s + p, '\\', (size_t)(n - p));
        Py_ssize_t at = q ? (Py_ssize_t)(q - s) : n;
        ch += high ? utf8_chars(s + p, at - p) : at - p;
        if (at == n) break;
        Py_ssize_t len = escape_len(s, n, at);
        if (len == 0) return 1; /* "\/", a \u escape msgspec does not write, or not JSON */
        if (s[at + 1] == 'n') {
            int pushed = push(nl, ch, at);
            if (pushed != 0) return pushed;
        }
        *escaped_quotes += s[at + 1] == '"';
        ch += 1;
        p = at + len;
    }
    *chars = ch;
    return 0;
}

/* Byte offset (from the content's first byte) of character ``target``, walking from the last
 * newline before it (lines are short; a huge line is walked from its start). */
static Py_ssize_t byte_at(const unsigned char *s, Py_ssize_t n, const Newlines *nl, Py_ssize_t target) {
    Py_ssize_t lo = 0, hi = nl->n; /* first newline with ch >= target */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (nl->items[mid].ch < target) lo = mid + 1; else hi = mid;
    }
    Py_ssize_t ch = 0, p = 0;
    if (lo > 0) {
        ch = nl->items[lo - 1].ch + 1;
        p = nl->items[lo - 1].at + 2;
    }
    while (ch < target && p < n) {
        unsigned char c = s[p];
        if (c == '\\') p += (p + 1 < n && s[p + 1] == 'u') ? 6 : 2;
        else if (c < 0x80) p += 1;
        else if (c >= 0xF0) p += 4;
        else if (c >= 0xE0) p += 3;
        else p += 2;
        ch += 1;
    }
    return p < n ? p : n;
}

/* How many newlines have a character index in [from, to). */
static Py_ssize_t count_between(const Newlines *nl, Py_ssize_t from, Py_ssize_t to) {
    Py_ssize_t a = 0, b = nl->n;
    while (a < b) { Py_ssize_t m = (a + b) / 2; if (nl->items[m].ch < from) a = m + 1; else b = m; }
    Py_ssize_t c = a, d = nl->n;
    while (c < d) { Py_ssize_t m = (c + d) / 2; if (nl->items[m].ch < to) c = m + 1; else d = m; }
    return c - a;
}

static int is_newline(const Newlines *nl, Py_ssize_t ch) {
    return count_between(nl, ch, ch + 1) == 1;
}

/* The content of the string literal buf[start:end] (between its quotes), or NULL with ValueError set. */
static const unsigned char *literal(const Py_buffer *buf, Py_ssize_t start, Py_ssize_t end) {
    /* end >= 2 first: with start >= 0 too, end - start cannot overflow */
    if (start < 0 || end < 2 || end > buf->len || end - start < 2) {
        PyErr_SetString(PyExc_ValueError, "not a string literal of the buffer");
        return NULL;
    }
    const unsigned char *lit = (const unsigned char *)buf->buf + start;
    if (lit[0] != '"' || lit[end - start - 1] != '"') {
        PyErr_SetString(PyExc_ValueError, "not a string literal of the buffer");
        return NULL;
    }
    return lit + 1;
}

static PyObject *jsoncut_cut(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start, end, max_tokens, head_n, tail_n;
    if (!PyArg_ParseTuple(args, "y*nnnnn", &buf, &start, &end, &max_tokens, &head_n, &tail_n)) return NULL;
    PyObject *result = NULL;
    Newlines nl = {NULL, 0, 0};
    /* bounds that keep budget * head_lines within 64 bits (the policy's are far smaller) */
    if (max_tokens < 0 || head_n < 0 || tail_n < 0 || max_tokens > 1000000000 || head_n > 1000000000
        || tail_n > 1000000000) {
        PyErr_SetString(PyExc_ValueError, "limits out of range");
        goto done;
    }
    const unsigned char *s = literal(&buf, start, end);
    if (s == NULL) goto done;
    Py_ssize_t n = end - start - 2, chars = 0;
    /* a string has at most as many characters as its literal has bytes: within the limit, unread */
    if ((n + 3) / 4 <= max_tokens) { result = Py_NewRef(Py_None); goto done; }
    int walked = walk(s, n, &nl, &chars);
    if (walked < 0) goto done;
    if (walked > 0) {
        PyErr_SetString(PyExc_ValueError, "not written as msgspec writes it, or more lines than kept");
        goto done;
    }
    /* from here on, prune.cut() step by step, in characters; in 64 bits, where budget * head_lines
     * fits whatever Py_ssize_t is (the limits are at most 1e9 each) */
    long long L = chars;
    if ((L + 3) / 4 <= max_tokens) { result = Py_NewRef(Py_None); goto done; }
    long long budget = (long long)max_tokens * 4;
    int ends_nl = nl.n > 0 && nl.items[nl.n - 1].ch == L - 1;
    long long head_end;
    if (head_n == 0) head_end = 0;
    else if (nl.n >= head_n && nl.items[head_n - 1].ch <= budget) head_end = nl.items[head_n - 1].ch + 1;
    else head_end = L < budget + 1 ? L : budget + 1;
    long long tail_start;
    if (tail_n == 0) tail_start = L;
    else {
        long long region = L - budget - 1 > head_end ? L - budget - 1 : head_end;
        Py_ssize_t k = tail_n + ends_nl;
        if (nl.n >= k && nl.items[nl.n - k].ch >= region) tail_start = nl.items[nl.n - k].ch + 1;
        else tail_start = region;
    }
    long long tail_len = L - tail_start;
    if (head_end + tail_len > budget) {
        long long share = budget * head_n / (head_n + tail_n > 1 ? head_n + tail_n : 1);
        head_end = share;
        tail_len = budget - share > 0 ? budget - share : 0;
    }
    long long cut_end = L - tail_len, removed = cut_end - head_end;
    if (removed <= 0) { result = Py_NewRef(Py_None); goto done; }
    /* 0 <= head_end < cut_end <= L from here: each fits a Py_ssize_t */
    Py_ssize_t lines = count_between(&nl, (Py_ssize_t)head_end, (Py_ssize_t)cut_end)
                       + (is_newline(&nl, (Py_ssize_t)cut_end - 1) ? 0 : 1);
    int sep = head_end > 0 && !is_newline(&nl, (Py_ssize_t)head_end - 1);
    Py_ssize_t head_byte = start + 1 + byte_at(s, n, &nl, (Py_ssize_t)head_end);
    Py_ssize_t cut_byte = start + 1 + byte_at(s, n, &nl, (Py_ssize_t)cut_end);
    result = Py_BuildValue("nnnninnn", head_byte, cut_byte, lines, (Py_ssize_t)removed, sep, chars,
                           (Py_ssize_t)head_end, (Py_ssize_t)tail_len);
done:
    PyMem_Free(nl.items);
    PyBuffer_Release(&buf);
    return result;
}

typedef struct {
    Py_ssize_t open, close; /* a long text value: its opening and closing quote */
} Span;

/* The skeleton of the JSON object ``data`` (a message): each string value longer than min_len
 * bytes (quotes included) of a member whose key is written as one of ``keys`` replaced by
 * ``placeholder`` (a JSON string without its closing quote) followed by its number and a quote.
 * (skeleton bytes, [(start, end) of each replaced literal]), or None when there is none, or a
 * string is not terminated. */
static PyObject *jsoncut_skeleton(PyObject *self, PyObject *args) {
    Py_buffer buf, mark;
    Py_ssize_t min_len;
    PyObject *keys;
    if (!PyArg_ParseTuple(args, "y*nO!y*", &buf, &min_len, &PyTuple_Type, &keys, &mark)) return NULL;
    const unsigned char *s = buf.buf;
    Py_ssize_t n = buf.len, p = 0, key_start = -1, key_end = -1, count = 0, cap = 0;
    Span *spans = NULL;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(keys, i))) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            goto done;
        }
    }
    while (p < n) {
        const unsigned char *q = memchr(s + p, '"', (size_t)(n - p));
        if (q == NULL) break;
        Py_ssize_t open = q - s, close = open + 1;
        for (;;) { /* the closing quote: one not escaped by an odd run of backslashes */
            const unsigned char *c = memchr(s + close, '"', (size_t)(n - close));
            if (c == NULL) { result = Py_NewRef(Py_None); goto done; }
            close = c - s;
            Py_ssize_t back = 0;
            while (close - 1 - back > open && s[close - 1 - back] == '\\') back++;
            if (back % 2 == 0) break;
            close += 1;
        }
        Py_ssize_t after = close + 1, before = open - 1;
        while (after < n && (s[after] == ' ' || s[after] == '\t' || s[after] == '\n' || s[after] == '\r')) after++;
        while (before >= 0 && (s[before] == ' ' || s[before] == '\t' || s[before] == '\n' || s[before] == '\r'))
            before--;
        if (after < n && s[after] == ':') {
            key_start = open;
            key_end = close + 1;
        } else if (close + 1 - open > min_len && before >= 0 && s[before] == ':' && key_start >= 0) {
            int text = 0;
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys) && !text; i++) {
                PyObject *key = PyTuple_GET_ITEM(keys, i);
                text = PyBytes_GET_SIZE(key) == key_end - key_start
                       && memcmp(PyBytes_AS_STRING(key), s + key_start, (size_t)(key_end - key_start)) == 0;
            }
            if (text) {
                if (count == cap) {
                    cap = cap ? cap * 2 : 8;
                    Span *grown = PyMem_Realloc(spans, (size_t)cap * sizeof(Span));
                    if (grown == NULL) { PyErr_NoMemory(); goto done; }
                    spans = grown;
                }
                spans[count].open = open;
                spans[count].close = close;
                count++;
            }
        }
        p = close + 1;
    }
    if (count == 0) { result = Py_NewRef(Py_None); goto done; }
    Py_ssize_t size = n;
    char number[24];
    for (Py_ssize_t i = 0; i < count; i++)
        size += mark.len + snprintf(number, sizeof number, "%zd", i) + 1 - (spans[i].close + 1 - spans[i].open);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    PyObject *found = out ? PyList_New(count) : NULL;
    if (found == NULL) { Py_XDECREF(out); goto done; }
    char *w = PyBytes_AS_STRING(out);
    Py_ssize_t pos = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        memcpy(w, s + pos, (size_t)(spans[i].open - pos));
        w += spans[i].open - pos;
        memcpy(w, mark.buf, (size_t)mark.len);
        w += mark.len;
        int digits = snprintf(number, sizeof number, "%zd", i);
        memcpy(w, number, (size_t)digits);
        w += digits;
        *w++ = '"';
        pos = spans[i].close + 1;
        PyObject *item = Py_BuildValue("nn", spans[i].open, spans[i].close + 1);
        if (item == NULL) { Py_DECREF(out); Py_DECREF(found); goto done; }
        PyList_SET_ITEM(found, i, item);
    }
    memcpy(w, s + pos, (size_t)(n - pos));
    result = Py_BuildValue("NN", out, found);
done:
    PyMem_Free(spans);
    PyBuffer_Release(&mark);
    PyBuffer_Release(&buf);
    return result;
}

static PyObject *jsoncut_canonical(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start, end, chars = 0;
    if (!PyArg_ParseTuple(args, "y*nn", &buf, &start, &end)) return NULL;
    PyObject *result = NULL;
    Newlines nl = NOT_RECORDED;
    const unsigned char *s = literal(&buf, start, end);
    if (s == NULL) goto done;
    int walked = walk(s, end - start - 2, &nl, &chars);
    if (walked >= 0) result = PyBool_FromLong(walked == 0);
done:
    PyMem_Free(nl.items);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"cut", jsoncut_cut, METH_VARARGS, "prune.cut() of a JSON string literal, on its bytes."},
    {"canonical", jsoncut_canonical, METH_VARARGS, "Whether a JSON string literal is written as msgspec writes it."},
    {"skeleton", jsoncut_skeleton, METH_VARARGS, "JSON bytes with their long text values replaced by placeholders."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jsoncut", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jsoncut(void) { return PyModule_Create(&module); }
