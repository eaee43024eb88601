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

/* 8 floats at lo and 8 at hi (each masked) as the halves of one vector. */
static inline __m512 qb_gemm_avx512_load_pair(const float *lo, const float *hi, __mmask8 m_lo, __mmask8 m_hi) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(m_lo, lo)),
                              _mm256_maskz_loadu_ps(m_hi, hi), 1);
}

/* The epilogue of two rows of C held in the halves of x (lo at c_lo, hi at
 * c_hi, the 8 lanes of each masked by m): alpha, partial sum, bias8 (the
 * same 8 columns in both halves), activation, residual. */
static inline __attribute__((always_inline)) void qb_gemm_avx512_store_pair(__m512 x, float *c_lo, float *c_hi,
                                                                            const float *r_lo, const float *r_hi,
                                                                            __mmask8 m_lo, __mmask8 m_hi,
                                                                            __m512 bias8, const qb_gemm_tile *t) {
    x = _mm512_mul_ps(x, _mm512_set1_ps(t->alpha));
    if (t->accumulate) x = _mm512_add_ps(x, qb_gemm_avx512_load_pair(c_lo, c_hi, m_lo, m_hi));
    if (t->finish) {
        x = qb_v16_act(t->act, _mm512_add_ps(x, bias8));
        if (t->residual) x = _mm512_add_ps(x, qb_gemm_avx512_load_pair(r_lo, r_hi, m_lo, m_hi));
    }
    _mm256_mask_storeu_ps(c_lo, m_lo, _mm512_castps512_ps256(x));
    /* GCC folds the extract into a masked vextractf32x8 to memory, which
     * faulted past the end of C even with an empty mask: test first. */
    if (m_hi) _mm256_mask_storeu_ps(c_hi, m_hi, _mm512_extractf32x8_ps(x, 1));
}

/* The tile stored transposed (qb_gemm_tile.trans): each 8 x 16 block of
 * acc is transposed in registers, in 128-bit lanes by unpack and shuffle
 * and across lanes by one two-source permute, into pairs of C rows of 8
 * columns; about 1% of the tile's FMA time. */
static inline __attribute__((always_inline)) void qb_gemm_avx512_store_trans(
    int nv, __m512 acc[QB_GEMM_AVX512_MR][QB_GEMM_AVX512_NV], const qb_gemm_tile *t) {
    __mmask8 cols8 = (__mmask8)((1u << t->rows) - 1);
    __m512 bias8 = t->finish && t->bias ? _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(cols8, t->bias))
                                        : _mm512_setzero_ps();
    const __m512i lanes01 = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i lanes23 = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
        __m512 u[8], s[8];
#pragma GCC unroll 4
        for (int i = 0; i < 8; i += 2) {
            u[i] = _mm512_unpacklo_ps(acc[i][v], acc[i + 1][v]);
            u[i + 1] = _mm512_unpackhi_ps(acc[i][v], acc[i + 1][v]);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 8; h += 4) {
            s[h + 0] = _mm512_shuffle_ps(u[h + 0], u[h + 2], 0x44);
            s[h + 1] = _mm512_shuffle_ps(u[h + 0], u[h + 2], 0xee);
            s[h + 2] = _mm512_shuffle_ps(u[h + 1], u[h + 3], 0x44);
            s[h + 3] = _mm512_shuffle_ps(u[h + 1], u[h + 3], 0xee);
        }
        /* lane L of s[q] holds rows 0-3 of tile column 4L + q, s[4 + q] rows 4-7 */
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
#pragma GCC unroll 2
            for (int half = 0; half < 2; half++) {
                __m512 x = _mm512_permutex2var_ps(s[q], half ? lanes23 : lanes01, s[4 + q]);
                int j_lo = 16 * v + 8 * half + q, j_hi = j_lo + 4; /* tile columns = rows of C */
                __mmask8 m_lo = j_lo < t->cols ? cols8 : 0, m_hi = j_hi < t->cols ? cols8 : 0;
                if (!(m_lo | m_hi)) continue;
                const float *r = t->residual;
                qb_gemm_avx512_store_pair(x, t->c + (size_t)j_lo * t->ldc, t->c + (size_t)j_hi * t->ldc,
                                          r ? r + (size_t)j_lo * t->ldr : NULL, r ? r + (size_t)j_hi * t->ldr : NULL,
                                          m_lo, m_hi, bias8, t);
            }
        }
    }
}

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
