#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"

/* jansson quotes the input near the error ("near '\"a\n'"), raw: control
 * bytes are escaped so the message stays one line. */
static void one_line(const char *text, char *out, size_t cap) {
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)text; *c && o + 3 < cap; c++) {
        if (*c >= 0x20) {
            out[o++] = (char)*c;
        } else {
            out[o++] = '\\';
            out[o++] = *c == '\n' ? 'n' : *c == '\r' ? 'r' : *c == '\t' ? 't' : '?';
        }
    }
    out[o] = 0;
}

static size_t skip_digits(const char *s, size_t len, size_t i) {
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    return i;
}

/* src with ".0" after every integer of more than 18 digits outside
 * strings, so jansson reads those, and only those, as doubles; NULL when
 * out of memory. */
static char *big_ints_as_reals(const char *src, size_t len, size_t *out_len) {
    char *out = malloc(len + len / 9 * 2 + 1);
    size_t o = 0;
    bool in_string = false;
    for (size_t i = 0; out && i < len;) {
        char c = src[i];
        if (in_string || c == '"' || (c != '-' && (c < '0' || c > '9'))) {
            if (in_string && c == '\\' && i + 1 < len) out[o++] = src[i++];
            else if (c == '"') in_string = !in_string;
            out[o++] = src[i++];
            continue;
        }
        size_t j = i + (c == '-'), d = skip_digits(src, len, j), digits = d - j;
        bool whole = true; /* no fraction, no exponent */
        if (d < len && src[d] == '.') whole = false, d = skip_digits(src, len, d + 1);
        if (d < len && (src[d] == 'e' || src[d] == 'E')) {
            whole = false;
            d += d + 1 < len && (src[d + 1] == '+' || src[d + 1] == '-') ? 2 : 1;
            d = skip_digits(src, len, d);
        }
        memcpy(out + o, src + i, d - i);
        o += d - i;
        if (whole && digits > 18) out[o++] = '.', out[o++] = '0';
        i = d > i ? d : i + 1;
    }
    *out_len = o;
    return out;
}

static qb_status parse(const char *src, size_t len, size_t flags, bool big_ints, const char *what, json_t **out,
                       qb_error *err) {
    json_error_t je;
    *out = json_loadb(src, len, flags | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    /* JSON integers have no limit and Python writes any (transformers'
     * model_max_length 10^30 where a tokenizer has none): the files of a
     * model directory are read again with those past int64 as doubles. */
    if (!*out && big_ints && strstr(je.text, "too big")) {
        size_t n;
        char *text = big_ints_as_reals(src, len, &n);
        if (text) *out = json_loadb(text, n, flags | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        free(text);
    }
    if (*out) return QB_OK;
    char text[2 * JSON_ERROR_TEXT_LENGTH];
    one_line(je.text, text, sizeof text);
    /* jansson reads a NUL byte as the end of the input */
    const char *nul = memchr(src, 0, len);
    if (nul && (size_t)(nul - src) <= (size_t)je.position)
        snprintf(text, sizeof text, "a NUL byte at offset %zu", (size_t)(nul - src));
    /* A line number is what a person opens a file at; a one-line source (a
     * JSONL row, a header) gets the column alone. */
    if (!memchr(src, '\n', len))
        return qb_fail(err, QB_ERR_FORMAT, "%s: invalid JSON at column %d: %s", what, je.column, text);
    return qb_fail(err, QB_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", what, je.line, je.column, text);
}

qb_status qb_json_parse(const char *src, size_t len, const char *what, json_t **out, qb_error *err) {
    return parse(src, len, 0, false, what, out, err);
}

qb_status qb_json_parse_unique(const char *src, size_t len, const char *what, json_t **out, qb_error *err) {
    return parse(src, len, JSON_REJECT_DUPLICATES, false, what, out, err);
}

qb_status qb_json_load_object(const char *path, json_t **out, qb_error *err) {
    return qb_json_load_object_max(path, QB_JSON_FILE_MAX, out, err);
}

qb_status qb_json_load_object_max(const char *path, size_t max, json_t **out, qb_error *err) {
    *out = NULL;
    char *text;
    size_t len;
    qb_status st = qb_file_read_max(path, max, 0, "a JSON file", &text, &len, err);
    if (st) return st;
    st = parse(text, len, 0, true, path, out, err);
    free(text);
    if (st || json_is_object(*out)) return st;
    json_decref(*out);
    *out = NULL;
    return qb_fail(err, QB_ERR_FORMAT, "%s: not a JSON object", path);
}

const char *qb_json_str(const json_t *v, size_t *len) {
    if (!json_is_string(v)) return NULL;
    if (len) *len = json_string_length(v);
    return json_string_value(v);
}

char *qb_json_strdup(const json_t *v, size_t *len) {
    size_t n;
    const char *s = qb_json_str(v, &n);
    char *c = s ? malloc(n + 1) : NULL;
    if (!c) return NULL;
    memcpy(c, s, n + 1);
    if (len) *len = n;
    return c;
}

bool qb_json_str_eq(const json_t *v, const char *s) {
    size_t n;
    const char *t = qb_json_str(v, &n);
    return t && n == strlen(s) && memcmp(t, s, n) == 0;
}

double qb_json_number(const json_t *v, double fallback) {
    return json_is_number(v) ? json_number_value(v) : fallback;
}

bool qb_json_int(const json_t *v, int64_t *out) {
    if (!json_is_number(v)) return false;
    double d = json_number_value(v);
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < -9000000000000000LL || i > 9000000000000000LL) return false;
        *out = (int64_t)i;
        return true;
    }
    if (!(d >= -9.0e15 && d <= 9.0e15) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

bool qb_json_bool(const json_t *v, bool fallback) {
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

double qb_json_get_number(const json_t *obj, const char *key, double fallback) {
    return qb_json_number(json_object_get(obj, key), fallback);
}

bool qb_json_get_bool(const json_t *obj, const char *key, bool fallback) {
    return qb_json_bool(json_object_get(obj, key), fallback);
}

json_t *qb_json_real(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

json_t *qb_json_u64(uint64_t v) {
    return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

json_t *qb_json_strn(const char *s, size_t len) {
    json_t *v = json_stringn(s, len);
    if (v || !s) return v;
    /* Not UTF-8 (a file name or label from a stranger): jansson refuses it,
     * and JSON may not carry it; other bytes stand in for the odd ones. */
    char *c = malloc(len + 1);
    if (!c) return NULL;
    for (size_t i = 0; i < len; i++) c[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    v = json_stringn(c, len);
    free(c);
    return v;
}

bool qb_json_set(json_t *obj, const char *key, json_t *v) {
    return v && json_object_set_new(obj, key, v) == 0;
}

bool qb_json_push(json_t *arr, json_t *v) {
    return v && json_array_append_new(arr, v) == 0;
}

bool qb_json_set_str(json_t *obj, const char *key, const char *s) {
    return qb_json_set(obj, key, qb_json_strn(s, strlen(s)));
}

bool qb_json_set_int(json_t *obj, const char *key, long long v) { return qb_json_set(obj, key, json_integer(v)); }

bool qb_json_set_real(json_t *obj, const char *key, double v) { return qb_json_set(obj, key, qb_json_real(v)); }

json_t *qb_json_built(json_t *v, bool ok) {
    if (ok) return v;
    json_decref(v);
    return NULL;
}

json_t *qb_json_ints(const int32_t *v, int n) {
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int i = 0; ok && i < n; i++) ok = qb_json_push(a, json_integer(v[i]));
    return qb_json_built(a, ok);
}

json_t *qb_json_floats(const float *v, int n) {
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int i = 0; ok && i < n; i++) ok = qb_json_push(a, qb_json_real(v[i]));
    return qb_json_built(a, ok);
}

static size_t dump_flags(int style) {
    int digits = style & QB_JSON_DIGITS9 ? 9 : style & QB_JSON_DIGITS15 ? 15 : 17;
    size_t f = JSON_ENCODE_ANY | JSON_REAL_PRECISION(digits);
    if (style & QB_JSON_INDENT) f |= JSON_INDENT(2);
    if (style & QB_JSON_COMPACT) f |= JSON_COMPACT;
    return f;
}

bool qb_json_write(FILE *f, const json_t *v, int style) {
    return v && json_dumpf(v, f, dump_flags(style)) == 0 && fputc('\n', f) != EOF;
}

bool qb_json_emit(FILE *f, json_t *o, bool built, int style) {
    bool ok = built && qb_json_write(f, o, style);
    json_decref(o);
    return ok;
}

char *qb_json_dumps(const json_t *v, int style) {
    return v ? json_dumps(v, dump_flags(style)) : NULL;
}

qb_status qb_json_write_file(const char *path, const json_t *v, int style, qb_error *err) {
    char *s = qb_json_dumps(v, style);
    if (!s) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory building JSON", path);
    size_t n = strlen(s);
    s[n] = '\n'; /* the terminator's byte, written as the last line's end */
    qb_status st = qb_file_write_atomic(path, s, n + 1, err);
    free(s);
    return st;
}
