/* Calibration: run texts through the FP32 model and keep statistics of
 * every linear layer's input, for static quantization's fixed scales, and
 * of the Q, K and V outputs, for int8 attention's. */
#ifndef QB_QUANT_CALIBRATE_H
#define QB_QUANT_CALIBRATE_H

#include "model/model.h"
#include "quant/observer.h"

typedef struct {
    qb_tensor_stats *stats; /* [n], indexed by qb_linear.id */
    qb_tensor_stats *out_stats; /* [n]: only the attention's Q, K and V are filled */
    bool has_outputs;       /* false for a file saved before int8 attention */
    int n;
    int used;               /* texts run */
    char source[4096];      /* the calibration file */
    char sha256[65];
} qb_calib;

qb_status qb_calib_run(const qb_model *m, const qb_quant_params *p, qb_calib *c, qb_quant_report *rep,
                       qb_error *err);
qb_status qb_calib_save(const qb_model *m, const qb_calib *c, const char *path, qb_error *err);
qb_status qb_calib_load(const qb_model *m, const char *path, qb_calib *c, qb_error *err);
void qb_calib_free(qb_calib *c);

#endif
