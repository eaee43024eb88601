/* ARMv8.2 dot-product integer GEMM: sdot adds four s8 x s8 products into
 * each int32 lane.  sdot wants both sides signed and A is u8, so each A
 * byte is lowered by 128 (a sign-bit flip) and the epilogue adds 128 *
 * colsum back, exactly.  A 4-row x 16-column tile keeps 16 accumulators,
 * 4 rows of 16 k and one 4-k group of 16 columns (4 vectors) in registers;
 * the weights use the AVX-512 layout, whose 16 columns x 4 k are 64
 * contiguous bytes. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"

#define QB_I8_DOT_MR 4
#define QB_I8_DOT_NR 16

#define QB_I8_DOT_GROUP(gi)                                                        \
    do {                                                                           \
        const int8_t *wp = w + (size_t)(k / 4 + gi) * stride;                      \
        int8x16_t w0 = vld1q_s8(wp), w1 = vld1q_s8(wp + 16), w2 = vld1q_s8(wp + 32), w3 = vld1q_s8(wp + 48); \
        for (int i = 0; i < QB_I8_DOT_MR; i++) {                                   \
            acc[i][0] = vdotq_laneq_s32(acc[i][0], w0, av[i], gi);                 \
            acc[i][1] = vdotq_laneq_s32(acc[i][1], w1, av[i], gi);                 \
            acc[i][2] = vdotq_laneq_s32(acc[i][2], w2, av[i], gi);                 \
            acc[i][3] = vdotq_laneq_s32(acc[i][3], w3, av[i], gi);                 \
        }                                                                          \
    } while (0)

/* Rows a[0..3] against the 16 columns at w (4-k groups stride bytes apart,
 * K4 of them, zero-padded); a partial last 16 k is read from a copy padded
 * with 128, which the flip turns into 0. */
static void qb_i8_tile_dotprod(const uint8_t *const a[QB_I8_DOT_MR], int K, const int8_t *w, size_t stride,
                               int32_t *part) {
    int32x4_t acc[QB_I8_DOT_MR][4];
    for (int i = 0; i < QB_I8_DOT_MR; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = vdupq_n_s32(0);
    uint8x16_t flip = vdupq_n_u8(0x80);
    int K4 = (K + 3) / 4;
    for (int k = 0; k < K; k += 16) {
        int8x16_t av[QB_I8_DOT_MR];
        for (int i = 0; i < QB_I8_DOT_MR; i++) {
            uint8_t tail[16];
            const uint8_t *src = a[i] + k;
            if (K - k < 16) {
                memset(tail, 0x80, sizeof tail);
                src = memcpy(tail, a[i] + k, (size_t)(K - k));
            }
            av[i] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
        }
        int groups = K4 - k / 4; /* the layout holds K4 groups: stop there */
        QB_I8_DOT_GROUP(0);
        if (groups > 1) QB_I8_DOT_GROUP(1);
        if (groups > 2) QB_I8_DOT_GROUP(2);
        if (groups > 3) QB_I8_DOT_GROUP(3);
    }
    for (int i = 0; i < QB_I8_DOT_MR; i++)
        for (int v = 0; v < 4; v++) vst1q_s32(part + i * QB_I8_DOT_NR + 4 * v, acc[i][v]);
}

static void qb_gemm_i8_dotprod(const qb_gemm_i8_args *g, int n0, int n1) {
    int K4 = qb_i8_round_up(g->K, 4) / 4, Npad = qb_i8_round_up(g->N, 16);
    int32_t part[QB_I8_DOT_MR * QB_I8_DOT_NR];
    for (int n = n0; n < n1; n += QB_I8_DOT_NR) {
        int first = n / QB_I8_N_BLOCK * QB_I8_N_BLOCK;
        int width = Npad - first < QB_I8_N_BLOCK ? Npad - first : QB_I8_N_BLOCK;
        const int8_t *w = (const int8_t *)g->W->packed + (size_t)first * K4 * 4 + (size_t)(n - first) * 4;
        int cols = n1 - n < QB_I8_DOT_NR ? n1 - n : QB_I8_DOT_NR;
        for (int m0 = 0; m0 < g->M; m0 += QB_I8_DOT_MR) {
            int rows = g->M - m0 < QB_I8_DOT_MR ? g->M - m0 : QB_I8_DOT_MR;
            const uint8_t *a[QB_I8_DOT_MR];
            for (int i = 0; i < QB_I8_DOT_MR; i++) a[i] = g->A + (size_t)(m0 + (i < rows ? i : 0)) * g->lda;
            qb_i8_tile_dotprod(a, g->K, w, (size_t)width * 4, part);
            qb_i8_epilogue_neon(g, part, QB_I8_DOT_NR, m0, rows, n, cols, 128);
        }
    }
}

void qb_kernels_i8_init_dotprod(qb_kernels_i8 *k) {
    k->isa = QB_ISA_DOTPROD;
    k->name = "dotprod";
    k->amx = false;
    k->gemm = qb_gemm_i8_dotprod;
    k->quantize_rows = qb_quantize_rows_neon;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_neon;
}
