/* AVX2 GEMM: a 6 x 16 register tile (12 ymm accumulators, 2 for B, one
 * broadcast of A: 15 of the 16 registers) inside the shared loop nest. */
#include <immintrin.h>

#include "kernels/gemm_blocked.h"
#include "kernels/gemm_pack_avx.h"
#include "kernels/kernels_impl.h"
#include "kernels/vec_avx2.h"

#define MR QB_GEMM_AVX2_MR
#define NR QB_GEMM_AVX2_NR
#define KC QB_GEMM_AVX2_KC
#define NV_MAX (NR / 8)

static void qb_gemm_avx2_pack_b(const qb_gemm_f32_args *g, int n0, int cols, int k0, int kc, float *pb) {
    qb_gemm_pack_b_avx(g, n0, cols, k0, kc, pb, NR);
}

/* Compile-time loop bounds, fully unrolled, keep acc[i][v] in registers. */
static inline __attribute__((always_inline)) void qb_gemm_avx2_store(int nv, __m256 acc[MR][NV_MAX],
                                                                     const qb_gemm_tile *t) {
    __m256 alpha = _mm256_set1_ps(t->alpha);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= t->rows) break;
        float *c = t->c + (size_t)i * t->ldc;
        const float *res = t->residual ? t->residual + (size_t)i * t->ldr : NULL;
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            int count = t->cols - 8 * v;
            __m256 x = _mm256_mul_ps(acc[i][v], alpha);
            if (t->accumulate) x = _mm256_add_ps(x, qb_v8_load(c + 8 * v, count));
            if (t->finish) {
                if (t->bias) x = _mm256_add_ps(x, qb_v8_load(t->bias + 8 * v, count));
                x = qb_v8_act(t->act, x);
                if (res) x = _mm256_add_ps(x, qb_v8_load(res + 8 * v, count));
            }
            qb_v8_store(c + 8 * v, count, x);
        }
    }
}

static inline __attribute__((always_inline)) void qb_gemm_avx2_tile(int nv, int kc, const float *pa, size_t lda,
                                                                    const float *pb, const qb_gemm_tile *t) {
    __m256 acc[MR][NV_MAX];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
        for (int v = 0; v < NV_MAX; v++) acc[i][v] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b[NV_MAX];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) b[v] = _mm256_loadu_ps(pb + (size_t)k * NR + 8 * v);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 a = _mm256_broadcast_ss(pa + i * lda + k);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
        }
    }
    qb_gemm_avx2_store(nv, acc, t);
}

static void qb_gemm_avx2_micro(int kc, const float *pa, size_t lda, const float *pb, const qb_gemm_tile *t) {
    if (t->cols <= 8)
        qb_gemm_avx2_tile(1, kc, pa, lda, pb, t);
    else
        qb_gemm_avx2_tile(2, kc, pa, lda, pb, t);
}

static const qb_gemm_ukernel qb_gemm_avx2_ukernel = {
    .mr = MR,
    .nr = NR,
    .kc = KC,
    .nc = QB_GEMM_AVX2_NC,
    .pack_b = qb_gemm_avx2_pack_b,
    .micro = qb_gemm_avx2_micro,
};

void qb_gemm_f32_avx2(const qb_gemm_f32_args *g, float *pack) {
    qb_gemm_blocked_run(&qb_gemm_avx2_ukernel, g, pack);
}

void qb_gemm_f32_avx2_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed) {
    qb_gemm_blocked_part(&qb_gemm_avx2_ukernel, g, part, n_parts, pack, packed);
}
