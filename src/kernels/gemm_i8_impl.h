/* Internal contract of the integer kernels: the packed weight layout each
 * ISA streams, and the rules every path must apply identically (quantization
 * parameters, rounding, the epilogue's float order), written once here so
 * scalar and SIMD agree bit for bit. */
#ifndef QB_KERNELS_GEMM_I8_IMPL_H
#define QB_KERNELS_GEMM_I8_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels_i8.h"

/* Column granularity of the threaded split: one AVX-512 weight block
 * (four 16-column vectors), a whole number of AVX2 panels. */
#define QB_I8_N_BLOCK 64

/* Largest K the kernels take: dot products cannot overflow int32
 * (|A - zero| <= 255 and |W| <= 128, so |sum| <= 255 * 128 * K < 2^31), and
 * the high half of colsum_split, |colsum| / 128 <= K, fits int16. */
#define QB_I8_K_MAX 32767

/* Packed layouts (every one zero-padded, so padding adds nothing):
 *   scalar: W as given, [N][K] int8.
 *   avx2:   panels of 16 columns, [N/16][K/2][16][2] int8, pairs of
 *           consecutive k, widened to int16 as they are loaded for
 *           vpmaddwd; narrow weights (all within [-64, 64]) as
 *           [N/16][K/4][16][4] for vpmaddubsw.  Both exact; the size is
 *           the larger one's.
 *   avx512: blocks of 64 columns (the last may be 16, 32 or 48 wide),
 *           [K/4][width][4] int8: one zmm holds 4 consecutive k of 16
 *           columns, as vpdpbusd consumes them.  Block b starts at byte
 *           64 * b * K4 * 4.
 *   dotprod: the avx512 layout: 16 columns x 4 k are one sdot's operand.
 *   neon:   panels of 16 columns, [N/16][K/8][8][16] int8, widened to
 *           int16 as they are loaded for smlal (ARMv8.0 has no 8-bit dot
 *           product).
 *   i8mm:   panels of 8 columns, [N/8][K/8][8][8] int8: 2 columns x 8 k
 *           are one usmmla operand. */
static inline int qb_i8_round_up(int x, int m) { return (x + m - 1) / m * m; }

static inline size_t qb_i8_packed_bytes(qb_isa isa, int N, int K) {
    switch (isa) {
    case QB_ISA_AVX2:
    case QB_ISA_AVX512:
    case QB_ISA_DOTPROD: return (size_t)qb_i8_round_up(N, 16) * (size_t)qb_i8_round_up(K, 4);
    case QB_ISA_NEON: return (size_t)qb_i8_round_up(N, 16) * (size_t)qb_i8_round_up(K, 8);
    case QB_ISA_I8MM: return (size_t)qb_i8_round_up(N, 8) * (size_t)qb_i8_round_up(K, 8);
    case QB_ISA_SCALAR:
    default: return (size_t)N * (size_t)K;
    }
}

/* Parameters of one row from its clipped range [mn, mx] (mn <= 0 <= mx).
 * A row of zeros (or one so small that the scale underflows) gets scale 1
 * and zero point 0: every value then quantizes to 0 and dequantizes to 0,
 * and nothing divides by zero. */
static inline void qb_i8_row_params(float mn, float mx, float *scale, int32_t *zero) {
    float s = (mx - mn) / 255.0f;
    if (!(s > 0.0f) || isinf(s)) {
        *scale = 1.0f;
        *zero = 0;
        return;
    }
    float z = nearbyintf(-mn / s);
    *scale = s;
    *zero = z < 0.0f ? 0 : z > 255.0f ? 255 : (int32_t)z;
}

/* x * (1 / scale) clipped to [-256, 512] before rounding: beyond that every
 * zero point in [0, 255] clamps the result the same way, and the clip keeps
 * the float-to-int conversion in range.  Every path multiplies by the one
 * reciprocal qb_i8_inverse() rounds per row (a divide per element costs
 * more than the rest of the quantization together); the product can differ
 * from x / scale in the last bit, which only moves a value lying within an
 * ulp of a rounding boundary by one step.  The comparisons are written so a
 * NaN takes the lower bound, as _mm*_max_ps(x, lo) does in the SIMD paths. */
#define QB_I8_CLIP_LO (-256.0f)
#define QB_I8_CLIP_HI 512.0f

static inline float qb_i8_inverse(float scale) { return 1.0f / scale; }

/* x's grid index before the u8 clamp (QAT's straight-through mask reads it). */
static inline int32_t qb_i8_grid_index(float x, float inv_scale, int32_t zero) {
    float r = x * inv_scale;
    r = r > QB_I8_CLIP_LO ? r : QB_I8_CLIP_LO;
    r = r < QB_I8_CLIP_HI ? r : QB_I8_CLIP_HI;
    return (int32_t)nearbyintf(r) + zero;
}

static inline uint8_t qb_i8_quantize_one(float x, float inv_scale, int32_t zero) {
    int32_t q = qb_i8_grid_index(x, inv_scale, zero);
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

/* colsum_split's value for one column (see kernels_i8.h). */
static inline int32_t qb_i8_colsum_split(int32_t colsum) {
    int32_t neg = -colsum, high = neg >> 7, low = neg & 127;
    return (int32_t)((uint32_t)(uint16_t)low | (uint32_t)(uint16_t)high << 16);
}

/* The per-row operand that colsum_split multiplies: (zero, 128 * zero). */
static inline int32_t qb_i8_zero_split(int32_t zero) { return (int32_t)((uint32_t)zero | (uint32_t)zero << 23); }

/* The epilogue before the activation, one fused multiply-add so SIMD
 * (vfmadd) and scalar (fmaf) round identically:
 *   fma((float)(acc - zero * colsum), a_scale * w_scale, bias or +0). */
static inline float qb_i8_dequant(int32_t acc, int32_t zero, int32_t colsum, float a_scale, float w_scale,
                                  float bias) {
    return fmaf((float)(acc - zero * colsum), a_scale * w_scale, bias);
}

/* The AVX-512 GEMM's two inner products over the same packed weights:
 * vpdpbusd (AVX-512 VNNI) and, where the CPU and OS allow it, AMX tiles,
 * which hand row tails and odd K back to the VNNI one. */
void qb_gemm_i8_vnni(const qb_gemm_i8_args *g, int n0, int n1);
void qb_gemm_i8_amx(const qb_gemm_i8_args *g, int n0, int n1);
/* Whether AMX-INT8 exists and the OS granted this process its tile state. */
bool qb_i8_amx_enable(void);
/* Configures this thread's tiles as every AMX kernel uses them: all eight
 * 16 rows x 64 bytes. */
void qb_i8_amx_configure(void);
/* Dequantizes, activates and stores output vectors [first, first + count)
 * of the block rows [m0, m0 + rows) x columns [n, n + cols), from finished
 * int32 sums laid out 64 per row in part, stripe by stripe (vector v: row
 * v % rows, columns 16 * (v / rows); all of them: count = rows * ceil(cols
 * / 16)). */
/* AArch64: the shared epilogue of the NEON, dot-product and i8mm GEMMs
 * (gemm_i8_neon.c) over rows [m0, m0 + rows) x columns [n, n + cols) from
 * the tile's int32 sums (ld apart); shift is what each A byte was lowered
 * by before the multiply (128 where sdot needs signed inputs), so the sums
 * are those of (A - shift) and shift * colsum is added back. */
void qb_i8_epilogue_neon(const qb_gemm_i8_args *g, const int32_t *part, int ld, int m0, int rows, int n, int cols,
                         int32_t shift);
/* The NEON quantizers, which every AArch64 table uses. */
void qb_quantize_rows_neon(const float *x, int M, int K, int ldx, uint8_t *q, int ldq, float *scale, int32_t *zero);
void qb_quantize_rows_fixed_neon(const float *x, int M, int K, int ldx, float scale, int32_t zero, uint8_t *q,
                                 int ldq);

void qb_i8_epilogue_range_avx512(const qb_gemm_i8_args *g, const int32_t *part, int m0, int rows, int n, int cols,
                                 int first, int count);

#endif
