#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"

/* Deeply nested input could otherwise exhaust the stack of a recursive parser. */
#define QB_JSON_MAX_DEPTH 256

typedef struct {
    qb_json *j;
    size_t pos;
    const char *what;
    qb_error *err;
} parser;

static qb_status perr(parser *p, const char *problem) {
    /* A line number is what a person opens a file at; one-line sources
     * (a JSONL row) get the byte offset alone. */
    if (!memchr(p->j->src, '\n', p->j->len))
        return qb_fail(p->err, QB_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", p->what, p->pos, problem);
    size_t line = 1;
    for (size_t i = 0; i < p->pos && i < p->j->len; i++) line += p->j->src[i] == '\n';
    return qb_fail(p->err, QB_ERR_FORMAT, "%s: invalid JSON at line %zu (byte %zu): %s", p->what, line, p->pos,
                   problem);
}

static void skip_ws(parser *p) {
    const char *s = p->j->src;
    while (p->pos < p->j->len &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
}

static int new_tok(parser *p, qb_json_type type) {
    qb_json *j = p->j;
    if (j->n == j->cap) {
        uint32_t cap = j->cap ? j->cap * 2 : 64;
        qb_json_tok *t = realloc(j->toks, cap * sizeof *t);
        if (!t) return -1;
        j->toks = t;
        j->cap = cap;
    }
    qb_json_tok *t = &j->toks[j->n];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->start = (uint32_t)p->pos;
    return (int)j->n++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static qb_status parse_string(parser *p, int *out) {
    const char *s = p->j->src;
    size_t n = p->j->len;
    p->pos++; /* opening quote */
    int t = new_tok(p, QB_JSON_STRING);
    if (t < 0) return qb_fail(p->err, QB_ERR_NOMEM, "%s: out of memory", p->what);
    while (p->pos < n && s[p->pos] != '"') {
        unsigned char c = (unsigned char)s[p->pos];
        if (c < 0x20) return perr(p, "control character in string");
        if (c == '\\') {
            if (p->pos + 1 >= n) return perr(p, "unterminated escape");
            char e = s[p->pos + 1];
            if (e == 'u') {
                if (p->pos + 6 > n) return perr(p, "short \\u escape");
                for (int k = 2; k < 6; k++)
                    if (hexval(s[p->pos + k]) < 0) return perr(p, "bad \\u escape");
                p->pos += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e)) return perr(p, "bad escape");
            p->pos += 2;
            continue;
        }
        p->pos++;
    }
    if (p->pos >= n) return perr(p, "unterminated string");
    p->j->toks[t].end = (uint32_t)p->pos;
    p->pos++;
    p->j->toks[t].next = p->j->n;
    *out = t;
    return QB_OK;
}

static qb_status parse_value(parser *p, int depth, int *out);

static qb_status parse_container(parser *p, int depth, int *out) {
    char open = p->j->src[p->pos];
    bool obj = open == '{';
    char close = obj ? '}' : ']';
    int t = new_tok(p, obj ? QB_JSON_OBJECT : QB_JSON_ARRAY);
    if (t < 0) return qb_fail(p->err, QB_ERR_NOMEM, "%s: out of memory", p->what);
    p->pos++;
    skip_ws(p);
    uint32_t count = 0;
    if (p->pos < p->j->len && p->j->src[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            int child;
            qb_status st;
            skip_ws(p);
            if (obj) {
                if (p->pos >= p->j->len || p->j->src[p->pos] != '"') return perr(p, "expected a key");
                if ((st = parse_string(p, &child))) return st;
                skip_ws(p);
                if (p->pos >= p->j->len || p->j->src[p->pos] != ':') return perr(p, "expected ':'");
                p->pos++;
            }
            if ((st = parse_value(p, depth + 1, &child))) return st;
            count++;
            skip_ws(p);
            if (p->pos >= p->j->len) return perr(p, "unterminated array or object");
            char c = p->j->src[p->pos++];
            if (c == close) break;
            if (c != ',') return perr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    p->j->toks[t].size = count;
    p->j->toks[t].end = (uint32_t)p->pos;
    p->j->toks[t].next = p->j->n;
    *out = t;
    return QB_OK;
}

static qb_status parse_literal(parser *p, const char *word, qb_json_type type, int *out) {
    size_t len = strlen(word);
    if (p->pos + len > p->j->len || memcmp(p->j->src + p->pos, word, len) != 0)
        return perr(p, "unexpected character");
    int t = new_tok(p, type);
    if (t < 0) return qb_fail(p->err, QB_ERR_NOMEM, "%s: out of memory", p->what);
    p->pos += len;
    p->j->toks[t].end = (uint32_t)p->pos;
    p->j->toks[t].next = p->j->n;
    *out = t;
    return QB_OK;
}

static qb_status parse_number(parser *p, int *out) {
    const char *s = p->j->src;
    size_t n = p->j->len, i = p->pos;
    if (i < n && s[i] == '-') i++;
    if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return perr(p, "bad number");
    if (s[i] == '0') i++;
    else while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return perr(p, "bad number");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !(s[i] >= '0' && s[i] <= '9')) return perr(p, "bad number");
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    int t = new_tok(p, QB_JSON_NUMBER);
    if (t < 0) return qb_fail(p->err, QB_ERR_NOMEM, "%s: out of memory", p->what);
    p->pos = i;
    p->j->toks[t].end = (uint32_t)i;
    p->j->toks[t].next = p->j->n;
    *out = t;
    return QB_OK;
}

static qb_status parse_value(parser *p, int depth, int *out) {
    if (depth > QB_JSON_MAX_DEPTH) return perr(p, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->j->len) return perr(p, "unexpected end of input");
    char c = p->j->src[p->pos];
    switch (c) {
    case '{': case '[': return parse_container(p, depth, out);
    case '"': return parse_string(p, out);
    case 't': return parse_literal(p, "true", QB_JSON_BOOL, out);
    case 'f': return parse_literal(p, "false", QB_JSON_BOOL, out);
    case 'n': return parse_literal(p, "null", QB_JSON_NULL, out);
    default: return parse_number(p, out);
    }
}

qb_status qb_json_parse(qb_json *j, const char *src, size_t len, const char *what, qb_error *err) {
    memset(j, 0, sizeof *j);
    if (len >= UINT32_MAX) return qb_fail(err, QB_ERR_FORMAT, "%s: JSON larger than 4 GiB", what);
    j->src = src;
    j->len = len;
    parser p = {j, 0, what, err};
    int root;
    qb_status st = parse_value(&p, 0, &root);
    if (!st) {
        skip_ws(&p);
        if (p.pos != len) st = perr(&p, "trailing characters after the value");
    }
    if (st) qb_json_free(j);
    return st;
}

void qb_json_free(qb_json *j) {
    free(j->toks);
    free(j->owned);
    memset(j, 0, sizeof *j);
}

qb_status qb_json_load_object(qb_json *j, const char *path, qb_error *err) {
    return qb_json_load_object_max(j, path, QB_JSON_FILE_MAX, err);
}

qb_status qb_json_load_object_max(qb_json *j, const char *path, size_t max, qb_error *err) {
    memset(j, 0, sizeof *j);
    char *text;
    size_t len;
    qb_status st = qb_file_read_max(path, max, 0, "a JSON file", &text, &len, err);
    if (st) return st;
    if ((st = qb_json_parse(j, text, len, path, err))) {
        free(text);
        return st;
    }
    j->owned = text;
    if (qb_json_is(j, 0, QB_JSON_OBJECT)) return QB_OK;
    qb_json_free(j);
    return qb_fail(err, QB_ERR_FORMAT, "%s: not a JSON object", path);
}

int qb_json_get(const qb_json *j, int obj, const char *key) {
    if (obj < 0 || (uint32_t)obj >= j->n || j->toks[obj].type != QB_JSON_OBJECT) return -1;
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t i = 0; i < j->toks[obj].size; i++) {
        uint32_t v = k + 1;
        if (qb_json_str_eq(j, (int)k, key)) return (int)v;
        k = j->toks[v].next;
    }
    return -1;
}

int qb_json_at(const qb_json *j, int arr, int i) {
    if (arr < 0 || (uint32_t)arr >= j->n || j->toks[arr].type != QB_JSON_ARRAY) return -1;
    if (i < 0 || (uint32_t)i >= j->toks[arr].size) return -1;
    uint32_t t = (uint32_t)arr + 1;
    while (i-- > 0) t = j->toks[t].next;
    return (int)t;
}

bool qb_json_is(const qb_json *j, int t, qb_json_type type) {
    return t >= 0 && (uint32_t)t < j->n && j->toks[t].type == type;
}

static void put_utf8(char *out, size_t *o, uint32_t cp) {
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static uint32_t hex4(const char *s) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) v = v * 16 + (uint32_t)hexval(s[k]);
    return v;
}

/* Decodes escapes; the output is never longer than the input.  A lone
 * surrogate becomes U+FFFD, as Python's json module would not accept it
 * either but tokenizers must see something. */
static size_t decode_string(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t cp = hex4(s + i);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                uint32_t lo = hex4(s + i + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
            put_utf8(out, &o, cp);
            break;
        }
        default: out[o++] = e; break;
        }
    }
    return o;
}

char *qb_json_strdup(const qb_json *j, int t, size_t *len) {
    if (!qb_json_is(j, t, QB_JSON_STRING)) return NULL;
    const qb_json_tok *k = &j->toks[t];
    char *out = malloc(k->end - k->start + 1);
    if (!out) return NULL;
    size_t n = decode_string(j->src + k->start, k->end - k->start, out);
    out[n] = 0;
    if (len) *len = n;
    return out;
}

bool qb_json_str_eq(const qb_json *j, int t, const char *s) {
    if (!qb_json_is(j, t, QB_JSON_STRING)) return false;
    const qb_json_tok *k = &j->toks[t];
    size_t raw = k->end - k->start, want = strlen(s);
    if (!memchr(j->src + k->start, '\\', raw)) return raw == want && memcmp(j->src + k->start, s, raw) == 0;
    size_t n;
    char *d = qb_json_strdup(j, t, &n);
    bool eq = d && n == want && memcmp(d, s, n) == 0;
    free(d);
    return eq;
}

double qb_json_number(const qb_json *j, int t, double fallback) {
    if (!qb_json_is(j, t, QB_JSON_NUMBER)) return fallback;
    char buf[64];
    size_t n = j->toks[t].end - j->toks[t].start;
    if (n >= sizeof buf) return fallback;
    memcpy(buf, j->src + j->toks[t].start, n);
    buf[n] = 0;
    return strtod(buf, NULL);
}

bool qb_json_int(const qb_json *j, int t, int64_t *out) {
    if (!qb_json_is(j, t, QB_JSON_NUMBER)) return false;
    double d = qb_json_number(j, t, NAN);
    if (!(d >= -9.0e15 && d <= 9.0e15) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

bool qb_json_bool(const qb_json *j, int t, bool fallback) {
    if (!qb_json_is(j, t, QB_JSON_BOOL)) return fallback;
    return j->src[j->toks[t].start] == 't';
}

double qb_json_get_number(const qb_json *j, int obj, const char *key, double fallback) {
    return qb_json_number(j, qb_json_get(j, obj, key), fallback);
}

bool qb_json_get_bool(const qb_json *j, int obj, const char *key, bool fallback) {
    return qb_json_bool(j, qb_json_get(j, obj, key), fallback);
}

void qb_json_write_str(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}
