/* The W.A8 low-bit GEMM on AArch64, and the run driver every level shares.
 * For a stripe of 16 columns, a run of one group's codes is decoded once to
 * s8 (code - zero) in the int8 dotprod kernel's layout, [step][16 columns]
 * [4 k], and up to QB_LOWBIT_MC rows of A run against it four at a time
 * through the level's tile (qb_lowbit_run_tile: smlal here, sdot in
 * lowbit_dotprod.c).  Groups fold in float in the order kernels_lowbit.h
 * defines, so results equal the scalar kernel's bit for bit. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels_impl.h"
#include "kernels/kernels_lowbit.h"

#define QB_LB_RUN 256 /* k decoded at a time, a multiple of 16 */
#define QB_LB_NR QB_LOWBIT_RUN_NR

typedef struct {
    int8_t stage[QB_LB_NR][QB_LB_RUN]; /* the run's columns, k in order */
    int8_t w[QB_LB_RUN / 4][QB_LB_NR * 4];
    int32_t wsum[QB_LB_NR];               /* the group's decoded sums so far */
    int32_t isum[QB_LOWBIT_MC][QB_LB_NR]; /* the group's int32 sums */
    float fsum[QB_LOWBIT_MC][QB_LB_NR];   /* the float sums over groups */
} qb_lb_run_work;
/* gemm_a8's scratch holds at least the plan's ipart and fpart, [MC][64] each */
_Static_assert(sizeof(qb_lb_run_work) <= (size_t)QB_LOWBIT_MC * 64 * 8, "qb_lb_run_work outgrows the scratch");

/* 16 U4 codes at k (even) of a row, less z. */
static int8x16_t qb_lb_u4(const uint8_t *row, size_t row_bytes, int k, int z) {
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
static int32_t qb_lb_column(const qb_lowbit_weights *W, int n, int k0, int len, int pad, int8_t *out) {
    if (W->code == QB_CODE_U4 && k0 % 2 == 0) {
        const uint8_t *row = W->rows + (size_t)n * W->row_bytes;
        int z = qb_lowbit_zero_point(W, n, k0 / W->group);
        for (int k = 0; k < len; k += 16) vst1q_s8(out + k, qb_lb_u4(row, W->row_bytes, k0 + k, z));
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
static void qb_lb_decode(const qb_lowbit_weights *W, int n, int cols, int k0, int len, qb_lb_run_work *x) {
    int pad = (len + 15) / 16 * 16;
    for (int c = 0; c < QB_LB_NR; c++) {
        if (c < cols) x->wsum[c] += qb_lb_column(W, n + c, k0, len, pad, x->stage[c]);
        else memset(x->stage[c], 0, (size_t)pad);
    }
    for (int c = 0; c < QB_LB_NR; c += 4)
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

/* The group's sums of rows [0, rows), plus a_shift times the group's
 * decoded sums (what a tile's shift of A took), into the float sums:
 * fmaf(scale, (float)sum, acc) per column. */
static void qb_lb_fold(const qb_lowbit_weights *W, int n, int g, int rows, int a_shift, qb_lb_run_work *x) {
    float scale[QB_LB_NR] = {0};
    int32_t back[QB_LB_NR];
    for (int c = 0; c < QB_LB_NR; c++) {
        if (n + c < W->N) scale[c] = W->scale[(size_t)(n + c) * W->G + g];
        back[c] = a_shift * x->wsum[c];
    }
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < 4; v++) {
            int32x4_t sum = vaddq_s32(vld1q_s32(x->isum[i] + 4 * v), vld1q_s32(back + 4 * v));
            float32x4_t acc = vld1q_f32(x->fsum[i] + 4 * v);
            vst1q_f32(x->fsum[i] + 4 * v, vfmaq_f32(acc, vld1q_f32(scale + 4 * v), vcvtq_f32_s32(sum)));
        }
}

/* Rows [m0, m0 + rows) (rows <= QB_LOWBIT_MC) x columns [n, n + cols). */
static void qb_lb_stripe(const qb_lowbit_a8_args *g, int m0, int rows, int n, int cols, qb_lowbit_run_tile tile,
                         int a_shift, qb_lb_run_work *x) {
    const qb_lowbit_weights *W = g->W;
    memset(x->fsum, 0, sizeof(float) * QB_LB_NR * (size_t)rows);
    for (int gi = 0; gi < W->G; gi++) {
        int k1 = (gi + 1) * W->group < W->K ? (gi + 1) * W->group : W->K;
        memset(x->wsum, 0, sizeof x->wsum);
        for (int k = gi * W->group; k < k1; k += QB_LB_RUN) {
            int len = k1 - k < QB_LB_RUN ? k1 - k : QB_LB_RUN;
            qb_lb_decode(W, n, cols, k, len, x);
            for (int i = 0; i < rows; i += QB_LOWBIT_RUN_MR) {
                const uint8_t *a[QB_LOWBIT_RUN_MR];
                for (int j = 0; j < QB_LOWBIT_RUN_MR; j++)
                    a[j] = g->A + (size_t)(m0 + (i + j < rows ? i + j : i)) * g->lda + k;
                tile(a, len, x->w[0], k == gi * W->group, x->isum[i]);
            }
        }
        qb_lb_fold(W, n, gi, rows, a_shift, x);
    }
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) qb_lowbit_store_ref(g, m0 + i, n + c, x->fsum[i][c]);
}

void qb_lowbit_gemm_a8_runs(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch, qb_lowbit_run_tile tile,
                            int a_shift) {
    for (int m0 = 0; m0 < g->M; m0 += QB_LOWBIT_MC) {
        int rows = g->M - m0 < QB_LOWBIT_MC ? g->M - m0 : QB_LOWBIT_MC;
        for (int n = n0; n < n1; n += QB_LB_NR)
            qb_lb_stripe(g, m0, rows, n, n1 - n < QB_LB_NR ? n1 - n : QB_LB_NR, tile, a_shift, scratch);
    }
}

/* Two rows x 8 columns (half of each step's 64 bytes at w) over steps:
 * each product goes into the lane of its k mod 4, u8 and s8 both widened
 * to int16 (smlal has no 8-bit form), and a column's 4 lanes are added at
 * the end. */
static void qb_lb_smlal_2x8(const uint8_t *a0, const uint8_t *a1, int steps, const int8_t *w, bool first,
                            int32_t *isum0, int32_t *isum1) {
    int32x4_t acc[2][8];
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 8; c++) acc[i][c] = vdupq_n_s32(0);
    for (int s = 0; s < steps; s++, w += QB_LB_NR * 4) {
        int16x8_t wv[4];
        for (int v = 0; v < 2; v++) {
            int8x16_t b = vld1q_s8(w + 16 * v);
            wv[2 * v] = vmovl_s8(vget_low_s8(b));
            wv[2 * v + 1] = vmovl_high_s8(b);
        }
        uint32_t b0, b1;
        memcpy(&b0, a0 + 4 * s, 4);
        memcpy(&b1, a1 + 4 * s, 4);
        /* a row's 4 bytes twice, as int16: both halves of a weight vector meet them */
        int16x8_t av[2] = {vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(b0)))),
                           vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(b1))))};
        for (int i = 0; i < 2; i++)
            for (int v = 0; v < 4; v++) {
                acc[i][2 * v] = vmlal_s16(acc[i][2 * v], vget_low_s16(wv[v]), vget_low_s16(av[i]));
                acc[i][2 * v + 1] = vmlal_high_s16(acc[i][2 * v + 1], wv[v], av[i]);
            }
    }
    int32_t *out[2] = {isum0, isum1};
    for (int i = 0; i < 2; i++)
        for (int q = 0; q < 8; q += 4) {
            int32x4_t sums = vpaddq_s32(vpaddq_s32(acc[i][q], acc[i][q + 1]), vpaddq_s32(acc[i][q + 2], acc[i][q + 3]));
            vst1q_s32(out[i] + q, first ? sums : vaddq_s32(sums, vld1q_s32(out[i] + q)));
        }
}

/* The ARMv8.0 tile: four 2 x 8 quarters.  A's bytes past len are read from
 * a copy padded with zeros (the weights there are zero too). */
static void qb_lb_tile_smlal(const uint8_t *const a[QB_LOWBIT_RUN_MR], int len, const int8_t *w, bool first,
                             int32_t *isum) {
    int steps = (len + 3) / 4;
    uint8_t tail[QB_LOWBIT_RUN_MR][QB_LB_RUN];
    const uint8_t *rows[QB_LOWBIT_RUN_MR];
    for (int i = 0; i < QB_LOWBIT_RUN_MR; i++) {
        rows[i] = a[i];
        if (len % 4) {
            memset(tail[i], 0, (size_t)steps * 4);
            rows[i] = memcpy(tail[i], a[i], (size_t)len);
        }
    }
    for (int i = 0; i < QB_LOWBIT_RUN_MR; i += 2)
        for (int h = 0; h < 2; h++)
            qb_lb_smlal_2x8(rows[i], rows[i + 1], steps, w + 32 * h, first, isum + i * QB_LB_NR + 8 * h,
                            isum + (i + 1) * QB_LB_NR + 8 * h);
}

static void qb_lowbit_gemm_a8_neon(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lowbit_gemm_a8_runs(g, n0, n1, scratch, qb_lb_tile_smlal, 0);
}

void qb_kernels_lowbit_init_neon(qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = QB_ISA_NEON, .gemm_a8 = qb_lowbit_gemm_a8_neon, .dequantize = qb_lowbit_dequantize};
}
