/* JSON Lines reader: {"text": str, "text_pair": str|null, "label": str|int}
 * a line.  The decoded fields are written back over the line's own bytes
 * (each is shorter than its escaped, quoted form in the line): examples point
 * into the buffer like every other format's, and keep NULs from "\u0000". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "eval/dataset_read.h"

/* Where the next decoded field goes in the line's buffer. */
typedef struct {
    char *buf;
    size_t used, cap;
} line_sink;

static bool sink_put(line_sink *k, const char *s, size_t n, const char **out, size_t *out_len) {
    if (n + 1 > k->cap - k->used) return false;
    char *dst = k->buf + k->used;
    memmove(dst, s, n);
    dst[n] = '\0';
    k->used += n + 1;
    *out = dst;
    if (out_len) *out_len = n;
    return true;
}

typedef struct {
    const json_t *text, *pair, *label; /* NULL when absent or null */
} jsonl_fields;

/* Integer labels must be JSON integers, which print back as written (JSON
 * allows no leading zeros or '+'), so they too fit where they stood. */
static qb_status find_fields(const json_t *j, const char *where, jsonl_fields *f, qb_error *err) {
    if (!json_is_object(j)) return qb_fail(err, QB_ERR_FORMAT, "%s: expected a JSON object", where);
    f->text = json_object_get(j, "text");
    f->pair = json_object_get(j, "text_pair");
    f->label = json_object_get(j, "label");
    if (!f->text) return qb_fail(err, QB_ERR_FORMAT, "%s: no \"text\" field", where);
    if (!json_is_string(f->text))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"text\" must be a string", where);
    if (json_is_null(f->pair)) f->pair = NULL;
    if (f->pair && !json_is_string(f->pair))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"text_pair\" must be a string or null", where);
    if (json_is_null(f->label)) f->label = NULL;
    if (f->label && !json_is_string(f->label) && !json_is_integer(f->label))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"label\" must be a string or an integer", where);
    return QB_OK;
}

static bool put_fields(const jsonl_fields *f, line_sink *k, qb_example *e) {
    size_t n;
    const char *s = qb_json_str(f->text, &n);
    bool ok = sink_put(k, s, n, &e->text, &e->text_len);
    if (ok && f->pair) {
        s = qb_json_str(f->pair, &n);
        ok = sink_put(k, s, n, &e->pair, &e->pair_len);
    }
    if (ok && f->label && json_is_string(f->label)) {
        s = qb_json_str(f->label, &n);
        ok = sink_put(k, s, n, &e->label, NULL);
    } else if (ok && f->label) {
        char digits[24];
        int d = snprintf(digits, sizeof digits, "%" PRId64, (int64_t)json_integer_value(f->label));
        ok = sink_put(k, digits, (size_t)d, &e->label, NULL);
    }
    return ok;
}

static qb_status add_line(qb_data_reader *r, const qb_data_line *line, qb_error *err) {
    char where[512];
    snprintf(where, sizeof where, "%s:%d", r->path, line->no);
    json_t *j = NULL;
    qb_status st = qb_json_parse(line->s, line->len, where, &j, err);
    if (st) return st;
    jsonl_fields f = {NULL, NULL, NULL};
    st = find_fields(j, where, &f, err);
    if (!st) {
        qb_example *e = qb_data_push(r, line->no);
        line_sink k = {line->s, 0, line->len + 1}; /* its NUL too */
        if (!put_fields(&f, &k, e)) st = qb_fail(err, QB_ERR_FORMAT, "%s: fields longer than their line", where);
    }
    json_decref(j);
    return st;
}

qb_status qb_data_read_jsonl(qb_data_reader *r, qb_error *err) {
    qb_data_line line;
    qb_status st = QB_OK;
    const char *p = r->pos;
    while (p < r->end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    if (p < r->end && *p == '[')
        return qb_fail(err, QB_ERR_FORMAT, "%s: a JSON array; datasets are JSON Lines, one object a line", r->path);
    while (!st && !qb_data_full(r) && qb_data_next_line(r, &line)) {
        if (!qb_data_line_is_blank(&line)) st = add_line(r, &line, err);
    }
    return st;
}
