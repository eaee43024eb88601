/* Half-precision GEMM plumbing compiled for the baseline architecture: which path a
 * table takes, the load-time packing of BF16 weights for the dot path, and
 * the widen path's chunk loop that the SIMD files share. */
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_h16_impl.h"

/* The k-pair layout of the dot path: panels of QB_H16_N_UNIT columns, each
 * holding, for every pair of k, the column's (W[n,2p], W[n,2p+1]) as one
 * 32-bit word (even k in the low half, as vdpbf16ps pairs them). */
static size_t qb_h16_pairs_count(int N, int K) {
    size_t panels = (size_t)(N + QB_H16_N_UNIT - 1) / QB_H16_N_UNIT;
    return panels * QB_H16_N_UNIT * (size_t)((K + 1) / 2);
}

static void qb_h16_pack_pairs(const uint16_t *w, int N, int K, uint32_t *out) {
    size_t pairs = (size_t)(K + 1) / 2;
    for (int n = 0; n < N; n++) {
        uint32_t *col = out + (size_t)(n / QB_H16_N_UNIT) * pairs * QB_H16_N_UNIT + n % QB_H16_N_UNIT;
        const uint16_t *row = w + (size_t)n * K;
        for (int k = 0; k < K; k += 2) {
            uint32_t hi = k + 1 < K ? row[k + 1] : 0;
            col[(size_t)(k / 2) * QB_H16_N_UNIT] = row[k] | hi << 16;
        }
    }
}

bool qb_h16_weights_alloc(const qb_kernels *k, const uint16_t *w, qb_h16_type type, int N, int K,
                          qb_h16_weights *out) {
    *out = (qb_h16_weights){.N = N, .K = K, .type = type, .w = w};
    if (N <= 0 || K <= 0 || K > QB_H16_K_MAX) return false;
    if (type != QB_H16_BF16 || !k->h16_bf16_dot) return true;
    size_t bytes = qb_h16_pairs_count(N, K) * sizeof(uint32_t);
    out->pairs = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!out->pairs) return false;
    out->pairs_bytes = bytes;
    return true;
}

void qb_h16_weights_fill(qb_h16_weights *w) {
    if (!w->pairs) return;
    /* Padding columns stay zero: the kernel computes whole panels. */
    memset(w->pairs, 0, (w->pairs_bytes + 63) / 64 * 64);
    qb_h16_pack_pairs(w->w, w->N, w->K, w->pairs);
}

bool qb_h16_weights_prepare(const qb_kernels *k, const uint16_t *w, qb_h16_type type, int N, int K,
                            qb_h16_weights *out) {
    if (!qb_h16_weights_alloc(k, w, type, N, K, out)) return false;
    qb_h16_weights_fill(out);
    return true;
}

void qb_h16_weights_release(qb_h16_weights *w) {
    free(w->pairs);
    w->pairs = NULL;
    w->pairs_bytes = 0;
}

/* Columns per widened chunk of rows: as many whole rows as the scratch
 * holds, in units that keep the FP32 kernels' panels full (48 for AVX-512,
 * 16 for AVX2). */
static int qb_h16_chunk_cols(int K) {
    int rows = QB_H16_WIDE_FLOATS / K;
    return rows >= QB_H16_N_UNIT ? rows / QB_H16_N_UNIT * QB_H16_N_UNIT : rows / 16 * 16;
}

/* The same from the pairs, in whole 48-column panels: 0 when not even one
 * fits (K > 5460). */
static int qb_h16_pairs_chunk_cols(int K) {
    return QB_H16_WIDE_FLOATS / (QB_H16_N_UNIT * ((K + 1) / 2 * 2)) * QB_H16_N_UNIT;
}

bool qb_h16_weights_rows_needed(const qb_h16_weights *w) { return !w->pairs || qb_h16_pairs_chunk_cols(w->K) == 0; }

size_t qb_gemm_h16_pack_floats(void) { return qb_gemm_f32_pack_floats() + QB_H16_WIDE_FLOATS; }

#if defined(__x86_64__)
#include <cpuid.h>

/* The AVX-512 tier already checked that the OS saves the ZMM state. */
bool qb_cpu_has_avx512_bf16(void) {
    unsigned a, b, c, d;
    const uint32_t avx512_bf16 = 1u << 5;
    if (!qb_isa_supported(QB_ISA_AVX512)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || a < 1) return false;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & avx512_bf16);
}
#else
bool qb_cpu_has_avx512_bf16(void) { return false; }
#endif

void qb_kernels_h16_init(qb_isa isa, qb_kernels *k) {
    switch (isa) {
#if defined(__x86_64__)
    case QB_ISA_AVX512:
        k->gemm_h16 = qb_gemm_h16_avx512;
        k->h16_bf16_dot = qb_cpu_has_avx512_bf16();
        break;
    case QB_ISA_AVX2:
        k->gemm_h16 = qb_gemm_h16_avx2;
        k->h16_bf16_dot = false;
        break;
#elif defined(__aarch64__)
    case QB_ISA_NEON:
    case QB_ISA_DOTPROD:
    case QB_ISA_I8MM:
        k->gemm_h16 = qb_gemm_h16_neon;
        k->h16_bf16_dot = false;
        break;
#endif
    default:
        k->gemm_h16 = qb_gemm_h16_scalar;
        k->h16_bf16_dot = false;
        break;
    }
}

void qb_gemm_h16_widened(const qb_gemm_h16_args *a, int n0, int n1, float *pack, qb_h16_widen_fn widen,
                         qb_h16_widen_pairs_fn widen_pairs, qb_gemm_f32_fn gemm) {
    const qb_h16_weights *W = a->W;
    float *wide = pack + qb_gemm_f32_pack_floats();
    bool from_pairs = widen_pairs && !qb_h16_weights_rows_needed(W);
    int step = from_pairs ? qb_h16_pairs_chunk_cols(W->K) : qb_h16_chunk_cols(W->K);
    for (int n = n0; n < n1; n += step) {
        int cols = n1 - n < step ? n1 - n : step;
        qb_gemm_f32_args g = {
            .M = a->M, .N = cols, .K = W->K,
            .A = a->A, .lda = a->lda,
            .B = wide, .ldb = W->K, .b_trans = true,
            .C = a->C + n, .ldc = a->ldc,
            .bias = a->bias ? a->bias + n : NULL,
            .residual = a->residual ? a->residual + n : NULL, .ldr = a->ldr,
            .alpha = 1.0f, .act = a->act,
        };
        if (from_pairs) {
            /* panels from n, a multiple of 48; rows 2p and 2p + 1 of the block */
            int panels = (cols + QB_H16_N_UNIT - 1) / QB_H16_N_UNIT;
            widen_pairs(W, n / QB_H16_N_UNIT, panels, wide);
            g.ldb = panels * QB_H16_N_UNIT;
            g.b_trans = false;
        } else {
            widen(W->w + (size_t)n * W->K, wide, (size_t)cols * W->K);
        }
        gemm(&g, pack);
    }
}
