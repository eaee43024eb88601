/* Vectorized exp / erf / tanh / activations on 4 floats (AArch64 NEON),
 * the 128-bit twins of vec_avx2.h, with the same coefficients and steps.
 * Include only from *_neon.c, *_dotprod.c and *_i8mm.c files. */
#ifndef QB_KERNELS_VEC_NEON_H
#define QB_KERNELS_VEC_NEON_H

#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/math_coeffs.h"

static inline float32x4_t qb_v4_const(float c) { return vdupq_n_f32(c); }

/* c + a * b and c - a * b, one rounding each. */
static inline float32x4_t qb_v4_fma(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmaq_f32(c, a, b); }
static inline float32x4_t qb_v4_fnma(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmsq_f32(c, a, b); }

/* y, with x where x is NaN: the clamps below would turn a NaN into a
 * plausible number, hiding a model that overflowed. */
static inline float32x4_t qb_v4_keep_nan(float32x4_t y, float32x4_t x) { return vbslq_f32(vceqq_f32(x, x), y, x); }

static inline float32x4_t qb_v4_exp(float32x4_t x) {
    float32x4_t xc = vminq_f32(vmaxq_f32(x, qb_v4_const(QB_EXP_XMIN)), qb_v4_const(QB_EXP_XMAX));
    float32x4_t n = vrndnq_f32(vmulq_f32(xc, qb_v4_const(QB_EXP_LOG2E)));
    float32x4_t r = qb_v4_fnma(n, qb_v4_const(QB_EXP_LN2_HI), xc);
    r = qb_v4_fnma(n, qb_v4_const(QB_EXP_LN2_LO), r);
    float32x4_t p = qb_v4_const(1.0f / 5040.0f);
    p = qb_v4_fma(p, r, qb_v4_const(1.0f / 720.0f));
    p = qb_v4_fma(p, r, qb_v4_const(1.0f / 120.0f));
    p = qb_v4_fma(p, r, qb_v4_const(1.0f / 24.0f));
    p = qb_v4_fma(p, r, qb_v4_const(1.0f / 6.0f));
    p = qb_v4_fma(p, r, qb_v4_const(0.5f));
    p = qb_v4_fma(p, r, qb_v4_const(1.0f));
    p = qb_v4_fma(p, r, qb_v4_const(1.0f));
    /* 2^n built in the exponent field; the clamp keeps n in [-126, 127]. */
    int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(bits));
    uint32x4_t keep = vcgeq_f32(x, qb_v4_const(QB_EXP_XMIN));
    return qb_v4_keep_nan(vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), keep)), x);
}

/* erfc(z) for z >= 0 (see math_coeffs.h); 0 past the fitted range. */
static inline float32x4_t qb_v4_erfc_nonneg(float32x4_t z) {
    uint32x4_t inside = vcltq_f32(z, qb_v4_const(QB_ERFC_ZMAX));
    z = vminq_f32(z, qb_v4_const(QB_ERFC_ZMAX));
    float32x4_t t = vdivq_f32(qb_v4_const(1.0f), qb_v4_fma(z, qb_v4_const(0.5f), qb_v4_const(1.0f)));
    float32x4_t p = qb_v4_const(QB_ERFC_P7);
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P6));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P5));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P4));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P3));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P2));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P1));
    p = qb_v4_fma(p, t, qb_v4_const(QB_ERFC_P0));
    float32x4_t e = qb_v4_exp(vmulq_f32(vnegq_f32(z), z));
    float32x4_t y = vmulq_f32(vmulq_f32(t, p), e);
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), inside));
}

/* 0.5 x (1 + erf(x / sqrt 2)), with 1 + erf = erfc(|x| / sqrt 2) for x < 0. */
static inline float32x4_t qb_v4_gelu(float32x4_t x) {
    float32x4_t e = qb_v4_erfc_nonneg(vmulq_f32(vabsq_f32(x), qb_v4_const(QB_SQRT1_2)));
    uint32x4_t neg = vcltq_f32(x, vdupq_n_f32(0.0f));
    float32x4_t one_plus_erf = vbslq_f32(neg, e, vsubq_f32(qb_v4_const(2.0f), e));
    return vmulq_f32(vmulq_f32(qb_v4_const(0.5f), x), one_plus_erf);
}

static inline float32x4_t qb_v4_tanh(float32x4_t x) {
    float32x4_t ax = vabsq_f32(x);
    float32x4_t x2 = vmulq_f32(x, x);
    float32x4_t q = qb_v4_const(QB_TANH_Q5);
    q = qb_v4_fma(q, x2, qb_v4_const(QB_TANH_Q4));
    q = qb_v4_fma(q, x2, qb_v4_const(QB_TANH_Q3));
    q = qb_v4_fma(q, x2, qb_v4_const(QB_TANH_Q2));
    q = qb_v4_fma(q, x2, qb_v4_const(QB_TANH_Q1));
    q = qb_v4_fma(q, x2, qb_v4_const(QB_TANH_Q0));
    float32x4_t small = qb_v4_fma(vmulq_f32(q, x2), x, x);
    float32x4_t axc = vminq_f32(ax, qb_v4_const(QB_TANH_XMAX));
    float32x4_t e = qb_v4_exp(vaddq_f32(axc, axc));
    float32x4_t big = vsubq_f32(qb_v4_const(1.0f), vdivq_f32(qb_v4_const(2.0f), vaddq_f32(e, qb_v4_const(1.0f))));
    uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    big = vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(big), sign));
    return qb_v4_keep_nan(vbslq_f32(vcltq_f32(ax, qb_v4_const(QB_TANH_SMALL)), small, big), x);
}

/* 0.5 x (1 + tanh u) = x / (1 + exp(-2u)): no cancellation for x < 0. */
static inline float32x4_t qb_v4_gelu_tanh(float32x4_t x) {
    float32x4_t x3 = vmulq_f32(vmulq_f32(x, x), x);
    float32x4_t u = vmulq_f32(qb_v4_const(QB_SQRT_2_OVER_PI), qb_v4_fma(x3, qb_v4_const(QB_GELU_TANH_C), x));
    float32x4_t e = qb_v4_exp(vmulq_f32(u, qb_v4_const(-2.0f)));
    return vdivq_f32(x, vaddq_f32(e, qb_v4_const(1.0f)));
}

static inline float32x4_t qb_v4_act(qb_act act, float32x4_t x) {
    switch (act) {
    case QB_ACT_GELU: return qb_v4_gelu(x);
    case QB_ACT_GELU_TANH: return qb_v4_gelu_tanh(x);
    case QB_ACT_RELU: return vmaxnmq_f32(x, vdupq_n_f32(0.0f)); /* NaN -> 0, as the reference */
    case QB_ACT_TANH: return qb_v4_tanh(x);
    case QB_ACT_NONE:
    default: return x;
    }
}

/* The first count (0..4) floats at p, zeros past them; and the store back. */
static inline float32x4_t qb_v4_load_part(const float *p, int count) {
    if (count >= 4) return vld1q_f32(p);
    float tmp[4] = {0};
    for (int i = 0; i < count; i++) tmp[i] = p[i];
    return vld1q_f32(tmp);
}

static inline void qb_v4_store_part(float *p, int count, float32x4_t v) {
    if (count >= 4) {
        vst1q_f32(p, v);
        return;
    }
    float tmp[4];
    vst1q_f32(tmp, v);
    for (int i = 0; i < count; i++) p[i] = tmp[i];
}

#endif
