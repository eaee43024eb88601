/* Tab-separated readers: SST-2 and IMDB are fixed column layouts of the
 * generic reader.  Fields are cut in place, so texts stay byte-exact
 * (SST-2's trailing space before the tab included). */
#include <string.h>

#include "core/error.h"
#include "eval/dataset_read.h"

enum { MAX_COLUMNS = 64 };

static const qb_tsv_columns sst2_columns = {.text_col = 0, .pair_col = -1, .label_col = 1, .header = 1};
static const qb_tsv_columns imdb_columns = {.text_col = 3, .pair_col = -1, .label_col = 0, .header = 1};

typedef struct {
    char *s[MAX_COLUMNS];
    size_t len[MAX_COLUMNS];
    int n;              /* every field of the line, even those past MAX_COLUMNS */
} tsv_fields;

static void split_tabs(char *s, size_t len, tsv_fields *f) {
    f->n = 0;
    char *end = s + len;
    for (;;) {
        char *tab = memchr(s, '\t', (size_t)(end - s));
        char *stop = tab ? tab : end;
        if (f->n < MAX_COLUMNS) {
            f->s[f->n] = s;
            f->len[f->n] = (size_t)(stop - s);
        }
        f->n++;
        if (!tab) return;
        *tab = '\0';
        s = tab + 1;
    }
}

static bool field_is(const tsv_fields *f, int col, const char *want) {
    return col >= 0 && col < f->n && f->len[col] == strlen(want) && memcmp(f->s[col], want, f->len[col]) == 0;
}

/* header -1: a first line that names its columns rather than holding data. */
static bool looks_like_header(const tsv_fields *f, const qb_tsv_columns *c) {
    if (c->label_col >= 0) return field_is(f, c->label_col, "label");
    return field_is(f, c->text_col, "text") || field_is(f, c->text_col, "sentence");
}

/* IMDB reviews keep the HTML line breaks of the original; the reference
 * models read each "<br />" as whitespace.  Shrinks the text in place. */
static size_t replace_html_breaks(char *s, size_t n) {
    static const char br[] = "<br />";
    const size_t br_len = sizeof br - 1;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '<' && n - i >= br_len && memcmp(s + i, br, br_len) == 0) {
            s[w++] = ' ';
            i += br_len;
        } else {
            s[w++] = s[i++];
        }
    }
    s[w] = '\0';
    return w;
}

static qb_status check_columns(const qb_data_reader *r, const qb_tsv_columns *c, int *need,
                               qb_error *err) {
    int top = c->text_col;
    if (c->pair_col > top) top = c->pair_col;
    if (c->label_col > top) top = c->label_col;
    if (c->text_col < 0 || top >= MAX_COLUMNS || c->pair_col < -1 || c->label_col < -1)
        return qb_fail(err, QB_ERR_ARG, "%s: TSV columns out of range (text %d, pair %d, label %d)",
                       r->path, c->text_col, c->pair_col, c->label_col);
    if (c->pair_col == c->text_col || c->label_col == c->text_col || (c->label_col >= 0 && c->label_col == c->pair_col))
        return qb_fail(err, QB_ERR_ARG, "%s: TSV columns must differ (text %d, pair %d, label %d)", r->path,
                       c->text_col, c->pair_col, c->label_col);
    *need = top + 1;
    return QB_OK;
}

/* A label is read without the spaces around it, on either side (as
 * Python's int() and a spreadsheet read " 1" and "1 "); a text is not. */
static void trim_label(tsv_fields *f, int col) {
    while (f->len[col] && f->s[col][0] == ' ') f->s[col]++, f->len[col]--;
    while (f->len[col] && f->s[col][f->len[col] - 1] == ' ') f->len[col]--;
    f->s[col][f->len[col]] = '\0';
}

static qb_status add_row(qb_data_reader *r, tsv_fields *f, int no, const qb_tsv_columns *c,
                         bool html_breaks, qb_error *err) {
    if (c->label_col >= 0) trim_label(f, c->label_col);
    if (c->label_col >= 0 && f->len[c->label_col] == 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s:%d: empty label (column %d)", r->path, no, c->label_col + 1);
    qb_example *e = qb_data_push(r, no);
    e->text = f->s[c->text_col];
    e->text_len = f->len[c->text_col];
    if (html_breaks) e->text_len = replace_html_breaks(f->s[c->text_col], e->text_len);
    if (c->pair_col >= 0) {
        e->pair = f->s[c->pair_col];
        e->pair_len = f->len[c->pair_col];
    }
    if (c->label_col >= 0) e->label = f->s[c->label_col];
    return QB_OK;
}

qb_status qb_data_read_tsv(qb_data_reader *r, qb_data_format fmt, const qb_tsv_columns *cols,
                           qb_error *err) {
    const qb_tsv_columns *c = fmt == QB_DATA_SST2 ? &sst2_columns : fmt == QB_DATA_IMDB ? &imdb_columns : cols;
    int need = 0;
    qb_status st = check_columns(r, c, &need, err);
    bool first = true;
    qb_data_line line;
    tsv_fields f;
    while (!st && !qb_data_full(r) && qb_data_next_line(r, &line)) {
        if (line.len == 0) continue;
        split_tabs(line.s, line.len, &f);
        bool skip = first && (c->header == 1 || (c->header == -1 && looks_like_header(&f, c)));
        first = false;
        if (skip) continue;
        if (f.n < need)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: expected %d tab-separated columns, found %d",
                           r->path, line.no, need, f.n);
        st = add_row(r, &f, line.no, c, fmt == QB_DATA_IMDB, err);
    }
    return st;
}
