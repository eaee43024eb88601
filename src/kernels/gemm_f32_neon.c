/* NEON GEMM (ARMv8.0): an 8 x 8 register tile inside the shared loop
 * nest.  The strip of A is read in place four k at a time, one vector per
 * row, and each of its lanes multiplies a row of the B panel (fmla by
 * element), so A costs one load per four k. */
#include <arm_neon.h>

#include "kernels/gemm_blocked.h"
#include "kernels/kernels_impl.h"
#include "kernels/vec_neon.h"

#define MR QB_GEMM_NEON_MR
#define NR QB_GEMM_NEON_NR

/* B columns [n0, n0 + cols) x k [k0, k0 + kc) as pb[k * NR + j], zero past cols. */
static void qb_gemm_neon_pack_b(const qb_gemm_f32_args *g, int n0, int cols, int k0, int kc, float *pb) {
    for (int k = 0; k < kc; k++) {
        float *dst = pb + (size_t)k * NR;
        for (int j = 0; j < NR; j++) {
            if (j >= cols)
                dst[j] = 0.0f;
            else if (g->b_trans)
                dst[j] = g->B[(size_t)(n0 + j) * g->ldb + k0 + k];
            else
                dst[j] = g->B[(size_t)(k0 + k) * g->ldb + n0 + j];
        }
    }
}

static void qb_gemm_neon_store(float32x4_t acc[MR][2], const qb_gemm_tile *t) {
    float32x4_t alpha = vdupq_n_f32(t->alpha);
    for (int i = 0; i < t->rows; i++) {
        float *c = t->c + (size_t)i * t->ldc;
        const float *res = t->residual ? t->residual + (size_t)i * t->ldr : NULL;
        for (int v = 0; v < 2 && 4 * v < t->cols; v++) {
            int count = t->cols - 4 * v;
            float32x4_t x = vmulq_f32(acc[i][v], alpha);
            if (t->accumulate) x = vaddq_f32(x, qb_v4_load_part(c + 4 * v, count));
            if (t->finish) {
                if (t->bias) x = vaddq_f32(x, qb_v4_load_part(t->bias + 4 * v, count));
                x = qb_v4_act(t->act, x);
                if (res) x = vaddq_f32(x, qb_v4_load_part(res + 4 * v, count));
            }
            qb_v4_store_part(c + 4 * v, count, x);
        }
    }
}

/* Row i's sums are c<i>0 and c<i>1, named variables rather than an array:
 * GCC 12 kept an array of them in memory, storing all 16 in every step. */
#define QB_NEON_ROWS(X, kk) X(0, kk) X(1, kk) X(2, kk) X(3, kk) X(4, kk) X(5, kk) X(6, kk) X(7, kk)
_Static_assert(MR == 8, "QB_NEON_ROWS names MR rows");
#define QB_NEON_ZERO(i, kk) float32x4_t c##i##0 = vdupq_n_f32(0.0f), c##i##1 = c##i##0;
#define QB_NEON_LOAD_A(i, kk) float32x4_t a##i = vld1q_f32(pa + i * lda + k);
#define QB_NEON_FMA(i, kk)                            \
    c##i##0 = vfmaq_laneq_f32(c##i##0, b0, a##i, kk); \
    c##i##1 = vfmaq_laneq_f32(c##i##1, b1, a##i, kk);
#define QB_NEON_FMA_ONE(i, kk)                                 \
    {                                                          \
        float32x4_t av = vdupq_n_f32(pa[i * lda + k]);         \
        c##i##0 = vfmaq_f32(c##i##0, b0, av);                  \
        c##i##1 = vfmaq_f32(c##i##1, b1, av);                  \
    }
#define QB_NEON_SAVE(i, kk) \
    acc[i][0] = c##i##0;    \
    acc[i][1] = c##i##1;
#define QB_NEON_FMA_LANE(kk)                                                            \
    {                                                                                   \
        float32x4_t b0 = vld1q_f32(pb + (size_t)(k + kk) * NR);                         \
        float32x4_t b1 = vld1q_f32(pb + (size_t)(k + kk) * NR + 4);                     \
        QB_NEON_ROWS(QB_NEON_FMA, kk)                                                   \
    }

static void qb_gemm_neon_micro(int kc, const float *pa, size_t lda, const float *pb, const qb_gemm_tile *t) {
    QB_NEON_ROWS(QB_NEON_ZERO, 0)
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
        QB_NEON_ROWS(QB_NEON_LOAD_A, 0)
        QB_NEON_FMA_LANE(0)
        QB_NEON_FMA_LANE(1)
        QB_NEON_FMA_LANE(2)
        QB_NEON_FMA_LANE(3)
    }
    for (; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(pb + (size_t)k * NR), b1 = vld1q_f32(pb + (size_t)k * NR + 4);
        QB_NEON_ROWS(QB_NEON_FMA_ONE, 0)
    }
    float32x4_t acc[MR][2];
    QB_NEON_ROWS(QB_NEON_SAVE, 0)
    qb_gemm_neon_store(acc, t);
}

static const qb_gemm_ukernel qb_gemm_neon_ukernel = {
    .mr = MR,
    .nr = NR,
    .kc = QB_GEMM_NEON_KC,
    .nc = QB_GEMM_NEON_NC,
    .pack_b = qb_gemm_neon_pack_b,
    .micro = qb_gemm_neon_micro,
};

void qb_gemm_f32_neon(const qb_gemm_f32_args *g, float *pack) {
    qb_gemm_blocked_run(&qb_gemm_neon_ukernel, g, pack);
}

void qb_gemm_f32_neon_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed) {
    qb_gemm_blocked_part(&qb_gemm_neon_ukernel, g, part, n_parts, pack, packed);
}
