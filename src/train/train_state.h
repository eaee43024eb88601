/* A training run's state on disk, so `--resume` continues it exactly:
 * every parameter with its two Adam moments, the QAT scales, the update
 * and dropout counters, and where in which epoch the run stood.  One
 * safetensors file, written to a temporary name and renamed, so a run
 * killed while writing leaves the previous state loadable. */
#ifndef QB_TRAIN_TRAIN_STATE_H
#define QB_TRAIN_TRAIN_STATE_H

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
} qb_train_cursor;

/* fingerprint names the settings a resumed run must share (batch size,
 * seed, data ...); loading refuses a state written under other ones. */
qb_status qb_train_state_save(const qb_trainer *t, const qb_train_cursor *c, const char *fingerprint,
                              const char *path, qb_error *err);
qb_status qb_train_state_load(qb_trainer *t, qb_train_cursor *c, const char *fingerprint, const char *path,
                              qb_error *err);

#endif
