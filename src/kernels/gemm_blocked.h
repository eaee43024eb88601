/* The cache-blocked GEMM loop nest shared by the SIMD paths.  An ISA
 * supplies only its register tile (micro-kernel) and the packing of B into
 * micro-panels; the blocking and the epilogue bookkeeping live here once.
 *
 * Loop order (per thread): N blocks of nc -> K blocks of kc (pack the
 * kc x nc block of B, ~1 MiB, into L2, or read it in place from panels
 * packed at load) -> MR-row strips of A (read in place, an MR x kc strip
 * that stays in L1) -> NR-wide micro-panels of B.
 *
 * A kernel whose tiles can be stored transposed may run a weight GEMM
 * swapped, as C^T = B . A^T: the weight rows become the strips read in
 * place and the activations are what gets packed.  Packing costs about a
 * tenth of the FMAs' time per packed element at M = 128, so with M rows
 * against N weight rows that packs N / M times less (6x at BERT-base's
 * 768-wide layers, batch 1; 25x for one real sentence). */
#ifndef QB_KERNELS_GEMM_BLOCKED_H
#define QB_KERNELS_GEMM_BLOCKED_H

#include "kernels/kernels.h"

/* Blocking per ISA.  NC is a multiple of NR.  For AVX-512, KC = 768 covers
 * BERT-base's K = 768 in one block, so every C tile is written once instead
 * of stored, reloaded and stored again per K block; NC = 192 keeps the
 * packed block at 576 KiB, most of a 2 MiB L2 left to A and C
 * (interleaved runs, 1 thread: +3-5% over KC = NC = 384). */
#define QB_GEMM_AVX512_MR 8
#define QB_GEMM_AVX512_NR 48
#define QB_GEMM_AVX512_KC 768
#define QB_GEMM_AVX512_NC 192

/* AVX2: the packed block (KC x NC floats, 256 KiB) is read again for
 * every row strip, so it must stay in L2, and the CPUs that run these
 * kernels (AVX2 without AVX-512 VNNI: AMD Zen 1-3, Intel's client cores)
 * have 256-512 KiB of it. */
#define QB_GEMM_AVX2_MR 6
#define QB_GEMM_AVX2_NR 16
#define QB_GEMM_AVX2_KC 256
#define QB_GEMM_AVX2_NC 256
/* Prepacked weights are read in place, so no pack buffer bounds their
 * blocks: KC = 768 takes BERT-base's K whole, each C tile written once,
 * and 96 columns (288 KiB) stay in L2 (2 threads, interleaved: +4-6
 * points of the FMA peak at 25 to 1024 rows over KC = NC = 256). */
#define QB_GEMM_AVX2_PANEL_KC 768
#define QB_GEMM_AVX2_PANEL_NC 96

/* NEON: 8 x 8 (16 accumulators, 8 strip vectors of 4 k, 2 for B: 26 of
 * the 32 registers); the packed block, 256 KiB, fits the L2 of a
 * Cortex-A53 or A76. */
#define QB_GEMM_NEON_MR 8
#define QB_GEMM_NEON_NR 8
#define QB_GEMM_NEON_KC 256
#define QB_GEMM_NEON_NC 256

/* Scratch one thread needs: packed B block plus one packed A strip, each
 * rounded to whole 64-byte lines. */
#define QB_GEMM_ROUND16(n) ((((size_t)(n)) + 15) / 16 * 16)
#define QB_GEMM_PACK_FLOATS(mr, kc, nc) (QB_GEMM_ROUND16((size_t)(kc) * (nc)) + QB_GEMM_ROUND16((size_t)(mr) * (kc)))

/* What one micro-kernel call writes: rows x cols valid entries of C and
 * what to do with them. */
typedef struct {
    float *c;
    int ldc;
    int rows, cols;
    float alpha;
    bool accumulate;       /* a later K block: add to C instead of overwriting */
    bool finish;           /* the last K block: apply bias, act, residual */
    bool trans;            /* entry (i, j) goes to c[j * ldc + i], bias is
                              per row i, residual is transposed like c */
    const float *bias;     /* at the tile's first column (row if trans), or NULL */
    const float *residual; /* at the tile's first entry, or NULL */
    int ldr;
    const float *next; /* the next strip of A read in place (ld = lda), to
                          prefetch during this tile's kc steps, or NULL */
    qb_act act;
} qb_gemm_tile;

typedef struct {
    int mr, nr, kc, nc;
    /* kc and nc where B is prepacked (B_panels); panel_kc > kc needs
     * exact_rows, since the pack's strip buffer holds kc columns (without
     * it, or with trans, the loop nest ignores the panels, which
     * kernels.h promises it does not) */
    int panel_kc, panel_nc;
    /* Packs B columns [n0, n0 + cols) x rows [k0, k0 + kc) into pb as
     * pb[k * nr + j], zero beyond cols. */
    void (*pack_b)(const qb_gemm_f32_args *g, int n0, int cols, int k0, int kc, float *pb);
    /* acc = A strip (mr rows lda floats apart) . B panel, then the epilogue
     * described by t. */
    void (*micro)(int kc, const float *pa, size_t lda, const float *pb, const qb_gemm_tile *t);
    bool trans; /* micro honours qb_gemm_tile.trans: swapped runs allowed */
    bool exact_rows; /* micro reads only qb_gemm_tile.rows rows of A: a
                        ragged strip is read in place, not copied full */
} qb_gemm_ukernel;

/* Whether a problem (or a thread's part of one) runs swapped where the
 * kernel allows: the weight has at least twice as many rows as A. */
static inline bool qb_gemm_swap_pays(const qb_gemm_f32_args *g) { return g->b_trans && 2 * g->M <= g->N; }

/* Packs weight w [N, K] whole into uk's panels, each nr columns by all
 * of K as pack_b lays out a block, panel after panel: a block of the loop
 * nest is then kc rows of consecutive panels, read in place
 * (qb_gemm_f32_args.B_panels). */
void qb_gemm_blocked_pack_panels(const qb_gemm_ukernel *uk, const float *w, int N, int K, float *panels);

/* Runs the whole problem g; pack holds QB_GEMM_PACK_FLOATS(uk->mr, uk->kc,
 * uk->nc) floats, 64-byte aligned. */
void qb_gemm_blocked_run(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, float *pack);

/* Part `part` of n_parts of g cut by MR-row strips (of the product as
 * run, swapped or not): those strips of every block.  Each thread packs
 * every block it meets itself; *packed (0 at the start of a call) lets it
 * keep a block it packed for an earlier part.  Every element is summed as
 * qb_gemm_blocked_run sums it. */
void qb_gemm_blocked_part(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int part, int n_parts, float *pack,
                          int *packed);

#endif
