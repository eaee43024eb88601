/* The blocked GEMM loop nest (see gemm_blocked.h for the layout). */
#include <limits.h>
#include <string.h>

#include "kernels/gemm_blocked.h"

static int qb_gemm_min(int a, int b) { return a < b ? a : b; }

/* Splits len into the fewest blocks of at most max, all the same size
 * rounded up to a multiple of unit (max is a multiple of unit), so a K of
 * 769 becomes 392 + 377 rather than 384 + 384 + 1. */
static int qb_gemm_block_step(int len, int max, int unit) {
    int blocks = (len + max - 1) / max;
    int step = (len + blocks - 1) / blocks;
    return (step + unit - 1) / unit * unit;
}

/* Copies a ragged last strip of A into a full one: missing rows are zeroed
 * so the micro-kernel can always compute a whole tile.  Full strips are
 * read in place: the strip is re-read for every N block, and copying it
 * each time was ~5% of the GEMM's samples (perf, 1 thread); MR = 8 rows of
 * any lda still fit the 12 ways of one L1 set. */
static void qb_gemm_pack_a(const float *a, int lda, int rows, int kc, int mr, int stride, float *pa) {
    for (int i = 0; i < rows; i++) memcpy(pa + (size_t)i * stride, a + (size_t)i * lda, (size_t)kc * sizeof(float));
    for (int i = rows; i < mr; i++) memset(pa + (size_t)i * stride, 0, (size_t)kc * sizeof(float));
}

/* One MR-row strip of the problem as computed, r (the swapped one if
 * swap), across the block's panels; g, the caller's, says where results go. */
typedef struct {
    int m0, n0, nc, k0, kc;
    const float *a, *pb;
    size_t lda;
    size_t panel; /* floats from one panel of pb to the next */
    bool swap;
    const float *next; /* strip to prefetch during the first panel, or NULL */
} qb_gemm_strip;

static void qb_gemm_run_strip(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, const qb_gemm_f32_args *r,
                              const qb_gemm_strip *s) {
    bool finish = s->k0 + s->kc == g->K;
    qb_gemm_tile t = {
        .ldc = g->ldc,
        .rows = qb_gemm_min(uk->mr, r->M - s->m0),
        .alpha = g->alpha,
        .accumulate = s->k0 > 0,
        .finish = finish,
        .trans = s->swap,
        .ldr = g->ldr,
        .act = g->act,
    };
    for (int j = 0; j < s->nc; j += uk->nr) {
        int n = s->n0 + j;
        /* (row, col) of the tile's first entry in the caller's C */
        int ci = s->swap ? n : s->m0, cj = s->swap ? s->m0 : n;
        t.c = g->C + (size_t)ci * g->ldc + cj;
        t.cols = qb_gemm_min(uk->nr, s->n0 + s->nc - n);
        t.bias = finish && g->bias ? g->bias + cj : NULL;
        t.residual = finish && g->residual ? g->residual + (size_t)ci * g->ldr + cj : NULL;
        t.next = j == 0 ? s->next : NULL;
        uk->micro(s->kc, s->a, s->lda, s->pb + (size_t)(j / uk->nr) * s->panel, &t);
    }
}

/* g with the operands swapped: C^T = B . A^T, B read as the row operand
 * and A, whose rows are K-contiguous just as a b_trans weight's, packed. */
static qb_gemm_f32_args qb_gemm_swapped(const qb_gemm_f32_args *g) {
    qb_gemm_f32_args r = *g;
    r.M = g->N, r.N = g->M;
    r.A = g->B, r.lda = g->ldb;
    r.B = g->A, r.ldb = g->lda;
    return r;
}

/* Strip m0 of block s: full strips are read in place, and so is a ragged
 * last one where the kernel computes exact rows; else it is copied into
 * pa first. */
static void qb_gemm_strip_at(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, const qb_gemm_f32_args *r,
                             qb_gemm_strip s, int m0, float *pa) {
    int rows = qb_gemm_min(uk->mr, r->M - m0);
    s.m0 = m0;
    s.a = r->A + (size_t)m0 * r->lda + s.k0;
    s.lda = (size_t)r->lda;
    /* Swapped strips are weight rows, met once, from L3 or DRAM. */
    s.next = s.swap && r->M - m0 >= 2 * uk->mr ? s.a + (size_t)uk->mr * r->lda : NULL;
    if (rows < uk->mr && !uk->exact_rows) {
        qb_gemm_pack_a(s.a, r->lda, rows, s.kc, uk->mr, uk->kc, pa);
        s.a = pa;
        s.lda = (size_t)uk->kc;
    }
    qb_gemm_run_strip(uk, g, r, &s);
}

/* The panels of block (n0, k0) of r, nc x kc: read in place from
 * B_panels (*panel: K rows apart), or packed into pb unless *packed says
 * pb holds them from an earlier part of the call (see qb_gemm_blocked_nest). */
static const float *qb_gemm_block_b(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *r, const float *panels,
                                    int n0, int nc, int k0, int kc, float *pb, int block, int *packed,
                                    size_t *panel) {
    if (panels) {
        *panel = (size_t)r->K * uk->nr;
        return panels + (size_t)n0 * r->K + (size_t)k0 * uk->nr;
    }
    *panel = (size_t)kc * uk->nr;
    if (!packed || *packed != block) {
        for (int j = 0; j < nc; j += uk->nr)
            uk->pack_b(r, n0 + j, qb_gemm_min(uk->nr, nc - j), k0, kc, pb + (size_t)j * kc);
        if (packed) *packed = block;
    }
    return pb;
}

/* Strips [s0, s1) of every block of g, block after block.  packed (or
 * NULL): the number, from 1 in loop order, of the block the pack holds
 * from an earlier part of the same call (0: none); kept up to date. */
static void qb_gemm_blocked_nest(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int s0, int s1, float *pack,
                                 int *packed) {
    bool swap = uk->trans && qb_gemm_swap_pays(g);
    qb_gemm_f32_args r = swap ? qb_gemm_swapped(g) : *g;
    /* B stays valid without panels; a ragged strip copied into pa holds
     * only kc columns, so deeper panel blocks need exact_rows */
    bool deep = uk->panel_kc > uk->kc && !uk->exact_rows;
    const float *panels = swap || !uk->panel_kc || deep ? NULL : g->B_panels;
    float *pb = pack;
    float *pa = pack + QB_GEMM_ROUND16((size_t)uk->kc * uk->nc);
    int n_step = qb_gemm_block_step(r.N, panels ? uk->panel_nc : uk->nc, uk->nr);
    int k_step = qb_gemm_block_step(r.K, panels ? uk->panel_kc : uk->kc, 8);
    int m_end = qb_gemm_min(r.M, s1 * uk->mr), block = 0;
    for (int n0 = 0; n0 < r.N; n0 += n_step) {
        int nc = qb_gemm_min(n_step, r.N - n0);
        for (int k0 = 0; k0 < r.K; k0 += k_step) {
            int kc = qb_gemm_min(k_step, r.K - k0);
            qb_gemm_strip s = {.n0 = n0, .nc = nc, .k0 = k0, .kc = kc, .swap = swap};
            s.pb = qb_gemm_block_b(uk, &r, panels, n0, nc, k0, kc, pb, ++block, packed, &s.panel);
            for (int m0 = s0 * uk->mr; m0 < m_end; m0 += uk->mr) qb_gemm_strip_at(uk, g, &r, s, m0, pa);
        }
    }
}

void qb_gemm_blocked_run(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, float *pack) {
    qb_gemm_blocked_nest(uk, g, 0, INT_MAX / uk->mr, pack, NULL);
}

void qb_gemm_blocked_part(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int part, int n_parts, float *pack,
                          int *packed) {
    int rows = uk->trans && qb_gemm_swap_pays(g) ? g->N : g->M;
    long strips = (rows + uk->mr - 1) / uk->mr, s0, s1;
    qb_pool_range(strips, part, n_parts, &s0, &s1);
    if (s1 > s0) qb_gemm_blocked_nest(uk, g, (int)s0, (int)s1, pack, packed);
}

void qb_gemm_blocked_pack_panels(const qb_gemm_ukernel *uk, const float *w, int N, int K, float *panels) {
    qb_gemm_f32_args g = {.N = N, .K = K, .B = w, .ldb = K, .b_trans = true};
    for (int n0 = 0; n0 < N; n0 += uk->nr)
        uk->pack_b(&g, n0, qb_gemm_min(uk->nr, N - n0), 0, K, panels + (size_t)n0 * K);
}
