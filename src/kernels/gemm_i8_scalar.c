/* The scalar integer kernels: the definition every SIMD path must
 * reproduce (integer sums exactly, the epilogue up to the activation's
 * approximation). */
#include <math.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/kernels_impl.h"

static int32_t qb_i8_dot_scalar(const uint8_t *a, const int8_t *w, int K) {
    int32_t acc = 0;
    for (int k = 0; k < K; k++) acc += (int32_t)a[k] * (int32_t)w[k];
    return acc;
}

static void qb_gemm_i8_scalar(const qb_gemm_i8_args *g, int n0, int n1) {
    const qb_i8_weights *W = g->W;
    const int8_t *w = W->packed;
    for (int m = 0; m < g->M; m++) {
        const uint8_t *a = g->A + (size_t)m * g->lda;
        for (int n = n0; n < n1; n++) {
            int32_t acc = qb_i8_dot_scalar(a, w + (size_t)n * g->K, g->K);
            float v = qb_i8_dequant(acc, g->a_zero[m], W->colsum[n], g->a_scale[m], W->scale[n],
                                    g->bias ? g->bias[n] : 0.0f);
            v = qb_act_ref(g->act, v);
            if (g->residual) v += g->residual[(size_t)m * g->ldr + n];
            g->C[(size_t)m * g->ldc + n] = v;
        }
    }
}

static void qb_quantize_rows_fixed_scalar(const float *x, int M, int K, int ldx, float scale, int32_t zero,
                                          uint8_t *q, int ldq) {
    for (int m = 0; m < M; m++) {
        const float *row = x + (size_t)m * ldx;
        uint8_t *out = q + (size_t)m * ldq;
        float inv = qb_i8_inverse(scale);
        for (int k = 0; k < K; k++) out[k] = qb_i8_quantize_one(row[k], inv, zero);
    }
}

/* The range starts at [0, 0] so it always contains zero, which then
 * quantizes exactly to the zero point (padding and ReLU zeros stay exact).
 * Comparisons written as in _mm*_max_ps(x, acc): a NaN is skipped. */
static void qb_quantize_rows_scalar(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale,
                                    int32_t *zero) {
    for (int m = 0; m < M; m++) {
        const float *row = x + (size_t)m * ldx;
        float mn = 0.0f, mx = 0.0f;
        for (int k = 0; k < K; k++) {
            mx = row[k] > mx ? row[k] : mx;
            mn = row[k] < mn ? row[k] : mn;
        }
        qb_i8_row_params(mn, mx, &scale[m], &zero[m]);
        qb_quantize_rows_fixed_scalar(row, 1, K, ldx, scale[m], zero[m], q + (size_t)m * ldq, ldq);
    }
}

void qb_kernels_i8_init_scalar(qb_kernels_i8 *k) {
    k->isa = QB_ISA_SCALAR;
    k->name = "scalar";
    k->amx = false;
    k->gemm = qb_gemm_i8_scalar;
    k->quantize_rows = qb_quantize_rows_scalar;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_scalar;
}
