/* NEON half-precision GEMM: weight chunks widened with fcvtl (FP16, part
 * of ARMv8.0 Advanced SIMD) or a 16-bit shift (BF16, the high half of an
 * FP32), then the NEON FP32 GEMM. */
#include <arm_neon.h>

#include "core/dtype.h"
#include "kernels/gemm_h16_impl.h"

static void qb_h16_widen_f16_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    for (; i < n; i++) dst[i] = qb_f16_to_f32(src[i]);
}

static void qb_h16_widen_bf16_neon(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_u32((uint32_t *)(dst + i), vshll_n_u16(vld1_u16(src + i), 16));
    for (; i < n; i++) dst[i] = qb_bf16_to_f32(src[i]);
}

void qb_gemm_h16_neon(const qb_gemm_h16_args *a, int n0, int n1, float *pack) {
    qb_h16_widen_fn widen = a->W->type == QB_H16_BF16 ? qb_h16_widen_bf16_neon : qb_h16_widen_f16_neon;
    qb_gemm_h16_widened(a, n0, n1, pack, widen, NULL, qb_gemm_f32_neon);
}
