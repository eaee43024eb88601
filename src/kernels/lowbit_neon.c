/* The W.A8 low-bit GEMM on ARMv8.0 NEON (lowbit_dotprod.c serves the later
 * levels): for each column a run of one group's codes is decoded to s8
 * (code - zero) once and then multiplied against up to QB_LOWBIT_MC rows of
 * A with widening multiply-adds (exact in int32); groups fold in float in
 * the order kernels_lowbit.h defines, so results equal the scalar kernel's
 * bit for bit. */
#include <arm_neon.h>
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/kernels_lowbit.h"

#define QB_LB_NEON_RUN 256 /* codes decoded at a time */

/* sum a[k] * w[k] over n, u8 x s8, exact in int32 (n <= QB_LB_NEON_RUN). */
static int32_t qb_lowbit_dot_neon(const uint8_t *a, const int8_t *w, int n) {
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = acc0;
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        int16x8_t av = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a + k)));
        int16x8_t wv = vmovl_s8(vld1_s8(w + k));
        acc0 = vmlal_s16(acc0, vget_low_s16(av), vget_low_s16(wv));
        acc1 = vmlal_high_s16(acc1, av, wv);
    }
    int32_t dot = vaddvq_s32(vaddq_s32(acc0, acc1));
    for (; k < n; k++) dot += (int32_t)a[k] * w[k];
    return dot;
}

/* Rows [m0, m0 + rows) x column n into fsum (float sums over the groups). */
static void qb_lowbit_column_neon(const qb_lowbit_a8_args *g, int m0, int rows, int n, float *fsum) {
    const qb_lowbit_weights *W = g->W;
    int8_t w[QB_LB_NEON_RUN];
    int32_t isum[QB_LOWBIT_MC];
    for (int i = 0; i < rows; i++) fsum[i] = 0.0f;
    for (int gi = 0; gi < W->G; gi++) {
        int k0 = gi * W->group, k1 = k0 + W->group < W->K ? k0 + W->group : W->K;
        for (int i = 0; i < rows; i++) isum[i] = 0;
        for (int k = k0; k < k1; k += QB_LB_NEON_RUN) {
            int len = k1 - k < QB_LB_NEON_RUN ? k1 - k : QB_LB_NEON_RUN;
            qb_lowbit_decode_s8(W, n, k, len, len, w);
            for (int i = 0; i < rows; i++) isum[i] += qb_lowbit_dot_neon(g->A + (size_t)(m0 + i) * g->lda + k, w, len);
        }
        float s = W->scale[(size_t)n * W->G + gi];
        for (int i = 0; i < rows; i++) fsum[i] = fmaf(s, (float)isum[i], fsum[i]);
    }
}

static void qb_lowbit_gemm_a8_neon(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    const qb_lowbit_weights *W = g->W;
    float fsum[QB_LOWBIT_MC];
    for (int m0 = 0; m0 < g->M; m0 += QB_LOWBIT_MC) {
        int rows = g->M - m0 < QB_LOWBIT_MC ? g->M - m0 : QB_LOWBIT_MC;
        for (int n = n0; n < n1; n++) {
            qb_lowbit_column_neon(g, m0, rows, n, fsum);
            for (int i = 0; i < rows; i++) {
                int m = m0 + i;
                float v = fmaf(-(float)g->a_zero[m], W->zsum[n], fsum[i]);
                v = qb_act_ref(g->act, fmaf(v, g->a_scale[m], g->bias ? g->bias[n] : 0.0f));
                if (g->residual) v += g->residual[(size_t)m * g->ldr + n];
                g->C[(size_t)m * g->ldc + n] = v;
            }
        }
    }
}

void qb_kernels_lowbit_init_neon(qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = QB_ISA_NEON, .gemm_a8 = qb_lowbit_gemm_a8_neon, .dequantize = qb_lowbit_dequantize};
}
