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

/* Columns per widened chunk, as many whole rows as the scratch holds, in
 * units that keep the FP32 kernels' panels full (48 for AVX-512, 16 for
 * AVX2); qb_h16_pairs_chunk_cols: whole 48-column panels of the k-pair
 * layout, or 0 when not even one fits (K > 5461). */
static inline int qb_h16_chunk_cols(int K) {
    int rows = QB_H16_WIDE_FLOATS / K;
    return rows >= QB_H16_N_UNIT ? rows / QB_H16_N_UNIT * QB_H16_N_UNIT : rows / 16 * 16;
}

static inline int qb_h16_pairs_chunk_cols(int K) {
    int panels = QB_H16_WIDE_FLOATS / (QB_H16_N_UNIT * ((K + 1) / 2 * 2));
    return panels * QB_H16_N_UNIT;
}

/* Converts n consecutive 16-bit values to FP32. */
typedef void (*qb_h16_widen_fn)(const uint16_t *src, float *dst, size_t n);
typedef void (*qb_gemm_f32_fn)(const qb_gemm_f32_args *g, float *pack);

/* The widen path over columns [n0, n1): chunks of whole weight rows are
 * widened into the scratch and handed to an FP32 GEMM with the full
 * epilogue (a chunk spans all of K, so bias and activation apply once). */
void qb_gemm_h16_widened(const qb_gemm_h16_args *a, int n0, int n1, float *pack, qb_h16_widen_fn widen,
                         qb_gemm_f32_fn gemm);

#endif
