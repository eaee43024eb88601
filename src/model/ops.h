/* The training graph's ops, each a forward/backward pair with the same
 * arguments in the same order (llm.c's layout), so one can be read against
 * the other on one screen.
 *
 * Conventions:
 *   - rows are packed tokens (no padding), row-major FP32;
 *   - every backward ACCUMULATES (+=) into the gradients it is given, both
 *     of parameters and of inputs: a tensor read twice (the block input by
 *     Q, K, V and the residual; ALBERT's shared weights by every layer) sums
 *     its gradients for free.  Callers zero them before a step;
 *   - scratch comes from a qb_op_ctx allocated once by the caller. */
#ifndef QB_MODEL_OPS_H
#define QB_MODEL_OPS_H

#include <stdint.h>

#include "kernels/kernels.h"

typedef struct {
    const qb_kernels *k;
    qb_pool *pool;      /* NULL: the caller's thread alone */
    float *pack;        /* threads * qb_gemm_f32_pack_floats() */
    float *scratch;     /* qb_op_linear_scratch_floats() of the largest linear */
    float *attn_work;   /* threads * qb_op_attention_work_floats() */
    int max_seq, hidden;
} qb_op_ctx;

/* Floats of ctx->scratch that linear backward needs for these sizes. */
size_t qb_op_linear_scratch_floats(int rows, int in, int out);
/* Floats of one thread's attention scratch. */
size_t qb_op_attention_work_floats(int max_seq, int hidden);

/* Dropout masks are not stored: a counter-based hash of (seed, step, site,
 * index) decides each element, so backward regenerates forward's mask and
 * the result does not depend on the thread count. */
typedef struct {
    uint64_t seed, step;
    uint32_t site;      /* which dropout of the graph */
    float p;            /* drop probability; 0 = identity */
} qb_dropout;

/* out[r] = word[ids[r]] + type[types[r]] + pos[pos_ids[r]]; type may be NULL. */
void qb_op_embed_forward(float *out, const int32_t *ids, const int32_t *types, const int32_t *pos_ids,
                         const float *word, const float *type, const float *pos, int rows, int dim);
void qb_op_embed_backward(float *dword, float *dtype, float *dpos, const float *dout, const int32_t *ids,
                          const int32_t *types, const int32_t *pos_ids, int rows, int dim);

/* y = x W^T + b, W [out, in] as PyTorch stores it; b may be NULL. */
void qb_op_linear_forward(const qb_op_ctx *c, float *y, const float *x, const float *w, const float *b, int rows,
                          int in, int out);
void qb_op_linear_backward(const qb_op_ctx *c, float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int rows, int in, int out);

/* y = (x - mean) * rstd * gamma + beta per row; mean/rstd [rows] are saved. */
void qb_op_layernorm_forward(const qb_op_ctx *c, float *y, float *mean, float *rstd, const float *x,
                             const float *gamma, const float *beta, float eps, int rows, int dim);
void qb_op_layernorm_backward(const qb_op_ctx *c, float *dx, float *dgamma, float *dbeta, const float *dy,
                              const float *x, const float *mean, const float *rstd, const float *gamma, int rows,
                              int dim);

/* Element-wise activation y = act(x) (NONE copies). */
void qb_op_act_forward(const qb_op_ctx *c, qb_act act, float *y, const float *x, size_t n);
void qb_op_act_backward(const qb_op_ctx *c, qb_act act, float *dx, const float *dy, const float *x, size_t n);

/* y = x * keep / (1 - p); drop.step/site/seed pick the mask. */
void qb_op_dropout_forward(const qb_dropout *drop, float *y, const float *x, size_t n);
void qb_op_dropout_backward(const qb_dropout *drop, float *dx, const float *dy, size_t n);

/* y = a + b. */
void qb_op_residual_forward(float *y, const float *a, const float *b, size_t n);
void qb_op_residual_backward(float *da, float *db, const float *dy, size_t n);

/* Multi-head self-attention over packed rows: example e owns rows
 * offsets[e] .. offsets[e] + lens[e] and attends only to them (what HF's
 * additive finfo.min mask yields).  q, k, v, ctx are [rows, H] with heads
 * side by side; probs holds softmax(q k^T / sqrt(d)) of every (example,
 * head), at prob_offsets[e] + h * lens[e]^2, saved for backward.  Dropout
 * on the probabilities is indexed by position in probs. */
typedef struct {
    int n_examples, heads, hidden;
    const int32_t *offsets, *lens;
    const int64_t *prob_offsets;
} qb_attn_shape;

void qb_op_attention_forward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *ctx,
                             float *probs, const float *q, const float *k, const float *v);
void qb_op_attention_backward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *dq,
                              float *dk, float *dv, const float *dctx, const float *probs, const float *q,
                              const float *k, const float *v);

/* Mean cross-entropy over rows whose label is not QB_IGNORE_INDEX; probs
 * [rows, classes] keeps the softmax for backward.  Returns the loss (0 when
 * every row is ignored) and the count of rows that took part in *n_used. */
#define QB_IGNORE_INDEX (-100)
float qb_op_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int rows, int classes,
                                  int *n_used);
void qb_op_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int rows, int classes,
                                  int n_used);

/* Distillation: T^2 KL(softmax(teacher / T) || softmax(student / T)) summed
 * over rows whose label is not QB_IGNORE_INDEX (labels NULL: every row) and
 * divided by their count (*n_used); ps and pt [rows, classes] keep the two
 * softened distributions for backward, which adds T (ps - pt) / n_used. */
float qb_op_kd_forward(float *ps, float *pt, const float *student, const float *teacher, const int32_t *labels,
                       int rows, int classes, float T, int *n_used);
void qb_op_kd_backward(float *dstudent, const float *ps, const float *pt, const int32_t *labels, int rows,
                       int classes, float T, int n_used);

/* mean((a - b)^2) over n values; backward adds 2 (a - b) / n to da (b is a
 * constant target). */
float qb_op_mse_forward(const float *a, const float *b, size_t n);
void qb_op_mse_backward(float *da, const float *a, const float *b, size_t n);

#endif
