/* Kernel table selection and the multithreaded GEMM driver. */
#include <string.h>

#include "kernels/gemm_blocked.h"
#include "kernels/kernels_h16.h"
#include "kernels/kernels_impl.h"

/* Slices are cut at multiples of these so no thread gets a ragged
 * vector or register tile in the middle of the matrix. */
#define QB_GEMM_SPLIT_N_UNIT 16
#define QB_GEMM_SPLIT_M_UNIT 8

bool qb_kernels_select(qb_isa isa, qb_kernels *k) {
    if ((unsigned)isa >= QB_ISA_COUNT || !qb_isa_supported(isa)) return false;
    *k = (qb_kernels){0}; /* what an ISA does not set stays off */
    switch (isa) {
#if defined(__x86_64__)
    case QB_ISA_AVX2: qb_kernels_init_avx2(k); break;
    case QB_ISA_AVX512: qb_kernels_init_avx512(k); break;
#elif defined(__aarch64__)
    case QB_ISA_NEON:
    case QB_ISA_DOTPROD:
    case QB_ISA_I8MM: qb_kernels_init_neon(isa, k); break;
#endif
    default: qb_kernels_init_scalar(k); break;
    }
    qb_kernels_h16_init(isa, k);
    return true;
}

size_t qb_gemm_f32_pack_floats(void) {
#if defined(__aarch64__)
    return QB_GEMM_PACK_FLOATS(QB_GEMM_NEON_MR, QB_GEMM_NEON_KC, QB_GEMM_NEON_NC);
#else
    size_t avx512 = QB_GEMM_PACK_FLOATS(QB_GEMM_AVX512_MR, QB_GEMM_AVX512_KC, QB_GEMM_AVX512_NC);
    size_t avx2 = QB_GEMM_PACK_FLOATS(QB_GEMM_AVX2_MR, QB_GEMM_AVX2_KC, QB_GEMM_AVX2_NC);
    return avx512 > avx2 ? avx512 : avx2;
#endif
}

size_t qb_gemm_f32_panels_floats(const qb_kernels *k, int N, int K) {
    if (!k->gemm_f32_pack_panels) return 0;
    int nr = k->gemm_f32_panel;
    return (size_t)(N + nr - 1) / nr * nr * (size_t)K;
}

/* [begin, end) of part t of n_parts over len, in whole units. */
static void qb_gemm_split(int len, int unit, int t, int n_parts, int *begin, int *end) {
    long first, last;
    qb_pool_range((len + unit - 1) / unit, t, n_parts, &first, &last);
    *begin = first * unit < len ? (int)first * unit : len;
    *end = last * unit < len ? (int)last * unit : len;
}

/* Part p of n_parts of g, or false if it is empty.  Splitting N gives each
 * part its own columns of B (the weight, whose packing is the costly part)
 * and repeats only the cheap reads of A; M is split only when N is too
 * narrow to go around. */
static bool qb_gemm_slice(const qb_gemm_f32_args *g, int p, int n_parts, qb_gemm_f32_args *part) {
    int begin, end;
    *part = *g;
    if (g->N >= QB_GEMM_SPLIT_N_UNIT * n_parts) {
        qb_gemm_split(g->N, QB_GEMM_SPLIT_N_UNIT, p, n_parts, &begin, &end);
        part->N = end - begin;
        part->B = g->b_trans ? g->B + (size_t)begin * g->ldb : g->B + begin;
        if (g->B_panels) part->B_panels = g->B_panels + (size_t)begin * g->K; /* whole panels: begin % 16 == 0 */
        part->C = g->C + begin;
        if (g->bias) part->bias = g->bias + begin;
        if (g->residual) part->residual = g->residual + begin;
    } else {
        qb_gemm_split(g->M, QB_GEMM_SPLIT_M_UNIT, p, n_parts, &begin, &end);
        part->M = end - begin;
        part->A = g->A + (size_t)begin * g->lda;
        part->C = g->C + (size_t)begin * g->ldc;
        if (g->residual) part->residual = g->residual + (size_t)begin * g->ldr;
    }
    return end > begin;
}

#define QB_GEMM_PARTS_PER_THREAD 4
#define QB_GEMM_PART_MIN_N 96 /* columns of the smallest FP32 / half part */

int qb_gemm_parts(int units, int team) {
    int parts = units < QB_GEMM_PARTS_PER_THREAD * team ? units : QB_GEMM_PARTS_PER_THREAD * team;
    return parts > team ? parts : team;
}

/* Narrow problems split their rows, one part per thread; so do problems
 * a kernel runs swapped (gemm_blocked.h) and too small for a team run,
 * whose every part packs all of A. */
static int qb_gemm_f32_parts(const qb_kernels *k, const qb_gemm_f32_args *g, int team) {
    qb_gemm_f32_args part = *g;
    part.N = g->N / team;
    if (g->N < QB_GEMM_SPLIT_N_UNIT * team || (k->gemm_f32_swaps && qb_gemm_swap_pays(&part))) return team;
    return qb_gemm_parts(g->N / QB_GEMM_PART_MIN_N, team);
}

/* Whether g runs by strips of rows (gemm_f32_part): each thread then packs
 * every block itself, which pays once each has at least this many rows of
 * strips; in return the strips go to whichever thread is free, so a slower
 * core never holds the others at the end (split into fixed parts instead,
 * the faster thread spent ~10% of the time waiting, and this measured
 * 4-11% faster at 128 and 25 rows, 1-9% at 1024). */
#define QB_GEMM_TEAM_MIN_ROWS 256
/* Parts per thread of such a run: a thread that takes two parts of a
 * one-block problem packs it once, but over several K blocks it packs
 * each again. */
#define QB_GEMM_TEAM_PARTS_PER_THREAD 2

static bool qb_gemm_f32_team_pays(const qb_kernels *k, const qb_gemm_f32_args *g, int team) {
    int strip_rows = k->gemm_f32_swaps && qb_gemm_swap_pays(g) ? g->N : g->M;
    return k->gemm_f32_part && strip_rows >= QB_GEMM_TEAM_MIN_ROWS * team;
}

typedef struct {
    const qb_kernels *k;
    const qb_gemm_f32_args *a;
    float *scratch;
    size_t per_thread;
    int parts;
    int packed[QB_POOL_MAX_THREADS]; /* per thread: qb_gemm_blocked_part's block */
} qb_gemm_f32_job;

static void qb_gemm_f32_team_task(void *ctx, int p, int t) {
    qb_gemm_f32_job *j = ctx;
    j->k->gemm_f32_part(j->a, p, j->parts, j->scratch + (size_t)t * j->per_thread, &j->packed[t]);
}

static void qb_gemm_f32_part_task(void *ctx, int p, int t) {
    qb_gemm_f32_job *j = ctx;
    qb_gemm_f32_args part;
    if (qb_gemm_slice(j->a, p, j->parts, &part)) j->k->gemm_f32(&part, j->scratch + (size_t)t * j->per_thread);
}

void qb_gemm_f32(const qb_kernels *k, const qb_gemm_f32_args *a, qb_pool *pool, float *scratch) {
    int team = qb_pool_threads(pool);
    if (team <= 1) {
        k->gemm_f32(a, scratch);
        return;
    }
    qb_gemm_f32_job j = {.k = k, .a = a, .scratch = scratch, .per_thread = qb_gemm_f32_pack_floats()};
    if (qb_gemm_f32_team_pays(k, a, team)) {
        j.parts = QB_GEMM_TEAM_PARTS_PER_THREAD * team;
        memset(j.packed, 0, (size_t)team * sizeof *j.packed);
        qb_pool_run(pool, j.parts, qb_gemm_f32_team_task, &j);
    } else {
        j.parts = qb_gemm_f32_parts(k, a, team);
        qb_pool_run(pool, j.parts, qb_gemm_f32_part_task, &j);
    }
}

/* Part p of n_parts of a half-precision GEMM as columns [n0, n1)
 * of a possibly row-sliced problem; false if it is empty.  Columns go in
 * whole weight panels; rows only for narrow weights (kernels_h16.h). */
static bool qb_gemm_h16_slice(const qb_gemm_h16_args *a, int p, int n_parts, qb_gemm_h16_args *part, int *n0,
                              int *n1) {
    int begin, end;
    *part = *a;
    if (a->W->N >= QB_H16_ROW_SPLIT_N) {
        qb_gemm_split(a->W->N, QB_H16_N_UNIT, p, n_parts, n0, n1);
        return *n1 > *n0;
    }
    qb_gemm_split(a->M, QB_GEMM_SPLIT_M_UNIT, p, n_parts, &begin, &end);
    part->M = end - begin;
    part->A = a->A + (size_t)begin * a->lda;
    part->C = a->C + (size_t)begin * a->ldc;
    if (a->residual) part->residual = a->residual + (size_t)begin * a->ldr;
    *n0 = 0;
    *n1 = a->W->N;
    return end > begin;
}

typedef struct {
    const qb_kernels *k;
    const qb_gemm_h16_args *a;
    float *scratch;
    int parts;
} qb_gemm_h16_job;

static void qb_gemm_h16_task(void *ctx, int p, int t) {
    qb_gemm_h16_job *j = ctx;
    qb_gemm_h16_args part;
    int n0, n1;
    if (qb_gemm_h16_slice(j->a, p, j->parts, &part, &n0, &n1))
        j->k->gemm_h16(&part, n0, n1, j->scratch + (size_t)t * qb_gemm_h16_pack_floats());
}

void qb_gemm_h16(const qb_kernels *k, const qb_gemm_h16_args *a, qb_pool *pool, float *scratch) {
    int team = qb_pool_threads(pool);
    if (team <= 1) {
        k->gemm_h16(a, 0, a->W->N, scratch);
        return;
    }
    qb_gemm_h16_job j = {k, a, scratch, team};
    if (a->W->N >= QB_H16_ROW_SPLIT_N) j.parts = qb_gemm_parts(a->W->N / QB_GEMM_PART_MIN_N, team);
    qb_pool_run(pool, j.parts, qb_gemm_h16_task, &j);
}
