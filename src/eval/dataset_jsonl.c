/* JSON Lines reader: {"text": str, "text_pair": str|null, "label": str|int}
 * a line.  A decoded string is never longer than its escaped form, so it is
 * written back over its own bytes in the file buffer: examples point into
 * the buffer like every other format's, and keep NULs from "\u0000". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "eval/dataset_read.h"

/* Decodes string token t in place; false only when out of memory. */
static bool decode_in_place(const qb_json *j, int t, char *line, const char **out, size_t *out_len) {
    const qb_json_tok *k = &j->toks[t];
    char *raw = line + k->start;
    size_t raw_len = k->end - k->start;
    if (!memchr(raw, '\\', raw_len)) {
        raw[raw_len] = '\0'; /* the closing quote */
        *out = raw;
        *out_len = raw_len;
        return true;
    }
    size_t n;
    char *decoded = qb_json_strdup(j, t, &n); /* only escaped strings pay for a copy */
    if (!decoded) return false;
    memcpy(raw, decoded, n);
    raw[n] = '\0';
    free(decoded);
    *out = raw;
    *out_len = n;
    return true;
}

/* Integer labels keep their digits as written; the byte after a number is
 * a delimiter already consumed by the parser, so it can take the NUL. */
static void cut_number(const qb_json *j, int t, char *line, const char **out) {
    line[j->toks[t].end] = '\0';
    *out = line + j->toks[t].start;
}

typedef struct {
    int text, pair, label; /* token indexes, -1 when absent or null */
} jsonl_fields;

static qb_status find_fields(const qb_json *j, const char *where, jsonl_fields *f, qb_error *err) {
    if (!qb_json_is(j, 0, QB_JSON_OBJECT)) return qb_fail(err, QB_ERR_FORMAT, "%s: expected a JSON object", where);
    f->text = qb_json_get(j, 0, "text");
    f->pair = qb_json_get(j, 0, "text_pair");
    f->label = qb_json_get(j, 0, "label");
    if (!qb_json_is(j, f->text, QB_JSON_STRING))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"text\" must be a string", where);
    if (f->pair >= 0 && qb_json_is(j, f->pair, QB_JSON_NULL)) f->pair = -1;
    if (f->pair >= 0 && !qb_json_is(j, f->pair, QB_JSON_STRING))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"text_pair\" must be a string or null", where);
    if (f->label >= 0 && qb_json_is(j, f->label, QB_JSON_NULL)) f->label = -1;
    int64_t v;
    if (f->label >= 0 && !qb_json_is(j, f->label, QB_JSON_STRING) && !qb_json_int(j, f->label, &v))
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"label\" must be a string or an integer", where);
    return QB_OK;
}

static qb_status add_line(qb_data_reader *r, const qb_data_line *line, qb_error *err) {
    char where[512];
    snprintf(where, sizeof where, "%s:%d", r->path, line->no);
    qb_json j;
    qb_status st = qb_json_parse(&j, line->s, line->len, where, err);
    if (st) return st;
    jsonl_fields f = {-1, -1, -1};
    st = find_fields(&j, where, &f, err);
    if (!st) {
        qb_example *e = qb_data_push(r, line->no);
        bool ok = decode_in_place(&j, f.text, line->s, &e->text, &e->text_len);
        if (ok && f.pair >= 0) ok = decode_in_place(&j, f.pair, line->s, &e->pair, &e->pair_len);
        size_t label_len;
        if (ok && f.label >= 0 && qb_json_is(&j, f.label, QB_JSON_STRING))
            ok = decode_in_place(&j, f.label, line->s, &e->label, &label_len);
        else if (ok && f.label >= 0)
            cut_number(&j, f.label, line->s, &e->label);
        if (!ok) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", where);
    }
    qb_json_free(&j);
    return st;
}

qb_status qb_data_read_jsonl(qb_data_reader *r, qb_error *err) {
    qb_data_line line;
    qb_status st = QB_OK;
    while (!st && !qb_data_full(r) && qb_data_next_line(r, &line)) {
        if (!qb_data_line_is_blank(&line)) st = add_line(r, &line, err);
    }
    return st;
}
