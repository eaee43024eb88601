/* Fake quantization for quantization-aware training.
 *
 * Every quantized linear computes y = fq(x) fq(W)^T + b in FP32, where fq
 * rounds to the integer grid and back with exactly the arithmetic of the
 * integer engine: weights through qb_quantize_weight (the converter's own
 * function) for int8 grids, or through qb_lowbit_quantize (the packed
 * low-bit formats' own quantizer: groups, FP16 scales, ternary) for 4 bits
 * and fewer; inputs through the kernels' qb_i8_quantize_one.  A converted
 * model therefore computes the same integers the QAT model saw, and only
 * the FP32 summation order differs.
 *
 * Gradients are straight-through: d fq(W) passes to W unchanged (int8: the
 * scale follows each row's max, so no weight is ever clipped; low-bit grids
 * clip a group's outliers and ternary zeroes small weights, and the
 * gradient still passes, as in TernaryBERT), and d fq(x) passes
 * to x where x fell inside the grid and is 0 where it was clamped, as in
 * PyTorch's FakeQuantize.
 *
 * An input site is one tensor read by one or more linears (Q, K and V share
 * the block input) with one u8 asymmetric scale and zero point.  ALBERT's
 * shared layer has one site per linear for all its uses, as its stored
 * model has one input_scale.  Scales come from
 *   - EMA: the moving average of each batch's min and max (momentum 0.01,
 *     PyTorch's MovingAverageMinMaxObserver), or
 *   - LSQ: the scale is a parameter trained by the gradient of Esser et al.
 *     (2020), with its zero point fixed at the initial range's.
 * Both start from the mean batch range of a few calibration batches. */
#ifndef QB_TRAIN_FAKE_QUANT_H
#define QB_TRAIN_FAKE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rounding/lowbit.h"

typedef enum { QB_FQ_EMA = 0, QB_FQ_LSQ = 1 } qb_fq_observer;

typedef struct {
    float lo, hi;           /* EMA: the moving range; LSQ: the initial range */
    float scale;            /* what the next forward quantizes with */
    int32_t zero;
    float batch_lo, batch_hi; /* this forward's range, folded in by qb_fq_site_update */
    bool seen;              /* batch_lo/hi hold data */
    double grad;            /* LSQ: d loss / d scale of this step */
    float m, v;             /* LSQ: Adam moments */
} qb_fq_site;

/* Fake-quantizes n inputs: xq = scale * (clamp(round(x / scale) + zero,
 * 0, 255) - zero), recording the range of x in the site. */
void qb_fq_input_forward(qb_fq_site *s, float *xq, const float *x, size_t n, qb_pool *pool);
/* dx += dxq where x was inside the grid; LSQ also adds the scale's
 * gradient to s->grad. */
void qb_fq_input_backward(qb_fq_site *s, float *dx, const float *dxq, const float *x, size_t n, bool lsq,
                          qb_pool *pool);

/* Folds the batch range into the EMA and sets the scale from it (EMA), or
 * only clears the batch range (LSQ, whose scale the optimizer moves). */
void qb_fq_site_update(qb_fq_site *s, qb_fq_observer obs, float momentum);
/* Calibration: observe records a batch's range without quantizing;
 * average folds it, as the k-th (1-based), into the mean of the batch
 * ranges; start sets the first scale from that mean. */
void qb_fq_observe(qb_fq_site *s, const float *x, size_t n);
void qb_fq_site_average(qb_fq_site *s, int k);
void qb_fq_site_start(qb_fq_site *s);
/* One Adam step of an LSQ scale; the scale stays positive. */
void qb_fq_site_lsq_step(qb_fq_site *s, float lr, float beta1, float beta2, float eps, long step);

/* wq = dequantized per-channel symmetric weights of `bits` bits, the
 * integers those of qb_quantize_weight; q and scale are scratch [rows * cols]
 * and [rows]. */
void qb_fq_weight(const float *w, int rows, int cols, int bits, float *wq, int8_t *q, float *scale);

/* wq = the packed low-bit format's values of w: the codes, FP16 scales and
 * zero points qb_lowbit_quantize gives under spec s, decoded as the kernels
 * decode them (scale * (code - zero)).  codes [rows * cols], scale and zero
 * [rows * groups] are scratch.  False on allocation failure. */
bool qb_fq_weight_lowbit(const float *w, int rows, int cols, const qb_lowbit_spec *s, float *wq, uint8_t *codes,
                         uint16_t *scale, uint8_t *zero);

#endif
