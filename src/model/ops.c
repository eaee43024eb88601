/* Forward/backward pairs of the training graph.  Reductions over rows (bias,
 * LayerNorm and embedding gradients) run serially in a fixed order so that
 * a step's result depends on the seed and thread count only. */
#include <math.h>
#include <string.h>

#include "model/ops.h"

size_t qb_op_linear_scratch_floats(int rows, int in, int out) {
    size_t a = (size_t)rows * in, b = (size_t)out * in;
    return (a > b ? a : b) + (size_t)rows * out;
}

size_t qb_op_attention_work_floats(int max_seq, int hidden) {
    return 3 * (size_t)max_seq * max_seq + (size_t)max_seq * hidden;
}

static void add_into(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static void transpose(float *dst, const float *src, int rows, int cols, int ld_src) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * ld_src + c];
}

/* ---- embeddings ------------------------------------------------------- */

void qb_op_embed_forward(float *out, const int32_t *ids, const int32_t *types, const int32_t *pos_ids,
                         const float *word, const float *type, const float *pos, int rows, int dim) {
    for (int r = 0; r < rows; r++) {
        float *o = out + (size_t)r * dim;
        const float *w = word + (size_t)ids[r] * dim, *p = pos + (size_t)pos_ids[r] * dim;
        const float *t = type ? type + (size_t)types[r] * dim : NULL;
        for (int i = 0; i < dim; i++) o[i] = w[i] + (t ? t[i] : 0.0f) + p[i];
    }
}

void qb_op_embed_backward(float *dword, float *dtype, float *dpos, const float *dout, const int32_t *ids,
                          const int32_t *types, const int32_t *pos_ids, int rows, int dim) {
    for (int r = 0; r < rows; r++) {
        const float *d = dout + (size_t)r * dim;
        add_into(dword + (size_t)ids[r] * dim, d, (size_t)dim);
        add_into(dpos + (size_t)pos_ids[r] * dim, d, (size_t)dim);
        if (dtype) add_into(dtype + (size_t)types[r] * dim, d, (size_t)dim);
    }
}

/* ---- linear ----------------------------------------------------------- */

void qb_op_linear_forward(const qb_op_ctx *c, float *y, const float *x, const float *w, const float *b, int rows,
                          int in, int out) {
    qb_gemm_f32_args g = {
        .M = rows, .N = out, .K = in,
        .A = x, .lda = in,
        .B = w, .ldb = in, .b_trans = true,
        .C = y, .ldc = out,
        .bias = b, .alpha = 1.0f, .act = QB_ACT_NONE,
    };
    qb_gemm_f32(c->k, &g, c->pool, c->pack);
}

/* The GEMM's residual is added after a K-blocked sum lands in C, so C may
 * not alias it: each product goes to scratch, then adds into the gradient. */
void qb_op_linear_backward(const qb_op_ctx *c, float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int rows, int in, int out) {
    float *tmp = c->scratch;
    float *dy_t = c->scratch + qb_op_linear_scratch_floats(rows, in, out) - (size_t)rows * out;
    if (dx) { /* dx += dy W */
        qb_gemm_f32_args g = {
            .M = rows, .N = in, .K = out,
            .A = dy, .lda = out,
            .B = w, .ldb = in, .b_trans = false,
            .C = tmp, .ldc = in, .alpha = 1.0f, .act = QB_ACT_NONE,
        };
        qb_gemm_f32(c->k, &g, c->pool, c->pack);
        add_into(dx, tmp, (size_t)rows * in);
    }
    /* dW += dy^T x */
    transpose(dy_t, dy, rows, out, out);
    qb_gemm_f32_args g = {
        .M = out, .N = in, .K = rows,
        .A = dy_t, .lda = rows,
        .B = x, .ldb = in, .b_trans = false,
        .C = tmp, .ldc = in, .alpha = 1.0f, .act = QB_ACT_NONE,
    };
    qb_gemm_f32(c->k, &g, c->pool, c->pack);
    add_into(dw, tmp, (size_t)out * in);
    if (db)
        for (int r = 0; r < rows; r++) add_into(db, dy + (size_t)r * out, (size_t)out);
}

/* ---- layernorm -------------------------------------------------------- */

typedef struct {
    float *y, *dx;
    float *mean, *rstd;
    const float *x, *dy, *gamma, *beta;
    float eps;
    int dim;
} layernorm_job;

static void layernorm_rows(void *ctx, long r0, long r1, int thread) {
    const layernorm_job *j = ctx;
    const float *x = j->x, *gamma = j->gamma, *beta = j->beta;
    float *y = j->y, *mean = j->mean, *rstd = j->rstd, eps = j->eps;
    int dim = j->dim;
    for (long r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double sum = 0, sq = 0;
        for (int i = 0; i < dim; i++) sum += xr[i];
        float mu = (float)(sum / dim);
        for (int i = 0; i < dim; i++) sq += (double)(xr[i] - mu) * (xr[i] - mu);
        float rs = (float)(1.0 / sqrt(sq / dim + eps));
        for (int i = 0; i < dim; i++) yr[i] = (xr[i] - mu) * rs * gamma[i] + beta[i];
        mean[r] = mu;
        rstd[r] = rs;
    }
}

void qb_op_layernorm_forward(const qb_op_ctx *c, float *y, float *mean, float *rstd, const float *x,
                             const float *gamma, const float *beta, float eps, int rows, int dim) {
    layernorm_job j = {.y = y, .mean = mean, .rstd = rstd, .x = x, .gamma = gamma, .beta = beta, .eps = eps,
                       .dim = dim};
    qb_pool_for(c->pool, rows, 9, layernorm_rows, &j);
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma. */
static void layernorm_backward_rows(void *ctx, long r0, long r1, int thread) {
    const layernorm_job *j = ctx;
    const float *x = j->x, *dy = j->dy, *gamma = j->gamma, *mean = j->mean, *rstd = j->rstd;
    float *dx = j->dx;
    int dim = j->dim;
    for (long r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
        float *dxr = dx + (size_t)r * dim;
        float mu = mean[r], rs = rstd[r];
        double sum_g = 0, sum_gx = 0;
        for (int i = 0; i < dim; i++) {
            float g = dyr[i] * gamma[i];
            sum_g += g;
            sum_gx += (double)g * ((xr[i] - mu) * rs);
        }
        float mg = (float)(sum_g / dim), mgx = (float)(sum_gx / dim);
        for (int i = 0; i < dim; i++) {
            float xhat = (xr[i] - mu) * rs;
            dxr[i] += rs * (dyr[i] * gamma[i] - mg - xhat * mgx);
        }
    }
}

void qb_op_layernorm_backward(const qb_op_ctx *c, float *dx, float *dgamma, float *dbeta, const float *dy,
                              const float *x, const float *mean, const float *rstd, const float *gamma, int rows,
                              int dim) {
    layernorm_job j = {.dx = dx, .mean = (float *)mean, .rstd = (float *)rstd, .x = x, .dy = dy, .gamma = gamma,
                       .dim = dim};
    qb_pool_for(c->pool, rows, 9, layernorm_backward_rows, &j);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim, *dyr = dy + (size_t)r * dim;
        float mu = mean[r], rs = rstd[r];
        for (int i = 0; i < dim; i++) {
            dgamma[i] += dyr[i] * ((xr[i] - mu) * rs);
            dbeta[i] += dyr[i];
        }
    }
}

/* ---- activations ------------------------------------------------------ */

typedef struct {
    const qb_kernels *k;
    qb_act act;
    float *y;
    size_t n;
    const float *dy, *x;
} act_job;

enum { ACT_CHUNK = 4096 };

static void act_chunks(void *ctx, long c0, long c1, int thread) {
    const act_job *j = ctx;
    for (long i = c0; i < c1; i++) {
        size_t at = (size_t)i * ACT_CHUNK, len = j->n - at < ACT_CHUNK ? j->n - at : ACT_CHUNK;
        j->k->act_f32(j->act, j->y + at, (int)len);
    }
}

void qb_op_act_forward(const qb_op_ctx *c, qb_act act, float *y, const float *x, size_t n) {
    if (y != x) memcpy(y, x, n * sizeof *y);
    if (act == QB_ACT_NONE) return;
    act_job j = {.k = c->k, .act = act, .y = y, .n = n};
    qb_pool_for(c->pool, (long)((n + ACT_CHUNK - 1) / ACT_CHUNK), 3, act_chunks, &j);
}

static float act_derivative(qb_act act, float x) {
    switch (act) {
    case QB_ACT_GELU: { /* Phi(x) + x phi(x) */
        double cdf = 0.5 * (1.0 + erf(x / sqrt(2.0)));
        double pdf = exp(-0.5 * (double)x * x) / sqrt(2.0 * M_PI);
        return (float)(cdf + x * pdf);
    }
    case QB_ACT_GELU_TANH: {
        const double k = sqrt(2.0 / M_PI), a = 0.044715;
        double t = tanh(k * (x + a * (double)x * x * x));
        return (float)(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * a * x * x));
    }
    case QB_ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case QB_ACT_TANH: {
        double t = tanh(x);
        return (float)(1.0 - t * t);
    }
    default: return 1.0f;
    }
}

static void act_backward_run(void *ctx, long i0, long i1, int thread) {
    const act_job *j = ctx;
    for (long i = i0; i < i1; i++) j->y[i] += j->dy[i] * act_derivative(j->act, j->x[i]);
}

void qb_op_act_backward(const qb_op_ctx *c, qb_act act, float *dx, const float *dy, const float *x, size_t n) {
    act_job j = {.act = act, .y = dx, .dy = dy, .x = x};
    qb_pool_for(c->pool, (long)n, 32768, act_backward_run, &j);
}

/* ---- dropout ---------------------------------------------------------- */

static uint64_t mix64(uint64_t z) { /* splitmix64's finalizer */
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t dropout_key(const qb_dropout *d) {
    return mix64(mix64(mix64(d->seed) ^ d->step) ^ d->site);
}

/* 24 random bits against p scaled to 2^24. */
static bool dropout_keeps(uint64_t key, uint32_t threshold, size_t i) {
    return (uint32_t)(mix64(key ^ (uint64_t)i) >> 40) >= threshold;
}

static uint32_t dropout_threshold(const qb_dropout *d) { return (uint32_t)(d->p * 16777216.0f); }

void qb_op_dropout_forward(const qb_dropout *drop, float *y, const float *x, size_t n) {
    if (drop->p <= 0.0f) {
        if (y != x) memcpy(y, x, n * sizeof *y);
        return;
    }
    uint64_t key = dropout_key(drop);
    uint32_t th = dropout_threshold(drop);
    float scale = 1.0f / (1.0f - drop->p);
    for (size_t i = 0; i < n; i++) y[i] = dropout_keeps(key, th, i) ? x[i] * scale : 0.0f;
}

void qb_op_dropout_backward(const qb_dropout *drop, float *dx, const float *dy, size_t n) {
    if (drop->p <= 0.0f) {
        add_into(dx, dy, n);
        return;
    }
    uint64_t key = dropout_key(drop);
    uint32_t th = dropout_threshold(drop);
    float scale = 1.0f / (1.0f - drop->p);
    for (size_t i = 0; i < n; i++)
        if (dropout_keeps(key, th, i)) dx[i] += dy[i] * scale;
}

/* ---- residual --------------------------------------------------------- */

void qb_op_residual_forward(float *y, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void qb_op_residual_backward(float *da, float *db, const float *dy, size_t n) {
    add_into(da, dy, n);
    add_into(db, dy, n);
}

/* ---- attention -------------------------------------------------------- */

typedef struct {
    int n, d;           /* tokens of the example, head size */
    size_t at;          /* first element of this head in q/k/v/ctx */
    float *p;           /* probs of this (example, head), [n, n] */
    size_t p_index;     /* index of p[0] in the whole probs array (dropout) */
} head_view;

static head_view head_at(const qb_attn_shape *s, float *probs, int job) {
    int e = job / s->heads, h = job % s->heads;
    head_view v;
    v.n = s->lens[e];
    v.d = s->hidden / s->heads;
    v.at = (size_t)s->offsets[e] * s->hidden + (size_t)h * v.d;
    v.p_index = (size_t)s->prob_offsets[e] + (size_t)h * v.n * v.n;
    v.p = probs + v.p_index;
    return v;
}

static void dropout_probs(const qb_dropout *drop, const head_view *v, float *out) {
    qb_dropout d = *drop;
    size_t nn = (size_t)v->n * v->n;
    if (d.p <= 0.0f) {
        memcpy(out, v->p, nn * sizeof *out);
        return;
    }
    uint64_t key = dropout_key(&d);
    uint32_t th = dropout_threshold(&d);
    float scale = 1.0f / (1.0f - d.p);
    for (size_t i = 0; i < nn; i++) out[i] = dropout_keeps(key, th, v->p_index + i) ? v->p[i] * scale : 0.0f;
}

static void attend_forward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *ctx,
                           float *probs, const float *q, const float *k, const float *v, int job, float *work,
                           float *pack) {
    head_view hv = head_at(s, probs, job);
    int n = hv.n, d = hv.d, H = s->hidden;
    qb_gemm_f32_args qk = {
        .M = n, .N = n, .K = d,
        .A = q + hv.at, .lda = H,
        .B = k + hv.at, .ldb = H, .b_trans = true,
        .C = hv.p, .ldc = n,
        .alpha = 1.0f / sqrtf((float)d), .act = QB_ACT_NONE,
    };
    c->k->gemm_f32(&qk, pack);
    for (int i = 0; i < n; i++) c->k->softmax_f32(hv.p + (size_t)i * n, n);
    float *pd = work;
    dropout_probs(drop, &hv, pd);
    qb_gemm_f32_args pv = {
        .M = n, .N = d, .K = n,
        .A = pd, .lda = n,
        .B = v + hv.at, .ldb = H, .b_trans = false,
        .C = ctx + hv.at, .ldc = H,
        .alpha = 1.0f, .act = QB_ACT_NONE,
    };
    c->k->gemm_f32(&pv, pack);
}

/* One (example, head) of attention per task, on the thread's scratch. */
typedef struct {
    const qb_op_ctx *c;
    const qb_attn_shape *s;
    const qb_dropout *drop;
    float *ctx, *probs, *dq, *dk, *dv;
    const float *q, *k, *v, *dctx;
} attend_job;

static float *attend_work(const qb_op_ctx *c, int t) {
    return c->attn_work + (size_t)t * qb_op_attention_work_floats(c->max_seq, c->hidden);
}

static float *attend_pack(const qb_op_ctx *c, int t) { return c->pack + (size_t)t * qb_gemm_f32_pack_floats(); }

static void attend_forward_task(void *ctx, int job, int t) {
    const attend_job *a = ctx;
    attend_forward(a->c, a->s, a->drop, a->ctx, a->probs, a->q, a->k, a->v, job, attend_work(a->c, t),
                   attend_pack(a->c, t));
}

void qb_op_attention_forward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *ctx,
                             float *probs, const float *q, const float *k, const float *v) {
    attend_job a = {.c = c, .s = s, .drop = drop, .ctx = ctx, .probs = probs, .q = q, .k = k, .v = v};
    qb_pool_run(c->pool, s->n_examples * s->heads, attend_forward_task, &a);
}

/* dst[n, d] (stride H) += src[n, d] (dense). */
static void add_head(float *dst, int H, const float *src, int n, int d) {
    for (int i = 0; i < n; i++) add_into(dst + (size_t)i * H, src + (size_t)i * d, (size_t)d);
}

/* dS = P * (dP - rowsum(dP * P)): softmax's Jacobian applied row by row. */
static void softmax_backward_rows(float *dp, const float *p, int n) {
    for (int i = 0; i < n; i++) {
        float *g = dp + (size_t)i * n;
        const float *pr = p + (size_t)i * n;
        double dot = 0;
        for (int j = 0; j < n; j++) dot += (double)g[j] * pr[j];
        for (int j = 0; j < n; j++) g[j] = pr[j] * (g[j] - (float)dot);
    }
}

static void attend_backward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *dq,
                            float *dk, float *dv, const float *dctx, float *probs, const float *q, const float *k,
                            const float *v, int job, float *work, float *pack) {
    head_view hv = head_at(s, probs, job);
    int n = hv.n, d = hv.d, H = s->hidden;
    size_t nn = (size_t)n * n;
    float *dp = work, *pd = work + nn, *tr = work + 2 * nn, *tmp = work + 3 * nn;
    float scale = 1.0f / sqrtf((float)d);
    /* dPd = dctx V^T */
    qb_gemm_f32_args g1 = {.M = n, .N = n, .K = d, .A = dctx + hv.at, .lda = H, .B = v + hv.at, .ldb = H,
                           .b_trans = true, .C = dp, .ldc = n, .alpha = 1.0f, .act = QB_ACT_NONE};
    c->k->gemm_f32(&g1, pack);
    /* dV += Pd^T dctx */
    dropout_probs(drop, &hv, pd);
    transpose(tr, pd, n, n, n);
    qb_gemm_f32_args g2 = {.M = n, .N = d, .K = n, .A = tr, .lda = n, .B = dctx + hv.at, .ldb = H,
                           .C = tmp, .ldc = d, .alpha = 1.0f, .act = QB_ACT_NONE};
    c->k->gemm_f32(&g2, pack);
    add_head(dv + hv.at, H, tmp, n, d);
    /* through dropout (the same mask scaled), then softmax */
    if (drop->p > 0.0f)
        for (size_t i = 0; i < nn; i++) dp[i] = hv.p[i] != 0.0f ? dp[i] * pd[i] / hv.p[i] : 0.0f;
    softmax_backward_rows(dp, hv.p, n);
    /* dQ += scale dS K;  dK += scale dS^T Q */
    qb_gemm_f32_args g3 = {.M = n, .N = d, .K = n, .A = dp, .lda = n, .B = k + hv.at, .ldb = H,
                           .C = tmp, .ldc = d, .alpha = scale, .act = QB_ACT_NONE};
    c->k->gemm_f32(&g3, pack);
    add_head(dq + hv.at, H, tmp, n, d);
    transpose(tr, dp, n, n, n);
    qb_gemm_f32_args g4 = {.M = n, .N = d, .K = n, .A = tr, .lda = n, .B = q + hv.at, .ldb = H,
                           .C = tmp, .ldc = d, .alpha = scale, .act = QB_ACT_NONE};
    c->k->gemm_f32(&g4, pack);
    add_head(dk + hv.at, H, tmp, n, d);
}

static void attend_backward_task(void *ctx, int job, int t) {
    const attend_job *a = ctx;
    attend_backward(a->c, a->s, a->drop, a->dq, a->dk, a->dv, a->dctx, a->probs, a->q, a->k, a->v, job,
                    attend_work(a->c, t), attend_pack(a->c, t));
}

void qb_op_attention_backward(const qb_op_ctx *c, const qb_attn_shape *s, const qb_dropout *drop, float *dq,
                              float *dk, float *dv, const float *dctx, const float *probs, const float *q,
                              const float *k, const float *v) {
    attend_job a = {.c = c, .s = s, .drop = drop, .probs = (float *)probs, .dq = dq, .dk = dk, .dv = dv, .q = q,
                    .k = k, .v = v, .dctx = dctx};
    qb_pool_run(c->pool, s->n_examples * s->heads, attend_backward_task, &a);
}

/* ---- cross-entropy ---------------------------------------------------- */

float qb_op_cross_entropy_forward(float *probs, const float *logits, const int32_t *labels, int rows, int classes,
                                  int *n_used) {
    double total = 0;
    int used = 0;
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * classes;
        float *p = probs + (size_t)r * classes;
        float zmax = z[0];
        for (int j = 1; j < classes; j++) zmax = z[j] > zmax ? z[j] : zmax;
        double sum = 0;
        for (int j = 0; j < classes; j++) sum += exp((double)z[j] - zmax);
        for (int j = 0; j < classes; j++) p[j] = (float)(exp((double)z[j] - zmax) / sum);
        if (labels[r] == QB_IGNORE_INDEX) continue;
        total += log(sum) + zmax - z[labels[r]];
        used++;
    }
    *n_used = used;
    return used ? (float)(total / used) : 0.0f;
}

void qb_op_cross_entropy_backward(float *dlogits, const float *probs, const int32_t *labels, int rows, int classes,
                                  int n_used) {
    if (!n_used) return;
    float inv = 1.0f / (float)n_used;
    for (int r = 0; r < rows; r++) {
        if (labels[r] == QB_IGNORE_INDEX) continue;
        const float *p = probs + (size_t)r * classes;
        float *d = dlogits + (size_t)r * classes;
        for (int j = 0; j < classes; j++) d[j] += (p[j] - (j == labels[r] ? 1.0f : 0.0f)) * inv;
    }
}

/* Softmax of z / T in double, into p. */
static void soft(float *p, const float *z, int classes, float T) {
    double zmax = z[0], sum = 0;
    for (int j = 1; j < classes; j++) zmax = z[j] > zmax ? z[j] : zmax;
    for (int j = 0; j < classes; j++) sum += exp(((double)z[j] - zmax) / T);
    for (int j = 0; j < classes; j++) p[j] = (float)(exp(((double)z[j] - zmax) / T) / sum);
}

float qb_op_kd_forward(float *ps, float *pt, const float *student, const float *teacher, const int32_t *labels,
                       int rows, int classes, float T, int *n_used) {
    double total = 0;
    int used = 0;
    for (int r = 0; r < rows; r++) {
        size_t at = (size_t)r * classes;
        soft(ps + at, student + at, classes, T);
        soft(pt + at, teacher + at, classes, T);
        if (labels && labels[r] == QB_IGNORE_INDEX) continue;
        for (int j = 0; j < classes; j++) {
            double q = pt[at + j], p = ps[at + j];
            /* 0 log 0 = 0; a student probability that underflows to 0
             * under a teacher's mass is floored rather than made infinite */
            if (q > 0) total += q * (log(q) - log(p > 1e-30 ? p : 1e-30));
        }
        used++;
    }
    *n_used = used;
    return used ? (float)((double)T * T * total / used) : 0.0f;
}

void qb_op_kd_backward(float *dstudent, const float *ps, const float *pt, const int32_t *labels, int rows,
                       int classes, float T, int n_used) {
    if (!n_used) return;
    float k = T / (float)n_used;
    for (int r = 0; r < rows; r++) {
        if (labels && labels[r] == QB_IGNORE_INDEX) continue;
        size_t at = (size_t)r * classes;
        for (int j = 0; j < classes; j++) dstudent[at + j] += k * (ps[at + j] - pt[at + j]);
    }
}

float qb_op_mse_forward(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return n ? (float)(s / (double)n) : 0.0f;
}

void qb_op_mse_backward(float *da, const float *a, const float *b, size_t n) {
    if (!n) return;
    float k = 2.0f / (float)n;
    for (size_t i = 0; i < n; i++) da[i] += k * (a[i] - b[i]);
}
