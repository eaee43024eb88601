/* The W.A8 low-bit GEMM with ARMv8.2 dot products (the dotprod and i8mm
 * levels).  For a stripe of 16 columns, a run of one group's codes is
 * decoded once to s8 (code - zero) in the int8 dotprod kernel's layout,
 * [step][16 columns][4 k], and up to QB_LOWBIT_MC rows of A run against it
 * four at a time with sdot, 16 accumulators as in that kernel.  sdot wants
 * both sides signed: A is flipped to a - 128, and 128 times each column's
 * sum of its decoded run puts back what the flip took, exactly.  Groups
 * fold in float in the order of kernels_lowbit.h, so results equal the
 * scalar kernel's bit for bit. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/kernels_lowbit.h"

#define QB_LB_DOT_MR 4
#define QB_LB_DOT_NR 16
#define QB_LB_DOT_RUN 256 /* k decoded at a time, a multiple of 16 */

typedef struct {
    int8_t stage[QB_LB_DOT_NR][QB_LB_DOT_RUN]; /* the run's columns, k in order */
    int8_t w[QB_LB_DOT_RUN / 4][QB_LB_DOT_NR * 4];
    int32_t wsum[QB_LB_DOT_NR];                 /* the group's decoded sums so far */
    int32_t isum[QB_LOWBIT_MC][QB_LB_DOT_NR];   /* the group's sums of (a - 128) w */
    float fsum[QB_LOWBIT_MC][QB_LB_DOT_NR];     /* the float sums over groups */
} qb_lb_dot_work;
/* gemm_a8's scratch holds at least the plan's ipart and fpart, [MC][64] each */
_Static_assert(sizeof(qb_lb_dot_work) <= (size_t)QB_LOWBIT_MC * 64 * 8, "qb_lb_dot_work outgrows the scratch");

/* 16 U4 codes at k (even) of a row, less z. */
static int8x16_t qb_lb_dot_u4(const uint8_t *row, size_t row_bytes, int k, int z) {
    size_t at = (size_t)k / 2;
    uint8_t tmp[8] = {0};
    const uint8_t *src = row + at;
    if (row_bytes - at < 8) src = memcpy(tmp, src, row_bytes - at);
    uint8x8_t b = vld1_u8(src), lo = vand_u8(b, vdup_n_u8(15)), hi = vshr_n_u8(b, 4);
    uint8x16_t codes = vcombine_u8(vzip1_u8(lo, hi), vzip2_u8(lo, hi));
    return vsubq_s8(vreinterpretq_s8_u8(codes), vdupq_n_s8((int8_t)z));
}

/* Column n's codes [k0, k0 + len) (in one group) less the zero point into
 * out, zero up to pad (a multiple of 16); returns their sum. */
static int32_t qb_lb_dot_column(const qb_lowbit_weights *W, int n, int k0, int len, int pad, int8_t *out) {
    if (W->code == QB_CODE_U4 && k0 % 2 == 0) {
        const uint8_t *row = W->rows + (size_t)n * W->row_bytes;
        int z = qb_lowbit_zero_point(W, n, k0 / W->group);
        for (int k = 0; k < len; k += 16) vst1q_s8(out + k, qb_lb_dot_u4(row, W->row_bytes, k0 + k, z));
        memset(out + len, 0, (size_t)(pad - len));
    } else {
        qb_lowbit_decode_s8(W, n, k0, len, pad, out);
    }
    int16x8_t sum = vdupq_n_s16(0); /* |w| <= 15: a run's sum fits int16 */
    for (int k = 0; k < pad; k += 16) sum = vpadalq_s8(sum, vld1q_s8(out + k));
    return vaddlvq_s16(sum);
}

/* Columns [n, n + cols) of the run [k0, k0 + len) into x->w (zero past cols
 * and len), their sums added to x->wsum: 4 x 4 word transposes of the stage. */
static void qb_lb_dot_decode(const qb_lowbit_weights *W, int n, int cols, int k0, int len, qb_lb_dot_work *x) {
    int pad = (len + 15) / 16 * 16;
    for (int c = 0; c < QB_LB_DOT_NR; c++) {
        if (c < cols) x->wsum[c] += qb_lb_dot_column(W, n + c, k0, len, pad, x->stage[c]);
        else memset(x->stage[c], 0, (size_t)pad);
    }
    for (int c = 0; c < QB_LB_DOT_NR; c += 4)
        for (int s = 0; s < pad / 4; s += 4) {
            uint32x4_t r[4];
            for (int j = 0; j < 4; j++) r[j] = vreinterpretq_u32_s8(vld1q_s8(x->stage[c + j] + 4 * s));
            uint64x2_t t0 = vreinterpretq_u64_u32(vtrn1q_u32(r[0], r[1]));
            uint64x2_t t1 = vreinterpretq_u64_u32(vtrn2q_u32(r[0], r[1]));
            uint64x2_t t2 = vreinterpretq_u64_u32(vtrn1q_u32(r[2], r[3]));
            uint64x2_t t3 = vreinterpretq_u64_u32(vtrn2q_u32(r[2], r[3]));
            vst1q_u64((uint64_t *)(x->w[s] + 4 * c), vtrn1q_u64(t0, t2));
            vst1q_u64((uint64_t *)(x->w[s + 1] + 4 * c), vtrn1q_u64(t1, t3));
            vst1q_u64((uint64_t *)(x->w[s + 2] + 4 * c), vtrn2q_u64(t0, t2));
            vst1q_u64((uint64_t *)(x->w[s + 3] + 4 * c), vtrn2q_u64(t1, t3));
        }
}

#define QB_LB_DOT_STEP(gi)                                                                 \
    do {                                                                                   \
        const int8_t *wp = w[k / 4 + gi];                                                  \
        int8x16_t w0 = vld1q_s8(wp), w1 = vld1q_s8(wp + 16), w2 = vld1q_s8(wp + 32), w3 = vld1q_s8(wp + 48); \
        for (int i = 0; i < QB_LB_DOT_MR; i++) {                                           \
            acc[i][0] = vdotq_laneq_s32(acc[i][0], w0, av[i], gi);                         \
            acc[i][1] = vdotq_laneq_s32(acc[i][1], w1, av[i], gi);                         \
            acc[i][2] = vdotq_laneq_s32(acc[i][2], w2, av[i], gi);                         \
            acc[i][3] = vdotq_laneq_s32(acc[i][3], w3, av[i], gi);                         \
        }                                                                                  \
    } while (0)

/* Rows a[0..3] (each at the run's first k) against the decoded run into
 * isum[0..3], from zero where first.  A's bytes past len come from a copy
 * padded with 128, which the flip turns into 0. */
static void qb_lb_dot_tile(const uint8_t *const a[QB_LB_DOT_MR], int len, const int8_t (*w)[QB_LB_DOT_NR * 4],
                           bool first, int32_t (*isum)[QB_LB_DOT_NR]) {
    int32x4_t acc[QB_LB_DOT_MR][4];
    for (int i = 0; i < QB_LB_DOT_MR; i++)
        for (int v = 0; v < 4; v++) acc[i][v] = first ? vdupq_n_s32(0) : vld1q_s32(isum[i] + 4 * v);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    int steps = (len + 3) / 4;
    for (int k = 0; k < len; k += 16) {
        int8x16_t av[QB_LB_DOT_MR];
        for (int i = 0; i < QB_LB_DOT_MR; i++) {
            uint8_t tail[16];
            const uint8_t *src = a[i] + k;
            if (len - k < 16) {
                memset(tail, 0x80, sizeof tail);
                src = memcpy(tail, src, (size_t)(len - k));
            }
            av[i] = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(src), flip));
        }
        int left = steps - k / 4;
        QB_LB_DOT_STEP(0);
        if (left > 1) QB_LB_DOT_STEP(1);
        if (left > 2) QB_LB_DOT_STEP(2);
        if (left > 3) QB_LB_DOT_STEP(3);
    }
    for (int i = 0; i < QB_LB_DOT_MR; i++)
        for (int v = 0; v < 4; v++) vst1q_s32(isum[i] + 4 * v, acc[i][v]);
}

/* The group's sums of rows [0, rows), with the flip's share put back,
 * into the float sums: fmaf(scale, (float)sum, acc) per column. */
static void qb_lb_dot_fold(const qb_lowbit_weights *W, int n, int g, int rows, qb_lb_dot_work *x) {
    float scale[QB_LB_DOT_NR] = {0};
    int32_t back[QB_LB_DOT_NR];
    for (int c = 0; c < QB_LB_DOT_NR; c++) {
        if (n + c < W->N) scale[c] = W->scale[(size_t)(n + c) * W->G + g];
        back[c] = 128 * x->wsum[c];
    }
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < 4; v++) {
            int32x4_t sum = vaddq_s32(vld1q_s32(x->isum[i] + 4 * v), vld1q_s32(back + 4 * v));
            float32x4_t acc = vld1q_f32(x->fsum[i] + 4 * v);
            vst1q_f32(x->fsum[i] + 4 * v, vfmaq_f32(acc, vld1q_f32(scale + 4 * v), vcvtq_f32_s32(sum)));
        }
}

/* Rows [m0, m0 + rows) (rows <= QB_LOWBIT_MC) x columns [n, n + cols). */
static void qb_lb_dot_stripe(const qb_lowbit_a8_args *g, int m0, int rows, int n, int cols, qb_lb_dot_work *x) {
    const qb_lowbit_weights *W = g->W;
    memset(x->fsum, 0, sizeof(float) * QB_LB_DOT_NR * (size_t)rows);
    for (int gi = 0; gi < W->G; gi++) {
        int k1 = (gi + 1) * W->group < W->K ? (gi + 1) * W->group : W->K;
        memset(x->wsum, 0, sizeof x->wsum);
        for (int k = gi * W->group; k < k1; k += QB_LB_DOT_RUN) {
            int len = k1 - k < QB_LB_DOT_RUN ? k1 - k : QB_LB_DOT_RUN;
            qb_lb_dot_decode(W, n, cols, k, len, x);
            for (int i = 0; i < rows; i += QB_LB_DOT_MR) {
                const uint8_t *a[QB_LB_DOT_MR];
                for (int j = 0; j < QB_LB_DOT_MR; j++)
                    a[j] = g->A + (size_t)(m0 + (i + j < rows ? i + j : i)) * g->lda + k;
                qb_lb_dot_tile(a, len, (const int8_t(*)[QB_LB_DOT_NR * 4])x->w, k == gi * W->group, x->isum + i);
            }
        }
        qb_lb_dot_fold(W, n, gi, rows, x);
    }
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            int m = m0 + i;
            float v = fmaf(-(float)g->a_zero[m], W->zsum[n + c], x->fsum[i][c]);
            v = qb_act_ref(g->act, fmaf(v, g->a_scale[m], g->bias ? g->bias[n + c] : 0.0f));
            if (g->residual) v += g->residual[(size_t)m * g->ldr + n + c];
            g->C[(size_t)m * g->ldc + n + c] = v;
        }
}

static void qb_lowbit_gemm_a8_dotprod(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lb_dot_work *x = scratch;
    for (int m0 = 0; m0 < g->M; m0 += QB_LOWBIT_MC) {
        int rows = g->M - m0 < QB_LOWBIT_MC ? g->M - m0 : QB_LOWBIT_MC;
        for (int n = n0; n < n1; n += QB_LB_DOT_NR)
            qb_lb_dot_stripe(g, m0, rows, n, n1 - n < QB_LB_DOT_NR ? n1 - n : QB_LB_DOT_NR, x);
    }
}

void qb_kernels_lowbit_init_dotprod(qb_isa isa, qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = isa, .gemm_a8 = qb_lowbit_gemm_a8_dotprod, .dequantize = qb_lowbit_dequantize};
}
