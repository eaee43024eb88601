/* The forward graph's training mode (src/model/forward.c): where each op
 * keeps what its backward reads, the dropout Hugging Face applies while
 * training, and how a linear computes while it trains (QAT's fake
 * quantization).  A trainer owns a tape and points its session at it;
 * inference runs without one and reuses one set of buffers for all layers. */
#ifndef QB_MODEL_TAPE_H
#define QB_MODEL_TAPE_H

#include "model/model.h"
#include "model/ops.h"

/* What one application of a block (a layer; ALBERT: a layer's inner step)
 * keeps.  Its out is the next application's x. */
typedef struct {
    float *x;                         /* [T, H] input */
    float *q, *k, *v, *ctx;           /* [T, H] */
    float *probs;                     /* softmax of every (example, head) */
    float *attn_sum, *attn_mean, *attn_rstd, *attn; /* x + drop(ctx Wo), its LN */
    float *ffn_pre, *ffn_act;         /* [T, I] */
    float *out_sum, *out_mean, *out_rstd, *out;     /* attn + drop(ffn Wout), its LN */
    float *x_q, *ctx_q, *attn_q, *ffn_act_q;        /* QAT: the fake-quantized linear inputs, else NULL */
} qb_tape_layer;

/* word + type + position, its LN, dropout; q: emb_proj's fake-quantized input. */
typedef struct {
    float *sum, *mean, *rstd, *ln, *drop, *q;
} qb_tape_embed;

/* Sequence heads: the [CLS] rows, the pooler before and after its
 * activation, dropout.  Token heads: drop [T, H] only.  logits [rows, L],
 * packed rows for token heads.  Masked-LM heads: the transform's dense
 * before and after its act (pre, act [T, H]) and its LayerNorm (ln [T, H],
 * what the decoder reads; mean, rstd [T]); the decoder and its logits are
 * the trainer's, on the masked rows only. */
typedef struct {
    float *in, *in_q, *pre, *act, *drop, *logits;
    float *ln, *mean, *rstd;
} qb_tape_head;

/* How a training linear computes; NULL hooks: the stored weight and x. */
typedef struct {
    const float *(*weight)(void *ctx, const qb_linear *l);
    /* l's input x, or x fake-quantized into xq [rows, l->in]. */
    const float *(*input)(void *ctx, const qb_linear *l, const float *x, float *xq, int rows);
    void *ctx;
} qb_tape_hooks;

/* Dropout sites: the embedding's, three per block application (the
 * attention probabilities, after O, after FFN out), the head's. */
enum { QB_SITE_EMB = 0, QB_SITE_HEAD = 0x7fffffff };
static inline uint32_t qb_tape_site(int app, int which) { return (uint32_t)(1 + app * 3 + which); }

typedef struct {
    qb_tape_embed emb;
    qb_tape_layer *layers;  /* [block applications] */
    qb_tape_head head;
    float *tmp;             /* [T, H] a linear's output before its dropout */
    int64_t *prob_offsets;  /* [max_batch]: where each example's probabilities start */
    const qb_op_ctx *ops;
    uint64_t seed, step;    /* which dropout masks */
    float p_hidden, p_attn, p_classifier; /* 0 outside training */
    qb_tape_hooks hooks;
} qb_tape;

static inline qb_dropout qb_tape_dropout(const qb_tape *t, uint32_t site, float p) {
    qb_dropout d = {t->seed, t->step, site, p};
    return d;
}

#endif
