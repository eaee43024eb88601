#include "train/fake_quant.h"

#include <math.h>

#include "kernels/gemm_i8_impl.h"
#include "rounding/affine.h"

static const qb_qscheme u8_asymmetric = {.is_signed = false, .symmetric = false, .reduce_range = false};

static void set_scale_from_range(qb_fq_site *s, float lo, float hi) {
    qb_qparams p = qb_qparams_from_range(&u8_asymmetric, lo, hi);
    s->scale = p.scale;
    s->zero = p.zero_point;
}

void qb_fq_observe(qb_fq_site *s, const float *x, size_t n) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
    }
    s->batch_lo = s->seen ? fminf(s->batch_lo, lo) : lo;
    s->batch_hi = s->seen ? fmaxf(s->batch_hi, hi) : hi;
    s->seen = true;
}

void qb_fq_site_average(qb_fq_site *s, int k) {
    if (!s->seen) return;
    s->seen = false;
    s->lo += (s->batch_lo - s->lo) / (float)k;
    s->hi += (s->batch_hi - s->hi) / (float)k;
}

void qb_fq_site_start(qb_fq_site *s) { set_scale_from_range(s, s->lo, s->hi); }

/* Inputs are cut into one run per thread (a single run up to 65536), as
 * OpenMP's static schedule cut them, and each run's partial results are
 * combined in run order, so a sum does not depend on timing. */
typedef struct {
    const qb_fq_site *s;
    float *out;
    const float *x, *dxq;
    size_t n;
    int parts;
    float lo[QB_POOL_MAX_THREADS], hi[QB_POOL_MAX_THREADS];
    double gs[QB_POOL_MAX_THREADS];
} fq_job;

static int fq_parts(qb_pool *pool, size_t n) { return n > 65536 ? qb_pool_threads(pool) : 1; }

static void fq_run(const fq_job *j, int p, size_t *begin, size_t *end) {
    long b, e;
    qb_pool_range((long)j->n, p, j->parts, &b, &e);
    *begin = (size_t)b, *end = (size_t)e;
}

static void fq_forward_run(void *ctx, int p, int thread) {
    fq_job *j = ctx;
    float lo = INFINITY, hi = -INFINITY, scale = j->s->scale, inv = qb_i8_inverse(scale);
    int32_t zero = j->s->zero;
    size_t begin, end;
    fq_run(j, p, &begin, &end);
    for (size_t i = begin; i < end; i++) {
        lo = fminf(lo, j->x[i]);
        hi = fmaxf(hi, j->x[i]);
        j->out[i] = scale * (float)((int32_t)qb_i8_quantize_one(j->x[i], inv, zero) - zero);
    }
    j->lo[p] = lo;
    j->hi[p] = hi;
}

void qb_fq_input_forward(qb_fq_site *s, float *xq, const float *x, size_t n, qb_pool *pool) {
    fq_job j = {.s = s, .out = xq, .x = x, .n = n, .parts = fq_parts(pool, n)};
    qb_pool_run(pool, j.parts, fq_forward_run, &j);
    float lo = INFINITY, hi = -INFINITY;
    for (int p = 0; p < j.parts; p++) {
        lo = fminf(lo, j.lo[p]);
        hi = fmaxf(hi, j.hi[p]);
    }
    s->batch_lo = s->seen ? fminf(s->batch_lo, lo) : lo;
    s->batch_hi = s->seen ? fmaxf(s->batch_hi, hi) : hi;
    s->seen = true;
}

static void fq_backward_run(void *ctx, int p, int thread) {
    fq_job *j = ctx;
    const float *x = j->x, *dxq = j->dxq;
    float *dx = j->out, inv = qb_i8_inverse(j->s->scale);
    int32_t zero = j->s->zero;
    double gs = 0;
    size_t begin, end;
    fq_run(j, p, &begin, &end);
    for (size_t i = begin; i < end; i++) {
        int32_t q = qb_i8_grid_index(x[i], inv, zero);
        if (q < 0) {
            gs += (double)dxq[i] * (double)(0 - zero);
        } else if (q > 255) {
            gs += (double)dxq[i] * (double)(255 - zero);
        } else {
            dx[i] += dxq[i];
            /* d(scale * (round(x / scale) + zero - zero)) / d scale, STE through round */
            gs += (double)dxq[i] * (double)((float)(q - zero) - x[i] * inv);
        }
    }
    j->gs[p] = gs;
}

void qb_fq_input_backward(qb_fq_site *s, float *dx, const float *dxq, const float *x, size_t n, bool lsq,
                          qb_pool *pool) {
    fq_job j = {.s = s, .out = dx, .x = x, .dxq = dxq, .n = n, .parts = fq_parts(pool, n)};
    qb_pool_run(pool, j.parts, fq_backward_run, &j);
    double gs = 0;
    for (int p = 0; p < j.parts; p++) gs += j.gs[p];
    /* LSQ's gradient scale 1 / sqrt(n * Qp) keeps the scale's step in
     * proportion to the weights' (Esser et al., section 2.2). */
    if (lsq) s->grad += gs / sqrt((double)n * 255.0);
}

void qb_fq_site_update(qb_fq_site *s, qb_fq_observer obs, float momentum) {
    if (!s->seen) return;
    s->seen = false;
    if (obs == QB_FQ_LSQ) return;
    s->lo += momentum * (s->batch_lo - s->lo);
    s->hi += momentum * (s->batch_hi - s->hi);
    set_scale_from_range(s, s->lo, s->hi);
}

void qb_fq_site_lsq_step(qb_fq_site *s, float lr, float beta1, float beta2, float eps, long step) {
    float g = (float)s->grad;
    s->grad = 0;
    s->m = beta1 * s->m + (1.0f - beta1) * g;
    s->v = beta2 * s->v + (1.0f - beta2) * g * g;
    float mhat = s->m / (1.0f - powf(beta1, (float)step)), vhat = s->v / (1.0f - powf(beta2, (float)step));
    float next = s->scale - lr * mhat / (sqrtf(vhat) + eps);
    /* A scale at or below 0 has no grid; keep a tenth of the old one instead. */
    s->scale = next > 0.1f * s->scale ? next : 0.1f * s->scale;
}

void qb_fq_weight(const float *w, int rows, int cols, int bits, float *wq, int8_t *q, float *scale) {
    qb_quantize_weight_s8(w, rows, cols, bits, true, q, scale);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            wq[i] = scale[r] * (float)q[i];
        }
}

bool qb_fq_weight_lowbit(const float *w, int rows, int cols, const qb_lowbit_spec *s, float *wq, uint8_t *codes,
                         uint16_t *scale, uint8_t *zero) {
    qb_lowbit_error e;
    if (!qb_lowbit_quantize(w, rows, cols, s, codes, scale, zero, NULL, &e, NULL)) return false;
    qb_lowbit_decode(codes, rows, cols, s, scale, zero, NULL, wq);
    return true;
}
