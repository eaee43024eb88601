/* Kernels for half-precision linear layers: FP16 or BF16 weights kept 16-bit
 * in memory, FP32 activations in and out, FP32 accumulation:
 *
 *   C[m,n] = act( sum_k A[m,k] * W[n,k] + bias[n] ) + residual[m,n]
 *
 * Two ways to compute it, chosen per ISA and weight type:
 *   widen:  column chunks of W are converted to FP32 (F16C vcvtph2ps, or a
 *           16-bit shift for BF16) into per-thread scratch and run through
 *           the FP32 GEMM, so results match FP32 math on the widened weights;
 *   dot:    BF16 weights on CPUs with AVX512_BF16 are packed at load into
 *           k-pairs for vdpbf16ps; activations are rounded to BF16 (nearest
 *           even) strip by strip, so A is effectively bf16(A) on this path.
 *           It is taken for few rows (or narrow weights), where it skips the
 *           per-call widening; on Sapphire Rapids vdpbf16ps retires one per
 *           cycle against two FP32 FMAs, so with many rows widening is faster. */
#ifndef QB_KERNELS_H16_H
#define QB_KERNELS_H16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

typedef enum { QB_H16_F16, QB_H16_BF16 } qb_h16_type;

/* Widening converts whole weight rows of one column chunk: scratch for at
 * least 16 rows bounds K.  The largest K of the supported architectures is
 * ALBERT-xxlarge's intermediate size, 16384. */
#define QB_H16_K_MAX 16384
/* Thread splits and the dot path's weight panels are this many columns. */
#define QB_H16_N_UNIT 48
/* Weights narrower than this (classifier heads) split rows across threads
 * instead of columns.  It does not depend on the thread count, so neither
 * does the path a kernel picks: results are the same for any count. */
#define QB_H16_ROW_SPLIT_N (2 * QB_H16_N_UNIT)
/* Up to this many rows the dot path beats widening: 1 thread, K = 768,
 * M = 8: 78 GFLOP/s against 29; M = 32: 77 against 72; M = 128: 77
 * against 105. */
#define QB_H16_DOT_MAX_ROWS 64

typedef struct {
    int N, K;
    qb_h16_type type;
    const uint16_t *w;  /* [N, K] as PyTorch stores it ([out, in]), 2-byte aligned, not owned */
    uint32_t *pairs;    /* dot path only: packed by qb_h16_weights_prepare (owned), else NULL */
    size_t pairs_bytes;
} qb_h16_weights;

typedef struct qb_gemm_h16_args {
    int M;
    const float *A;     /* M x W->K, row stride lda */
    int lda;
    const qb_h16_weights *W;
    float *C;           /* M x W->N, row stride ldc */
    int ldc;
    const float *bias;     /* [N] or NULL */
    const float *residual; /* M x N (stride ldr) or NULL */
    int ldr;
    qb_act act;
} qb_gemm_h16_args;

/* Fills k's half-precision entries (gemm_h16, h16_bf16_dot) for isa;
 * qb_kernels_select calls it. */
void qb_kernels_h16_init(qb_isa isa, qb_kernels *k);

/* Whether the CPU (and OS) run vdpbf16ps: CPUID.(7,1):EAX bit 5 on top of
 * the AVX-512 tier. */
bool qb_cpu_has_avx512_bf16(void);

/* Describes the 16-bit weights w [N, K] in out and, when k computes BF16 on
 * the dot path, packs them (allocating out->pairs).  false when out of
 * memory or K > QB_H16_K_MAX; out is then left without pairs. */
bool qb_h16_weights_prepare(const qb_kernels *k, const uint16_t *w, qb_h16_type type, int N, int K,
                            qb_h16_weights *out);
/* The same in two steps, so that a load allocates in order and packs on
 * several threads: alloc describes w and allocates the pairs, fill packs
 * them (nothing without pairs). */
bool qb_h16_weights_alloc(const qb_kernels *k, const uint16_t *w, qb_h16_type type, int N, int K,
                          qb_h16_weights *out);
void qb_h16_weights_fill(qb_h16_weights *w);
void qb_h16_weights_release(qb_h16_weights *w);
/* Whether gemm_h16 still reads the row layout w->w: false when every path
 * reads the packed pairs (BF16 on AVX512_BF16, K <= 5460), so the caller
 * may let the rows' memory go. */
bool qb_h16_weights_rows_needed(const qb_h16_weights *w);

/* Floats of scratch one thread's gemm_h16 needs (64-byte aligned). */
size_t qb_gemm_h16_pack_floats(void);

/* Multithreaded driver, split like qb_gemm_f32 (columns in units of
 * QB_H16_N_UNIT, rows when N is too narrow); scratch holds
 * qb_pool_threads(pool) * qb_gemm_h16_pack_floats() floats. */
void qb_gemm_h16(const qb_kernels *k, const qb_gemm_h16_args *a, qb_pool *pool, float *scratch);

/* Single-threaded entry points over columns [n0, n1) (n0 a multiple of
 * QB_H16_N_UNIT); the tables hold them, the tests call them directly.
 * The scalar references: exact FP32 activations, and activations first
 * rounded to BF16 (what the dot path computes). */
void qb_gemm_h16_scalar(const qb_gemm_h16_args *a, int n0, int n1, float *pack);
void qb_gemm_h16_scalar_bf16_acts(const qb_gemm_h16_args *a, int n0, int n1, float *pack);
void qb_gemm_h16_avx2(const qb_gemm_h16_args *a, int n0, int n1, float *pack);
/* AArch64: FP16 widened with fcvtl (ARMv8.0), BF16 with a shift, then the NEON FP32 GEMM. */
void qb_gemm_h16_neon(const qb_gemm_h16_args *a, int n0, int n1, float *pack);
/* The dot path for BF16 weights with pairs when M <= QB_H16_DOT_MAX_ROWS
 * or N < QB_H16_ROW_SPLIT_N, the widen path otherwise. */
void qb_gemm_h16_avx512(const qb_gemm_h16_args *a, int n0, int n1, float *pack);

#endif
