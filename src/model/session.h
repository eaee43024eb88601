/* A session: the working memory of one inference stream, allocated once for
 * the largest batch it will see.  Rows of a batch are packed end to end
 * (padding is never computed); offsets[b] is where example b starts. */
#ifndef QB_MODEL_SESSION_H
#define QB_MODEL_SESSION_H

#include "model/model.h"
#include "model/tape.h"

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
    float *pooled;  /* [B, embed_dim]: pooling's output, when the session pools */
    float *mlm;     /* [T, H] QB_TASK_MLM: the head's rows before the decoder */
} qb_acts;

/* Called with every linear layer's input before it runs, and with the
 * outputs of Q, K and V (output true) before attention reads them
 * (calibration).  Returns true when it needs nothing from the layers
 * after this one: the forward then stops at the end of the block, its
 * logits undefined. */
typedef bool (*qb_linear_observer)(void *ctx, const qb_linear *l, bool output, const float *x, int rows);

/* int8 attention's per-thread scratch for one head: Q and the
 * probabilities as u8 rows (q first stages K and V on their way to s8),
 * K and V^T as s8, and K and V^T repacked as integer weights. */
typedef struct {
    uint8_t *q, *p;
    int8_t *k, *vt;
    float *a_scale;
    int32_t *a_zero;
    qb_i8_weights wk, wv;
} qb_attn_scratch;

struct qb_session {
    const qb_model *m;
    int max_batch, max_seq, n_threads;
    qb_pool *pool;      /* n_threads, this one's own (the owner runs too) */
    float *arena;
    qb_acts a;
    float *pack;        /* kernels' per-thread packing scratch */
    int32_t *tok_ids, *tok_types, *tok_pos; /* [T] packed rows */
    int32_t *offsets, *lens;                /* [B] */
    int32_t *pad_ids, *pad_types, *pad_lens; /* run_encodings' padded batch */
    int batch, seq, n_rows;                 /* shape of the last run */

    /* int8 linears: the quantized input and its per-row parameters.  Q, K
     * and V read the same input, so the graph lets K and V reuse what Q
     * quantized: qa_for is the linear that filled qa, cleared by the graph
     * before any linear that does not read the same input. */
    uint8_t *qa;
    float *qa_scale;
    int32_t *qa_zero;
    const qb_linear *qa_for;
    float *smooth_row;  /* per thread: one input row times in_smooth; NULL unless a linear has it */
    float *word_row;    /* per thread: one row of the word table as stored (embedding_size floats) */
    int smooth_stride;

    qb_attn_scratch *attn_i8; /* [n_threads]; NULL unless a block has int8 attention */
    void *attn_i8_mem;
    size_t bytes; /* what create allocated: qb_session_bytes */

    qb_linear_observer observe;
    void *observe_ctx;
    bool halt;          /* the observer asked this forward to stop */
    /* Calibration: when set, the forward starts at block application
     * resume_app from these rows (that block's input) instead of the
     * embeddings, for passes that have kept it from an earlier one. */
    const float *resume_x;
    int resume_app;

    unsigned pooling;   /* QB_POOL_* bits: inference ends in pooling instead of the head (0: the head) */
    bool normalize;     /* L2-normalize the pooled vector */
    int embed_dim;

    qb_tape *tape;      /* training mode: the trainer's; NULL for inference */
    const float *train_in; /* training: what the last linear read (Q's, for K and V) */
};

/* A session for a trainer: the graph runs in training mode into tape, and
 * none of the inference buffers are allocated. */
qb_status qb_session_create_training(const qb_model *m, const qb_session_params *p, qb_tape *tape,
                                     qb_session **out, qb_error *err);
/* Checks b against the session and the model's tables, then packs its
 * real tokens into tok_* / offsets / lens. */
qb_status qb_session_pack(qb_session *s, const qb_batch *b, qb_error *err);
/* The last packed batch's shape, as the attention ops take it. */
qb_attn_shape qb_session_attn_shape(const qb_session *s);

/* The graph, top to bottom: embeddings, blocks, head.  Inputs are already
 * packed into s->tok_* / offsets / lens. */
void qb_forward(qb_session *s);
/* The masked-LM decoder on packed row `row` of the last run: vocab_size
 * logits into out. */
void qb_forward_mlm_decode(qb_session *s, int row, float *out);

#endif
