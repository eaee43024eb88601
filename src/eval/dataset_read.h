/* Private to the dataset readers: the state one load shares between
 * dataset.c (file, format detection, limits) and the per-format readers.
 * Readers cut the file buffer in place (NULs over separators), so examples
 * point into it and nothing is copied row by row. */
#ifndef QB_EVAL_DATASET_READ_H
#define QB_EVAL_DATASET_READ_H

#include <stdbool.h>
#include <stddef.h>

#include "eval/dataset.h"

/* Everything a loaded dataset owns besides its example array. */
typedef struct {
    char *buf;          /* the whole file, edited in place */
    const char **words; /* CoNLL: all sentences' words, tags and lengths */
    const char **tags;
    size_t *word_lens;
} qb_data_store;

typedef struct {
    const char *path;
    qb_data_store *store;
    char *pos;          /* next unread byte of store->buf */
    char *end;
    int line_no;        /* of the line last returned */
    qb_example *ex;
    int n, cap;         /* cap: lines in the file, a bound on any example count */
    int limit;          /* <= 0: all */
} qb_data_reader;

typedef struct {
    char *s;            /* NUL-terminated, "\n" and a trailing "\r" cut off */
    size_t len;
    int no;             /* 1-based */
} qb_data_line;

bool qb_data_next_line(qb_data_reader *r, qb_data_line *line);
bool qb_data_line_is_blank(const qb_data_line *line);
bool qb_data_full(const qb_data_reader *r);
/* The next example slot, zeroed, starting at line no. */
qb_example *qb_data_push(qb_data_reader *r, int no);

qb_status qb_data_read_tsv(qb_data_reader *r, qb_data_format fmt, const qb_tsv_columns *cols,
                           qb_error *err);
qb_status qb_data_read_conll(qb_data_reader *r, qb_error *err);
qb_status qb_data_read_jsonl(qb_data_reader *r, qb_error *err);

#endif
