/* AVX2 W.A8 kernels: the AVX-512 file's scheme (kernels_lowbit.h, chunks
 * decoded to [step][64][4] s8) on 256-bit vectors.  U4 grids decode from
 * the panels: decoding from the rows reads 64 rows at a stride, which
 * defeats the prefetchers and leaves short inputs waiting on memory.
 * AVX2 has no vpdpbusd; vpmaddubsw (u8 x s8, pairs added in int16) cannot
 * saturate here, since |code - zero| <= 15 keeps a pair within 2 * 255 * 15
 * = 7650, so vpmaddubsw then vpmaddwd by ones gives the 4-k sums exactly
 * without widening A, and four such pair sums fit int16 (30600): over
 * 16 k, four vpmaddubsw share one vpmaddwd.  A tile is 4 rows x 16
 * columns. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_pack_avx.h"
#include "kernels/kernels_lowbit.h"
#include "kernels/lowbit_x86.h"
#include "kernels/vec_avx2.h"

#define QB_LB_MR 4

typedef int32_t qb_lb_u32_unaligned __attribute__((may_alias, aligned(1)));

typedef struct {
    const uint8_t *a;   /* row 0 of the tile at the segment's first k */
    size_t lda;
    const int8_t *w;    /* the decoded segment at the stripe's columns */
    int steps, tail;
    bool starts, ends, first_group;
    int32_t *ipart;     /* [mr][64] at the stripe's columns */
    float *fpart;       /* [mr][64] at the stripe's columns */
    const float *scale; /* [16] the stripe's scales (ends only) */
} qb_lb_tile_args;

static inline __m256i qb_lb_dot4(__m256i acc, __m256i a, __m256i w) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(1)));
}

/* Four bytes of A from a, all of them or the first tail (1..3). */
static inline __m256i qb_lb_a4(const uint8_t *a, int tail) {
    if (!tail) return _mm256_set1_epi32(*(const qb_lb_u32_unaligned *)a);
    uint32_t bytes = a[0] | (tail > 1 ? (uint32_t)a[1] << 8 : 0) | (tail > 2 ? (uint32_t)a[2] << 16 : 0);
    return _mm256_set1_epi32((int)bytes);
}

/* A tile's running sums: loaded (or zero) at a segment's start, kept in
 * ipart between segments of a group, and at its end scaled into fpart. */
static inline __m256i qb_lb_acc_load(const qb_lb_tile_args *t, int i, int h) {
    return t->starts ? _mm256_setzero_si256() : _mm256_loadu_si256((const __m256i *)(t->ipart + i * 64 + 8 * h));
}

static inline void qb_lb_acc_store(const qb_lb_tile_args *t, int i, int h, __m256i acc) {
    if (!t->ends) {
        _mm256_storeu_si256((__m256i *)(t->ipart + i * 64 + 8 * h), acc);
        return;
    }
    /* fmaf(scale, (float)sum, acc): the float order of kernels_lowbit.h */
    float *f = t->fpart + i * 64 + 8 * h;
    __m256 sum = t->first_group ? _mm256_setzero_ps() : _mm256_loadu_ps(f);
    _mm256_storeu_ps(f, _mm256_fmadd_ps(_mm256_loadu_ps(t->scale + 8 * h), _mm256_cvtepi32_ps(acc), sum));
}

/* The sums of 16 k (four steps) of one row against 8 columns, the steps'
 * weight vectors 256 bytes apart from w: the multiplier ports do 5
 * operations per 16 k instead of 8. */
static inline __m256i qb_lb_dot16(const uint8_t *a, const int8_t *w) {
    __m256i p[4];
    for (int q = 0; q < 4; q++)
        p[q] = _mm256_maddubs_epi16(qb_lb_a4(a + 4 * q, 0), _mm256_load_si256((const __m256i *)(w + 256 * q)));
    __m256i sum = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
    return _mm256_madd_epi16(sum, _mm256_set1_epi16(1));
}

/* Row i's sums are c<i>0 and c<i>1, named variables rather than an array:
 * GCC 12 keeps an array of them partly in memory. */
#define QB_LB_ROWS(X) X(0) X(1) X(2) X(3)
#define QB_LB_ROW_LOAD(i)                                                        \
    __m256i c##i##0 = _mm256_setzero_si256(), c##i##1 = _mm256_setzero_si256(); \
    if (mr > i) c##i##0 = qb_lb_acc_load(t, i, 0), c##i##1 = qb_lb_acc_load(t, i, 1);
#define QB_LB_ROW_STORE(i) \
    if (mr > i) qb_lb_acc_store(t, i, 0, c##i##0), qb_lb_acc_store(t, i, 1, c##i##1);
#define QB_LB_ROW_DOT16(i)                                                            \
    if (mr > i) {                                                                     \
        c##i##0 = _mm256_add_epi32(c##i##0, qb_lb_dot16(t->a + i * t->lda + 4 * s, w));      \
        c##i##1 = _mm256_add_epi32(c##i##1, qb_lb_dot16(t->a + i * t->lda + 4 * s, w + 32)); \
    }
#define QB_LB_ROW_DOT4(i)                                                   \
    if (mr > i) {                                                           \
        __m256i a = qb_lb_a4(t->a + i * t->lda + 4 * s, tail);              \
        c##i##0 = qb_lb_dot4(c##i##0, a, w0);                               \
        c##i##1 = qb_lb_dot4(c##i##1, a, w1);                               \
    }

/* One step of 4 k (the first tail_k of them when tail_k > 0) for mr rows. */
#define QB_LB_STEP(tail_k)                                                   \
    {                                                                        \
        const int tail = tail_k;                                             \
        __m256i w0 = _mm256_load_si256((const __m256i *)w);                  \
        __m256i w1 = _mm256_load_si256((const __m256i *)(w + 32));           \
        QB_LB_ROWS(QB_LB_ROW_DOT4)                                           \
    }

static inline __attribute__((always_inline)) void qb_lb_tile(const qb_lb_tile_args *t, int mr) {
    QB_LB_ROWS(QB_LB_ROW_LOAD)
    const int8_t *w = t->w;
    int s = 0;
    for (; s + 4 <= t->steps; s += 4, w += 1024) {
        QB_LB_ROWS(QB_LB_ROW_DOT16)
    }
    /* the last steps apart, so that the sums stay in registers */
    for (; s < t->steps; s++, w += 256) QB_LB_STEP(0)
    if (t->tail) QB_LB_STEP(t->tail)
    QB_LB_ROWS(QB_LB_ROW_STORE)
}

#define QB_LB_TILE(mr) \
    static void qb_lb_tile_##mr(const qb_lb_tile_args *t) { qb_lb_tile(t, mr); }
QB_LB_TILE(1)
QB_LB_TILE(2)
QB_LB_TILE(3)
QB_LB_TILE(4)
typedef void (*qb_lb_tile_fn)(const qb_lb_tile_args *t);
static const qb_lb_tile_fn qb_lb_tiles[QB_LB_MR] = {qb_lb_tile_1, qb_lb_tile_2, qb_lb_tile_3, qb_lb_tile_4};

/* len U4 codes from k0 (even) of one row, minus z, to dst, zero past len;
 * whole 32-byte stores (the stage has room past a row). */
static void qb_lb_decode_u4(const uint8_t *row, size_t row_bytes, int k0, int len, int z, int8_t *dst) {
    static const int8_t ones_then_zeros[64] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    const __m128i low4 = _mm_set1_epi8(15);
    const __m256i zero = _mm256_set1_epi8((char)z);
    for (int i = 0; i < len; i += 32) {
        int n = len - i < 32 ? len - i : 32;
        size_t at = (size_t)(k0 + i) / 2, avail = row_bytes - at;
        __m128i p;
        if (avail >= 16) p = _mm_loadu_si128((const __m128i *)(row + at));
        else {
            uint8_t tmp[16] = {0};
            memcpy(tmp, row + at, avail);
            p = _mm_loadu_si128((const __m128i *)tmp);
        }
        __m128i lo = _mm_and_si128(p, low4), hi = _mm_and_si128(_mm_srli_epi16(p, 4), low4);
        __m256i v = _mm256_set_m128i(_mm_unpackhi_epi8(lo, hi), _mm_unpacklo_epi8(lo, hi));
        v = _mm256_and_si256(_mm256_sub_epi8(v, zero), _mm256_loadu_si256((const __m256i *)(ones_then_zeros + 32 - n)));
        _mm256_storeu_si256((__m256i *)(dst + i), v);
    }
}

/* 8 stage rows (columns c..c+7) of `steps` dwords into the layout, 8 x 8
 * dword transposes. */
static void qb_lb_transpose8(const int8_t *stage, size_t ld, int steps, int c, int8_t *out) {
    for (int q = 0; q * 8 < steps; q++) {
        __m256i r[8], t[8], u[8];
        for (int j = 0; j < 8; j++) r[j] = _mm256_load_si256((const __m256i *)(stage + j * ld + q * 32));
        for (int j = 0; j < 8; j += 2) {
            t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
            t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
        }
        /* u[4b + d]: lane L holds rows 4b..4b+3 of dword 4L + d */
        for (int b = 0; b < 2; b++) {
            u[4 * b + 0] = _mm256_unpacklo_epi64(t[4 * b], t[4 * b + 2]);
            u[4 * b + 1] = _mm256_unpackhi_epi64(t[4 * b], t[4 * b + 2]);
            u[4 * b + 2] = _mm256_unpacklo_epi64(t[4 * b + 1], t[4 * b + 3]);
            u[4 * b + 3] = _mm256_unpackhi_epi64(t[4 * b + 1], t[4 * b + 3]);
        }
        for (int d = 0; d < 4; d++) {
            int s0 = q * 8 + d, s1 = q * 8 + 4 + d;
            if (s0 < steps)
                _mm256_store_si256((__m256i *)(out + (size_t)s0 * 256 + c * 4),
                                   _mm256_permute2x128_si256(u[d], u[4 + d], 0x20));
            if (s1 < steps)
                _mm256_store_si256((__m256i *)(out + (size_t)s1 * 256 + c * 4),
                                   _mm256_permute2x128_si256(u[d], u[4 + d], 0x31));
        }
    }
}

/* Group g's zero points of the block at column n, each repeated over its
 * column's 4 k: vector d for columns 8 d .. 8 d + 7. */
static void qb_lb_panel_zero(const qb_lowbit_weights *W, int n, int g, __m256i z[8]) {
    if (!W->zero) {
        for (int d = 0; d < 8; d++) z[d] = _mm256_set1_epi8((char)(qb_code_levels(W->code) / 2));
        return;
    }
    const uint8_t *p = qb_lowbit_panel_zeros(W, (size_t)n / QB_LOWBIT_N_BLOCK, g);
    for (int d = 0; d < 8; d++)
        z[d] = _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * d))),
                                  _mm256_set1_epi32(0x01010101));
}

/* One step of U4 panels (kernels_lowbit.h) less the zero points: its four
 * panel vectors hold columns 0-7, 8-15, 32-39 and 40-47 in their low
 * nibbles and, stored XOR 8, the columns 16 further on in their high ones. */
static inline void qb_lb_step_u4(const uint8_t *p, const __m256i z[8], int8_t *dec) {
    static const int low_of[4] = {0, 1, 4, 5}, high_of[4] = {2, 3, 6, 7};
    const __m256i nibble = _mm256_set1_epi8(15), eight = _mm256_set1_epi8(8);
    for (int v = 0; v < 4; v++) {
        __m256i b = _mm256_load_si256((const __m256i *)(p + 32 * v));
        __m256i lo = _mm256_and_si256(b, nibble);
        __m256i hi = _mm256_xor_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), nibble), eight);
        _mm256_store_si256((__m256i *)(dec + 32 * low_of[v]), _mm256_sub_epi8(lo, z[low_of[v]]));
        _mm256_store_si256((__m256i *)(dec + 32 * high_of[v]), _mm256_sub_epi8(hi, z[high_of[v]]));
    }
}

/* One step of 2-bit panels: bits 2 f of panel vector v hold columns
 * 16 f + 8 v .. 16 f + 8 v + 7; for U3, bits 32 v .. 32 v + 31 of word f
 * of bit2 hold their bit 2. */
static inline void qb_lb_step_u2(const uint8_t *p, const uint8_t *bit2, const __m256i z[8], int8_t *dec) {
    const __m256i low2 = _mm256_set1_epi8(3);
    for (int v = 0; v < 2; v++) {
        __m256i b = _mm256_load_si256((const __m256i *)(p + 32 * v));
        for (int f = 0; f < 4; f++) {
            __m256i c = _mm256_and_si256(_mm256_srli_epi16(b, 2 * f), low2);
            if (bit2) {
                uint32_t word;
                memcpy(&word, bit2 + 8 * f + 4 * v, 4);
                c = _mm256_or_si256(c, qb_lb_fours32(word));
            }
            _mm256_store_si256((__m256i *)(dec + 32 * (2 * f + v)), _mm256_sub_epi8(c, z[2 * f + v]));
        }
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
    __m256i z[8];
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

static void qb_lb_decode_chunk(const qb_lowbit_weights *W, int n, int cols, const qb_lowbit_segment *seg, int count,
                               int steps, int8_t *stage, size_t ld, int8_t *dec) {
    if (W->panels) {
        qb_lb_decode_chunk_panels(W, n, seg[0].k0, seg[count - 1].k0 + seg[count - 1].len - seg[0].k0, dec);
        return;
    }
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
                    qb_lb_decode_u4(W->rows + (size_t)col * W->row_bytes, W->row_bytes, seg[s].k0, seg[s].len,
                                    qb_lowbit_zero_point(W, col, seg[s].g), dst + seg[s].step0 * 4);
                else qb_lowbit_decode_s8(W, col, seg[s].k0, seg[s].len, pad, dst + seg[s].step0 * 4);
            }
        }
        qb_lb_transpose8(stage, ld, steps, c0, dec);
        qb_lb_transpose8(stage + 8 * ld, ld, steps, c0 + 8, dec);
    }
}

static void qb_lb_epilogue(const qb_lowbit_a8_args *g, const float *fpart, int m0, int rows, int n, int cols) {
    for (int j = 0; j < cols; j += 8) {
        int c = n + j;
        __m256 zsum = qb_v8_load(g->W->zsum + c, cols - j);
        __m256 bias = g->bias ? qb_v8_load(g->bias + c, cols - j) : _mm256_setzero_ps();
        for (int i = 0; i < rows; i++) {
            int m = m0 + i;
            __m256 v = _mm256_fmadd_ps(_mm256_set1_ps(-(float)g->a_zero[m]), zsum, _mm256_load_ps(fpart + i * 64 + j));
            v = qb_v8_act(g->act, _mm256_fmadd_ps(v, _mm256_set1_ps(g->a_scale[m]), bias));
            if (g->residual) v = _mm256_add_ps(v, qb_v8_load(g->residual + (size_t)m * g->ldr + c, cols - j));
            qb_v8_store(g->C + (size_t)m * g->ldc + c, cols - j, v);
        }
    }
}

/* Rows [m0, m0 + rows) against columns [n, n + 64). */
static void qb_lb_block(const qb_lowbit_a8_args *g, int m0, int rows, int n, const qb_lowbit_scratch_layout *L,
                        char *scratch) {
    const qb_lowbit_weights *W = g->W;
    int cols = W->N - n < QB_LOWBIT_N_BLOCK ? W->N - n : QB_LOWBIT_N_BLOCK, stripes = (cols + 15) / 16;
    int8_t *dec = (int8_t *)(scratch + L->decoded), *stage = (int8_t *)(scratch + L->stage);
    float *scale_buf = (float *)(scratch + L->scales), *fpart = (float *)(scratch + L->fpart);
    int32_t *ipart = (int32_t *)(scratch + L->ipart);
    size_t ld = ((size_t)L->chunk_steps * 4 + 63) / 64 * 64;
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    for (int k0 = 0; k0 < W->K;) {
        int steps, count = qb_lowbit_chunk(W, k0, L->chunk_groups, seg, &steps);
        qb_lb_decode_chunk(W, n, cols, seg, count, steps, stage, ld, dec);
        const float *scales = qb_lowbit_chunk_scales(W, n, seg, count, scale_buf);
        for (int i = 0; i < rows; i += QB_LB_MR) {
            int mr = rows - i < QB_LB_MR ? rows - i : QB_LB_MR;
            for (int s = 0; s < count; s++)
                for (int p = 0; p < stripes; p++) {
                    qb_lb_tile_args t = {.a = g->A + (size_t)(m0 + i) * g->lda + seg[s].k0, .lda = (size_t)g->lda,
                                         .w = dec + (size_t)seg[s].step0 * 256 + p * 64, .steps = seg[s].len / 4,
                                         .tail = seg[s].len % 4, .starts = seg[s].starts, .ends = seg[s].ends,
                                         .first_group = seg[s].g == 0, .ipart = ipart + i * 64 + p * 16,
                                         .fpart = fpart + i * 64 + p * 16, .scale = scales + s * 64 + p * 16};
                    qb_lb_tiles[mr - 1](&t);
                }
        }
        k0 = seg[count - 1].k0 + seg[count - 1].len;
    }
    qb_lb_epilogue(g, fpart, m0, rows, n, cols);
}

static void qb_lowbit_gemm_a8_avx2(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lowbit_scratch_layout L = g->W->plan;
    for (int m0 = 0; m0 < g->M; m0 += QB_LOWBIT_MC)
        for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK)
            qb_lb_block(g, m0, g->M - m0 < QB_LOWBIT_MC ? g->M - m0 : QB_LOWBIT_MC, n, &L, scratch);
}

/* Codebook entries book[c] of 8 codes (< 16): a permute of each half of
 * the book, chosen by the code's bit 3 (moved to the sign bit). */
static inline __m256 qb_lb_book8(__m256 lo, __m256 hi, __m256i c) {
    __m256 take_hi = _mm256_castsi256_ps(_mm256_slli_epi32(c, 28));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, c), _mm256_permutevar8x32_ps(hi, c), take_hi);
}

/* A run of row codes from k as scale * (code - zero), or as entries of
 * the book's halves, a loop per code. */
static inline __attribute__((always_inline)) void qb_lb_values_of(qb_code code, bool book, const qb_lb_row *r, int k,
                                                                  int run, __m256 s, __m256i z, float *out) {
    const __m256 lo = _mm256_load_ps(r->book), hi = _mm256_load_ps(r->book + 8);
    for (int i = 0; i < run; i += 16) {
        __m128i c16 = qb_lb_row_codes16(code, r->row, r->high, k + i);
        __m256i c[2] = {_mm256_cvtepu8_epi32(c16), _mm256_cvtepu8_epi32(_mm_srli_si128(c16, 8))};
        for (int h = 0; h < 2; h++) {
            __m256 v = book ? qb_lb_book8(lo, hi, c[h])
                            : _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(c[h], z)));
            _mm256_storeu_ps(out + i + 8 * h, v);
        }
    }
}

static void qb_lb_values(const qb_lb_row *r, int k, int run, float scale, int zero, float *out) {
    __m256 s = _mm256_set1_ps(scale);
    __m256i z = _mm256_set1_epi32(zero);
#define QB_LB_VALUES(code, book) qb_lb_values_of(code, book, r, k, run, s, z, out)
    QB_LB_WITH_CODE(r->w, QB_LB_VALUES)
#undef QB_LB_VALUES
}

/* The weight-only GEMM decodes every weight per call, and the codebook's
 * scalar lookups were a sixth of a kmeans4 run. */
static void qb_lowbit_dequantize_avx2(const qb_lowbit_weights *w, int n, int k0, int count, float *out) {
    qb_lb_dequantize_row(w, n, k0, count, out, qb_lb_values);
}

/* Where a panel's codes come from: INT4, INT3, INT2 or ternary rows,
 * unpacked in registers, or a stage of one byte per code that groups not
 * whole bytes of codes are unpacked into. */
typedef enum {
    QB_LB_FROM_U4 = QB_CODE_U4,
    QB_LB_FROM_U3 = QB_CODE_U3,
    QB_LB_FROM_U2 = QB_CODE_U2,
    QB_LB_FROM_T5 = QB_CODE_T5,
    QB_LB_FROM_BYTES
} qb_lb_source;

/* One span of a 16-wide panel: rows' codes (for bytes, k's code at
 * row[j][k - k_base]) and, per row, the span's scale and zero point or its
 * codebook halves (all zero past the panel's columns, so those decode to
 * +0). */
typedef struct {
    const uint8_t *row[16];
    int k_base;
    size_t high; /* INT3: where a row's plane of bit 2 starts */
    __m256 s[16], lo[16], hi[16];
    __m128i z[16]; /* the zero point in every byte */
} qb_lb_panel_span;

static inline __attribute__((always_inline)) __m128i qb_lb_codes16(const qb_lb_panel_span *p, int j, int k,
                                                                   qb_lb_source from) {
    if (from == QB_LB_FROM_BYTES) return _mm_loadu_si128((const __m128i *)(p->row[j] + (k - p->k_base)));
    return qb_lb_row_codes16((qb_code)from, p->row[j], p->high, k);
}

/* Sixteen k of row j from k (in the span; a whole byte of codes in the
 * rows): scale * (code - zero), the difference taken on bytes
 * (|code - zero| < 16), or the entry. */
static inline __attribute__((always_inline)) void qb_lb_panel_values(const qb_lb_panel_span *p, int j, int k,
                                                                     bool book, qb_lb_source from, __m256 v[2]) {
    __m128i c = qb_lb_codes16(p, j, k, from);
    if (book) {
        v[0] = qb_lb_book8(p->lo[j], p->hi[j], _mm256_cvtepu8_epi32(c));
        v[1] = qb_lb_book8(p->lo[j], p->hi[j], _mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
        return;
    }
    __m128i d = _mm_sub_epi8(c, p->z[j]);
    v[0] = _mm256_mul_ps(p->s[j], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(d)));
    v[1] = _mm256_mul_ps(p->s[j], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(d, 8))));
}

/* Steps of 16 k from k0 up to end, 8 rows at a time decoded and
 * transposed in registers; returns where they stopped.  The rows are 16
 * streams at a stride, more than the hardware prefetchers follow. */
static inline __attribute__((always_inline)) int qb_lb_panel_steps(const qb_lb_panel_span *p, int k0, int end,
                                                                   bool book, qb_lb_source from, float *panel) {
    int k = k0;
    for (; k + 16 <= end; k += 16) {
        if (k % 128 == 0 && from != QB_LB_FROM_BYTES)
            for (int j = 0; j < 16; j++)
                _mm_prefetch((const char *)p->row[j] + qb_lb_row_byte((qb_code)from, k) + 256, _MM_HINT_T0);
        for (int h = 0; h < 16; h += 8) {
            __m256 r[2][8], v[2];
            for (int i = 0; i < 8; i++) {
                qb_lb_panel_values(p, h + i, k, book, from, v);
                r[0][i] = v[0], r[1][i] = v[1];
            }
            qb_gemm_transpose8_store(r[0], panel + (size_t)k * 16 + h, 16);
            qb_gemm_transpose8_store(r[1], panel + (size_t)(k + 8) * 16 + h, 16);
        }
    }
    return k;
}

/* The steps for each kind of code and weight, each its own loop. */
static inline __attribute__((always_inline)) int qb_lb_panel_steps_of(const qb_lb_panel_span *p, int k0, int end,
                                                                      bool book, qb_lb_source from, float *panel) {
#define QB_LB_STEPS(from_) \
    (book ? qb_lb_panel_steps(p, k0, end, true, from_, panel) : qb_lb_panel_steps(p, k0, end, false, from_, panel))
    switch (from) {
    case QB_LB_FROM_U4: return QB_LB_STEPS(QB_LB_FROM_U4);
    case QB_LB_FROM_U3: return QB_LB_STEPS(QB_LB_FROM_U3);
    case QB_LB_FROM_U2: return QB_LB_STEPS(QB_LB_FROM_U2);
    case QB_LB_FROM_T5: return QB_LB_STEPS(QB_LB_FROM_T5);
    default: return QB_LB_STEPS(QB_LB_FROM_BYTES);
    }
#undef QB_LB_STEPS
}

/* The span's scales and zero points, group g, for rows n0 .. n0 + cols. */
static void qb_lb_panel_group(const qb_lowbit_weights *w, int n0, int cols, int g, qb_lb_panel_span *p) {
    const float *scale = w->scale + (size_t)n0 * w->G + g;
    const uint8_t *zero = w->zero ? w->zero + (size_t)n0 * w->G + g : NULL;
    int symmetric = qb_code_levels(w->code) / 2;
    for (int j = 0; j < 16; j++) {
        p->s[j] = _mm256_set1_ps(j < cols ? scale[(size_t)j * w->G] : 0.0f);
        p->z[j] = _mm_set1_epi8((char)(j >= cols ? 0 : zero ? zero[(size_t)j * w->G] : symmetric));
    }
}

/* Where row codes of w come from: from the rows where each span (a group,
 * or all of K) starts on a whole byte of codes (ternary's any k), else
 * from the stage. */
static qb_lb_source qb_lb_panel_source(const qb_lowbit_weights *w) {
    bool whole = w->G == 1 || w->codebook || w->group % qb_lb_code_unit(w->code) == 0;
    return whole ? (qb_lb_source)w->code : QB_LB_FROM_BYTES;
}

/* The panel's rows (contiguous) into L2 at once: the steps' own
 * prefetches run 256 bytes ahead of each row, so every row's first bytes
 * were waited for. */
static void qb_lb_prefetch_rows(const qb_lowbit_weights *w, int n0, int cols) {
    const char *at = (const char *)w->rows + (size_t)n0 * w->row_bytes, *end = at + (size_t)cols * w->row_bytes;
    for (; at < end; at += 64) _mm_prefetch(at, _MM_HINT_T1);
}

/* A 16-wide FP32 panel (the AVX2 GEMM's), decoded and transposed in
 * registers, since decoding rows and then packing them wrote and read
 * every weight twice more: INT4, INT3, INT2 and ternary from their rows,
 * the others through a stage of 64 k of bytes (rows past cols stay 0). */
static void qb_lowbit_dequantize_panel_avx2(const qb_lowbit_weights *w, int n0, int cols, int nr, float *panel) {
    if (nr != 16) {
        qb_lowbit_dequantize_panel(qb_lowbit_dequantize_avx2, w, n0, cols, nr, 0, w->K, panel);
        return;
    }
    bool book = w->codebook != NULL;
    qb_lb_source from = qb_lb_panel_source(w);
    qb_lb_prefetch_rows(w, n0, cols);
    _Alignas(32) uint8_t stage[16][64 + 16];
    if (from == QB_LB_FROM_BYTES) memset(stage, 0, sizeof stage);
    qb_lb_panel_span p;
    p.high = qb_code_row_bytes(QB_CODE_U2, w->K);
    for (int j = 0; j < 16; j++) {
        int n = n0 + (j < cols ? j : 0);
        p.row[j] = from == QB_LB_FROM_BYTES ? stage[j] : w->rows + (size_t)n * w->row_bytes;
        _Alignas(32) float entries[16] = {0};
        if (book && j < cols) qb_lb_row_book(w, n, entries);
        if (book) p.lo[j] = _mm256_load_ps(entries), p.hi[j] = _mm256_load_ps(entries + 8);
    }
    int span = book ? w->K : w->group, run = from == QB_LB_FROM_BYTES ? 64 : span;
    for (int k0 = 0; k0 < w->K; k0 += span) {
        int end = w->K - k0 < span ? w->K : k0 + span;
        if (!book) qb_lb_panel_group(w, n0, cols, k0 / span, &p);
        for (int kr = k0; kr < end; kr += run) {
            int stop = end - kr < run ? end : kr + run;
            if (from == QB_LB_FROM_BYTES)
                for (int j = 0; j < cols; j++)
                    qb_code_unpack_row(w->code, w->rows + (size_t)(n0 + j) * w->row_bytes, w->K, kr, stop - kr,
                                       stage[j]);
            p.k_base = kr;
            int k = qb_lb_panel_steps_of(&p, kr, stop, book, from, panel);
            if (k < stop) qb_lowbit_dequantize_panel(qb_lowbit_dequantize_avx2, w, n0, cols, nr, k, stop, panel);
        }
    }
}

void qb_kernels_lowbit_init_avx2(qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = QB_ISA_AVX2, .panel_codes = QB_LOWBIT_PANELS_ALL, .gemm_a8 = qb_lowbit_gemm_a8_avx2,
                             .dequantize = qb_lowbit_dequantize_avx2,
                             .dequantize_panel = qb_lowbit_dequantize_panel_avx2};
}
