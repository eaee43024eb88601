/* Peak loops and quantiles for the GEMM benchmarks (see measure.h).
 *
 * The integer loops are written in asm so the instructions timed are
 * exactly the ones counted: from C, GCC merged accumulators that started
 * equal (one vpdpbusd per iteration, counted as 16) and padded the loop
 * with register copies that compete for the same ports.  12 accumulators
 * cover the latency (4 for FMA, 5 for vpdpbusd) times the issue rate (2)
 * and stay under asm's 30 operands. */
#include "measure.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PEAK_CHAINS 12
#define PEAK_FOR12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f,fma"), noinline, noipa)) static float peak_fma_avx512(long iters) {
    __m512 acc[PEAK_CHAINS], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    for (int j = 1; j < PEAK_CHAINS; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"), noinline, noipa)) static float peak_fma_avx2(long iters) {
    __m256 acc[PEAK_CHAINS], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    float out[8];
    for (int j = 1; j < PEAK_CHAINS; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    _mm256_storeu_ps(out, acc[0]);
    return out[0];
}

#define PEAK_ACC_INIT(i) c##i = _mm512_set1_epi32(i);
#define PEAK_VNNI_ASM(i) "vpdpbusd %[b], %[a], %[c" #i "]\n\t"
#define PEAK_ACC_OPERAND(i) [c##i] "+v"(c##i),
#define PEAK_ACC_SUM(i) sum = _mm512_add_epi32(sum, c##i);
__attribute__((target("avx512f,avx512vnni"), noinline, noipa)) static int peak_vnni(long iters) {
    __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1), sum = _mm512_setzero_si512();
    __m512i c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    PEAK_FOR12(PEAK_ACC_INIT)
    for (long it = 0; it < iters; it++)
        __asm__ volatile(PEAK_FOR12(PEAK_VNNI_ASM) : PEAK_FOR12(PEAK_ACC_OPERAND)[a] "+v"(a) : [b] "v"(b));
    PEAK_FOR12(PEAK_ACC_SUM)
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(sum));
}

/* The AVX2 scheme's unit: vpmaddwd (16 multiply-adds) plus its vpaddd,
 * twelve of them per iteration into 12 accumulators through 2 temporaries
 * (16 ymm registers in all). */
#define PEAK_ACC256_INIT(i) c##i = _mm256_set1_epi32(i);
#define PEAK_ACC256_OPERAND(i) [c##i] "+x"(c##i),
#define PEAK_ACC256_SUM(i) sum = _mm256_add_epi32(sum, c##i);
#define PEAK_MADD_ASM(i, t)                      \
    "vpmaddwd %[b], %[a], %[" #t "]\n\t"         \
    "vpaddd %[" #t "], %[c" #i "], %[c" #i "]\n\t"
__attribute__((target("avx2"), noinline, noipa)) static int peak_madd(long iters) {
    __m256i a = _mm256_set1_epi16(1), b = _mm256_set1_epi16(1), sum = _mm256_setzero_si256(), t0, t1;
    __m256i c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    PEAK_FOR12(PEAK_ACC256_INIT)
    for (long it = 0; it < iters; it++)
        __asm__ volatile(PEAK_MADD_ASM(0, t0) PEAK_MADD_ASM(1, t1) PEAK_MADD_ASM(2, t0) PEAK_MADD_ASM(3, t1)
                         PEAK_MADD_ASM(4, t0) PEAK_MADD_ASM(5, t1) PEAK_MADD_ASM(6, t0) PEAK_MADD_ASM(7, t1)
                         PEAK_MADD_ASM(8, t0) PEAK_MADD_ASM(9, t1) PEAK_MADD_ASM(10, t0) PEAK_MADD_ASM(11, t1)
                         : PEAK_FOR12(PEAK_ACC256_OPERAND)[t0] "=&x"(t0), [t1] "=&x"(t1), [a] "+x"(a)
                         : [b] "x"(b));
    PEAK_FOR12(PEAK_ACC256_SUM)
    return _mm_cvtsi128_si32(_mm256_castsi256_si128(sum));
}

/* Multiply-adds of one loop iteration. */
static double peak_macs_per_iter(qb_isa isa, bool int8) {
    if (int8) return isa == QB_ISA_AVX512 ? 12.0 * 64 : 12.0 * 16;
    return isa == QB_ISA_AVX512 ? 12.0 * 16 : 12.0 * 8;
}

typedef struct {
    qb_isa isa;
    bool int8;
    long iters;
    float sink[QB_POOL_MAX_THREADS]; /* keeps the loops' results, hence the loops */
} peak_job;

static void peak_task(void *ctx, int task, int thread) {
    peak_job *j = ctx;
    if (j->int8)
        j->sink[task] = (float)(j->isa == QB_ISA_AVX512 ? peak_vnni(j->iters) : peak_madd(j->iters));
    else
        j->sink[task] = j->isa == QB_ISA_AVX512 ? peak_fma_avx512(j->iters) : peak_fma_avx2(j->iters);
}

/* One loop per thread of pool (tasks go to threads as they come free, so
 * a thread the OS does not run leaves its loop to another). */
double bench_peak_ops(qb_isa isa, bool int8, qb_pool *pool, long iters) {
    if (isa == QB_ISA_SCALAR || !qb_isa_supported(isa)) return 0;
    peak_job j = {isa, int8, iters, {0}};
    int team = qb_pool_threads(pool);
    qb_pool_run(pool, team, peak_task, &j);
    volatile float sink = 0;
    for (int t = 0; t < team; t++) sink += j.sink[t];
    return 2.0 * peak_macs_per_iter(isa, int8) * (double)iters * team;
}

qb_pool *bench_pool(int n) {
    qb_pool *p = NULL;
    qb_error err;
    if (n > 1 && qb_pool_create(n, &p, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return p;
}

double bench_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double bench_peak_gops(qb_isa isa, bool int8, qb_pool *pool, long iters) {
    double t0 = bench_seconds(), ops = bench_peak_ops(isa, int8, pool, iters);
    return ops > 0 ? ops / (bench_seconds() - t0) * 1e-9 : 0;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[(int)(q * (n - 1) + 0.5)];
}
