/* qbert's GEMMs beside Intel's oneDNN on the same machine, in the same
 * run: FP32 (qb_gemm_f32 against dnnl_sgemm) and INT8 on VNNI (qb_gemm_i8
 * without AMX against dnnl_gemm_u8s8s32, limited to AVX512_CORE_VNNI), on
 * BERT-base Linear shapes, each as a share of the peak sampled just before
 * it (measure.h).  It answers whether a share below the bars is this kernel's
 * or this machine's.  Built only where oneDNN is installed (Debian:
 * libdnnl-dev); qbert itself never links it.
 *
 *   bench_gemm_onednn [--threads N] [--reps N]
 *
 * Both do the same multiply-adds; qbert's INT8 also dequantizes to float
 * and adds the bias in its epilogue, where oneDNN stops at int32 (a few
 * percent of the time at these shapes, in oneDNN's favour).  The order of
 * the two alternates rep by rep. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_i8.h"
#include "measure.h"

#define MAX_REPS 100
#define SAMPLE_OPS 2e9
#define PEAK_ITERS 1000000L

typedef struct {
    int M, N, K;
} shape;

static const shape shapes[] = {
    {128, 768, 768},  {128, 3072, 768},  {128, 768, 3072},  {1024, 768, 768},
    {1024, 3072, 768}, {1024, 768, 3072}, {25, 768, 768},    {25, 3072, 768},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

enum { IMPL_QBERT, IMPL_ONEDNN, N_IMPLS };

typedef struct {
    int threads;
    qb_pool *pool;
    qb_kernels f32;
    qb_kernels_i8 i8;
    float *A, *B, *C, *bias, *a_scale, *w_scale, *scratch;
    uint8_t *Aq;
    int8_t *Bq;
    int32_t *Ci, *a_zero;
    qb_i8_weights packed[N_SHAPES];
} bench;

static bool bench_init(bench *b, int threads) {
    memset(b, 0, sizeof *b);
    b->threads = threads;
    b->pool = bench_pool(threads);
    if (!qb_kernels_select(qb_cpu_best_isa(), &b->f32) || !qb_kernels_i8_select(QB_ISA_AVX512, &b->i8)) return false;
    qb_kernels_i8_init_avx512_vnni(&b->i8);
    size_t a = 1024 * 3072, w = 3072 * 3072, c = 1024 * 3072;
    b->A = malloc(a * sizeof(float)), b->B = malloc(w * sizeof(float)), b->C = malloc(c * sizeof(float));
    b->bias = malloc(3072 * sizeof(float)), b->w_scale = malloc(3072 * sizeof(float));
    b->a_scale = malloc(1024 * sizeof(float)), b->a_zero = malloc(1024 * sizeof(int32_t));
    b->Aq = malloc(a), b->Bq = malloc(w), b->Ci = malloc(c * sizeof(int32_t));
    b->scratch = aligned_alloc(64, (size_t)threads * qb_gemm_f32_pack_floats() * sizeof(float));
    if (!b->A || !b->B || !b->C || !b->bias || !b->w_scale || !b->a_scale || !b->a_zero || !b->Aq || !b->Bq ||
        !b->Ci || !b->scratch)
        return false;
    uint32_t x = 12345;
    for (size_t i = 0; i < w; i++) {
        x = x * 1664525u + 1013904223u;
        b->B[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        b->Bq[i] = (int8_t)(x >> 24);
        if (i < a) b->A[i] = b->B[i] * 0.5f, b->Aq[i] = (uint8_t)(x >> 16);
    }
    for (int i = 0; i < 3072; i++) b->bias[i] = 0.1f, b->w_scale[i] = 0.001f;
    for (int i = 0; i < 1024; i++) b->a_scale[i] = 0.01f, b->a_zero[i] = 128;
    for (int s = 0; s < N_SHAPES; s++)
        if (!qb_i8_weights_pack(&b->i8, b->Bq, b->w_scale, shapes[s].N, shapes[s].K, &b->packed[s])) return false;
    return true;
}

static void run_f32(bench *b, int impl, const shape *s) {
    if (impl == IMPL_ONEDNN) {
        dnnl_sgemm('N', 'T', s->M, s->N, s->K, 1.0f, b->A, s->K, b->B, s->K, 0.0f, b->C, s->N);
        return;
    }
    qb_gemm_f32_args a = {.M = s->M, .N = s->N, .K = s->K, .A = b->A, .lda = s->K, .B = b->B, .ldb = s->K,
                          .b_trans = true, .C = b->C, .ldc = s->N, .bias = b->bias, .alpha = 1.0f};
    qb_gemm_f32(&b->f32, &a, b->pool, b->scratch);
}

static void run_i8(bench *b, int impl, int si) {
    const shape *s = &shapes[si];
    if (impl == IMPL_ONEDNN) {
        int32_t co = 0;
        dnnl_gemm_u8s8s32('N', 'T', 'F', s->M, s->N, s->K, 1.0f, b->Aq, s->K, 0, b->Bq, s->K, 0, 0.0f, b->Ci, s->N,
                          &co);
        return;
    }
    qb_gemm_i8_args a = {.M = s->M, .N = s->N, .K = s->K, .A = b->Aq, .lda = s->K, .a_scale = b->a_scale,
                         .a_zero = b->a_zero, .W = &b->packed[si], .C = b->C, .ldc = s->N, .bias = b->bias};
    qb_gemm_i8(&b->i8, &a, b->pool);
}

/* One sample as a share of the peak sampled just before it, in percent. */
static double sample(bench *b, bool int8, int impl, int si) {
    qb_isa isa = int8 ? QB_ISA_AVX512 : b->f32.isa;
    double peak = bench_peak_gops(isa, int8, b->pool, PEAK_ITERS);
    const shape *s = &shapes[si];
    double ops = 2.0 * s->M * s->N * s->K;
    int calls = (int)(SAMPLE_OPS * (int8 ? 2 : 1) / ops) + 1;
    double t0 = bench_seconds();
    for (int c = 0; c < calls; c++) int8 ? run_i8(b, impl, si) : run_f32(b, impl, s);
    return 100.0 * ops * calls / (bench_seconds() - t0) * 1e-9 / peak;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 11;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--reps N]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "bench_gemm_onednn: --threads must be >= 1 and --reps in 1..%d\n", MAX_REPS);
        return 2;
    }
    if (!qb_isa_supported(QB_ISA_AVX512) || dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_vnni) != dnnl_success) {
        fprintf(stderr, "bench_gemm_onednn: needs AVX-512 VNNI (and a oneDNN that can be held to it)\n");
        return 1;
    }
    omp_set_num_threads(threads); /* oneDNN's team */
    static bench b;
    if (!bench_init(&b, threads)) {
        fprintf(stderr, "bench_gemm_onednn: out of memory or no kernels for this CPU\n");
        return 1;
    }
    static double pct[2][N_SHAPES][N_IMPLS][MAX_REPS];
    for (int r = -1; r < reps; r++) /* r == -1 warms up */
        for (int q = 0; q < 2; q++)
            for (int s = 0; s < N_SHAPES; s++)
                for (int j = 0; j < N_IMPLS; j++) {
                    int impl = (j + r + 1) % N_IMPLS;
                    double p = sample(&b, q == 1, impl, s);
                    if (r >= 0) pct[q][s][impl][r] = p;
                }
    printf("%d threads, %d reps: %% of the peak sampled before each run, median [q1..q3]\n", threads, reps);
    printf("%-20s %5s %5s %5s  %-22s %-22s\n", "", "M", "N", "K", "qbert", "oneDNN");
    for (int q = 0; q < 2; q++)
        for (int s = 0; s < N_SHAPES; s++) {
            printf("%-20s %5d %5d %5d ", q ? "int8 (VNNI, no AMX)" : "fp32 (FMA)", shapes[s].M, shapes[s].N,
                   shapes[s].K);
            for (int impl = 0; impl < N_IMPLS; impl++) {
                double *v = pct[q][s][impl];
                double q1 = bench_quantile(v, reps, 0.25), med = bench_quantile(v, reps, 0.5), q3 = bench_quantile(v, reps, 0.75);
                printf(" %5.1f%% [%5.1f..%5.1f]  ", med, q1, q3);
            }
            printf("\n");
        }
    for (int s = 0; s < N_SHAPES; s++) qb_i8_weights_free(&b.packed[s]);
    free(b.A), free(b.B), free(b.C), free(b.bias), free(b.w_scale), free(b.a_scale), free(b.a_zero);
    free(b.Aq), free(b.Bq), free(b.Ci), free(b.scratch);
    return 0;
}
