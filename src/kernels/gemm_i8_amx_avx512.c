/* The AMX path of the AVX-512 integer GEMM.  Sapphire Rapids' tile unit
 * (tdpbusd: 16 x 16 int32 += 16 x 64 u8 . 64 x 16 s8) does several times
 * the multiply-adds of vpdpbusd per cycle, and it reads the AVX-512 packed
 * weights as they are: a B tile is 16 groups of 4 k (rows, 4 * width bytes
 * apart) by 16 columns (64 bytes), exactly one zmm row of that layout.  So
 * the weights, the integer sums and the epilogue are shared with the VNNI
 * path, and only the inner product changes.
 *
 * Four C tiles hold a 32-row x 32-column block while two A and two B tiles
 * stream K in steps of 64.  Row tails (< 16 rows) and K not a multiple of
 * 64 (the tile shapes are fixed per configuration) go to the VNNI kernel. */
#include <cpuid.h>
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/gemm_i8_impl.h"

#define QB_AMX_TARGET __attribute__((target("amx-tile,amx-int8")))
#define QB_AMX_ROWS 16
#define QB_AMX_K 64           /* bytes of k per A tile row */
#define QB_AMX_A_L2_BYTES (512 * 1024)
#define QB_AMX_MC 256         /* rows per chunk when A does not stay in L2 */

/* Linux keeps the 8 KiB tile state out of every thread's signal frame
 * until the process asks for it (arch_prctl ARCH_REQ_XCOMP_PERM). */
#define QB_ARCH_REQ_XCOMP_PERM 0x1023
#define QB_XFEATURE_XTILEDATA 18

/* The 64-byte tile configuration of palette 1. */
typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} qb_amx_config;

#ifdef QB_AMX_EMULATED
bool qb_i8_amx_enable(void) { return true; } /* tests/amx_emu.h: tiles in memory, on any AVX-512 CPU */
#else
static bool qb_i8_amx_cpu(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const unsigned amx_tile = 1u << 24, amx_int8 = 1u << 25;
    return (d & amx_tile) && (d & amx_int8);
}

bool qb_i8_amx_enable(void) {
    if (!qb_i8_amx_cpu()) return false;
    /* Asking twice is harmless; the answer also covers threads started later. */
    return syscall(SYS_arch_prctl, QB_ARCH_REQ_XCOMP_PERM, QB_XFEATURE_XTILEDATA) == 0;
}
#endif

/* Every tile 16 rows x 64 bytes: A rows of 64 k, B rows of 16 columns x
 * 4 k, C rows of 16 int32. */
QB_AMX_TARGET void qb_i8_amx_configure(void) {
    qb_amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = QB_AMX_ROWS;
    }
    /* GCC does not see ldtilecfg read the fields and drops their stores */
    __asm__ __volatile__("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

/* Lines fetched a few per K step while a tile computes, from two
 * streams:
 * - the next weight block, into L2: tile loads read 16 rows 256 bytes
 *   apart, a pattern the hardware prefetchers follow poorly, and at AMX
 *   speed a cold block from memory would otherwise stall every step;
 * - the C (and residual) lines of the current 32 rows, into L1, which
 *   their epilogue writes during the next group's tiles.  Asked for all at
 *   once, 128 misses queued on the line fill buffers and stalled the core;
 *   spread over the K loop they arrive in its shadow (interleaved in one
 *   process, bert-base shapes: 4-7% faster GEMMs). */
typedef struct {
    const char *row;
    size_t stride;
    int lines, rows; /* rows of `lines` 64-byte lines, `stride` bytes apart */
    int line;        /* next line of the current row */
    int per_step;
} qb_i8_amx_stream;

typedef struct {
    qb_i8_amx_stream weights, out, residual;
} qb_i8_amx_prefetch;

/* The epilogue of the previous 32-row group, run a few output vectors per
 * K step of the next one: tile instructions are few and long, so the
 * core's vector ports sit idle while tdpbusd runs, and the dequantization
 * (GELU included) fits in that shadow instead of following the tiles. */
typedef struct {
    const qb_gemm_i8_args *g;
    const int32_t *part;
    int m0, rows, n, cols;
    int next, total, per_step; /* vectors: next to do, all, per K step */
} qb_i8_amx_pending;

static inline void qb_i8_amx_pending_step(qb_i8_amx_pending *ep, int count) {
    if (count > ep->total - ep->next) count = ep->total - ep->next;
    if (count <= 0) return;
    qb_i8_epilogue_range_avx512(ep->g, ep->part, ep->m0, ep->rows, ep->n, ep->cols, ep->next, count);
    ep->next += count;
}

static inline void qb_i8_amx_stream_step(qb_i8_amx_stream *st, int hint) {
    for (int i = 0; i < st->per_step && st->rows > 0; i++) {
        const char *p = st->row + (size_t)st->line * 64;
        if (hint == _MM_HINT_T1) _mm_prefetch(p, _MM_HINT_T1);
        else _mm_prefetch(p, _MM_HINT_T0);
        if (++st->line == st->lines) {
            st->line = 0;
            st->row += st->stride;
            st->rows--;
        }
    }
}

static inline void qb_i8_amx_prefetch_step(qb_i8_amx_prefetch *pf) {
    qb_i8_amx_stream_step(&pf->weights, _MM_HINT_T1);
    qb_i8_amx_stream_step(&pf->out, _MM_HINT_T0);
    qb_i8_amx_stream_step(&pf->residual, _MM_HINT_T0);
}

/* A stream over `rows` rows of `cols` floats from p, ld floats apart,
 * spread over `steps` K steps. */
static qb_i8_amx_stream qb_i8_amx_rows_stream(const float *p, size_t ld, int rows, int cols, int steps) {
    uintptr_t begin = (uintptr_t)p / 64 * 64, end = (uintptr_t)(p + cols);
    qb_i8_amx_stream st = {
        .row = (const char *)begin,
        .stride = ld * sizeof(float),
        .lines = (int)((end - begin + 63) / 64),
        .rows = rows,
    };
    st.per_step = (rows * st.lines + steps - 1) / steps;
    return st;
}

/* Tiles: C 0..3 (row tile i, column tile j -> 2 i + j), A 4..5, B 6..7.
 * mr and nc (1 or 2 row / column tiles) are constants per call site. */
QB_AMX_TARGET static inline __attribute__((always_inline)) void
qb_i8_amx_tile(const uint8_t *a, size_t lda, const int8_t *w, size_t w_step, int K, int mr, int nc, int32_t *part,
               qb_i8_amx_prefetch *pf, qb_i8_amx_pending *ep) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k = 0; k < K; k += QB_AMX_K, w += (size_t)QB_AMX_K / 4 * w_step) {
        _tile_loadd(4, a + k, lda);
        if (mr > 1) _tile_loadd(5, a + QB_AMX_ROWS * lda + k, lda);
        _tile_loadd(6, w, w_step);
        if (nc > 1) _tile_loadd(7, w + 64, w_step);
        _tile_dpbusd(0, 4, 6);
        if (nc > 1) _tile_dpbusd(1, 4, 7);
        if (mr > 1) _tile_dpbusd(2, 5, 6);
        if (mr > 1 && nc > 1) _tile_dpbusd(3, 5, 7);
        qb_i8_amx_prefetch_step(pf);
        qb_i8_amx_pending_step(ep, ep->per_step);
    }
    const size_t ldp = QB_I8_N_BLOCK * sizeof(int32_t);
    _tile_stored(0, part, ldp);
    if (nc > 1) _tile_stored(1, part + 16, ldp);
    if (mr > 1) _tile_stored(2, part + QB_AMX_ROWS * QB_I8_N_BLOCK, ldp);
    if (mr > 1 && nc > 1) _tile_stored(3, part + QB_AMX_ROWS * QB_I8_N_BLOCK + 16, ldp);
}

/* Rows [m, m + 16 * mr) of one weight block (width columns, a multiple of
 * 16) into part, 64 int32 per row. */
QB_AMX_TARGET static void qb_i8_amx_rows(const qb_gemm_i8_args *g, int m, int mr, int n, int width, int32_t *part,
                                         qb_i8_amx_prefetch *pf, qb_i8_amx_pending *ep) {
    int K4 = g->K / 4;
    const int8_t *block = (const int8_t *)g->W->packed + (size_t)n * K4 * 4;
    const uint8_t *a = g->A + (size_t)m * g->lda;
    size_t lda = (size_t)g->lda, w_step = (size_t)width * 4;
    for (int j = 0; j < width; j += 32) {
        bool two = width - j >= 32;
        const int8_t *w = block + (size_t)j * 4;
        if (mr > 1 && two) qb_i8_amx_tile(a, lda, w, w_step, g->K, 2, 2, part + j, pf, ep);
        else if (mr > 1) qb_i8_amx_tile(a, lda, w, w_step, g->K, 2, 1, part + j, pf, ep);
        else if (two) qb_i8_amx_tile(a, lda, w, w_step, g->K, 1, 2, part + j, pf, ep);
        else qb_i8_amx_tile(a, lda, w, w_step, g->K, 1, 1, part + j, pf, ep);
    }
}

#define QB_AMX_PART_INTS (2 * QB_AMX_ROWS * QB_I8_N_BLOCK) /* one 32-row group's sums */

/* One weight block against rows [m0, m1), m1 - m0 a multiple of 16,
 * prefetching block n_next (none if n_next >= n1).  Each 32-row group's
 * sums go to one half of part (2 groups' worth) while the epilogue of the
 * group before, from the other half, runs in the tile loop's shadow; it
 * may come from the previous block, and the last group's is left in *ep. */
static void qb_i8_amx_block(const qb_gemm_i8_args *g, int m0, int m1, int n, int n_next, int n1, int32_t *part,
                            int *half, qb_i8_amx_pending *ep) {
    int Npad = qb_i8_round_up(g->N, 16);
    int width = Npad - n < QB_I8_N_BLOCK ? Npad - n : QB_I8_N_BLOCK;
    int cols = g->N - n < QB_I8_N_BLOCK ? g->N - n : QB_I8_N_BLOCK;
    int steps_per_rows = (width + 31) / 32 * (g->K / QB_AMX_K); /* K steps of one 32-row group */
    qb_i8_amx_prefetch pf = {0};
    if (n_next < n1) {
        int next_width = Npad - n_next < QB_I8_N_BLOCK ? Npad - n_next : QB_I8_N_BLOCK;
        size_t bytes = (size_t)next_width * g->K;
        int steps = (m1 - m0 + 2 * QB_AMX_ROWS - 1) / (2 * QB_AMX_ROWS) * steps_per_rows;
        pf.weights = (qb_i8_amx_stream){
            .row = (const char *)g->W->packed + (size_t)n_next * g->K,
            .lines = (int)(bytes / 64),
            .rows = 1,
            .per_step = (int)((bytes / 64 + (size_t)steps - 1) / (size_t)steps),
        };
    }
    for (int m = m0; m < m1; m += 2 * QB_AMX_ROWS) {
        int mr = m1 - m >= 2 * QB_AMX_ROWS ? 2 : 1;
        int32_t *sums = part + *half * QB_AMX_PART_INTS;
        /* this group's output lines, for its epilogue during the next one */
        pf.out = qb_i8_amx_rows_stream(g->C + (size_t)m * g->ldc + n, (size_t)g->ldc, mr * QB_AMX_ROWS, cols,
                                       steps_per_rows);
        pf.residual = g->residual ? qb_i8_amx_rows_stream(g->residual + (size_t)m * g->ldr + n, (size_t)g->ldr,
                                                          mr * QB_AMX_ROWS, cols, steps_per_rows)
                                  : (qb_i8_amx_stream){0};
        ep->per_step = (ep->total - ep->next + steps_per_rows - 1) / steps_per_rows;
        qb_i8_amx_rows(g, m, mr, n, width, sums, &pf, ep);
        qb_i8_amx_pending_step(ep, ep->total - ep->next);
        int rows = mr * QB_AMX_ROWS, total = rows * ((cols + 15) / 16);
        *ep = (qb_i8_amx_pending){.g = g, .part = sums, .m0 = m, .rows = rows, .n = n, .cols = cols, .total = total};
        *half ^= 1;
    }
}

QB_AMX_TARGET void qb_gemm_i8_amx(const qb_gemm_i8_args *g, int n0, int n1) {
    int full = g->M / QB_AMX_ROWS * QB_AMX_ROWS;
    if (g->K % QB_AMX_K || full == 0) {
        qb_gemm_i8_vnni(g, n0, n1);
        return;
    }
    _Alignas(64) int32_t part[2 * QB_AMX_PART_INTS];
    qb_i8_amx_pending ep = {0};
    int half = 0;
    qb_i8_amx_configure();
    /* As in the VNNI path: activations that stay in L2 are re-read per
     * weight block so each block comes from memory once; larger ones are
     * walked a row chunk at a time against all the weights. */
    if ((size_t)full * g->K <= QB_AMX_A_L2_BYTES) {
        for (int n = n0; n < n1; n += QB_I8_N_BLOCK)
            qb_i8_amx_block(g, 0, full, n, n + QB_I8_N_BLOCK, n1, part, &half, &ep);
    } else {
        for (int m0 = 0; m0 < full; m0 += QB_AMX_MC) {
            int m1 = full - m0 < QB_AMX_MC ? full : m0 + QB_AMX_MC;
            for (int n = n0; n < n1; n += QB_I8_N_BLOCK) {
                /* the last block of a chunk prefetches the first one again */
                int next = n + QB_I8_N_BLOCK < n1 ? n + QB_I8_N_BLOCK : n0;
                qb_i8_amx_block(g, m0, m1, n, next, n1, part, &half, &ep);
            }
        }
    }
    qb_i8_amx_pending_step(&ep, ep.total - ep.next);
    /* Hand the tile state back so the thread's context switches stay small. */
    _tile_release();
    if (full == g->M) return;
    qb_gemm_i8_args tail = *g;
    tail.M = g->M - full;
    tail.A = g->A + (size_t)full * g->lda;
    tail.a_scale = g->a_scale + full;
    tail.a_zero = g->a_zero + full;
    tail.C = g->C + (size_t)full * g->ldc;
    if (g->residual) tail.residual = g->residual + (size_t)full * g->ldr;
    qb_gemm_i8_vnni(&tail, n0, n1);
}
