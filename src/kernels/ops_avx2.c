/* Row operations with AVX2 and the AVX2 kernel table.  Tails use masked
 * loads and stores, so every element goes through the same vector code. */
#include <immintrin.h>
#include <math.h>

#include "kernels/gemm_blocked.h"
#include "kernels/kernels_impl.h"
#include "kernels/nonfinite_impl.h"
#include "kernels/vec_avx2.h"

/* Lanes past the end read as `fill`. */
static inline __m256 qb_ops_avx2_load(const float *p, int count, __m256 fill) {
    if (count >= 8) return _mm256_loadu_ps(p);
    __m256i m = qb_v8_mask(count);
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}

static inline float qb_ops_avx2_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float qb_ops_avx2_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void qb_act_f32_avx2(qb_act act, float *x, int n) {
    if (act == QB_ACT_NONE) return;
    __m256 zero = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8)
        qb_v8_store(x + i, n - i, qb_v8_act(act, qb_ops_avx2_load(x + i, n - i, zero)));
}

/* Two-pass mean and variance, as in the reference. */
static void qb_layernorm_f32_avx2(const float *x, const float *gamma, const float *beta, float eps, int n, float *y) {
    __m256 zero = _mm256_setzero_ps();
    __m256 sum = zero;
    for (int i = 0; i < n; i += 8) sum = _mm256_add_ps(sum, qb_ops_avx2_load(x + i, n - i, zero));
    float mean_s = qb_ops_avx2_hsum(sum) / (float)n;
    __m256 mean = _mm256_set1_ps(mean_s);
    __m256 sq = zero;
    for (int i = 0; i < n; i += 8) {
        __m256 d = _mm256_sub_ps(qb_ops_avx2_load(x + i, n - i, mean), mean);
        sq = _mm256_fmadd_ps(d, d, sq);
    }
    __m256 rstd = _mm256_set1_ps(1.0f / sqrtf(qb_ops_avx2_hsum(sq) / (float)n + eps));
    for (int i = 0; i < n; i += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(qb_ops_avx2_load(x + i, n - i, zero), mean), rstd);
        __m256 out =
            _mm256_fmadd_ps(d, qb_ops_avx2_load(gamma + i, n - i, zero), qb_ops_avx2_load(beta + i, n - i, zero));
        qb_v8_store(y + i, n - i, out);
    }
}

static void qb_softmax_f32_avx2(float *x, int n) {
    __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 max = ninf;
    for (int i = 0; i < n; i += 8) max = _mm256_max_ps(max, qb_ops_avx2_load(x + i, n - i, ninf));
    __m256 vmax = _mm256_set1_ps(qb_ops_avx2_hmax(max));
    __m256 sum = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        /* -inf past the end makes exp give 0 there. */
        __m256 e = qb_v8_exp(_mm256_sub_ps(qb_ops_avx2_load(x + i, n - i, ninf), vmax));
        sum = _mm256_add_ps(sum, e);
        qb_v8_store(x + i, n - i, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / qb_ops_avx2_hsum(sum));
    __m256 zero = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8)
        qb_v8_store(x + i, n - i, _mm256_mul_ps(qb_ops_avx2_load(x + i, n - i, zero), inv));
}

void qb_kernels_init_avx2(qb_kernels *k) {
    k->isa = QB_ISA_AVX2;
    k->name = "avx2";
    k->gemm_f32 = qb_gemm_f32_avx2;
    k->gemm_f32_part = qb_gemm_f32_avx2_part;
    k->gemm_f32_pack_panels = qb_gemm_f32_avx2_panels;
    k->gemm_f32_panel = QB_GEMM_AVX2_NR;
    k->layernorm_f32 = qb_layernorm_f32_avx2;
    k->softmax_f32 = qb_softmax_f32_avx2;
    k->act_f32 = qb_act_f32_avx2;
    k->find_nonfinite = qb_nonfinite_find;
}
