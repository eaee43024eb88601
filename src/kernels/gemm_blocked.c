/* The blocked GEMM loop nest (see gemm_blocked.h for the layout). */
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

static void qb_gemm_run_strip(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, int m0, int n0, int nc, int k0,
                              int kc, const float *pa, size_t lda, const float *pb) {
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
        uk->micro(kc, pa, lda, pb + (size_t)j * kc, &t);
    }
}

void qb_gemm_blocked_run(const qb_gemm_ukernel *uk, const qb_gemm_f32_args *g, float *pack) {
    float *pb = pack;
    float *pa = pack + QB_GEMM_ROUND16((size_t)uk->kc * uk->nc);
    int n_step = qb_gemm_block_step(g->N, uk->nc, uk->nr);
    int k_step = qb_gemm_block_step(g->K, uk->kc, 8);
    for (int n0 = 0; n0 < g->N; n0 += n_step) {
        int nc = qb_gemm_min(n_step, g->N - n0);
        for (int k0 = 0; k0 < g->K; k0 += k_step) {
            int kc = qb_gemm_min(k_step, g->K - k0);
            for (int j = 0; j < nc; j += uk->nr)
                uk->pack_b(g, n0 + j, qb_gemm_min(uk->nr, nc - j), k0, kc, pb + (size_t)j * kc);
            for (int m0 = 0; m0 < g->M; m0 += uk->mr) {
                const float *a = g->A + (size_t)m0 * g->lda + k0;
                int rows = qb_gemm_min(uk->mr, g->M - m0);
                if (rows == uk->mr) {
                    qb_gemm_run_strip(uk, g, m0, n0, nc, k0, kc, a, (size_t)g->lda, pb);
                } else {
                    qb_gemm_pack_a(a, g->lda, rows, kc, uk->mr, uk->kc, pa);
                    qb_gemm_run_strip(uk, g, m0, n0, nc, k0, kc, pa, (size_t)uk->kc, pb);
                }
            }
        }
    }
}
