/* Internal declarations shared by the files of the kernels module. */
#ifndef QB_KERNELS_IMPL_H
#define QB_KERNELS_IMPL_H

#include "kernels/kernels.h"

/* The reference activation of one value: defines what every SIMD path must
 * reproduce. */
float qb_act_ref(qb_act act, float x);

/* Single-threaded GEMM entry points, one per ISA. */
void qb_gemm_f32_scalar(const qb_gemm_f32_args *g, float *pack);
void qb_gemm_f32_avx2(const qb_gemm_f32_args *g, float *pack);
void qb_gemm_f32_avx2_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed);
void qb_gemm_f32_avx2_panels(const float *w, int N, int K, float *panels);
void qb_gemm_f32_avx512(const qb_gemm_f32_args *g, float *pack);
void qb_gemm_f32_avx512_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed);
void qb_gemm_f32_neon(const qb_gemm_f32_args *g, float *pack);
void qb_gemm_f32_neon_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed);

#endif
