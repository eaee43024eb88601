/* A session: the working memory of one inference stream, allocated once for
 * the largest batch it will see.  Rows of a batch are packed end to end
 * (padding is never computed); offsets[b] is where example b starts. */
#ifndef QB_MODEL_SESSION_H
#define QB_MODEL_SESSION_H

#include "model/model.h"

/* Activations of the forward pass, named so a backward pass can address
 * them.  Inference reuses one set for every layer. */
typedef struct {
    float *emb;     /* [T, E] embeddings after LayerNorm; the same buffer as x
                       unless ALBERT projects E -> H */
    float *x;       /* [T, H] residual stream: block input, then block output */
    float *q, *k, *v;
    float *ctx;     /* [T, H] attention context (heads concatenated) */
    float *attn;    /* [T, H] LN(x + ctx.Wo) */
    float *ffn;     /* [T, I] act(attn.W1) */
    float *scores;  /* per thread: [max_seq, max_seq] */
    float *cls;     /* [B, H] head input (the [CLS] row, then the pooled row) */
    float *cls2;    /* [B, H] */
    float *token_logits; /* [T, L] token heads, packed rows */
    float *logits;  /* [B, L] or [B, S, L] */
} qb_acts;

struct qb_session {
    const qb_model *m;
    int max_batch, max_seq, n_threads;
    float *arena;
    qb_acts a;
    float *pack;        /* kernels' per-thread packing scratch */
    int32_t *tok_ids, *tok_types, *tok_pos; /* [T] packed rows */
    int32_t *offsets, *lens;                /* [B] */
    int32_t *pad_ids, *pad_types, *pad_lens; /* run_encodings' padded batch */
    int batch, seq, n_rows;                 /* shape of the last run */
};

/* The graph, top to bottom: embeddings, blocks, head.  Inputs are already
 * packed into s->tok_* / offsets / lens. */
void qb_forward(qb_session *s);

#endif
