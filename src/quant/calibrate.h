/* Calibration: run texts through the FP32 model and keep statistics of
 * every linear layer's input, for static quantization's fixed scales, and
 * of the Q, K and V outputs, for int8 attention's. */
#ifndef QB_QUANT_CALIBRATE_H
#define QB_QUANT_CALIBRATE_H

#include "eval/dataset.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/observer.h"

typedef struct {
    qb_tensor_stats *stats; /* [n], indexed by qb_linear.id */
    qb_tensor_stats *out_stats; /* [n]: only the attention's Q, K and V are filled */
    bool has_outputs;       /* false for a file saved before int8 attention */
    int n;
    int used;               /* texts run */
    int max_length;         /* their truncation */
    char source[4096];      /* the calibration file */
    char sha256[65];
    const float *const *smooth; /* [n] or NULL: inputs observed times these factors (SmoothQuant) */
} qb_calib;

/* The first p->calib_n texts of p->calib_file, tokenized once, and a
 * session that runs them batch by batch: for the passes that run the same
 * batches again and again (GPTQ's). */
typedef struct {
    qb_dataset ds;
    qb_encoding *enc; /* [ds.n] */
    qb_session *s;
    int batches;
} qb_calib_texts;

qb_status qb_calib_texts_open(const qb_model *m, const qb_quant_params *p, qb_calib_texts *t, qb_error *err);
/* Batch b through the model with hook watching every linear; resume_x
 * (or NULL) is the input rows of block application resume_app, kept from
 * an earlier run of the same batch, where the forward starts. */
qb_status qb_calib_texts_run(qb_calib_texts *t, int b, qb_linear_observer hook, void *ctx, const float *resume_x,
                             int resume_app, qb_error *err);
void qb_calib_texts_close(qb_calib_texts *t);

/* Runs the first p->calib_n texts of p->calib_file through m, batch by
 * batch, with hook watching every linear (model/session.h); phase names
 * the progress step (NULL: none); *used gets the texts run. */
qb_status qb_calib_pass(const qb_model *m, const qb_quant_params *p, qb_linear_observer hook, void *ctx,
                        const char *phase, int *used, qb_error *err);
/* Statistics of every linear's input (times smooth[id] where smooth and
 * it are not NULL) and of attention's Q, K and V. */
qb_status qb_calib_run(const qb_model *m, const qb_quant_params *p, const float *const *smooth, qb_calib *c,
                       qb_quant_report *rep, qb_error *err);
qb_status qb_calib_save(const qb_model *m, const qb_calib *c, const char *path, qb_error *err);
qb_status qb_calib_load(const qb_model *m, const char *path, qb_calib *c, qb_error *err);
void qb_calib_free(qb_calib *c);

#endif
