/* A trainable copy of a loaded model: FP32 parameters, their gradients and
 * AdamW moments in one registry; the backward pass; the optimizer step.
 *
 * The forward is the engine's own graph (src/model/forward.c) run in
 * training mode over a view of the model whose weights are the trainer's
 * parameters: it keeps on the trainer's tape the activations backward
 * reads, and adds dropout where Hugging Face has it.  A trained model
 * written back out runs unchanged in the engine. */
#ifndef QB_TRAIN_TRAINER_H
#define QB_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "model/session.h"
#include "model/tape.h"
#include "train/fake_quant.h"
#include "model/ops.h"

/* One parameter: value, gradient and the two Adam moments, all owned. */
typedef struct {
    char name[128];         /* the checkpoint's tensor name */
    int ndim;
    int64_t shape[2];
    int64_t numel;
    float *w, *g, *m, *v;
    bool decay;             /* weight decay applies (matrices; not biases or norms) */
} qb_tparam;

typedef struct {
    float *w, *b, *dw, *db; /* w [out, in] */
    int in, out;
    const char *name;       /* the model's linear, e.g. "bert.encoder.layer.0.attention.self.query" */
    float *wq;              /* QAT: the fake-quantized weight, NULL if the linear stays FP32 */
    int site;               /* QAT: its input's qb_fq_site */
} qb_tlinear;

typedef struct {
    float *gamma, *beta, *dgamma, *dbeta;
} qb_tnorm;

typedef struct {
    qb_tlinear q, k, v, o;
    qb_tnorm attn_norm;
    qb_tlinear ffn_in, ffn_out;
    qb_tnorm ffn_norm;
} qb_tblock;

typedef struct {
    qb_task task;           /* the head to train: sequence, token, or QB_TASK_MLM (labels: token ids) */
    int num_labels;         /* 0: the model's own (MLM: the vocabulary) */
    bool new_head;          /* replace the classifier with a fresh one (std 0.02) */
    /* Dropout probabilities; negative: config.json's (HF's defaults if absent). */
    float hidden_dropout, attn_dropout, classifier_dropout;
    uint64_t seed;
    int n_threads;          /* 0: all online cores */
    int mlm_chunk;          /* masked LM: decoder rows a chunk (0: 512) */
} qb_trainer_params;

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float max_grad_norm;    /* <= 0: no clipping */
    long warmup_steps, total_steps; /* linear warm-up, then linear decay to 0 */
} qb_adamw_params;

/* Quantization-aware training: which grid the linears train against.
 * bits 5..8: int8 storage, per-channel grids of that width; 4, 3, 2 or
 * ternary: the packed low-bit format of that name (int4, int3, int2,
 * ternary), quantized by its own quantizer. */
typedef struct {
    qb_fq_observer observer;
    int bits;               /* weight grid, 2..8 (ignored when ternary) */
    bool ternary;           /* weights {-a, 0, a} per group */
    int group_size;         /* low-bit: input columns per FP16 scale (0: 128; -1: one per row) */
    bool zero_point;        /* low-bit grids: asymmetric, a zero point per group */
    float momentum;         /* EMA observers */
    long freeze_after;      /* scales stop moving after this many updates (0: never) */
} qb_qat_params;

typedef struct {
    qb_qat_params p;
    bool calibrating;       /* forwards observe input ranges and quantize nothing */
    int n_calibrated;       /* calibration forwards so far */
    qb_fq_site *sites;      /* per block: QKV input, O input, FFN in, FFN out; then emb_proj, pooler */
    int n_sites;
    float *wq;              /* every quantized linear's fake-quantized weight */
    int8_t *q;              /* scratch of the widest weight */
    float *q_scale;
    bool lowbit;            /* weights on a packed low-bit format's grid */
    uint8_t *codes;         /* low-bit scratch: codes of the widest weight, */
    uint16_t *lb_scale;     /* and its FP16 scales and zero points per group */
    uint8_t *lb_zero;
} qb_qat;

/* Knowledge distillation from a teacher's forward on the same batch
 * (TernaryBERT): the loss adds T^2 KL(softmax(teacher / T) || softmax(student
 * / T)) over the rows the task loss reads, and with hidden set the MSE of
 * every block application's output (mean over tokens and dims, summed over
 * applications). */
typedef struct {
    float temperature;      /* T > 0 */
    bool hidden;            /* also the hidden-state MSE */
} qb_distill_params;

typedef struct qb_trainer_s {
    const qb_model *m;
    qb_model view;          /* m with the trainer's parameters (also as its tensor table), task and
                               labels: what the graph runs and QAT's export quantizes */
    int H, E, I, L, heads, n_apps;
    qb_act act;
    float eps;
    float p_hidden, p_attn, p_classifier;
    uint64_t seed;
    int n_threads;
    qb_tparam *params;
    int n_params;
    float *storage;
    float *word_emb, *pos_emb, *type_emb, *dword_emb, *dpos_emb, *dtype_emb;
    qb_tnorm emb_norm;
    qb_tlinear emb_proj;    /* ALBERT's E -> H; w NULL otherwise */
    qb_tblock *blocks;
    int n_blocks;
    int *app_block;         /* [n_apps]: which block application a runs */
    qb_tlinear pooler;      /* BERT/ALBERT pooler or DistilBERT pre_classifier; w NULL for token heads */
    char head_pooler[96];   /* its name when the model did not bind one (a bare body), else "" */
    char head_classifier[96]; /* the fresh classifier's name (the family's: "classifier.out_proj"...), else "" */
    float init_std;         /* fresh weights: normal(0, initializer_range) */
    qb_tlinear classifier;
    /* QB_TASK_MLM: the transform (dense, act, LayerNorm) and the decoder,
     * tied to the word embeddings, plus its bias.  The decoder runs on the
     * labelled rows only, mlm_chunk at a time (a vocabulary-wide row of
     * logits each); backward recomputes a chunk's logits unless the batch
     * had one chunk. */
    qb_tlinear mlm_dense;
    qb_tnorm mlm_norm;
    float *mlm_bias, *dmlm_bias;
    char mlm_fresh[96];      /* the transform's name when the model did not bind one (fresh), else "" */
    int mlm_chunk, mlm_chunk_cap; /* rows a chunk: the cap, or the batch if smaller */
    int32_t *mlm_rows;      /* [T] the packed rows with a label */
    int32_t *mlm_labels;    /* [T] their labels */
    int n_mlm_rows;
    float *mlm_x, *mlm_dx;  /* [mlm_chunk, H] a chunk's rows of the transform, their gradient */
    float *mlm_logits, *mlm_probs; /* [mlm_chunk, V] */
    int mlm_probs_of;       /* the chunk whose softmax mlm_probs holds, -1: none */
    qb_tlinear **by_id;     /* [view.n_linears]: the trainer's side of each view linear */
    qb_qat *qat;            /* NULL: plain FP32 training */
    /* the arena and the session, sized by qb_trainer_reserve */
    int max_batch, max_seq;
    qb_session *s;          /* the packed batch (tok_*, offsets, lens) and the graph's training mode */
    qb_tape tape;           /* what the forward keeps, in the arena */
    float *arena;
    qb_op_ctx ops;
    float *probs;           /* [rows, L] softmax of the logits */
    float *g_out, *g_in, *g_sum, *g_attn, *g_tmp, *g_ctx, *g_q, *g_k, *g_v; /* [T, H] */
    float *g_ffn_act, *g_ffn_pre;   /* [T, I] */
    float *g_emb0, *g_emb1;         /* [T, E] */
    float *g_xq;                    /* QAT: d loss / d (a fake-quantized input) */
    float *g_logits;
    float *kd_student, *kd_teacher; /* [rows, L] softmax at temperature T of the last distilled forward */
    int32_t *labels;        /* [T] sequence: per example; token: per packed row */
    /* the last forward */
    int batch, n_rows, n_label_rows, n_used;
    long n_forward;         /* training forwards so far: the next mask's step */
    long n_updates;         /* optimizer steps so far */
    float loss;
    /* distillation of the last forward (qb_trainer_distill); teacher NULL: none */
    const struct qb_trainer_s *teacher;
    qb_distill_params distill;
    int n_distill_rows;
    float kd_loss, hidden_loss;
} qb_trainer;

qb_trainer_params qb_trainer_default_params(void);
qb_adamw_params qb_adamw_default_params(void);

/* Copies m's FP32 weights (m must not be quantized) and allocates the
 * gradients and moments; m must outlive the trainer (its config). */
qb_status qb_trainer_create(const qb_model *m, const qb_trainer_params *p, qb_trainer **out, qb_error *err);
void qb_trainer_free(qb_trainer *t);

/* Sizes the activation arena for batches up to max_batch x max_seq (grows
 * only; a forward never allocates). */
qb_status qb_trainer_reserve(qb_trainer *t, int max_batch, int max_seq, qb_error *err);

/* Runs the graph on a padded batch and returns the mean cross-entropy.
 * labels: sequence task [batch]; token and masked-LM tasks [batch * seq] in
 * the padded layout, QB_IGNORE_INDEX where no label applies (MLM: the
 * original token id at each masked position).  labels NULL: logits
 * only (loss 0).  training turns dropout on. */
qb_status qb_trainer_forward(qb_trainer *t, const qb_batch *b, const int32_t *labels, bool training, float *loss,
                             qb_error *err);
/* Logits of the last forward: [batch, L], or [n_rows, L] packed for token
 * heads; NULL for masked-LM heads (their logits are made a chunk at a time). */
const float *qb_trainer_logits(const qb_trainer *t);
/* The output of block application `app` (0 .. n_apps - 1) of the last
 * forward: [n_rows, H]. */
const float *qb_trainer_block_output(const qb_trainer *t, int app);

/* After forwards of t (with labels) and of teacher (training false) on the
 * same batch: adds the distillation terms p asks for to t's loss, and to
 * what the next qb_trainer_backward computes.  The teacher must have t's
 * labels and, for p->hidden, its block count and hidden size; it must not
 * run again before t's backward.  *loss (may be NULL) gets the new total. */
qb_status qb_trainer_distill(qb_trainer *t, const qb_trainer *teacher, const qb_distill_params *p, float *loss,
                             qb_error *err);

/* Adds d(loss)/d(param) of the last forward into every gradient. */
void qb_trainer_backward(qb_trainer *t);
void qb_trainer_zero_grad(qb_trainer *t);

/* The learning rate of update number step (0-based) under p's schedule. */
float qb_adamw_lr_at(const qb_adamw_params *p, long step);
/* Clips the global gradient norm, then one AdamW update (decoupled decay).
 * Returns the norm before clipping in *grad_norm (may be NULL); a
 * non-finite norm leaves every parameter untouched and fails. */
qb_status qb_trainer_step(qb_trainer *t, const qb_adamw_params *p, float *grad_norm, qb_error *err);

qb_tparam *qb_trainer_param(qb_trainer *t, const char *name);

/* QAT: every linear but the classifier trains through fake quantization
 * (see train/fake_quant.h).  Call before qb_trainer_reserve, then run
 * calibration forwards between begin and end: they set the first scales. */
qb_status qb_trainer_enable_qat(qb_trainer *t, const qb_qat_params *p, qb_error *err);
void qb_trainer_qat_calibrate_begin(qb_trainer *t);
void qb_trainer_qat_calibrate_end(qb_trainer *t);
/* The input scale and zero point that the linear `name` trained with;
 * false when it is not quantized. */
bool qb_trainer_qat_input(const qb_trainer *t, const char *name, float *scale, int32_t *zero);

#endif
