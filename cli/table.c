/* Records of TSV and CSV files with a header line, for predict --input. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* TSV: fields between tabs, as GLUE's files have them (no quoting). */
static int split_tsv(char *b, size_t len, qb_table_row *r) {
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && b[i] != '\t') continue;
        if (r->n == QB_TABLE_MAX_FIELDS) return QB_TABLE_TOO_WIDE;
        r->field[r->n] = b + start;
        r->len[r->n++] = i - start;
        b[i] = 0;
        start = i + 1;
    }
    return QB_TABLE_OK;
}

/* CSV as RFC 4180 has it: a field in double quotes may hold commas, line
 * breaks and doubled quotes; unquoted in place (the text only shrinks). */
static int split_csv(char *b, size_t len, qb_table_row *r) {
    size_t i = 0, w = 0;
    for (;;) {
        if (r->n == QB_TABLE_MAX_FIELDS) return QB_TABLE_TOO_WIDE;
        char *start = b + w;
        if (i < len && b[i] == '"') {
            for (i++;; i++) {
                if (i >= len) return QB_TABLE_OPEN_QUOTE;
                if (b[i] == '"' && i + 1 < len && b[i + 1] == '"') b[w++] = '"', i++;
                else if (b[i] == '"') break;
                else b[w++] = b[i];
            }
            i++;
            if (i < len && b[i] != ',') return QB_TABLE_BAD_QUOTE;
        } else {
            while (i < len && b[i] != ',') {
                if (b[i] == '"') return QB_TABLE_BAD_QUOTE;
                b[w++] = b[i++];
            }
        }
        r->field[r->n] = start;
        r->len[r->n++] = (size_t)(b + w - start);
        b[w++] = 0;
        if (i >= len) return QB_TABLE_OK;
        i++; /* the comma */
    }
}

int qb_table_split(const char *rec, size_t len, char sep, qb_table_row *r) {
    char *b = realloc(r->buf, len + 1);
    if (!b) return QB_TABLE_NOMEM;
    r->buf = b;
    memcpy(b, rec, len);
    b[len] = 0;
    r->n = 0;
    return sep == '\t' ? split_tsv(b, len, r) : split_csv(b, len, r);
}

const char *qb_table_problem(int rc) {
    switch (rc) {
    case QB_TABLE_OPEN_QUOTE: return "a quoted field is not closed";
    case QB_TABLE_BAD_QUOTE: return "a quote inside an unquoted field, or text after a closing quote";
    case QB_TABLE_TOO_WIDE: return "more fields than qbert reads (" QB_TABLE_MAX_FIELDS_STR ")";
    case QB_TABLE_NOMEM: return "out of memory";
    default: return "";
    }
}
