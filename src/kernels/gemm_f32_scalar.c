/* The reference GEMM: one float dot product per output, then the epilogue
 * in the documented order.  It defines the semantics every SIMD path is
 * tested against, so it stays plain. */
#include "kernels/kernels_impl.h"

static float qb_gemm_ref_b(const qb_gemm_f32_args *g, int k, int n) {
    return g->b_trans ? g->B[(size_t)n * g->ldb + k] : g->B[(size_t)k * g->ldb + n];
}

static float qb_gemm_ref_dot(const qb_gemm_f32_args *g, int m, int n) {
    const float *a = g->A + (size_t)m * g->lda;
    float acc = 0.0f;
    for (int k = 0; k < g->K; k++) acc += a[k] * qb_gemm_ref_b(g, k, n);
    return acc;
}

void qb_gemm_f32_scalar(const qb_gemm_f32_args *g, float *pack) {
    (void)pack;
    for (int m = 0; m < g->M; m++) {
        for (int n = 0; n < g->N; n++) {
            float v = g->alpha * qb_gemm_ref_dot(g, m, n);
            if (g->bias) v += g->bias[n];
            v = qb_act_ref(g->act, v);
            if (g->residual) v += g->residual[(size_t)m * g->ldr + n];
            g->C[(size_t)m * g->ldc + n] = v;
        }
    }
}
