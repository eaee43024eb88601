/* AVX-512 VNNI W.A8 kernels.  Rows run through a 64-column block in a
 * 6-row x 64-column register tile of int32 sums, as the int8 kernel does.
 * At the end of each group the int32 sums are folded into float sums (one
 * vfmadd by the group's scales), and the epilogue applies zsum, a_scale,
 * bias, activation and residual.  The weights come two ways:
 *
 *   decoded: a block is decoded once per call, a span of chunks (all of K
 *     up to QB_LOWBIT_KD) at a time, to s8 (code - zero) in vpdpbusd's
 *     layout, [step][64 columns][4 k], and every row runs against it chunk
 *     by chunk (a chunk, <= QB_LOWBIT_KC k, stays in L1; the float sums
 *     wait in scratch; the AMX path reads the same).  The decode costs ~10
 *     vector operations per step, repaid over many rows.
 *   fused (symmetric U4 panels, up to fused_rows rows): the tile reads the
 *     panels themselves, half the bytes, and spends one mask per panel
 *     vector, running all of K before the epilogue:
 *     each panel byte read as s8 is 16 (hi - 8) + lo (kernels_lowbit.h),
 *     so with P its sum against a row and L that of its low nibbles,
 *       sum a (lo - 8) = L - 8 asum,  sum a (hi - 8) = (P - L) / 16,
 *     both exact in int32, asum being the row's sum over the group.  Short
 *     inputs, a few row tiles per block, cannot repay a decode pass. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/kernels_lowbit.h"
#include "kernels/lowbit_x86.h"
#include "kernels/vec_avx512.h"
#include "kernels/vnni_tile_avx512.h"

#define QB_LB_MR 6

typedef struct {
    const uint8_t *a;   /* row 0 of the tile at the segment's first k */
    size_t lda;
    const int8_t *w;    /* the decoded segment */
    int steps, tail;    /* whole steps of 4 k, then 0..3 k */
    bool starts, ends;  /* the group's first / last piece */
    bool first_group;   /* group 0: the float sums start from +0 */
    int32_t *ipart;     /* [mr][64] int32 sums between pieces of a group */
    float *fpart;       /* [mr][64] float sums over groups */
    const float *scale; /* [64] the group's scales (ends only) */
    const char *next;   /* lines of the next block's packed codes to prefetch */
    int next_lines;
    /* Decoded: the next row tile's activations at this segment, its row 0
     * and its lines (two a row, a group of up to 128 k), fetched one per
     * step.  Every row runs through a block before the next block, so an A
     * larger than L2 comes from L3 again for each block, and left to the
     * hardware its first reads stalled every tile. */
    const uint8_t *a_next;
    int a_next_lines;
    /* The tile's rows of C and of the residual (NULL: none, or not this
     * segment), whose lines the epilogue writes: fetched one per step, as
     * the int8 kernel does (all at once they hold every fill buffer). */
    const float *c, *res;
    size_t ldc, ldr;
    int cols;
} qb_lb_tile_args;

#define QB_LB_LOAD(i, j) \
    if (i < mr && j < nr) c##i##j = _mm512_load_si512(t->ipart + i * 64 + j * 16);
#define QB_LB_STORE(i, j) \
    if (i < mr && j < nr) _mm512_store_si512(t->ipart + i * 64 + j * 16, c##i##j);
/* Sum (i, j) folded into the float sums fpart ([mr][64]) by the group's
 * scales: fmaf(scale, (float)sum, acc), acc = +0 for group 0, the float
 * order of kernels_lowbit.h.  Decoded and fused tiles alike. */
#define QB_LB_FOLD_INTO(fpart, first, scale, i, j)                                                     \
    if (i < mr && j < nr) {                                                                           \
        float *f_ = (fpart) + i * 64 + j * 16;                                                        \
        __m512 acc_ = (first) ? _mm512_setzero_ps() : _mm512_load_ps(f_);                              \
        _mm512_store_ps(f_, _mm512_fmadd_ps(_mm512_load_ps((scale) + j * 16), _mm512_cvtepi32_ps(c##i##j), acc_)); \
    }
#define QB_LB_FOLD(i, j) QB_LB_FOLD_INTO(t->fpart, t->first_group, t->scale, i, j)
static inline __attribute__((always_inline)) void qb_lb_tile(const qb_lb_tile_args *t, int mr, int nr) {
    QB_VNNI_FOR_TILE(QB_VNNI_DECLARE)
    if (!t->starts) { QB_VNNI_FOR_TILE(QB_LB_LOAD) }
    const uint8_t *a = t->a;
    const int8_t *w = t->w;
    const size_t lda = t->lda;
    __m512i w0, w1, w2, w3;
    for (int s = 0; s < t->steps; s++, a += 4, w += 256) {
        if (s < t->next_lines) _mm_prefetch(t->next + (size_t)s * 64, _MM_HINT_T1);
        if (s < t->a_next_lines)
            _mm_prefetch((const char *)(t->a_next + (size_t)(s >> 1) * lda + (s & 1) * 64), _MM_HINT_T0);
        qb_vnni_fetch_output_line(t->c, t->ldc, t->res, t->ldr, t->cols, mr, s);
        QB_VNNI_LOAD_WEIGHTS(w)
        QB_VNNI_ROWS(QB_VNNI_BROADCAST)
    }
    if (t->tail) {
        QB_VNNI_LOAD_WEIGHTS(w)
        QB_VNNI_ROWS(QB_VNNI_BROADCAST_TAIL)
    }
    if (t->ends) {
        QB_VNNI_FOR_TILE(QB_LB_FOLD)
    } else {
        QB_VNNI_FOR_TILE(QB_LB_STORE)
    }
}

/* X(mr, nr) for every tile shape, and the table of a kind's functions,
 * [mr - 1][nr - 1], for the decoded and the fused tiles. */
#define QB_LB_EACH_NR(X, mr) X(mr, 1) X(mr, 2) X(mr, 3) X(mr, 4)
#define QB_LB_EACH_SHAPE(X)                                                      \
    QB_LB_EACH_NR(X, 1) QB_LB_EACH_NR(X, 2) QB_LB_EACH_NR(X, 3) QB_LB_EACH_NR(X, 4) \
    QB_LB_EACH_NR(X, 5) QB_LB_EACH_NR(X, 6)
#define QB_LB_TILE_FNS(kind, mr) \
    {qb_lb_##kind##_##mr##x1, qb_lb_##kind##_##mr##x2, qb_lb_##kind##_##mr##x3, qb_lb_##kind##_##mr##x4}
#define QB_LB_TILE_TABLE(kind)                                                                          \
    {QB_LB_TILE_FNS(kind, 1), QB_LB_TILE_FNS(kind, 2), QB_LB_TILE_FNS(kind, 3), QB_LB_TILE_FNS(kind, 4), \
     QB_LB_TILE_FNS(kind, 5), QB_LB_TILE_FNS(kind, 6)}

#define QB_LB_TILE(mr, nr) \
    static void qb_lb_tile_##mr##x##nr(const qb_lb_tile_args *t) { qb_lb_tile(t, mr, nr); }
QB_LB_EACH_SHAPE(QB_LB_TILE)
static void (*const qb_lb_tiles[QB_LB_MR][4])(const qb_lb_tile_args *) = QB_LB_TILE_TABLE(tile);


/* Rows j (columns c0 + j) of 64 packed bytes, 16 x 16 dwords transposed in
 * registers (unpack 32, unpack 64, two 128-bit lane shuffles): p[d] holds
 * dword d of every row, column j in lane j. */
static inline __attribute__((always_inline)) void qb_lb_transpose16(const __m512i r[16], __m512i p[16]) {
    __m512i t[16], u[16];
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
    }
    /* u[4b + c]: lane L holds rows 4b..4b+3 of dword 4L + c */
    for (int b = 0; b < 4; b++) {
        u[4 * b + 0] = _mm512_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 1] = _mm512_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
        u[4 * b + 2] = _mm512_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
        u[4 * b + 3] = _mm512_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
    }
    for (int c = 0; c < 4; c++) {
        __m512i v01 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), w01 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
        __m512i v23 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        __m512i w23 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
        p[c] = _mm512_shuffle_i32x4(v01, v23, 0x88);
        p[4 + c] = _mm512_shuffle_i32x4(w01, w23, 0x88);
        p[8 + c] = _mm512_shuffle_i32x4(v01, v23, 0xdd);
        p[12 + c] = _mm512_shuffle_i32x4(w01, w23, 0xdd);
    }
}

/* 16 stage rows (columns c0..c0+15) of `steps` dwords into the layout. */
static void qb_lb_transpose(const int8_t *stage, size_t ld, int steps, int c0, int8_t *out) {
    for (int q = 0; q * 16 < steps; q++) {
        __m512i r[16], d[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_load_si512(stage + j * ld + q * 64);
        qb_lb_transpose16(r, d);
        for (int s = 0; s < 16 && q * 16 + s < steps; s++)
            _mm512_store_si512(out + (size_t)(q * 16 + s) * 256 + c0 * 4, d[s]);
    }
}

/* The generic decoder: the chunk's segments of columns [n, n + cols) a
 * row at a time into the stage, then transposed into the layout. */
static void qb_lb_decode_chunk_generic(const qb_lowbit_weights *W, int n, int cols, const qb_lowbit_segment *seg,
                                       int count, int steps, int8_t *stage, size_t ld, int8_t *dec) {
    for (int c0 = 0; c0 < cols; c0 += 16) {
        for (int j = 0; j < 16; j++) {
            int8_t *dst = stage + j * ld;
            if (c0 + j >= cols) {
                memset(dst, 0, (size_t)steps * 4);
                continue;
            }
            for (int s = 0; s < count; s++)
                qb_lowbit_decode_s8(W, n + c0 + j, seg[s].k0, seg[s].len, (seg[s].len + 3) / 4 * 4,
                                    dst + seg[s].step0 * 4);
        }
        qb_lb_transpose(stage, ld, steps, c0, dec);
    }
}

/* Group g's zero vectors of the block at column n from its panels, for
 * columns 16 d .. 16 d + 15 each. */
static void qb_lb_panel_zero(const qb_lowbit_weights *W, int n, int g, __m512i z[4]) {
    if (!W->zero) {
        z[0] = z[1] = z[2] = z[3] = _mm512_set1_epi8((char)(qb_code_levels(W->code) / 2));
        return;
    }
    const uint8_t *p = qb_lowbit_panel_zeros(W, (size_t)n / QB_LOWBIT_N_BLOCK, g);
    for (int d = 0; d < 4; d++)
        z[d] = _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(p + 16 * d))),
                                  _mm512_set1_epi32(0x01010101));
}

/* One step of U4 panels (kernels_lowbit.h) less the zero points: each of
 * its two panel vectors gives two column vectors, low nibbles then high
 * ones (stored XOR 8). */
static inline void qb_lb_step_u4(const uint8_t *p, const __m512i z[4], int8_t *dec) {
    const __m512i nibble = _mm512_set1_epi8(15), eight = _mm512_set1_epi8(8);
    for (int h = 0; h < 2; h++) {
        __m512i b = _mm512_load_si512(p + 64 * h);
        /* 0x6a: (a & b) ^ c */
        __m512i hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(b, 4), nibble, eight, 0x6a);
        _mm512_store_si512(dec + 128 * h, _mm512_sub_epi8(_mm512_and_si512(b, nibble), z[2 * h]));
        _mm512_store_si512(dec + 128 * h + 64, _mm512_sub_epi8(hi, z[2 * h + 1]));
    }
}

/* One step of 2-bit panels: bits 2 f of the panel vector hold columns
 * 16 f .. 16 f + 15; for U3, word f of bit2 is their bit 2 as a byte mask. */
static inline void qb_lb_step_u2(const uint8_t *p, const uint8_t *bit2, const __m512i z[4], int8_t *dec) {
    const __m512i b = _mm512_load_si512(p), low2 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    for (int f = 0; f < 4; f++) {
        __m512i c = _mm512_and_si512(_mm512_srli_epi16(b, 2 * f), low2);
        if (bit2) {
            uint64_t m;
            memcpy(&m, bit2 + 8 * f, 8);
            c = _mm512_mask_add_epi8(c, (__mmask64)m, c, four);
        }
        _mm512_store_si512(dec + 64 * f, _mm512_sub_epi8(c, z[f]));
    }
}

/* The chunk of len codes from k0 of the block at column n from its
 * panels, read in order rather than 64 rows apart. */
static void qb_lb_decode_chunk_panels(const qb_lowbit_weights *W, int n, int k0, int len, int8_t *dec) {
    bool u4 = W->code == QB_CODE_U4;
    size_t step_bytes = qb_lowbit_panel_step_bytes(W), block = (size_t)n / QB_LOWBIT_N_BLOCK;
    const uint8_t *p = qb_lowbit_panel_codes(W, block) + (size_t)k0 / 4 * step_bytes;
    const uint8_t *bit2 = W->code == QB_CODE_U3 ? qb_lowbit_panel_bit2(W, block) + (size_t)k0 / 4 * 32 : NULL;
    int g = k0 / W->group, g_end = (g + 1) * W->group - k0; /* group g covers the chunk's k below g_end */
    __m512i z[4];
    qb_lb_panel_zero(W, n, g, z);
    for (int k = 0; k < len; k += 4, p += step_bytes, dec += 256) {
        if (k >= g_end) {
            g_end += W->group;
            qb_lb_panel_zero(W, n, ++g, z);
        }
        if (u4) qb_lb_step_u4(p, z, dec);
        else qb_lb_step_u2(p, bit2 ? bit2 + (size_t)k * 8 : NULL, z, dec); /* 32 bytes a step */
    }
}

void qb_lowbit_block_init(qb_lowbit_block *b, const qb_lowbit_a8_args *g, char *scratch, int n, int n1, int tiles) {
    const qb_lowbit_weights *W = g->W;
    *b = (qb_lowbit_block){.g = g, .L = W->plan, .scratch = scratch, .n = n};
    b->cols = W->N - n < QB_LOWBIT_N_BLOCK ? W->N - n : QB_LOWBIT_N_BLOCK;
    /* The next block's codes come from memory (a model's weights, once per
     * forward): fetched into L2 a few lines per tile while this one runs. */
    int next = n + QB_LOWBIT_N_BLOCK;
    if (next < n1) {
        int next_cols = W->N - next < QB_LOWBIT_N_BLOCK ? W->N - next : QB_LOWBIT_N_BLOCK;
        bool panels = W->panels;
        size_t bytes = panels ? qb_lowbit_panel_code_bytes(W) : (size_t)next_cols * W->row_bytes;
        b->next = panels ? (const char *)qb_lowbit_panel_codes(W, (size_t)next / QB_LOWBIT_N_BLOCK)
                            : (const char *)(W->rows + (size_t)next * W->row_bytes);
        int lines = (int)((bytes + 63) / 64);
        b->next_end = b->next + (size_t)lines * 64;
        b->per_tile = (lines + tiles - 1) / tiles;
    }
}

void qb_lowbit_block_decode(qb_lowbit_block *b, int k0) {
    if (b->span_k1 > 0 && b->span_k0 == k0) return;
    const qb_lowbit_weights *W = b->g->W;
    int8_t *dec = (int8_t *)(b->scratch + b->L.decoded), *stage = (int8_t *)(b->scratch + b->L.stage);
    size_t ld = ((size_t)b->L.chunk_steps * 4 + 63) / 64 * 64;
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    int at = 0, k = k0;
    while (k < W->K) {
        int steps, count = qb_lowbit_chunk(W, k, b->L.chunk_groups, seg, &steps);
        if (at > 0 && at + steps > b->L.span_steps) break;
        int end = seg[count - 1].k0 + seg[count - 1].len;
        if (W->panels) qb_lb_decode_chunk_panels(W, b->n, k, end - k, dec + (size_t)at * 256);
        else qb_lb_decode_chunk_generic(W, b->n, b->cols, seg, count, steps, stage, ld, dec + (size_t)at * 256);
        at += steps;
        k = end;
    }
    b->span_k0 = k0;
    b->span_k1 = k;
}

void qb_lowbit_block_epilogue(const qb_lowbit_block *b, const float *fpart, int m0, int rows) {
    const qb_lowbit_a8_args *g = b->g;
    for (int j = 0; j < b->cols; j += 16) {
        __mmask16 mask = qb_v16_mask(b->cols - j);
        int c = b->n + j;
        __m512 zsum = _mm512_maskz_loadu_ps(mask, g->W->zsum + c);
        __m512 bias = g->bias ? _mm512_maskz_loadu_ps(mask, g->bias + c) : _mm512_setzero_ps();
        for (int i = 0; i < rows; i++) {
            int m = m0 + i;
            __m512 v = _mm512_fmadd_ps(_mm512_set1_ps(-(float)g->a_zero[m]), zsum, _mm512_load_ps(fpart + i * 64 + j));
            v = qb_v16_act(g->act, _mm512_fmadd_ps(v, _mm512_set1_ps(g->a_scale[m]), bias));
            if (g->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, g->residual + (size_t)m * g->ldr + c));
            _mm512_mask_storeu_ps(g->C + (size_t)m * g->ldc + c, mask, v);
        }
    }
}

/* The next share of the next block's lines for one tile: where they
 * start, their count in *lines. */
static const char *qb_lb_take_prefetch(qb_lowbit_block *b, int *lines) {
    const char *at = b->next;
    *lines = 0;
    if (!at) return NULL;
    size_t left = (size_t)(b->next_end - at), share = (size_t)b->per_tile * 64;
    if (share > left) share = left;
    *lines = (int)(share / 64);
    b->next += share;
    return at;
}

/* Rows [m0, m0 + rows) through the chunk of count segments whose weights
 * are decoded at dec. */
static void qb_lb_run_chunk(qb_lowbit_block *b, int m0, int rows, const qb_lowbit_segment *seg, int count,
                            const float *scales, const int8_t *dec) {
    const qb_lowbit_a8_args *g = b->g;
    const qb_lowbit_scratch_layout *L = &b->L;
    int nr = (b->cols + 15) / 16;
    float *fpart = (float *)(b->scratch + L->fpart);
    int32_t *ipart = (int32_t *)(b->scratch + L->ipart);
    /* One set of arguments, its fields assigned per call: a fresh struct
     * per call was built field by field and then copied whole, and the
     * copy's wide loads waited on those narrow stores every call. */
    qb_lb_tile_args t = {.lda = (size_t)g->lda, .ldc = (size_t)g->ldc, .ldr = (size_t)g->ldr,
                         .cols = b->cols};
    for (int i = 0; i < rows; i += QB_LB_MR) {
        int mr = rows - i < QB_LB_MR ? rows - i : QB_LB_MR, next_rows = rows - i - QB_LB_MR;
        for (int s = 0; s < count; s++) {
            t.a = g->A + (size_t)(m0 + i) * g->lda + seg[s].k0;
            t.steps = seg[s].len / 4;
            t.tail = seg[s].len % 4;
            t.starts = seg[s].starts;
            t.ends = seg[s].ends;
            t.first_group = seg[s].g == 0;
            t.ipart = ipart + i * 64;
            t.fpart = fpart + i * 64;
            t.scale = scales + s * 64;
            t.w = dec + (size_t)seg[s].step0 * 256;
            bool fetch_a = next_rows > 0;
            t.a_next = fetch_a ? t.a + (size_t)QB_LB_MR * g->lda : NULL;
            t.a_next_lines = fetch_a ? 2 * (next_rows < QB_LB_MR ? next_rows : QB_LB_MR) : 0;
            bool first = seg[s].k0 == 0;
            t.c = first ? g->C + (size_t)(m0 + i) * g->ldc + b->n : NULL;
            t.res = first && g->residual ? g->residual + (size_t)(m0 + i) * g->ldr + b->n : NULL;
            t.next = qb_lb_take_prefetch(b, &t.next_lines);
            qb_lb_tiles[mr - 1][nr - 1](&t);
        }
    }
}

void qb_lowbit_block_rows_vnni(qb_lowbit_block *b, int m0, int rows) {
    const qb_lowbit_weights *W = b->g->W;
    const qb_lowbit_scratch_layout *L = &b->L;
    const int8_t *dec = (const int8_t *)(b->scratch + L->decoded);
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    for (int k0 = 0; k0 < W->K;) {
        int at = 0; /* the chunk's first step in the decoded span */
        qb_lowbit_block_decode(b, k0);
        int k1 = b->span_k1;
        for (int k = k0; k < k1;) {
            int steps, count = qb_lowbit_chunk(W, k, L->chunk_groups, seg, &steps);
            const float *scales = qb_lowbit_chunk_scales(W, b->n, seg, count, (float *)(b->scratch + L->scales));
            qb_lb_run_chunk(b, m0, rows, seg, count, scales, dec + (size_t)at * 256);
            at += steps;
            k = seg[count - 1].k0 + seg[count - 1].len;
        }
        k0 = k1;
    }
    qb_lowbit_block_epilogue(b, (const float *)(b->scratch + L->fpart), m0, rows);
}

/* Equal row chunks (whole tiles) of at most QB_LOWBIT_MC rows. */
static int qb_lb_chunk_rows(int M) {
    int chunks = (M + QB_LOWBIT_MC - 1) / QB_LOWBIT_MC;
    int rows = (M + chunks - 1) / chunks;
    rows = (rows + QB_LB_MR - 1) / QB_LB_MR * QB_LB_MR;
    return rows > QB_LOWBIT_MC ? QB_LOWBIT_MC : rows;
}

/* ---- Fused: symmetric U4 panels multiplied as they are, for few rows.
 * A row tile runs all of K against the block's panels, a call per group
 * (int32 sums in registers, folded into the tile's float sums at the
 * group's end), then the epilogue: no scratch between chunks, no pass over
 * the sums of its own.  Six rows, as decoded: three-row tiles, whose float
 * sums would fit the registers, read the panels from L2 twice as often
 * and ran well below them. */
/* Each accumulator made opaque once zeroed: left as one shared zero, GCC
 * copied every accumulator out and back around each vpdpbusd. */
#define QB_LB_FUSED_DECLARE(i, j)                           \
    __m512i c##i##j = _mm512_setzero_si512();                  \
    if (i < mr && j < nr) __asm__("" : "+v"(c##i##j));
/* one step's weights: per 32 columns, the low nibbles (columns 0-15) and
 * the panel bytes themselves (P, for columns 16-31) */
#define QB_LB_LOAD_PANEL(p)                                \
    {                                                      \
        __m512i v0_ = _mm512_load_si512(p);                \
        w0 = _mm512_and_si512(v0_, nibble);                \
        w1 = v0_;                                          \
        if (nr > 2) {                                      \
            __m512i v1_ = _mm512_load_si512((p) + 64);     \
            w2 = _mm512_and_si512(v1_, nibble);            \
            w3 = v1_;                                      \
        }                                                  \
    }
/* Row i's group sums as a decoded tile's would be: low nibbles less 8
 * asum, high ones (P - L) / 16. */
#define QB_LB_UNFUSE(i)                                                                  \
    if (i < mr) {                                                                        \
        __m512i asum8_ = _mm512_set1_epi32(asum[i * G + grp] * 8);                       \
        if (nr > 1) c##i##1 = _mm512_srai_epi32(_mm512_sub_epi32(c##i##1, c##i##0), 4); \
        c##i##0 = _mm512_sub_epi32(c##i##0, asum8_);                                     \
        if (nr > 3) c##i##3 = _mm512_srai_epi32(_mm512_sub_epi32(c##i##3, c##i##2), 4); \
        if (nr > 2) c##i##2 = _mm512_sub_epi32(c##i##2, asum8_);                         \
    }
#define QB_LB_FUSED_FOLD(i, j) QB_LB_FOLD_INTO(fpart, grp == 0, t->scales + (size_t)grp * 64, i, j)
#define QB_LB_FUSED_BROADCAST_TAIL(i) qb_vnni_tail_bytes(a + i * lda, tail)

typedef struct {
    const qb_lowbit_block *b;
    int m;                   /* the tile's first row */
    const uint8_t *p;        /* the block's panel codes */
    const float *scales;     /* the block's panel scales, [G][64] */
    const int32_t *asum;     /* each row's sums of A per group, [M][G] */
    const char *next, *next_end; /* lines of the next block's codes to prefetch */
    int per_step;            /* lines a step */
} qb_lb_fused_args;

/* Group grp of the tile, folded into its float sums fpart ([mr][64]). */
static inline __attribute__((always_inline)) void qb_lb_fused_group(qb_lb_fused_args *t, int grp, float *fpart,
                                                                    int mr, int nr) {
    QB_VNNI_FOR_TILE(QB_LB_FUSED_DECLARE)
    const qb_lowbit_block *b = t->b;
    const qb_lowbit_a8_args *g = b->g;
    const qb_lowbit_weights *W = g->W;
    const size_t lda = (size_t)g->lda;
    const int G = W->G, k0 = grp * W->group, len = W->K - k0 < W->group ? W->K - k0 : W->group, tail = len % 4;
    const int32_t *asum = t->asum + (size_t)t->m * G;
    const __m512i nibble = _mm512_set1_epi8(15);
    /* the output lines the epilogue writes, one a step (mr rows of C, then
     * of the residual, four lines each) from the first step on */
    const int s0 = k0 / 4;
    const bool fetch = s0 < 8 * mr;
    const float *c_rows = fetch ? g->C + (size_t)t->m * g->ldc + b->n : NULL;
    const float *r_rows = fetch && g->residual ? g->residual + (size_t)t->m * g->ldr + b->n : NULL;
    const uint8_t *a = g->A + (size_t)t->m * lda + k0, *p = t->p + (size_t)s0 * 128;
    const char *next = t->next;
    __m512i w0, w1, w2, w3;
    for (int s = 0; s < len / 4; s++, a += 4, p += 128) {
        for (int i = 0; i < t->per_step && next < t->next_end; i++, next += 64) _mm_prefetch(next, _MM_HINT_T1);
        qb_vnni_fetch_output_line(c_rows, (size_t)g->ldc, r_rows, (size_t)g->ldr, b->cols, mr, s0 + s);
        QB_LB_LOAD_PANEL(p)
        QB_VNNI_ROWS(QB_VNNI_BROADCAST)
    }
    if (tail) {
        QB_LB_LOAD_PANEL(p)
        QB_VNNI_ROWS(QB_LB_FUSED_BROADCAST_TAIL)
    }
    t->next = next;
    QB_LB_UNFUSE(0) QB_LB_UNFUSE(1) QB_LB_UNFUSE(2) QB_LB_UNFUSE(3) QB_LB_UNFUSE(4) QB_LB_UNFUSE(5)
    QB_VNNI_FOR_TILE(QB_LB_FUSED_FOLD)
}

#define QB_LB_FUSED(mr, nr)                                                      \
    static void qb_lb_fused_##mr##x##nr(qb_lb_fused_args *t, int grp, float *fpart) { \
        qb_lb_fused_group(t, grp, fpart, mr, nr);                                \
    }
QB_LB_EACH_SHAPE(QB_LB_FUSED)
static void (*const qb_lb_fused_groups[QB_LB_MR][4])(qb_lb_fused_args *, int, float *) = QB_LB_TILE_TABLE(fused);

/* Rows [t->m, t->m + mr) through all of K, then the epilogue from their
 * float sums. */
static void qb_lb_fused_tile(qb_lb_fused_args *t, int mr) {
    int nr = (t->b->cols + 15) / 16;
    _Alignas(64) float fpart[QB_LB_MR * 64]; /* group 0 sets the columns it has, the epilogue reads no others */
    for (int grp = 0; grp < t->b->g->W->G; grp++) qb_lb_fused_groups[mr - 1][nr - 1](t, grp, fpart);
    qb_lowbit_block_epilogue(t->b, fpart, t->m, mr);
}

/* Each row's sum of A over each group, [M][G]. */
static void qb_lb_group_sums(const qb_lowbit_a8_args *g, int32_t *out) {
    const qb_lowbit_weights *W = g->W;
    for (int m = 0; m < g->M; m++) {
        const uint8_t *a = g->A + (size_t)m * g->lda;
        for (int j = 0; j < W->G; j++) {
            int k1 = (j + 1) * W->group < W->K ? (j + 1) * W->group : W->K;
            __m512i acc = _mm512_setzero_si512(), zero = _mm512_setzero_si512();
            for (int k = j * W->group; k < k1; k += 64) {
                __mmask64 mask = k1 - k >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (k1 - k)) - 1;
                acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(mask, a + k), zero));
            }
            out[(size_t)m * W->G + j] = (int32_t)_mm512_reduce_add_epi64(acc);
        }
    }
}

/* Every row tile of a block through its panels before the next block,
 * whose lines the tiles fetch into L2 meanwhile. */
static void qb_lb_gemm_a8_fused(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    const qb_lowbit_weights *W = g->W;
    int32_t *asum = (int32_t *)((char *)scratch + W->plan.asum);
    qb_lb_group_sums(g, asum);
    int tiles = (g->M + QB_LB_MR - 1) / QB_LB_MR, steps = (W->K + 3) / 4;
    for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK) {
        qb_lowbit_block b;
        qb_lowbit_block_init(&b, g, scratch, n, n1, tiles);
        size_t block = (size_t)n / QB_LOWBIT_N_BLOCK;
        qb_lb_fused_args t = {.b = &b, .p = qb_lowbit_panel_codes(W, block),
                              .scales = qb_lowbit_panel_scales(W, block, 0), .asum = asum};
        for (int mr = 0; t.m < g->M; t.m += mr) {
            /* seven rows left: four and three, as one row's four sums
             * would wait on vpdpbusd's latency */
            int left = g->M - t.m, lines;
            mr = left == 7 ? 4 : left < QB_LB_MR ? left : QB_LB_MR;
            t.next = qb_lb_take_prefetch(&b, &lines);
            t.next_end = t.next ? t.next + (size_t)lines * 64 : NULL;
            t.per_step = (lines + steps - 1) / steps;
            qb_lb_fused_tile(&t, mr);
        }
    }
}

/* Blocks outermost: a block's decoded span (<= 256 KiB) stays in L2 while
 * every row runs through it, and the activations stream past from L2 or
 * L3 (at M = 1024, K = 3072 that is 3 MiB per block against ~1 ms of
 * multiply-adds, far below L3's bandwidth, though not below its latency:
 * hence each tile fetching the next one's rows). */
void qb_lowbit_gemm_a8_vnni(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    const qb_lowbit_weights *W = g->W;
    if (W->panels && W->code == QB_CODE_U4 && !W->zero && g->M <= g->fused_rows) {
        qb_lb_gemm_a8_fused(g, n0, n1, scratch);
        return;
    }
    int rows = qb_lb_chunk_rows(g->M);
    int chunk_k = W->group < QB_LOWBIT_KC ? W->plan.chunk_groups * W->group : QB_LOWBIT_KC;
    int tiles = (g->M + QB_LB_MR - 1) / QB_LB_MR * ((W->K + chunk_k - 1) / chunk_k) * W->plan.chunk_groups;
    for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK) {
        qb_lowbit_block b;
        qb_lowbit_block_init(&b, g, scratch, n, n1, tiles);
        for (int m0 = 0; m0 < g->M; m0 += rows) qb_lowbit_block_rows_vnni(&b, m0, g->M - m0 < rows ? g->M - m0 : rows);
    }
}

void qb_kernels_lowbit_init_avx512_vnni(qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = QB_ISA_AVX512, .panel_codes = QB_LOWBIT_PANELS_ALL,
                             .fused_rows = qb_cpu_amd() ? QB_LOWBIT_FUSED_ROWS_MAX : QB_LOWBIT_FUSED_ROWS,
                             .gemm_a8 = qb_lowbit_gemm_a8_vnni, .dequantize = qb_lowbit_dequantize_avx512,
                             .gemm_f32_few = qb_lowbit_gemm_f32_few_avx512};
}

void qb_kernels_lowbit_init_avx512(qb_kernels_lowbit *k) {
    qb_kernels_lowbit_init_avx512_vnni(k);
    if (qb_i8_amx_enable()) {
        k->amx = true;
        k->gemm_a8 = qb_lowbit_gemm_a8_amx;
    }
}
