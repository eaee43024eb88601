/* AVX-512 VNNI integer kernels.  vpdpbusd multiplies 4 consecutive u8
 * activations by 4 s8 weights and adds the sum to an int32 lane, so one
 * zmm of packed weights (4 k x 16 columns) against 4 broadcast bytes of a
 * row does 64 multiply-adds.  The micro-kernel keeps a 6-row x 64-column
 * tile in 24 accumulators; K is walked in chunks whose weight block stays
 * in L1 while every row of an M chunk streams past it, with the int32
 * partial sums of that chunk parked in a small stack tile. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/vec_avx512.h"
#include "kernels/vnni_tile_avx512.h"

#define QB_I8_MR 6
#define QB_I8_KC 256 /* k per chunk: a 64 x 256 weight block is 16 KiB */
#define QB_I8_MC 96  /* rows per chunk: the partial tile is 24 KiB */
#define QB_I8_A_L2_BYTES (512 * 1024)

typedef struct {
    const uint8_t *a; /* row 0 of the tile at the chunk's first k */
    size_t lda;
    const int8_t *w;  /* the block's packed weights at the chunk's first group */
    size_t w_step;    /* bytes per group of 4 k in this block: 4 * width */
    int groups;       /* whole groups of 4 k in the chunk */
    int tail;         /* 0..3 trailing k (only in the last chunk) */
    bool first;       /* first chunk: start from zero instead of the partials */
    int32_t *part;    /* [mr][64] partial sums */
    /* The tile's rows of C and of the residual (NULL: none, or not this
     * chunk), cols wide, whose lines are fetched one per group (below). */
    const float *c, *res;
    size_t ldc, ldr;
    int cols;
    /* A share of the next weight block, fetched into L2 one line per group
     * (below); next_lines 0: none. */
    const int8_t *next;
    int next_lines;
} qb_i8_tile_args;

#define QB_I8_LOAD(i, j) \
    if (i < mr && j < nr) c##i##j = _mm512_load_si512(t->part + i * 64 + j * 16);
#define QB_I8_STORE(i, j) \
    if (i < mr && j < nr) _mm512_store_si512(t->part + i * 64 + j * 16, c##i##j);
static inline __attribute__((always_inline)) void qb_i8_tile(const qb_i8_tile_args *t, int mr, int nr) {
    QB_VNNI_FOR_TILE(QB_VNNI_DECLARE)
    if (!t->first) { QB_VNNI_FOR_TILE(QB_I8_LOAD) }
    const uint8_t *a = t->a;
    const int8_t *w = t->w;
    const size_t lda = t->lda, w_step = t->w_step;
    __m512i w0, w1, w2, w3;
    for (int g = 0; g < t->groups; g++, a += 4, w += w_step) {
        qb_vnni_fetch_output_line(t->c, t->ldc, t->res, t->ldr, t->cols, mr, g);
        if (g < t->next_lines) _mm_prefetch((const char *)(t->next + (size_t)g * 64), _MM_HINT_T1);
        QB_VNNI_LOAD_WEIGHTS(w)
        QB_VNNI_ROWS(QB_VNNI_BROADCAST)
    }
    if (t->tail) {
        QB_VNNI_LOAD_WEIGHTS(w)
        QB_VNNI_ROWS(QB_VNNI_BROADCAST_TAIL)
    }
    QB_VNNI_FOR_TILE(QB_I8_STORE)
}

#define QB_I8_TILE(mr, nr) \
    static void qb_i8_tile_##mr##x##nr(const qb_i8_tile_args *t) { qb_i8_tile(t, mr, nr); }
#define QB_I8_TILE_ROW(mr) QB_I8_TILE(mr, 1) QB_I8_TILE(mr, 2) QB_I8_TILE(mr, 3) QB_I8_TILE(mr, 4)
QB_I8_TILE_ROW(1)
QB_I8_TILE_ROW(2)
QB_I8_TILE_ROW(3)
QB_I8_TILE_ROW(4)
QB_I8_TILE_ROW(5)
QB_I8_TILE_ROW(6)

typedef void (*qb_i8_tile_fn)(const qb_i8_tile_args *t);
#define QB_I8_TILE_FNS(mr) {qb_i8_tile_##mr##x1, qb_i8_tile_##mr##x2, qb_i8_tile_##mr##x3, qb_i8_tile_##mr##x4}
static const qb_i8_tile_fn qb_i8_tiles[QB_I8_MR][4] = {QB_I8_TILE_FNS(1), QB_I8_TILE_FNS(2), QB_I8_TILE_FNS(3),
                                                       QB_I8_TILE_FNS(4), QB_I8_TILE_FNS(5), QB_I8_TILE_FNS(6)};

/* A 16-column stripe's constants, loaded once where the epilogue walks
 * rows inside columns. */
typedef struct {
    __mmask16 mask;
    __m512i colsum_split;
    __m512 w_scale, bias;
} qb_i8_stripe;

static inline qb_i8_stripe qb_i8_stripe_load(const qb_gemm_i8_args *g, int c, int count) {
    qb_i8_stripe s = {.mask = qb_v16_mask(count)};
    s.colsum_split = _mm512_maskz_loadu_epi32(s.mask, g->W->colsum_split + c);
    s.w_scale = _mm512_maskz_loadu_ps(s.mask, g->W->scale + c);
    s.bias = g->bias ? _mm512_maskz_loadu_ps(s.mask, g->bias + c) : _mm512_setzero_ps();
    return s;
}

/* One output vector: stripe s (columns from c) of row m, from its finished
 * sum at acc_at. */
static inline __attribute__((always_inline)) void qb_i8_epilogue_vector(const qb_gemm_i8_args *g,
                                                                        const qb_i8_stripe *s,
                                                                        const int32_t *acc_at, int m, int c) {
    __m512i acc = _mm512_load_si512(acc_at);
    acc = _mm512_dpwssd_epi32(acc, _mm512_set1_epi32(qb_i8_zero_split(g->a_zero[m])), s->colsum_split);
    __m512 scale = _mm512_mul_ps(_mm512_set1_ps(g->a_scale[m]), s->w_scale);
    __m512 v = qb_v16_act(g->act, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), scale, s->bias));
    if (g->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(s->mask, g->residual + (size_t)m * g->ldr + c));
    _mm512_mask_storeu_ps(g->C + (size_t)m * g->ldc + c, s->mask, v);
}

/* Stripe by stripe, so a stripe's constants load once per run of its rows
 * rather than for every vector (AMX GEMMs, which hand out a few vectors
 * between tile steps, interleaved: +0-7%). */
void qb_i8_epilogue_range_avx512(const qb_gemm_i8_args *g, const int32_t *part, int m0, int rows, int n, int cols,
                                 int first, int count) {
    int i = first % rows, j = 16 * (first / rows);
    qb_i8_stripe s = qb_i8_stripe_load(g, n + j, cols - j);
    for (int v = 0; v < count; v++) {
        qb_i8_epilogue_vector(g, &s, part + i * 64 + j, m0 + i, n + j);
        if (++i == rows && v + 1 < count) {
            i = 0, j += 16;
            s = qb_i8_stripe_load(g, n + j, cols - j);
        }
    }
}

/* Packed width of the weight block that starts at column n (the last one
 * may be 16, 32 or 48 wide). */
static int qb_i8_block_width(const qb_gemm_i8_args *g, int n) {
    int Npad = qb_i8_round_up(g->N, 16);
    return Npad - n < QB_I8_N_BLOCK ? Npad - n : QB_I8_N_BLOCK;
}

/* One 64-column weight block (or the narrower last one) against rows
 * [m0, m0 + rows), rows <= QB_I8_MC, fetching block n_next (none if < 0)
 * into L2 meanwhile, spread evenly over the tiles.  A model's weights come
 * from memory (each layer's once per forward), and without this every
 * block's first tiles waited on them: with 24 different weights cycled,
 * in-process A/B, 1 thread: +5% at 128 x 768 x 768, +6-9% at 128 x 3072 x 768,
 * +27-41% at 25 rows (one sentence); 2 threads: +3-5% and +9-22%. */
static void qb_i8_block_avx512(const qb_gemm_i8_args *g, int m0, int rows, int n, int n_next, int32_t *part) {
    const qb_i8_weights *W = g->W;
    int K4 = qb_i8_round_up(g->K, 4) / 4, width = qb_i8_block_width(g, n);
    const int8_t *block = (const int8_t *)W->packed + (size_t)n * K4 * 4;
    int cols = g->N - n < QB_I8_N_BLOCK ? g->N - n : QB_I8_N_BLOCK;
    qb_i8_tile_args t = {
        .lda = (size_t)g->lda, .w_step = (size_t)width * 4, .ldc = (size_t)g->ldc, .ldr = (size_t)g->ldr, .cols = cols};
    int next_left = 0, per_tile = 0;
    if (n_next >= 0) {
        int tiles = (g->K + QB_I8_KC - 1) / QB_I8_KC * ((rows + QB_I8_MR - 1) / QB_I8_MR);
        t.next = (const int8_t *)W->packed + (size_t)n_next * K4 * 4;
        next_left = qb_i8_block_width(g, n_next) * K4 * 4 / 64; /* whole lines: width * 4 is a multiple of 64 */
        per_tile = (next_left + tiles - 1) / tiles;
    }
    for (int k0 = 0; k0 < g->K; k0 += QB_I8_KC) {
        int kc = g->K - k0 < QB_I8_KC ? g->K - k0 : QB_I8_KC;
        t.groups = kc / 4;
        t.tail = kc % 4;
        t.first = k0 == 0;
        t.w = block + (size_t)(k0 / 4) * t.w_step;
        for (int i = 0; i < rows; i += QB_I8_MR) {
            int mr = rows - i < QB_I8_MR ? rows - i : QB_I8_MR;
            t.a = g->A + (size_t)(m0 + i) * g->lda + k0;
            t.part = part + i * 64;
            t.c = k0 == 0 ? g->C + (size_t)(m0 + i) * g->ldc + n : NULL;
            t.res = k0 == 0 && g->residual ? g->residual + (size_t)(m0 + i) * g->ldr + n : NULL;
            if (t.next_lines) t.next += (size_t)t.next_lines * 64;
            t.next_lines = next_left < per_tile ? next_left : per_tile;
            next_left -= t.next_lines;
            qb_i8_tiles[mr - 1][width / 16 - 1](&t);
        }
    }
    qb_i8_epilogue_range_avx512(g, part, m0, rows, n, cols, 0, rows * ((cols + 15) / 16));
}

void qb_gemm_i8_vnni(const qb_gemm_i8_args *g, int n0, int n1) {
    _Alignas(64) int32_t part[QB_I8_MC * 64];
    /* Equal row chunks (in whole tiles) so no chunk is a thin remainder
     * that reuses each weight block only a few times. */
    int chunks = (g->M + QB_I8_MC - 1) / QB_I8_MC;
    int rows = qb_i8_round_up((g->M + chunks - 1) / chunks, QB_I8_MR);
    if (rows > QB_I8_MC) rows = QB_I8_MC;
    /* Activations small enough to stay in L2 are re-read per weight block,
     * so each weight block comes from memory once; larger ones are walked a
     * row chunk at a time against all weights instead. */
    if ((size_t)g->M * g->K <= QB_I8_A_L2_BYTES) {
        for (int n = n0; n < n1; n += QB_I8_N_BLOCK)
            for (int m0 = 0; m0 < g->M; m0 += rows) {
                int next = m0 == 0 && n + QB_I8_N_BLOCK < n1 ? n + QB_I8_N_BLOCK : -1;
                qb_i8_block_avx512(g, m0, g->M - m0 < rows ? g->M - m0 : rows, n, next, part);
            }
        return;
    }
    for (int m0 = 0; m0 < g->M; m0 += rows)
        for (int n = n0; n < n1; n += QB_I8_N_BLOCK) {
            /* the last block of a row chunk fetches the first one again */
            int next = n + QB_I8_N_BLOCK < n1 ? n + QB_I8_N_BLOCK : n0;
            qb_i8_block_avx512(g, m0, g->M - m0 < rows ? g->M - m0 : rows, n, next, part);
        }
}

/* Per-row min/max with masked tails: masked-off lanes read as 0, which the
 * range [min(x, 0), max(x, 0)] already contains.  Two independent pairs of
 * accumulators: one chain of vmaxps waited on its own latency every
 * vector, and this pass was half of the quantization. */
static void qb_i8_row_range_avx512(const float *x, int K, float *mn, float *mx) {
    __m512 lo0 = _mm512_setzero_ps(), hi0 = _mm512_setzero_ps(), lo1 = lo0, hi1 = hi0;
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512 v0 = _mm512_loadu_ps(x + k), v1 = _mm512_loadu_ps(x + k + 16);
        hi0 = _mm512_max_ps(v0, hi0);
        lo0 = _mm512_min_ps(v0, lo0);
        hi1 = _mm512_max_ps(v1, hi1);
        lo1 = _mm512_min_ps(v1, lo1);
    }
    for (; k < K; k += 16) {
        __m512 v = _mm512_maskz_loadu_ps(qb_v16_mask(K - k), x + k);
        hi0 = _mm512_max_ps(v, hi0);
        lo0 = _mm512_min_ps(v, lo0);
    }
    *mn = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
    *mx = _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1));
}

/* x * inv, clipped, rounded (MXCSR's default: to nearest, ties to even)
 * and shifted by the zero point; still int32, not yet clamped to u8. */
static inline __m512i qb_i8_grid_avx512(__m512 x, __m512 inv, __m512i z) {
    __m512 r = _mm512_mul_ps(x, inv);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(QB_I8_CLIP_LO)), _mm512_set1_ps(QB_I8_CLIP_HI));
    return _mm512_add_epi32(_mm512_cvtps_epi32(r), z);
}

/* 64 values at a time go through the saturating packs (int32 -> u16 ->
 * u8), which clamp to [0, 255] as the per-vector vpmaxsd/vpminsd/vpmovdb
 * did, in fewer uops; the packs interleave 128-bit lanes, and one dword
 * permute puts the 16 groups of 4 bytes back in order. */
static void qb_i8_quantize_row_avx512(const float *x, int K, float scale, int32_t zero, uint8_t *q) {
    __m512 inv = _mm512_set1_ps(qb_i8_inverse(scale));
    __m512i z = _mm512_set1_epi32(zero);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    int k = 0;
    for (; k + 64 <= K; k += 64) {
        __m512i v0 = qb_i8_grid_avx512(_mm512_loadu_ps(x + k), inv, z);
        __m512i v1 = qb_i8_grid_avx512(_mm512_loadu_ps(x + k + 16), inv, z);
        __m512i v2 = qb_i8_grid_avx512(_mm512_loadu_ps(x + k + 32), inv, z);
        __m512i v3 = qb_i8_grid_avx512(_mm512_loadu_ps(x + k + 48), inv, z);
        __m512i bytes = _mm512_packus_epi16(_mm512_packus_epi32(v0, v1), _mm512_packus_epi32(v2, v3));
        _mm512_storeu_si512(q + k, _mm512_permutexvar_epi32(order, bytes));
    }
    for (; k < K; k += 16) {
        __mmask16 mask = qb_v16_mask(K - k);
        __m512i v = qb_i8_grid_avx512(_mm512_maskz_loadu_ps(mask, x + k), inv, z);
        v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(255));
        _mm_mask_storeu_epi8(q + k, mask, _mm512_cvtepi32_epi8(v));
    }
}

static void qb_quantize_rows_fixed_avx512(const float *x, int M, int K, int ldx, float scale, int32_t zero,
                                          uint8_t *q, int ldq) {
    for (int m = 0; m < M; m++) qb_i8_quantize_row_avx512(x + (size_t)m * ldx, K, scale, zero, q + (size_t)m * ldq);
}

static void qb_quantize_rows_avx512(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale,
                                    int32_t *zero) {
    for (int m = 0; m < M; m++) {
        float mn, mx;
        qb_i8_row_range_avx512(x + (size_t)m * ldx, K, &mn, &mx);
        qb_i8_row_params(mn, mx, &scale[m], &zero[m]);
        qb_i8_quantize_row_avx512(x + (size_t)m * ldx, K, scale[m], zero[m], q + (size_t)m * ldq);
    }
}

void qb_kernels_i8_init_avx512_vnni(qb_kernels_i8 *k) {
    k->isa = QB_ISA_AVX512;
    k->name = "avx512";
    k->amx = false;
    k->gemm = qb_gemm_i8_vnni;
    k->quantize_rows = qb_quantize_rows_avx512;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_avx512;
}

void qb_kernels_i8_init_avx512(qb_kernels_i8 *k) {
    qb_kernels_i8_init_avx512_vnni(k);
    if (qb_i8_amx_enable()) {
        k->amx = true;
        k->gemm = qb_gemm_i8_amx;
    }
}
