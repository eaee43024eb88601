/* The AMX path of the AVX-512 W.A8 GEMM.  The decoded block of the VNNI
 * path ([step][64 columns][4 k] s8, kernels_lowbit.h) is what tdpbusd's B
 * tile reads: 16 steps (64 k) of 16 columns, rows 256 bytes apart.  A
 * 32-row x 64-column output block runs in two passes of four C tiles
 * (2 x 2 tiles of 16 x 16), group by group: the int32 sums of a group go
 * to scratch and are folded, two groups at a time, into the float sums
 * (fmaf(scale, (float)sum, acc), the float order of kernels_lowbit.h)
 * while the tiles of the next group compute, since tile instructions are few and long and leave the
 * vector ports idle.  Rows past the last 16 go to the VNNI code through
 * the same decoded block; K or group not a multiple of 64, or K past one
 * span, go to VNNI altogether. */
#include <immintrin.h>
#include <string.h>

#include "kernels/gemm_i8_impl.h"
#include "kernels/kernels_lowbit.h"

#define QB_LB_AMX_TARGET __attribute__((target("amx-tile,amx-int8")))
#define QB_LB_AMX_ROWS 16
#define QB_LB_AMX_K 64

/* Groups' int32 sums waiting to be folded into the float sums, two at a
 * time: a group's tile stores and a fold's float stores share the one
 * 64-byte store a cycle, and a fold per group needed more of them than its
 * tiles take cycles; a pair loads and stores the float sums once. */
typedef struct {
    const int32_t *part[2]; /* [rows][64] */
    const float *scale[2];  /* [64] */
    int n;                  /* groups waiting */
    bool first;             /* part[0] is group 0: from +0 */
} qb_lb_amx_fold;

static void qb_lb_amx_fold_run(qb_lb_amx_fold *f, float *fpart, int rows, int tiles) {
    if (!f->n) return;
    for (int j = 0; j < tiles; j++) {
        __m512 s0 = _mm512_load_ps(f->scale[0] + 16 * j), s1 = _mm512_load_ps(f->scale[f->n - 1] + 16 * j);
        for (int i = 0; i < rows; i++) {
            float *dst = fpart + i * 64 + 16 * j;
            __m512 acc = f->first ? _mm512_setzero_ps() : _mm512_load_ps(dst);
            acc = _mm512_fmadd_ps(s0, _mm512_cvtepi32_ps(_mm512_load_si512(f->part[0] + i * 64 + 16 * j)), acc);
            if (f->n > 1)
                acc = _mm512_fmadd_ps(s1, _mm512_cvtepi32_ps(_mm512_load_si512(f->part[1] + i * 64 + 16 * j)), acc);
            _mm512_store_ps(dst, acc);
        }
    }
    f->n = 0;
}

/* Tiles: C 0..3 (row tile i, column tile j -> 2 i + j), A 4..5, B 6..7.
 * The segment's sums of columns [16 c, 16 c + 16 nc) go to part (64 int32
 * per row), starting from zero or, for a group's later pieces, from ipart. */
QB_LB_AMX_TARGET static inline __attribute__((always_inline)) void
qb_lb_amx_tile(const uint8_t *a, size_t lda, const int8_t *w, int steps, int mr, int nc, const int32_t *from,
               int32_t *part, qb_lowbit_block *b) {
    const size_t ldp = 64 * sizeof(int32_t), rows16 = (size_t)QB_LB_AMX_ROWS * 64;
    if (from) {
        _tile_loadd(0, from, ldp);
        if (nc > 1) _tile_loadd(1, from + 16, ldp);
        if (mr > 1) _tile_loadd(2, from + rows16, ldp);
        if (mr > 1 && nc > 1) _tile_loadd(3, from + rows16 + 16, ldp);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int s = 0; s < steps; s += QB_LB_AMX_K / 4, a += QB_LB_AMX_K, w += (size_t)QB_LB_AMX_K / 4 * 256) {
        _tile_loadd(4, a, lda);
        if (mr > 1) _tile_loadd(5, a + QB_LB_AMX_ROWS * lda, lda);
        _tile_loadd(6, w, 256);
        if (nc > 1) _tile_loadd(7, w + 64, 256);
        _tile_dpbusd(0, 4, 6);
        if (nc > 1) _tile_dpbusd(1, 4, 7);
        if (mr > 1) _tile_dpbusd(2, 5, 6);
        if (mr > 1 && nc > 1) _tile_dpbusd(3, 5, 7);
        for (int i = 0; i < b->per_tile && b->next != b->next_end; i++, b->next += 64)
            _mm_prefetch(b->next, _MM_HINT_T1);
    }
    _tile_stored(0, part, ldp);
    if (nc > 1) _tile_stored(1, part + 16, ldp);
    if (mr > 1) _tile_stored(2, part + rows16, ldp);
    if (mr > 1 && nc > 1) _tile_stored(3, part + rows16 + 16, ldp);
}

/* One segment of rows [m, m + 16 mr) against the block's tiles columns. */
QB_LB_AMX_TARGET static void qb_lb_amx_segment(qb_lowbit_block *b, int m, int mr, const qb_lowbit_segment *seg,
                                               const int8_t *w, int32_t *part) {
    const qb_lowbit_a8_args *g = b->g;
    const uint8_t *a = g->A + (size_t)m * g->lda + seg->k0;
    size_t lda = (size_t)g->lda;
    const int32_t *ipart = (const int32_t *)(b->scratch + b->L.ipart);
    int tiles = (b->cols + 15) / 16, steps = seg->len / 4;
    for (int c = 0; c < tiles; c += 2) {
        const int32_t *from = seg->starts ? NULL : ipart + 16 * c;
        const int8_t *wc = w + 64 * c;
        int32_t *out = part + 16 * c;
        bool two = tiles - c >= 2;
        if (mr > 1 && two) qb_lb_amx_tile(a, lda, wc, steps, 2, 2, from, out, b);
        else if (mr > 1) qb_lb_amx_tile(a, lda, wc, steps, 2, 1, from, out, b);
        else if (two) qb_lb_amx_tile(a, lda, wc, steps, 1, 2, from, out, b);
        else qb_lb_amx_tile(a, lda, wc, steps, 1, 1, from, out, b);
    }
}

/* Rows [m, m + 16 mr) of the block (whose span holds all of K). */
static void qb_lb_amx_rows(qb_lowbit_block *b, int m, int mr) {
    const qb_lowbit_weights *W = b->g->W;
    const qb_lowbit_scratch_layout *L = &b->L;
    const int8_t *dec = (const int8_t *)(b->scratch + L->decoded);
    float *fpart = (float *)(b->scratch + L->fpart);
    int32_t *ipart = (int32_t *)(b->scratch + L->ipart), *apart = (int32_t *)(b->scratch + L->apart);
    size_t scale_stride = ((size_t)L->chunk_groups * 64 * sizeof(float) + 63) / 64 * 64 / sizeof(float);
    int rows = mr * QB_LB_AMX_ROWS, tiles = (b->cols + 15) / 16, slot = 0, chunk = 0;
    qb_lb_amx_fold pending = {0};
    qb_lowbit_segment seg[QB_LOWBIT_KC];
    for (int k = 0, at = 0; k < W->K; chunk++) {
        int steps, count = qb_lowbit_chunk(W, k, L->chunk_groups, seg, &steps);
        const float *scales = qb_lowbit_chunk_scales(
            W, b->n, seg, count, (float *)(b->scratch + L->scales) + (size_t)(chunk % 3) * scale_stride);
        for (int s = 0; s < count; s++) {
            int32_t *part = seg[s].ends ? apart + (size_t)slot * QB_LOWBIT_AMX_ROWS * 64 : ipart;
            qb_lb_amx_segment(b, m, mr, &seg[s], dec + (size_t)(at + seg[s].step0) * 256, part);
            /* two earlier groups' fold, in the shadow of these tiles */
            if (pending.n == 2) qb_lb_amx_fold_run(&pending, fpart, rows, tiles);
            if (seg[s].ends) {
                if (!pending.n) pending.first = seg[s].g == 0;
                pending.part[pending.n] = part;
                pending.scale[pending.n++] = scales + s * 64;
                slot = (slot + 1) % 3;
            }
        }
        at += steps;
        k = seg[count - 1].k0 + seg[count - 1].len;
    }
    qb_lb_amx_fold_run(&pending, fpart, rows, tiles);
    qb_lowbit_block_epilogue(b, fpart, m, rows);
}

/* Whether the tiles take these weights: every segment whole 64-k steps
 * (so no tile reads past a group or past K), all of K in one span. */
static bool qb_lb_amx_fits(const qb_lowbit_a8_args *g, const qb_lowbit_scratch_layout *L) {
    const qb_lowbit_weights *W = g->W;
    bool whole = W->K % QB_LB_AMX_K == 0 && (W->group % QB_LB_AMX_K == 0 || W->G == 1);
    return whole && g->M >= QB_LB_AMX_ROWS && W->K / 4 <= L->span_steps;
}

QB_LB_AMX_TARGET void qb_lowbit_gemm_a8_amx(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lowbit_scratch_layout L = g->W->plan;
    if (!qb_lb_amx_fits(g, &L)) {
        qb_lowbit_gemm_a8_vnni(g, n0, n1, scratch);
        return;
    }
    int full = g->M / QB_LB_AMX_ROWS * QB_LB_AMX_ROWS;
    /* the next block's codes spread over this block's tile steps */
    int tile_steps = (full + QB_LOWBIT_AMX_ROWS - 1) / QB_LOWBIT_AMX_ROWS * 2 * (g->W->K / QB_LB_AMX_K);
    qb_i8_amx_configure();
    for (int n = n0; n < n1; n += QB_LOWBIT_N_BLOCK) {
        qb_lowbit_block b;
        qb_lowbit_block_init(&b, g, scratch, n, n1, tile_steps);
        qb_lowbit_block_decode(&b, 0);
        for (int m = 0; m < full; m += QB_LOWBIT_AMX_ROWS)
            qb_lb_amx_rows(&b, m, full - m >= QB_LOWBIT_AMX_ROWS ? 2 : 1);
        if (full < g->M) qb_lowbit_block_rows_vnni(&b, full, g->M - full);
    }
    /* Hand the tile state back so the thread's context switches stay small. */
    _tile_release();
}
