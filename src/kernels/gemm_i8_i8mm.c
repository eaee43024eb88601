/* ARMv8.6 int8 matrix-multiply GEMM: usmmla multiplies a 2 x 8 block of
 * u8 rows by an 8 x 2 block of s8 columns into a 2 x 2 int32 block, 32
 * multiply-adds per instruction with no sign trick.  An 8-row x 8-column
 * tile keeps 16 accumulators (2 x 2 each), 4 row pairs and 4 column pairs
 * of 8 k in registers. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"

#define QB_I8_MM_MR 8
#define QB_I8_MM_NR 8

/* One step of 8 k: the row pairs av against 4 column pairs at w. */
static inline __attribute__((always_inline)) void qb_i8mm_step(int32x4_t acc[QB_I8_MM_MR / 2][QB_I8_MM_NR / 2],
                                                               const uint8x16_t av[QB_I8_MM_MR / 2], const int8_t *w) {
    int8x16_t wv[QB_I8_MM_NR / 2];
    for (int c = 0; c < QB_I8_MM_NR / 2; c++) wv[c] = vld1q_s8(w + 16 * c);
    for (int r = 0; r < QB_I8_MM_MR / 2; r++)
        for (int c = 0; c < QB_I8_MM_NR / 2; c++) acc[r][c] = vusmmlaq_s32(acc[r][c], av[r], wv[c]);
}

/* Rows a[0..7] against the 8 columns at w ([K/8][8][8], zero-padded); a
 * partial last 8 k is read from zero-padded copies. */
static void qb_i8_tile_i8mm(const uint8_t *const a[QB_I8_MM_MR], int K, const int8_t *w, int32_t *part) {
    int32x4_t acc[QB_I8_MM_MR / 2][QB_I8_MM_NR / 2];
    uint8x16_t av[QB_I8_MM_MR / 2];
    for (int r = 0; r < QB_I8_MM_MR / 2; r++)
        for (int c = 0; c < QB_I8_MM_NR / 2; c++) acc[r][c] = vdupq_n_s32(0);
    int k = 0;
    for (; k + 8 <= K; k += 8, w += 64) {
        for (int r = 0; r < QB_I8_MM_MR / 2; r++) av[r] = vcombine_u8(vld1_u8(a[2 * r] + k), vld1_u8(a[2 * r + 1] + k));
        qb_i8mm_step(acc, av, w);
    }
    if (k < K) {
        for (int r = 0; r < QB_I8_MM_MR / 2; r++) {
            uint8_t tail[16] = {0};
            memcpy(tail, a[2 * r] + k, (size_t)(K - k));
            memcpy(tail + 8, a[2 * r + 1] + k, (size_t)(K - k));
            av[r] = vld1q_u8(tail);
        }
        qb_i8mm_step(acc, av, w);
    }
    /* each block is (row 2r: cols 2c, 2c + 1; row 2r + 1: the same) */
    for (int r = 0; r < QB_I8_MM_MR / 2; r++)
        for (int c = 0; c < QB_I8_MM_NR / 2; c++) {
            vst1_s32(part + (2 * r) * QB_I8_MM_NR + 2 * c, vget_low_s32(acc[r][c]));
            vst1_s32(part + (2 * r + 1) * QB_I8_MM_NR + 2 * c, vget_high_s32(acc[r][c]));
        }
}

static void qb_gemm_i8_i8mm(const qb_gemm_i8_args *g, int n0, int n1) {
    int K8 = qb_i8_round_up(g->K, 8);
    int32_t part[QB_I8_MM_MR * QB_I8_MM_NR];
    for (int n = n0; n < n1; n += QB_I8_MM_NR) {
        const int8_t *w = (const int8_t *)g->W->packed + (size_t)(n / 8) * K8 * 8;
        int cols = n1 - n < QB_I8_MM_NR ? n1 - n : QB_I8_MM_NR;
        for (int m0 = 0; m0 < g->M; m0 += QB_I8_MM_MR) {
            int rows = g->M - m0 < QB_I8_MM_MR ? g->M - m0 : QB_I8_MM_MR;
            const uint8_t *a[QB_I8_MM_MR];
            for (int i = 0; i < QB_I8_MM_MR; i++) a[i] = g->A + (size_t)(m0 + (i < rows ? i : 0)) * g->lda;
            qb_i8_tile_i8mm(a, g->K, w, part);
            qb_i8_epilogue_neon(g, part, QB_I8_MM_NR, m0, rows, n, cols, 0);
        }
    }
}

void qb_kernels_i8_init_i8mm(qb_kernels_i8 *k) {
    k->isa = QB_ISA_I8MM;
    k->name = "i8mm";
    k->amx = false;
    k->gemm = qb_gemm_i8_i8mm;
    k->quantize_rows = qb_quantize_rows_neon;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_neon;
}
