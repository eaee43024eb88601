/* AVX-512 VNNI W.A8 kernels.  Each chunk of a 64-column block (whole
 * groups, at most QB_LOWBIT_KC k) is decoded once to s8 (code - zero) in
 * vpdpbusd's layout, [step][64 columns][4 k], and every row of the row chunk
 * runs against it from L1 in a 6-row x 64-column register tile of int32
 * sums, as the int8 kernel does.  At the end of each group the int32 sums
 * are folded into float sums (one vfmadd by the group's scales) parked in
 * scratch, and the epilogue applies zsum, a_scale, bias, activation and
 * residual.  U4 decodes with nibble masks a row at a time into a stage,
 * which a 16 x 16 dword transpose in registers turns into the layout; the
 * other codes go through the generic decoder. */
#include <immintrin.h>
#include <string.h>

#include "kernels/kernels_lowbit.h"
#include "kernels/vec_avx512.h"

#define QB_LB_MR 6
#define QB_LB_A_L2_BYTES (512 * 1024)

typedef int32_t qb_lb_u32_unaligned __attribute__((may_alias, aligned(1)));

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
} qb_lb_tile_args;

/* Named accumulators, not an array (GCC spills arrays of vectors). */
#define QB_LB_FOR_TILE(X) \
    X(0, 0) X(0, 1) X(0, 2) X(0, 3) X(1, 0) X(1, 1) X(1, 2) X(1, 3) X(2, 0) X(2, 1) X(2, 2) X(2, 3) \
    X(3, 0) X(3, 1) X(3, 2) X(3, 3) X(4, 0) X(4, 1) X(4, 2) X(4, 3) X(5, 0) X(5, 1) X(5, 2) X(5, 3)
#define QB_LB_DECLARE(i, j) __m512i c##i##j = _mm512_setzero_si512();
#define QB_LB_LOAD(i, j) \
    if (i < mr && j < nr) c##i##j = _mm512_load_si512(t->ipart + i * 64 + j * 16);
#define QB_LB_STORE(i, j) \
    if (i < mr && j < nr) _mm512_store_si512(t->ipart + i * 64 + j * 16, c##i##j);
/* fmaf(scale, (float)sum, acc): the float order of kernels_lowbit.h */
#define QB_LB_FOLD(i, j)                                                                              \
    if (i < mr && j < nr) {                                                                           \
        float *f_ = t->fpart + i * 64 + j * 16;                                                       \
        __m512 acc_ = t->first_group ? _mm512_setzero_ps() : _mm512_load_ps(f_);                       \
        _mm512_store_ps(f_, _mm512_fmadd_ps(_mm512_load_ps(t->scale + j * 16), _mm512_cvtepi32_ps(c##i##j), acc_)); \
    }
#define QB_LB_ROW(i, av)                                            \
    if (i < mr) {                                                   \
        __m512i a_ = (av);                                          \
        if (nr > 0) c##i##0 = _mm512_dpbusd_epi32(c##i##0, a_, w0); \
        if (nr > 1) c##i##1 = _mm512_dpbusd_epi32(c##i##1, a_, w1); \
        if (nr > 2) c##i##2 = _mm512_dpbusd_epi32(c##i##2, a_, w2); \
        if (nr > 3) c##i##3 = _mm512_dpbusd_epi32(c##i##3, a_, w3); \
    }
#define QB_LB_ROWS(load) \
    QB_LB_ROW(0, load(0)) QB_LB_ROW(1, load(1)) QB_LB_ROW(2, load(2)) QB_LB_ROW(3, load(3)) QB_LB_ROW(4, load(4)) QB_LB_ROW(5, load(5))
#define QB_LB_BROADCAST(i) _mm512_set1_epi32(*(const qb_lb_u32_unaligned *)(a + i * lda))
#define QB_LB_BROADCAST_TAIL(i) qb_lb_tail_bytes(a + i * lda, t->tail)

/* The decoded weights are zero past the segment, so only the bytes read
 * from A must stay inside the row. */
static inline __m512i qb_lb_tail_bytes(const uint8_t *a, int tail) {
    int32_t bytes = 0;
    memcpy(&bytes, a, (size_t)tail);
    return _mm512_set1_epi32(bytes);
}

static inline __attribute__((always_inline)) void qb_lb_tile(const qb_lb_tile_args *t, int mr, int nr) {
    QB_LB_FOR_TILE(QB_LB_DECLARE)
    if (!t->starts) { QB_LB_FOR_TILE(QB_LB_LOAD) }
    const uint8_t *a = t->a;
    const int8_t *w = t->w;
    const size_t lda = t->lda;
    __m512i w0, w1, w2, w3;
    for (int s = 0; s < t->steps; s++, a += 4, w += 256) {
        if (nr > 0) w0 = _mm512_load_si512(w);
        if (nr > 1) w1 = _mm512_load_si512(w + 64);
        if (nr > 2) w2 = _mm512_load_si512(w + 128);
        if (nr > 3) w3 = _mm512_load_si512(w + 192);
        QB_LB_ROWS(QB_LB_BROADCAST)
    }
    if (t->tail) {
        if (nr > 0) w0 = _mm512_load_si512(w);
        if (nr > 1) w1 = _mm512_load_si512(w + 64);
        if (nr > 2) w2 = _mm512_load_si512(w + 128);
        if (nr > 3) w3 = _mm512_load_si512(w + 192);
        QB_LB_ROWS(QB_LB_BROADCAST_TAIL)
    }
    if (t->ends) {
        QB_LB_FOR_TILE(QB_LB_FOLD)
    } else {
        QB_LB_FOR_TILE(QB_LB_STORE)
    }
}

#define QB_LB_TILE(mr, nr) \
    static void qb_lb_tile_##mr##x##nr(const qb_lb_tile_args *t) { qb_lb_tile(t, mr, nr); }
#define QB_LB_TILE_ROW(mr) QB_LB_TILE(mr, 1) QB_LB_TILE(mr, 2) QB_LB_TILE(mr, 3) QB_LB_TILE(mr, 4)
QB_LB_TILE_ROW(1)
QB_LB_TILE_ROW(2)
QB_LB_TILE_ROW(3)
QB_LB_TILE_ROW(4)
QB_LB_TILE_ROW(5)
QB_LB_TILE_ROW(6)

typedef void (*qb_lb_tile_fn)(const qb_lb_tile_args *t);
#define QB_LB_TILE_FNS(mr) {qb_lb_tile_##mr##x1, qb_lb_tile_##mr##x2, qb_lb_tile_##mr##x3, qb_lb_tile_##mr##x4}
static const qb_lb_tile_fn qb_lb_tiles[QB_LB_MR][4] = {QB_LB_TILE_FNS(1), QB_LB_TILE_FNS(2), QB_LB_TILE_FNS(3),
                                                       QB_LB_TILE_FNS(4), QB_LB_TILE_FNS(5), QB_LB_TILE_FNS(6)};

static inline __mmask64 qb_lb_mask64(int count) {
    return count >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << count) - 1;
}

/* len U4 codes from k0 (even) of one row, minus z, to dst, zero-padded to
 * whole steps: 32 bytes give 64 codes, their nibbles interleaved in order. */
static void qb_lb_decode_u4(const uint8_t *row, int k0, int len, int z, int8_t *dst) {
    const uint8_t *src = row + k0 / 2;
    const __m256i low4 = _mm256_set1_epi8(15);
    const __m512i zero = _mm512_set1_epi8((char)z);
    for (int i = 0; i < len; i += 64) {
        int n = len - i < 64 ? len - i : 64;
        __m256i p = _mm256_maskz_loadu_epi8((__mmask32)qb_lb_mask64((n + 1) / 2), src + i / 2);
        __m256i lo = _mm256_and_si256(p, low4), hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), low4);
        /* per 128-bit lane: unpacklo holds codes 0-15 | 32-47, unpackhi 16-31 | 48-63 */
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi8(lo, hi)),
                                       _mm256_unpackhi_epi8(lo, hi), 1);
        v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
        v = _mm512_maskz_sub_epi8(qb_lb_mask64(n), v, zero);
        _mm512_mask_storeu_epi8(dst + i, qb_lb_mask64((n + 3) / 4 * 4), v);
    }
}

/* 16 stage rows (columns c0..c0+15) of `steps` dwords into the layout: 16 x
 * 16 dword transposes (unpack 32, unpack 64, two 128-bit lane shuffles). */
static void qb_lb_transpose(const int8_t *stage, size_t ld, int steps, int c0, int8_t *out) {
    for (int q = 0; q * 16 < steps; q++) {
        __m512i r[16], t[16], u[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_load_si512(stage + j * ld + q * 64);
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
            __m512i d[4] = {_mm512_shuffle_i32x4(v01, v23, 0x88), _mm512_shuffle_i32x4(w01, w23, 0x88),
                            _mm512_shuffle_i32x4(v01, v23, 0xdd), _mm512_shuffle_i32x4(w01, w23, 0xdd)};
            for (int L = 0; L < 4; L++) {
                int s = q * 16 + 4 * L + c;
                if (s < steps) _mm512_store_si512(out + (size_t)s * 256 + c0 * 4, d[L]);
            }
        }
    }
}

/* The chunk's segments of columns [n, n + cols) into the layout at dec. */
static void qb_lb_decode_chunk(const qb_lowbit_weights *W, int n, int cols, const qb_lowbit_segment *seg, int count,
                               int steps, int8_t *stage, size_t ld, int8_t *dec) {
    bool u4 = W->code == QB_CODE_U4 && (W->group % 2 == 0 || W->G == 1);
    for (int c0 = 0; c0 < cols; c0 += 16) {
        for (int j = 0; j < 16; j++) {
            int8_t *dst = stage + j * ld;
            int col = n + c0 + j;
            if (c0 + j >= cols) {
                memset(dst, 0, (size_t)steps * 4);
                continue;
            }
            for (int s = 0; s < count; s++) {
                int pad = (seg[s].len + 3) / 4 * 4;
                if (u4)
                    qb_lb_decode_u4(W->rows + (size_t)col * W->row_bytes, seg[s].k0, seg[s].len,
                                    qb_lowbit_zero_point(W, col, seg[s].g), dst + seg[s].step0 * 4);
                else qb_lowbit_decode_s8(W, col, seg[s].k0, seg[s].len, pad, dst + seg[s].step0 * 4);
            }
        }
        qb_lb_transpose(stage, ld, steps, c0, dec);
    }
}

/* The scales of the groups that end in this chunk, [segment][64], zero
 * past the last column. */
static void qb_lb_chunk_scales(const qb_lowbit_weights *W, int n, int cols, const qb_lowbit_segment *seg, int count,
                               float *out) {
    for (int s = 0; s < count; s++) {
        if (!seg[s].ends) continue;
        for (int j = 0; j < 64; j++) out[s * 64 + j] = j < cols ? W->scale[(size_t)(n + j) * W->G + seg[s].g] : 0.0f;
    }
}

static void qb_lb_epilogue(const qb_lowbit_a8_args *g, const float *fpart, int m0, int rows, int n, int cols) {
    for (int j = 0; j < cols; j += 16) {
        __mmask16 mask = qb_v16_mask(cols - j);
        int c = n + j;
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

/* Rows [m0, m0 + rows) (rows <= QB_LOWBIT_MC) against columns [n, n + 64). */
static void qb_lb_block(const qb_lowbit_a8_args *g, int m0, int rows, int n, const qb_lowbit_scratch_layout *L,
                        char *scratch) {
    const qb_lowbit_weights *W = g->W;
    int cols = W->N - n < QB_LOWBIT_N_BLOCK ? W->N - n : QB_LOWBIT_N_BLOCK, nr = (cols + 15) / 16;
    int8_t *dec = (int8_t *)(scratch + L->decoded), *stage = (int8_t *)(scratch + L->stage);
    float *scales = (float *)(scratch + L->scales), *fpart = (float *)(scratch + L->fpart);
    int32_t *ipart = (int32_t *)(scratch + L->ipart);
    size_t ld = ((size_t)L->chunk_steps * 4 + 63) / 64 * 64;
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    for (int k0 = 0; k0 < W->K;) {
        int steps, count = qb_lowbit_chunk(W, k0, L->chunk_groups, seg, &steps);
        qb_lb_decode_chunk(W, n, cols, seg, count, steps, stage, ld, dec);
        qb_lb_chunk_scales(W, n, cols, seg, count, scales);
        for (int i = 0; i < rows; i += QB_LB_MR) {
            int mr = rows - i < QB_LB_MR ? rows - i : QB_LB_MR;
            for (int s = 0; s < count; s++) {
                qb_lb_tile_args t = {.a = g->A + (size_t)(m0 + i) * g->lda + seg[s].k0, .lda = (size_t)g->lda,
                                     .w = dec + (size_t)seg[s].step0 * 256, .steps = seg[s].len / 4,
                                     .tail = seg[s].len % 4, .starts = seg[s].starts, .ends = seg[s].ends,
                                     .first_group = seg[s].g == 0, .ipart = ipart + i * 64, .fpart = fpart + i * 64,
                                     .scale = scales + s * 64};
                qb_lb_tiles[mr - 1][nr - 1](&t);
            }
        }
        k0 = seg[count - 1].k0 + seg[count - 1].len;
    }
    qb_lb_epilogue(g, fpart, m0, rows, n, cols);
}

static void qb_lowbit_gemm_a8_avx512(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    const qb_lowbit_weights *W = g->W;
    qb_lowbit_scratch_layout L = qb_lowbit_scratch_plan(W->K, W->group);
    int chunks = (g->M + QB_LOWBIT_MC - 1) / QB_LOWBIT_MC;
    int rows = (g->M + chunks - 1) / chunks;
    rows = (rows + QB_LB_MR - 1) / QB_LB_MR * QB_LB_MR;
    if (rows > QB_LOWBIT_MC) rows = QB_LOWBIT_MC;
    /* as the int8 kernel: activations that fit L2 are re-read per block */
    if ((size_t)g->M * W->K <= QB_LB_A_L2_BYTES) {
        for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK)
            for (int m0 = 0; m0 < g->M; m0 += rows) qb_lb_block(g, m0, g->M - m0 < rows ? g->M - m0 : rows, n, &L, scratch);
        return;
    }
    for (int m0 = 0; m0 < g->M; m0 += rows)
        for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK)
            qb_lb_block(g, m0, g->M - m0 < rows ? g->M - m0 : rows, n, &L, scratch);
}

void qb_kernels_lowbit_init_avx512(qb_kernels_lowbit *k) {
    k->isa = QB_ISA_AVX512;
    k->gemm_a8 = qb_lowbit_gemm_a8_avx512;
}
