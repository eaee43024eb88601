/* AVX-512 GEMM: an 8 x 48 register tile (24 zmm accumulators, 3 for B,
 * one broadcast of A) inside the shared blocked loop nest.  8 rows divide
 * BERT's M = batch * 128 exactly; 48 columns divide 768, 2304 and 3072. */
#include <immintrin.h>

#include "kernels/gemm_blocked.h"
#include "kernels/gemm_pack_avx.h"
#include "kernels/gemm_store_avx512.h"
#include "kernels/kernels_impl.h"
#include "kernels/vec_avx512.h"

#define MR QB_GEMM_AVX512_MR
#define NR QB_GEMM_AVX512_NR
#define KC QB_GEMM_AVX512_KC
#define NV_MAX (NR / 16)

static void qb_gemm_avx512_pack_b(const qb_gemm_f32_args *g, int n0, int cols, int k0, int kc, float *pb) {
    qb_gemm_pack_b_avx(g, n0, cols, k0, kc, pb, NR);
}

/* Line i of the output the tile's epilogue touches: C's lines (a row of
 * up to 3 lines each, or transposed, one line of each of cols rows), then
 * the residual's; NULL past them. */
static inline const float *qb_gemm_avx512_out_line(const qb_gemm_tile *t, int nv, int i) {
    int lines = t->trans ? t->cols : t->rows * nv;
    const float *base = t->c;
    size_t ld = (size_t)t->ldc;
    if (i >= lines) {
        i -= lines;
        base = t->residual;
        ld = (size_t)t->ldr;
        if (!base || i >= lines) return NULL;
    }
    return t->trans ? base + (size_t)i * ld : base + (size_t)(i / nv) * ld + 16 * (i % nv);
}

static inline __attribute__((always_inline)) void qb_gemm_avx512_tile(int nv, int kc, const float *pa, size_t lda,
                                                                      const float *pb, const qb_gemm_tile *t) {
    __m512 acc[MR][NV_MAX];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV_MAX; v++) acc[i][v] = _mm512_setzero_ps();
    /* Rows 0-3 and 4-7 of the strip as two bases and two strides, so
     * every broadcast is one base + index addressing mode: with a pointer
     * per row, GCC spilled one to the stack and reloaded it every step. */
    const char *a0 = (const char *)pa, *a4 = a0 + 4 * lda * sizeof(float);
    size_t l1 = lda * sizeof(float), l3 = 3 * l1;
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++, a0 += sizeof(float), a4 += sizeof(float)) {
        __m512 b[NV_MAX];
        /* one line of the next strip every second step: all MR rows of
         * the 16 columns from k, so kc steps fetch the whole strip */
        if (t->next && (k & 1) == 0)
            _mm_prefetch((const char *)(t->next + ((k >> 1) & 7) * lda + (k & ~15)), _MM_HINT_T1);
        /* The output the epilogue will touch, last seen a K block ago or
         * never: one line every 8 steps, since all of a tile's lines at once
         * held every fill buffer (transposed, N = 3072: +15%, in-process A/B). */
        if ((k & 7) == 1) {
            const float *line = qb_gemm_avx512_out_line(t, nv, k >> 3);
            if (line) _mm_prefetch((const char *)line, _MM_HINT_T0);
        }
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) b[v] = _mm512_loadu_ps(pb + (size_t)k * NR + 16 * v);
        const float *rows[MR] = {
            (const float *)a0,        (const float *)(a0 + l1), (const float *)(a0 + 2 * l1), (const float *)(a0 + l3),
            (const float *)a4,        (const float *)(a4 + l1), (const float *)(a4 + 2 * l1), (const float *)(a4 + l3),
        };
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(*rows[i]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
        }
    }
    if (t->trans)
        qb_gemm_avx512_store_trans(nv, acc, t);
    else
        qb_gemm_avx512_store(nv, acc, t);
}

/* Narrow panels (the last one of an N not divisible by 48, or the 64-wide
 * P.V of attention) skip the FMAs on all-zero columns. */
static void qb_gemm_avx512_micro(int kc, const float *pa, size_t lda, const float *pb, const qb_gemm_tile *t) {
    switch ((t->cols + 15) / 16) {
    case 1: qb_gemm_avx512_tile(1, kc, pa, lda, pb, t); break;
    case 2: qb_gemm_avx512_tile(2, kc, pa, lda, pb, t); break;
    default: qb_gemm_avx512_tile(3, kc, pa, lda, pb, t); break;
    }
}

static const qb_gemm_ukernel qb_gemm_avx512_ukernel = {
    .mr = MR,
    .nr = NR,
    .kc = KC,
    .nc = QB_GEMM_AVX512_NC,
    .pack_b = qb_gemm_avx512_pack_b,
    .micro = qb_gemm_avx512_micro,
    .trans = true,
};

void qb_gemm_f32_avx512(const qb_gemm_f32_args *g, float *pack) {
    qb_gemm_blocked_run(&qb_gemm_avx512_ukernel, g, pack);
}

void qb_gemm_f32_avx512_part(const qb_gemm_f32_args *g, int part, int n_parts, float *pack, int *packed) {
    qb_gemm_blocked_part(&qb_gemm_avx512_ukernel, g, part, n_parts, pack, packed);
}
