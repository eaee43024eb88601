/* ARMv8.0 NEON integer kernels, and the epilogue and quantizers every
 * AArch64 level shares.  Without an 8-bit dot product both sides are
 * widened to int16 and smlal adds each product into int32 lanes exactly.
 * Weights stay one byte in memory and are widened as they are loaded (two
 * sxtl per k for 20 smlal): int16 copies would double an INT8 model's
 * resident size on the small boards this level serves, and the bytes
 * that short inputs must read.  A 5-row x 16-column tile keeps 20
 * accumulators, 5 rows of 8 k, a k's 16 weight bytes and their 2 widened
 * vectors in registers (28 of the 32): the shape that loads the fewest
 * bytes per product. */
#include <arm_neon.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/vec_neon.h"

#define QB_I8_NEON_MR 5
#define QB_I8_NEON_NR 16

void qb_i8_epilogue_neon(const qb_gemm_i8_args *g, const int32_t *part, int ld, int m0, int rows, int n, int cols,
                         int32_t shift) {
    const qb_i8_weights *W = g->W;
    for (int i = 0; i < rows; i++) {
        int m = m0 + i;
        int32x4_t corr = vdupq_n_s32(shift - g->a_zero[m]);
        float32x4_t a_scale = vdupq_n_f32(g->a_scale[m]);
        float *c = g->C + (size_t)m * g->ldc + n;
        const float *res = g->residual ? g->residual + (size_t)m * g->ldr + n : NULL;
        for (int j = 0; j < cols; j += 4) {
            int count = cols - j < 4 ? cols - j : 4;
            int32_t cs[4] = {0}, acc[4] = {0};
            memcpy(cs, W->colsum + n + j, sizeof(int32_t) * (size_t)count);
            memcpy(acc, part + (size_t)i * ld + j, sizeof(int32_t) * (size_t)count);
            /* (A - shift).W + (shift - zero) colsum = A.W - zero colsum, in
             * wrapping lanes: the exact result fits int32 */
            int32x4_t x = vmlaq_s32(vld1q_s32(acc), corr, vld1q_s32(cs));
            float32x4_t scale = vmulq_f32(a_scale, qb_v4_load_part(W->scale + n + j, count));
            float32x4_t bias = g->bias ? qb_v4_load_part(g->bias + n + j, count) : vdupq_n_f32(0.0f);
            float32x4_t v = qb_v4_act(g->act, vfmaq_f32(bias, vcvtq_f32_s32(x), scale));
            if (res) v = vaddq_f32(v, qb_v4_load_part(res + j, count));
            qb_v4_store_part(c + j, count, v);
        }
    }
}

/* Row i's sums are c<i>0..c<i>3 (16 columns), named variables rather than
 * an array: GCC 12 rotates an array of them through extra moves. */
#define QB_I8_NEON_ROWS(X, kk) X(0, kk) X(1, kk) X(2, kk) X(3, kk) X(4, kk)
#define QB_I8_NEON_ZERO(i, kk) int32x4_t c##i##0 = vdupq_n_s32(0), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;
#define QB_I8_NEON_LOAD_A(i, kk) int16x8_t a##i = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(src[i])));
#define QB_I8_NEON_MAC(i, kk)                                       \
    c##i##0 = vmlal_laneq_s16(c##i##0, vget_low_s16(w0), a##i, kk); \
    c##i##1 = vmlal_high_laneq_s16(c##i##1, w0, a##i, kk);          \
    c##i##2 = vmlal_laneq_s16(c##i##2, vget_low_s16(w1), a##i, kk); \
    c##i##3 = vmlal_high_laneq_s16(c##i##3, w1, a##i, kk);
#define QB_I8_NEON_STORE(i, kk)                                   \
    vst1q_s32(part + i * QB_I8_NEON_NR, c##i##0);                 \
    vst1q_s32(part + i * QB_I8_NEON_NR + 4, c##i##1);             \
    vst1q_s32(part + i * QB_I8_NEON_NR + 8, c##i##2);             \
    vst1q_s32(part + i * QB_I8_NEON_NR + 12, c##i##3);
#define QB_I8_NEON_STEP(kk)                                                               \
    {                                                                                     \
        int8x16_t wb = vld1q_s8(w + kk * 16);                                             \
        int16x8_t w0 = vmovl_s8(vget_low_s8(wb)), w1 = vmovl_high_s8(wb);                 \
        QB_I8_NEON_ROWS(QB_I8_NEON_MAC, kk)                                               \
    }

/* Eight k: rows src[i] against the panel at w, which moves on. */
#define QB_I8_NEON_K8                           \
    {                                           \
        QB_I8_NEON_ROWS(QB_I8_NEON_LOAD_A, 0)   \
        QB_I8_NEON_STEP(0)                      \
        QB_I8_NEON_STEP(1)                      \
        QB_I8_NEON_STEP(2)                      \
        QB_I8_NEON_STEP(3)                      \
        QB_I8_NEON_STEP(4)                      \
        QB_I8_NEON_STEP(5)                      \
        QB_I8_NEON_STEP(6)                      \
        QB_I8_NEON_STEP(7)                      \
        w += 128;                               \
    }

/* Rows a[0..MR) (K bytes each) against one panel; the last partial group
 * of 8 k is read from zero-padded copies, the panel is zero-padded already. */
static void qb_i8_tile_neon(const uint8_t *const a[QB_I8_NEON_MR], int K, const int8_t *w, int32_t *part) {
    QB_I8_NEON_ROWS(QB_I8_NEON_ZERO, 0)
    const uint8_t *src[QB_I8_NEON_MR];
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        for (int i = 0; i < QB_I8_NEON_MR; i++) src[i] = a[i] + k;
        QB_I8_NEON_K8
    }
    if (k < K) {
        uint8_t tail[QB_I8_NEON_MR][8] = {{0}};
        for (int i = 0; i < QB_I8_NEON_MR; i++) src[i] = memcpy(tail[i], a[i] + k, (size_t)(K - k));
        QB_I8_NEON_K8
    }
    QB_I8_NEON_ROWS(QB_I8_NEON_STORE, 0)
}

static void qb_gemm_i8_neon(const qb_gemm_i8_args *g, int n0, int n1) {
    int K8 = qb_i8_round_up(g->K, 8);
    int32_t part[QB_I8_NEON_MR * QB_I8_NEON_NR];
    for (int n = n0; n < n1; n += QB_I8_NEON_NR) {
        const int8_t *w = (const int8_t *)g->W->packed + (size_t)(n / 16) * K8 * 16;
        int cols = n1 - n < QB_I8_NEON_NR ? n1 - n : QB_I8_NEON_NR;
        for (int m0 = 0; m0 < g->M; m0 += QB_I8_NEON_MR) {
            int rows = g->M - m0 < QB_I8_NEON_MR ? g->M - m0 : QB_I8_NEON_MR;
            const uint8_t *a[QB_I8_NEON_MR];
            /* missing rows repeat the first; their sums are not stored */
            for (int i = 0; i < QB_I8_NEON_MR; i++) a[i] = g->A + (size_t)(m0 + (i < rows ? i : 0)) * g->lda;
            qb_i8_tile_neon(a, g->K, w, part);
            qb_i8_epilogue_neon(g, part, QB_I8_NEON_NR, m0, rows, n, cols, 0);
        }
    }
}

/* Masked-off lanes read as 0, which the clipped range contains anyway;
 * fmaxnm / fminnm skip a NaN as the reference's comparisons do. */
static void qb_i8_row_range_neon(const float *x, int K, float *mn, float *mx) {
    float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
    for (int k = 0; k < K; k += 4) {
        float32x4_t v = qb_v4_load_part(x + k, K - k);
        hi = vmaxnmq_f32(v, hi);
        lo = vminnmq_f32(v, lo);
    }
    float l = vminnmvq_f32(lo), h = vmaxnmvq_f32(hi);
    *mn = l < 0.0f ? l : 0.0f;
    *mx = h > 0.0f ? h : 0.0f;
}

/* The reference's clip (a NaN takes the lower bound: fmaxnm), then fcvtns,
 * which rounds to nearest with ties to even as nearbyintf does. */
static inline int32x4_t qb_i8_quantize4_neon(float32x4_t x, float32x4_t inv, int32x4_t zero) {
    float32x4_t r = vmaxnmq_f32(vmulq_f32(x, inv), vdupq_n_f32(QB_I8_CLIP_LO));
    r = vminnmq_f32(r, vdupq_n_f32(QB_I8_CLIP_HI));
    return vaddq_s32(vcvtnq_s32_f32(r), zero);
}

static void qb_i8_quantize_row_neon(const float *x, int K, float scale, int32_t zero, uint8_t *q) {
    float32x4_t inv = vdupq_n_f32(qb_i8_inverse(scale));
    int32x4_t z = vdupq_n_s32(zero);
    for (int k = 0; k < K; k += 8) {
        int32x4_t lo = qb_i8_quantize4_neon(qb_v4_load_part(x + k, K - k), inv, z);
        int32x4_t hi = qb_i8_quantize4_neon(qb_v4_load_part(x + k + 4, K - k - 4), inv, z);
        /* saturating narrows clamp to [0, 255] */
        uint8x8_t bytes = vqmovn_u16(vcombine_u16(vqmovun_s32(lo), vqmovun_s32(hi)));
        if (K - k >= 8) {
            vst1_u8(q + k, bytes);
        } else {
            uint8_t out[8];
            vst1_u8(out, bytes);
            memcpy(q + k, out, (size_t)(K - k));
        }
    }
}

void qb_quantize_rows_fixed_neon(const float *x, int M, int K, int ldx, float scale, int32_t zero, uint8_t *q,
                                 int ldq) {
    for (int m = 0; m < M; m++) qb_i8_quantize_row_neon(x + (size_t)m * ldx, K, scale, zero, q + (size_t)m * ldq);
}

void qb_quantize_rows_neon(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale, int32_t *zero) {
    for (int m = 0; m < M; m++) {
        float mn, mx;
        qb_i8_row_range_neon(x + (size_t)m * ldx, K, &mn, &mx);
        qb_i8_row_params(mn, mx, &scale[m], &zero[m]);
        qb_i8_quantize_row_neon(x + (size_t)m * ldx, K, scale[m], zero[m], q + (size_t)m * ldq);
    }
}

void qb_kernels_i8_init_neon(qb_kernels_i8 *k) {
    k->isa = QB_ISA_NEON;
    k->name = "neon";
    k->amx = false;
    k->gemm = qb_gemm_i8_neon;
    k->quantize_rows = qb_quantize_rows_neon;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_neon;
}
