/* AVX-512 half-precision GEMM.
 *
 * BF16 weights with AVX512_BF16 and few rows (the dot path, see
 * kernels_h16.h for when it wins): the weights were packed at
 * load into panels of 48 columns x k-pairs, and vdpbf16ps multiplies one
 * broadcast pair of activations (rounded to BF16 by vcvtne2ps2bf16) by 16
 * columns' pairs, accumulating in FP32: an 8 x 48 register tile does twice
 * the multiply-adds of the FP32 kernel's per instruction, on half the bytes.
 * Blocking: N blocks of NC columns -> K blocks of KC -> 8-row strips of A
 * rounded into a small buffer (12 KiB, stays in L1) -> 48-column panels.
 *
 * FP16 weights, or BF16 otherwise (the widen path): chunks of
 * weight rows widened with vcvtph2ps or a shift, then the AVX-512 FP32 GEMM. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_blocked.h"
#include "kernels/gemm_h16_impl.h"
#include "kernels/gemm_store_avx512.h"
#include "kernels/vec_avx512.h"

#define MR 8
#define NR QB_H16_N_UNIT
#define NV_MAX (NR / 16)
_Static_assert(MR == QB_GEMM_AVX512_MR && NR == QB_GEMM_AVX512_NR, "the tile shares the FP32 epilogue");
/* KC is even and a multiple of 32 (whole conversions of 32 activations);
 * BERT's K = 768 is then one block, and a panel's 384 pairs (72 KiB) times
 * NC / NR = 8 panels keep the block of weights (576 KiB) in L2, as the
 * FP32 kernel's packed B does. */
#define KC 768
#define NC 384
#define PA_STRIDE (KC / 2) /* pairs per row of the rounded A strip */

static int qb_h16_min(int a, int b) { return a < b ? a : b; }

/* Lanes [0, count) on, for any count (negative: none). */
static __mmask16 qb_h16_mask(int count) { return count <= 0 ? 0 : qb_v16_mask(count); }

static void qb_h16_widen_f16_avx512(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = qb_h16_mask(n - i > 16 ? 16 : (int)(n - i));
        __m512 x = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, x);
    }
}

static void qb_h16_widen_bf16_avx512(const uint16_t *src, float *dst, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = qb_h16_mask(n - i > 16 ? 16 : (int)(n - i));
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
}

/* x[0, kc) rounded to BF16 pairs, zero up to the next multiple of 32 (so
 * an odd K's last pair meets the zero the packed weights hold there). */
static void qb_h16_round_row(const float *x, int kc, uint32_t *dst) {
    for (int k = 0; k < kc; k += 32) {
        __m512 lo = _mm512_maskz_loadu_ps(qb_h16_mask(kc - k), x + k);
        __m512 hi = _mm512_maskz_loadu_ps(qb_h16_mask(kc - k - 16), x + k + 16);
        _mm512_storeu_si512(dst + k / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/* A ragged strip's missing rows are zero so the tile is always whole. */
static void qb_h16_round_strip(const float *a, size_t lda, int rows, int kc, uint32_t *pa) {
    for (int i = 0; i < MR; i++) {
        if (i < rows) qb_h16_round_row(a + (size_t)i * lda, kc, pa + (size_t)i * PA_STRIDE);
        else memset(pa + (size_t)i * PA_STRIDE, 0, (size_t)(kc + 1) / 2 * sizeof *pa);
    }
}

static inline __attribute__((always_inline)) void qb_h16_dot_tile(int nv, int pairs, const uint32_t *pa,
                                                                  const uint32_t *pb, const qb_gemm_tile *t) {
    __m512 acc[MR][NV_MAX];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV_MAX; v++) acc[i][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int p = 0; p < pairs; p++) {
        __m512bh b[NV_MAX];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) b[v] = (__m512bh)_mm512_load_si512(pb + (size_t)p * NR + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)pa[i * PA_STRIDE + p]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], x, b[v]);
        }
    }
    qb_gemm_avx512_store(nv, acc, t); /* the tile has alpha 1 */
}

/* The last panel of an N not divisible by 48 skips all-zero columns. */
static void qb_h16_dot_micro(int pairs, const uint32_t *pa, const uint32_t *pb, const qb_gemm_tile *t) {
    switch ((t->cols + 15) / 16) {
    case 1: qb_h16_dot_tile(1, pairs, pa, pb, t); break;
    case 2: qb_h16_dot_tile(2, pairs, pa, pb, t); break;
    default: qb_h16_dot_tile(3, pairs, pa, pb, t); break;
    }
}

/* The fewest K blocks of at most KC, equal and even, so every block but
 * the last holds whole pairs. */
static int qb_h16_k_step(int K) {
    int blocks = (K + KC - 1) / KC;
    int step = (K + blocks - 1) / blocks;
    return (step + 1) / 2 * 2;
}

/* One row strip against every panel of the N block [nb, nb + nc). */
static void qb_h16_dot_strip(const qb_gemm_h16_args *a, int m0, int nb, int nc, int k0, int kc, const uint32_t *pa,
                             qb_gemm_tile *t) {
    const qb_h16_weights *W = a->W;
    size_t panel_pairs = (size_t)(W->K + 1) / 2 * NR;
    for (int j = nb; j < nb + nc; j += NR) {
        const uint32_t *pb = W->pairs + (size_t)(j / NR) * panel_pairs + (size_t)(k0 / 2) * NR;
        t->c = a->C + (size_t)m0 * a->ldc + j;
        t->cols = qb_h16_min(NR, nb + nc - j);
        t->bias = t->finish && a->bias ? a->bias + j : NULL;
        t->residual = t->finish && a->residual ? a->residual + (size_t)m0 * a->ldr + j : NULL;
        qb_h16_dot_micro((kc + 1) / 2, pa, pb, t);
    }
}

static void qb_h16_dot_run(const qb_gemm_h16_args *a, int n0, int n1, uint32_t *pa) {
    int K = a->W->K, k_step = qb_h16_k_step(K);
    for (int nb = n0; nb < n1; nb += NC) {
        int nc = qb_h16_min(NC, n1 - nb);
        for (int k0 = 0; k0 < K; k0 += k_step) {
            int kc = qb_h16_min(k_step, K - k0);
            qb_gemm_tile t = {
                .ldc = a->ldc, .alpha = 1.0f, .accumulate = k0 > 0, .finish = k0 + kc == K,
                .ldr = a->ldr, .act = a->act,
            };
            for (int m0 = 0; m0 < a->M; m0 += MR) {
                t.rows = qb_h16_min(MR, a->M - m0);
                qb_h16_round_strip(a->A + (size_t)m0 * a->lda + k0, (size_t)a->lda, t.rows, kc, pa);
                qb_h16_dot_strip(a, m0, nb, nc, k0, kc, pa, &t);
            }
        }
    }
}

/* qb_h16_widen_pairs_fn: the low half of a pair's word is row 2p, the
 * high half row 2p + 1 (BF16 to FP32 is a 16-bit shift); the FP32 GEMM
 * then computes what it computes from widened rows, bit for bit. */
static void qb_h16_widen_pairs(const qb_h16_weights *W, int first, int panels, float *wide) {
    size_t pairs = (size_t)(W->K + 1) / 2, ld = (size_t)panels * NR;
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    for (size_t p = 0; p < pairs; p++) {
        float *even = wide + 2 * p * ld, *odd = even + ld;
        bool has_odd = 2 * p + 1 < (size_t)W->K;
        for (int q = 0; q < panels; q++) {
            const uint32_t *src = W->pairs + ((size_t)(first + q) * pairs + p) * NR;
            for (int v = 0; v < NV_MAX; v++) {
                __m512i x = _mm512_load_si512(src + 16 * v);
                _mm512_storeu_si512(even + q * NR + 16 * v, _mm512_slli_epi32(x, 16));
                if (has_odd) _mm512_storeu_si512(odd + q * NR + 16 * v, _mm512_and_si512(x, high));
            }
        }
    }
}

void qb_gemm_h16_avx512(const qb_gemm_h16_args *a, int n0, int n1, float *pack) {
    const qb_h16_weights *W = a->W;
    bool few_rows = a->M <= QB_H16_DOT_MAX_ROWS || W->N < QB_H16_ROW_SPLIT_N;
    if (W->type == QB_H16_BF16 && W->pairs && few_rows) {
        qb_h16_dot_run(a, n0, n1, (uint32_t *)(void *)pack);
        return;
    }
    qb_h16_widen_fn widen = W->type == QB_H16_BF16 ? qb_h16_widen_bf16_avx512 : qb_h16_widen_f16_avx512;
    qb_gemm_h16_widened(a, n0, n1, pack, widen, qb_h16_widen_pairs, qb_gemm_f32_avx512);
}
