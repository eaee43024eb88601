/* The ARMv8.2 sdot register tile that the int8 and the low-bit dotprod
 * kernels share: 4 rows x 16 columns of int32 sums in 16 accumulators,
 * grown from 16 bytes of each row and, per 4-k step, 64 bytes of weights
 * (16 columns x 4 k).  sdot wants both sides signed and A is u8, so A is
 * flipped to a - 128; the caller adds 128 times each column's weight sum
 * back, exactly.  Only for files compiled with +dotprod. */
#ifndef QB_KERNELS_SDOT_TILE_DOTPROD_H
#define QB_KERNELS_SDOT_TILE_DOTPROD_H

#include <arm_neon.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QB_SDOT_MR 4
#define QB_SDOT_NR 16

#define QB_SDOT_STEP(gi)                                                                                               \
    do {                                                                                                               \
        const int8_t *wp = w + (size_t)(k / 4 + gi) * stride;                                                          \
        int8x16_t w0 = vld1q_s8(wp), w1 = vld1q_s8(wp + 16), w2 = vld1q_s8(wp + 32), w3 = vld1q_s8(wp + 48);           \
        for (int i = 0; i < QB_SDOT_MR; i++) {                                                                         \
            acc[i][0] = vdotq_laneq_s32(acc[i][0], w0, av[i], gi);                                                     \
            acc[i][1] = vdotq_laneq_s32(acc[i][1], w1, av[i], gi);                                                     \
            acc[i][2] = vdotq_laneq_s32(acc[i][2], w2, av[i], gi);                                                     \
            acc[i][3] = vdotq_laneq_s32(acc[i][3], w3, av[i], gi);                                                     \
        }                                                                                                              \
    } while (0)

#define QB_SDOT_LOAD(src_of)                                                                                           \
    for (int i = 0; i < QB_SDOT_MR; i++) av[i] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src_of), flip));

/* Rows a[0..3] over K against the weights at w, whose 4-k steps lie stride
 * bytes apart (ceil(K / 4) of them), into sums ([4][16]), added to them
 * where accumulate.  Whole 16-k blocks first, then the last one apart from
 * a copy padded with 128 (which the flip turns into 0), so that the sums
 * stay in registers. */
static inline void qb_sdot_tile(const uint8_t *const a[QB_SDOT_MR], int K, const int8_t *w, size_t stride,
                                bool accumulate, int32_t *sums) {
    int32x4_t acc[QB_SDOT_MR][4];
    for (int i = 0; i < QB_SDOT_MR; i++)
        for (int v = 0; v < 4; v++) acc[i][v] = accumulate ? vld1q_s32(sums + i * QB_SDOT_NR + 4 * v) : vdupq_n_s32(0);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int8x16_t av[QB_SDOT_MR];
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        QB_SDOT_LOAD(a[i] + k)
        QB_SDOT_STEP(0);
        QB_SDOT_STEP(1);
        QB_SDOT_STEP(2);
        QB_SDOT_STEP(3);
    }
    if (k < K) {
        uint8_t tail[QB_SDOT_MR][16];
        memset(tail, 0x80, sizeof tail);
        for (int i = 0; i < QB_SDOT_MR; i++) memcpy(tail[i], a[i] + k, (size_t)(K - k));
        QB_SDOT_LOAD(tail[i])
        int steps = (K - k + 3) / 4;
        QB_SDOT_STEP(0);
        if (steps > 1) QB_SDOT_STEP(1);
        if (steps > 2) QB_SDOT_STEP(2);
        if (steps > 3) QB_SDOT_STEP(3);
    }
    for (int i = 0; i < QB_SDOT_MR; i++)
        for (int v = 0; v < 4; v++) vst1q_s32(sums + i * QB_SDOT_NR + 4 * v, acc[i][v]);
}

#undef QB_SDOT_STEP
#undef QB_SDOT_LOAD

#endif
