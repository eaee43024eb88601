/* Internal declarations shared by the half-precision GEMM files. */
#ifndef QB_KERNELS_GEMM_H16_IMPL_H
#define QB_KERNELS_GEMM_H16_IMPL_H

#include "kernels/kernels_h16.h"
#include "kernels/kernels_impl.h"

/* Scratch of the widen path: a column chunk of weights as FP32, after the
 * FP32 GEMM's own packing buffer.  1 MiB keeps 336 columns of K = 768 or
 * 80 of K = 3072 beside the FP32 GEMM's ~0.6 MiB of packed B in a 2 MiB L2,
 * and holds 16 rows of QB_H16_K_MAX. */
#define QB_H16_WIDE_FLOATS (16 * QB_H16_K_MAX)

/* Converts n consecutive 16-bit values to FP32. */
typedef void (*qb_h16_widen_fn)(const uint16_t *src, float *dst, size_t n);
/* Widens 48-column panels [first, first + panels) of the k-pair layout to
 * a K x (48 * panels) row-major FP32 matrix. */
typedef void (*qb_h16_widen_pairs_fn)(const qb_h16_weights *W, int first, int panels, float *wide);
typedef void (*qb_gemm_f32_fn)(const qb_gemm_f32_args *g, float *pack);

/* The widen path over columns [n0, n1): chunks of the weights are widened
 * into the scratch and handed to an FP32 GEMM with the full epilogue (a
 * chunk spans all of K, so bias and activation apply once).  The chunks
 * come from the packed pairs where widen_pairs is given and covers K (so
 * the row layout need not stay resident), else from the rows. */
void qb_gemm_h16_widened(const qb_gemm_h16_args *a, int n0, int n1, float *pack, qb_h16_widen_fn widen,
                         qb_h16_widen_pairs_fn widen_pairs, qb_gemm_f32_fn gemm);

#endif
