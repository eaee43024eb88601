/* Kernels for low-bit weights (INT4, INT3, INT2, ternary, k-means
 * codebooks).  A weight is a small unsigned code; rows of codes are packed
 * as stored on disk (the encodings below), and the kernels decode them one
 * cache block at a time (64 columns by one group of K), never into a
 * full-size copy.  Two ways to run them:
 *
 *   W.A8 (integer grids only): u8 activations as the int8 kernels take them,
 *     C[m,n] = act( a_scale[m] * ( sum_g scale[n,g] * sum_{k in g} A[m,k] (code[n,k] - zero[n,g])
 *                                  - a_zero[m] * zsum[n] ) + bias[n] ) + residual[m,n]
 *     zsum[n] = sum_g scale[n,g] * sum_{k in g} (code[n,k] - zero[n,g])
 *     Each group's dot product is exact in int32; the groups are summed in
 *     float, in group order, with one fused multiply-add each.  The float
 *     order, which every ISA follows bit for bit (fmaf in C, vfmadd in SIMD):
 *       acc = +0; for g in 0..G-1: acc = fmaf(scale[n,g], (float)dot[m,n,g], acc)
 *       zsum[n]: zs = +0; for g: zs = fmaf(scale[n,g], (float)isum[n,g], zs),
 *                isum[n,g] = sum_{k in g} (code[n,k] - zero[n,g])
 *       v = fmaf(-(float)a_zero[m], zsum[n], acc)
 *       v = fmaf(v, a_scale[m], bias ? bias[n] : +0)
 *       C = act(v) + residual (the activation as the int8 kernels apply it:
 *           exact for none and relu, the SIMD approximations otherwise)
 *     Every |code - zero| must fit the SIMD paths' int8 (zero < levels).
 *
 *   weight-only: FP32 activations; a block of weights is decoded to FP32
 *     (scale * (code - zero), or codebook[n][code]) and run by the FP32 GEMM.
 */
#ifndef QB_KERNELS_LOWBIT_H
#define QB_KERNELS_LOWBIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* How a row of K codes is packed, least significant bits first:
 *   U4: two codes per byte, code k in bits 4*(k%2) of byte k/2.
 *   U2: four per byte, code k in bits 2*(k%4) of byte k/4.
 *   U3: two planes, so the row really costs 3 bits per code: first the low
 *       two bits of every code as U2 (ceil(K/4) bytes), then the high bit,
 *       eight per byte, code k in bit k%8 of byte k/8 of that plane.
 *   T5: five trits (codes 0..2) per byte, byte = sum_i code[5j+i] * 3^i.
 * Bytes past the last code are zero. */
typedef enum { QB_CODE_U4, QB_CODE_U3, QB_CODE_U2, QB_CODE_T5 } qb_code;

/* 16, 8, 4, 3; inline, since kernels ask it inside their loops */
static inline int qb_code_levels(qb_code c) {
    static const int levels[] = {[QB_CODE_U4] = 16, [QB_CODE_U3] = 8, [QB_CODE_U2] = 4, [QB_CODE_T5] = 3};
    return (unsigned)c < sizeof levels / sizeof *levels ? levels[c] : 0;
}
size_t qb_code_row_bytes(qb_code c, int K);
/* codes[0..K) (each < levels) into row (row_bytes bytes). */
void qb_code_pack_row(qb_code c, const uint8_t *codes, int K, uint8_t *row);
/* codes k0 .. k0+n-1 of a packed row of K codes (U3's bit plane starts
 * after ceil(K / 4) bytes, hence K). */
void qb_code_unpack_row(qb_code c, const uint8_t *row, int K, int k0, int n, uint8_t *codes);

/* Where one thread's gemm_a8 scratch puts its pieces (byte offsets, each
 * 64-byte aligned). */
typedef struct {
    int chunk_groups;  /* groups per chunk (1 when a group spans chunks) */
    int chunk_steps;   /* most steps of 4 k one chunk decodes to */
    int span_steps;    /* most steps one span (consecutive chunks) decodes to, >= chunk_steps */
    size_t decoded;    /* [span_steps][64][4] s8 */
    size_t stage;      /* [16][QB_LOWBIT_KC + 64] s8: codes of 16 columns before the transpose */
    size_t scales;     /* [3][chunk_groups][64] f32: three chunks' scales (AMX folds up to two late) */
    size_t asum;       /* [QB_LOWBIT_FUSED_ROWS_MAX][G] s32: rows' sums of A per group */
    size_t ipart;      /* [QB_LOWBIT_MC][64] s32: a group's sums between pieces */
    size_t fpart;      /* [QB_LOWBIT_MC][64] f32: the float sums over groups */
    size_t apart;      /* [3][QB_LOWBIT_AMX_ROWS][64] s32: AMX sums waiting for their fold */
    size_t bytes;
} qb_lowbit_scratch_layout;
/* Low-bit weights [N, K] (PyTorch's [out, in]).  The arrays may point into
 * a mapped file; the struct owns only zsum and panels (unless borrowed). */
typedef struct {
    qb_code code;
    int N, K;
    int group;               /* K columns per scale (1 <= group <= K) */
    int G;                   /* groups per row: ceil(K / group) */
    const uint8_t *rows;     /* [N][row_bytes] */
    size_t row_bytes;
    const float *scale;      /* [N][G]; NULL with a codebook, and where a
                              * model dropped it once panels held it */
    const uint8_t *zero;     /* [N][G] codes (< levels); NULL with a codebook,
                              * and for a symmetric grid, whose zero is
                              * levels / 2 (8, 4, 2, 1) */
    const float *codebook;   /* [N][levels], or NULL for a grid */
    float *zsum;             /* [N], W.A8 only: qb_lowbit_weights_prepare */
    qb_lowbit_scratch_layout plan; /* W.A8 only: the kernels' scratch, planned once */
    uint8_t *panels;         /* W.A8 grids, for kernels that take them (below), or NULL */
    bool borrowed;           /* panels are the caller's (a model's huge pages): not freed here */
} qb_lowbit_weights;

/* Panels: the codes again, laid out so that the AVX2 and AVX-512
 * decoders read a block's codes in order and make their layout ([step][64
 * columns][4 k] s8) with a mask or a shift and a mask per vector instead
 * of a transpose, and so that the AVX-512 tile can
 * multiply U4 ones as they are for few rows (lowbit_avx512.c).  For grids
 * whose groups are whole steps of 4 k (or one group).  With S = ceil(K / 4)
 * steps and B = ceil(N / 64) blocks of 64 columns:
 *   U4 codes [B][S][128]: byte 64 h + 4 c + j of block b, step s holds the
 *     codes of columns 64 b + 32 h + c (low nibble) and 64 b + 32 h + 16 + c
 *     (high nibble, XOR 8) at k = 4 s + j, so that the byte read as s8 is
 *     16 (high code - 8) + low code, which the VNNI kernel multiplies as it
 *     is (lowbit_avx512.c);
 *   U2 and T5 codes (trits fit two bits) [B][S][64]: byte 4 c + j of block
 *     b, step s holds in bits 2 f, 2 f + 1 the code of column 64 b + 16 f + c
 *     at k = 4 s + j, so that 2 bits per weight stay 2 bits in memory;
 *   U3 codes: per block, their low two bits as U2's ([S][64]), then bit 2
 *     [S][32] (padded to whole lines): bit 4 c + j of the 64-bit word f of
 *     step s, that of column 64 b + 16 f + c at k = 4 s + j, so that a
 *     word is the byte mask of its column vector (3 bits per weight);
 *   then the scales [B][G][64] f32 (0 past N), so that a chunk's scales
 *     are read where they lie, not gathered from rows G apart;
 *   then, for grids with zero points, those [B][G][64], a byte per
 *     column, so that a group's zero vector is one load, not a strided
 *     gather (a symmetric grid's zero point is levels / 2 everywhere).
 * Columns past N and k past K hold the zero point, so they decode to 0.
 * A kernel table names the codes whose panels it reads (panel_codes); the
 * others' panels, where a caller made them anyway, it leaves alone. */
#define QB_LOWBIT_PANELS_ALL ((1u << QB_CODE_U4) | (1u << QB_CODE_U3) | (1u << QB_CODE_U2) | (1u << QB_CODE_T5))
bool qb_lowbit_panels_fit(const qb_lowbit_weights *w);
size_t qb_lowbit_panels_bytes(const qb_lowbit_weights *w);
/* The bytes of the panels W.A8 makes for w where `codes` (a set of bits
 * 1 << qb_code, as panel_codes) holds its code, else 0. */
size_t qb_lowbit_panels_wanted(const qb_lowbit_weights *w, unsigned codes);

/* Fills w->zsum (allocating it) and w->plan for W.A8, and w->panels where
 * `codes` holds its code and they fit; false on allocation failure. */
bool qb_lowbit_weights_prepare(qb_lowbit_weights *w, unsigned codes);
/* The same in two steps, so that a load allocates in order and packs on
 * several threads: alloc sizes the buffers (false on allocation failure),
 * fill computes them (false if its block of scratch cannot be had).
 * panels_at, if not NULL, is the panels' storage (qb_lowbit_panels_wanted
 * bytes, 64-byte aligned), which w then borrows. */
bool qb_lowbit_weights_alloc(qb_lowbit_weights *w, unsigned codes, uint8_t *panels_at);
bool qb_lowbit_weights_fill(qb_lowbit_weights *w);
void qb_lowbit_weights_free(qb_lowbit_weights *w);

/* Row n of w, columns [k0, k0+n), as FP32 (the definition of the weights). */
void qb_lowbit_dequantize(const qb_lowbit_weights *w, int n, int k0, int count, float *out);
typedef void (*qb_lowbit_decode_fn)(const qb_lowbit_weights *w, int n, int k0, int count, float *out);
/* Rows [n0, n0 + cols) of w, k in [k0, k1), decoded by `decode` into one
 * panel of the FP32 GEMM's prepacked B (kernels.h), nr columns wide
 * (cols <= nr): panel[k * nr + j] is row n0 + j's weight k, 0 for j >= cols. */
void qb_lowbit_dequantize_panel(qb_lowbit_decode_fn decode, const qb_lowbit_weights *w, int n0, int cols, int nr,
                                int k0, int k1, float *panel);

typedef struct {
    int M;
    const uint8_t *A;        /* M x K u8, row stride lda */
    int lda;
    const float *a_scale;    /* [M] */
    const int32_t *a_zero;   /* [M] */
    const qb_lowbit_weights *W;
    float *C;
    int ldc;
    const float *bias;       /* [N] or NULL */
    const float *residual;   /* M x N (stride ldr) or NULL */
    int ldr;
    qb_act act;
    int fused_rows;          /* the kernel table's (qb_lowbit_gemm_a8 sets it) */
} qb_lowbit_a8_args;
/* Output (m, n) from its float sum over the groups: the definition's
 * epilogue, shared by the scalar kernel and the kernels that fold as it does. */
void qb_lowbit_store_ref(const qb_lowbit_a8_args *g, int m, int n, float acc);

struct qb_lowbit_f32_args; /* below */

typedef struct qb_kernels_lowbit {
    qb_isa isa;
    /* AVX-512 only: gemm_a8 multiplies on AMX tiles (same results bit for
     * bit; rows past the last 16, K or group not a multiple of 64 and K past
     * one decoded span use VNNI). */
    bool amx;
    unsigned panel_codes; /* bit 1 << c: gemm_a8 reads code c from w->panels where it has them */
    /* AVX-512 VNNI: rows up to which gemm_a8 multiplies symmetric U4 panels
     * undecoded (QB_LOWBIT_FUSED_ROWS or, on AMD, QB_LOWBIT_FUSED_ROWS_MAX) */
    int fused_rows;
    /* W.A8 over columns [n0, n1) (multiples of 64 but the last), one
     * thread; scratch is qb_lowbit_scratch_bytes() bytes, 64-byte aligned. */
    void (*gemm_a8)(const qb_lowbit_a8_args *a, int n0, int n1, void *scratch);
    /* qb_lowbit_dequantize, bit for bit: the weight-only GEMM's decoder. */
    qb_lowbit_decode_fn dequantize;
    /* qb_lowbit_dequantize_panel over dequantize for all of K, bit for bit,
     * for ISAs whose FP32 GEMM reads prepacked panels (else NULL). */
    void (*dequantize_panel)(const qb_lowbit_weights *w, int n0, int cols, int nr, float *panel);
    /* Weight-only columns [n0, n0 + cols) of a, multiplied straight from
     * the codes where the shapes suit (up to QB_LOWBIT_FEW_ROWS rows), else
     * false and nothing done; xp (qb_lowbit_f32_scratch_floats(K), 64-byte
     * aligned) holds x packed for it, by this call unless packed (a
     * thread's earlier call with the same a).  NULL where none. */
    bool (*gemm_f32_few)(const struct qb_lowbit_f32_args *a, int n0, int cols, float *xp, bool packed);
} qb_kernels_lowbit;

bool qb_kernels_lowbit_select(qb_isa isa, qb_kernels_lowbit *k);
void qb_kernels_lowbit_init_scalar(qb_kernels_lowbit *k);
void qb_kernels_lowbit_init_avx2(qb_kernels_lowbit *k);
/* The AVX-512 table, with AMX tiles where the CPU and the OS allow them
 * (as qb_kernels_i8_init_avx512 decides). */
void qb_kernels_lowbit_init_avx512(qb_kernels_lowbit *k);
/* The same table held to AVX-512 VNNI (tests and benchmarks compare both). */
void qb_kernels_lowbit_init_avx512_vnni(qb_kernels_lowbit *k);
/* AArch64: runs of a group's codes decoded per 16-column stripe, rows
 * through smlal tiles (ARMv8.0, lowbit_neon.c) or sdot tiles (the dotprod
 * and i8mm levels, lowbit_dotprod.c). */
void qb_kernels_lowbit_init_neon(qb_kernels_lowbit *k);
void qb_kernels_lowbit_init_dotprod(qb_isa isa, qb_kernels_lowbit *k);
#define QB_LOWBIT_RUN_MR 4
#define QB_LOWBIT_RUN_NR 16
/* Adds, or from zero where first, the sums over a run of len k of rows
 * a[0..3] (each at the run's first k) times the decoded run w
 * ([ceil(len / 4)][16][4] s8) into isum ([4][16] int32), less a_shift
 * times the column's weight sum where the tile shifts A by a_shift. */
typedef void (*qb_lowbit_run_tile)(const uint8_t *const a[QB_LOWBIT_RUN_MR], int len, const int8_t *w, bool first,
                                   int32_t *isum);
void qb_lowbit_gemm_a8_runs(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch, qb_lowbit_run_tile tile,
                            int a_shift);

/* Per-thread scratch of gemm_a8 for weights of K inputs and group size. */
size_t qb_lowbit_scratch_bytes(int K, int group);
/* Rows up to which gemm_f32_few takes x: three panels of the AVX-512
 * FP32 tile's 48, a seq-128 sentence; its scratch holds x packed, then an
 * 8-row strip of W decoded. */
#define QB_LOWBIT_FEW_ROWS 144
#define QB_LOWBIT_FEW_FLOATS(K) ((size_t)(QB_LOWBIT_FEW_ROWS + 8) * (size_t)(K))
/* Per-thread scratch (floats) of the weight-only GEMM for K inputs. */
size_t qb_lowbit_f32_scratch_floats(int K);

/* Multithreaded drivers (pool's threads over 64-column blocks; NULL: the
 * caller's alone); scratch holds a slice per thread. */
void qb_lowbit_gemm_a8(const qb_kernels_lowbit *k, const qb_lowbit_a8_args *a, qb_pool *pool, void *scratch);

/* Weight-only: C = act(x W^T + bias) + residual with x M x K FP32 (lda),
 * each 64-column block multiplied from its codes by k's gemm_f32_few
 * where it takes the shapes, else decoded to FP32 by k and run by kf's
 * FP32 GEMM: straight into its panels where it reads prepacked ones (no
 * packing per call), else into rows it packs. */
typedef struct qb_lowbit_f32_args {
    int M;
    const float *x;
    int lda;
    const qb_lowbit_weights *W;
    float *C;
    int ldc;
    const float *bias, *residual;
    int ldr;
    qb_act act;
} qb_lowbit_f32_args;
void qb_lowbit_gemm_f32(const qb_kernels_lowbit *k, const qb_kernels *kf, const qb_lowbit_f32_args *a, qb_pool *pool,
                        float *scratch);

/* ---- Internal: shared by src/kernels/lowbit*.c, not for callers. ----
 * gemm_a8 walks K in chunks of whole groups (or, for a group longer than
 * QB_LOWBIT_KC, in pieces of one group) and decodes each chunk of a
 * 64-column block to s8 (code - zero) in the VNNI layout
 * [step][64 columns][4 k], each group's segment padded to whole steps with
 * zeros; rows of A run against it QB_LOWBIT_MC at a time.  The AVX-512
 * paths decode a span of consecutive chunks (up to QB_LOWBIT_KD k, so all
 * of a BERT-sized K) at once and run every row through it, so a block is
 * decoded once per call rather than once per row chunk; for few rows,
 * symmetric U4 panels are not decoded at all. */
#define QB_LOWBIT_N_BLOCK 64
#define QB_LOWBIT_KC 256
#define QB_LOWBIT_MC 96
#define QB_LOWBIT_KD 4096
/* Rows up to which the AVX-512 VNNI path multiplies symmetric U4 panels
 * undecoded.  Past them one decode pass per block costs less than the two
 * masks a step in every tile: on Intel past about six row tiles, where the
 * masks share vpdpbusd's ports; AMD's Zen 4 runs them on pipes vpdpbusd
 * leaves free, and the undecoded tiles stayed ahead up to the _MAX rows. */
#define QB_LOWBIT_FUSED_ROWS 36
#define QB_LOWBIT_FUSED_ROWS_MAX 96
#define QB_LOWBIT_AMX_ROWS 32 /* rows of the AMX path's output block */

qb_lowbit_scratch_layout qb_lowbit_scratch_plan(int K, int group);

/* The panels' geometry: blocks of 64 columns, each block's codes, and
 * where block b's codes and (grids with zero points) those of group g
 * lie. */
static inline size_t qb_lowbit_panel_blocks(const qb_lowbit_weights *w) {
    return ((size_t)w->N + QB_LOWBIT_N_BLOCK - 1) / QB_LOWBIT_N_BLOCK;
}
/* the bytes of a step of 4 k of a block's codes (U3: of its low bits) */
static inline size_t qb_lowbit_panel_step_bytes(const qb_lowbit_weights *w) {
    return w->code == QB_CODE_U4 ? 128 : 64;
}
static inline size_t qb_lowbit_panel_code_bytes(const qb_lowbit_weights *w) {
    size_t steps = ((size_t)w->K + 3) / 4, bit2 = w->code == QB_CODE_U3 ? (steps * 32 + 63) / 64 * 64 : 0;
    return steps * qb_lowbit_panel_step_bytes(w) + bit2;
}
static inline uint8_t *qb_lowbit_panel_codes(const qb_lowbit_weights *w, size_t b) {
    return w->panels + b * qb_lowbit_panel_code_bytes(w);
}
/* U3: block b's plane of bit 2, after its two low bits' */
static inline uint8_t *qb_lowbit_panel_bit2(const qb_lowbit_weights *w, size_t b) {
    return qb_lowbit_panel_codes(w, b) + ((size_t)w->K + 3) / 4 * 64;
}
static inline float *qb_lowbit_panel_scales(const qb_lowbit_weights *w, size_t b, int g) {
    float *scales = (float *)qb_lowbit_panel_codes(w, qb_lowbit_panel_blocks(w));
    return scales + (b * (size_t)w->G + (size_t)g) * QB_LOWBIT_N_BLOCK;
}
static inline uint8_t *qb_lowbit_panel_zeros(const qb_lowbit_weights *w, size_t b, int g) {
    return (uint8_t *)qb_lowbit_panel_scales(w, qb_lowbit_panel_blocks(w), 0) +
           (b * (size_t)w->G + (size_t)g) * QB_LOWBIT_N_BLOCK;
}

/* One group's share of a chunk: k0, len codes of group g, decoded from
 * step step0; starts/ends: the group's first/last piece. */
typedef struct {
    int k0, len, g, step0;
    bool starts, ends;
} qb_lowbit_segment;

/* The segments of the chunk that starts at k0 (at most chunk_groups, from
 * qb_lowbit_scratch_plan); returns their count, the chunk's steps in *steps. */
static inline int qb_lowbit_chunk(const qb_lowbit_weights *w, int k0, int chunk_groups, qb_lowbit_segment *seg,
                                  int *steps) {
    int count = 0, step = 0;
    if (w->group < QB_LOWBIT_KC) {
        for (int g = k0 / w->group; g < w->G && count < chunk_groups; g++) {
            int start = g * w->group, len = w->K - start < w->group ? w->K - start : w->group;
            seg[count++] = (qb_lowbit_segment){start, len, g, step, true, true};
            step += (len + 3) / 4;
        }
    } else {
        int g = k0 / w->group, start = g * w->group;
        int end = start + w->group < w->K ? start + w->group : w->K;
        int len = end - k0 < QB_LOWBIT_KC ? end - k0 : QB_LOWBIT_KC;
        seg[count++] = (qb_lowbit_segment){k0, len, g, 0, k0 == start, k0 + len == end};
        step = (len + 3) / 4;
    }
    *steps = step;
    return count;
}

/* The scales of the chunk's count segments of the block at column n,
 * [segment][64] (0 past N): in the panels where w has them (a chunk's
 * groups are consecutive), else copied into out. */
const float *qb_lowbit_chunk_scales(const qb_lowbit_weights *w, int n, const qb_lowbit_segment *seg, int count,
                                    float *out);

/* Zero point of row n, group g (levels / 2 without a zero array). */
static inline int qb_lowbit_zero_point(const qb_lowbit_weights *w, int n, int g) {
    return w->zero ? w->zero[(size_t)n * w->G + g] : qb_code_levels(w->code) / 2;
}

/* Row n's codes [k0, k0 + count) minus the group's zero point (the range
 * lies in one group), as s8, then zeros up to pad (>= count). */
void qb_lowbit_decode_s8(const qb_lowbit_weights *w, int n, int k0, int count, int pad, int8_t *out);

/* The stage ([16][ld] s8, 16 columns of count k) into the VNNI layout at
 * out ([steps][64][4], columns c0..c0+15), steps = ceil(count / 4). */
void qb_lowbit_stage_transpose(const int8_t *stage, int ld, int count, int c0, int8_t *out);

/* AVX-512 internals shared by the VNNI and AMX files: one 64-column block
 * of the W.A8 GEMM and the span of K decoded for it. */
typedef struct {
    const qb_lowbit_a8_args *g;
    qb_lowbit_scratch_layout L;
    char *scratch;
    int n, cols;          /* columns [n, n + cols) */
    int span_k0, span_k1; /* k decoded in scratch (span_k1 == 0: none yet) */
    /* the next block's packed codes not yet prefetched into L2, [next,
     * next_end) (NULL: none), per_tile lines a tile */
    const char *next, *next_end;
    int per_tile;
} qb_lowbit_block;
/* The block at column n of a slice that ends at n1; its rows make `tiles`
 * tile calls (or AMX steps), over which the next block's lines are spread. */
void qb_lowbit_block_init(qb_lowbit_block *b, const qb_lowbit_a8_args *g, char *scratch, int n, int n1, int tiles);
/* Decodes the span of chunks from k0 (unless it is the one held). */
void qb_lowbit_block_decode(qb_lowbit_block *b, int k0);
/* Rows [m0, m0 + rows) (rows <= QB_LOWBIT_MC) through VNNI, epilogue included. */
void qb_lowbit_block_rows_vnni(qb_lowbit_block *b, int m0, int rows);
/* zsum, a_scale, bias, activation and residual of rows [m0, m0 + rows)
 * from their float sums (64 per row). */
void qb_lowbit_block_epilogue(const qb_lowbit_block *b, const float *fpart, int m0, int rows);
void qb_lowbit_gemm_a8_vnni(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch);
void qb_lowbit_gemm_a8_amx(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch);
/* The AVX-512 weight-only kernels (lowbit_f32_avx512.c). */
void qb_lowbit_dequantize_avx512(const qb_lowbit_weights *w, int n, int k0, int count, float *out);
bool qb_lowbit_gemm_f32_few_avx512(const struct qb_lowbit_f32_args *a, int n0, int cols, float *xp, bool packed);

#endif
