/* AVX2 integer kernels without saturation.  vpmaddubsw adds two u8 x s8
 * products in int16, which clips full-range weights (255 * 127 * 2 >
 * 32767), so those are widened, as A is: vpmaddwd adds pairs of int16
 * products into int32 exactly.  Weights within [-64, 64] (--reduce-range
 * makes them) cannot clip (255 * 64 * 2 = 32640): they take vpmaddubsw on
 * bytes, then vpmaddwd by ones, three instructions per 32 multiply-adds
 * where the widened scheme takes four and a third.  Either way the
 * weights stay one byte in memory and each load serves every row of the
 * tile: short inputs are bound by reading the weights.  A row tile's A is
 * prepared per K chunk into a small stack buffer (once per row tile where
 * K is one chunk), and the int32 partial sums of a 64-column group wait in
 * a stack tile between chunks. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/vec_avx2.h"

#define QB_I8_MR_MAX 6
#define QB_I8_KC 1024                     /* k per chunk, a multiple of 4 */
#define QB_I8_ROW_BYTES (2 * QB_I8_KC + 32) /* a prepared row of a chunk: int16, tail included */

typedef int32_t qb_i8_u32_unaligned __attribute__((may_alias, aligned(1)));

/* One inner product scheme: how A's rows are prepared, the tile kernels
 * (index mr - 1) and the k a weight group holds. */
typedef void (*qb_i8_prepare_fn)(const uint8_t *a, size_t lda, int mr, int kc, uint8_t *rows);
typedef void (*qb_i8_panel_fn)(const uint8_t *rows, const int8_t *w, int steps, int32_t *part);
typedef struct {
    qb_i8_prepare_fn prepare;
    const qb_i8_panel_fn *panels;
    int mr, k_group;
} qb_i8_scheme;

/* Rows [0, mr) of A from k0, kc values each, as int16 (zero past kc so the
 * last odd pair reads a zero). */
static void qb_i8_widen_rows(const uint8_t *a, size_t lda, int mr, int kc, uint8_t *rows) {
    for (int i = 0; i < mr; i++) {
        const uint8_t *row = a + i * lda;
        int16_t *dst = (int16_t *)(rows + i * QB_I8_ROW_BYTES);
        int k = 0;
        for (; k + 16 <= kc; k += 16)
            _mm256_storeu_si256((__m256i *)(dst + k), _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(row + k))));
        uint8_t tail[16] = {0};
        memcpy(tail, row + k, (size_t)(kc - k));
        _mm256_storeu_si256((__m256i *)(dst + k), _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)tail)));
    }
}

/* The same rows as bytes, zero from kc to the next multiple of 4. */
static void qb_i8_copy_rows(const uint8_t *a, size_t lda, int mr, int kc, uint8_t *rows) {
    for (int i = 0; i < mr; i++) {
        uint8_t *dst = rows + i * QB_I8_ROW_BYTES;
        memcpy(dst, a + i * lda, (size_t)kc);
        memset(dst + kc, 0, 3);
    }
}

/* Accumulates mr prepared rows x one 16-column panel over `steps` groups
 * of k into part ([mr][64] int32, this panel's 16 columns).  Row i's sums
 * are c<i>0 and c<i>1, named variables rather than an array: GCC 12 keeps
 * an array of them partly in memory, a store and nine moves in every step. */
#define QB_I8_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define QB_I8_ROW_LOAD(i)                                                       \
    __m256i c##i##0 = _mm256_setzero_si256(), c##i##1 = _mm256_setzero_si256(); \
    if (mr > i) {                                                               \
        c##i##0 = _mm256_loadu_si256((const __m256i *)(part + i * 64));         \
        c##i##1 = _mm256_loadu_si256((const __m256i *)(part + i * 64 + 8));     \
    }
#define QB_I8_ROW_STORE(i)                                            \
    if (mr > i) {                                                     \
        _mm256_storeu_si256((__m256i *)(part + i * 64), c##i##0);     \
        _mm256_storeu_si256((__m256i *)(part + i * 64 + 8), c##i##1); \
    }
/* Four bytes of row i at group p: two int16 or four u8, broadcast. */
#define QB_I8_BROADCAST(i) _mm256_set1_epi32(*(const qb_i8_u32_unaligned *)(rows + (i) * QB_I8_ROW_BYTES + 4 * p))

#define QB_I8_WIDE_STEP(i)                                              \
    if (mr > i) {                                                       \
        __m256i av = QB_I8_BROADCAST(i);                                \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(av, w0)); \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(av, w1)); \
    }
static inline __attribute__((always_inline)) void qb_i8_panel_wide(const uint8_t *rows, const int8_t *w, int steps,
                                                                   int32_t *part, int mr) {
    QB_I8_ROWS(QB_I8_ROW_LOAD)
    for (int p = 0; p < steps; p++, w += 32) {
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)w));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(w + 16)));
        QB_I8_ROWS(QB_I8_WIDE_STEP)
    }
    QB_I8_ROWS(QB_I8_ROW_STORE)
}

#define QB_I8_NARROW_STEP(i)                                                                               \
    if (mr > i) {                                                                                          \
        __m256i av = QB_I8_BROADCAST(i);                                                                   \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(_mm256_maddubs_epi16(av, w0), ones));       \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(_mm256_maddubs_epi16(av, w1), ones));       \
    }
static inline __attribute__((always_inline)) void qb_i8_panel_narrow(const uint8_t *rows, const int8_t *w, int steps,
                                                                     int32_t *part, int mr) {
    const __m256i ones = _mm256_set1_epi16(1);
    QB_I8_ROWS(QB_I8_ROW_LOAD)
    for (int p = 0; p < steps; p++, w += 64) {
        __m256i w0 = _mm256_load_si256((const __m256i *)w);
        __m256i w1 = _mm256_load_si256((const __m256i *)(w + 32));
        QB_I8_ROWS(QB_I8_NARROW_STEP)
    }
    QB_I8_ROWS(QB_I8_ROW_STORE)
}

#define QB_I8_PANEL(kind, mr)                                                                               \
    static void qb_i8_panel_##kind##_##mr(const uint8_t *rows, const int8_t *w, int steps, int32_t *part) { \
        qb_i8_panel_##kind(rows, w, steps, part, mr);                                                       \
    }
QB_I8_PANEL(wide, 1)
QB_I8_PANEL(wide, 2)
QB_I8_PANEL(wide, 3)
QB_I8_PANEL(wide, 4)
QB_I8_PANEL(wide, 5)
QB_I8_PANEL(wide, 6)
QB_I8_PANEL(narrow, 1)
QB_I8_PANEL(narrow, 2)
QB_I8_PANEL(narrow, 3)
QB_I8_PANEL(narrow, 4)
QB_I8_PANEL(narrow, 5)

static const qb_i8_panel_fn qb_i8_panels_wide[] = {qb_i8_panel_wide_1, qb_i8_panel_wide_2, qb_i8_panel_wide_3,
                                                   qb_i8_panel_wide_4, qb_i8_panel_wide_5, qb_i8_panel_wide_6};
static const qb_i8_panel_fn qb_i8_panels_narrow[] = {qb_i8_panel_narrow_1, qb_i8_panel_narrow_2, qb_i8_panel_narrow_3,
                                                     qb_i8_panel_narrow_4, qb_i8_panel_narrow_5};
/* The 16 registers hold 6 rows x 16 columns of the widened scheme (12 sums,
 * 2 weight vectors, a broadcast and a product); the byte scheme also keeps
 * its ones there, so it takes 5 rows. */
static const qb_i8_scheme qb_i8_wide = {qb_i8_widen_rows, qb_i8_panels_wide, 6, 2};
static const qb_i8_scheme qb_i8_narrow = {qb_i8_copy_rows, qb_i8_panels_narrow, 5, 4};

static void qb_i8_epilogue_avx2(const qb_gemm_i8_args *g, const int32_t *part, int m0, int rows, int n, int cols) {
    const qb_i8_weights *W = g->W;
    for (int j = 0; j < cols; j += 8) {
        int c = n + j;
        __m256i colsum = _mm256_maskload_epi32(W->colsum + c, qb_v8_mask(cols - j));
        __m256 w_scale = qb_v8_load(W->scale + c, cols - j);
        __m256 bias = g->bias ? qb_v8_load(g->bias + c, cols - j) : _mm256_setzero_ps();
        for (int i = 0; i < rows; i++) {
            int m = m0 + i;
            __m256i acc = _mm256_loadu_si256((const __m256i *)(part + i * 64 + j));
            acc = _mm256_sub_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(g->a_zero[m]), colsum));
            __m256 scale = _mm256_mul_ps(_mm256_set1_ps(g->a_scale[m]), w_scale);
            __m256 v = qb_v8_act(g->act, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), scale, bias));
            if (g->residual) v = _mm256_add_ps(v, qb_v8_load(g->residual + (size_t)m * g->ldr + c, cols - j));
            qb_v8_store(g->C + (size_t)m * g->ldc + c, cols - j, v);
        }
    }
}

/* With K one chunk (BERT's K = 768) a row tile's prepared rows serve every
 * column block, so they are prepared once, before the blocks, not again
 * per 64 columns. */
static inline bool qb_i8_one_chunk(const qb_gemm_i8_args *g) { return g->K <= QB_I8_KC; }

/* Rows [m0, m0 + mr) against the columns [n, n + 64) (or fewer at the end).
 * A panel holds round_up(K, k_group) k of 16 columns, a byte each. */
static void qb_i8_group_avx2(const qb_i8_scheme *sc, const qb_gemm_i8_args *g, int m0, int mr, int n, uint8_t *rows,
                             int32_t *part) {
    size_t panel_bytes = (size_t)qb_i8_round_up(g->K, sc->k_group) * 16;
    int cols = g->N - n < QB_I8_N_BLOCK ? g->N - n : QB_I8_N_BLOCK;
    int panels = (cols + 15) / 16;
    memset(part, 0, sizeof(int32_t) * QB_I8_MR_MAX * 64);
    for (int k0 = 0; k0 < g->K; k0 += QB_I8_KC) {
        int kc = g->K - k0 < QB_I8_KC ? g->K - k0 : QB_I8_KC;
        if (!qb_i8_one_chunk(g)) sc->prepare(g->A + (size_t)m0 * g->lda + k0, (size_t)g->lda, mr, kc, rows);
        for (int p = 0; p < panels; p++) {
            const int8_t *w = (const int8_t *)g->W->packed + (size_t)(n / 16 + p) * panel_bytes + (size_t)k0 * 16;
            sc->panels[mr - 1](rows, w, (kc + sc->k_group - 1) / sc->k_group, part + p * 16);
        }
    }
    qb_i8_epilogue_avx2(g, part, m0, mr, n, cols);
}

static void qb_gemm_i8_avx2(const qb_gemm_i8_args *g, int n0, int n1) {
    _Alignas(32) uint8_t rows[QB_I8_MR_MAX * QB_I8_ROW_BYTES];
    _Alignas(32) int32_t part[QB_I8_MR_MAX * 64];
    const qb_i8_scheme *sc = g->W->narrow ? &qb_i8_narrow : &qb_i8_wide;
    for (int m0 = 0; m0 < g->M; m0 += sc->mr) {
        int mr = g->M - m0 < sc->mr ? g->M - m0 : sc->mr;
        if (qb_i8_one_chunk(g)) sc->prepare(g->A + (size_t)m0 * g->lda, (size_t)g->lda, mr, g->K, rows);
        for (int n = n0; n < n1; n += QB_I8_N_BLOCK) qb_i8_group_avx2(sc, g, m0, mr, n, rows, part);
    }
}

/* Masked-off lanes load as 0, which the clipped range contains anyway. */
static void qb_i8_row_range_avx2(const float *x, int K, float *mn, float *mx) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int k = 0; k < K; k += 8) {
        __m256 v = qb_v8_load(x + k, K - k);
        hi = _mm256_max_ps(v, hi);
        lo = _mm256_min_ps(v, lo);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, lo);
    _mm256_storeu_ps(h, hi);
    *mn = 0.0f;
    *mx = 0.0f;
    for (int i = 0; i < 8; i++) {
        *mn = l[i] < *mn ? l[i] : *mn;
        *mx = h[i] > *mx ? h[i] : *mx;
    }
}

static void qb_i8_quantize_row_avx2(const float *x, int K, float scale, int32_t zero, uint8_t *q) {
    __m256 inv = _mm256_set1_ps(qb_i8_inverse(scale));
    __m256i z = _mm256_set1_epi32(zero);
    /* packs interleave 128-bit lanes; this puts the 8 bytes back in order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int k = 0; k < K; k += 8) {
        __m256 r = _mm256_mul_ps(qb_v8_load(x + k, K - k), inv);
        r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(QB_I8_CLIP_LO)), _mm256_set1_ps(QB_I8_CLIP_HI));
        /* cvtps_epi32 rounds with MXCSR's default: to nearest, ties to even. */
        __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(r), z);
        v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(255));
        __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(v, v), _mm256_setzero_si256());
        bytes = _mm256_permutevar8x32_epi32(bytes, order);
        uint8_t out[8];
        _mm_storel_epi64((__m128i *)out, _mm256_castsi256_si128(bytes));
        memcpy(q + k, out, (size_t)(K - k < 8 ? K - k : 8));
    }
}

static void qb_quantize_rows_fixed_avx2(const float *x, int M, int K, int ldx, float scale, int32_t zero,
                                        uint8_t *q, int ldq) {
    for (int m = 0; m < M; m++) qb_i8_quantize_row_avx2(x + (size_t)m * ldx, K, scale, zero, q + (size_t)m * ldq);
}

static void qb_quantize_rows_avx2(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale,
                                  int32_t *zero) {
    for (int m = 0; m < M; m++) {
        float mn, mx;
        qb_i8_row_range_avx2(x + (size_t)m * ldx, K, &mn, &mx);
        qb_i8_row_params(mn, mx, &scale[m], &zero[m]);
        qb_i8_quantize_row_avx2(x + (size_t)m * ldx, K, scale[m], zero[m], q + (size_t)m * ldq);
    }
}

void qb_kernels_i8_init_avx2(qb_kernels_i8 *k) {
    k->isa = QB_ISA_AVX2;
    k->name = "avx2";
    k->amx = false;
    k->gemm = qb_gemm_i8_avx2;
    k->quantize_rows = qb_quantize_rows_avx2;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_avx2;
}
