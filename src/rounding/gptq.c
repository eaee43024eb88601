/* GPTQ rounding (gptq.h).
 *
 * The feedback runs through the unit upper triangular factor of H instead
 * of an inverse.  With H = M D M^T (M unit upper triangular, D diagonal),
 * the layer's loss for one row is sum_j D_j (e_j + sum_{k<j} e_k M[k][j])^2
 * with e = w - q, so the column-by-column rounding of GPTQ is the nearest
 * level to
 *     w_j + sum_{k<j} (w_k - q_k) M[k][j],
 * the original weights' errors fed forward (Chen et al., "The Geometry of
 * LLM Quantization: GPTQ as Babai's Nearest Plane Algorithm", 2025).  It is
 * the paper's rounding exactly (its U = chol(H^-1) is D^-1/2 M^-1), but M
 * is one Cholesky factorisation away: M[k][j] = R[k][j] / R[j][j] where
 * H = R R^T, R upper triangular, is P L P with P H P = L L^T (P reverses
 * the order).  One K^3/6 pass instead of three (factor, inverse, factor
 * again), and at K = 3072 that pass is most of the time.  tests/test_gptq.c
 * holds the codes to the paper's algorithm with an explicit inverse.
 *
 * Columns go in blocks (the paper's lazy batch updates): a block's targets
 * are its weights plus the feedback of every column before it, one FP32
 * GEMM; inside the block, each row runs its columns one by one. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "rounding/gptq.h"

#define QB_GPTQ_BLOCK 128
#define QB_GPTQ_PANEL 64  /* Cholesky panel width */
#define QB_GPTQ_CHUNK 64  /* columns of a trailing update kept in L1 with their panel share */
#define QB_GPTQ_RETRIES 3 /* 10x the damping each time */

qb_gptq_params qb_gptq_default_params(void) { return (qb_gptq_params){.damp = 0.01, .act_order = true, .block = 0}; }

typedef struct {
    double d;
    int i;
} qb_gptq_key;

/* Decreasing diagonal, ties by index, so the order is the same everywhere. */
static int qb_gptq_key_cmp(const void *pa, const void *pb) {
    const qb_gptq_key *a = pa, *b = pb;
    if (a->d != b->d) return a->d > b->d ? -1 : 1;
    return a->i - b->i;
}

/* order[j]: the original column quantized j-th. */
static bool qb_gptq_order(const double *h, int K, bool act_order, int *order) {
    for (int j = 0; j < K; j++) order[j] = j;
    if (!act_order) return true;
    qb_gptq_key *k = malloc((size_t)K * sizeof *k);
    if (!k) return false;
    for (int j = 0; j < K; j++) k[j] = (qb_gptq_key){h[(size_t)j * K + j], j};
    qsort(k, (size_t)K, sizeof *k, qb_gptq_key_cmp);
    for (int j = 0; j < K; j++) order[j] = k[j].i;
    free(k);
    return true;
}

/* h <- h[q][q] in place (rows by cycles, then each row through tmp);
 * done: K zeros. */
static void qb_gptq_permute(double *h, int K, const int *q, double *tmp, unsigned char *done) {
    size_t row = (size_t)K * sizeof *h;
    for (int s = 0; s < K; s++) {
        if (done[s]) continue;
        memcpy(tmp, h + (size_t)s * K, row);
        int i = s;
        for (;;) {
            done[i] = 1;
            if (q[i] == s) break;
            memcpy(h + (size_t)i * K, h + (size_t)q[i] * K, row);
            i = q[i];
        }
        memcpy(h + (size_t)i * K, tmp, row);
    }
    for (int i = 0; i < K; i++) {
        double *r = h + (size_t)i * K;
        for (int j = 0; j < K; j++) tmp[j] = r[q[j]];
        memcpy(r, tmp, row);
    }
}

/* Columns [k0, k1) of the lower factor, every update from columns before
 * k0 already applied: the diagonal block, then the rows below it. */
typedef struct {
    double *a, *pt;
    int n, k0, k1, chunks;
    size_t per_chunk;
} qb_gptq_chol_job;

/* Rows [i0, i1) of the panel below its diagonal block. */
static void qb_gptq_chol_below_at(void *ctx, long i0, long i1, int thread) {
    const qb_gptq_chol_job *c = ctx;
    for (long i = c->k1 + i0; i < c->k1 + i1; i++) {
        double *ri = c->a + (size_t)i * c->n;
        for (int j = c->k0; j < c->k1; j++) {
            const double *rj = c->a + (size_t)j * c->n;
            double x = ri[j];
            for (int t = c->k0; t < j; t++) x -= ri[t] * rj[t];
            ri[j] = x / rj[j];
        }
    }
}

static bool qb_gptq_chol_panel(qb_pool *pool, double *a, int n, int k0, int k1) {
    for (int j = k0; j < k1; j++) {
        double *rj = a + (size_t)j * n, d = rj[j];
        for (int t = k0; t < j; t++) d -= rj[t] * rj[t];
        if (!(d > 0) || !isfinite(d)) return false;
        rj[j] = sqrt(d);
        for (int i = j + 1; i < k1; i++) {
            double *ri = a + (size_t)i * n, x = ri[j];
            for (int t = k0; t < j; t++) x -= ri[t] * rj[t];
            ri[j] = x / rj[j];
        }
    }
    qb_gptq_chol_job c = {.a = a, .n = n, .k0 = k0, .k1 = k1};
    qb_pool_for(pool, n - k1, 1, qb_gptq_chol_below_at, &c);
    return true;
}

/* One row's share of the trailing update, c[j] -= sum_t p[t] pt[t][j] for
 * j < len: four panel columns per pass over c, so c is loaded and stored a
 * quarter as often. */
static void qb_gptq_chol_row(double *c, int len, const double *p, int nb, const double *pt, int ldp) {
    int t = 0;
    for (; t + 4 <= nb; t += 4) {
        const double *p0 = pt + (size_t)t * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
        double a0 = p[t], a1 = p[t + 1], a2 = p[t + 2], a3 = p[t + 3];
#pragma omp simd
        for (int j = 0; j < len; j++) c[j] -= a0 * p0[j] + a1 * p1[j] + a2 * p2[j] + a3 * p3[j];
    }
    for (; t < nb; t++) {
        const double *p0 = pt + (size_t)t * ldp;
        double a0 = p[t];
#pragma omp simd
        for (int j = 0; j < len; j++) c[j] -= a0 * p0[j];
    }
}

/* The lower triangle of rows and columns >= k1 minus the panel's
 * contribution (a symmetric rank-(k1 - k0) update), by chunks of
 * QB_GPTQ_CHUNK columns: a chunk's share of the panel, transposed into pt
 * chunk after chunk, stays in L1 while every row below takes its update.
 * Streaming the whole panel from L2 for each row ran at half the speed. */
static void qb_gptq_chol_transpose(void *ctx, long j0, long j1, int thread) {
    const qb_gptq_chol_job *c = ctx;
    int nb = c->k1 - c->k0;
    for (long j = c->k1 + j0; j < c->k1 + j1; j++) {
        double *dst = c->pt + (size_t)((j - c->k1) / QB_GPTQ_CHUNK) * c->per_chunk + (j - c->k1) % QB_GPTQ_CHUNK;
        for (int t = 0; t < nb; t++) dst[(size_t)t * QB_GPTQ_CHUNK] = c->a[(size_t)j * c->n + c->k0 + t];
    }
}

static void qb_gptq_chol_chunk(void *ctx, int ch, int thread) {
    const qb_gptq_chol_job *c = ctx;
    int n = c->n, j0 = c->k1 + ch * QB_GPTQ_CHUNK, w = n - j0 < QB_GPTQ_CHUNK ? n - j0 : QB_GPTQ_CHUNK;
    for (int i = j0; i < n; i++) {
        double *ri = c->a + (size_t)i * n;
        int len = i - j0 + 1 < w ? i - j0 + 1 : w;
        qb_gptq_chol_row(ri + j0, len, ri + c->k0, c->k1 - c->k0, c->pt + (size_t)ch * c->per_chunk, QB_GPTQ_CHUNK);
    }
}

static void qb_gptq_chol_update(qb_pool *pool, double *a, int n, int k0, int k1, double *pt) {
    qb_gptq_chol_job c = {.a = a, .pt = pt, .n = n, .k0 = k0, .k1 = k1,
                          .chunks = (n - k1 + QB_GPTQ_CHUNK - 1) / QB_GPTQ_CHUNK,
                          .per_chunk = (size_t)(k1 - k0) * QB_GPTQ_CHUNK};
    qb_pool_for(pool, n - k1, 1, qb_gptq_chol_transpose, &c);
    /* the first chunks have the most rows below them: claimed one by one, they end balanced */
    qb_pool_run(pool, c.chunks, qb_gptq_chol_chunk, &c);
}

/* Lower Cholesky factor of a [n, n] in place, right-looking by panels;
 * only the lower triangle is read or written.  pt: QB_GPTQ_PANEL *
 * (n + QB_GPTQ_CHUNK) doubles. */
static bool qb_gptq_cholesky(qb_pool *pool, double *a, int n, double *pt) {
    for (int k0 = 0; k0 < n; k0 += QB_GPTQ_PANEL) {
        int k1 = k0 + QB_GPTQ_PANEL < n ? k0 + QB_GPTQ_PANEL : n;
        if (!qb_gptq_chol_panel(pool, a, n, k0, k1)) return false;
        if (k1 < n) qb_gptq_chol_update(pool, a, n, k0, k1, pt);
    }
    return true;
}

/* Factors a + lambda I, lambda = damp times the mean of diag (a's
 * diagonal, kept apart), then 10x lambda (at least 1e-3 of the mean) after
 * each failure: rounding can leave a rank-deficient H with a negative
 * pivot that more damping removes.  The strict upper triangle is never
 * written, so it restores the lower one for a retry. */
static bool qb_gptq_factor(qb_pool *pool, double *a, int n, const double *diag, double damp, double *pt) {
    double mean = 0;
    for (int i = 0; i < n; i++) mean += diag[i] / n;
    double lambda = damp * mean;
    for (int attempt = 0; attempt <= QB_GPTQ_RETRIES; attempt++, lambda = fmax(10 * lambda, 1e-3 * mean)) {
        if (attempt)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++) a[(size_t)i * n + j] = a[(size_t)j * n + i];
        for (int i = 0; i < n; i++) a[(size_t)i * n + i] = diag[i] + lambda;
        if (qb_gptq_cholesky(pool, a, n, pt)) return true;
    }
    return false;
}

/* m[k][j] (k < j, quantization order) = R[k][j] / R[j][j], R the reversed
 * lower factor l: R[k][j] = l[n-1-k][n-1-j].  Entries below 1e-20, far
 * too small to move a weight, become 0: where correlation decays with
 * distance they do so geometrically, and the denormal floats and sums
 * they made slowed the GEMM 19x (K = 3072, H of AR(1) inputs). */
typedef struct {
    const double *l;
    int n;
    float *m;
} qb_gptq_feedback_job;

static void qb_gptq_feedback_rows(void *ctx, int task, int thread) {
    const qb_gptq_feedback_job *f = ctx;
    int n = f->n;
    for (int k = task * 16; k < n && k < task * 16 + 16; k++) {
        const double *lk = f->l + (size_t)(n - 1 - k) * n;
        float *mk = f->m + (size_t)k * n;
        for (int j = k + 1; j < n; j++) {
            int c = n - 1 - j;
            double v = lk[c] / f->l[(size_t)c * n + c];
            mk[j] = fabs(v) >= 1e-20 ? (float)v : 0.0f;
        }
    }
}

static void qb_gptq_feedback(qb_pool *pool, const double *l, int n, float *m) {
    qb_gptq_feedback_job f = {l, n, m};
    qb_pool_run(pool, (n + 15) / 16, qb_gptq_feedback_rows, &f);
}

/* What one row needs to re-round its weights on RTN's grids. */
typedef struct {
    int K, G, gs, top;
    const uint16_t *scale, *codebook; /* the row's */
    const uint8_t *zero;
} qb_gptq_grid;

static qb_gptq_grid qb_gptq_row_grid(const qb_lowbit_spec *s, int K, int r, const uint16_t *scale, const uint8_t *zero,
                                     const uint16_t *codebook) {
    int G = qb_lowbit_groups(s, K), L = qb_lowbit_levels(s);
    qb_gptq_grid g = {K, G, G == 1 ? K : s->group, L - 1, NULL, NULL, NULL};
    if (s->kind == QB_LOWBIT_KMEANS) g.codebook = codebook + (size_t)r * L;
    else g.scale = scale + (size_t)r * G, g.zero = zero + (size_t)r * G;
    return g;
}

/* The code of v in original column col and the value it decodes to; grid
 * codes as lowbit.c's code_of (x times the float inverse, half to even),
 * so without feedback they are RTN's. */
static int qb_gptq_code(const qb_gptq_grid *g, int col, float v, float *dec) {
    if (g->codebook) {
        int best = 0;
        float bd = INFINITY;
        for (int c = 0; c <= g->top; c++) {
            float d = fabsf(v - qb_f16_to_f32(g->codebook[c]));
            if (d < bd) bd = d, best = c;
        }
        *dec = qb_f16_to_f32(g->codebook[best]);
        return best;
    }
    int grp = col / g->gs, z = g->zero[grp];
    float s = qb_f16_to_f32(g->scale[grp]);
    float q = nearbyintf(v * (1.0f / s)) + (float)z;
    int c = q > (float)g->top ? g->top : q >= 0 ? (int)q : 0;
    *dec = s * (float)(c - z);
    return c;
}

/* Columns [j0, j0 + nb) of one row: t holds their targets (weights plus
 * the feedback of the columns before j0), w the row's weights in
 * quantization order, replaced by their errors w - q as they are rounded. */
static void qb_gptq_row_block(const qb_gptq_grid *g, const int *order, const float *m, int j0, int nb, float *t,
                              float *w, uint8_t *codes) {
    int K = g->K;
    for (int j = 0; j < nb; j++) {
        float dec;
        codes[order[j0 + j]] = (uint8_t)qb_gptq_code(g, order[j0 + j], t[j], &dec);
        float e = w[j0 + j] - dec;
        w[j0 + j] = e;
        const float *mj = m + (size_t)(j0 + j) * K + j0;
#pragma omp simd
        for (int u = j + 1; u < nb; u++) t[u] += e * mj[u];
    }
}

/* Everything one call allocates, freed together. */
typedef struct {
    int *order, *q;
    double *diag, *tmp, *pt;
    unsigned char *done;
    float *m, *buf, *t, *pack;
} qb_gptq_work;

static void qb_gptq_work_free(qb_gptq_work *wk) {
    free(wk->order), free(wk->q), free(wk->diag), free(wk->tmp), free(wk->pt), free(wk->done);
    free(wk->m), free(wk->buf), free(wk->t), free(wk->pack);
}

static bool qb_gptq_work_alloc(qb_gptq_work *wk, int N, int K, int block, int threads) {
    size_t k = (size_t)K, pack = (size_t)threads * qb_gemm_f32_pack_floats() * sizeof(float);
    *wk = (qb_gptq_work){
        .order = malloc(k * sizeof(int)),
        .q = malloc(k * sizeof(int)),
        .diag = malloc(k * sizeof(double)),
        .tmp = malloc(k * sizeof(double)),
        .pt = malloc((k + QB_GPTQ_CHUNK) * QB_GPTQ_PANEL * sizeof(double)),
        .done = calloc(k, 1),
        .m = malloc(k * k * sizeof(float)),
        .buf = malloc((size_t)N * k * sizeof(float)),
        .t = malloc((size_t)N * (size_t)block * sizeof(float)),
        .pack = aligned_alloc(64, (pack + 63) / 64 * 64),
    };
    return wk->order && wk->q && wk->diag && wk->tmp && wk->pt && wk->done && wk->m && wk->buf && wk->t && wk->pack;
}

/* Dead columns (no input ever reached them) get diagonal 1; how many. */
static int qb_gptq_dead(double *h, int K) {
    int dead = 0;
    for (int j = 0; j < K; j++)
        if (h[(size_t)j * K + j] == 0) h[(size_t)j * K + j] = 1, dead++;
    return dead;
}

/* H permuted into reversed quantization order and factored, m filled;
 * NULL, or why not. */
static const char *qb_gptq_prepare(double *h, int K, const qb_gptq_params *p, qb_gptq_work *wk, int *n_dead) {
    *n_dead = qb_gptq_dead(h, K);
    if (!qb_gptq_order(h, K, p->act_order, wk->order)) return "out of memory";
    for (int i = 0; i < K; i++) wk->q[i] = wk->order[K - 1 - i];
    qb_gptq_permute(h, K, wk->q, wk->tmp, wk->done);
    for (int i = 0; i < K; i++) wk->diag[i] = h[(size_t)i * K + i];
    if (!qb_gptq_factor(p->pool, h, K, wk->diag, p->damp, wk->pt))
        return "Hessian not positive definite after damping";
    qb_gptq_feedback(p->pool, h, K, wk->m);
    return NULL;
}

/* Targets of columns [j0, j0 + nb): weights plus the feedback of every
 * column before j0, T = W[:, j0:] + E[:, :j0] M[:j0, j0:], one GEMM. */
static void qb_gptq_targets(const qb_kernels *kern, qb_pool *pool, const qb_gptq_work *wk, int N, int K, int j0,
                            int nb) {
    if (j0 == 0) {
        for (int r = 0; r < N; r++) memcpy(wk->t + (size_t)r * nb, wk->buf + (size_t)r * K, (size_t)nb * sizeof(float));
        return;
    }
    qb_gemm_f32_args g = {
        .M = N, .N = nb, .K = j0,
        .A = wk->buf, .lda = K,
        .B = wk->m + j0, .ldb = K,
        .C = wk->t, .ldc = nb,
        .residual = wk->buf + j0, .ldr = K,
        .alpha = 1.0f, .act = QB_ACT_NONE,
    };
    qb_gemm_f32(kern, &g, pool, wk->pack);
}

/* Every row's codes, block by block in quantization order; wk->buf ends
 * holding the errors w - q.  The GEMM is the CPU's best (QBERT_ISA is the
 * model's choice, not this one's): another ISA rounds the feedback a
 * little differently, which can flip a code that sat on a tie. */
typedef struct {
    const float *w;
    int N, K, j0, nb;
    const qb_lowbit_spec *s;
    const qb_gptq_work *wk;
    uint8_t *codes;
    const uint16_t *scale, *codebook;
    const uint8_t *zero;
    int parts; /* of the error sums, one per thread, as OpenMP's static schedule cut them */
    double err[QB_POOL_MAX_THREADS], signal[QB_POOL_MAX_THREADS];
} qb_gptq_rows_job;

static void qb_gptq_gather(void *ctx, long r0, long r1, int thread) {
    const qb_gptq_rows_job *j = ctx;
    size_t K = (size_t)j->K;
    for (long r = r0; r < r1; r++)
        for (size_t c = 0; c < K; c++) j->wk->buf[r * K + c] = j->w[r * K + (size_t)j->wk->order[c]];
}

static void qb_gptq_round(void *ctx, long r0, long r1, int thread) {
    const qb_gptq_rows_job *j = ctx;
    size_t K = (size_t)j->K;
    for (long r = r0; r < r1; r++) {
        qb_gptq_grid g = qb_gptq_row_grid(j->s, j->K, (int)r, j->scale, j->zero, j->codebook);
        qb_gptq_row_block(&g, j->wk->order, j->wk->m, j->j0, j->nb, j->wk->t + (size_t)r * j->nb, j->wk->buf + r * K,
                          j->codes + r * K);
    }
}

static void qb_gptq_run(qb_pool *pool, qb_gptq_rows_job *j, int block) {
    qb_kernels kern;
    qb_kernels_select(qb_cpu_best_isa(), &kern);
    qb_pool_for(pool, j->N, 1, qb_gptq_gather, j);
    for (j->j0 = 0; j->j0 < j->K; j->j0 += block) {
        j->nb = j->K - j->j0 < block ? j->K - j->j0 : block;
        qb_gptq_targets(&kern, pool, j->wk, j->N, j->K, j->j0, j->nb);
        qb_pool_for(pool, j->N, 1, qb_gptq_round, j);
    }
}

/* err and signal of run `part` of the rows, as qb_lowbit_quantize
 * measures them; the runs' sums are added in run order. */
static void qb_gptq_error_run(void *ctx, int part, int thread) {
    qb_gptq_rows_job *j = ctx;
    long r0, r1;
    qb_pool_range(j->N, part, j->parts, &r0, &r1);
    double err = 0, signal = 0;
    for (long r = r0; r < r1; r++) {
        qb_gptq_grid g = qb_gptq_row_grid(j->s, j->K, (int)r, j->scale, j->zero, j->codebook);
        for (int c = 0; c < j->K; c++) {
            double x = j->w[(size_t)r * j->K + c], v;
            int code = j->codes[(size_t)r * j->K + c];
            if (g.codebook) v = qb_f16_to_f32(g.codebook[code]);
            else v = (double)qb_f16_to_f32(g.scale[c / g.gs]) * (code - g.zero[c / g.gs]);
            err += (x - v) * (x - v), signal += x * x;
        }
    }
    j->err[part] = err, j->signal[part] = signal;
}

bool qb_gptq_quantize(const float *w, int N, int K, double *H, const qb_lowbit_spec *s, const qb_gptq_params *p,
                      uint8_t *codes, uint16_t *scale, uint8_t *zero, uint16_t *codebook, qb_lowbit_error *e,
                      int *n_dead, const char **why) {
    qb_gptq_params def = qb_gptq_default_params();
    if (!p) p = &def;
    int block = p->block > 0 ? p->block : QB_GPTQ_BLOCK, dead = 0;
    const char *bad = NULL;
    qb_gptq_work wk;
    if (!qb_gptq_work_alloc(&wk, N, K, block, qb_pool_threads(p->pool)) ||
        !qb_lowbit_quantize(w, N, K, s, codes, scale, zero, codebook, e, p->pool))
        bad = "out of memory";
    if (!bad) bad = qb_gptq_prepare(H, K, p, &wk, &dead);
    if (!bad) {
        qb_gptq_rows_job j = {.w = w, .N = N, .K = K, .s = s, .wk = &wk, .codes = codes, .scale = scale,
                              .codebook = codebook, .zero = zero, .parts = qb_pool_threads(p->pool)};
        qb_gptq_run(p->pool, &j, block);
        qb_pool_run(p->pool, j.parts, qb_gptq_error_run, &j);
        *e = (qb_lowbit_error){.grid_err = e->grid_err};
        for (int t = 0; t < j.parts; t++) e->err += j.err[t], e->signal += j.signal[t];
    }
    if (n_dead) *n_dead = dead;
    if (why) *why = bad;
    qb_gptq_work_free(&wk);
    return !bad;
}
