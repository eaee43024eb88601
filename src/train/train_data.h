/* Training data: the label set a dataset asks for, every example tokenized
 * once up front, and each epoch's length-bucketed batch order. */
#ifndef QB_TRAIN_TRAIN_DATA_H
#define QB_TRAIN_TRAIN_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/dataset.h"
#include "qbert.h"

/* Distinct labels of a dataset in a stable order: NER tags "O" first, then
 * B-/I- pairs by entity type; other labels numerically when all are
 * integers, else by name. */
typedef struct {
    char **names;
    int n;
    bool token_task;        /* CoNLL: word tags */
} qb_label_set;

/* The labels of train and of dev (may be NULL): a DEV label that a small
 * training slice lacks still needs a class to be scored against. */
qb_status qb_label_set_collect(const qb_dataset *train, const qb_dataset *dev, qb_label_set *ls, qb_error *err);
void qb_label_set_free(qb_label_set *ls);

/* Tokenized examples, packed end to end: example i is tokens
 * start[i] .. start[i + 1].  Token tasks label the first sub-token of each
 * word and ignore the rest (QB_IGNORE_INDEX). */
typedef struct {
    int n;
    int64_t *start;
    int32_t *ids, *types;
    int32_t *labels;        /* sequence: [n]; token: one per token; masked LM: NULL */
    uint8_t *flags;         /* masked LM: QB_MLM_* per token (train/mlm_data.h); else NULL */
    bool token_task;
    int max_len;
} qb_train_set;

/* label_of maps a dataset label to its class id, or -1 if it has none. */
typedef int (*qb_label_map_fn)(const void *ctx, const char *label);

qb_status qb_train_set_encode(const qb_model *m, const qb_dataset *ds, int max_length, qb_label_map_fn label_of,
                              const void *map_ctx, qb_train_set *ts, qb_error *err);
void qb_train_set_free(qb_train_set *ts);

/* One epoch's order: order[] holds every example, batch b is
 * order[bounds[b] .. bounds[b + 1]].  Examples are shuffled, sorted by
 * length within windows of many batches (little padding), cut into batches,
 * and the batches shuffled; all from (seed, epoch). */
int qb_train_set_batches(const qb_train_set *ts, int batch, uint64_t seed, int epoch, int *order, int *bounds);

#endif
