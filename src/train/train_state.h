/* A training run's state on disk, so `--resume` continues it exactly:
 * every parameter with its two Adam moments, the QAT scales, the update
 * and dropout counters, and where in which epoch the run stood.  One
 * safetensors file, written to a temporary name and renamed, so a run
 * killed while writing leaves the previous state loadable. */
#ifndef QB_TRAIN_TRAIN_STATE_H
#define QB_TRAIN_TRAIN_STATE_H

#include <stdbool.h>

#include "train/trainer.h"

typedef struct {
    int epoch;              /* 0-based epoch in progress */
    int batch;              /* its next batch */
    double loss_sum;        /* this epoch's batch losses so far */
    long examples;          /* this epoch's examples so far */
    long steps;             /* optimizer steps of finished epochs */
    long trained;           /* examples trained on, all epochs */
    double train_s;         /* training seconds so far, evaluation excluded */
    int best_epoch;         /* 1-based, 0: none yet */
    double best;
    /* Which OUT_DIR holds the best epoch, so a resumed run can tell its own
     * output from a missing or foreign one: the directory as the run named
     * it, the SHA-256 of its model.safetensors, and what it held before
     * that epoch moved in ("" for nothing: a state is saved just before
     * the move, and a run killed between the two still finds it its own). */
    char out_dir[4096];
    char best_sha256[65], prev_sha256[65];
} qb_train_cursor;

/* fingerprint names the settings a resumed run must share (batch size,
 * seed, data ...); loading refuses a state written under other ones. */
qb_status qb_train_state_save(const qb_trainer *t, const qb_train_cursor *c, const char *fingerprint,
                              const char *path, qb_error *err);
/* Whether path looks like a training state (its header names the
 * format), so a file that is not one is never written over, deleted or
 * read as one; a damaged state still counts and fails in loading. */
bool qb_train_state_recognize(const char *path);
qb_status qb_train_state_load(qb_trainer *t, qb_train_cursor *c, const char *fingerprint, const char *path,
                              qb_error *err);

#endif
