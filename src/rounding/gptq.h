/* GPTQ rounding for the low-bit weight formats (Frantar et al., "GPTQ:
 * Accurate Post-Training Quantization for Generative Pre-trained
 * Transformers", 2022).  Round to nearest minimises each weight's own
 * error; GPTQ minimises the layer's output error over calibration inputs
 * X, tr(dW H dW^T) with H = X^T X, by rounding one input column at a time
 * and pushing each column's rounding error onto the columns not yet
 * rounded, weighted by how the inputs correlate.
 *
 * The grids are RTN's ("static groups"): scales, zero points, ternary
 * scales and k-means centroids come from qb_lowbit_quantize on the
 * original weights, and GPTQ only re-chooses codes against them, so the
 * output packs and runs exactly like RTN's and act_order (which visits
 * columns out of group order) coexists with groups. */
#ifndef QB_ROUNDING_GPTQ_H
#define QB_ROUNDING_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "core/pool.h"
#include "rounding/lowbit.h"

typedef struct {
    double damp;    /* fraction of the mean Hessian diagonal added to the diagonal (default 0.01) */
    bool act_order; /* quantize columns in order of decreasing Hessian diagonal */
    int block;      /* columns per lazy-update block (0: 128) */
    qb_pool *pool;  /* threads (NULL: the caller's alone) */
} qb_gptq_params;

/* damp 0.01, act_order on, block 128.  act_order lowered the output
 * error on every case of tests/test_gptq.c, and on bert-mini-sst2's
 * linears (SST-2 inputs) from 0.23-0.24 of RTN's to 0.21-0.22. */
qb_gptq_params qb_gptq_default_params(void);

/* GPTQ: w [N, K] rounded column by column, each column's rounding error fed
 * back onto the columns not yet quantized through the inverse Hessian.
 * H [K, K] (row-major, double) = sum over calibration rows of x x^T; it is
 * overwritten.  Outputs exactly as qb_lowbit_quantize's (same arrays, same
 * meaning, so the same packing and formats apply); e->err is measured
 * against w.  *n_dead: input columns whose H diagonal was 0; their
 * diagonal becomes 1, as in GPTQ, and with no feedback into or out of
 * them their weights keep the nearest level (RTN's code on grids and
 * codebooks).  GPTQ's code also zeroes them; nothing in the calibration
 * reaches them, so that would only add error for inputs that later do.
 * p NULL: the defaults.  Returns false on allocation failure, or when H is
 * not positive definite even after damping (the outputs then hold RTN's
 * result); *why, where why is not NULL, is then a short reason, else NULL.
 * The caller falls back to RTN. */
bool qb_gptq_quantize(const float *w, int N, int K, double *H, const qb_lowbit_spec *s, const qb_gptq_params *p,
                      uint8_t *codes, uint16_t *scale, uint8_t *zero, uint16_t *codebook, qb_lowbit_error *e,
                      int *n_dead, const char **why);

#endif
