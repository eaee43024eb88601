/* The W.A8 low-bit GEMM with ARMv8.2 dot products (the dotprod and i8mm
 * levels): lowbit_neon.c's runs through the int8 kernel's 4 x 16 sdot
 * tile, whose shift of A by 128 the fold adds back from each column's
 * decoded sum. */
#include "kernels/kernels_lowbit.h"
#include "kernels/sdot_tile_dotprod.h"

_Static_assert(QB_SDOT_MR == QB_LOWBIT_RUN_MR && QB_SDOT_NR == QB_LOWBIT_RUN_NR, "run tiles are 4 x 16");

static void qb_lb_tile_sdot(const uint8_t *const a[QB_LOWBIT_RUN_MR], int len, const int8_t *w, bool first,
                            int32_t *isum) {
    qb_sdot_tile(a, len, w, QB_LOWBIT_RUN_NR * 4, !first, isum);
}

static void qb_lowbit_gemm_a8_dotprod(const qb_lowbit_a8_args *g, int n0, int n1, void *scratch) {
    qb_lowbit_gemm_a8_runs(g, n0, n1, scratch, qb_lb_tile_sdot, 128);
}

void qb_kernels_lowbit_init_dotprod(qb_isa isa, qb_kernels_lowbit *k) {
    *k = (qb_kernels_lowbit){.isa = isa, .gemm_a8 = qb_lowbit_gemm_a8_dotprod, .dequantize = qb_lowbit_dequantize};
}
