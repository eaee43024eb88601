#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json.h"

/* A real header is a few hundred bytes per tensor; a length past this is a
 * corrupt field, and trusting it would have us parse gigabytes. */
#define QB_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define QB_ST_METADATA_KEY "__metadata__"

/* ---- shared by reader and writer --------------------------------------- */

/* numel and byte size of a shape, or false when a dimension is negative or
 * the product does not fit (a hostile header must not wrap it to a small
 * number that then "matches" its offsets). */
static bool shape_bytes(const int64_t *shape, int ndim, qb_dtype dtype, int64_t *numel,
                        size_t *nbytes) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return false;
        if (shape[d] != 0 && count > INT64_MAX / shape[d]) return false;
        count *= shape[d];
    }
    size_t size = qb_dtype_traits_of(dtype)->size;
    if ((uint64_t)count > SIZE_MAX / size) return false;
    *numel = count;
    *nbytes = (size_t)count * size;
    return true;
}

static void shape_format(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* ---- reading ----------------------------------------------------------- */

/* Names come from the file: control bytes in them must not break the
 * one-line message, and a huge name must not crowd out the problem. */
const char *qb_st_name_shown(const char *name, char *buf, size_t cap) {
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++) buf[i] = (unsigned char)name[i] < 0x20 ? '?' : name[i];
    buf[i] = 0;
    return buf;
}

static qb_status tensor_fail(qb_error *err, qb_status code, const char *path, const char *name,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static qb_status tensor_fail(qb_error *err, qb_status code, const char *path, const char *name,
                             const char *fmt, ...) {
    char problem[320], shown[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return qb_fail(err, code, "%s: tensor '%s': %s", path,
                   qb_st_name_shown(name, shown, sizeof shown), problem);
}

/* The JSON reader accepts any bytes inside strings; the format says UTF-8,
 * and names with broken sequences would confuse every tool downstream. */
static bool utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) return false;
        uint32_t cp = len == 1 ? c : c & (0x7F >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

/* Offsets and dims are byte counts, so only plain digit strings are taken:
 * "1e3", "2.0" and "-1" are refused rather than rounded through a double. */
static bool json_uint(const qb_json *j, int t, uint64_t *out) {
    if (!qb_json_is(j, t, QB_JSON_NUMBER)) return false;
    uint64_t v = 0;
    for (uint32_t i = j->toks[t].start; i < j->toks[t].end; i++) {
        char c = j->src[i];
        if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return true;
}

static qb_status parse_dtype(const char *path, const qb_json *j, int entry, qb_st_tensor *t,
                             qb_error *err) {
    int d = qb_json_get(j, entry, "dtype");
    if (!qb_json_is(j, d, QB_JSON_STRING))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "\"dtype\" is missing or not a string");
    const char *s = j->src + j->toks[d].start;
    size_t len = j->toks[d].end - j->toks[d].start;
    if (!qb_dtype_from_name(s, len, &t->dtype))
        return tensor_fail(err, QB_ERR_UNSUPPORTED, path, t->name, "dtype \"%.*s\" is not supported",
                           (int)(len < 32 ? len : 32), s);
    return QB_OK;
}

static qb_status parse_shape(const char *path, const qb_json *j, int entry, qb_st_tensor *t,
                             qb_error *err) {
    int a = qb_json_get(j, entry, "shape");
    if (!qb_json_is(j, a, QB_JSON_ARRAY))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "\"shape\" is missing or not an array");
    if (j->toks[a].size > QB_MAX_DIMS)
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "shape has %u dims, more than %d",
                           j->toks[a].size, QB_MAX_DIMS);
    t->ndim = (int)j->toks[a].size;
    int c = qb_json_first(j, a);
    for (int d = 0; d < t->ndim; d++, c = (int)j->toks[c].next) {
        uint64_t v;
        if (!json_uint(j, c, &v) || v > INT64_MAX)
            return tensor_fail(err, QB_ERR_FORMAT, path, t->name,
                               "shape dim %d is not a non-negative integer", d);
        t->shape[d] = (int64_t)v;
    }
    if (!shape_bytes(t->shape, t->ndim, t->dtype, &t->numel, &t->nbytes)) {
        char shape[128];
        shape_format(t->shape, t->ndim, shape, sizeof shape);
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "shape %s overflows", shape);
    }
    return QB_OK;
}

static qb_status parse_offsets(const char *path, const qb_json *j, int entry, size_t data_size,
                               qb_st_tensor *t, qb_error *err) {
    int a = qb_json_get(j, entry, "data_offsets");
    uint64_t begin, end;
    if (!qb_json_is(j, a, QB_JSON_ARRAY) || j->toks[a].size != 2 ||
        !json_uint(j, qb_json_at(j, a, 0), &begin) || !json_uint(j, qb_json_at(j, a, 1), &end))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name,
                           "\"data_offsets\" is missing or not two non-negative integers");
    if (begin > end)
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name,
                           "data_offsets [%llu, %llu] begin after end",
                           (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name,
                           "data_offsets end %llu is beyond the data section (%zu bytes)",
                           (unsigned long long)end, data_size);
    if (end - begin != t->nbytes) {
        char shape[128];
        shape_format(t->shape, t->ndim, shape, sizeof shape);
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name,
                           "shape %s needs %zu bytes but data_offsets span %llu", shape, t->nbytes,
                           (unsigned long long)(end - begin));
    }
    t->offset = (size_t)begin;
    return QB_OK;
}

static qb_status parse_entry(const char *path, const qb_json *j, int entry, size_t data_size,
                             qb_st_tensor *t, qb_error *err) {
    if (!qb_json_is(j, entry, QB_JSON_OBJECT))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "entry is not an object");
    qb_status s = parse_dtype(path, j, entry, t, err);
    if (!s) s = parse_shape(path, j, entry, t, err);
    if (!s) s = parse_offsets(path, j, entry, data_size, t, err);
    return s;
}

/* Kept as the raw JSON text: callers rarely look at it, and `info` prints it. */
static qb_status parse_metadata(qb_safetensors *st, const qb_json *j, int obj, qb_error *err) {
    if (st->metadata)
        return qb_fail(err, QB_ERR_FORMAT, "%s: duplicate \"%s\"", st->path, QB_ST_METADATA_KEY);
    if (!qb_json_is(j, obj, QB_JSON_OBJECT))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" is not an object", st->path, QB_ST_METADATA_KEY);
    int k = qb_json_first(j, obj);
    for (uint32_t i = 0; i < j->toks[obj].size; i++, k = (int)j->toks[k + 1].next) {
        if (qb_json_is(j, k + 1, QB_JSON_STRING)) continue;
        int klen = (int)(j->toks[k].end - j->toks[k].start);
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" value of \"%.*s\" is not a string",
                       st->path, QB_ST_METADATA_KEY, klen < 64 ? klen : 64, j->src + j->toks[k].start);
    }
    size_t len = j->toks[obj].end - j->toks[obj].start;
    st->metadata = malloc(len + 1);
    if (!st->metadata) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
    memcpy(st->metadata, j->src + j->toks[obj].start, len);
    st->metadata[len] = 0;
    return QB_OK;
}

static qb_status parse_members(qb_safetensors *st, const qb_json *j, size_t data_size, qb_error *err) {
    st->tensors = calloc(j->toks[0].size + 1, sizeof *st->tensors);
    if (!st->tensors) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
    int k = 1;
    for (uint32_t i = 0; i < j->toks[0].size; i++, k = (int)j->toks[k + 1].next) {
        size_t len;
        char *name = qb_json_strdup(j, k, &len);
        if (!name) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
        if (len != strlen(name)) {
            free(name);
            return qb_fail(err, QB_ERR_FORMAT, "%s: tensor #%u: name contains a NUL byte", st->path, i);
        }
        if (strcmp(name, QB_ST_METADATA_KEY) == 0) {
            free(name);
            qb_status s = parse_metadata(st, j, k + 1, err);
            if (s) return s;
            continue;
        }
        qb_st_tensor *t = &st->tensors[st->n++];
        t->name = name; /* owned by st from here, so close() frees it on failure */
        qb_status s = parse_entry(st->path, j, k + 1, data_size, t, err);
        if (s) return s;
    }
    return QB_OK;
}

static qb_status parse_header(qb_safetensors *st, const char *hdr, size_t len, size_t data_size,
                              qb_error *err) {
    if (!utf8_valid((const unsigned char *)hdr, len))
        return qb_fail(err, QB_ERR_FORMAT, "%s: header is not valid UTF-8", st->path);
    qb_json j;
    qb_status s = qb_json_parse(&j, hdr, len, st->path, err);
    if (s) return s;
    if (j.toks[0].type != QB_JSON_OBJECT)
        s = qb_fail(err, QB_ERR_FORMAT, "%s: header is not a JSON object", st->path);
    else
        s = parse_members(st, &j, data_size, err);
    qb_json_free(&j);
    return s;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const qb_st_tensor *)a)->name, ((const qb_st_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const qb_st_tensor *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static qb_status check_unique_names(const qb_safetensors *st, qb_error *err) {
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, by_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return tensor_fail(err, QB_ERR_FORMAT, st->path, st->tensors[i].name, "duplicate name");
    return QB_OK;
}

/* Hugging Face's reader requires the ranges, sorted by begin, to tile the
 * data section: each starts where the one before it ends, and the last
 * ends at the end of the file.  A gap or trailing bytes mean the offsets
 * or the header length field are wrong (off by one, every tensor reads
 * shifted by a byte), so they are refused like an overlap.  An empty
 * tensor sits where the tensors before it end. */
static qb_status check_tiling(const qb_safetensors *st, size_t data_size, qb_error *err) {
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, by_offset);
    const qb_st_tensor *prev = NULL;
    size_t reach = 0;
    char other[96];
    for (int i = 0; i < st->n; i++) {
        const qb_st_tensor *t = &st->tensors[i];
        if (t->offset < reach)
            return tensor_fail(err, QB_ERR_FORMAT, st->path, t->name,
                               "data [%zu, %zu) overlaps tensor '%s' [%zu, %zu)", t->offset,
                               t->offset + t->nbytes, qb_st_name_shown(prev->name, other, sizeof other),
                               prev->offset, reach);
        if (t->offset > reach)
            return tensor_fail(err, QB_ERR_FORMAT, st->path, t->name,
                               "data begins at %zu, leaving a gap of %zu bytes after %s%s%s (tensors must tile "
                               "the data section)", t->offset, t->offset - reach, prev ? "tensor '" : "the header",
                               prev ? qb_st_name_shown(prev->name, other, sizeof other) : "", prev ? "'" : "");
        if (t->nbytes) prev = t, reach = t->offset + t->nbytes;
    }
    if (reach != data_size)
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: tensors end at byte %zu of the %zu-byte data section: the header length field or "
                       "data_offsets are wrong", st->path, reach, data_size);
    return QB_OK;
}

static void point_into_mapping(qb_safetensors *st, const unsigned char *data_section) {
    for (int i = 0; i < st->n; i++) {
        qb_st_tensor *t = &st->tensors[i];
        t->data = data_section + t->offset;
        /* An empty tensor is never dereferenced, so its address cannot matter. */
        t->aligned = t->nbytes == 0 || (uintptr_t)t->data % qb_dtype_traits_of(t->dtype)->size == 0;
        st->n_unaligned += !t->aligned;
    }
}

static qb_status read_header_len(const qb_safetensors *st, uint64_t *len, qb_error *err) {
    const unsigned char *p = st->map.data;
    if (st->map.size < 8)
        return qb_fail(err, QB_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header",
                       st->path, st->map.size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n == 0) return qb_fail(err, QB_ERR_FORMAT, "%s: header length is 0", st->path);
    if (n > QB_ST_MAX_HEADER)
        return qb_fail(err, QB_ERR_FORMAT, "%s: header length %llu is over the %llu-byte limit",
                       st->path, (unsigned long long)n, (unsigned long long)QB_ST_MAX_HEADER);
    if (n > st->map.size - 8)
        return qb_fail(err, QB_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes)",
                       st->path, (unsigned long long)n, st->map.size);
    *len = n;
    return QB_OK;
}

qb_status qb_safetensors_open(qb_safetensors *st, const char *path, qb_error *err) {
    memset(st, 0, sizeof *st);
    st->path = strdup(path);
    if (!st->path) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    uint64_t hlen = 0;
    qb_status s = qb_file_map_open(&st->map, path, err);
    if (!s) s = read_header_len(st, &hlen, err);
    size_t data_size = s ? 0 : st->map.size - 8 - (size_t)hlen;
    if (!s) s = parse_header(st, (const char *)st->map.data + 8, (size_t)hlen, data_size, err);
    if (!s) s = check_unique_names(st, err);
    if (!s) s = check_tiling(st, data_size, err);
    if (s) {
        qb_safetensors_close(st);
        return s;
    }
    /* Name order is what find() bisects, and what `info` lists. */
    qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, by_name);
    point_into_mapping(st, st->map.data + 8 + hlen);
    return QB_OK;
}

void qb_safetensors_close(qb_safetensors *st) {
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->metadata);
    free(st->path);
    qb_file_map_close(&st->map);
    memset(st, 0, sizeof *st);
}

static int name_vs_tensor(const void *key, const void *elem) {
    return strcmp(key, ((const qb_st_tensor *)elem)->name);
}

const qb_st_tensor *qb_safetensors_find(const qb_safetensors *st, const char *name) {
    if (!st->n) return NULL;
    return bsearch(name, st->tensors, (size_t)st->n, sizeof *st->tensors, name_vs_tensor);
}

/* ---- writing ----------------------------------------------------------- */

/* The header is built in memory first: its length goes before it. */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} header_buf;

static void buf_put(header_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_puts(header_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_put_u64(header_buf *b, uint64_t v) {
    char tmp[24];
    buf_put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v));
}

/* Same escaping as qb_json_write_str, but into memory. */
static void buf_put_json_str(header_buf *b, const char *s, size_t n) {
    buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                buf_puts(b, esc);
            } else {
                buf_put(b, (const char *)&c, 1);
            }
        }
    }
    buf_puts(b, "\"");
}

static int by_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Two tensors with one name would write a file that every reader refuses. */
static qb_status check_write_names(const char *path, const qb_st_write_tensor *ts, int n,
                                   qb_error *err) {
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    if (!names) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = ts[i].name;
    qsort(names, (size_t)n, sizeof *names, by_name_ptr);
    qb_status s = QB_OK;
    for (int i = 1; i < n && !s; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            s = tensor_fail(err, QB_ERR_ARG, path, names[i], "duplicate name");
    free(names);
    return s;
}

static qb_status check_write_tensor(const char *path, const qb_st_write_tensor *t, qb_error *err) {
    if (!t->name) return qb_fail(err, QB_ERR_ARG, "%s: a tensor has no name", path);
    if (strcmp(t->name, QB_ST_METADATA_KEY) == 0)
        return tensor_fail(err, QB_ERR_ARG, path, t->name, "name is reserved");
    if (!qb_dtype_traits_of(t->dtype))
        return tensor_fail(err, QB_ERR_ARG, path, t->name, "dtype %d is out of range", (int)t->dtype);
    if (t->ndim < 0 || t->ndim > QB_MAX_DIMS)
        return tensor_fail(err, QB_ERR_ARG, path, t->name, "ndim %d is outside 0..%d", t->ndim,
                           QB_MAX_DIMS);
    int64_t numel;
    size_t nbytes;
    if (!shape_bytes(t->shape, t->ndim, t->dtype, &numel, &nbytes))
        return tensor_fail(err, QB_ERR_ARG, path, t->name, "shape is negative or overflows");
    if (nbytes && !t->data) return tensor_fail(err, QB_ERR_ARG, path, t->name, "data is NULL");
    return QB_OK;
}

/* Re-emitted key by key rather than pasted, so the header holds exactly an
 * object of strings whatever spacing or escapes the caller used. */
static qb_status put_metadata(header_buf *b, const char *path, const char *json, qb_error *err) {
    char what[256];
    snprintf(what, sizeof what, "%s: metadata", path);
    qb_json j;
    if (qb_json_parse(&j, json, strlen(json), what, err)) {
        if (err) err->code = QB_ERR_ARG; /* the caller's argument, not a file, is malformed */
        return QB_ERR_ARG;
    }
    qb_status s = QB_OK;
    if (j.toks[0].type != QB_JSON_OBJECT) s = qb_fail(err, QB_ERR_ARG, "%s: not a JSON object", what);
    buf_put_json_str(b, QB_ST_METADATA_KEY, strlen(QB_ST_METADATA_KEY));
    buf_puts(b, ":{");
    int k = 1;
    for (uint32_t i = 0; !s && i < j.toks[0].size; i++, k = (int)j.toks[k + 1].next) {
        size_t klen, vlen;
        char *key = qb_json_strdup(&j, k, &klen), *val = qb_json_strdup(&j, k + 1, &vlen);
        if (!qb_json_is(&j, k + 1, QB_JSON_STRING))
            s = qb_fail(err, QB_ERR_ARG, "%s: value #%u is not a string", what, i);
        else if (!key || !val)
            s = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
        if (!s) {
            buf_puts(b, i ? "," : "");
            buf_put_json_str(b, key, klen);
            buf_puts(b, ":");
            buf_put_json_str(b, val, vlen);
        }
        free(key);
        free(val);
    }
    buf_puts(b, "}");
    qb_json_free(&j);
    return s;
}

static void put_tensor_entry(header_buf *b, const qb_st_write_tensor *t, size_t begin, size_t end) {
    buf_put_json_str(b, t->name, strlen(t->name));
    buf_puts(b, ":{\"dtype\":\"");
    buf_puts(b, qb_dtype_traits_of(t->dtype)->name);
    buf_puts(b, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
        buf_puts(b, d ? "," : "");
        buf_put_u64(b, (uint64_t)t->shape[d]);
    }
    buf_puts(b, "],\"data_offsets\":[");
    buf_put_u64(b, begin);
    buf_puts(b, ",");
    buf_put_u64(b, end);
    buf_puts(b, "]}");
}

/* Tensors are laid out back to back in the given order with no padding:
 * Hugging Face's reader requires the ranges to tile the data section. */
static qb_status build_header(header_buf *b, const char *path, const qb_st_write_tensor *ts, int n,
                              const char *metadata_json, qb_error *err) {
    buf_puts(b, "{");
    if (metadata_json) {
        qb_status s = put_metadata(b, path, metadata_json, err);
        if (s) return s;
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel;
        size_t nbytes;
        shape_bytes(ts[i].shape, ts[i].ndim, ts[i].dtype, &numel, &nbytes);
        buf_puts(b, i || metadata_json ? "," : "");
        put_tensor_entry(b, &ts[i], offset, offset + nbytes);
        offset += nbytes;
    }
    buf_puts(b, "}");
    /* Padding the header to 8 bytes keeps the data section 8-byte aligned
     * in the mapping, so F32/I64 tensors at aligned offsets need no copy. */
    while (b->len % 8) buf_puts(b, " ");
    if (b->oom) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    return QB_OK;
}

static bool write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool write_contents(int fd, const header_buf *b, const qb_st_write_tensor *ts, int n) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)b->len >> (8 * i));
    if (!write_all(fd, len, 8) || !write_all(fd, b->p, b->len)) return false;
    for (int i = 0; i < n; i++) {
        int64_t numel;
        size_t nbytes;
        shape_bytes(ts[i].shape, ts[i].ndim, ts[i].dtype, &numel, &nbytes);
        if (nbytes && !write_all(fd, ts[i].data, nbytes)) return false;
    }
    return true;
}

/* Written under path.tmp, flushed to disk, then renamed: a reader of path
 * sees the old file or the whole new one, never a torn write. */
static qb_status write_atomically(const char *path, const header_buf *b, const qb_st_write_tensor *ts,
                                  int n, qb_error *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        qb_status s = qb_fail(err, QB_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return s;
    }
    bool ok = write_contents(fd, b, ts, n) && fsync(fd) == 0;
    int saved = ok ? 0 : errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    qb_status s = QB_OK;
    if (!ok) {
        s = qb_fail(err, QB_ERR_IO, "%s: cannot write: %s", path, strerror(saved ? saved : EIO));
        unlink(tmp);
    }
    free(tmp);
    return s;
}

qb_status qb_safetensors_write(const char *path, const qb_st_write_tensor *tensors, int n,
                               const char *metadata_json, qb_error *err) {
    if (!path) return qb_fail(err, QB_ERR_ARG, "safetensors: no output path");
    if (n < 0 || (n > 0 && !tensors))
        return qb_fail(err, QB_ERR_ARG, "%s: %d tensors requested", path, n);
    for (int i = 0; i < n; i++) {
        qb_status s = check_write_tensor(path, &tensors[i], err);
        if (s) return s;
    }
    qb_status s = check_write_names(path, tensors, n, err);
    if (s) return s;
    header_buf b = {0};
    s = build_header(&b, path, tensors, n, metadata_json, err);
    if (!s) s = write_atomically(path, &b, tensors, n, err);
    free(b.p);
    return s;
}

void qb_safetensors_to_f32(const qb_st_tensor *t, float *out) {
    if (t->dtype == QB_F32) memcpy(out, t->data, t->nbytes);
    else qb_dtype_traits_of(t->dtype)->to_f32(t->data, out, (size_t)t->numel);
}
