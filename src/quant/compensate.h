/* Error compensation: quantizing with what the calibration texts show about
 * each linear's inputs rather than rounding every weight on its own.
 *
 *  - SmoothQuant (Xiao et al., 2023) moves the range of outlier input
 *    channels into the weights: W' = W diag(s), x' = x / s with
 *    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha).  Post-LN BERT cannot fold
 *    1/s into the LayerNorm before a linear as pre-LN models do: that
 *    LayerNorm's output is also the residual stream.  So a smoothed linear
 *    stores 1/s beside its static input grid and the input quantizer, which
 *    reads every input once anyway, multiplies by it.
 *  - GPTQ (Frantar et al., 2022) rounds each low-bit weight matrix column
 *    by column against the Hessian of its inputs, taking the linears in
 *    graph order, each seeing the inputs the already-quantized linears
 *    before it produce (a working copy of the model whose weights are
 *    replaced by what was stored).
 *  - Bias correction (Nagel et al., 2019) adds (W - W^) E[x] to each bias,
 *    E[x] over the inputs the FP32 model gives the linear: the shift it
 *    removes is the linear's own, whatever comes before it. */
#ifndef QB_QUANT_COMPENSATE_H
#define QB_QUANT_COMPENSATE_H

#include "model/model.h"

/* in_smooth[id] = 1/s for each linear with which[id] (malloc'd [in]); the
 * linears that read one input (Q, K and V) share s. */
qb_status qb_smooth_factors(const qb_model *m, const qb_quant_params *p, float alpha, const bool *which,
                            float **in_smooth, qb_error *err);

/* Stores linear l from FP32 weights w [out, in]: rounded by GPTQ against
 * hessian when it is not NULL (the callee may overwrite it); writes what it
 * stored, decoded to FP32, into dequantized. */
typedef bool (*qb_comp_push_fn)(void *ctx, const qb_linear *l, const float *w, double *hessian,
                                float *dequantized);

typedef struct {
    qb_pool *pool;                 /* threads of the Hessian's GEMMs */
    const bool *which;             /* [n_linears]: the linears to quantize, in graph order */
    const float *const *in_smooth; /* [n_linears] or NULL: their SmoothQuant factors */
    const float *const *weights;   /* [n_linears] or NULL: weights to store instead of the model's */
    bool gptq, bias_correction;
    qb_comp_push_fn push;
    void *ctx;
    char *note;                    /* or NULL: a one-line note on how it ran */
    size_t note_size;
    int *texts_used;               /* or NULL: set to the calibration texts it ran */
} qb_comp_job;

/* Quantizes job->which in sequence through job->push; with bias
 * correction, bias[id] (malloc'd [out]) is each corrected bias. */
qb_status qb_compensate(const qb_model *m, const qb_quant_params *p, const qb_comp_job *job, float **bias,
                        qb_error *err);

#endif
