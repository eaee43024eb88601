/* Dataset readers for evaluation, benchmarking and (later) training.
 * Every example keeps its source line so errors and warnings can name it. */
#ifndef QB_EVAL_DATASET_H
#define QB_EVAL_DATASET_H

#include <stddef.h>

#include "qbert.h"

typedef enum {
    QB_DATA_AUTO,  /* from the file: CoNLL columns, IMDB or SST-2 header, JSONL */
    QB_DATA_SST2,  /* GLUE TSV: header, sentence<TAB>label */
    QB_DATA_IMDB,  /* label<TAB>rating<TAB>id<TAB>text, "<br />" read as whitespace */
    QB_DATA_CONLL, /* "token POS chunk NER" lines, blank line between sentences */
    QB_DATA_TSV,   /* generic TSV, columns from qb_tsv_columns */
    QB_DATA_JSONL  /* {"text", "text_pair"?, "label"?} a line */
} qb_data_format;

typedef struct {
    int text_col;   /* 0-based */
    int pair_col;   /* -1: none */
    int label_col;  /* -1: none */
    int header;     /* 1: skip first line; 0: none; -1: skip it if its label is not a label */
} qb_tsv_columns;

typedef struct {
    const char *text;   /* sequence tasks: (pointer, length), may hold NULs (JSONL) */
    size_t text_len;
    const char *pair;   /* NULL if none */
    size_t pair_len;
    const char *label;  /* label as written ("1", "positive", "B-PER"...), NULL if none */
    /* CoNLL: the sentence's words and their tags */
    int n_words;
    const char **words;
    size_t *word_lens;
    const char **tags;
    int line;           /* 1-based line where the example starts */
} qb_example;

typedef struct {
    char *path;
    qb_data_format format;
    qb_example *ex;
    int n;
    void *storage;      /* owned memory the examples point into */
} qb_dataset;

const char *qb_data_format_name(qb_data_format f);
/* "sst2", "imdb", "conll", "tsv", "jsonl", "auto"; returns 1 if name is one
 * of them, else 0. */
int qb_data_format_from_name(const char *name, qb_data_format *out);
/* A task name given by a user: NULL is auto, an unknown name an error. */
qb_status qb_data_format_parse(const char *task, qb_data_format *out, qb_error *err);

/* limit <= 0: all rows.  An empty dataset is an error naming the file.
 * cols is read for QB_DATA_TSV only (also when AUTO finds a plain TSV);
 * NULL means text in column 0, a label in column 1 if the first line has
 * one, and header -1.  CoNLL examples have text NULL: one example a
 * sentence, its words in words/word_lens/tags. */
qb_status qb_dataset_load(const char *path, qb_data_format fmt, const qb_tsv_columns *cols,
                          int limit, qb_dataset *ds, qb_error *err);
void qb_dataset_free(qb_dataset *ds);

/* An example tokenized as its format reads it (pre-split words for CoNLL);
 * a tokenizer error is prefixed with the example's file and line. */
qb_status qb_example_tokenize(const qb_model *m, const qb_dataset *ds, const qb_example *x, int max_length,
                              qb_encoding *enc, qb_error *err);

#endif
