/* Vectorized exp / erf / tanh / activations on 16 floats (AVX-512F),
 * shared by the GEMM epilogue and the row ops so both round alike.
 * Include only from *_avx512.c files. */
#ifndef QB_KERNELS_VEC_AVX512_H
#define QB_KERNELS_VEC_AVX512_H

#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/math_coeffs.h"

static inline __m512 qb_v16_const(float c) { return _mm512_set1_ps(c); }

/* y, with x where x is NaN: the clamps below would turn a NaN into a
 * plausible number, hiding a model that overflowed. */
static inline __m512 qb_v16_keep_nan(__m512 y, __m512 x) {
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

static inline __m512 qb_v16_exp(__m512 x) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, qb_v16_const(QB_EXP_XMIN)), qb_v16_const(QB_EXP_XMAX));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, qb_v16_const(QB_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, qb_v16_const(QB_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, qb_v16_const(QB_EXP_LN2_LO), r);
    __m512 p = qb_v16_const(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(0.5f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f));
    p = _mm512_fmadd_ps(p, r, qb_v16_const(1.0f));
    __m512 y = _mm512_scalef_ps(p, n);
    return qb_v16_keep_nan(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, qb_v16_const(QB_EXP_XMIN), _CMP_GE_OQ), y), x);
}

/* erfc(z) for z >= 0 (see math_coeffs.h); 0 past the fitted range. */
static inline __m512 qb_v16_erfc_nonneg(__m512 z) {
    __mmask16 inside = _mm512_cmp_ps_mask(z, qb_v16_const(QB_ERFC_ZMAX), _CMP_LT_OQ);
    z = _mm512_min_ps(z, qb_v16_const(QB_ERFC_ZMAX));
    __m512 t = _mm512_div_ps(qb_v16_const(1.0f), _mm512_fmadd_ps(z, qb_v16_const(0.5f), qb_v16_const(1.0f)));
    __m512 p = qb_v16_const(QB_ERFC_P7);
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P6));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P5));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P4));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P3));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P2));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P1));
    p = _mm512_fmadd_ps(p, t, qb_v16_const(QB_ERFC_P0));
    __m512 e = qb_v16_exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z));
    return _mm512_maskz_mul_ps(inside, _mm512_mul_ps(t, p), e);
}

/* 0.5 x (1 + erf(x / sqrt 2)); for x < 0, 1 + erf = erfc(|x| / sqrt 2)
 * directly, which keeps the negative tail accurate. */
static inline __m512 qb_v16_gelu(__m512 x) {
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), qb_v16_const(QB_SQRT1_2));
    __m512 e = qb_v16_erfc_nonneg(z);
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 one_plus_erf = _mm512_mask_mov_ps(_mm512_sub_ps(qb_v16_const(2.0f), e), neg, e);
    return _mm512_mul_ps(_mm512_mul_ps(qb_v16_const(0.5f), x), one_plus_erf);
}

static inline __m512 qb_v16_tanh(__m512 x) {
    __m512 ax = _mm512_abs_ps(x);
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 q = qb_v16_const(QB_TANH_Q5);
    q = _mm512_fmadd_ps(q, x2, qb_v16_const(QB_TANH_Q4));
    q = _mm512_fmadd_ps(q, x2, qb_v16_const(QB_TANH_Q3));
    q = _mm512_fmadd_ps(q, x2, qb_v16_const(QB_TANH_Q2));
    q = _mm512_fmadd_ps(q, x2, qb_v16_const(QB_TANH_Q1));
    q = _mm512_fmadd_ps(q, x2, qb_v16_const(QB_TANH_Q0));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(q, x2), x, x);
    __m512 e = qb_v16_exp(
        _mm512_add_ps(_mm512_min_ps(ax, qb_v16_const(QB_TANH_XMAX)), _mm512_min_ps(ax, qb_v16_const(QB_TANH_XMAX))));
    __m512 big =
        _mm512_sub_ps(qb_v16_const(1.0f), _mm512_div_ps(qb_v16_const(2.0f), _mm512_add_ps(e, qb_v16_const(1.0f))));
    /* copy the sign of x onto big */
    big = _mm512_or_ps(big, _mm512_and_ps(x, qb_v16_const(-0.0f)));
    __m512 y = _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, qb_v16_const(QB_TANH_SMALL), _CMP_LT_OQ), small);
    return qb_v16_keep_nan(y, x);
}

/* 0.5 x (1 + tanh u) = x / (1 + exp(-2u)): no cancellation for x < 0. */
static inline __m512 qb_v16_gelu_tanh(__m512 x) {
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(qb_v16_const(QB_SQRT_2_OVER_PI), _mm512_fmadd_ps(x3, qb_v16_const(QB_GELU_TANH_C), x));
    __m512 e = qb_v16_exp(_mm512_mul_ps(u, qb_v16_const(-2.0f)));
    return _mm512_div_ps(x, _mm512_add_ps(e, qb_v16_const(1.0f)));
}

static inline __m512 qb_v16_act(qb_act act, __m512 x) {
    switch (act) {
    case QB_ACT_GELU: return qb_v16_gelu(x);
    case QB_ACT_GELU_TANH: return qb_v16_gelu_tanh(x);
    case QB_ACT_RELU: return _mm512_max_ps(x, _mm512_setzero_ps());
    case QB_ACT_TANH: return qb_v16_tanh(x);
    case QB_ACT_NONE:
    default: return x;
    }
}

static inline __mmask16 qb_v16_mask(int count) {
    return count >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1);
}

#endif
