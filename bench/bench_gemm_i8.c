/* Integer GEMM benchmark: the INT8 GEMM on BERT-base linear shapes per ISA
 * as GOPS (2 ops per multiply-add) and as a share of the machine's integer
 * multiply-add peak (measure.h: vpdpbusd, or vpmaddwd for AVX2), and
 * quantize_rows speed.  Each GEMM sample (~20 ms of calls) comes right
 * after a peak sample on the same threads, and the share is the median of
 * those paired ratios with its quartiles, because on a shared machine both
 * speeds change from one second to the next; samples rotate over shapes
 * and ISAs rep by rep.  GOPS are given as median [min..max].
 *
 *   bench_gemm_i8 [--threads N] [--reps N] [--isa scalar|avx2|avx512] [--no-amx] [--reduce-range] [--json]
 * --reduce-range halves the INT8 weights into [-64, 63], as `quantize
 * --reduce-range` makes them, which AVX2 runs on vpmaddubsw.
 * Where the CPU has AMX, the avx512 table multiplies on tiles (rows named
 * "avx512+amx"), which can pass the VNNI peak; --no-amx times the VNNI
 * kernels instead, so their own share of that peak can be read off.
 * Beside each INT8 row, a W4A8 row ("w4a8-<isa>"): the same activations
 * against 4-bit weights (U4, group 128, symmetric) through the low-bit
 * kernels (kernels_lowbit.h), reported the same way; where the low-bit
 * table runs on AMX, two: "w4a8-avx512+amx" and the table held to VNNI
 * ("w4a8-avx512").  --no-amx holds both tables to VNNI.  The AVX2 W4A8
 * row can pass its peak too: four vpmaddubsw (32 multiply-adds each) share
 * one vpmaddwd, 25.6 multiply-adds per multiplier operation where the
 * peak loop does 16. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_i8.h"
#include "kernels/kernels_lowbit.h"
#include "measure.h"

enum { BENCH_SHAPES = 12, BENCH_MAX_REPS = 101 };

typedef struct {
    int threads, reps;
    bool json;
    bool no_amx;
    bool reduce_range;
    bool want[QB_ISA_COUNT];
} bench_opts;

typedef struct {
    int M, N, K;
} bench_shape;

static const bench_shape bench_shapes[BENCH_SHAPES] = {
    {128, 768, 768},   {128, 2304, 768},   {128, 3072, 768},   {128, 768, 3072},
    {1024, 768, 768},  {1024, 2304, 768},  {1024, 3072, 768},  {1024, 768, 3072},
    {25, 768, 768},    {25, 2304, 768},    {25, 3072, 768},    {25, 768, 3072},
};

#define BENCH_PEAK_ITERS 1000000L /* ~5 ms of vpdpbusd */

typedef struct {
    bench_shape s;
    uint8_t *A;
    int8_t *W;
    float *a_scale, *w_scale, *bias, *C, *X;
    int32_t *a_zero;
    qb_i8_weights packed[QB_ISA_COUNT];
    qb_lowbit_weights w4;   /* U4, group 128, symmetric, codes from W */
    uint8_t *w4_rows;
    float *w4_scale;
    void *w4_scratch;       /* threads slices */
} bench_problem;

#define BENCH_W4_GROUP 128

/* The W4A8 weights: W's top 4 bits as codes, one scale per group. */
static bool bench_w4_init(bench_problem *p, int threads) {
    const bench_shape *s = &p->s;
    int G = (s->K + BENCH_W4_GROUP - 1) / BENCH_W4_GROUP;
    size_t rb = qb_code_row_bytes(QB_CODE_U4, s->K);
    p->w4_rows = malloc(rb * s->N);
    p->w4_scale = malloc(sizeof(float) * (size_t)s->N * G);
    uint8_t *codes = malloc((size_t)s->K);
    size_t scratch = qb_lowbit_scratch_bytes(s->K, BENCH_W4_GROUP) * (size_t)threads;
    p->w4_scratch = aligned_alloc(64, (scratch + 63) / 64 * 64);
    if (!p->w4_rows || !p->w4_scale || !codes || !p->w4_scratch) {
        free(codes);
        return false;
    }
    for (int n = 0; n < s->N; n++) {
        for (int k = 0; k < s->K; k++) codes[k] = (uint8_t)((uint8_t)p->W[(size_t)n * s->K + k] >> 4);
        qb_code_pack_row(QB_CODE_U4, codes, s->K, p->w4_rows + rb * n);
    }
    free(codes);
    for (int i = 0; i < s->N * G; i++) p->w4_scale[i] = 0.016f;
    p->w4 = (qb_lowbit_weights){.code = QB_CODE_U4, .N = s->N, .K = s->K, .group = BENCH_W4_GROUP, .G = G,
                                .rows = p->w4_rows, .row_bytes = rb, .scale = p->w4_scale};
    return qb_lowbit_weights_prepare(&p->w4, QB_LOWBIT_PANELS_ALL);
}

static bool bench_problem_init(bench_problem *p, const bench_shape *s, const qb_kernels_i8 *ks, const bool *on,
                               int threads, bool reduce_range) {
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->A = malloc((size_t)s->M * s->K);
    p->W = malloc((size_t)s->N * s->K);
    p->X = malloc(sizeof(float) * (size_t)s->M * s->K);
    p->C = malloc(sizeof(float) * (size_t)s->M * s->N);
    p->a_scale = malloc(sizeof(float) * s->M);
    p->a_zero = malloc(sizeof(int32_t) * s->M);
    p->w_scale = malloc(sizeof(float) * s->N);
    p->bias = malloc(sizeof(float) * s->N);
    if (!p->A || !p->W || !p->X || !p->C || !p->a_scale || !p->a_zero || !p->w_scale || !p->bias) return false;
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)s->M * s->K; i++) {
        x = x * 1664525u + 1013904223u;
        p->A[i] = (uint8_t)(x >> 24);
        p->X[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
    }
    for (size_t i = 0; i < (size_t)s->N * s->K; i++) {
        x = x * 1664525u + 1013904223u;
        p->W[i] = (int8_t)(x >> 24);
        if (reduce_range) p->W[i] = (int8_t)(p->W[i] / 2);
    }
    for (int m = 0; m < s->M; m++) {
        p->a_scale[m] = 0.01f;
        p->a_zero[m] = 128;
    }
    for (int n = 0; n < s->N; n++) {
        p->w_scale[n] = 0.001f;
        p->bias[n] = 0.1f;
    }
    for (int i = 0; i < QB_ISA_COUNT; i++)
        if (on[i] && !qb_i8_weights_pack(&ks[i], p->W, p->w_scale, s->N, s->K, &p->packed[i])) return false;
    return bench_w4_init(p, threads);
}

static void bench_problem_free(bench_problem *p) {
    for (int i = 0; i < QB_ISA_COUNT; i++)
        if (p->packed[i].packed) qb_i8_weights_free(&p->packed[i]);
    free(p->A);
    free(p->W);
    free(p->X);
    free(p->C);
    free(p->a_scale);
    free(p->a_zero);
    free(p->w_scale);
    free(p->bias);
    qb_lowbit_weights_free(&p->w4);
    free(p->w4_rows);
    free(p->w4_scale);
    free(p->w4_scratch);
}

/* Seconds per GEMM, timed over enough calls to last ~20 ms. */
static double bench_gemm_once(const qb_kernels_i8 *k, bench_problem *p, qb_pool *pool) {
    qb_gemm_i8_args a = {.M = p->s.M, .N = p->s.N, .K = p->s.K, .A = p->A, .lda = p->s.K, .a_scale = p->a_scale,
                         .a_zero = p->a_zero, .W = &p->packed[k->isa], .C = p->C, .ldc = p->s.N, .bias = p->bias,
                         .act = QB_ACT_NONE};
    double ops = 2.0 * p->s.M * p->s.N * p->s.K;
    int calls = (int)(0.02 * 200e9 / ops) + 1;
    if (k->isa == QB_ISA_SCALAR) calls = 1;
    double t0 = bench_seconds();
    for (int c = 0; c < calls; c++) qb_gemm_i8(k, &a, pool);
    return (bench_seconds() - t0) / calls;
}

/* The same for the W4A8 GEMM. */
static double bench_w4_once(const qb_kernels_lowbit *k, bench_problem *p, qb_pool *pool) {
    qb_lowbit_a8_args a = {.M = p->s.M, .A = p->A, .lda = p->s.K, .a_scale = p->a_scale, .a_zero = p->a_zero,
                           .W = &p->w4, .C = p->C, .ldc = p->s.N, .bias = p->bias, .act = QB_ACT_NONE};
    double ops = 2.0 * p->s.M * p->s.N * p->s.K;
    int calls = (int)(0.02 * 200e9 / ops) + 1;
    if (k->isa == QB_ISA_SCALAR) calls = 1;
    double t0 = bench_seconds();
    for (int c = 0; c < calls; c++) qb_lowbit_gemm_a8(k, &a, pool, p->w4_scratch);
    return (bench_seconds() - t0) / calls;
}

static double bench_quantize_once(const qb_kernels_i8 *k, bench_problem *p) {
    const int calls = 20;
    double t0 = bench_seconds();
    for (int c = 0; c < calls; c++)
        k->quantize_rows(p->X, p->s.M, p->s.K, p->s.K, p->A, p->s.K, p->a_scale, p->a_zero);
    return (bench_seconds() - t0) / calls;
}

static bool bench_parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.threads = 2, .reps = 7};
    bool any = false;
    for (int i = 1; i < argc; i++) {
        qb_isa isa;
        if (!strcmp(argv[i], "--json")) o->json = true;
        else if (!strcmp(argv[i], "--no-amx")) o->no_amx = true;
        else if (!strcmp(argv[i], "--reduce-range")) o->reduce_range = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) o->threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) o->reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc && qb_isa_from_name(argv[i + 1], &isa)) {
            o->want[isa] = any = true;
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--threads N] [--reps N] [--isa scalar|avx2|avx512]... [--no-amx] [--reduce-range] "
                    "[--json]\n",
                    argv[0]);
            return false;
        }
    }
    if (o->threads < 1 || o->reps < 1 || o->reps > BENCH_MAX_REPS) {
        fprintf(stderr, "--threads must be >= 1 and --reps in 1..%d\n", BENCH_MAX_REPS);
        return false;
    }
    /* The scalar reference is for checking, not speed: only on request. */
    if (!any) o->want[QB_ISA_AVX2] = o->want[QB_ISA_AVX512] = true;
    return true;
}

/* One W4A8 row (text) or object (JSON), from its times and paired peaks. */
static void bench_print_w4(const bench_shape *sh, const char *isa, double *times, double *peaks, int reps, bool json,
                           bool *first) {
    double ops = 2.0 * sh->M * sh->N * sh->K, v[BENCH_MAX_REPS], pct[BENCH_MAX_REPS];
    for (int r = 0; r < reps; r++) {
        v[r] = ops / times[r] / 1e9;
        pct[r] = peaks[r] > 0 ? 100.0 * v[r] / peaks[r] : 0.0;
    }
    double med = bench_quantile(v, reps, 0.5), p_med = bench_quantile(pct, reps, 0.5);
    double p_q1 = bench_quantile(pct, reps, 0.25), p_q3 = bench_quantile(pct, reps, 0.75);
    char name[32];
    snprintf(name, sizeof name, "w4a8-%s", isa);
    if (json) {
        printf("%s{\"isa\": \"%s\", \"group\": %d, \"M\": %d, \"N\": %d, \"K\": %d, \"gops\": %.1f, "
               "\"min\": %.1f, \"max\": %.1f, \"ms\": %.4f, \"pct_peak\": %.1f, \"pct_peak_q1\": %.1f, "
               "\"pct_peak_q3\": %.1f}",
               *first ? "" : ", ", isa, BENCH_W4_GROUP, sh->M, sh->N, sh->K, med, v[0], v[reps - 1], ops / med / 1e6,
               p_med, p_q1, p_q3);
        *first = false;
    } else
        printf("gemm %-10s M=%4d N=%4d K=%4d: %7.1f GOPS [%.1f..%.1f] %8.3f ms  %5.1f%% [%.1f..%.1f] of peak\n", name,
               sh->M, sh->N, sh->K, med, v[0], v[reps - 1], ops / med / 1e6, p_med, p_q1, p_q3);
}

int main(int argc, char **argv) {
    bench_opts o;
    if (!bench_parse(argc, argv, &o)) return 2;
    qb_kernels_i8 ks[QB_ISA_COUNT];
    qb_kernels_lowbit lk[QB_ISA_COUNT], lk_vnni[QB_ISA_COUNT];
    bool on[QB_ISA_COUNT] = {false};
    double peak1[QB_ISA_COUNT] = {0}, peakn[QB_ISA_COUNT] = {0};
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        on[i] = o.want[i] && qb_kernels_i8_select((qb_isa)i, &ks[i]) && qb_kernels_lowbit_select((qb_isa)i, &lk[i]);
        if (on[i] && i == QB_ISA_AVX512 && o.no_amx) {
            qb_kernels_i8_init_avx512_vnni(&ks[i]);
            qb_kernels_lowbit_init_avx512_vnni(&lk[i]);
        }
        if (on[i] && lk[i].amx) qb_kernels_lowbit_init_avx512_vnni(&lk_vnni[i]);
        if (o.want[i] && !on[i] && !o.json) printf("skipped %s: this CPU cannot run it\n", qb_isa_name((qb_isa)i));
    }
    static bench_problem probs[BENCH_SHAPES];
    qb_pool *pool = bench_pool(o.threads);
    for (int s = 0; s < BENCH_SHAPES; s++)
        if (!bench_problem_init(&probs[s], &bench_shapes[s], ks, on, o.threads, o.reduce_range)) {
            fprintf(stderr, "bench_gemm_i8: out of memory\n");
            return 1;
        }
    static double t[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS], tq[QB_ISA_COUNT][BENCH_MAX_REPS];
    /* the n-thread peak sampled just before each GEMM sample, and 1-thread */
    static double pn[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS], p1[QB_ISA_COUNT][BENCH_MAX_REPS];
    static double t4[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS], pn4[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS];
    /* the W4A8 table held to VNNI, where lk runs on AMX */
    static double t4v[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS], pn4v[BENCH_SHAPES][QB_ISA_COUNT][BENCH_MAX_REPS];
    for (int s = 0; s < BENCH_SHAPES; s++) /* warm-up: page in, spin up threads */
        for (int i = 0; i < QB_ISA_COUNT; i++)
            if (on[i]) {
                bench_gemm_once(&ks[i], &probs[s], pool);
                bench_w4_once(&lk[i], &probs[s], pool);
                if (lk[i].amx) bench_w4_once(&lk_vnni[i], &probs[s], pool);
            }
    for (int r = 0; r < o.reps; r++) {
        for (int i = 1; i < QB_ISA_COUNT; i++)
            if (on[i]) p1[i][r] = bench_peak_gops((qb_isa)i, true, NULL, BENCH_PEAK_ITERS);
        for (int s = 0; s < BENCH_SHAPES; s++)
            for (int i = 0; i < QB_ISA_COUNT; i++) {
                if (!on[i]) continue;
                pn[s][i][r] = bench_peak_gops((qb_isa)i, true, pool, BENCH_PEAK_ITERS);
                t[s][i][r] = bench_gemm_once(&ks[i], &probs[s], pool);
                pn4[s][i][r] = bench_peak_gops((qb_isa)i, true, pool, BENCH_PEAK_ITERS);
                t4[s][i][r] = bench_w4_once(&lk[i], &probs[s], pool);
                if (lk[i].amx) {
                    pn4v[s][i][r] = bench_peak_gops((qb_isa)i, true, pool, BENCH_PEAK_ITERS);
                    t4v[s][i][r] = bench_w4_once(&lk_vnni[i], &probs[s], pool);
                }
                if (s == 0) tq[i][r] = bench_quantize_once(&ks[i], &probs[s]);
            }
    }
    for (int i = 1; i < QB_ISA_COUNT; i++)
        if (on[i]) {
            double all[BENCH_SHAPES * BENCH_MAX_REPS];
            int n = 0;
            for (int s = 0; s < BENCH_SHAPES; s++)
                for (int r = 0; r < o.reps; r++) all[n++] = pn[s][i][r];
            peak1[i] = bench_quantile(p1[i], o.reps, 0.5);
            peakn[i] = bench_quantile(all, n, 0.5);
        }

    if (o.json) printf("{\"threads\": %d, \"reps\": %d, \"peak\": {", o.threads, o.reps);
    else printf("threads %d, reps %d (GOPS = 2 ops per multiply-add; median [min..max])\n", o.threads, o.reps);
    bool first = true;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (!on[i] || i == QB_ISA_SCALAR) continue;
        const char *unit = i == QB_ISA_AVX512 ? "vpdpbusd" : "vpmaddwd";
        if (o.json) printf("%s\"%s\": {\"unit\": \"%s\", \"gops_1t\": %.1f, \"gops_nt\": %.1f}", first ? "" : ", ",
                           ks[i].name, unit, peak1[i], peakn[i]);
        else printf("peak %-6s (%s): %.1f GOPS 1 thread, %.1f GOPS %d thread%s beside the GEMMs\n", ks[i].name, unit,
                    peak1[i], peakn[i], o.threads, o.threads > 1 ? "s" : "");
        first = false;
    }
    if (o.json) printf("}, \"gemm\": [");
    first = true;
    for (int s = 0; s < BENCH_SHAPES; s++)
        for (int i = 0; i < QB_ISA_COUNT; i++) {
            if (!on[i]) continue;
            const bench_shape *sh = &bench_shapes[s];
            double ops = 2.0 * sh->M * sh->N * sh->K, v[BENCH_MAX_REPS], pct[BENCH_MAX_REPS];
            for (int r = 0; r < o.reps; r++) {
                v[r] = ops / t[s][i][r] / 1e9;
                pct[r] = pn[s][i][r] > 0 ? 100.0 * v[r] / pn[s][i][r] : 0.0;
            }
            double med = bench_quantile(v, o.reps, 0.5), p_med = bench_quantile(pct, o.reps, 0.5);
            double p_q1 = bench_quantile(pct, o.reps, 0.25), p_q3 = bench_quantile(pct, o.reps, 0.75);
            const char *name = ks[i].amx ? "avx512+amx" : ks[i].name;
            if (o.json)
                printf("%s{\"isa\": \"%s\", \"amx\": %s, \"M\": %d, \"N\": %d, \"K\": %d, \"gops\": %.1f, "
                       "\"min\": %.1f, \"max\": %.1f, \"ms\": %.4f, \"pct_peak\": %.1f, \"pct_peak_q1\": %.1f, "
                       "\"pct_peak_q3\": %.1f}",
                       first ? "" : ", ", ks[i].name, ks[i].amx ? "true" : "false", sh->M, sh->N, sh->K, med, v[0],
                       v[o.reps - 1], ops / med / 1e6, p_med, p_q1, p_q3);
            else
                printf("gemm %-10s M=%4d N=%4d K=%4d: %7.1f GOPS [%.1f..%.1f] %8.3f ms  %5.1f%% [%.1f..%.1f] of peak\n",
                       name, sh->M, sh->N, sh->K, med, v[0], v[o.reps - 1], ops / med / 1e6, p_med, p_q1, p_q3);
            if (!o.json) {
                bench_print_w4(sh, lk[i].amx ? "avx512+amx" : ks[i].name, t4[s][i], pn4[s][i], o.reps, false, NULL);
                if (lk[i].amx) bench_print_w4(sh, ks[i].name, t4v[s][i], pn4v[s][i], o.reps, false, NULL);
            }
            first = false;
        }
    if (o.json) {
        printf("], \"w4a8\": [");
        first = true;
        for (int s = 0; s < BENCH_SHAPES; s++)
            for (int i = 0; i < QB_ISA_COUNT; i++)
                if (on[i]) {
                    bench_print_w4(&bench_shapes[s], lk[i].amx ? "avx512+amx" : ks[i].name, t4[s][i], pn4[s][i],
                                   o.reps, true, &first);
                    if (lk[i].amx)
                        bench_print_w4(&bench_shapes[s], ks[i].name, t4v[s][i], pn4v[s][i], o.reps, true, &first);
                }
    }
    if (o.json) printf("], \"quantize_rows\": [");
    first = true;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (!on[i]) continue;
        double v[BENCH_MAX_REPS];
        for (int r = 0; r < o.reps; r++) v[r] = (double)probs[0].s.M * probs[0].s.K / tq[i][r] / 1e9;
        double med = bench_quantile(v, o.reps, 0.5);
        if (o.json) printf("%s{\"isa\": \"%s\", \"gfloats_per_s\": %.2f}", first ? "" : ", ", ks[i].name, med);
        else printf("quantize_rows %-6s %dx%d: %.2f Gfloat/s [%.2f..%.2f]\n", ks[i].name, probs[0].s.M,
                    probs[0].s.K, med, v[0], v[o.reps - 1]);
        first = false;
    }
    if (o.json) printf("]}\n");
    for (int s = 0; s < BENCH_SHAPES; s++) bench_problem_free(&probs[s]);
    return 0;
}
