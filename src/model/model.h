/* The loaded model: config, mmapped weights bound into typed structs, the
 * tokenizer and the kernels chosen for this CPU.  Every parameter is also in
 * one registry (name, shape, data) so that tools that walk all weights
 * (info, quantizers, the optimizer) need not know the architecture. */
#ifndef QB_MODEL_MODEL_H
#define QB_MODEL_MODEL_H

#include <stdint.h>

#include "io/config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "qbert.h"
#include "text/tokenizer.h"

typedef struct {
    const char *name;       /* the checkpoint's tensor name */
    int ndim;
    int64_t shape[QB_MAX_DIMS];
    int64_t numel;
    const float *data;      /* into the mapping, or an owned converted copy */
} qb_param;

typedef struct {
    const float *w, *b;     /* w is [out, in] as PyTorch stores it */
    int out, in;
} qb_linear;

typedef struct {
    const float *gamma, *beta;
} qb_norm;

/* One transformer block.  BERT, ALBERT and DistilBERT compute the same
 * thing under different names: post-LN attention, then a post-LN FFN. */
typedef struct {
    qb_linear q, k, v, o;
    qb_norm attn_norm;
    qb_linear ffn_in, ffn_out;
    qb_norm ffn_norm;
} qb_block;

struct qb_model {
    char *dir;
    qb_config cfg;
    qb_safetensors st;
    qb_tokenizer *tok;
    qb_kernels kern;

    qb_param *params;
    int n_params;
    float **owned;          /* converted copies (F16/BF16 or misaligned F32) */
    int n_owned;

    const float *word_emb, *pos_emb, *type_emb; /* type_emb NULL for DistilBERT */
    qb_norm emb_norm;
    qb_linear emb_proj;     /* ALBERT's E -> H; w NULL otherwise */
    qb_block *blocks;       /* BERT/DistilBERT: one per layer; ALBERT: groups * inner */
    int n_blocks;
    qb_linear pooler;       /* BERT/ALBERT sequence models */
    qb_linear pre_classifier; /* DistilBERT */
    qb_linear classifier;
};

/* Which stored block runs at position `layer` (0..num_layers-1), inner step
 * `inner`: ALBERT maps layers onto its shared groups. */
const qb_block *qb_model_block(const qb_model *m, int layer, int inner);
int qb_model_inner_steps(const qb_model *m);

/* Binds every weight of the architecture; fills m->params and the structs. */
qb_status qb_model_bind_weights(qb_model *m, qb_error *err);

#endif
