/* GEMM microbenchmark: qb_gemm_f32 on BERT-base Linear shapes (b_trans
 * weights, as read from safetensors) for every ISA, as GFLOPS and as a
 * share of this machine's FP32 FMA peak (measure.h).
 *
 *   bench_gemm [--threads N] [--reps N] [--isa scalar|avx2|avx512] [--json]
 *              [--clock wall|cpu] [--cold] [--pack-per-call]
 *
 * On a shared machine both speeds change from one second to the next, so
 * each GEMM sample (calls adding up to ~2 GFLOP, ~10 ms) comes right after
 * a peak sample on the same threads, and the share reported is the median
 * of those paired ratios, with its quartiles; samples rotate over shapes
 * and ISAs rep by rep.  The best GEMM rate against the best peak is given
 * too (what the machine can do at its quietest).
 *
 * --cold evicts B from every cache level before each call (untimed), as in
 * a real forward pass, whose 340 MB of BERT-base weights pass through a
 * 105 MB L3 once per run: the packing of B then streams from DRAM.
 *
 * The weights are read as the engine reads them: prepacked into panels
 * once, untimed, where the ISA's kernels take them so (kernels.h:
 * gemm_f32_pack_panels); --pack-per-call makes every call pack them.
 *
 * --clock cpu times by process CPU time divided by the thread count: on a
 * busy machine it leaves out the time threads spent descheduled (wall, the
 * default, is what a user sees). */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "measure.h"

#define PEAK_ITERS 2000000L /* ~6 ms of AVX-512 FMAs */
#define SAMPLE_FLOP 2e9
#define MAX_REPS 100

typedef struct {
    int threads, reps;
    qb_pool *pool; /* threads of them */
    bool json;
    bool cpu_clock;
    bool cold;
    bool pack_per_call;
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

/* One peak sample in GFLOPS (0 where the ISA has none). */
static double bench_peak(const bench_opts *o, qb_isa isa, int threads) {
    double t0 = bench_now(o, threads);
    double flop = bench_peak_ops(isa, false, threads > 1 ? o->pool : NULL, PEAK_ITERS);
    return flop > 0 ? flop / (bench_now(o, threads) - t0) * 1e-9 : 0;
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
        } else if (strcmp(argv[i], "--pack-per-call") == 0) {
            o->pack_per_call = true;
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
                    " [--cold] [--pack-per-call]\n",
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

/* One GEMM sample in GFLOPS: enough calls to add up to SAMPLE_FLOP (one
 * for the scalar reference), B evicted before each with --cold. */
static double bench_sample(const bench_opts *o, const qb_kernels *k, const qb_gemm_f32_args *a, float *scratch) {
    double flop = 2.0 * a->M * a->N * a->K, secs = 0;
    int calls = k->isa == QB_ISA_SCALAR ? 1 : (int)(SAMPLE_FLOP / flop) + 1;
    for (int c = 0; c < calls; c++) {
        if (o->cold)
            bench_evict(a->B_panels ? a->B_panels : a->B, a->B_panels ? qb_gemm_f32_panels_floats(k, a->N, a->K)
                                                                      : (size_t)a->N * a->K);
        double t0 = bench_now(o, o->threads);
        qb_gemm_f32(k, a, o->pool, scratch);
        secs += bench_now(o, o->threads) - t0;
    }
    return flop * calls / secs * 1e-9;
}

/* Median and best of kernel i's n-thread peak samples (every shape's). */
static void bench_peak_summary(const bench_opts *o, int i, double peak[][QB_ISA_COUNT][MAX_REPS], double *median,
                               double *best) {
    static double all[N_SHAPES * MAX_REPS];
    int n = 0;
    for (int s = 0; s < N_SHAPES; s++)
        for (int r = 0; r < o->reps; r++) all[n++] = peak[s][i][r];
    *median = bench_quantile(all, n, 0.5);
    *best = all[n - 1];
}

static void bench_report(const bench_opts *o, const qb_kernels *ks, int nk, double gflops[][QB_ISA_COUNT][MAX_REPS],
                         double peak[][QB_ISA_COUNT][MAX_REPS], double peak1[][MAX_REPS]) {
    double peakn_med[QB_ISA_COUNT], peakn_best[QB_ISA_COUNT];
    for (int i = 0; i < nk; i++) bench_peak_summary(o, i, peak, &peakn_med[i], &peakn_best[i]);
    if (o->json)
        printf("{\"threads\": %d, \"reps\": %d, \"clock\": \"%s\", \"cold_b\": %s, \"pack_per_call\": %s, "
               "\"peak_gflops\": {", o->threads, o->reps, o->cpu_clock ? "cpu" : "wall", o->cold ? "true" : "false",
               o->pack_per_call ? "true" : "false");
    else
        printf("FMA peak, GFLOPS (median of the samples, best):");
    for (int i = 0, first = 1; i < nk; i++) {
        if (ks[i].isa == QB_ISA_SCALAR) continue;
        double p1 = bench_quantile(peak1[i], o->reps, 0.5);
        if (o->json) {
            printf("%s\"%s\": {\"1\": %.1f", first ? "" : ", ", ks[i].name, p1);
            if (o->threads > 1) printf(", \"%d\": %.1f", o->threads, peakn_med[i]);
            printf(", \"best\": %.1f}", peakn_best[i]);
        } else
            printf("  %s %.1f (1 thread), %.1f (%d thread%s, beside the GEMMs; best %.1f)", ks[i].name, p1,
                   peakn_med[i], o->threads, o->threads > 1 ? "s" : "", peakn_best[i]);
        first = 0;
    }
    if (o->json)
        printf("}, \"results\": [");
    else
        printf("\nweights: %s\n%-7s %5s %5s %5s %9s %9s  %s\n",
               o->pack_per_call ? "packed by every call" : "packed once where the ISA reads panels, as the engine runs them",
               "isa", "M", "N", "K", "best GF/s", "median", "% of peak: paired median [q1..q3], best/best");
    for (int s = 0; s < N_SHAPES; s++) {
        const bench_shape *sh = &bench_shapes[s];
        for (int i = 0; i < nk; i++) {
            double pct[MAX_REPS];
            bool has_peak = peakn_best[i] > 0;
            for (int r = 0; r < o->reps; r++) pct[r] = has_peak ? 100.0 * gflops[s][i][r] / peak[s][i][r] : 0;
            double med = bench_quantile(gflops[s][i], o->reps, 0.5), best = gflops[s][i][o->reps - 1];
            double p_med = bench_quantile(pct, o->reps, 0.5), p_q1 = bench_quantile(pct, o->reps, 0.25);
            double p_q3 = bench_quantile(pct, o->reps, 0.75), p_best = has_peak ? 100.0 * best / peakn_best[i] : 0;
            if (o->json)
                printf("%s{\"isa\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"gflops_best\": %.1f, "
                       "\"gflops_median\": %.1f, \"pct_peak_median\": %.1f, \"pct_peak_q1\": %.1f, "
                       "\"pct_peak_q3\": %.1f, \"pct_peak_best\": %.1f}",
                       s || i ? ", " : "", ks[i].name, sh->M, sh->N, sh->K, best, med, p_med, p_q1, p_q3, p_best);
            else if (has_peak)
                printf("%-7s %5d %5d %5d %9.1f %9.1f  %5.1f%% [%.1f..%.1f]  %5.1f%%\n", ks[i].name, sh->M, sh->N, sh->K,
                       best, med, p_med, p_q1, p_q3, p_best);
            else
                printf("%-7s %5d %5d %5d %9.1f %9.1f  (reference: no peak)\n", ks[i].name, sh->M, sh->N, sh->K, best,
                       med);
        }
    }
    if (o->json) printf("]}\n");
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
    size_t max_a = 0, max_b = 0, max_c = 0, max_panels = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        const bench_shape *sh = &bench_shapes[s];
        if ((size_t)sh->M * sh->K > max_a) max_a = (size_t)sh->M * sh->K;
        if ((size_t)sh->N * sh->K > max_b) max_b = (size_t)sh->N * sh->K;
        for (int i = 0; i < nk; i++) {
            size_t p = qb_gemm_f32_panels_floats(&ks[i], sh->N, sh->K);
            if (p > max_panels) max_panels = p;
        }
        if ((size_t)sh->M * sh->N > max_c) max_c = (size_t)sh->M * sh->N;
    }
    float *A = bench_random(max_a), *B = bench_random(max_b), *bias = bench_random(4096);
    float *panels = aligned_alloc(64, (max_panels * sizeof(float) + 64) / 64 * 64); /* never 0 bytes */
    float *C = bench_random(max_c);
    float *scratch = aligned_alloc(64, (size_t)o.threads * qb_gemm_f32_pack_floats() * sizeof(float));
    o.pool = bench_pool(o.threads);
    /* [shape][kernel][rep]: GEMM GFLOPS and the peak sampled just before */
    static double gflops[N_SHAPES][QB_ISA_COUNT][MAX_REPS], peak[N_SHAPES][QB_ISA_COUNT][MAX_REPS];
    static double peak1[QB_ISA_COUNT][MAX_REPS];

    for (int r = -1; r < o.reps; r++) { /* r == -1 warms caches and threads */
        for (int i = 0; i < nk; i++)
            if (r >= 0) peak1[i][r] = bench_peak(&o, ks[i].isa, 1);
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
                bool prepack = !o.pack_per_call && ks[i].gemm_f32_pack_panels;
                if (prepack) ks[i].gemm_f32_pack_panels(B, sh->N, sh->K, panels);
                a.B_panels = prepack ? panels : NULL;
                double p = bench_peak(&o, ks[i].isa, o.threads), g = bench_sample(&o, &ks[i], &a, scratch);
                if (r >= 0) peak[s][i][r] = p, gflops[s][i][r] = g;
            }
        }
    }
    bench_report(&o, ks, nk, gflops, peak, peak1);
    free(A), free(B), free(panels), free(bias), free(C), free(scratch);
    return 0;
}
