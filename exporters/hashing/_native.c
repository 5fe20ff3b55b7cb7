/*
 * exporters.hashing._native: raw identifiers to normalised text, SHA-256 and CSV lines, a whole
 * Arrow batch at a time.
 *
 * Why native code: on the export hot path, normalising in the warehouse cost twice what hashing
 * does (DuckDB's string functions and regexes, ~0.66 CPU-s per million members with an email
 * and a MAID), DuckDB's sha256 (mbedtls, no SHA-NI) ~0.4 us a value and Python's hashlib ~0.75 us
 * (a call, an object and a hex string per value), while OpenSSL's SHA-256 with SHA-NI takes
 * ~0.05 us and the byte rules below a few ns. The hashing itself is OpenSSL's (libcrypto, the
 * library Python's own hashlib uses).
 *
 * The rules are those of exporters/hashing/normalize.py, which stays their definition: emails,
 * MAIDs and external ids only (phones need libphonenumber). Its two restrictions make them
 * byte rules on UTF-8: whitespace is the six ASCII characters and lowercasing is A-Z only, and
 * no byte of a multi-byte UTF-8 sequence is ASCII. Tests compare the two on any text.
 *
 * Low-level SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but they
 * remain in every 3.x release and EVP's per-call dispatch costs 2.5x as much per short value
 * (measured: 130 ns against 52 ns), so they are used on purpose.
 *
 * Every value this module writes has a fixed shape, so no raw identifier can come out: a digest
 * cell holds 64 lowercase hex characters or 44 base64 characters, and a plain cell (MAIDs sent
 * unhashed) is allowed only with the MAID rule, which leaves nothing but a lowercase UUID.
 * Errors name rows and columns, never values.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

enum Encoding { HEX_DIGEST = 0, BASE64_DIGEST = 1, PLAIN_MAID = 2 };
enum Rule { EMAIL = 0, MAID = 1, EXTERNAL_ID = 2 };
#define DROP_INNER_WHITESPACE 1 /* google: emails lose ASCII whitespace anywhere */
#define DROP_PLUS_TAG 2         /* uid2: a gmail local part ends at its first '+' */
#define MAX_DOMAINS 4

static const char HEX[] = "0123456789abcdef";
static const char BASE64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
#define UUID_LENGTH 36

typedef struct {
    const char *text;
    Py_ssize_t length;
} Domain;

typedef struct {
    int encoding, rule, flags;
    int wide; /* int64 offsets (Arrow large_string) instead of int32 */
    Py_ssize_t offset;
    int has_validity;
    Py_ssize_t domain_count;
    Domain domains[MAX_DOMAINS]; /* gmail-like domains (lowercase): their local parts lose dots */
    Py_buffer validity, offsets, data;
    Py_ssize_t longest;          /* the longest value of the batch, in bytes */
    Py_ssize_t missing, dropped; /* null or empty values; values invalid once normalised */
} Column;

static int is_valid(const Column *c, Py_ssize_t row) {
    Py_ssize_t bit = c->offset + row;
    return !c->has_validity || ((((const unsigned char *)c->validity.buf)[bit >> 3] >> (bit & 7)) & 1);
}

static int64_t offset_at(const Column *c, Py_ssize_t row) {
    Py_ssize_t at = c->offset + row;
    return c->wide ? ((const int64_t *)c->offsets.buf)[at] : ((const int32_t *)c->offsets.buf)[at];
}

/* The six ASCII whitespace characters: tab, LF, VT, FF, CR (9-13) and space. A UTF-8
 * multi-byte sequence never holds an ASCII byte, so byte tests agree with Python's str tests. */
static int is_space(unsigned char ch) { return ch == ' ' || (ch >= '\t' && ch <= '\r'); }

static unsigned char ascii_lower(unsigned char ch) { return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch; }

static void trim(const unsigned char **value, int64_t *length) {
    while (*length && is_space(**value)) (*value)++, (*length)--;
    while (*length && is_space((*value)[*length - 1])) (*length)--;
}

static int is_gmail_domain(const Column *c, const unsigned char *domain, int64_t length) {
    for (Py_ssize_t i = 0; i < c->domain_count; i++)
        if (c->domains[i].length == length && memcmp(c->domains[i].text, domain, (size_t)length) == 0) return 1;
    return 0;
}

/* normalize.email_function in bytes: trim (or, with DROP_INNER_WHITESPACE, drop all ASCII
 * whitespace), lowercase A-Z, then exactly one '@', a non-empty local part and a dot in the
 * domain; in a gmail-like domain the local part loses its dots (and, with DROP_PLUS_TAG,
 * everything from its first '+') and must stay non-empty. Builds the text in `scratch`. */
static int64_t normalize_email(const Column *c, const unsigned char *value, int64_t length, unsigned char *scratch) {
    trim(&value, &length);
    int64_t n = 0;
    for (int64_t i = 0; i < length; i++) {
        if ((c->flags & DROP_INNER_WHITESPACE) && is_space(value[i])) continue;
        scratch[n++] = ascii_lower(value[i]);
    }
    unsigned char *at = memchr(scratch, '@', (size_t)n);
    if (at == NULL || at == scratch) return -1;
    unsigned char *domain = at + 1;
    int64_t local_length = at - scratch, domain_length = n - local_length - 1;
    if (memchr(domain, '@', (size_t)domain_length) || !memchr(domain, '.', (size_t)domain_length)) return -1;
    if (!is_gmail_domain(c, domain, domain_length)) return n;
    int64_t kept = 0;
    for (int64_t i = 0; i < local_length; i++) {
        if (scratch[i] == '+' && (c->flags & DROP_PLUS_TAG)) break;
        if (scratch[i] != '.') scratch[kept++] = scratch[i];
    }
    if (kept == 0) return -1;
    memmove(scratch + kept, at, (size_t)domain_length + 1);
    return kept + 1 + domain_length;
}

/* normalize.maid_normalizer in bytes: trimmed, a UUID in either case, lowercased, not all zeros. */
static int64_t normalize_maid(const unsigned char *value, int64_t length, unsigned char *scratch) {
    trim(&value, &length);
    if (length != UUID_LENGTH) return -1;
    int nonzero = 0;
    for (int i = 0; i < UUID_LENGTH; i++) {
        unsigned char ch = ascii_lower(value[i]);
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') return -1;
        } else if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) {
            nonzero |= ch != '0';
        } else {
            return -1;
        }
        scratch[i] = ch;
    }
    return nonzero ? UUID_LENGTH : -1;
}

/* The normalised text of a non-empty value (in `scratch` or inside the value), or NULL when
 * the value is invalid; its length in `*length`. */
static const unsigned char *normalize(const Column *c, const unsigned char *value, int64_t *length,
                                      unsigned char *scratch) {
    if (c->rule == EXTERNAL_ID) { /* external_id_normalizer: trimmed, blank is invalid */
        trim(&value, length);
        return *length ? value : NULL;
    }
    *length = c->rule == EMAIL ? normalize_email(c, value, *length, scratch) : normalize_maid(value, *length, scratch);
    return *length < 0 ? NULL : scratch;
}

static char *write_hex(char *out, const unsigned char *md) {
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        *out++ = HEX[md[i] >> 4];
        *out++ = HEX[md[i] & 15];
    }
    return out;
}

static char *write_base64(char *out, const unsigned char *md) {
    int i = 0;
    for (; i + 3 <= SHA256_DIGEST_LENGTH; i += 3) {
        unsigned v = ((unsigned)md[i] << 16) | ((unsigned)md[i + 1] << 8) | md[i + 2];
        *out++ = BASE64[v >> 18];
        *out++ = BASE64[(v >> 12) & 63];
        *out++ = BASE64[(v >> 6) & 63];
        *out++ = BASE64[v & 63];
    }
    unsigned v = ((unsigned)md[i] << 16) | ((unsigned)md[i + 1] << 8); /* 32 = 30 + 2 bytes left */
    *out++ = BASE64[v >> 18];
    *out++ = BASE64[(v >> 12) & 63];
    *out++ = BASE64[(v >> 6) & 63];
    *out++ = '=';
    return out;
}

/* Writes one cell of normalised text: its digest, or (PLAIN_MAID, only with the MAID rule,
 * which leaves nothing but a lowercase UUID) the text itself. */
static char *write_cell(char *out, int encoding, const unsigned char *text, int64_t length) {
    if (encoding == PLAIN_MAID) {
        memcpy(out, text, UUID_LENGTH);
        return out + UUID_LENGTH;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, text, (size_t)length);
    SHA256_Final(md, &ctx);
    return encoding == HEX_DIGEST ? write_hex(out, md) : write_base64(out, md);
}

static Py_ssize_t cell_width(int encoding) {
    return encoding == HEX_DIGEST ? 64 : encoding == BASE64_DIGEST ? 44 : UUID_LENGTH;
}

/* Checks the rule and encoding, that the buffers cover `rows` values and that the offsets stay
 * inside the data: a malformed column raises instead of reading out of bounds. Notes the
 * longest value, for the scratch buffer. */
static int check_column(Column *c, Py_ssize_t rows, Py_ssize_t index) {
    Py_ssize_t width = c->wide ? 8 : 4;
    if (c->encoding < HEX_DIGEST || c->encoding > PLAIN_MAID) {
        PyErr_Format(PyExc_ValueError, "column %zd: unknown encoding %d", index, c->encoding);
        return -1;
    }
    if (c->rule < EMAIL || c->rule > EXTERNAL_ID) {
        PyErr_Format(PyExc_ValueError, "column %zd: unknown rule %d", index, c->rule);
        return -1;
    }
    if (c->encoding == PLAIN_MAID && c->rule != MAID) {
        PyErr_Format(PyExc_ValueError, "column %zd: only MAIDs are sent unhashed", index);
        return -1;
    }
    /* by subtraction: offset and rows are not negative, and no sum may overflow */
    if (c->offset < 0 || c->offsets.len / width - 1 < rows || c->offsets.len / width - 1 - rows < c->offset ||
        (c->has_validity && (c->validity.len > PY_SSIZE_T_MAX / 8 ? 0 : c->validity.len * 8 - rows < c->offset))) {
        PyErr_Format(PyExc_ValueError, "column %zd: buffers are shorter than %zd values", index, rows);
        return -1;
    }
    int64_t previous = offset_at(c, 0);
    if (previous < 0) goto bad;
    for (Py_ssize_t row = 1; row <= rows; row++) {
        int64_t next = offset_at(c, row);
        if (next < previous) goto bad;
        if (next - previous > c->longest) c->longest = (Py_ssize_t)(next - previous);
        previous = next;
    }
    if (previous > c->data.len) goto bad;
    return 0;
bad:
    PyErr_Format(PyExc_ValueError, "column %zd: offsets outside the data buffer", index);
    return -1;
}

static void release_columns(Column *columns, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        PyBuffer_Release(&columns[i].offsets);
        PyBuffer_Release(&columns[i].data);
        if (columns[i].has_validity) PyBuffer_Release(&columns[i].validity);
    }
}

/* The gmail-like domains: a tuple of at most MAX_DOMAINS bytes, borrowed from the spec, which
 * encode_lines' own tuple of the specs keeps alive for the whole call. */
static int parse_domains(PyObject *domains, Column *c) {
    if (!PyTuple_Check(domains) || PyTuple_GET_SIZE(domains) > MAX_DOMAINS) {
        PyErr_Format(PyExc_ValueError, "gmail domains are a tuple of at most %d bytes", MAX_DOMAINS);
        return -1;
    }
    c->domain_count = PyTuple_GET_SIZE(domains);
    for (Py_ssize_t i = 0; i < c->domain_count; i++) {
        PyObject *domain = PyTuple_GET_ITEM(domains, i);
        if (!PyBytes_Check(domain)) {
            PyErr_SetString(PyExc_ValueError, "a gmail domain is bytes");
            return -1;
        }
        c->domains[i].text = PyBytes_AS_STRING(domain);
        c->domains[i].length = PyBytes_GET_SIZE(domain);
    }
    return 0;
}

static int parse_column(PyObject *spec, Column *c) {
    PyObject *validity, *domains;
    memset(c, 0, sizeof(*c));
    if (!PyArg_ParseTuple(spec,
                          "iiiOpOy*y*n;a column is (encoding, rule, flags, gmail domains, wide, validity, offsets, "
                          "data, offset)",
                          &c->encoding, &c->rule, &c->flags, &domains, &c->wide, &validity, &c->offsets, &c->data,
                          &c->offset))
        return -1;
    if (parse_domains(domains, c) < 0) goto fail;
    if (validity != Py_None) {
        if (PyObject_GetBuffer(validity, &c->validity, PyBUF_SIMPLE) < 0) goto fail;
        c->has_validity = 1;
    }
    /* The offsets are checked once, then read without the GIL: a buffer someone could still
     * change (a bytearray) would make the check worthless. Arrow's buffers are read-only. */
    if (!c->offsets.readonly || !c->data.readonly || (c->has_validity && !c->validity.readonly)) {
        PyErr_SetString(PyExc_ValueError, "column buffers must be read-only");
        if (c->has_validity) PyBuffer_Release(&c->validity);
        goto fail;
    }
    return 0;
fail:
    PyBuffer_Release(&c->offsets);
    PyBuffer_Release(&c->data);
    return -1;
}

/* The loop itself, without the GIL: normalise, count, encode; returns the end of the text. */
static char *write_lines(Column *columns, Py_ssize_t count, Py_ssize_t rows, char *out, Py_ssize_t *lines,
                         unsigned char *scratch) {
    for (Py_ssize_t row = 0; row < rows; row++) {
        char *line = out;
        int cells = 0;
        for (Py_ssize_t k = 0; k < count; k++) {
            Column *c = &columns[k];
            if (k) *out++ = ',';
            int64_t start = offset_at(c, row), length = offset_at(c, row + 1) - start;
            if (!is_valid(c, row) || length == 0) {
                c->missing++;
                continue;
            }
            const unsigned char *text = normalize(c, (const unsigned char *)c->data.buf + start, &length, scratch);
            if (text == NULL) {
                c->dropped++;
                continue;
            }
            out = write_cell(out, c->encoding, text, length);
            cells++;
        }
        if (cells) {
            *out++ = '\n';
            (*lines)++;
        } else {
            out = line; /* no line for a member without a value */
        }
    }
    return out;
}

PyDoc_STRVAR(encode_lines_doc,
"encode_lines(rows, columns) -> (bytes, lines, ((missing, dropped), ...))\n\n"
"CSV lines of `rows` rows from Arrow string columns of raw identifiers, one cell per column.\n"
"A column is (encoding, rule, flags, gmail domains, wide, validity or None, offsets, data,\n"
"offset) with Arrow's buffers. The rule normalises each value (0 email, 1 MAID, 2 external id;\n"
"flags 1: emails drop inner whitespace, 2: gmail local parts drop a +tag; the domains are\n"
"lowercase bytes); the encoding writes its SHA-256 in hex (0) or base64 (1), or a MAID as it\n"
"is (2). Null, empty and invalid values are empty cells, counted per column as missing or\n"
"dropped. A row without any value gets no line. Releases the GIL while it works.");

static PyObject *counts_of(const Column *columns, Py_ssize_t count) {
    PyObject *counts = PyTuple_New(count);
    if (counts == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = Py_BuildValue("nn", columns[i].missing, columns[i].dropped);
        if (pair == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyTuple_SET_ITEM(counts, i, pair);
    }
    return counts;
}

static PyObject *encode_lines(PyObject *self, PyObject *args) {
    Py_ssize_t rows;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "nO", &rows, &specs)) return NULL;
    if (rows < 0) return PyErr_Format(PyExc_ValueError, "rows must not be negative");
    /* A tuple of our own (not the caller's list, which another thread could empty while the
     * GIL is released): it holds the specs, and they the buffers' owners and the domains. */
    PyObject *sequence = PySequence_Tuple(specs);
    if (sequence == NULL) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(sequence), parsed = 0;
    Column *columns = PyMem_Calloc(count ? count : 1, sizeof(Column));
    PyObject *text = NULL, *counts = NULL, *result = NULL;
    unsigned char *scratch = NULL;
    if (columns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (count == 0) {
        PyErr_SetString(PyExc_ValueError, "at least one column");
        goto done;
    }
    Py_ssize_t bound = rows, longest = UUID_LENGTH; /* one newline per row; a MAID's text */
    while (parsed < count) {
        Column *column = &columns[parsed];
        if (parse_column(PyTuple_GET_ITEM(sequence, parsed), column) < 0) goto done;
        parsed++; /* its buffers are held from here on */
        if (check_column(column, rows, parsed - 1) < 0) goto done;
        bound += rows * (cell_width(column->encoding) + (parsed > 1 ? 1 : 0)); /* the cell and its comma */
        if (column->longest > longest) longest = column->longest;
    }
    scratch = PyMem_Malloc((size_t)longest);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    text = PyBytes_FromStringAndSize(NULL, bound);
    if (text == NULL) goto done;
    char *end;
    Py_ssize_t lines = 0;
    Py_BEGIN_ALLOW_THREADS
    end = write_lines(columns, count, rows, PyBytes_AS_STRING(text), &lines, scratch);
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&text, end - PyBytes_AS_STRING(text)) < 0) goto done; /* frees text on failure */
    counts = counts_of(columns, count);
    if (counts != NULL) result = Py_BuildValue("OnO", text, lines, counts);
done:
    Py_XDECREF(text);
    Py_XDECREF(counts);
    PyMem_Free(scratch);
    if (columns != NULL) release_columns(columns, parsed);
    PyMem_Free(columns);
    Py_DECREF(sequence);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_lines", encode_lines, METH_VARARGS, encode_lines_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Normalised identifiers, SHA-256 (OpenSSL) and CSV lines from Arrow columns.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
