/* What the ONNX graph (onnx_export.c) and the linears' forms
 * (onnx_linear.c) share while one model is written. */
#ifndef QB_EXPORT_EXPORT_H
#define QB_EXPORT_EXPORT_H

#include "export/onnx_graph.h"
#include "model/model.h"

typedef struct {
    const float *data;
    const char *name;
} qb_export_seen;

/* The dynamic u8 input DynamicQuantizeLinear made of a value: Q, K and V
 * read the same one, as ORT's quantizer shares it. */
typedef struct {
    const char *x, *q, *scale, *zero;
} qb_export_dql;

/* The dequantized input QDQ pairs made of a value on one grid: Q, K and V
 * of a static model read the same one. */
typedef struct {
    const char *x, *xd;
    float scale;
    int32_t zero;
    const float *smooth;
} qb_export_qdq;

typedef struct {
    qb_onnx *g;
    const qb_model *m;
    const char *path;         /* for messages */
    qb_export_seen *seen;     /* float tensors already written (ALBERT shares its layers) */
    int n_seen, cap_seen;
    qb_export_dql dql;
    qb_export_qdq qdq;
} qb_export;

/* An FP32 initializer over the model's own floats, written once however
 * often it is used. */
const char *qb_export_floats(qb_export *e, const float *data, int ndim, const int64_t *dims);

/* Why linear l cannot be written (one line into err), or QB_OK: checked for
 * every linear before anything is built. */
qb_status qb_export_linear_check(qb_export *e, const qb_linear *l, qb_error *err);
/* y = x W^T + b for l in its row's form; x is [..., in]. */
const char *qb_export_linear(qb_export *e, const qb_linear *l, const char *x);

#endif
