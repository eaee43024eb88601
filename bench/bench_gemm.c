/* GEMM microbenchmark: measures this machine's FP32 FMA peak (a loop of
 * independent register FMAs, 1 thread and n threads), then qb_gemm_f32 on
 * BERT-base Linear shapes (b_trans weights, as read from safetensors) for
 * every ISA, reporting GFLOPS, % of the matching peak, median and spread.
 *
 *   bench_gemm [--threads N] [--reps N] [--isa scalar|avx2|avx512] [--json]
 *              [--clock wall|cpu] [--cold]
 *
 * --cold evicts B from every cache level before each GEMM, as in a real
 * forward pass, whose 340 MB of BERT-base weights pass through a 105 MB L3
 * once per run: the packing of B then streams from DRAM.
 *
 * --clock cpu times by process CPU time divided by the thread count: on a
 * busy shared machine it measures the kernel's efficiency without the time
 * its threads spent descheduled (wall, the default, is what a user sees).
 *
 * Repeats are interleaved (rep -> peaks, then shape -> ISA) so background
 * load on a shared machine hits every configuration alike.  The best GEMM
 * rate is set against the best peak (what the machine can do), the median
 * against the median peak (what it did meanwhile). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

#define PEAK_CHAINS 12 /* > FMA latency (4) x FMA ports (2): no chain stalls */
#define PEAK_ITERS 4000000L
#define MAX_REPS 100

typedef struct {
    int threads, reps;
    bool json;
    bool cpu_clock;
    bool cold;
    bool only[QB_ISA_COUNT]; /* ISAs asked for; none set = all but scalar */
} bench_opts;

typedef struct {
    int M, N, K;
} bench_shape;

/* Batch 1 and 8 at 128 tokens, and one real SST-2 sentence (~25 tokens,
 * what `bench --data` runs unpadded). */
static const bench_shape bench_shapes[] = {
    {128, 768, 768},  {128, 2304, 768},  {128, 3072, 768},  {128, 768, 3072},
    {1024, 768, 768}, {1024, 2304, 768}, {1024, 3072, 768}, {1024, 768, 3072},
    {25, 768, 768},   {25, 2304, 768},   {25, 3072, 768},   {25, 768, 3072},
};
#define N_SHAPES (int)(sizeof bench_shapes / sizeof bench_shapes[0])

/* Seconds on the chosen clock; CPU time is per thread of the team (one
 * thread reads its own clock, so idle OpenMP workers spinning do not count). */
static double bench_now(const bench_opts *o, int threads) {
    struct timespec ts;
    clockid_t cpu = threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID;
    clock_gettime(o->cpu_clock ? cpu : CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return o->cpu_clock ? t / threads : t;
}

/* FLOPs done by PEAK_ITERS rounds of PEAK_CHAINS independent FMAs. */
__attribute__((target("avx512f,fma"))) static float bench_fma_loop_avx512(void) {
    __m512 acc[PEAK_CHAINS], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    for (int j = 1; j < PEAK_CHAINS; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float bench_fma_loop_avx2(void) {
    __m256 acc[PEAK_CHAINS], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm256_set1_ps((float)j);
    for (long i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    float out[8];
    for (int j = 1; j < PEAK_CHAINS; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    _mm256_storeu_ps(out, acc[0]);
    return out[0];
}

/* Peak GFLOPS of an ISA's FMA unit with n threads (0 if unsupported; the
 * scalar reference has no meaningful peak, so it is measured against none). */
static double bench_fma_peak(const bench_opts *o, qb_isa isa, int threads) {
    if (isa == QB_ISA_SCALAR || !qb_isa_supported(isa)) return 0;
    int lanes = isa == QB_ISA_AVX512 ? 16 : 8;
    volatile float sink = 0;
    double t0 = bench_now(o, threads);
    int team = 1;
#pragma omp parallel num_threads(threads)
    {
        float r = isa == QB_ISA_AVX512 ? bench_fma_loop_avx512() : bench_fma_loop_avx2();
#pragma omp atomic
        sink += r;
#pragma omp single
        team = omp_get_num_threads();
    }
    double dt = bench_now(o, threads) - t0;
    return 2.0 * lanes * PEAK_CHAINS * (double)PEAK_ITERS * team / dt * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool bench_parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.threads = 2, .reps = 7};
    bool any = false;
    for (int i = 1; i < argc; i++) {
        qb_isa isa;
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (strcmp(argv[i], "--cold") == 0) {
            o->cold = true;
        } else if (strcmp(argv[i], "--clock") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "wall") == 0 || strcmp(argv[i + 1], "cpu") == 0)) {
            o->cpu_clock = strcmp(argv[++i], "cpu") == 0;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            o->threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc && qb_isa_from_name(argv[i + 1], &isa)) {
            o->only[isa] = any = true;
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--reps N] [--isa scalar|avx2|avx512] [--json] [--clock wall|cpu]"
                    " [--cold]\n",
                    argv[0]);
            return false;
        }
    }
    if (o->threads < 1 || o->reps < 1 || o->reps > MAX_REPS) {
        fprintf(stderr, "bench_gemm: --threads must be >= 1 and --reps in 1..%d\n", MAX_REPS);
        return false;
    }
    if (!any)
        for (int i = QB_ISA_AVX2; i < QB_ISA_COUNT; i++) o->only[i] = true;
    return true;
}

static float *bench_random(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = (float)((s >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
    return p;
}

static void bench_evict(const float *p, size_t n) {
    for (size_t i = 0; i < n; i += 16) _mm_clflush(p + i);
    _mm_mfence();
}

int main(int argc, char **argv) {
    bench_opts o;
    if (!bench_parse(argc, argv, &o)) return 2;

    qb_kernels ks[QB_ISA_COUNT];
    int nk = 0;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (!o.only[i]) continue;
        if (qb_kernels_select((qb_isa)i, &ks[nk]))
            nk++;
        else
            fprintf(stderr, "bench_gemm: %s not supported here, skipped\n", qb_isa_name((qb_isa)i));
    }
    static double peak1_reps[QB_ISA_COUNT][MAX_REPS], peakn_reps[QB_ISA_COUNT][MAX_REPS];

    size_t max_a = 0, max_b = 0, max_c = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        const bench_shape *sh = &bench_shapes[s];
        if ((size_t)sh->M * sh->K > max_a) max_a = (size_t)sh->M * sh->K;
        if ((size_t)sh->N * sh->K > max_b) max_b = (size_t)sh->N * sh->K;
        if ((size_t)sh->M * sh->N > max_c) max_c = (size_t)sh->M * sh->N;
    }
    float *A = bench_random(max_a), *B = bench_random(max_b), *bias = bench_random(4096);
    float *C = bench_random(max_c);
    float *scratch = aligned_alloc(64, (size_t)o.threads * qb_gemm_f32_pack_floats() * sizeof(float));
    static double secs[N_SHAPES][QB_ISA_COUNT][MAX_REPS];

    for (int r = -1; r < o.reps; r++) { /* r == -1 warms caches and threads */
        for (int i = 0; i < QB_ISA_COUNT; i++) {
            double p1 = bench_fma_peak(&o, (qb_isa)i, 1), pn = bench_fma_peak(&o, (qb_isa)i, o.threads);
            if (r >= 0) {
                peak1_reps[i][r] = p1;
                peakn_reps[i][r] = pn;
            }
        }
        for (int s = 0; s < N_SHAPES; s++) {
            const bench_shape *sh = &bench_shapes[s];
            qb_gemm_f32_args a = {
                .M = sh->M,
                .N = sh->N,
                .K = sh->K,
                .A = A,
                .lda = sh->K,
                .B = B,
                .ldb = sh->K,
                .b_trans = true,
                .C = C,
                .ldc = sh->N,
                .bias = bias,
                .alpha = 1.0f,
                .act = QB_ACT_NONE,
            };
            for (int i = 0; i < nk; i++) {
                if (o.cold) bench_evict(B, (size_t)sh->N * sh->K);
                double t0 = bench_now(&o, o.threads);
                qb_gemm_f32(&ks[i], &a, o.threads, scratch);
                if (r >= 0) secs[s][i][r] = bench_now(&o, o.threads) - t0;
            }
        }
    }

    /* [isa]: median and best of the repeats */
    double peak1[QB_ISA_COUNT], peakn[QB_ISA_COUNT], peakn_best[QB_ISA_COUNT];
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        qsort(peak1_reps[i], (size_t)o.reps, sizeof(double), bench_cmp_double);
        qsort(peakn_reps[i], (size_t)o.reps, sizeof(double), bench_cmp_double);
        peak1[i] = peak1_reps[i][o.reps / 2];
        peakn[i] = peakn_reps[i][o.reps / 2];
        peakn_best[i] = peakn_reps[i][o.reps - 1];
    }
    if (o.json) {
        printf("{\"threads\": %d, \"reps\": %d, \"clock\": \"%s\", \"cold_b\": %s, \"peak_gflops\": {", o.threads,
               o.reps, o.cpu_clock ? "cpu" : "wall", o.cold ? "true" : "false");
        for (int i = QB_ISA_AVX2; i < QB_ISA_COUNT; i++) {
            printf("%s\"%s\": {\"1\": %.1f", i > QB_ISA_AVX2 ? ", " : "", qb_isa_name((qb_isa)i), peak1[i]);
            if (o.threads > 1) printf(", \"%d\": %.1f", o.threads, peakn[i]);
            printf(", \"best\": %.1f}", peakn_best[i]);
        }
        printf("}, \"results\": [");
    } else {
        printf("FMA peak (GFLOPS, median of the repeats):");
        for (int i = QB_ISA_AVX2; i < QB_ISA_COUNT; i++)
            printf("  %s %.1f (1 thread) %.1f (%d threads, best %.1f)", qb_isa_name((qb_isa)i), peak1[i], peakn[i],
                   o.threads, peakn_best[i]);
        printf("\n%-7s %5s %5s %5s %10s %7s %10s %7s %7s\n", "isa", "M", "N", "K", "best GF/s", "%peak", "median",
               "%peak", "spread");
    }
    for (int s = 0; s < N_SHAPES; s++) {
        const bench_shape *sh = &bench_shapes[s];
        double flop = 2.0 * sh->M * sh->N * sh->K;
        for (int i = 0; i < nk; i++) {
            double *t = secs[s][i];
            qsort(t, (size_t)o.reps, sizeof(double), bench_cmp_double);
            double best = flop / t[0] * 1e-9, median = flop / t[o.reps / 2] * 1e-9;
            double spread = (t[o.reps - 1] - t[0]) / t[o.reps / 2];
            double peak = peakn[ks[i].isa], peak_best = peakn_best[ks[i].isa];
            double pct_best = peak_best > 0 ? 100.0 * best / peak_best : 0, pct = peak > 0 ? 100.0 * median / peak : 0;
            if (o.json)
                printf("%s{\"isa\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"gflops_best\": %.1f, "
                       "\"pct_peak_best\": %.1f, \"gflops_median\": %.1f, \"pct_peak_median\": %.1f, \"spread\": %.3f}",
                       s || i ? ", " : "", ks[i].name, sh->M, sh->N, sh->K, best, pct_best, median, pct, spread);
            else
                printf("%-7s %5d %5d %5d %10.1f %6.1f%% %10.1f %6.1f%% %6.1f%%\n", ks[i].name, sh->M, sh->N, sh->K,
                       best, pct_best, median, pct, 100.0 * spread);
        }
    }
    if (o.json) printf("]}\n");
    free(A), free(B), free(bias), free(C), free(scratch);
    return 0;
}
