/* The affine quantization scheme x ~ scale * (q - zero_point), in the
 * conventions of PyTorch's observers (what qbert's users compare against):
 *
 *   asymmetric:  range widened to include 0;  scale = (hi - lo) / (qmax - qmin)
 *                zero_point = clamp(qmin - round(lo / scale), qmin, qmax)
 *   symmetric:   amax = max(-lo, hi);  scale = amax / ((qmax - qmin) / 2)
 *                zero_point = 0 for signed types, 128 for u8
 *
 * Rounding is half to even everywhere (nearbyint under the default mode),
 * as the integer kernels do, so a value quantized here and in a kernel is
 * the same integer.  reduce_range drops one bit (qint8 -> [-64, 63],
 * quint8 -> [0, 127]) for CPUs whose int8 dot products can saturate. */
#ifndef QB_ROUNDING_AFFINE_H
#define QB_ROUNDING_AFFINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool is_signed;     /* s8 [-128, 127] or u8 [0, 255] */
    bool symmetric;
    bool reduce_range;
} qb_qscheme;

typedef struct {
    float scale;
    int32_t zero_point;
} qb_qparams;

void qb_qscheme_limits(const qb_qscheme *s, int32_t *qmin, int32_t *qmax);
/* Parameters for values in [lo, hi]; a degenerate range gives scale 1
 * (PyTorch uses eps; any positive scale represents an all-zero tensor). */
qb_qparams qb_qparams_from_range(const qb_qscheme *s, float lo, float hi);

int32_t qb_quantize_value(float x, qb_qparams p, int32_t qmin, int32_t qmax);
static inline float qb_dequantize_value(int32_t q, qb_qparams p) { return p.scale * (float)(q - p.zero_point); }

/* Run-time (dynamic) per-tensor parameters for u8 activations. */
qb_qparams qb_dynamic_tensor_params(const float *x, size_t n, bool symmetric);

/* Weights are symmetric signed (the integer kernels assume a zero point of
 * 0) on a grid of `bits` bits stored in int8: 8 is [-128, 127], 7 the
 * reduce_range [-64, 63], 4 is [-8, 7] (2 <= bits <= 8).  Per output
 * channel (rows of a [rows, cols] weight) or, with per_channel false, one
 * scale repeated for every row. */
void qb_quantize_weight_s8(const float *w, int rows, int cols, int bits, bool per_channel, int8_t *q, float *scale);

/* Row-wise symmetric int8 for embedding tables: each row its own scale. */
void qb_quantize_rows_symmetric_s8(const float *w, int rows, int cols, int8_t *q, float *scale);

#endif
