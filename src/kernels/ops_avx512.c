/* Row operations with AVX-512 and the AVX-512 kernel table.  Every loop
 * runs over whole 16-lane vectors with a lane mask for the tail, so there
 * is no scalar remainder to keep in sync with the reference. */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_impl.h"
#include "kernels/nonfinite_impl.h"
#include "kernels/vec_avx512.h"

static void qb_act_f32_avx512(qb_act act, float *x, int n) {
    if (act == QB_ACT_NONE) return;
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = qb_v16_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, qb_v16_act(act, _mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* Two-pass mean and variance, as in the reference. */
static void qb_layernorm_f32_avx512(const float *x, const float *gamma, const float *beta, float eps, int n, float *y) {
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(qb_v16_mask(n - i), x + i));
    __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)n);
    __m512 sq = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = qb_v16_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), mean);
        sq = _mm512_fmadd_ps(d, d, sq);
    }
    __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(sq) / (float)n + eps));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = qb_v16_mask(n - i);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mean), rstd);
        __m512 out = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i), _mm512_maskz_loadu_ps(m, beta + i));
        _mm512_mask_storeu_ps(y + i, m, out);
    }
}

static void qb_softmax_f32_avx512(float *x, int n) {
    __m512 max = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) max = _mm512_max_ps(max, _mm512_mask_loadu_ps(max, qb_v16_mask(n - i), x + i));
    __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(max));
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = qb_v16_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, qb_v16_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax)));
        sum = _mm512_add_ps(sum, e);
        _mm512_mask_storeu_ps(x + i, m, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = qb_v16_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

void qb_kernels_init_avx512(qb_kernels *k) {
    k->isa = QB_ISA_AVX512;
    k->name = "avx512";
    k->gemm_f32 = qb_gemm_f32_avx512;
    k->gemm_f32_part = qb_gemm_f32_avx512_part;
    k->gemm_f32_swaps = true; /* its micro-kernel stores transposed tiles */
    k->layernorm_f32 = qb_layernorm_f32_avx512;
    k->softmax_f32 = qb_softmax_f32_avx512;
    k->act_f32 = qb_act_f32_avx512;
    k->find_nonfinite = qb_nonfinite_find;
}
