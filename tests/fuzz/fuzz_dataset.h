/* Dataset readers (src/eval/dataset*.c): the bytes as a file, loaded in the
 * target's format and by detection; every example's fields are read back
 * so ASan checks each pointer and length. */
#ifndef QB_FUZZ_DATASET_H
#define QB_FUZZ_DATASET_H

#include "fuzz_common.h"

#include "eval/dataset.h"

static fuzz_file fuzz_dataset_file;

static inline void fuzz_dataset_check(const qb_dataset *ds) {
    if (ds->n <= 0) abort(); /* an empty dataset is an error, never a success */
    for (int i = 0; i < ds->n; i++) {
        const qb_example *e = &ds->ex[i];
        if (e->line < 1) abort();
        if (e->text) fuzz_touch(e->text, e->text_len + 1); /* NUL-terminated */
        if (e->pair) fuzz_touch(e->pair, e->pair_len + 1);
        if (e->label) fuzz_touch(e->label, strlen(e->label));
        for (int w = 0; w < e->n_words; w++) {
            /* (pointer, length): a NUL byte inside a word is data */
            if (strlen(e->words[w]) > e->word_lens[w] || e->words[w][e->word_lens[w]]) abort();
            fuzz_touch(e->tags[w], strlen(e->tags[w]));
        }
    }
}

static inline void fuzz_dataset_load(const uint8_t *data, size_t size, qb_data_format fmt,
                                     const qb_tsv_columns *cols, int limit) {
    const char *path = fuzz_file_write(&fuzz_dataset_file, data, size);
    qb_dataset ds;
    qb_error err;
    if (qb_dataset_load(path, fmt, cols, limit, &ds, &err) != QB_OK) {
        fuzz_touch(err.msg, strlen(err.msg));
        return;
    }
    fuzz_dataset_check(&ds);
    if (limit > 0 && ds.n > limit) abort();
    qb_dataset_free(&ds);
}

#endif
