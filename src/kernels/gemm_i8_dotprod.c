/* ARMv8.2 dot-product integer GEMM: the 4-row x 16-column sdot tile of
 * sdot_tile_dotprod.h, whose shift of A by 128 the epilogue adds back as
 * 128 * colsum, exactly.  The weights use the AVX-512 layout, whose 16
 * columns x 4 k are 64 contiguous bytes. */
#include "kernels/gemm_i8_impl.h"
#include "kernels/sdot_tile_dotprod.h"

static void qb_gemm_i8_dotprod(const qb_gemm_i8_args *g, int n0, int n1) {
    int K4 = qb_i8_round_up(g->K, 4) / 4, Npad = qb_i8_round_up(g->N, 16);
    int32_t part[QB_SDOT_MR * QB_SDOT_NR];
    for (int n = n0; n < n1; n += QB_SDOT_NR) {
        int first = n / QB_I8_N_BLOCK * QB_I8_N_BLOCK;
        int width = Npad - first < QB_I8_N_BLOCK ? Npad - first : QB_I8_N_BLOCK;
        const int8_t *w = (const int8_t *)g->W->packed + (size_t)first * K4 * 4 + (size_t)(n - first) * 4;
        int cols = n1 - n < QB_SDOT_NR ? n1 - n : QB_SDOT_NR;
        for (int m0 = 0; m0 < g->M; m0 += QB_SDOT_MR) {
            int rows = g->M - m0 < QB_SDOT_MR ? g->M - m0 : QB_SDOT_MR;
            const uint8_t *a[QB_SDOT_MR];
            for (int i = 0; i < QB_SDOT_MR; i++) a[i] = g->A + (size_t)(m0 + (i < rows ? i : 0)) * g->lda;
            qb_sdot_tile(a, g->K, w, (size_t)width * 4, false, part);
            qb_i8_epilogue_neon(g, part, QB_SDOT_NR, m0, rows, n, cols, 128);
        }
    }
}

void qb_kernels_i8_init_dotprod(qb_kernels_i8 *k) {
    k->isa = QB_ISA_DOTPROD;
    k->name = "dotprod";
    k->amx = false;
    k->gemm = qb_gemm_i8_dotprod;
    k->quantize_rows = qb_quantize_rows_neon;
    k->quantize_rows_fixed = qb_quantize_rows_fixed_neon;
}
