/* AVX2 half-precision GEMM: weight chunks widened with F16C (FP16) or a
 * 16-bit shift (BF16, the high half of an FP32), then the AVX2 FP32 GEMM. */
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/gemm_h16_impl.h"

static void qb_h16_widen_f16_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = qb_f16_to_f32(src[i]);
}

static void qb_h16_widen_bf16_avx2(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(wide, 16));
    }
    for (; i < n; i++) dst[i] = qb_bf16_to_f32(src[i]);
}

void qb_gemm_h16_avx2(const qb_gemm_h16_args *a, int n0, int n1, float *pack) {
    qb_h16_widen_fn widen = a->W->type == QB_H16_BF16 ? qb_h16_widen_bf16_avx2 : qb_h16_widen_f16_avx2;
    qb_gemm_h16_widened(a, n0, n1, pack, widen, NULL, qb_gemm_f32_avx2);
}
