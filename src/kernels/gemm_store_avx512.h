/* The AVX-512 GEMM epilogue of an 8 x 48 register tile: alpha, the partial
 * sum of earlier K blocks, then (last block) bias, activation and residual.
 * Shared by the FP32 kernel and the BF16 dot kernel, whose tiles are the
 * same shape.  Compile only in *_avx512.c files. */
#ifndef QB_KERNELS_GEMM_STORE_AVX512_H
#define QB_KERNELS_GEMM_STORE_AVX512_H

#include <immintrin.h>

#include "kernels/gemm_blocked.h"
#include "kernels/vec_avx512.h"

/* Loops are written over compile-time bounds and fully unrolled so every
 * acc[i][v] stays a register; runtime row/column counts only guard. */
#define QB_GEMM_AVX512_NV (QB_GEMM_AVX512_NR / 16)
static inline __attribute__((always_inline)) void qb_gemm_avx512_store(int nv,
                                                                       __m512 acc[QB_GEMM_AVX512_MR][QB_GEMM_AVX512_NV],
                                                                       const qb_gemm_tile *t) {
    __m512 alpha = _mm512_set1_ps(t->alpha);
#pragma GCC unroll 8
    for (int i = 0; i < QB_GEMM_AVX512_MR; i++) {
        if (i >= t->rows) break;
        float *c = t->c + (size_t)i * t->ldc;
        const float *res = t->residual ? t->residual + (size_t)i * t->ldr : NULL;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __mmask16 m = qb_v16_mask(t->cols - 16 * v);
            __m512 x = _mm512_mul_ps(acc[i][v], alpha);
            if (t->accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, c + 16 * v));
            if (t->finish) {
                if (t->bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, t->bias + 16 * v));
                x = qb_v16_act(t->act, x);
                if (res) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, res + 16 * v));
            }
            _mm512_mask_storeu_ps(c + 16 * v, m, x);
        }
    }
}

#endif
