/* Vectorized exp / erf / tanh / activations on 8 floats (AVX2 + FMA), the
 * 256-bit twins of vec_avx512.h.  Include only from *_avx2.c files. */
#ifndef QB_KERNELS_VEC_AVX2_H
#define QB_KERNELS_VEC_AVX2_H

#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/math_coeffs.h"

static inline __m256 qb_v8_const(float c) { return _mm256_set1_ps(c); }

static inline __m256 qb_v8_abs(__m256 x) { return _mm256_andnot_ps(qb_v8_const(-0.0f), x); }

/* y, with x where x is NaN: the clamps below would turn a NaN into a
 * plausible number, hiding a model that overflowed. */
static inline __m256 qb_v8_keep_nan(__m256 y, __m256 x) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static inline __m256 qb_v8_exp(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, qb_v8_const(QB_EXP_XMIN)), qb_v8_const(QB_EXP_XMAX));
    __m256 n =
        _mm256_round_ps(_mm256_mul_ps(xc, qb_v8_const(QB_EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, qb_v8_const(QB_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, qb_v8_const(QB_EXP_LN2_LO), r);
    __m256 p = qb_v8_const(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(0.5f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f));
    p = _mm256_fmadd_ps(p, r, qb_v8_const(1.0f));
    /* 2^n built in the exponent field; the clamp keeps n in [-126, 127]. */
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return qb_v8_keep_nan(_mm256_and_ps(y, _mm256_cmp_ps(x, qb_v8_const(QB_EXP_XMIN), _CMP_GE_OQ)), x);
}

/* erfc(z) for z >= 0 (see math_coeffs.h); 0 past the fitted range. */
static inline __m256 qb_v8_erfc_nonneg(__m256 z) {
    __m256 inside = _mm256_cmp_ps(z, qb_v8_const(QB_ERFC_ZMAX), _CMP_LT_OQ);
    z = _mm256_min_ps(z, qb_v8_const(QB_ERFC_ZMAX));
    __m256 t = _mm256_div_ps(qb_v8_const(1.0f), _mm256_fmadd_ps(z, qb_v8_const(0.5f), qb_v8_const(1.0f)));
    __m256 p = qb_v8_const(QB_ERFC_P7);
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P6));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P5));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P4));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P3));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P2));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P1));
    p = _mm256_fmadd_ps(p, t, qb_v8_const(QB_ERFC_P0));
    __m256 e = qb_v8_exp(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z));
    return _mm256_and_ps(_mm256_mul_ps(_mm256_mul_ps(t, p), e), inside);
}

/* 0.5 x (1 + erf(x / sqrt 2)), with 1 + erf = erfc(|x| / sqrt 2) for x < 0. */
static inline __m256 qb_v8_gelu(__m256 x) {
    __m256 e = qb_v8_erfc_nonneg(_mm256_mul_ps(qb_v8_abs(x), qb_v8_const(QB_SQRT1_2)));
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    __m256 one_plus_erf = _mm256_blendv_ps(_mm256_sub_ps(qb_v8_const(2.0f), e), e, neg);
    return _mm256_mul_ps(_mm256_mul_ps(qb_v8_const(0.5f), x), one_plus_erf);
}

static inline __m256 qb_v8_tanh(__m256 x) {
    __m256 ax = qb_v8_abs(x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 q = qb_v8_const(QB_TANH_Q5);
    q = _mm256_fmadd_ps(q, x2, qb_v8_const(QB_TANH_Q4));
    q = _mm256_fmadd_ps(q, x2, qb_v8_const(QB_TANH_Q3));
    q = _mm256_fmadd_ps(q, x2, qb_v8_const(QB_TANH_Q2));
    q = _mm256_fmadd_ps(q, x2, qb_v8_const(QB_TANH_Q1));
    q = _mm256_fmadd_ps(q, x2, qb_v8_const(QB_TANH_Q0));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(q, x2), x, x);
    __m256 axc = _mm256_min_ps(ax, qb_v8_const(QB_TANH_XMAX));
    __m256 e = qb_v8_exp(_mm256_add_ps(axc, axc));
    __m256 big =
        _mm256_sub_ps(qb_v8_const(1.0f), _mm256_div_ps(qb_v8_const(2.0f), _mm256_add_ps(e, qb_v8_const(1.0f))));
    big = _mm256_or_ps(big, _mm256_and_ps(x, qb_v8_const(-0.0f)));
    return qb_v8_keep_nan(_mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, qb_v8_const(QB_TANH_SMALL), _CMP_LT_OQ)), x);
}

/* 0.5 x (1 + tanh u) = x / (1 + exp(-2u)): no cancellation for x < 0. */
static inline __m256 qb_v8_gelu_tanh(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(qb_v8_const(QB_SQRT_2_OVER_PI), _mm256_fmadd_ps(x3, qb_v8_const(QB_GELU_TANH_C), x));
    __m256 e = qb_v8_exp(_mm256_mul_ps(u, qb_v8_const(-2.0f)));
    return _mm256_div_ps(x, _mm256_add_ps(e, qb_v8_const(1.0f)));
}

static inline __m256 qb_v8_act(qb_act act, __m256 x) {
    switch (act) {
    case QB_ACT_GELU: return qb_v8_gelu(x);
    case QB_ACT_GELU_TANH: return qb_v8_gelu_tanh(x);
    case QB_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
    case QB_ACT_TANH: return qb_v8_tanh(x);
    case QB_ACT_NONE:
    default: return x;
    }
}

/* Lane mask with the first `count` lanes on (count clamped to 0..8). */
static inline __m256i qb_v8_mask(int count) {
    static const int ones_then_zeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    count = count < 0 ? 0 : count > 8 ? 8 : count;
    return _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 8 - count));
}

/* The first `count` floats at p, lanes past them 0, and the store of the
 * first `count` lanes.  Whole vectors take plain moves: AMD's Zen runs a
 * masked store as microcode. */
static inline __m256 qb_v8_load(const float *p, int count) {
    return count >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, qb_v8_mask(count));
}

static inline void qb_v8_store(float *p, int count, __m256 v) {
    if (count >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, qb_v8_mask(count), v);
}

#endif
