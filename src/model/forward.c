/* The forward pass of BERT, ALBERT and DistilBERT, read top to bottom:
 * embeddings -> [attention -> FFN] x layers -> head.  Every op calls the
 * kernel table chosen at load time. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "model/linear_format.h"
#include "model/session.h"

/* y = act(x W^T + b) + residual in l's format.  same_input: x is the
 * input of the linear run just before this one, unchanged since, so a
 * format may reuse what it made of x (the graph knows this; pointers cannot
 * tell, since attention and LayerNorm write buffers in place).  Otherwise
 * the input scratch a format filled belongs to nobody. */
static void linear_run(qb_session *s, const qb_linear *l, const float *x, int rows, float *y,
                       const float *residual, qb_act act, bool same_input) {
    if (s->observe && s->observe(s->observe_ctx, l, false, x, rows)) s->halt = true;
    if (!same_input) s->qa_for = NULL;
    qb_linear_io io = {.x = x, .rows = rows, .y = y, .residual = residual, .act = act, .same_input = same_input};
    l->fmt->run(s, l, &io);
}

static void linear(qb_session *s, const qb_linear *l, const float *x, int rows, float *y,
                   const float *residual, qb_act act) {
    linear_run(s, l, x, rows, y, residual, act, false);
}

static void layernorm_rows(qb_session *s, const qb_norm *n, float *x, int rows, int dim) {
    const qb_kernels *k = &s->m->kern;
    float eps = s->m->cfg.layer_norm_eps;
#pragma omp parallel for num_threads(s->n_threads) schedule(static) if (rows > 4)
    for (int r = 0; r < rows; r++) k->layernorm_f32(x + (size_t)r * dim, n->gamma, n->beta, eps, dim, x + (size_t)r * dim);
}

static void embed(qb_session *s) {
    const qb_model *m = s->m;
    int E = m->cfg.embedding_size;
#pragma omp parallel for num_threads(s->n_threads) schedule(static) if (s->n_rows > 4)
    for (int r = 0; r < s->n_rows; r++) {
        float *e = s->a.emb + (size_t)r * E;
        const float *p = m->pos_emb + (size_t)s->tok_pos[r] * E;
        const float *t = m->type_emb ? m->type_emb + (size_t)s->tok_types[r] * E : NULL;
        if (m->word_emb_lowbit) {
            m->kern_lowbit.dequantize(m->word_emb_lowbit, s->tok_ids[r], 0, E, e);
            for (int i = 0; i < E; i++) e[i] += (t ? t[i] : 0.0f) + p[i];
        } else if (m->word_emb_q) {
            const int8_t *q = m->word_emb_q + (size_t)s->tok_ids[r] * E;
            float scale = m->word_emb_scale[s->tok_ids[r]];
            for (int i = 0; i < E; i++) e[i] = (float)q[i] * scale + (t ? t[i] : 0.0f) + p[i];
        } else {
            const float *w = m->word_emb + (size_t)s->tok_ids[r] * E;
            for (int i = 0; i < E; i++) e[i] = w[i] + (t ? t[i] : 0.0f) + p[i];
        }
    }
    layernorm_rows(s, &m->emb_norm, s->a.emb, s->n_rows, E);
    if (m->emb_proj.out) linear(s, &m->emb_proj, s->a.emb, s->n_rows, s->a.x, NULL, QB_ACT_NONE);
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
    qb_gemm_i8(k8, &qk, 1);
    for (int i = 0; i < n; i++) m->kern.softmax_f32(scores + (size_t)i * n, n);

    /* Each row of probabilities on its own u8 grid [0, max]: on a fixed
     * 1/255 grid most of a long row rounded to zero (IMDB at 256 tokens
     * lost 5 pt). */
    k8->quantize_rows(scores, n, n, n, w->p, n, w->a_scale, w->a_zero);
    qb_i8_quantize_s8(k8, s->a.v + at, n, d, H, ai->v_scale, w->q, w->vt, true);
    qb_i8_weights_repack(k8, w->vt, ai->v_scale, d, n, &w->wv);
    qb_gemm_i8_args pv = {.M = n, .N = d, .K = n, .A = w->p, .lda = n, .a_scale = w->a_scale,
                          .a_zero = w->a_zero, .W = &w->wv, .C = s->a.ctx + at, .ldc = H};
    qb_gemm_i8(k8, &pv, 1);
}

static void attention(qb_session *s, const qb_block *blk) {
    int heads = s->m->cfg.num_heads, jobs = s->batch * heads;
    size_t score_floats = (size_t)s->max_seq * s->max_seq, pack_floats = qb_gemm_f32_pack_floats();
    const qb_attn_i8 *ai = blk->attn_i8.on ? &blk->attn_i8 : NULL;
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic)
    for (int j = 0; j < jobs; j++) {
        int t = omp_get_thread_num();
        float *scores = s->a.scores + t * score_floats;
        if (ai) attend_one_i8(s, ai, j / heads, j % heads, scores, &s->attn_i8[t]);
        else attend_one(s, j / heads, j % heads, scores, s->pack + t * pack_floats);
    }
}

static void block(qb_session *s, const qb_block *blk) {
    const qb_config *c = &s->m->cfg;
    int T = s->n_rows, H = c->hidden_size;
    qb_acts *a = &s->a;
    linear(s, &blk->q, a->x, T, a->q, NULL, QB_ACT_NONE);
    linear_run(s, &blk->k, a->x, T, a->k, NULL, QB_ACT_NONE, true);
    linear_run(s, &blk->v, a->x, T, a->v, NULL, QB_ACT_NONE, true);
    if (s->observe) {
        s->halt |= s->observe(s->observe_ctx, &blk->q, true, a->q, T);
        s->halt |= s->observe(s->observe_ctx, &blk->k, true, a->k, T);
        s->halt |= s->observe(s->observe_ctx, &blk->v, true, a->v, T);
    }
    attention(s, blk);
    linear(s, &blk->o, a->ctx, T, a->attn, a->x, QB_ACT_NONE);
    layernorm_rows(s, &blk->attn_norm, a->attn, T, H);
    linear(s, &blk->ffn_in, a->attn, T, a->ffn, NULL, c->act);
    linear(s, &blk->ffn_out, a->ffn, T, a->x, a->attn, QB_ACT_NONE);
    layernorm_rows(s, &blk->ffn_norm, a->x, T, H);
}

/* Sequence heads read the [CLS] row: BERT/ALBERT through the tanh pooler,
 * DistilBERT through pre_classifier + ReLU.  Token heads read every row. */
static void head(qb_session *s) {
    const qb_model *m = s->m;
    int H = m->cfg.hidden_size, L = m->cfg.num_labels;
    if (m->cfg.task == QB_TASK_TOKEN) {
        float *rows = s->a.token_logits;
        linear(s, &m->classifier, s->a.x, s->n_rows, rows, NULL, QB_ACT_NONE);
        memset(s->a.logits, 0, (size_t)s->batch * s->seq * L * sizeof(float));
        for (int b = 0; b < s->batch; b++)
            memcpy(s->a.logits + (size_t)b * s->seq * L, rows + (size_t)s->offsets[b] * L,
                   (size_t)s->lens[b] * L * sizeof(float));
        return;
    }
    for (int b = 0; b < s->batch; b++)
        memcpy(s->a.cls + (size_t)b * H, s->a.x + (size_t)s->offsets[b] * H, (size_t)H * sizeof(float));
    const qb_linear *pool = m->pooler.out ? &m->pooler : &m->pre_classifier;
    linear(s, pool, s->a.cls, s->batch, s->a.cls2, NULL, m->pooler.out ? QB_ACT_TANH : QB_ACT_RELU);
    linear(s, &m->classifier, s->a.cls2, s->batch, s->a.logits, NULL, QB_ACT_NONE);
}

void qb_forward(qb_session *s) {
    const qb_model *m = s->m;
    int inner = qb_model_inner_steps(m);
    s->qa_for = NULL;
    s->halt = false;
    embed(s);
    for (int l = 0; l < m->cfg.num_layers && !s->halt; l++)
        for (int i = 0; i < inner; i++) block(s, qb_model_block(m, l, i));
    if (!s->halt) head(s);
}
