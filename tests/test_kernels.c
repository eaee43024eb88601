/* The compute kernels: every ISA this CPU runs against the scalar
 * reference, and the scalar reference against double precision.
 *
 * Tolerances (explicit, per check):
 *   GEMM, scalar vs double and SIMD vs scalar: |c - ref| <= 1e-5 * scale,
 *     scale = |alpha| sum_k |a_mk b_kn| + |bias_n| + |res_mn| (the size of the
 *     terms that were rounded, so cancellation cannot fake a failure);
 *   GEMM, 2 threads vs 1: bit-identical (the split never changes the order
 *     of operations of any output);
 *   act / softmax / layernorm vs double: 1e-6 * (|ref| + 1), layernorm
 *     1e-5 * (|ref| + 1) (its float mean carries ~n ulps). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "test_util.h"

#define GEMM_TOL 1e-5
#define ROW_TOL 1e-6
#define LN_TOL 1e-5
#define SENTINEL 12345.0f

typedef struct {
    int M, N, K;
    bool b_trans, bias, residual;
    qb_act act;
    float alpha;
    int pad; /* extra elements on every leading dimension */
} gemm_case;

static const char *const act_names[] = {"none", "gelu", "gelu_tanh", "relu", "tanh"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double act_double(qb_act act, double x) {
    switch (act) {
    case QB_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case QB_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case QB_ACT_RELU: return x > 0 ? x : 0;
    case QB_ACT_TANH: return tanh(x);
    default: return x;
    }
}

/* The kernels for every ISA this CPU runs, scalar first; reports the ones skipped. */
static int available_kernels(qb_kernels *ks) {
    int n = 0;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (i != QB_ISA_SCALAR && qb_test_isa_left_out(qb_isa_name((qb_isa)i))) /* the reference stays */
            printf("skipped: %s (QBERT_ISA)\n", qb_isa_name((qb_isa)i));
        else if (qb_kernels_select((qb_isa)i, &ks[n]))
            n++;
        else
            printf("skipped: %s not supported by this CPU\n", qb_isa_name((qb_isa)i));
    }
    return n;
}

static void test_isa_selection(void) {
    qb_isa isa;
    CHECK(qb_isa_from_name("scalar", &isa) && isa == QB_ISA_SCALAR, "scalar");
    CHECK(qb_isa_from_name("avx2", &isa) && isa == QB_ISA_AVX2, "avx2");
    CHECK(qb_isa_from_name("AVX512", &isa) && isa == QB_ISA_AVX512, "AVX512 (case-insensitive)");
    CHECK(!qb_isa_from_name("avx1024", &isa), "unknown name rejected");
    CHECK(!qb_isa_from_name("", &isa), "empty name rejected");
    CHECK(!qb_isa_from_name(NULL, &isa), "NULL name rejected");
    CHECK(qb_isa_supported(qb_cpu_best_isa()), "best ISA is supported");
    CHECK(qb_isa_supported(QB_ISA_SCALAR), "scalar always supported");
    CHECK(!qb_isa_supported(QB_ISA_COUNT), "out of range ISA");
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        qb_kernels k;
        memset(&k, 0, sizeof k);
        bool ok = qb_kernels_select((qb_isa)i, &k);
        CHECK(ok == qb_isa_supported((qb_isa)i), "select(%s) agrees with isa_supported", qb_isa_name((qb_isa)i));
        if (!ok) continue;
        CHECK(k.isa == (qb_isa)i && strcmp(k.name, qb_isa_name((qb_isa)i)) == 0, "table of %s", k.name);
        CHECK(k.gemm_f32 && k.layernorm_f32 && k.softmax_f32 && k.act_f32, "table of %s filled", k.name);
        qb_isa back;
        CHECK(qb_isa_from_name(k.name, &back) && back == (qb_isa)i, "name round trip %s", k.name);
    }
    qb_kernels k;
    CHECK(!qb_kernels_select(QB_ISA_COUNT, &k), "select rejects out of range ISA");
    printf("best ISA on this CPU: %s\n", qb_isa_name(qb_cpu_best_isa()));
}

/* Operands of one case, laid out with the case's padded strides. */
typedef struct {
    gemm_case c;
    int lda, ldb, ldc, ldr;
    float *A, *B, *bias, *res;
    double *ref, *scale;
} gemm_data;

static void gemm_data_make(const gemm_case *c, gemm_data *d) {
    d->c = *c;
    d->lda = c->K + c->pad;
    d->ldb = (c->b_trans ? c->K : c->N) + c->pad;
    d->ldc = c->N + c->pad;
    d->ldr = c->N + 2 * c->pad;
    d->A = qb_test_uniform_array(&rng_state, (size_t)c->M * d->lda, -1, 1);
    d->B = qb_test_uniform_array(&rng_state, (size_t)(c->b_trans ? c->N : c->K) * d->ldb, -1, 1);
    d->bias = c->bias ? qb_test_uniform_array(&rng_state, (size_t)c->N, -1, 1) : NULL;
    d->res = c->residual ? qb_test_uniform_array(&rng_state, (size_t)c->M * d->ldr, -1, 1) : NULL;
    d->ref = malloc((size_t)c->M * c->N * sizeof(double));
    d->scale = malloc((size_t)c->M * c->N * sizeof(double));
    for (int m = 0; m < c->M; m++) {
        for (int n = 0; n < c->N; n++) {
            double acc = 0, mag = 0;
            for (int k = 0; k < c->K; k++) {
                double b = c->b_trans ? d->B[(size_t)n * d->ldb + k] : d->B[(size_t)k * d->ldb + n];
                acc += (double)d->A[(size_t)m * d->lda + k] * b;
                mag += fabs((double)d->A[(size_t)m * d->lda + k] * b);
            }
            double v = c->alpha * acc, s = fabs(c->alpha) * mag;
            if (d->bias) v += d->bias[n], s += fabs(d->bias[n]);
            v = act_double(c->act, v);
            if (d->res) v += d->res[(size_t)m * d->ldr + n], s += fabs(d->res[(size_t)m * d->ldr + n]);
            d->ref[(size_t)m * c->N + n] = v;
            d->scale[(size_t)m * c->N + n] = s;
        }
    }
}

static void gemm_data_free(gemm_data *d) {
    free(d->A), free(d->B), free(d->bias), free(d->res), free(d->ref), free(d->scale);
}

static float *gemm_run(const qb_kernels *k, const gemm_data *d, int n_threads, float *scratch, const float *panels) {
    float *C = malloc((size_t)d->c.M * d->ldc * sizeof(float));
    for (size_t i = 0; i < (size_t)d->c.M * d->ldc; i++) C[i] = SENTINEL;
    qb_gemm_f32_args a = {
        .M = d->c.M,
        .N = d->c.N,
        .K = d->c.K,
        .A = d->A,
        .lda = d->lda,
        .B = d->B,
        .ldb = d->ldb,
        .b_trans = d->c.b_trans,
        .C = C,
        .ldc = d->ldc,
        .bias = d->bias,
        .residual = d->res,
        .ldr = d->ldr,
        .alpha = d->c.alpha,
        .act = d->c.act,
        .B_panels = panels,
    };
    qb_pool *pool = qb_test_pool(n_threads);
    qb_gemm_f32(k, &a, pool, scratch);
    qb_pool_free(pool);
    return C;
}

static void describe(const gemm_data *d, char *buf, size_t cap) {
    snprintf(buf, cap, "M=%d N=%d K=%d %s bias=%d res=%d act=%s alpha=%g pad=%d", d->c.M, d->c.N, d->c.K,
             d->c.b_trans ? "b_trans" : "b_rows", d->c.bias, d->c.residual, act_names[d->c.act], d->c.alpha, d->c.pad);
}

/* Max of |C - ref| / scale; also checks that C's padding was not written. */
static double gemm_error(const gemm_data *d, const float *C, const double *ref_or_null, const float *ref_f,
                         bool *pad_ok) {
    double worst = 0;
    *pad_ok = true;
    for (int m = 0; m < d->c.M; m++) {
        for (int n = 0; n < d->ldc; n++) {
            float c = C[(size_t)m * d->ldc + n];
            if (n >= d->c.N) {
                *pad_ok &= c == SENTINEL;
                continue;
            }
            size_t i = (size_t)m * d->c.N + n;
            double r = ref_or_null ? ref_or_null[i] : ref_f[(size_t)m * d->ldc + n];
            double e = fabs(c - r) / (d->scale[i] + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    }
    return worst;
}

static double worst_gemm_err[QB_ISA_COUNT];

/* A weight packed once at load: within the tolerance of the scalar
 * reference (ref), and the same bits on one thread and on several (whose
 * parts start inside the panels).  It may differ from packing per call in
 * the last bits: its K blocks are larger. */
static void check_gemm_panels(const qb_kernels *k, const gemm_data *d, const float *ref, float *scratch,
                              const char *what) {
    size_t n = qb_gemm_f32_panels_floats(k, d->c.N, d->c.K);
    if (!n) return;
    float *w = malloc((size_t)d->c.N * d->c.K * sizeof *w + 1);
    float *panels = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (int r = 0; r < d->c.N; r++) memcpy(w + (size_t)r * d->c.K, d->B + (size_t)r * d->ldb, (size_t)d->c.K * sizeof *w);
    k->gemm_f32_pack_panels(w, d->c.N, d->c.K, panels);
    float *one = gemm_run(k, d, 1, scratch, panels), *three = gemm_run(k, d, 3, scratch, panels);
    bool pad_ok;
    double e = gemm_error(d, one, NULL, ref, &pad_ok);
    if (e > worst_gemm_err[k->isa]) worst_gemm_err[k->isa] = e;
    CHECK(e <= GEMM_TOL && pad_ok, "%s prepacked vs scalar: %s: err %.3g pad_ok %d", k->name, what, e, pad_ok);
    CHECK(memcmp(one, three, (size_t)d->c.M * d->ldc * sizeof(float)) == 0, "%s prepacked, 3 threads != 1 thread: %s",
          k->name, what);
    free(w), free(panels), free(one), free(three);
}

static void check_gemm_case(const qb_kernels *ks, int nk, const gemm_case *c, float *scratch) {
    gemm_data d;
    char what[200];
    bool pad_ok;
    gemm_data_make(c, &d);
    describe(&d, what, sizeof what);
    float *ref = gemm_run(&ks[0], &d, 1, scratch, NULL);
    double e = gemm_error(&d, ref, d.ref, NULL, &pad_ok);
    if (e > worst_gemm_err[0]) worst_gemm_err[0] = e;
    CHECK(e <= GEMM_TOL && pad_ok, "scalar vs double: %s: err %.3g pad_ok %d", what, e, pad_ok);
    for (int i = 1; i < nk; i++) {
        float *one = gemm_run(&ks[i], &d, 1, scratch, NULL);
        float *two = gemm_run(&ks[i], &d, 2, scratch, NULL);
        e = gemm_error(&d, one, NULL, ref, &pad_ok);
        if (e > worst_gemm_err[ks[i].isa]) worst_gemm_err[ks[i].isa] = e;
        CHECK(e <= GEMM_TOL && pad_ok, "%s vs scalar: %s: err %.3g pad_ok %d", ks[i].name, what, e, pad_ok);
        CHECK(memcmp(one, two, (size_t)d.c.M * d.ldc * sizeof(float)) == 0, "%s 2 threads != 1 thread: %s", ks[i].name,
              what);
        if (c->b_trans) check_gemm_panels(&ks[i], &d, ref, scratch, what);
        free(one), free(two);
    }
    free(ref);
    gemm_data_free(&d);
}

/* Every size of {1, 3, 17, 127, 769} in every dimension: all combinations
 * with at most one 769 (the rest would only repeat the same edges at a
 * higher cost), cycling through layouts, epilogues, alphas and strides. */
static void test_gemm_shapes(const qb_kernels *ks, int nk, float *scratch) {
    static const int sizes[] = {1, 3, 17, 127, 769};
    static const float alphas[] = {1.0f, 0.125f, -0.7f};
    int i = 0, cases = 0;
    for (int a = 0; a < 5; a++) {
        for (int b = 0; b < 5; b++) {
            for (int c = 0; c < 5; c++, i++) {
                if ((a == 4) + (b == 4) + (c == 4) > 1) continue;
                gemm_case gc = {
                    .M = sizes[a],
                    .N = sizes[b],
                    .K = sizes[c],
                    .b_trans = i % 2 == 0,
                    .bias = i % 3 != 0,
                    .residual = i % 4 >= 2,
                    .act = (qb_act)(i % 5),
                    .alpha = alphas[i % 3],
                    .pad = (i % 7) * 3,
                };
                check_gemm_case(ks, nk, &gc, scratch);
                cases++;
            }
        }
    }
    printf("gemm: %d odd shapes x %d ISAs\n", cases, nk);
}

/* The shapes BERT itself issues: Linear layers with their epilogues (few
 * rows against the weight's: the AVX-512 kernel runs them swapped, with
 * transposed stores, over several K blocks when K = 3072), and the
 * attention products with the strides of a fused QKV buffer.  The last
 * case reads full strips of A in place at an lda of exactly 4 KiB (every
 * row of a strip in one cache set) next to a ragged, packed last strip. */
static void test_gemm_bert_shapes(const qb_kernels *ks, int nk, float *scratch) {
    const gemm_case cases[] = {
        {.M = 128, .N = 768, .K = 768, .b_trans = true, .bias = true, .residual = true, .act = QB_ACT_NONE, .alpha = 1},
        {.M = 40, .N = 768, .K = 3072, .b_trans = true, .bias = true, .residual = true, .act = QB_ACT_NONE, .alpha = 1},
        {.M = 25, .N = 3072, .K = 768, .b_trans = true, .bias = true, .act = QB_ACT_GELU, .alpha = 1},
        {.M = 128, .N = 128, .K = 64, .b_trans = true, .act = QB_ACT_NONE, .alpha = 0.125f, .pad = 2304 - 64},
        {.M = 128, .N = 64, .K = 128, .b_trans = false, .act = QB_ACT_NONE, .alpha = 1, .pad = 2304 - 64},
        {.M = 130, .N = 1, .K = 3072, .b_trans = true, .bias = true, .act = QB_ACT_TANH, .alpha = 1},
        {.M = 61, .N = 100, .K = 1000, .b_trans = true, .residual = true, .act = QB_ACT_RELU, .alpha = 1, .pad = 24},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_gemm_case(ks, nk, &cases[i], scratch);
}

static double rel_err(double got, double want) { return fabs(got - want) / (fabs(want) + 1.0); }

static const int row_lengths[] = {1, 3, 17, 127, 769};

static void test_act(const qb_kernels *k) {
    double worst[5] = {0};
    for (int a = QB_ACT_NONE; a <= QB_ACT_TANH; a++) {
        for (int li = 0; li < 5; li++) {
            int n = row_lengths[li];
            /* Wide enough to reach the clamps and the negative tails. */
            float *x = qb_test_uniform_array(&rng_state, (size_t)n, -12, 12);
            if (n > 16) x[0] = 0.0f, x[1] = -1e-6f, x[2] = 40.0f, x[3] = -40.0f, x[4] = 3e-4f, x[5] = 0.6249f;
            if (n > 16) x[6] = NAN; /* a NaN stays one, as in the reference: no clamp may hide it */
            float *y = malloc((size_t)n * sizeof(float));
            memcpy(y, x, (size_t)n * sizeof(float));
            k->act_f32((qb_act)a, y, n);
            for (int i = 0; i < n; i++) {
                double want = act_double((qb_act)a, x[i]);
                double e = isnan(want) ? (isnan(y[i]) ? 0 : INFINITY) : rel_err(y[i], want);
                if (e > worst[a]) worst[a] = e;
                if (!(e <= ROW_TOL)) {
                    CHECK(e <= ROW_TOL, "%s act %s n=%d x=%.9g: got %.9g want %.9g", k->name, act_names[a], n, x[i],
                          y[i], act_double((qb_act)a, x[i]));
                    break;
                }
            }
            free(x), free(y);
        }
    }
    printf("%s act max err / (|ref| + 1): none %.2g gelu %.2g gelu_tanh %.2g relu %.2g tanh %.2g\n", k->name, worst[0],
           worst[1], worst[2], worst[3], worst[4]);
}

static void test_softmax(const qb_kernels *k) {
    double worst = 0;
    for (int li = 0; li < 5; li++) {
        int n = row_lengths[li];
        float *x = qb_test_uniform_array(&rng_state, (size_t)n, -30, 30);
        if (n > 3) x[1] = -INFINITY, x[2] = -3.4e38f; /* masked positions */
        float *y = malloc((size_t)n * sizeof(float));
        memcpy(y, x, (size_t)n * sizeof(float));
        k->softmax_f32(y, n);
        double max = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
        for (int i = 0; i < n; i++) sum += exp((double)x[i] - max);
        for (int i = 0; i < n; i++) {
            double e = rel_err(y[i], exp((double)x[i] - max) / sum);
            worst = e > worst ? e : worst;
        }
        free(x), free(y);
    }
    CHECK(worst <= ROW_TOL, "%s softmax err %.3g", k->name, worst);
    printf("%s softmax max err %.2g\n", k->name, worst);
}

static void test_layernorm(const qb_kernels *k) {
    double worst = 0;
    for (int li = 0; li < 5; li++) {
        int n = row_lengths[li];
        /* An offset larger than the spread: one-pass variance would lose it. */
        float *x = qb_test_uniform_array(&rng_state, (size_t)n, 2, 4);
        float *g = qb_test_uniform_array(&rng_state, (size_t)n, 0.5f, 1.5f);
        float *b = qb_test_uniform_array(&rng_state, (size_t)n, -0.5f, 0.5f);
        float *y = malloc((size_t)n * sizeof(float));
        const float eps = 1e-12f;
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += x[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= n;
        k->layernorm_f32(x, g, b, eps, n, y);
        for (int i = 0; i < n; i++) {
            double want = (x[i] - mean) / sqrt(var + eps) * g[i] + b[i];
            if (n == 1) want = b[i]; /* (x - mean) is exactly 0 */
            double e = rel_err(y[i], want);
            worst = e > worst ? e : worst;
        }
        /* In place, as the graph calls it. */
        k->layernorm_f32(x, g, b, eps, n, x);
        CHECK(memcmp(x, y, (size_t)n * sizeof(float)) == 0, "%s layernorm in place differs, n=%d", k->name, n);
        free(x), free(g), free(b), free(y);
    }
    CHECK(worst <= LN_TOL, "%s layernorm err %.3g", k->name, worst);
    printf("%s layernorm max err %.2g\n", k->name, worst);
}

/* find_nonfinite against the definition, on every kernel set: F32, F16 and
 * BF16 element sizes, lengths around the vector widths and the scan's
 * blocks, data at every byte offset, one NaN or infinity (or none)
 * anywhere, and a second one later that must not win. */
static void test_find_nonfinite(const qb_kernels *k) {
    static const struct {
        int size;
        uint32_t mask, nan, inf;
    } types[] = {{4, 0x7f800000u, 0x7fc00001u, 0xff800000u}, {2, 0x7c00, 0x7e00, 0xfc00}, {2, 0x7f80, 0xffc1, 0x7f80}};
    static const int64_t lengths[] = {0, 1, 7, 8, 15, 16, 17, 31, 33, 64, 2047, 2048, 2049, 5003};
    unsigned char *buf = malloc(4 * 5003 + 8);
    int bad = 0;
    for (size_t ty = 0; ty < sizeof types / sizeof *types; ty++)
        for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++)
            for (int off = 0; off < 4; off++)
                for (int trial = 0; trial < 6; trial++) {
                    int64_t n = lengths[li], want = -1;
                    int size = types[ty].size;
                    unsigned char *p = buf + off;
                    for (int64_t i = 0; i < n * size; i++) p[i] = (unsigned char)(i * 37 % 251 & 0x3f); /* finite */
                    if (n && trial) {
                        want = trial == 1 ? 0 : trial == 2 ? n - 1
                               : (int64_t)qb_test_below(&rng_state, (uint32_t)n);
                        uint32_t v = trial % 2 ? types[ty].nan : types[ty].inf;
                        memcpy(p + want * size, &v, (size_t)size); /* little-endian */
                        if (want + 1 < n) memcpy(p + (n - 1) * size, &v, (size_t)size);
                    }
                    int64_t got = k->find_nonfinite(p, n, size, types[ty].mask);
                    if (got != want && bad++ < 5)
                        CHECK(0, "%s find_nonfinite size %d n %lld offset %d: got %lld, want %lld", k->name, size,
                              (long long)n, off, (long long)got, (long long)want);
                }
    CHECK(bad == 0, "%s find_nonfinite: %d wrong", k->name, bad);
    free(buf);
}

int main(void) {
    qb_kernels ks[QB_ISA_COUNT];
    test_isa_selection();
    int nk = available_kernels(ks);
    float *scratch = aligned_alloc(64, 3 * qb_gemm_f32_pack_floats() * sizeof(float));
    test_gemm_shapes(ks, nk, scratch);
    test_gemm_bert_shapes(ks, nk, scratch);
    for (int i = 0; i < nk; i++) printf("%s gemm max err / scale %.3g\n", ks[i].name, worst_gemm_err[ks[i].isa]);
    for (int i = 0; i < nk; i++) {
        test_act(&ks[i]);
        test_softmax(&ks[i]);
        test_layernorm(&ks[i]);
        test_find_nonfinite(&ks[i]);
    }
    free(scratch);
    return qb_test_done("test_kernels");
}
