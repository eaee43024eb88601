/* The W.A8 low-bit GEMM with ARMv8.2 dot products (the dotprod and i8mm
 * levels): lowbit_neon.c's runs, multiplied by a 4-row x 16-column sdot
 * tile with 16 accumulators, as the int8 dotprod kernel does.  sdot wants
 * both sides signed: A is flipped to a - 128, and the fold adds 128 times
 * each column's decoded sum back, exactly. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/kernels_lowbit.h"

#define QB_LB_DOT_STEP(gi)                                                                 \
    do {                                                                                   \
        const int8_t *wp = w + (size_t)(k / 4 + gi) * QB_LOWBIT_RUN_NR * 4;                \
        int8x16_t w0 = vld1q_s8(wp), w1 = vld1q_s8(wp + 16), w2 = vld1q_s8(wp + 32), w3 = vld1q_s8(wp + 48); \
        for (int i = 0; i < QB_LOWBIT_RUN_MR; i++) {                                       \
            acc[i][0] = vdotq_laneq_s32(acc[i][0], w0, av[i], gi);                         \
            acc[i][1] = vdotq_laneq_s32(acc[i][1], w1, av[i], gi);                         \
            acc[i][2] = vdotq_laneq_s32(acc[i][2], w2, av[i], gi);                         \
            acc[i][3] = vdotq_laneq_s32(acc[i][3], w3, av[i], gi);                         \
        }                                                                                  \
    } while (0)

/* Four rows' next 16 bytes of A at k, flipped to s8. */
#define QB_LB_DOT_LOAD(src_of)                                                        \
    for (int i = 0; i < QB_LOWBIT_RUN_MR; i++) av[i] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src_of), flip));

/* Whole 16-k blocks first, then the last one apart from a copy padded with
 * 128 (which the flip turns into 0), so that the sums stay in registers. */
static void qb_lb_tile_sdot(const uint8_t *const a[QB_LOWBIT_RUN_MR], int len, const int8_t *w, bool first,
                            int32_t *isum) {
    int32x4_t acc[QB_LOWBIT_RUN_MR][4];
    for (int i = 0; i < QB_LOWBIT_RUN_MR; i++)
        for (int v = 0; v < 4; v++)
            acc[i][v] = first ? vdupq_n_s32(0) : vld1q_s32(isum + i * QB_LOWBIT_RUN_NR + 4 * v);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int8x16_t av[QB_LOWBIT_RUN_MR];
    int k = 0;
    for (; k + 16 <= len; k += 16) {
        QB_LB_DOT_LOAD(a[i] + k)
        QB_LB_DOT_STEP(0);
        QB_LB_DOT_STEP(1);
        QB_LB_DOT_STEP(2);
        QB_LB_DOT_STEP(3);
    }
    if (k < len) {
        uint8_t tail[QB_LOWBIT_RUN_MR][16];
        memset(tail, 0x80, sizeof tail);
        for (int i = 0; i < QB_LOWBIT_RUN_MR; i++)
            for (int j = 0; j < len - k; j++) tail[i][j] = a[i][k + j];
        QB_LB_DOT_LOAD(tail[i])
        int left = (len - k + 3) / 4;
        QB_LB_DOT_STEP(0);
        if (left > 1) QB_LB_DOT_STEP(1);
        if (left > 2) QB_LB_DOT_STEP(2);
        if (left > 3) QB_LB_DOT_STEP(3);
    }
    for (int i = 0; i < QB_LOWBIT_RUN_MR; i++)
        for (int v = 0; v < 4; v++) vst1q_s32(isum + i * QB_LOWBIT_RUN_NR + 4 * v, acc[i][v]);
}

static void qb_lowbit_gemm_a8_dotprod(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lowbit_gemm_a8_runs(g, n0, n1, scratch, qb_lb_tile_sdot, 128);
}

void qb_kernels_lowbit_init_dotprod(qb_isa isa, qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = isa, .gemm_a8 = qb_lowbit_gemm_a8_dotprod, .dequantize = qb_lowbit_dequantize};
}
