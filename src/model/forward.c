/* The forward pass of BERT, ALBERT and DistilBERT, read top to bottom:
 * embeddings -> [attention -> FFN] x layers -> head (or pooling).  One
 * graph for inference and training: each op below has an inference form
 * (the kernel table chosen at load time, each linear in its own format,
 * one set of buffers for every layer) and a training form (FP32 ops that
 * keep on the session's tape what the trainer's backward reads, and
 * dropout). */
#include <math.h>
#include <string.h>

#include "core/vec.h"
#include "model/linear_format.h"
#include "model/session.h"

/* Training: y = x W^T + b through the tape's hooks.  K and V read what Q
 * read (same_input), so a fake-quantized input is made once. */
static void train_linear(qb_session *s, const qb_linear *l, const float *x, float *xq, int rows, float *y,
                         bool same_input) {
    const qb_tape_hooks *h = &s->tape->hooks;
    if (!same_input) s->train_in = h->input ? h->input(h->ctx, l, x, xq, rows) : x;
    const float *w = h->weight ? h->weight(h->ctx, l) : l->w;
    qb_op_linear_forward(s->tape->ops, y, s->train_in, w, l->b, rows, l->in, l->out);
}

/* Inference: y = act(x W^T + b) + residual in l's format.  same_input: x
 * is the input of the linear run just before this one, unchanged since, so
 * a format may reuse what it made of x (the graph knows this; pointers
 * cannot tell, since attention and LayerNorm write buffers in place).
 * Otherwise the input scratch a format filled belongs to nobody. */
static void linear_run(qb_session *s, const qb_linear *l, const float *x, int rows, float *y,
                       const float *residual, qb_act act, bool same_input) {
    if (s->observe && s->observe(s->observe_ctx, l, false, x, rows)) s->halt = true;
    if (!same_input) s->qa_for = NULL;
    qb_linear_io io = {.x = x, .rows = rows, .y = y, .residual = residual, .act = act, .same_input = same_input};
    l->fmt->run(s, l, &io);
}

/* y = x W^T + b; xq: where training may fake-quantize x. */
static void linear(qb_session *s, const qb_linear *l, const float *x, float *xq, int rows, float *y,
                   bool same_input) {
    if (s->tape) train_linear(s, l, x, xq, rows, y, same_input);
    else linear_run(s, l, x, rows, y, NULL, QB_ACT_NONE, same_input);
}

/* out = act(x W^T + b), pre the value before act (training keeps it). */
static void linear_act(qb_session *s, const qb_linear *l, const float *x, float *xq, int rows, float *pre,
                       float *out, qb_act act) {
    if (!s->tape) {
        linear_run(s, l, x, rows, out, NULL, act, false);
        return;
    }
    train_linear(s, l, x, xq, rows, pre, false);
    qb_op_act_forward(s->tape->ops, act, out, pre, (size_t)rows * l->out);
}

static void dropout(qb_session *s, uint32_t site, float p, const float *x, float *y, size_t n) {
    if (!s->tape) return; /* inference buffers alias: y is x */
    qb_dropout d = qb_tape_dropout(s->tape, site, p);
    qb_op_dropout_forward(&d, y, x, n);
}

/* sum = residual + drop(x W^T + b). */
static void linear_residual(qb_session *s, const qb_linear *l, const float *x, float *xq, int rows,
                            const float *residual, uint32_t site, float *sum) {
    if (!s->tape) {
        linear_run(s, l, x, rows, sum, residual, QB_ACT_NONE, false);
        return;
    }
    size_t n = (size_t)rows * l->out;
    train_linear(s, l, x, xq, rows, s->tape->tmp, false);
    dropout(s, site, s->tape->p_hidden, s->tape->tmp, s->tape->tmp, n);
    qb_op_residual_forward(sum, residual, s->tape->tmp, n);
}

typedef struct {
    const qb_kernels *k;
    const qb_norm *n;
    const float *x;
    float *y;
    float eps;
    int dim;
} norm_job;

static void norm_rows(void *ctx, long r0, long r1, int thread) {
    const norm_job *j = ctx;
    for (long r = r0; r < r1; r++)
        j->k->layernorm_f32(j->x + r * j->dim, j->n->gamma, j->n->beta, j->eps, j->dim, j->y + r * j->dim);
}

/* y = LN(x); training keeps each row's mean and 1/std, inference works in
 * place (y is x). */
static void norm(qb_session *s, const qb_norm *n, const float *x, float *y, float *mean, float *rstd, int rows,
                 int dim) {
    const qb_kernels *k = &s->m->kern;
    float eps = s->m->cfg.layer_norm_eps;
    if (s->tape) {
        qb_op_layernorm_forward(s->tape->ops, y, mean, rstd, x, n->gamma, n->beta, eps, rows, dim);
        return;
    }
    norm_job j = {k, n, x, y, eps, dim};
    qb_pool_for(s->pool, rows, 3, norm_rows, &j);
}

/* ---- the buffers of each step ------------------------------------------ */

static qb_tape_layer layer_acts(const qb_session *s, int app) {
    if (s->tape) return s->tape->layers[app];
    const qb_acts *a = &s->a;
    return (qb_tape_layer){.x = a->x, .q = a->q, .k = a->k, .v = a->v, .ctx = a->ctx, .attn_sum = a->attn,
                           .attn = a->attn, .ffn_pre = a->ffn, .ffn_act = a->ffn, .out_sum = a->x, .out = a->x};
}

static qb_tape_embed embed_acts(const qb_session *s) {
    if (s->tape) return s->tape->emb;
    return (qb_tape_embed){.sum = s->a.emb, .ln = s->a.emb, .drop = s->a.emb};
}

static qb_tape_head head_acts(const qb_session *s) {
    if (s->tape) return s->tape->head;
    const qb_acts *a = &s->a;
    bool token = s->m->cfg.task == QB_TASK_TOKEN;
    return (qb_tape_head){.in = a->cls, .pre = a->cls2, .act = a->mlm ? a->mlm : a->cls2,
                          .drop = token ? a->x : a->cls2, .logits = token ? a->token_logits : a->logits,
                          .ln = a->mlm};
}

/* ---- the graph ----------------------------------------------------------- */

/* n bytes of the word table at row, copied into buf where the table is in
 * the model file (qb_file_map_read says why), else read where they are
 * (the trainer's tables are its own, and its sessions have no buf). */
static const void *word_row(const qb_model *m, const void *row, size_t n, void *buf) {
    return buf && qb_file_map_read(&m->st.map, row, n, buf) ? buf : row;
}

/* Row id of the word table, as stored (FP32, int8 or low-bit), as E
 * floats; read through buf (word_row) where there is one. */
static void word_emb_row(const qb_model *m, int id, void *buf, float *out) {
    int E = m->cfg.embedding_size;
    if (m->word_emb_lowbit) {
        /* the table's row as a table of one (its scale and zero point are per row) */
        const qb_lowbit_weights *W = m->word_emb_lowbit;
        qb_lowbit_weights one = *W;
        one.N = 1;
        one.rows = word_row(m, W->rows + (size_t)id * W->row_bytes, W->row_bytes, buf);
        one.scale = W->scale + (size_t)id * W->G;
        one.zero = W->zero ? W->zero + (size_t)id * W->G : NULL;
        m->kern_lowbit.dequantize(&one, 0, 0, E, out);
    } else if (m->word_emb_q) {
        const int8_t *q = word_row(m, m->word_emb_q + (size_t)id * E, (size_t)E, buf);
        float scale = m->word_emb_scale[id];
        for (int i = 0; i < E; i++) out[i] = (float)q[i] * scale;
    } else {
        memcpy(out, word_row(m, m->word_emb + (size_t)id * E, (size_t)E * sizeof(float), buf),
               (size_t)E * sizeof(float));
    }
}

/* word + type + position embeddings of rows [r0, r1); ctx is the session */
static void embed_rows(void *ctx, long r0, long r1, int thread) {
    const qb_session *s = ctx;
    const qb_model *m = s->m;
    int E = m->cfg.embedding_size;
    float *sum = embed_acts(s).sum, *buf = s->word_row ? s->word_row + (size_t)thread * E : NULL;
    for (long r = r0; r < r1; r++) {
        float *e = sum + (size_t)r * E;
        const float *p = m->pos_emb + (size_t)s->tok_pos[r] * E;
        const float *t = m->type_emb ? m->type_emb + (size_t)s->tok_types[r] * E : NULL;
        word_emb_row(m, s->tok_ids[r], buf, e);
        for (int i = 0; i < E; i++) e[i] = e[i] + (t ? t[i] : 0.0f) + p[i];
    }
}

/* word + type + position embeddings, LN, dropout; ALBERT projects E -> H. */
static void embed(qb_session *s) {
    const qb_model *m = s->m;
    int E = m->cfg.embedding_size, T = s->n_rows;
    qb_tape_embed a = embed_acts(s);
    qb_pool_for(s->pool, T, 3, embed_rows, s);
    norm(s, &m->emb_norm, a.sum, a.ln, a.mean, a.rstd, T, E);
    dropout(s, QB_SITE_EMB, s->tape ? s->tape->p_hidden : 0, a.ln, a.drop, (size_t)T * E);
    if (m->emb_proj.out) linear(s, &m->emb_proj, a.drop, a.q, T, layer_acts(s, 0).x, false);
}

/* softmax(Q K^T / sqrt(d)) V for one example and one head.  Only the
 * example's real tokens take part, which is what HF's additive mask of
 * finfo.min gives once exp() underflows to zero. */
static void attend_one(qb_session *s, int b, int h, float *scores, float *pack) {
    const qb_model *m = s->m;
    int H = m->cfg.hidden_size, d = H / m->cfg.num_heads, n = s->lens[b];
    size_t at = (size_t)s->offsets[b] * H + (size_t)h * d;
    qb_gemm_f32_args qk = {
        .M = n, .N = n, .K = d,
        .A = s->a.q + at, .lda = H,
        .B = s->a.k + at, .ldb = H, .b_trans = true,
        .C = scores, .ldc = n,
        .alpha = 1.0f / sqrtf((float)d), .act = QB_ACT_NONE,
    };
    m->kern.gemm_f32(&qk, pack);
    for (int i = 0; i < n; i++) m->kern.softmax_f32(scores + (size_t)i * n, n);
    qb_gemm_f32_args pv = {
        .M = n, .N = d, .K = n,
        .A = scores, .lda = n,
        .B = s->a.v + at, .ldb = H, .b_trans = false,
        .C = s->a.ctx + at, .ldc = H,
        .alpha = 1.0f, .act = QB_ACT_NONE,
    };
    m->kern.gemm_f32(&pv, pack);
}

/* The GEMM takes a scale and zero point per row; attention's are per tensor. */
static void fill_rows(qb_attn_scratch *w, int n, float scale, int32_t zero) {
    for (int i = 0; i < n; i++) {
        w->a_scale[i] = scale;
        w->a_zero[i] = zero;
    }
}

/* The same head in static int8: K (scaled by 1/sqrt(d)) and V^T become
 * integer weights repacked per head, Q and the probabilities u8 rows;
 * both products dequantize in the GEMM's epilogue. */
static void attend_one_i8(qb_session *s, const qb_attn_i8 *ai, int b, int h, float *scores, qb_attn_scratch *w) {
    const qb_model *m = s->m;
    const qb_kernels_i8 *k8 = &m->kern_i8;
    int H = m->cfg.hidden_size, d = H / m->cfg.num_heads, n = s->lens[b];
    size_t at = (size_t)s->offsets[b] * H + (size_t)h * d;
    qb_i8_quantize_s8(k8, s->a.k + at, n, d, H, ai->k_scale, w->q, w->k, false);
    qb_i8_weights_repack(k8, w->k, ai->k_scale / sqrtf((float)d), n, d, &w->wk);
    k8->quantize_rows_fixed(s->a.q + at, n, d, H, ai->q_scale, ai->q_zero, w->q, d);
    fill_rows(w, n, ai->q_scale, ai->q_zero);
    qb_gemm_i8_args qk = {.M = n, .N = n, .K = d, .A = w->q, .lda = d, .a_scale = w->a_scale,
                          .a_zero = w->a_zero, .W = &w->wk, .C = scores, .ldc = n};
    qb_gemm_i8(k8, &qk, NULL);
    for (int i = 0; i < n; i++) m->kern.softmax_f32(scores + (size_t)i * n, n);

    /* Each row of probabilities on its own u8 grid [0, max]: on a fixed
     * 1/255 grid most of a long row rounded to zero (IMDB at 256 tokens
     * lost 5 pt). */
    k8->quantize_rows(scores, n, n, n, w->p, n, w->a_scale, w->a_zero);
    qb_i8_quantize_s8(k8, s->a.v + at, n, d, H, ai->v_scale, w->q, w->vt, true);
    qb_i8_weights_repack(k8, w->vt, ai->v_scale, d, n, &w->wv);
    qb_gemm_i8_args pv = {.M = n, .N = d, .K = n, .A = w->p, .lda = n, .a_scale = w->a_scale,
                          .a_zero = w->a_zero, .W = &w->wv, .C = s->a.ctx + at, .ldc = H};
    qb_gemm_i8(k8, &pv, NULL);
}

typedef struct {
    qb_session *s;
    const qb_attn_i8 *ai; /* NULL: FP32 attention */
} attend_job;

/* Task j: example j / heads, head j % heads, on thread t's scratch. */
static void attend_task(void *ctx, int j, int t) {
    const attend_job *a = ctx;
    qb_session *s = a->s;
    int heads = s->m->cfg.num_heads;
    float *scores = s->a.scores + (size_t)t * s->max_seq * s->max_seq;
    if (a->ai) attend_one_i8(s, a->ai, j / heads, j % heads, scores, &s->attn_i8[t]);
    else attend_one(s, j / heads, j % heads, scores, s->pack + (size_t)t * qb_gemm_f32_pack_floats());
}

static void attention(qb_session *s, const qb_block *blk, const qb_tape_layer *a, int app) {
    if (s->tape) {
        qb_attn_shape shape = qb_session_attn_shape(s);
        qb_dropout d = qb_tape_dropout(s->tape, qb_tape_site(app, 0), s->tape->p_attn);
        qb_op_attention_forward(s->tape->ops, &shape, &d, a->ctx, a->probs, a->q, a->k, a->v);
        return;
    }
    attend_job j = {s, blk->attn_i8.on ? &blk->attn_i8 : NULL};
    qb_pool_run(s->pool, s->batch * s->m->cfg.num_heads, attend_task, &j);
}

/* Application app of a block: attention, then the FFN, each post-LN. */
static void block(qb_session *s, const qb_block *blk, int app) {
    const qb_config *c = &s->m->cfg;
    int T = s->n_rows, H = c->hidden_size;
    qb_tape_layer a = layer_acts(s, app);
    linear(s, &blk->q, a.x, a.x_q, T, a.q, false);
    linear(s, &blk->k, a.x, a.x_q, T, a.k, true);
    linear(s, &blk->v, a.x, a.x_q, T, a.v, true);
    if (s->observe) {
        s->halt |= s->observe(s->observe_ctx, &blk->q, true, a.q, T);
        s->halt |= s->observe(s->observe_ctx, &blk->k, true, a.k, T);
        s->halt |= s->observe(s->observe_ctx, &blk->v, true, a.v, T);
    }
    attention(s, blk, &a, app);
    linear_residual(s, &blk->o, a.ctx, a.ctx_q, T, a.x, qb_tape_site(app, 1), a.attn_sum);
    norm(s, &blk->attn_norm, a.attn_sum, a.attn, a.attn_mean, a.attn_rstd, T, H);
    linear_act(s, &blk->ffn_in, a.attn, a.attn_q, T, a.ffn_pre, a.ffn_act, c->act);
    linear_residual(s, &blk->ffn_out, a.ffn_act, a.ffn_act_q, T, a.attn, qb_tape_site(app, 2), a.out_sum);
    norm(s, &blk->ffn_norm, a.out_sum, a.out, a.out_mean, a.out_rstd, T, H);
}

/* Inference hands out token logits padded to [B, S, L]. */
static void pad_token_logits(qb_session *s, const float *rows) {
    int L = s->m->cfg.num_labels;
    memset(s->a.logits, 0, (size_t)s->batch * s->seq * L * sizeof(float));
    for (int b = 0; b < s->batch; b++)
        memcpy(s->a.logits + (size_t)b * s->seq * L, rows + (size_t)s->offsets[b] * L,
               (size_t)s->lens[b] * L * sizeof(float));
}

/* Sequence heads read the first row through a dense and the family's
 * act (BERT/ALBERT's pooler and RoBERTa's classifier.dense: tanh;
 * DistilBERT's pre_classifier: ReLU; ELECTRA's: GELU); then dropout, the
 * classifier.  Token heads: every row -> dropout -> classifier.  Masked-LM
 * heads: every row -> dense, act, LayerNorm (no dropout, as in HF); the
 * decoder runs on the rows asked for (qb_forward_mlm_decode; training: the
 * trainer's, on the masked rows). */
static void head(qb_session *s, const float *x) {
    const qb_model *m = s->m;
    int H = m->cfg.hidden_size, B = s->batch, T = s->n_rows;
    float p = s->tape ? s->tape->p_classifier : 0;
    qb_tape_head a = head_acts(s);
    if (m->cfg.task == QB_TASK_MLM) {
        linear_act(s, &m->mlm_dense, x, a.in_q, T, a.pre, a.act, m->cfg.mlm_act);
        norm(s, &m->mlm_norm, a.act, a.ln, a.mean, a.rstd, T, H);
        return;
    }
    if (m->cfg.task == QB_TASK_TOKEN) {
        dropout(s, QB_SITE_HEAD, p, x, a.drop, (size_t)T * H);
        linear(s, &m->classifier, a.drop, NULL, T, a.logits, false);
        if (!s->tape) pad_token_logits(s, a.logits);
        return;
    }
    for (int b = 0; b < B; b++)
        memcpy(a.in + (size_t)b * H, x + (size_t)s->offsets[b] * H, (size_t)H * sizeof(float));
    bool pooler = m->pooler.out;
    linear_act(s, pooler ? &m->pooler : &m->pre_classifier, a.in, a.in_q, B, a.pre, a.act,
               m->cfg.family->head_act);
    dropout(s, QB_SITE_HEAD, p, a.act, a.drop, (size_t)B * H);
    linear(s, &m->classifier, a.drop, NULL, B, a.logits, false);
}

/* The decoder row by row of the word embeddings, as they are stored
 * (FP32 through the GEMM; int8 or low-bit rows dequantized one at a time):
 * a fill-mask query asks a few rows, so no table is widened for it. */
void qb_forward_mlm_decode(qb_session *s, int row, float *out) {
    const qb_model *m = s->m;
    int H = m->cfg.hidden_size, V = m->cfg.vocab_size;
    const float *x = s->a.mlm + (size_t)row * H, *table = m->mlm_decoder ? m->mlm_decoder : m->word_emb;
    if (table) {
        qb_gemm_f32_args g = {.M = 1, .N = V, .K = H, .A = x, .lda = H, .B = table, .ldb = H, .b_trans = true,
                              .C = out, .ldc = V, .bias = m->mlm_bias, .alpha = 1.0f, .act = QB_ACT_NONE};
        qb_gemm_f32(&m->kern, &g, s->pool, s->pack);
        return;
    }
    float *w = s->pack; /* one dequantized row */
    for (int v = 0; v < V; v++) {
        word_emb_row(m, v, NULL, w);
        double dot = 0;
        for (int i = 0; i < H; i++) dot += (double)w[i] * x[i];
        out[v] = (float)dot + m->mlm_bias[v];
    }
}

/* One pooling mode over an example's n rows of x into o[0..H). */
static void pool_mode(unsigned mode, const float *x, int n, int H, float *o) {
    if (mode == QB_POOL_CLS || mode == QB_POOL_LAST_TOKEN) {
        memcpy(o, x + (mode == QB_POOL_CLS ? 0 : (size_t)(n - 1) * H), (size_t)H * sizeof(float));
        return;
    }
    if (mode == QB_POOL_MAX) {
        memcpy(o, x, (size_t)H * sizeof(float));
        for (int r = 1; r < n; r++)
            for (int i = 0; i < H; i++) o[i] = x[(size_t)r * H + i] > o[i] ? x[(size_t)r * H + i] : o[i];
        return;
    }
    bool weighted = mode == QB_POOL_WEIGHTED_MEAN;
    double total = weighted ? 0.5 * n * (n + 1.0) : n;
    memset(o, 0, (size_t)H * sizeof(float));
    for (int r = 0; r < n; r++) {
        float w = weighted ? (float)(r + 1) : 1.0f;
        for (int i = 0; i < H; i++) o[i] += w * x[(size_t)r * H + i];
    }
    float scale = (float)(1.0 / (mode == QB_POOL_MEAN_SQRT_LEN ? sqrt(total) : total));
    for (int i = 0; i < H; i++) o[i] *= scale;
}

/* Sentence embeddings in place of the head: each example's modes over
 * its real rows only, concatenated in sentence-transformers' order. */
typedef struct {
    qb_session *s;
    const float *x;
} pool_job;

static void pool_examples(void *ctx, long b0, long b1, int thread) {
    const pool_job *j = ctx;
    qb_session *s = j->s;
    const float *x = j->x;
    int H = s->m->cfg.hidden_size;
    for (long b = b0; b < b1; b++) {
        float *o = s->a.pooled + (size_t)b * s->embed_dim;
        const float *rows = x + (size_t)s->offsets[b] * H;
        for (int k = 0; k < QB_POOL_MODES; k++)
            if (s->pooling & (1u << k)) pool_mode(1u << k, rows, s->lens[b], H, o), o += H;
        if (s->normalize) qb_vec_normalize(s->a.pooled + (size_t)b * s->embed_dim, s->embed_dim);
    }
}

static void pool(qb_session *s, const float *x) {
    pool_job j = {s, x};
    qb_pool_for(s->pool, s->batch, 1, pool_examples, &j);
}

/* Where each example's attention probabilities start on the tape. */
static void tape_prob_offsets(qb_session *s) {
    int64_t at = 0;
    for (int b = 0; b < s->batch; b++) {
        s->tape->prob_offsets[b] = at;
        at += (int64_t)s->m->cfg.num_heads * s->lens[b] * s->lens[b];
    }
}

void qb_forward(qb_session *s) {
    const qb_model *m = s->m;
    int inner = qb_model_inner_steps(m), last = m->cfg.num_layers * inner - 1;
    s->qa_for = NULL;
    s->halt = false;
    int from = s->resume_x ? s->resume_app : 0;
    if (s->tape) tape_prob_offsets(s);
    if (s->resume_x)
        memcpy(layer_acts(s, from).x, s->resume_x, (size_t)s->n_rows * m->cfg.hidden_size * sizeof(float));
    else embed(s);
    for (int l = from / inner; l < m->cfg.num_layers && !s->halt; l++)
        for (int i = l == from / inner ? from % inner : 0; i < inner; i++)
            block(s, qb_model_block(m, l, i), l * inner + i);
    if (s->halt) return;
    if (!s->tape && s->pooling) pool(s, layer_acts(s, last).out);
    else if (m->cfg.task != QB_TASK_NONE) head(s, layer_acts(s, last).out);
}
