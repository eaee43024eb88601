/* Half-precision GEMM: every path this CPU runs against the scalar
 * references, on ragged shapes (M, N, K in 1, 3, 17, 127, 769, ...) that
 * cross the register tile, the N and K blocks and the thread split.
 *
 * Tolerances, with scale = sum_k |a_mk w_nk| + |bias_n| + |res_mn| (the size
 * of the terms that were rounded, so cancellation cannot fake a failure):
 *   widen path (F16, or BF16 off the dot path) vs the exact reference:
 *     1e-5 * scale.  Widening is exact, so only the FP32 summation order
 *     and the vectorized activations differ, as for the FP32 GEMM;
 *   dot path (few rows or narrow weights, kernels_h16.h) vs the reference
 *     that rounds activations to BF16 the same way: 1e-5 * scale.  A
 *     BF16 x BF16 product is exact in FP32 (8 + 8 significant bits), so
 *     again only the summation order differs;
 *   dot path vs the exact reference: 2^-8 * scale.  Rounding an activation
 *     to BF16 (nearest even) moves it by at most 2^-9 of itself, so the sum
 *     moves by at most 2^-9 * scale, plus the 1e-5 above; the activations
 *     are 1-Lipschitz (GELU's slope peaks at 1.13, inside the 2x margin);
 *   2 threads vs 1: bit-identical (K blocking depends on K alone, so the
 *     split never changes the order of operations of any output). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/kernels_h16.h"
#include "test_util.h"

#define SUM_TOL 1e-5
#define BF16_ACT_TOL (1.0 / 256.0)
#define SENTINEL 12345.0f
#define PAD 3 /* extra elements on every leading dimension */

typedef struct {
    int M, N, K;
    bool bias, residual;
    qb_act act;
} h16_case;

static const char *const type_names[] = {"f16", "bf16"};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

/* Weights in [-1, 1] rounded to the 16-bit type, and their FP32 values. */
static uint16_t *rand_half(size_t n, qb_h16_type type, float *wide) {
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        float x = qb_test_uniform(&rng_state, -1, 1);
        h[i] = type == QB_H16_BF16 ? qb_f32_to_bf16(x) : qb_f32_to_f16(x);
        wide[i] = type == QB_H16_BF16 ? qb_bf16_to_f32(h[i]) : qb_f16_to_f32(h[i]);
    }
    return h;
}

typedef struct {
    h16_case c;
    float *A, *wide, *bias, *res, *scale;
    uint16_t *w;
    int lda, ldc, ldr;
} problem;

static void problem_make(problem *p, const h16_case *c, qb_h16_type type) {
    p->c = *c;
    p->lda = c->K + PAD;
    p->ldc = c->N + PAD;
    p->ldr = c->N + PAD;
    p->A = qb_test_uniform_array(&rng_state, (size_t)c->M * p->lda, -1, 1);
    p->wide = malloc((size_t)c->N * c->K * sizeof(float) + 1);
    p->w = rand_half((size_t)c->N * c->K, type, p->wide);
    p->bias = c->bias ? qb_test_uniform_array(&rng_state, (size_t)c->N, -1, 1) : NULL;
    p->res = c->residual ? qb_test_uniform_array(&rng_state, (size_t)c->M * p->ldr, -1, 1) : NULL;
    p->scale = malloc((size_t)c->M * c->N * sizeof(float) + 1);
    for (int m = 0; m < c->M; m++)
        for (int n = 0; n < c->N; n++) {
            double s = 0;
            for (int k = 0; k < c->K; k++) s += fabs((double)p->A[(size_t)m * p->lda + k] * p->wide[(size_t)n * c->K + k]);
            if (p->bias) s += fabs(p->bias[n]);
            if (p->res) s += fabs(p->res[(size_t)m * p->ldr + n]);
            p->scale[(size_t)m * c->N + n] = (float)s;
        }
}

static void problem_free(problem *p) {
    free(p->A);
    free(p->wide);
    free(p->w);
    free(p->bias);
    free(p->res);
    free(p->scale);
}

static float *new_c(const problem *p) {
    size_t n = (size_t)p->c.M * p->ldc;
    float *C = malloc((n ? n : 1) * sizeof *C);
    for (size_t i = 0; i < n; i++) C[i] = SENTINEL;
    return C;
}

static qb_gemm_h16_args args_for(const problem *p, const qb_h16_weights *W, float *C) {
    qb_gemm_h16_args a = {
        .M = p->c.M, .A = p->A, .lda = p->lda, .W = W, .C = C, .ldc = p->ldc,
        .bias = p->bias, .residual = p->res, .ldr = p->ldr, .act = p->c.act,
    };
    return a;
}

/* got vs want within tol * scale everywhere, and the padding untouched. */
static void compare(const problem *p, const float *got, const float *want, double tol, const char *what) {
    int bad = 0;
    double worst = 0;
    for (int m = 0; m < p->c.M; m++) {
        for (int n = 0; n < p->ldc; n++) {
            float g = got[(size_t)m * p->ldc + n], w = want[(size_t)m * p->ldc + n];
            if (n >= p->c.N) {
                bad += g != SENTINEL;
                continue;
            }
            double err = fabs((double)g - w), lim = tol * p->scale[(size_t)m * p->c.N + n] + 1e-30;
            if (err / lim > worst) worst = err / lim;
            bad += !(err <= lim);
        }
    }
    CHECK(bad == 0, "%s M=%d N=%d K=%d act=%d: %d outputs off (worst %.3g x tolerance)", what, p->c.M, p->c.N,
          p->c.K, (int)p->c.act, bad, worst);
}

static void run_single(const qb_kernels *k, const qb_gemm_h16_args *a, float *pack) {
    k->gemm_h16(a, 0, a->W->N, pack);
}

static void check_paths(const problem *p, qb_h16_type type, const qb_kernels *ks, int n_ks, float *scratch) {
    const h16_case *c = &p->c;
    qb_h16_weights plain = {.N = c->N, .K = c->K, .type = type, .w = p->w};
    float *ref = new_c(p), *ref_bf16 = new_c(p);
    qb_gemm_h16_args a = args_for(p, &plain, ref);
    qb_gemm_h16_scalar(&a, 0, c->N, scratch);
    a.C = ref_bf16;
    qb_gemm_h16_scalar_bf16_acts(&a, 0, c->N, scratch);
    char what[96];
    for (int i = 0; i < n_ks; i++) {
        qb_h16_weights W;
        CHECK(qb_h16_weights_prepare(&ks[i], p->w, type, c->N, c->K, &W), "prepare %s", ks[i].name);
        bool dot = W.pairs && (c->M <= QB_H16_DOT_MAX_ROWS || c->N < QB_H16_ROW_SPLIT_N);
        float *got = new_c(p), *got2 = new_c(p);
        a = args_for(p, &W, got);
        run_single(&ks[i], &a, scratch);
        snprintf(what, sizeof what, "%s %s %s", ks[i].name, type_names[type], dot ? "dot" : "widen");
        compare(p, got, dot ? ref_bf16 : ref, SUM_TOL, what);
        if (dot) {
            snprintf(what, sizeof what, "%s bf16 dot vs exact activations", ks[i].name);
            compare(p, got, ref, BF16_ACT_TOL, what);
            /* The same table's widen path, as on an AVX-512 CPU without BF16. */
            a = args_for(p, &plain, got2);
            run_single(&ks[i], &a, scratch);
            snprintf(what, sizeof what, "%s bf16 widen", ks[i].name);
            compare(p, got2, ref, SUM_TOL, what);
            a.W = &W;
        } else if (W.pairs) {
            /* widened from the packed pairs: what the rows give, bit for bit */
            a = args_for(p, &plain, got2);
            run_single(&ks[i], &a, scratch);
            CHECK(!memcmp(got, got2, (size_t)c->M * p->ldc * sizeof *got), "%s: pairs and rows widen differently",
                  what);
            a.W = &W;
        }
        a.C = got2;
        qb_pool *pool = qb_test_pool(2);
        qb_gemm_h16(&ks[i], &a, pool, scratch);
        qb_pool_free(pool);
        CHECK(!memcmp(got, got2, (size_t)c->M * p->ldc * sizeof *got), "%s: 2 threads differ from 1", what);
        qb_h16_weights_release(&W);
        free(got);
        free(got2);
    }
    free(ref);
    free(ref_bf16);
}

static const h16_case cases[] = {
    {1, 1, 1, false, false, QB_ACT_NONE},
    {1, 3, 17, true, false, QB_ACT_NONE},
    {3, 17, 3, true, true, QB_ACT_GELU},
    {17, 127, 17, true, false, QB_ACT_TANH},
    {127, 17, 127, false, true, QB_ACT_NONE},
    {17, 769, 769, true, true, QB_ACT_GELU},      /* K past one block, N past two */
    {63, 96, 1537, true, true, QB_ACT_NONE},      /* odd K in three blocks */
    {127, 769, 127, true, true, QB_ACT_GELU},     /* many rows: widened even with pairs */
    {8, 48, 768, true, false, QB_ACT_RELU},       /* whole tiles, one block */
    {9, 100, 64, true, true, QB_ACT_GELU_TANH},   /* N split over threads, ragged last panel */
    {33, 769, 3072, true, true, QB_ACT_NONE},     /* BERT's FFN output shape, ragged */
    {3, 2, 769, true, false, QB_ACT_NONE},        /* classifier: rows split over threads */
};

static void test_prepare_limits(const qb_kernels *k) {
    uint16_t w[4] = {0};
    qb_h16_weights W;
    CHECK(!qb_h16_weights_prepare(k, w, QB_H16_BF16, 1, QB_H16_K_MAX + 1, &W) && !W.pairs, "K past the limit");
    CHECK(!qb_h16_weights_prepare(k, w, QB_H16_F16, 0, 4, &W), "N = 0");
    CHECK(qb_h16_weights_prepare(k, w, QB_H16_F16, 1, 4, &W) && !W.pairs, "F16 is never packed");
    qb_h16_weights_release(&W);
}

int main(void) {
    qb_kernels ks[QB_ISA_COUNT];
    int n_ks = 0;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (qb_test_isa_left_out(qb_isa_name((qb_isa)i))) printf("skipped: %s (QBERT_ISA)\n", qb_isa_name((qb_isa)i));
        else if (qb_kernels_select((qb_isa)i, &ks[n_ks])) n_ks++;
        else printf("skipped: %s not supported by this CPU\n", qb_isa_name((qb_isa)i));
    }
    if (!qb_cpu_has_avx512_bf16()) printf("skipped: the BF16 dot path (no AVX512_BF16)\n");
    test_prepare_limits(&ks[n_ks - 1]);
    float *scratch = aligned_alloc(64, 2 * qb_gemm_h16_pack_floats() * sizeof(float));
    /* Under QB_SANITIZE (the sanitizers, qemu) a case keeps to 20M
     * multiply-adds by taking fewer rows. */
    bool sanitize = getenv("QB_SANITIZE") != NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h16_case c = cases[i];
        long rows_max = 20000000L / ((long)c.N * c.K);
        if (sanitize && c.M > rows_max) c.M = rows_max > 1 ? (int)rows_max : 1;
        for (int t = 0; t < 2; t++) {
            problem p;
            problem_make(&p, &c, (qb_h16_type)t);
            check_paths(&p, (qb_h16_type)t, ks, n_ks, scratch);
            problem_free(&p);
        }
    }
    free(scratch);
    return qb_test_done("test_kernels_h16");
}
