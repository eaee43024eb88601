/* The blocked GEMM loop nest (see gemm_blocked.h for the layout). */
#include <string.h>

#include "kernels/gemm_blocked.h"

#ifndef QB_GEMM_DIRECT_A
#define QB_GEMM_DIRECT_A 0
#endif

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
 * read in place: MR rows of any lda share at most MR ways of a 12-way L1
 * set, and the copy cost ~7% of the GEMM (A is repacked per N block). */
static void qb_gemm_pack_a(const float *a, int lda, int rows, int kc, int mr, int stride, float *pa) {
    for (int i = 0; i < rows; i++) memcpy(pa + (size_t)i * stride, a + (size_t)i * lda, (size_t)kc * sizeof(float));
    for (int i = rows; i < mr; i++) memset(pa + (size_t)i * stride, 0, (size_t)kc * sizeof(float));
}

/* The source lines of the next B block, fetched into L2 a few at a time
 * while the current block computes: at M = 128 the weights stream from
 * DRAM once per GEMM, and packing them on demand would stall on every
 * miss.  Rows are runs of `len` floats, `ld` apart. */
typedef struct {
    const float *base;
    size_t ld;
    int rows, lines_per_row;
    int next, total; /* lines issued so far, lines in the block */
    int per_call;    /* lines to issue before each micro-kernel call */
} qb_gemm_prefetch;

static void qb_gemm_prefetch_plan(const qb_gemm_f32_args *g, int n0, int nc, int k0, int kc, int calls,
                                  qb_gemm_prefetch *p) {
    int rows = g->b_trans ? nc : kc, len = g->b_trans ? kc : nc;
    *p = (qb_gemm_prefetch){
        .base = g->b_trans ? g->B + (size_t)n0 * g->ldb + k0 : g->B + (size_t)k0 * g->ldb + n0,
        .ld = (size_t)g->ldb,
        .rows = rows,
        .lines_per_row = (len + 15) / 16,
    };
    p->total = rows * p->lines_per_row;
    p->per_call = (p->total + calls - 1) / calls;
}

static void qb_gemm_prefetch_some(qb_gemm_prefetch *p) {
    int end = qb_gemm_min(p->next + p->per_call, p->total);
    for (; p->next < end; p->next++) {
        int row = p->next / p->lines_per_row, line = p->next % p->lines_per_row;
        __builtin_prefetch(p->base + (size_t)row * p->ld + 16 * line, 0, 2);
    }
}

static void qb_gemm_run_strip(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int m0, int n0, int nc, int k0,
                              int kc, const float *pa, size_t lda, const float *pb, qb_gemm_prefetch *next_b) {
    bool finish = k0 + kc == g->K;
    qb_gemm_tile t = {
        .ldc = g->ldc,
        .rows = qb_gemm_min(uk->mr, g->M - m0),
        .alpha = g->alpha,
        .accumulate = k0 > 0,
        .finish = finish,
        .ldr = g->ldr,
        .act = g->act,
    };
    for (int j = 0; j < nc; j += uk->nr) {
        int n = n0 + j;
        t.c = g->C + (size_t)m0 * g->ldc + n;
        t.cols = qb_gemm_min(uk->nr, n0 + nc - n);
        t.bias = finish && g->bias ? g->bias + n : NULL;
        t.residual = finish && g->residual ? g->residual + (size_t)m0 * g->ldr + n : NULL;
        qb_gemm_prefetch_some(next_b);
        uk->micro(kc, pa, lda, pb + (size_t)j * kc, &t);
    }
}

/* One packed kc x nc block of B times all of A's rows. */
static void qb_gemm_run_block(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int n0, int nc, int k0, int kc,
                              float *pack, qb_gemm_prefetch *next_b) {
    float *pb = pack;
    float *pa = pack + QB_GEMM_ROUND16((size_t)uk->kc * uk->nc);
    for (int j = 0; j < nc; j += uk->nr)
        uk->pack_b(g, n0 + j, qb_gemm_min(uk->nr, nc - j), k0, kc, pb + (size_t)j * kc);
    for (int m0 = 0; m0 < g->M; m0 += uk->mr) {
        const float *a = g->A + (size_t)m0 * g->lda + k0;
        int rows = qb_gemm_min(uk->mr, g->M - m0);
        if (QB_GEMM_DIRECT_A && rows == uk->mr) {
            qb_gemm_run_strip(uk, g, m0, n0, nc, k0, kc, a, (size_t)g->lda, pb, next_b);
        } else {
            qb_gemm_pack_a(a, g->lda, rows, kc, uk->mr, uk->kc, pa);
            qb_gemm_run_strip(uk, g, m0, n0, nc, k0, kc, pa, (size_t)uk->kc, pb, next_b);
        }
    }
}

void qb_gemm_blocked_run(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, float *pack) {
    int n_step = qb_gemm_block_step(g->N, uk->nc, uk->nr);
    int k_step = qb_gemm_block_step(g->K, uk->kc, 8);
    int strips = (g->M + uk->mr - 1) / uk->mr, panels = (n_step + uk->nr - 1) / uk->nr;
    for (int n0 = 0; n0 < g->N; n0 += n_step) {
        int nc = qb_gemm_min(n_step, g->N - n0);
        for (int k0 = 0; k0 < g->K; k0 += k_step) {
            int kc = qb_gemm_min(k_step, g->K - k0);
            /* The block after this one: next K block, else the next N block. */
            int nk0 = k0 + k_step < g->K ? k0 + k_step : 0, nn0 = nk0 ? n0 : n0 + n_step;
            qb_gemm_prefetch next_b = {0};
            if (nn0 < g->N)
                qb_gemm_prefetch_plan(g, nn0, qb_gemm_min(n_step, g->N - nn0), nk0, qb_gemm_min(k_step, g->K - nk0),
                                      strips * panels, &next_b);
            qb_gemm_run_block(uk, g, n0, nc, k0, kc, pack, &next_b);
        }
    }
}
