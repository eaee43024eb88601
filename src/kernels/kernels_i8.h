/* Integer kernels for quantized linear layers: u8 activations x s8 weights
 * -> s32, with dequantization, bias, activation and residual fused in the
 * epilogue.  Activations carry a zero point per row, so one kernel serves
 * asymmetric per-token, asymmetric per-tensor and symmetric (zero point 128
 * after the u8 shift) schemes:
 *
 *   C[m,n] = act( a_scale[m] * w_scale[n] * (sum_k A[m,k] * W[n,k] - a_zero[m] * colsum[n]) + bias[n] )
 *            + residual[m,n]
 *
 * where colsum[n] = sum_k W[n,k] is computed when the weights are packed. */
#ifndef QB_KERNELS_I8_H
#define QB_KERNELS_I8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* Weights packed once (at load or quantize time) into the layout of one ISA. */
typedef struct {
    int N, K;
    qb_isa isa;          /* layout owner: kernels of another ISA refuse it */
    void *packed;        /* ISA-specific, 64-byte aligned, owned unless borrowed */
    bool borrowed;       /* packed is the caller's (a model's huge pages): not freed here */
    size_t packed_bytes;
    int32_t *colsum;     /* [N] */
    /* [N] -colsum[n] as two int16 (low: its 7 low bits, high: the rest,
     * floored), so one vpdpwssd against (zero, 128 * zero) subtracts
     * zero * colsum exactly, where vpmulld and vpsubd took three uops. */
    int32_t *colsum_split;
    float *scale;        /* [N] per output channel (per-tensor: all equal) */
    /* AVX2 only: every weight within [-64, 64] (--reduce-range), so they
     * are packed 4 k per column for vpmaddubsw, which cannot saturate on
     * them.  Other ISAs have one scheme and leave it false. */
    bool narrow;
} qb_i8_weights;

typedef struct {
    int M, N, K;
    const uint8_t *A;    /* M x K, row stride lda */
    int lda;
    const float *a_scale;   /* [M] */
    const int32_t *a_zero;  /* [M] */
    const qb_i8_weights *W;
    float *C;
    int ldc;
    const float *bias;      /* [N] or NULL */
    const float *residual;  /* M x N (stride ldr) or NULL */
    int ldr;
    qb_act act;
} qb_gemm_i8_args;

typedef struct qb_kernels_i8 {
    qb_isa isa;
    const char *name;
    /* AVX-512 only: gemm runs on AMX tiles (same packed weights, same
     * results bit for bit; rows past the last 16 and K % 64 != 0 use VNNI). */
    bool amx;
    /* Single-threaded GEMM over columns [n0, n1) of the problem (n0, n1
     * multiples of qb_i8_n_block() except at the end). */
    void (*gemm)(const qb_gemm_i8_args *a, int n0, int n1);
    /* Asymmetric per-row quantization of M rows of K floats to u8:
     * scale = (max(x, 0) - min(x, 0)) / 255, zero = round(-min / scale),
     * q = clamp(round_half_even(x * inv) + zero, 0, 255), inv = 1 / scale
     * rounded to float once per row (the product may differ from x / scale
     * in its last bit; every ISA rounds the same way). */
    void (*quantize_rows)(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale, int32_t *zero);
    /* Quantization with a fixed (static, calibrated) scale and zero point,
     * through the same reciprocal. */
    void (*quantize_rows_fixed)(const float *x, int M, int K, int ldx, float scale, int32_t zero, uint8_t *q, int ldq);
} qb_kernels_i8;

bool qb_kernels_i8_select(qb_isa isa, qb_kernels_i8 *k);
void qb_kernels_i8_init_scalar(qb_kernels_i8 *k);
void qb_kernels_i8_init_avx2(qb_kernels_i8 *k);
/* The AVX-512 table, with AMX tiles where the CPU and the OS allow them. */
void qb_kernels_i8_init_avx512(qb_kernels_i8 *k);
/* The same table held to AVX-512 VNNI (tests and benchmarks compare both). */
void qb_kernels_i8_init_avx512_vnni(qb_kernels_i8 *k);
/* AArch64: smlal on widened values, sdot, usmmla. */
void qb_kernels_i8_init_neon(qb_kernels_i8 *k);
void qb_kernels_i8_init_dotprod(qb_kernels_i8 *k);
void qb_kernels_i8_init_i8mm(qb_kernels_i8 *k);

/* Packs row-major s8 weights [N, K] (PyTorch's [out, in]) with per-channel
 * scales [N] for k's ISA.  Returns false on allocation failure. */
bool qb_i8_weights_pack(const qb_kernels_i8 *k, const int8_t *w, const float *scale, int N, int K,
                        qb_i8_weights *out);
/* The same in two steps, so that a load allocates in order and packs on
 * several threads: alloc sizes out's buffers and copies the scales (false
 * on allocation failure or a bad shape), fill packs w into them.  packed,
 * if not NULL, is the layout's storage (qb_i8_weights_bytes, 64-byte
 * aligned), which out then borrows. */
bool qb_i8_weights_alloc(const qb_kernels_i8 *k, const float *scale, int N, int K, void *packed,
                         qb_i8_weights *out);
void qb_i8_weights_fill(const qb_kernels_i8 *k, const int8_t *w, int N, int K, qb_i8_weights *out);
void qb_i8_weights_free(qb_i8_weights *w);

/* Bytes of k's packed layout for [N, K] weights (whole 64-byte lines). */
size_t qb_i8_weights_bytes(const qb_kernels_i8 *k, int N, int K);

/* Packs weights made at run time (int8 attention's K and V) into out's
 * buffers, which the caller sized once (packed: qb_i8_weights_bytes,
 * 64-byte aligned; colsum, colsum_split and scale: N entries), so nothing
 * is allocated per call.  One scale for every column; 1 <= K <= 32767. */
void qb_i8_weights_repack(const qb_kernels_i8 *k, const int8_t *w, float scale, int N, int K, qb_i8_weights *out);

/* rows x cols floats (ldx apart) to symmetric s8 on a fixed grid,
 * clamp(round_half_even(x * (1 / scale)), -128, 127), written row-major
 * (out[i * cols + j]) or transposed (out[j * rows + i]).  It runs k's u8
 * quantizer with zero point 128 into tmp (rows * cols bytes) and flips the
 * sign bit, so every ISA rounds as quantize_rows_fixed does. */
void qb_i8_quantize_s8(const qb_kernels_i8 *k, const float *x, int rows, int cols, int ldx, float scale, uint8_t *tmp,
                       int8_t *out, bool transpose);

/* Column granularity of gemm's [n0, n1) slices (64). */
int qb_i8_n_block(void);

/* Largest K (input features) the integer kernels take (32767). */
int qb_i8_k_max(void);

/* Multithreaded driver: splits N over pool's threads (NULL: the caller's
 * alone).  Does nothing if a->W was packed for another ISA. */
void qb_gemm_i8(const qb_kernels_i8 *k, const qb_gemm_i8_args *a, qb_pool *pool);

#endif
