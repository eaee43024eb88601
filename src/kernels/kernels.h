/* Compute kernels, separated from the graph.  Each op has a scalar
 * reference (the definition) and SIMD versions; one table of function
 * pointers is chosen once from CPUID (or $QBERT_ISA) when a model is
 * loaded, and the graph only ever calls through it. */
#ifndef QB_KERNELS_H
#define QB_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pool.h"

/* One list for every architecture: a binary supports the scalar set and
 * its own architecture's sets (x86-64: avx2, avx512; AArch64: neon =
 * ARMv8.0 Advanced SIMD, dotprod = + SDOT/UDOT, i8mm = + SMMLA/USMMLA). */
typedef enum {
    QB_ISA_SCALAR,
    QB_ISA_AVX2,
    QB_ISA_AVX512,
    QB_ISA_NEON,
    QB_ISA_DOTPROD,
    QB_ISA_I8MM,
    QB_ISA_COUNT
} qb_isa;

typedef enum {
    QB_ACT_NONE,
    QB_ACT_GELU,      /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
    QB_ACT_GELU_TANH, /* HF "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    QB_ACT_RELU,
    QB_ACT_TANH
} qb_act;

/* C = act(alpha * A.B + bias) + residual, all row-major FP32.
 *   A is M x K:  A[m * lda + k]
 *   B is K x N:  b_trans ? B[n * ldb + k] (a Linear weight [out, in])
 *                        : B[k * ldb + n]
 *   bias [N] and residual (M x N, stride ldr) may be NULL. */
typedef struct {
    int M, N, K;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    bool b_trans;
    float *C;
    int ldc;
    const float *bias;
    const float *residual;
    int ldr;
    float alpha;
    qb_act act;
    /* The same b_trans B as packed once by the kernels'
     * gemm_f32_pack_panels, so no call packs it, or NULL.  Kernels that
     * pack panels read them whenever given, so B may then be NULL. */
    const float *B_panels;
} qb_gemm_f32_args;

struct qb_gemm_h16_args; /* kernels_h16.h */

typedef struct qb_kernels {
    qb_isa isa;
    const char *name; /* qb_isa_name(isa) */
    /* Single-threaded GEMM over the whole problem; pack is a buffer of
     * qb_gemm_f32_pack_floats() floats, 64-byte aligned. */
    void (*gemm_f32)(const qb_gemm_f32_args *a, float *pack);
    bool gemm_f32_swaps; /* gemm_f32 runs few-row problems swapped (gemm_blocked.h) */
    /* Part `part` of n_parts of gemm_f32, cut by strips of rows, each part
     * packing every block itself (gemm_blocked.h: qb_gemm_blocked_part);
     * NULL where there is none. */
    void (*gemm_f32_part)(const qb_gemm_f32_args *a, int part, int n_parts, float *pack, int *packed);
    /* Packs a weight [N, K] into the panels gemm_f32 and gemm_f32_part then
     * read as qb_gemm_f32_args.B_panels (qb_gemm_f32_panels_floats of
     * them, 64-byte aligned); NULL where they pack per call. */
    void (*gemm_f32_pack_panels)(const float *w, int N, int K, float *panels);
    int gemm_f32_panel; /* the panels' width, a divisor of 16 */
    /* y = (x - mean) / sqrt(var + eps) * gamma + beta over one row of n. y may be x. */
    void (*layernorm_f32)(const float *x, const float *gamma, const float *beta, float eps, int n, float *y);
    /* In-place softmax of one row of n (n >= 1). */
    void (*softmax_f32)(float *x, int n);
    /* In-place activation of n values. */
    void (*act_f32)(qb_act act, float *x, int n);
    /* Half-precision linear over columns [n0, n1) (kernels_h16.h); pack is
     * qb_gemm_h16_pack_floats() floats, 64-byte aligned. */
    void (*gemm_h16)(const struct qb_gemm_h16_args *a, int n0, int n1, float *pack);
    bool h16_bf16_dot; /* BF16 weights run on vdpbf16ps: pack them at load */
    /* Index of the first of n elements of elem_size bytes (4 or 2, at any
     * byte offset) whose bits under exp_mask are all set (a NaN or an
     * infinity when exp_mask is the exponent field), or -1. */
    int64_t (*find_nonfinite)(const void *p, int64_t n, int elem_size, uint32_t exp_mask);
} qb_kernels;

/* Best ISA the running CPU (and OS) supports. */
qb_isa qb_cpu_best_isa(void);
#if defined(__x86_64__)
/* Whether the CPU is AMD's, for the few tunings measured to differ by vendor. */
bool qb_cpu_amd(void);
#endif
bool qb_isa_supported(qb_isa isa);
bool qb_isa_from_name(const char *name, qb_isa *out);
const char *qb_isa_name(qb_isa isa);

/* Fills k with isa's kernels; false if this CPU cannot run them. */
bool qb_kernels_select(qb_isa isa, qb_kernels *k);

/* Floats of packing scratch one thread's gemm_f32 needs. */
size_t qb_gemm_f32_pack_floats(void);

/* Floats of a weight [N, K] packed once by k->gemm_f32_pack_panels, 0
 * where k packs per call instead. */
size_t qb_gemm_f32_panels_floats(const qb_kernels *k, int N, int K);

/* How many parts the multithreaded GEMMs cut a problem into, given how many
 * minimal column parts it holds: up to 4 per thread, at least 1 per thread.
 * The parts are handed out as threads come free (qb_pool_run):
 * cores of one machine do not run alike (on a shared host one vCPU ran
 * memory-bound GEMMs 25% slower than the other), and a fixed half each
 * waited on the slower one. */
int qb_gemm_parts(int units, int team);

/* Part t's share [*begin, *end) of `units` items cut into `team` parts as
 * evenly as possible. */
static inline void qb_gemm_part_range(int units, int t, int team, int *begin, int *end) {
    *begin = (int)((long)units * t / team);
    *end = (int)((long)units * (t + 1) / team);
}

/* Part t of `team` of the integer GEMMs' M x N outputs: rows [*m0, *m1)
 * by columns [*n0, *n1), whole blocks of `block` columns while there are
 * at least team of them (or fewer rows than team), all columns and a
 * share of the rows otherwise.  False when the part is empty. */
static inline bool qb_gemm_part_block(int M, int N, int block, int t, int team, int *m0, int *m1, int *n0, int *n1) {
    int blocks = (N + block - 1) / block;
    if (blocks >= team || M < team) {
        int b0, b1;
        qb_gemm_part_range(blocks, t, team, &b0, &b1);
        *m0 = 0;
        *m1 = M;
        *n0 = b0 * block;
        *n1 = b1 * block < N ? b1 * block : N;
        return b1 > b0;
    }
    qb_gemm_part_range(M, t, team, m0, m1);
    *n0 = 0;
    *n1 = N;
    return *m1 > *m0;
}

/* Multithreaded GEMM: splits the problem over pool's threads, each with
 * its own slice of scratch (qb_pool_threads(pool) *
 * qb_gemm_f32_pack_floats() floats).  pool NULL runs it on the caller. */
void qb_gemm_f32(const qb_kernels *k, const qb_gemm_f32_args *a, qb_pool *pool, float *scratch);

/* Per-ISA tables, defined in the per-ISA files. */
void qb_kernels_init_scalar(qb_kernels *k);
void qb_kernels_init_avx2(qb_kernels *k);
void qb_kernels_init_avx512(qb_kernels *k);
/* The AArch64 levels share the float kernels (ARMv8.0 NEON). */
void qb_kernels_init_neon(qb_isa isa, qb_kernels *k);

#endif
