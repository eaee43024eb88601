/* The tiny test model (tests/data/tiny-bert-seq), loaded once, for the
 * readers whose files only mean something beside a model: calibration
 * statistics, precision maps, training states. */
#ifndef QB_FUZZ_MODEL_H
#define QB_FUZZ_MODEL_H

#include "fuzz_common.h"

static qb_model *fuzz_model;

static inline const qb_model *fuzz_tiny_model(void) {
    if (fuzz_model) return fuzz_model;
    char dir[4096];
    fuzz_source_path(dir, sizeof dir, "tests/data/tiny-bert-seq");
    qb_load_params lp = qb_load_default_params();
    qb_error err;
    if (qb_model_load(dir, &lp, &fuzz_model, &err) != QB_OK) fuzz_die(err.msg, NULL);
    return fuzz_model;
}

#endif
