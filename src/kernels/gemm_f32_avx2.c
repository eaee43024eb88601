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

/* rows (1..MR) and nv are constants in each copy below, so a ragged strip
 * computes only its own rows: 25 tokens are 4 strips of 6 and one of 1,
 * which as a full tile cost a sixth more than the rows need. */
static inline __attribute__((always_inline)) void qb_gemm_avx2_tile(int rows, int nv, int kc, const float *pa,
                                                                    size_t lda, const float *pb,
                                                                    const qb_gemm_tile *t) {
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
        for (int i = 0; i < rows; i++) {
            __m256 a = _mm256_broadcast_ss(pa + i * lda + k);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
        }
    }
    qb_gemm_avx2_store(nv, acc, t);
}

#define QB_GEMM_AVX2_TILE(rows)                                                                            \
    static void qb_gemm_avx2_tile##rows(int kc, const float *pa, size_t lda, const float *pb,            \
                                        const qb_gemm_tile *t) {                                         \
        if (t->cols <= 8)                                                                                \
            qb_gemm_avx2_tile(rows, 1, kc, pa, lda, pb, t);                                              \
        else                                                                                             \
            qb_gemm_avx2_tile(rows, 2, kc, pa, lda, pb, t);                                              \
    }
QB_GEMM_AVX2_TILE(1)
QB_GEMM_AVX2_TILE(2)
QB_GEMM_AVX2_TILE(3)
QB_GEMM_AVX2_TILE(4)
QB_GEMM_AVX2_TILE(5)
QB_GEMM_AVX2_TILE(6)

static void qb_gemm_avx2_micro(int kc, const float *pa, size_t lda, const float *pb, const qb_gemm_tile *t) {
    static void (*const tiles[MR])(int, const float *, size_t, const float *, const qb_gemm_tile *) = {
        qb_gemm_avx2_tile1, qb_gemm_avx2_tile2, qb_gemm_avx2_tile3,
        qb_gemm_avx2_tile4, qb_gemm_avx2_tile5, qb_gemm_avx2_tile6,
    };
    tiles[t->rows - 1](kc, pa, lda, pb, t);
}

static const qb_gemm_ukernel qb_gemm_avx2_ukernel = {
    .mr = MR,
    .nr = NR,
    .kc = KC,
    .nc = QB_GEMM_AVX2_NC,
    .panel_kc = QB_GEMM_AVX2_PANEL_KC,
    .panel_nc = QB_GEMM_AVX2_PANEL_NC,
    .pack_b = qb_gemm_avx2_pack_b,
    .micro = qb_gemm_avx2_micro,
    .exact_rows = true,
};

void qb_gemm_f32_avx2(const qb_gemm_f32_args *g, float *pack) {
    qb_gemm_blocked_run(&qb_gemm_avx2_ukernel, g, pack);
}

void qb_gemm_f32_avx2_panels(const float *w, int N, int K, float *panels) {
    qb_gemm_blocked_pack_panels(&qb_gemm_avx2_ukernel, w, N, K, panels);
}

void qb_gemm_f32_avx2_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed) {
    qb_gemm_blocked_part(&qb_gemm_avx2_ukernel, g, part, n_parts, pack, packed);
}
