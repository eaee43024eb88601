#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
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

/* Offsets and dims are byte counts, so only JSON integers are taken: "1e3",
 * "2.0" and "-1" are refused rather than rounded through a double.  (jansson
 * refuses integers past INT64_MAX while parsing.) */
static bool json_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static qb_status parse_dtype(const char *path, const json_t *entry, qb_st_tensor *t, qb_error *err) {
    size_t len;
    const char *s = qb_json_str(json_object_get(entry, "dtype"), &len);
    if (!s) return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "\"dtype\" is missing or not a string");
    if (!qb_dtype_from_name(s, len, &t->dtype))
        return tensor_fail(err, QB_ERR_UNSUPPORTED, path, t->name, "dtype \"%.*s\" is not supported",
                           (int)(len < 32 ? len : 32), s);
    return QB_OK;
}

static qb_status parse_shape(const char *path, const json_t *entry, qb_st_tensor *t, qb_error *err) {
    const json_t *a = json_object_get(entry, "shape");
    if (!json_is_array(a))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "\"shape\" is missing or not an array");
    if (json_array_size(a) > QB_MAX_DIMS)
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "shape has %zu dims, more than %d",
                           json_array_size(a), QB_MAX_DIMS);
    t->ndim = (int)json_array_size(a);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t v;
        if (!json_uint(json_array_get(a, (size_t)d), &v))
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

static qb_status parse_offsets(const char *path, const json_t *entry, size_t data_size, qb_st_tensor *t,
                               qb_error *err) {
    const json_t *a = json_object_get(entry, "data_offsets");
    uint64_t begin, end;
    if (!json_is_array(a) || json_array_size(a) != 2 || !json_uint(json_array_get(a, 0), &begin) ||
        !json_uint(json_array_get(a, 1), &end))
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

static qb_status parse_entry(const char *path, const json_t *entry, size_t data_size, qb_st_tensor *t,
                             qb_error *err) {
    if (!json_is_object(entry))
        return tensor_fail(err, QB_ERR_FORMAT, path, t->name, "entry is not an object");
    qb_status s = parse_dtype(path, entry, t, err);
    if (!s) s = parse_shape(path, entry, t, err);
    if (!s) s = parse_offsets(path, entry, data_size, t, err);
    return s;
}

/* Kept as compact JSON text: callers rarely look at it, and `info` prints it. */
static qb_status parse_metadata(qb_safetensors *st, const json_t *obj, qb_error *err) {
    if (!json_is_object(obj))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" is not an object", st->path, QB_ST_METADATA_KEY);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (!json_is_string(v))
            return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" value of \"%.64s\" is not a string", st->path,
                           QB_ST_METADATA_KEY, key);
    }
    st->metadata = qb_json_dumps(obj, QB_JSON_COMPACT);
    if (!st->metadata) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
    return QB_OK;
}

static qb_status parse_members(qb_safetensors *st, const json_t *j, size_t data_size, qb_error *err) {
    st->tensors = calloc(json_object_size(j) + 1, sizeof *st->tensors);
    if (!st->tensors) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
    const char *key;
    size_t len;
    const json_t *v;
    unsigned i = 0;
    json_object_keylen_foreach((json_t *)j, key, len, v) {
        if (len != strlen(key))
            return qb_fail(err, QB_ERR_FORMAT, "%s: tensor #%u: name contains a NUL byte", st->path, i);
        i++;
        if (strcmp(key, QB_ST_METADATA_KEY) == 0) {
            qb_status s = parse_metadata(st, v, err);
            if (s) return s;
            continue;
        }
        qb_st_tensor *t = &st->tensors[st->n++];
        t->name = strdup(key); /* owned by st from here, so close() frees it on failure */
        if (!t->name) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
        qb_status s = parse_entry(st->path, v, data_size, t, err);
        if (s) return s;
    }
    return QB_OK;
}

/* A repeated key (a tensor named twice, two "__metadata__") is refused: which
 * of the two a reader takes differs between libraries. */
static qb_status parse_header(qb_safetensors *st, const char *hdr, size_t len, size_t data_size,
                              qb_error *err) {
    if (!utf8_valid((const unsigned char *)hdr, len))
        return qb_fail(err, QB_ERR_FORMAT, "%s: header is not valid UTF-8", st->path);
    json_t *j = NULL;
    qb_status s = qb_json_parse_unique(hdr, len, st->path, &j, err);
    if (s) return s;
    if (!json_is_object(j))
        s = qb_fail(err, QB_ERR_FORMAT, "%s: header is not a JSON object", st->path);
    else
        s = parse_members(st, j, data_size, err);
    json_decref(j);
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
    if (!utf8_valid((const unsigned char *)t->name, strlen(t->name)))
        return tensor_fail(err, QB_ERR_ARG, path, t->name, "name is not UTF-8");
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

/* Re-built key by key rather than pasted, so the header holds exactly an
 * object of strings whatever spacing or escapes the caller used. */
static qb_status metadata_object(const char *path, const char *json, json_t **out, qb_error *err) {
    char what[256];
    snprintf(what, sizeof what, "%s: metadata", path);
    json_t *j = NULL;
    if (qb_json_parse(json, strlen(json), what, &j, err)) {
        if (err) err->code = QB_ERR_ARG; /* the caller's argument, not a file, is malformed */
        return QB_ERR_ARG;
    }
    qb_status s = QB_OK;
    if (!json_is_object(j)) s = qb_fail(err, QB_ERR_ARG, "%s: not a JSON object", what);
    const char *key;
    json_t *v;
    unsigned i = 0;
    json_object_foreach(j, key, v) {
        if (!s && !json_is_string(v)) s = qb_fail(err, QB_ERR_ARG, "%s: value #%u is not a string", what, i);
        i++;
    }
    if (s) json_decref(j);
    else *out = j;
    return s;
}

static json_t *tensor_entry(const qb_st_write_tensor *t, size_t begin, size_t end) {
    json_t *e = json_object(), *shape = json_array(), *offsets = json_array();
    bool ok = e && shape && offsets;
    for (int d = 0; ok && d < t->ndim; d++) ok = qb_json_push(shape, json_integer(t->shape[d]));
    ok = ok && qb_json_push(offsets, json_integer((json_int_t)begin)) &&
         qb_json_push(offsets, json_integer((json_int_t)end));
    ok = ok && qb_json_set(e, "dtype", json_string(qb_dtype_traits_of(t->dtype)->name));
    ok = qb_json_set(e, "shape", shape) && ok;
    ok = qb_json_set(e, "data_offsets", offsets) && ok;
    return qb_json_built(e, ok);
}

/* Tensors are laid out back to back in the given order with no padding:
 * Hugging Face's reader requires the ranges to tile the data section.  The
 * header is built in memory first: its length goes before it.  It is the
 * module's compact dump, then spaces to a multiple of 8. */
static qb_status build_header(char **out, size_t *out_len, const char *path, const qb_st_write_tensor *ts,
                              int n, const char *metadata_json, qb_error *err) {
    json_t *h = json_object(), *meta = NULL;
    if (metadata_json) {
        qb_status s = metadata_object(path, metadata_json, &meta, err);
        if (s) {
            json_decref(h);
            return s;
        }
    }
    bool ok = h && (!meta || qb_json_set(h, QB_ST_METADATA_KEY, meta));
    size_t offset = 0;
    for (int i = 0; ok && i < n; i++) {
        int64_t numel;
        size_t nbytes;
        shape_bytes(ts[i].shape, ts[i].ndim, ts[i].dtype, &numel, &nbytes);
        ok = qb_json_set(h, ts[i].name, tensor_entry(&ts[i], offset, offset + nbytes));
        offset += nbytes;
    }
    char *text = ok ? qb_json_dumps(h, QB_JSON_COMPACT) : NULL;
    json_decref(h);
    size_t len = text ? strlen(text) : 0;
    /* Padding the header to 8 bytes keeps the data section 8-byte aligned
     * in the mapping, so F32/I64 tensors at aligned offsets need no copy. */
    char *padded = text ? realloc(text, len + 8) : NULL;
    if (!padded) {
        free(text);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    while (len % 8) padded[len++] = ' ';
    *out = padded;
    *out_len = len;
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

static bool write_contents(int fd, const char *hdr, size_t hdr_len, const qb_st_write_tensor *ts, int n) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)hdr_len >> (8 * i));
    if (!write_all(fd, len, 8) || !write_all(fd, hdr, hdr_len)) return false;
    for (int i = 0; i < n; i++) {
        int64_t numel;
        size_t nbytes;
        shape_bytes(ts[i].shape, ts[i].ndim, ts[i].dtype, &numel, &nbytes);
        if (nbytes && !write_all(fd, ts[i].data, nbytes)) return false;
    }
    return true;
}

/* Written under a temporary name, flushed to disk, then renamed: a reader
 * of path sees the old file or the whole new one, never a torn write. */
static qb_status write_atomically(const char *path, const char *hdr, size_t hdr_len,
                                  const qb_st_write_tensor *ts, int n, qb_error *err) {
    char tmp[4200];
    int fd;
    qb_status st = qb_file_create_temp(path, tmp, sizeof tmp, &fd, err);
    if (st) return st;
    bool ok = write_contents(fd, hdr, hdr_len, ts, n) && fsync(fd) == 0;
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
    char *hdr = NULL;
    size_t hdr_len = 0;
    s = build_header(&hdr, &hdr_len, path, tensors, n, metadata_json, err);
    if (!s) s = write_atomically(path, hdr, hdr_len, tensors, n, err);
    free(hdr);
    return s;
}

void qb_safetensors_to_f32(const qb_st_tensor *t, float *out) {
    if (t->dtype == QB_F32) memcpy(out, t->data, t->nbytes);
    else qb_dtype_traits_of(t->dtype)->to_f32(t->data, out, (size_t)t->numel);
}
