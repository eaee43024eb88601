/* The scalar W.A8 kernel: the definition (kernels_lowbit.h) written out,
 * which every SIMD path reproduces bit for bit up to the activation's
 * approximation. */
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/kernels_lowbit.h"

#define QB_LB_RUN 256 /* codes decoded at a time */

/* sum_{k in group g} A[k] * (code[n,k] - zero[n,g]), exact in int32. */
static int32_t qb_lowbit_group_dot(const qb_lowbit_weights *W, const uint8_t *a, int n, int g) {
    int8_t w[QB_LB_RUN];
    int k0 = g * W->group, k1 = k0 + W->group < W->K ? k0 + W->group : W->K;
    int32_t dot = 0;
    for (int k = k0; k < k1; k += QB_LB_RUN) {
        int len = k1 - k < QB_LB_RUN ? k1 - k : QB_LB_RUN;
        qb_lowbit_decode_s8(W, n, k, len, len, w);
        for (int i = 0; i < len; i++) dot += (int32_t)a[k + i] * w[i];
    }
    return dot;
}

void qb_lowbit_store_ref(const qb_lowbit_a8_args *g, int m, int n, float acc) {
    float v = fmaf(-(float)g->a_zero[m], g->W->zsum[n], acc);
    v = qb_act_ref(g->act, fmaf(v, g->a_scale[m], g->bias ? g->bias[n] : 0.0f));
    if (g->residual) v += g->residual[(size_t)m * g->ldr + n];
    g->C[(size_t)m * g->ldc + n] = v;
}

static void qb_lowbit_gemm_a8_scalar(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    const qb_lowbit_weights *W = g->W;
    for (int m = 0; m < g->M; m++) {
        const uint8_t *a = g->A + (size_t)m * g->lda;
        for (int n = n0; n < n1; n++) {
            float acc = 0.0f;
            for (int gi = 0; gi < W->G; gi++)
                acc = fmaf(W->scale[(size_t)n * W->G + gi], (float)qb_lowbit_group_dot(W, a, n, gi), acc);
            qb_lowbit_store_ref(g, m, n, acc);
        }
    }
}

void qb_kernels_lowbit_init_scalar(qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = QB_ISA_SCALAR, .gemm_a8 = qb_lowbit_gemm_a8_scalar, .dequantize = qb_lowbit_dequantize};
}
