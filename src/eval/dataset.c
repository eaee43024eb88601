/* Dataset loading: reads the file once, picks the format (from the caller or
 * from the first lines) and hands the buffer to the format's reader. */
#include "eval/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "eval/dataset_read.h"

static const char *const format_names[] = {
    [QB_DATA_AUTO] = "auto",   [QB_DATA_SST2] = "sst2", [QB_DATA_IMDB] = "imdb",
    [QB_DATA_CONLL] = "conll", [QB_DATA_TSV] = "tsv",   [QB_DATA_JSONL] = "jsonl",
};
enum { FORMAT_COUNT = sizeof format_names / sizeof format_names[0] };

const char *qb_data_format_name(qb_data_format f) {
    return (unsigned)f < FORMAT_COUNT ? format_names[f] : "unknown";
}

int qb_data_format_from_name(const char *name, qb_data_format *out) {
    for (int f = 0; f < FORMAT_COUNT; f++) {
        if (strcmp(format_names[f], name) == 0) {
            *out = (qb_data_format)f;
            return 1;
        }
    }
    return 0;
}

qb_status qb_data_format_parse(const char *task, qb_data_format *out, qb_error *err) {
    *out = QB_DATA_AUTO;
    if (task && !qb_data_format_from_name(task, out))
        return qb_fail(err, QB_ERR_ARG, "unknown task '%s' (sst2, imdb, conll, tsv, jsonl, auto)", task);
    return QB_OK;
}

qb_status qb_example_tokenize(const qb_model *m, const qb_dataset *ds, const qb_example *x, int max_length,
                              qb_encoding *enc, qb_error *err) {
    qb_status st = x->n_words ? qb_tokenize_words(m, x->words, x->word_lens, x->n_words, max_length, enc, err)
                              : qb_tokenize(m, x->text, x->text_len, x->pair, x->pair_len, max_length, enc, err);
    if (!st) return QB_OK;
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", ds->path, x->line);
    return qb_fail_wrap(err, st, where);
}

/* ---- line access shared by the readers -------------------------------- */

bool qb_data_next_line(qb_data_reader *r, qb_data_line *line) {
    if (r->pos >= r->end) return false;
    char *s = r->pos;
    char *nl = memchr(s, '\n', (size_t)(r->end - s));
    char *stop = nl ? nl : r->end;
    r->pos = nl ? nl + 1 : r->end;
    if (stop > s && stop[-1] == '\r') stop--;
    *stop = '\0';
    line->s = s;
    line->len = (size_t)(stop - s);
    line->no = ++r->line_no;
    return true;
}

bool qb_data_line_is_blank(const qb_data_line *line) {
    for (size_t i = 0; i < line->len; i++) {
        if (line->s[i] != ' ' && line->s[i] != '\t') return false;
    }
    return true;
}

bool qb_data_full(const qb_data_reader *r) {
    return (r->limit > 0 && r->n >= r->limit) || r->n >= r->cap;
}

qb_example *qb_data_push(qb_data_reader *r, int no) {
    qb_example *e = &r->ex[r->n++];
    memset(e, 0, sizeof *e);
    e->line = no;
    return e;
}

/* ---- format detection ------------------------------------------------- */

static size_t first_line_len(const char *s, size_t size) {
    const char *nl = memchr(s, '\n', size);
    size_t n = nl ? (size_t)(nl - s) : size;
    return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

static bool line_equals(const char *s, size_t size, const char *want) {
    size_t n = first_line_len(s, size);
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Skips lines holding only spaces, tabs and "\r"; returns the offset of the
 * first other line. */
static size_t skip_blank_lines(const char *s, size_t size, size_t at) {
    size_t line = at;
    for (size_t i = at; i < size; i++) {
        if (s[i] == '\n') line = i + 1;
        else if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return line;
    }
    return size;
}

static int count_space_fields(const char *s, size_t n) {
    int fields = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' ')) fields++;
    }
    return fields;
}

static bool has_blank_line_after(const char *s, size_t size, size_t at) {
    for (size_t i = at; i < size; i++) {
        if (s[i] != '\n') continue;
        size_t j = i + 1;
        while (j < size && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r')) j++;
        if (j < size && s[j] == '\n') return true;
    }
    return false;
}

static bool looks_like_conll(const char *s, size_t size, size_t first) {
    size_t n = first_line_len(s + first, size - first);
    if (memchr(s + first, '\t', n) || count_space_fields(s + first, n) < 2) return false;
    if (n >= 10 && memcmp(s + first, "-DOCSTART-", 10) == 0) return true;
    return has_blank_line_after(s, size, first);
}

static qb_data_format detect_format(const char *s, size_t size) {
    if (line_equals(s, size, "sentence\tlabel")) return QB_DATA_SST2;
    if (line_equals(s, size, "label\trating\tid\ttext")) return QB_DATA_IMDB;
    size_t first = skip_blank_lines(s, size, 0);
    size_t i = first;
    while (i < size && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i < size && (s[i] == '{' || s[i] == '[')) return QB_DATA_JSONL; /* '[': refused there, by name */
    if (first < size && looks_like_conll(s, size, first)) return QB_DATA_CONLL;
    return QB_DATA_TSV;
}

static bool name_is(const char *s, size_t n, const char *a, const char *b, const char *c) {
    const char *names[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (names[i] && strlen(names[i]) == n && !memcmp(s, names[i], n)) return true;
    return false;
}

/* Field col of a tab-separated line of n bytes (NULL past its last field). */
static const char *nth_field(const char *s, size_t n, int col, size_t *len) {
    size_t i = 0;
    for (int c = 0; c < col; c++) {
        const char *tab = memchr(s + i, '\t', n - i);
        if (!tab) return NULL;
        i = (size_t)(tab - s) + 1;
    }
    const char *tab = memchr(s + i, '\t', n - i);
    *len = (tab ? (size_t)(tab - s) : n) - i;
    return s + i;
}

static bool is_number(const char *s, size_t n) {
    size_t i = 0, digits = 0, dots = 0;
    while (i < n && s[i] == ' ') i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    for (; i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'); i++) {
        if (s[i] == '.') dots++;
        else digits++;
    }
    while (i < n && s[i] == ' ') i++;
    return i == n && digits > 0 && dots <= 1;
}

/* Whether field col of the lines from at on (up to 20) are all numbers. */
static bool column_is_numbers(const char *text, size_t size, size_t at, int col) {
    int seen = 0;
    for (; at < size && seen < 20; at = skip_blank_lines(text, size, at), seen++) {
        size_t n = first_line_len(text + at, size - at), len;
        const char *f = nth_field(text + at, n, col, &len);
        if (!f || !is_number(f, len)) return false;
        const char *nl = memchr(text + at, '\n', size - at);
        at = nl ? (size_t)(nl - text) + 1 : size;
    }
    return seen > 0;
}

/* A first line of words over a column of numbers is a header, as Python's
 * csv.Sniffer reasons ("id" over 1, 2, 3...). */
static bool is_header_line(const char *text, size_t size, size_t at) {
    size_t n = first_line_len(text + at, size - at), len;
    const char *f;
    size_t next = skip_blank_lines(text, size, at + n < size ? at + n + 1 : size);
    for (int c = 0; (f = nth_field(text + at, n, c, &len)); c++)
        if (len > 0 && !is_number(f, len) && column_is_numbers(text, size, next, c)) return true;
    return false;
}

/* A comma-separated header naming qbert's columns: a CSV, which a
 * tab-separated reader would take as one text per line, labels included. */
static bool is_csv_header(const char *s, size_t n) {
    if (memchr(s, '\t', n) || !memchr(s, ',', n)) return false;
    for (size_t i = 0; i <= n;) {
        size_t end = i;
        while (end < n && s[end] != ',') end++;
        size_t a = i, z = end;
        while (a < z && (s[a] == ' ' || s[a] == '"')) a++;
        while (z > a && (s[z - 1] == ' ' || s[z - 1] == '"')) z--;
        if (name_is(s + a, z - a, "sentence", "text", "label") || name_is(s + a, z - a, "sentence1", NULL, NULL))
            return true;
        i = end + 1;
    }
    return false;
}

/* A TSV without the caller's columns.  A header naming them picks them, as
 * predict reads a table (the text: sentence, text or sentence1; the pair:
 * sentence2 or text_pair; label); else the text first, a label second if
 * there is a second column, and a first line saying "label" skipped.  A
 * header that names no text column, and a CSV, are refused: read by
 * position, their ids or labels would pass for texts. */
static qb_status default_columns(const char *path, const char *text, size_t size, qb_tsv_columns *out,
                                 qb_error *err) {
    size_t at = skip_blank_lines(text, size, 0);
    const char *s = text + at;
    size_t n = first_line_len(s, size - at);
    int text_col = -1, pair = -1, label = -1;
    for (size_t i = 0, col = 0; i <= n; col++) {
        size_t end = i;
        while (end < n && s[end] != '\t') end++;
        if (text_col < 0 && name_is(s + i, end - i, "sentence", "text", "sentence1")) text_col = (int)col;
        else if (pair < 0 && name_is(s + i, end - i, "sentence2", "text_pair", NULL)) pair = (int)col;
        else if (label < 0 && name_is(s + i, end - i, "label", NULL, NULL)) label = (int)col;
        i = end + 1;
    }
    if (text_col >= 0) {
        *out = (qb_tsv_columns){.text_col = text_col, .pair_col = pair, .label_col = label, .header = 1};
        return QB_OK;
    }
    if (is_csv_header(s, n))
        return qb_fail(err, QB_ERR_FORMAT, "%s: a comma-separated header; qbert reads tab-separated columns "
                       "(or JSONL, CoNLL): convert the file to TSV", path);
    if (is_header_line(text, size, at))
        return qb_fail(err, QB_ERR_FORMAT, "%s: its header names no text column; name the text's column "
                       "sentence or text (and the label's label)", path);
    bool two = memchr(s, '\t', n) != NULL;
    *out = (qb_tsv_columns){.text_col = 0, .pair_col = -1, .label_col = two ? 1 : -1, .header = -1};
    return QB_OK;
}

/* ---- load / free ------------------------------------------------------ */

/* A dataset is read whole, so a file that never ends (a device, a FIFO fed
 * forever) is stopped at QB_DATA_FILE_MAX, beyond the public
 * classification and NER sets (tens to a few hundred MB); with at most
 * 2^30 lines the int line counts cannot overflow.  One line
 * (a row, a JSONL object, a CoNLL word) may take up to 64 MiB: a whole book
 * as one example is 1-2 MB. */
#define QB_DATA_FILE_MAX ((size_t)1 << 30)
#define QB_DATA_LINE_MAX ((size_t)64 << 20)

static int count_lines(const char *s, size_t size) {
    int n = 1;
    for (const char *p = s; (p = memchr(p, '\n', size - (size_t)(p - s))) != NULL; p++) n++;
    return n;
}

static qb_status read_examples(qb_data_reader *r, qb_data_format fmt, const qb_tsv_columns *cols,
                               qb_error *err) {
    switch (fmt) {
    case QB_DATA_SST2:
    case QB_DATA_IMDB:
    case QB_DATA_TSV: return qb_data_read_tsv(r, fmt, cols, err);
    case QB_DATA_CONLL: return qb_data_read_conll(r, err);
    case QB_DATA_JSONL: return qb_data_read_jsonl(r, err);
    case QB_DATA_AUTO: break;
    }
    return qb_fail(err, QB_ERR_ARG, "%s: unknown dataset format %d", r->path, (int)fmt);
}

/* A carriage return that does not end a line: a file saved with CR-only
 * line endings reads as one line, which no reader would explain well. */
static qb_status check_bare_cr(const char *path, const char *s, size_t size, qb_error *err) {
    for (const char *p = s, *end = s + size; (p = memchr(p, '\r', (size_t)(end - p))); p++) {
        if (p + 1 < end && p[1] == '\n') continue;
        if (p + 1 == end) break; /* a last line ending in CR alone */
        long line = 1;
        for (const char *q = s; (q = memchr(q, '\n', (size_t)(p - q))); q++) line++;
        return qb_fail(err, QB_ERR_FORMAT, "%s:%ld: carriage return inside a line (CR-only line endings? convert "
                       "them to LF)", path, line);
    }
    return QB_OK;
}

qb_status qb_dataset_load(const char *path, qb_data_format fmt, const qb_tsv_columns *cols,
                          int limit, qb_dataset *ds, qb_error *err) {
    memset(ds, 0, sizeof *ds);
    qb_data_store *store = calloc(1, sizeof *store);
    ds->storage = store;
    ds->path = strdup(path);
    if (!store || !ds->path) {
        qb_dataset_free(ds);
        return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t size;
    qb_status st =
        qb_file_read_max(path, QB_DATA_FILE_MAX, QB_DATA_LINE_MAX, "a dataset", &store->buf, &size, err);
    if (st) {
        qb_dataset_free(ds);
        return st;
    }
    char *text = store->buf;
    if (size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { /* editors on Windows add a BOM */
        text += 3;
        size -= 3;
    }
    st = check_bare_cr(path, text, size, err);
    if (st) {
        qb_dataset_free(ds);
        return st;
    }
    /* columns the caller chose read a TSV whatever its header looks like */
    if (fmt == QB_DATA_AUTO) fmt = detect_format(text, size);
    if (cols && (fmt == QB_DATA_SST2 || fmt == QB_DATA_IMDB)) fmt = QB_DATA_TSV;
    qb_tsv_columns auto_cols = {0};
    if (!cols && fmt == QB_DATA_TSV) st = default_columns(path, text, size, &auto_cols, err);
    if (st) {
        qb_dataset_free(ds);
        return st;
    }
    qb_data_reader r = {.path = path, .store = store, .pos = text, .end = text + size,
                        .limit = limit, .cap = count_lines(text, size)};
    r.ex = calloc((size_t)r.cap, sizeof *r.ex);
    ds->ex = r.ex;
    if (!r.ex) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    if (!st) st = read_examples(&r, fmt, cols ? cols : &auto_cols, err);
    if (!st && r.n == 0) st = qb_fail(err, QB_ERR_FORMAT, "%s: no examples", path);
    if (st) {
        qb_dataset_free(ds);
        return st;
    }
    qb_example *fit = realloc(r.ex, (size_t)r.n * sizeof *r.ex);
    ds->ex = fit ? fit : r.ex;
    ds->n = r.n;
    ds->format = fmt;
    return QB_OK;
}

void qb_dataset_free(qb_dataset *ds) {
    qb_data_store *store = ds->storage;
    if (store) {
        free(store->buf);
        free(store->words);
        free(store->tags);
        free(store->word_lens);
        free(store);
    }
    free(ds->ex);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
}
