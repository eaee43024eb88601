/* AVX-512 weight-only kernels: the row decoder, and for few rows (up to
 * a seq-128 sentence) a GEMM that multiplies straight from the codes.
 *
 * For few rows each decoded weight meets few FMAs, so a decode pass ahead
 * of the multiply costs about a tenth of it, in series, while the
 * decode's operations would fit on ports the FMAs leave idle.
 * gemm_f32_few therefore runs a block swapped, as the FP32 kernel runs
 * few-row problems (C^T = W x^T, its 8 x 48 tile and transposed store):
 * the pass of each 8-row strip of W over the first 48 rows of x decodes
 * the strip 16 k at a time between the FMAs that use it, so the two
 * overlap, and the passes over later panels of 48 rows read the strip as
 * it decoded it (L1 or L2).  x is packed once a call per thread. */
#include <immintrin.h>

#include "kernels/gemm_pack_avx.h"
#include "kernels/gemm_store_avx512.h"
#include "kernels/kernels_lowbit.h"
#include "kernels/lowbit_x86.h"

#define QB_LB_RUN 16 /* k decoded at a time */

/* A run of row codes from k as scale * (code - zero), or as entries of
 * the book by a permute, a loop per code. */
static inline __attribute__((always_inline)) void qb_lb_values_of(qb_code code, bool book, const qb_lb_row *r, int k,
                                                                  int run, __m512 s, __m512i z, float *out) {
    const __m512 entries = _mm512_load_ps(r->book);
    for (int i = 0; i < run; i += QB_LB_RUN) {
        __m512i c = _mm512_cvtepu8_epi32(qb_lb_row_codes16(code, r->row, r->high, k + i));
        __m512 v = book ? _mm512_permutexvar_ps(c, entries)
                        : _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(c, z)));
        _mm512_storeu_ps(out + i, v);
    }
}

static void qb_lb_values(const qb_lb_row *r, int k, int run, float scale, int zero, float *out) {
    __m512 s = _mm512_set1_ps(scale);
    __m512i z = _mm512_set1_epi32(zero);
#define QB_LB_VALUES(code, book) qb_lb_values_of(code, book, r, k, run, s, z, out)
    QB_LB_WITH_CODE(r->w, QB_LB_VALUES)
#undef QB_LB_VALUES
}

void qb_lowbit_dequantize_avx512(const qb_lowbit_weights *w, int n, int k0, int count, float *out) {
    qb_lb_dequantize_row(w, n, k0, count, out, qb_lb_values);
}

#define MR QB_GEMM_AVX512_MR
#define NV QB_GEMM_AVX512_NV
#define PANEL (16 * NV) /* rows of x a pass: the FP32 tile's 48 */
_Static_assert(QB_LOWBIT_FEW_FLOATS(1) == QB_LOWBIT_FEW_ROWS + MR, "the scratch holds x packed, then a strip");

/* One strip of W, rows [n, n + rows) (rows <= MR; the missing ones
 * repeat the last and are not stored), against one panel of x, rows
 * [m0, m0 + mc) packed [K][16 nv].  The pass over the first panel decodes
 * the strip, into dec ([K / 16][MR][16]) where more panels follow and
 * read it there, else into a buffer on the stack. */
typedef struct {
    const qb_lowbit_f32_args *a;
    const float *xp;
    float *dec;
    int n, rows, m0, mc;
} qb_lb_strip;

/* Each strip row's decoder, and (grids) its scale and zero point for the
 * group of k: set inline in the k loop, since a call there spills the
 * accumulators around it. */
typedef struct {
    qb_lb_row r[MR];
    float scale[MR];
    int zero[MR], n[MR];
} qb_lb_strip_rows;

static void qb_lb_strip_rows_init(const qb_lb_strip *s, qb_lb_strip_rows *p) {
    const qb_lowbit_weights *w = s->a->W;
    for (int i = 0; i < MR; i++) {
        p->n[i] = s->n + (i < s->rows ? i : s->rows - 1);
        p->r[i] = (qb_lb_row){.w = w, .row = w->rows + (size_t)p->n[i] * w->row_bytes,
                              .high = qb_code_row_bytes(QB_CODE_U2, w->K)};
        if (w->codebook) qb_lb_row_book(w, p->n[i], p->r[i].book);
    }
}

static inline __attribute__((always_inline)) void qb_lb_strip_rows_group(const qb_lowbit_weights *w, int g,
                                                                          qb_lb_strip_rows *p) {
    for (int i = 0; i < MR; i++) {
        p->scale[i] = w->scale[(size_t)p->n[i] * w->G + g];
        p->zero[i] = qb_lowbit_zero_point(w, p->n[i], g);
    }
}

/* CALL(nv) with nv (1 to NV, the vectors of a panel's rows) a constant. */
#define QB_LB_BY_NV(nv, CALL) \
    switch (nv) {             \
    case 1: CALL(1); break;   \
    case 2: CALL(2); break;   \
    default: CALL(3); break;  \
    }

/* The strip's epilogue, apart from the loops so that one copy serves
 * every code (the sums pass through memory once a pass). */
static void qb_lb_strip_store(int nv, __m512 acc[MR][NV], const qb_lb_strip *s) {
    const qb_lowbit_f32_args *a = s->a;
    qb_gemm_tile t = {.c = a->C + (size_t)s->m0 * a->ldc + s->n, .ldc = a->ldc, .rows = s->rows, .cols = s->mc,
                      .alpha = 1.0f, .finish = true, .trans = true, .bias = a->bias ? a->bias + s->n : NULL,
                      .residual = a->residual ? a->residual + (size_t)s->m0 * a->ldr + s->n : NULL,
                      .ldr = a->ldr, .act = a->act};
#define QB_LB_STORE(nv) qb_gemm_avx512_store_trans(nv, acc, &t)
    QB_LB_BY_NV(nv, QB_LB_STORE)
#undef QB_LB_STORE
}

/* 16 k of the strip's decoded rows d ([MR][16]) against x from *x. */
static inline __attribute__((always_inline)) void qb_lb_strip_fma(int nv, const float *d, const float **x,
                                                                   __m512 acc[MR][NV]) {
#pragma GCC unroll 2
    for (int kk = 0; kk < QB_LB_RUN; kk++, *x += 16 * nv) {
        __m512 b[NV];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) b[v] = _mm512_load_ps(*x + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 wv = _mm512_set1_ps(d[i * QB_LB_RUN + kk]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(wv, b[v], acc[i][v]);
        }
    }
}

static inline __attribute__((always_inline)) void qb_lb_acc_zero(__m512 acc[MR][NV]) {
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
}

/* The first panel's pass: decodes 16 k of the strip, then multiplies them. */
static inline __attribute__((always_inline)) void qb_lb_strip_decode_pass(qb_code code, bool book, int nv,
                                                                           const qb_lb_strip *s) {
    const qb_lowbit_weights *w = s->a->W;
    qb_lb_strip_rows p;
    qb_lb_strip_rows_init(s, &p);
    _Alignas(64) float local[MR * QB_LB_RUN];
    __m512 acc[MR][NV];
    qb_lb_acc_zero(acc);
    const float *x = s->xp;
    for (int k0 = 0; k0 < w->K; k0 += QB_LB_RUN) {
        if (!book && k0 % w->group == 0) qb_lb_strip_rows_group(w, k0 / w->group, &p);
        float *d = s->dec ? s->dec + (size_t)k0 * MR : local;
        for (int i = 0; i < MR; i++)
            qb_lb_values_of(code, book, &p.r[i], k0, QB_LB_RUN, _mm512_set1_ps(p.scale[i]),
                            _mm512_set1_epi32(p.zero[i]), d + i * QB_LB_RUN);
        qb_lb_strip_fma(nv, d, &x, acc);
    }
    qb_lb_strip_store(nv, acc, s);
}

/* A later panel's pass, over the strip as the first pass decoded it. */
static inline __attribute__((always_inline)) void qb_lb_strip_reuse_pass(int nv, const qb_lb_strip *s) {
    __m512 acc[MR][NV];
    qb_lb_acc_zero(acc);
    const float *x = s->xp;
    for (int k0 = 0; k0 < s->a->W->K; k0 += QB_LB_RUN) qb_lb_strip_fma(nv, s->dec + (size_t)k0 * MR, &x, acc);
    qb_lb_strip_store(nv, acc, s);
}

static void qb_lb_strip_reuse(const qb_lb_strip *s) {
#define QB_LB_REUSE(nv) qb_lb_strip_reuse_pass(nv, s)
    QB_LB_BY_NV((s->mc + 15) / 16, QB_LB_REUSE)
#undef QB_LB_REUSE
}

/* The strips of columns [n0, n0 + cols) against every panel of x (packed
 * at xp, panel after panel), with code and book constant. */
static inline __attribute__((always_inline)) void qb_lb_strips(qb_code code, bool book, const qb_lowbit_f32_args *a,
                                                                int n0, int cols, const float *xp, float *dec) {
    int K = a->W->K;
    for (int j = 0; j < cols; j += MR) {
        qb_lb_strip s = {.a = a, .xp = xp, .dec = a->M > PANEL ? dec : NULL, .n = n0 + j,
                         .rows = cols - j < MR ? cols - j : MR, .mc = a->M < PANEL ? a->M : PANEL};
#define QB_LB_DECODE(nv) qb_lb_strip_decode_pass(code, book, nv, &s)
        QB_LB_BY_NV((s.mc + 15) / 16, QB_LB_DECODE)
#undef QB_LB_DECODE
        for (s.m0 = PANEL; s.m0 < a->M; s.m0 += PANEL) {
            s.mc = a->M - s.m0 < PANEL ? a->M - s.m0 : PANEL;
            s.xp = xp + (size_t)s.m0 * K;
            qb_lb_strip_reuse(&s);
        }
    }
}

bool qb_lowbit_gemm_f32_few_avx512(const qb_lowbit_f32_args *a, int n0, int cols, float *xp, bool packed) {
    const qb_lowbit_weights *w = a->W;
    bool runs = w->K % QB_LB_RUN == 0 && (w->codebook || w->group % QB_LB_RUN == 0);
    if (a->M > QB_LOWBIT_FEW_ROWS || !runs) return false;
    for (int m0 = 0; m0 < a->M && !packed; m0 += PANEL) {
        int mc = a->M - m0 < PANEL ? a->M - m0 : PANEL;
        qb_gemm_pack_b_trans_avx(a->x + (size_t)m0 * a->lda, (size_t)a->lda, mc, w->K, xp + (size_t)m0 * w->K,
                                 (mc + 15) / 16 * 16);
    }
    float *dec = xp + (size_t)QB_LOWBIT_FEW_ROWS * w->K;
#define QB_LB_STRIPS(code, book) qb_lb_strips(code, book, a, n0, cols, xp, dec)
    QB_LB_WITH_CODE(w, QB_LB_STRIPS)
#undef QB_LB_STRIPS
    return true;
}
