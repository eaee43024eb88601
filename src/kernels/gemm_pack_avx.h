/* Packing B into micro-panels with 256-bit AVX, shared by the AVX2 and
 * AVX-512 GEMMs (include only from files compiled with -mavx2).  A Linear
 * weight is stored [N, K], K contiguous, but the micro-kernel wants NR
 * consecutive columns per k, so each 8 x 8 block is transposed in
 * registers; packing then costs a fraction of the M-fold reuse. */
#ifndef QB_KERNELS_GEMM_PACK_AVX_H
#define QB_KERNELS_GEMM_PACK_AVX_H

#include <immintrin.h>

#include "kernels/kernels.h"

/* dst[c * ldd + i] = element c of r[i]: an 8 x 8 block transposed from
 * registers into memory. */
static inline __attribute__((always_inline)) void qb_gemm_transpose8_store(const __m256 r[8], float *dst, size_t ldd) {
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        s[h + 0] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0x44);
        s[h + 1] = _mm256_shuffle_ps(t[h + 0], t[h + 2], 0xee);
        s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(s[i], s[i + 4], 0x20));
        _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(s[i], s[i + 4], 0x31));
    }
}

/* dst[c * ldd + r] = src[r * lds + c] for an 8 x 8 block. */
static inline __attribute__((always_inline)) void qb_gemm_transpose8x8(const float *src, size_t lds, float *dst,
                                                                       size_t ldd) {
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    qb_gemm_transpose8_store(r, dst, ldd);
}

/* Lane mask with the first `count` (0..8) lanes on. */
static inline __m256i qb_gemm_mask8(int count) {
    static const int ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - count));
}

/* k blocks outside, column blocks inside: each step then fills 8 whole rows
 * of the panel (nr floats each) instead of revisiting every line of a panel
 * larger than L1 once per column block.  The source rows are nr separate
 * streams, more than the hardware prefetcher follows, hence the explicit
 * prefetch a few lines ahead. */
#define QB_GEMM_PACK_PREFETCH 64 /* floats ahead in each source row */

static inline void qb_gemm_pack_b_trans_avx(const float *w, size_t ldb, int cols, int kc, float *pb, int nr) {
    int full = cols / 8 * 8;
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        if (k % 16 == 0 && k + QB_GEMM_PACK_PREFETCH < kc)
            for (int j = 0; j < full; j++)
                _mm_prefetch((const char *)(w + (size_t)j * ldb + k + QB_GEMM_PACK_PREFETCH), _MM_HINT_T0);
        for (int j = 0; j < full; j += 8)
            qb_gemm_transpose8x8(w + (size_t)j * ldb + k, ldb, pb + (size_t)k * nr + j, nr);
    }
    for (; k < kc; k++)
        for (int j = 0; j < full; j++) pb[(size_t)k * nr + j] = w[(size_t)j * ldb + k];
    for (k = 0; k < kc; k++)
        for (int j = full; j < nr; j++) pb[(size_t)k * nr + j] = j < cols ? w[(size_t)j * ldb + k] : 0.0f;
}

static inline void qb_gemm_pack_b_rows_avx(const float *b, size_t ldb, int cols, int kc, float *pb, int nr) {
    for (int k = 0; k < kc; k++) {
        const float *src = b + (size_t)k * ldb;
        float *dst = pb + (size_t)k * nr;
        for (int j = 0; j < nr; j += 8) {
            int count = cols - j < 0 ? 0 : cols - j > 8 ? 8 : cols - j;
            __m256 v = count == 8 ? _mm256_loadu_ps(src + j) : _mm256_maskload_ps(src + j, qb_gemm_mask8(count));
            _mm256_storeu_ps(dst + j, v);
        }
    }
}

/* The qb_gemm_ukernel.pack_b contract for a panel width nr (multiple of 8). */
static inline void qb_gemm_pack_b_avx(const qb_gemm_f32_args *g, int n0, int cols, int k0, int kc, float *pb, int nr) {
    if (g->b_trans)
        qb_gemm_pack_b_trans_avx(g->B + (size_t)n0 * g->ldb + k0, (size_t)g->ldb, cols, kc, pb, nr);
    else
        qb_gemm_pack_b_rows_avx(g->B + (size_t)k0 * g->ldb + n0, (size_t)g->ldb, cols, kc, pb, nr);
}

#endif
