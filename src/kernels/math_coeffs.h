/* Polynomial coefficients for the vectorized transcendental functions.
 * Both fitted (weighted least squares on Chebyshev nodes, in double, for
 * this project); the comments give the fitted form and its error. */
#ifndef QB_KERNELS_MATH_COEFFS_H
#define QB_KERNELS_MATH_COEFFS_H

/* erfc(z) = t * P(t) * exp(-z^2), t = 1 / (1 + z / 2), 0 <= z <= 3.95;
 * |error| < 2e-8 with these float coefficients (3e-10 in exact arithmetic). */
#define QB_ERFC_P0 2.852354360e-01f
#define QB_ERFC_P1 2.452432748e-01f
#define QB_ERFC_P2 4.337011600e-01f
#define QB_ERFC_P3 -3.532674705e-01f
#define QB_ERFC_P4 9.807108395e-01f
#define QB_ERFC_P5 -8.821993959e-01f
#define QB_ERFC_P6 3.419643118e-01f
#define QB_ERFC_P7 -5.138815566e-02f
/* Past this z, erfc(z) < 2e-8 and is taken as 0 (erf rounds to 1). */
#define QB_ERFC_ZMAX 3.95f

/* tanh(x) = x + x^3 * Q(x^2) for |x| < 0.625, relative error 2e-10;
 * above it 1 - 2 / (exp(2x) + 1) has no harmful cancellation. */
#define QB_TANH_SMALL 0.625f
#define QB_TANH_Q0 -3.333333101e-01f
#define QB_TANH_Q1 1.333321250e-01f
#define QB_TANH_Q2 -5.394745417e-02f
#define QB_TANH_Q3 2.170400040e-02f
#define QB_TANH_Q4 -8.184661671e-03f
#define QB_TANH_Q5 2.148984108e-03f
/* tanh(9) rounds to 1 in float; clamping keeps exp(2x) finite. */
#define QB_TANH_XMAX 9.0f

/* exp(x) = 2^n * exp(r), r = x - n ln 2 split in two parts (Cody-Waite) so
 * r is exact to float precision; exp(r) by its Taylor series to r^7
 * (relative error 5e-9 for |r| <= ln2 / 2). */
#define QB_EXP_LOG2E 1.44269504089f
#define QB_EXP_LN2_HI 0.693359375f
#define QB_EXP_LN2_LO -2.12194440e-4f
#define QB_EXP_XMIN -87.33654f /* below: 0 (exp would be subnormal) */
#define QB_EXP_XMAX 88.37626f

#define QB_SQRT1_2 0.70710678118654752f
#define QB_SQRT_2_OVER_PI 0.79788456080286536f
#define QB_GELU_TANH_C 0.044715f

#endif
