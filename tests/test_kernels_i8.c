/* The integer kernels: every SIMD path the CPU runs against the scalar
 * reference on awkward shapes, with the integer sums compared exactly (a
 * scale-1, bias-free configuration), the full epilogue within a small
 * tolerance, full-range data that would saturate an int16 scheme, threads
 * against one thread, and quantization bit-exact against the reference
 * and against values worked out by hand.  QB_SANITIZE=1 (also set for
 * qemu) cuts BERT's shapes to 4 rows. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_i8.h"
#include "test_util.h"

typedef struct {
    uint64_t s;
} rng;

static uint32_t rng_next(rng *r) {
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 11);
}

static float rng_unit(rng *r) { return (float)(rng_next(r) % 2000001) / 1000000.0f - 1.0f; }

/* Bytes with the extremes over-represented, so sums that an int16 scheme
 * would clip (255 * -128 + 255 * -128) occur often. */
static uint8_t rng_u8(rng *r) {
    uint32_t v = rng_next(r);
    return v % 4 == 0 ? 255 : v % 4 == 1 ? 0 : (uint8_t)(v >> 8);
}

static int8_t rng_s8(rng *r) {
    uint32_t v = rng_next(r);
    return v % 4 == 0 ? -128 : v % 4 == 1 ? 127 : (int8_t)(uint8_t)(v >> 8);
}

/* One problem with its own buffers; the strides exceed the widths so
 * stride mistakes show. */
typedef struct {
    int M, N, K;
    uint8_t *A;
    int8_t *W;
    float *w_scale, *a_scale, *bias, *residual, *C_ref, *C;
    int32_t *a_zero;
} problem;

static problem problem_make(int M, int N, int K, rng *r) {
    problem p = {.M = M, .N = N, .K = K};
    p.A = malloc((size_t)M * (K + 5));
    p.W = malloc((size_t)N * K);
    p.w_scale = malloc(sizeof(float) * N);
    p.bias = malloc(sizeof(float) * N);
    p.a_scale = malloc(sizeof(float) * M);
    p.a_zero = malloc(sizeof(int32_t) * M);
    p.residual = malloc(sizeof(float) * M * (N + 3));
    p.C_ref = malloc(sizeof(float) * M * (N + 7));
    p.C = malloc(sizeof(float) * M * (N + 7));
    for (size_t i = 0; i < (size_t)M * (K + 5); i++) p.A[i] = rng_u8(r);
    for (size_t i = 0; i < (size_t)N * K; i++) p.W[i] = rng_s8(r);
    for (int n = 0; n < N; n++) {
        p.w_scale[n] = (1.0f + rng_unit(r)) / (128.0f * sqrtf((float)K));
        p.bias[n] = rng_unit(r);
    }
    for (int m = 0; m < M; m++) {
        p.a_scale[m] = (1.5f + rng_unit(r)) / 255.0f * 4.0f;
        p.a_zero[m] = m % 3 == 0 ? 0 : m % 3 == 1 ? 255 : (int32_t)(rng_next(r) % 256);
    }
    for (size_t i = 0; i < (size_t)M * (N + 3); i++) p.residual[i] = rng_unit(r);
    return p;
}

static void problem_free(problem *p) {
    free(p->A);
    free(p->W);
    free(p->w_scale);
    free(p->bias);
    free(p->a_scale);
    free(p->a_zero);
    free(p->residual);
    free(p->C_ref);
    free(p->C);
}

static qb_gemm_i8_args problem_args(const problem *p, const qb_i8_weights *w, float *C, bool bias, bool residual,
                                    qb_act act) {
    return (qb_gemm_i8_args){.M = p->M, .N = p->N, .K = p->K, .A = p->A, .lda = p->K + 5, .a_scale = p->a_scale,
                             .a_zero = p->a_zero, .W = w, .C = C, .ldc = p->N + 7,
                             .bias = bias ? p->bias : NULL, .residual = residual ? p->residual : NULL,
                             .ldr = p->N + 3, .act = act};
}

/* Largest |got - want| / (1 + |want|) over the M x N outputs. */
static double max_rel_err(const problem *p, const float *got, const float *want) {
    double worst = 0.0;
    for (int m = 0; m < p->M; m++)
        for (int n = 0; n < p->N; n++) {
            size_t i = (size_t)m * (p->N + 7) + n;
            double e = fabs((double)got[i] - want[i]) / (1.0 + fabs((double)want[i]));
            if (!(e <= worst)) worst = e; /* NaN sticks */
        }
    return worst;
}

static bool outputs_identical(const problem *p, const float *a, const float *b) {
    for (int m = 0; m < p->M; m++)
        if (memcmp(a + (size_t)m * (p->N + 7), b + (size_t)m * (p->N + 7), sizeof(float) * p->N) != 0) return false;
    return true;
}

/* The scalar reference's integer sums against int64 arithmetic written
 * here, so the reference itself is checked once per shape. */
static void check_reference_sums(const qb_kernels_i8 *ref, const problem *p) {
    float *ones_a = malloc(sizeof(float) * p->M), *ones_w = malloc(sizeof(float) * p->N);
    for (int m = 0; m < p->M; m++) ones_a[m] = 1.0f;
    for (int n = 0; n < p->N; n++) ones_w[n] = 1.0f;
    qb_i8_weights w;
    CHECK(qb_i8_weights_pack(ref, p->W, ones_w, p->N, p->K, &w), "pack");
    qb_gemm_i8_args a = problem_args(p, &w, p->C_ref, false, false, QB_ACT_NONE);
    a.a_scale = ones_a;
    ref->gemm(&a, 0, p->N);
    int bad = 0;
    for (int m = 0; m < p->M; m++)
        for (int n = 0; n < p->N; n++) {
            int64_t s = 0;
            for (int k = 0; k < p->K; k++)
                s += ((int64_t)p->A[(size_t)m * (p->K + 5) + k] - p->a_zero[m]) * p->W[(size_t)n * p->K + k];
            bad += p->C_ref[(size_t)m * (p->N + 7) + n] != (float)s;
        }
    CHECK(bad == 0, "scalar sums wrong in %d places (%dx%dx%d)", bad, p->M, p->N, p->K);
    qb_i8_weights_free(&w);
    free(ones_a);
    free(ones_w);
}

/* Integer sums exact: with unit scales, no bias and no activation the
 * output is (float)(acc - zero * colsum), identical only if acc is. */
static void check_exact_sums(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, const problem *p) {
    float *ones_a = malloc(sizeof(float) * p->M), *ones_w = malloc(sizeof(float) * p->N);
    for (int m = 0; m < p->M; m++) ones_a[m] = 1.0f;
    for (int n = 0; n < p->N; n++) ones_w[n] = 1.0f;
    qb_i8_weights wr, wk;
    CHECK(qb_i8_weights_pack(ref, p->W, ones_w, p->N, p->K, &wr), "pack scalar");
    CHECK(qb_i8_weights_pack(k, p->W, ones_w, p->N, p->K, &wk), "pack %s", k->name);
    qb_gemm_i8_args ar = problem_args(p, &wr, p->C_ref, false, false, QB_ACT_NONE);
    qb_gemm_i8_args ak = problem_args(p, &wk, p->C, false, false, QB_ACT_NONE);
    ar.a_scale = ak.a_scale = ones_a;
    ref->gemm(&ar, 0, p->N);
    k->gemm(&ak, 0, p->N);
    CHECK(outputs_identical(p, p->C, p->C_ref), "%s integer sums differ (%dx%dx%d)", k->name, p->M, p->N, p->K);
    qb_i8_weights_free(&wr);
    qb_i8_weights_free(&wk);
    free(ones_a);
    free(ones_w);
}

/* The full epilogue with every option combination. */
static void check_epilogue(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, const problem *p) {
    static const qb_act acts[] = {QB_ACT_NONE, QB_ACT_GELU, QB_ACT_GELU_TANH, QB_ACT_RELU, QB_ACT_TANH};
    qb_i8_weights wr, wk;
    CHECK(qb_i8_weights_pack(ref, p->W, p->w_scale, p->N, p->K, &wr), "pack scalar");
    CHECK(qb_i8_weights_pack(k, p->W, p->w_scale, p->N, p->K, &wk), "pack %s", k->name);
    for (int opt = 0; opt < 4; opt++)
        for (size_t ai = 0; ai < sizeof acts / sizeof *acts; ai++) {
            bool bias = opt & 1, residual = opt & 2;
            qb_gemm_i8_args ar = problem_args(p, &wr, p->C_ref, bias, residual, acts[ai]);
            qb_gemm_i8_args ak = problem_args(p, &wk, p->C, bias, residual, acts[ai]);
            ref->gemm(&ar, 0, p->N);
            k->gemm(&ak, 0, p->N);
            double e = max_rel_err(p, p->C, p->C_ref);
            CHECK(e < 2e-6, "%s %dx%dx%d bias=%d residual=%d act=%d: rel err %.3g", k->name, p->M, p->N, p->K, bias,
                  residual, (int)acts[ai], e);
            if (acts[ai] == QB_ACT_NONE || acts[ai] == QB_ACT_RELU)
                CHECK(outputs_identical(p, p->C, p->C_ref), "%s %dx%dx%d act=%d: exact activations must match bits",
                      k->name, p->M, p->N, p->K, (int)acts[ai]);
        }
    /* Threads split columns (or rows when columns are few) but each output
     * is computed the same way, so the result is bit-identical. */
    for (int threads = 2; threads <= 3; threads++) {
        qb_gemm_i8_args a1 = problem_args(p, &wk, p->C_ref, true, true, QB_ACT_GELU);
        qb_gemm_i8_args an = problem_args(p, &wk, p->C, true, true, QB_ACT_GELU);
        qb_pool *pool = qb_test_pool(threads);
        qb_gemm_i8(k, &a1, NULL);
        qb_gemm_i8(k, &an, pool);
        qb_pool_free(pool);
        CHECK(outputs_identical(p, p->C, p->C_ref), "%s %d threads differ from one (%dx%dx%d)", k->name, threads,
              p->M, p->N, p->K);
    }
    qb_i8_weights_free(&wr);
    qb_i8_weights_free(&wk);
}

/* Repacking into caller buffers (int8 attention) matches a fresh pack, in
 * buffers a larger layout used first, so nothing stale survives. */
static void check_repack(const qb_kernels_i8 *k, const problem *p) {
    int cap_n = p->N + 33, cap_k = p->K + 70;
    qb_i8_weights fresh, re = {
        .packed = aligned_alloc(64, qb_i8_weights_bytes(k, cap_n, cap_k)),
        .colsum = malloc(sizeof(int32_t) * cap_n),
        .colsum_split = malloc(sizeof(int32_t) * cap_n),
        .scale = malloc(sizeof(float) * cap_n),
    };
    int8_t *big = malloc((size_t)cap_n * cap_k);
    for (size_t i = 0; i < (size_t)cap_n * cap_k; i++) big[i] = (int8_t)(i * 37 + 11);
    qb_i8_weights_repack(k, big, 0.25f, cap_n, cap_k, &re);
    qb_i8_weights_repack(k, p->W, 0.5f, p->N, p->K, &re);
    float *half = malloc(sizeof(float) * p->N);
    for (int n = 0; n < p->N; n++) half[n] = 0.5f;
    CHECK(qb_i8_weights_pack(k, p->W, half, p->N, p->K, &fresh), "pack %s", k->name);
    bool same = re.N == fresh.N && re.K == fresh.K && re.isa == fresh.isa && re.packed_bytes == fresh.packed_bytes &&
                !memcmp(re.packed, fresh.packed, qb_i8_weights_bytes(k, p->N, p->K)) &&
                !memcmp(re.colsum, fresh.colsum, sizeof(int32_t) * p->N) &&
                !memcmp(re.colsum_split, fresh.colsum_split, sizeof(int32_t) * p->N) &&
                !memcmp(re.scale, fresh.scale, sizeof(float) * p->N);
    CHECK(same, "%s repack differs from pack (%dx%d)", k->name, p->N, p->K);
    qb_i8_weights_free(&fresh);
    qb_i8_weights_free(&re);
    free(big);
    free(half);
}

/* Weights halved into [-64, 64] (both ends kept), as --reduce-range makes
 * them: AVX2 runs those on another scheme than full-range ones. */
static void problem_narrow(problem *p) {
    for (size_t i = 0; i < (size_t)p->N * p->K; i++) p->W[i] = p->W[i] == 127 ? 64 : (int8_t)(p->W[i] / 2);
}

/* Every check of one problem, with full-range weights and then narrow. */
static void check_problem(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, problem *p, bool repack) {
    for (int narrow = 0; narrow < 2; narrow++) {
        if (narrow) problem_narrow(p);
        check_exact_sums(ref, k, p);
        check_epilogue(ref, k, p);
        if (repack) check_repack(k, p);
    }
}

/* few_rows: BERT's shapes on at most 4 rows (their N and K decide the
 * packing and blocking), for the sanitizers and qemu. */
static void check_gemm_shapes(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, rng *r, bool few_rows) {
    static const int dims[] = {1, 3, 17, 127, 769};
    /* BERT-base's shapes, and K past a 1024-k chunk with an odd tail */
    static const int bert[][3] = {{25, 768, 768}, {25, 3072, 768}, {25, 768, 3072}, {128, 2304, 768}, {13, 45, 2051}};
    for (int axis = 0; axis < 3; axis++)
        for (size_t d = 0; d < sizeof dims / sizeof *dims; d++) {
            int shape[3] = {19, 67, 131};
            shape[axis] = dims[d];
            problem p = problem_make(shape[0], shape[1], shape[2], r);
            if (k == ref) check_reference_sums(ref, &p);
            check_problem(ref, k, &p, true);
            problem_free(&p);
        }
    for (size_t s = 0; s < sizeof bert / sizeof *bert; s++) {
        int rows = few_rows && bert[s][0] > 4 ? 4 : bert[s][0];
        problem p = problem_make(rows, bert[s][1], bert[s][2], r);
        check_problem(ref, k, &p, false);
        problem_free(&p);
    }
}

/* Shapes for AMX tiles (K a multiple of 64): one and two row tiles with
 * and without a VNNI row tail, one and two column tiles, narrow last weight
 * blocks, and activations too large for L2 (the row-chunked order). */
static void check_tile_shapes(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, rng *r) {
    static const int shapes[][3] = {{16, 16, 64},  {17, 48, 128}, {31, 67, 64},   {32, 80, 192},
                                    {33, 200, 64}, {48, 64, 256}, {64, 130, 128}, {300, 96, 2048}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        problem p = problem_make(shapes[s][0], shapes[s][1], shapes[s][2], r);
        check_exact_sums(ref, k, &p);
        check_epilogue(ref, k, &p);
        problem_free(&p);
    }
}

/* The worst case for a saturating scheme: every pair of products at the
 * int16 limit's far side, for both signs, full-range and narrow. */
static void check_saturation(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, rng *r, int M, int K) {
    static const int8_t ws[] = {127, -128, 64, -64};
    problem p = problem_make(M, 35, K, r);
    for (size_t s = 0; s < sizeof ws / sizeof *ws; s++) {
        memset(p.A, 255, (size_t)p.M * (p.K + 5));
        memset(p.W, (uint8_t)ws[s], (size_t)p.N * p.K);
        for (int m = 0; m < p.M; m++) p.a_zero[m] = m % 2 ? 255 : 0;
        check_exact_sums(ref, k, &p);
        float want = 255.0f * ws[s] * p.K;
        CHECK(p.C[0] == want, "%s all-extreme row 0: %.0f, want %.0f", k->name, p.C[0], want);
    }
    problem_free(&p);
}

static void check_quantize_row(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, const float *x, int K,
                               const char *what) {
    uint8_t *qr = malloc((size_t)K), *qk = malloc((size_t)K);
    float sr, sk;
    int32_t zr, zk;
    ref->quantize_rows(x, 1, K, K, qr, K, &sr, &zr);
    k->quantize_rows(x, 1, K, K, qk, K, &sk, &zk);
    CHECK(sr == sk && zr == zk && memcmp(qr, qk, (size_t)K) == 0, "%s quantize_rows differs on %s (K=%d)", k->name,
          what, K);
    CHECK(sr > 0.0f && zr >= 0 && zr <= 255, "%s: bad parameters %g %d on %s", k->name, sr, zr, what);
    ref->quantize_rows_fixed(x, 1, K, K, 0.037f, 77, qr, K);
    k->quantize_rows_fixed(x, 1, K, K, 0.037f, 77, qk, K);
    CHECK(memcmp(qr, qk, (size_t)K) == 0, "%s quantize_rows_fixed differs on %s (K=%d)", k->name, what, K);
    free(qr);
    free(qk);
}

static void check_quantize(const qb_kernels_i8 *ref, const qb_kernels_i8 *k, rng *r) {
    static const int lens[] = {1, 3, 15, 16, 17, 127, 769};
    float x[769];
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        int K = lens[l];
        for (int i = 0; i < K; i++) x[i] = 3.0f * rng_unit(r);
        check_quantize_row(ref, k, x, K, "random");
        for (int i = 0; i < K; i++) x[i] = 0.0f;
        check_quantize_row(ref, k, x, K, "zeros");
        for (int i = 0; i < K; i++) x[i] = 1.0f + fabsf(rng_unit(r));
        check_quantize_row(ref, k, x, K, "all positive");
        for (int i = 0; i < K; i++) x[i] = -1e-3f - fabsf(rng_unit(r));
        check_quantize_row(ref, k, x, K, "all negative");
        /* Exact halves of the step: ties go to even in both paths. */
        for (int i = 0; i < K; i++) x[i] = (float)((int)(rng_next(r) % 511) - 255) * 0.5f;
        check_quantize_row(ref, k, x, K, "ties");
        for (int i = 0; i < K; i++) x[i] = i % 2 ? 1e30f : -1e-30f;
        check_quantize_row(ref, k, x, K, "huge and tiny");
    }
    /* Several rows with strides, all in one call. */
    enum { M = 5, K = 37, LD = 41 };
    float rows[M * LD];
    uint8_t qr[M * LD], qk[M * LD];
    float sr[M], sk[M];
    int32_t zr[M], zk[M];
    for (int i = 0; i < M * LD; i++) rows[i] = 10.0f * rng_unit(r);
    memset(qr, 0, sizeof qr);
    memset(qk, 0, sizeof qk);
    ref->quantize_rows(rows, M, K, LD, qr, LD, sr, zr);
    k->quantize_rows(rows, M, K, LD, qk, LD, sk, zk);
    CHECK(!memcmp(qr, qk, sizeof qr) && !memcmp(sr, sk, sizeof sr) && !memcmp(zr, zk, sizeof zr),
          "%s strided rows differ", k->name);
}

static void expect_row(const qb_kernels_i8 *k, const float *x, int K, float scale, int32_t zero, const uint8_t *want,
                       const char *what) {
    uint8_t q[16];
    float s;
    int32_t z;
    k->quantize_rows(x, 1, K, K, q, K, &s, &z);
    CHECK(s == scale && z == zero, "%s %s: scale %g zero %d, want %g %d", k->name, what, s, z, scale, zero);
    CHECK(memcmp(q, want, (size_t)K) == 0, "%s %s: wrong bytes", k->name, what);
}

/* Rows whose scale is exact (range 255 or 510), worked out by hand. */
static void check_quantize_by_hand(const qb_kernels_i8 *k) {
    const float mixed[] = {-100.0f, 155.0f, 0.5f, 1.5f, 2.5f, -0.5f, 154.6f, 0.0f};
    expect_row(k, mixed, 8, 1.0f, 100, (const uint8_t[]){0, 255, 100, 102, 102, 100, 255, 100}, "mixed");
    const float pos[] = {510.0f, 3.0f, 5.0f, 0.0f};
    expect_row(k, pos, 4, 2.0f, 0, (const uint8_t[]){255, 2, 2, 0}, "positive");
    const float neg[] = {-510.0f, -1.0f, -3.0f};
    expect_row(k, neg, 3, 2.0f, 255, (const uint8_t[]){0, 255, 253}, "negative");
    const float zeros[] = {0.0f, 0.0f, -0.0f};
    expect_row(k, zeros, 3, 1.0f, 0, (const uint8_t[]){0, 0, 0}, "zeros");
    const float one[] = {-2.55f};
    uint8_t q;
    float s;
    int32_t z;
    k->quantize_rows(one, 1, 1, 1, &q, 1, &s, &z);
    CHECK(q == 0 && z == 255 && s == -(-2.55f) / 255.0f, "%s single: %d %d %g", k->name, q, z, s);

    const float fixed[] = {0.25f, 0.75f, 1e30f, -1e30f, -5.0f, -5.5f, 3.0f};
    const uint8_t want[] = {10, 12, 255, 0, 0, 0, 16};
    uint8_t out[7];
    k->quantize_rows_fixed(fixed, 1, 7, 7, 0.5f, 10, out, 7);
    CHECK(memcmp(out, want, sizeof want) == 0, "%s quantize_rows_fixed by hand", k->name);
}

/* Symmetric s8 (int8 attention's K and V) against its definition,
 * clamp(round_half_even(x / scale), -128, 127), row-major and transposed,
 * on odd shapes with strided rows; the scale is a power of two, so exact
 * ties of the grid reach the rounding. */
static void check_quantize_s8(const qb_kernels_i8 *k, rng *r) {
    static const int shapes[][2] = {{1, 1}, {3, 17}, {17, 3}, {127, 5}, {2, 769}};
    const float scale = 0.25f;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int rows = shapes[s][0], cols = shapes[s][1], ldx = cols + 3;
        float *x = malloc(sizeof(float) * (size_t)rows * ldx);
        uint8_t *tmp = malloc((size_t)rows * cols);
        int8_t *out = malloc((size_t)rows * cols), *want = malloc((size_t)rows * cols);
        for (int i = 0; i < rows * ldx; i++) {
            int kind = (int)(rng_next(r) % 4);
            x[i] = kind == 0   ? 60.0f * rng_unit(r)                                    /* past +-32: clamps */
                   : kind == 1 ? ((float)((int)(rng_next(r) % 301) - 150) + 0.5f) * scale /* ties */
                   : kind == 2 ? (i % 2 ? 1e30f : -1e30f)
                               : 8.0f * rng_unit(r);
        }
        for (int pass = 0; pass < 2; pass++) {
            bool transpose = pass == 1;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) {
                    float q = nearbyintf(x[(size_t)i * ldx + j] / scale);
                    int8_t v = (int8_t)(q < -128.0f ? -128 : q > 127.0f ? 127 : (int)q);
                    want[transpose ? (size_t)j * rows + i : (size_t)i * cols + j] = v;
                }
            memset(out, 0x55, (size_t)rows * cols);
            qb_i8_quantize_s8(k, x, rows, cols, ldx, scale, tmp, out, transpose);
            CHECK(memcmp(out, want, (size_t)rows * cols) == 0, "%s quantize_s8 %dx%d%s differs from its definition",
                  k->name, rows, cols, transpose ? " transposed" : "");
        }
        free(x);
        free(tmp);
        free(out);
        free(want);
    }
}

static void check_select(void) {
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        qb_isa isa;
        const char *name = qb_isa_name((qb_isa)i);
        CHECK(qb_isa_from_name(name, &isa) && isa == (qb_isa)i, "name %s", name);
        qb_kernels_i8 k;
        memset(&k, 0, sizeof k);
        bool ok = qb_kernels_i8_select(isa, &k);
        CHECK(ok == qb_isa_supported(isa), "select %s: %d, supported %d", name, ok, qb_isa_supported(isa));
        if (ok) CHECK(k.isa == isa && strcmp(k.name, name) == 0 && k.gemm && k.quantize_rows, "table of %s", name);
    }
    qb_kernels_i8 k;
    CHECK(!qb_kernels_i8_select(QB_ISA_COUNT, &k), "an out-of-range ISA must be refused");
    CHECK(!qb_kernels_i8_select((qb_isa)-1, &k), "a negative ISA must be refused");
    CHECK(qb_kernels_i8_select(QB_ISA_SCALAR, &k), "scalar always runs");
    qb_i8_weights w;
    int8_t one = 1;
    float s = 1.0f;
    CHECK(!qb_i8_weights_pack(&k, &one, &s, 0, 1, &w), "N = 0 refused");
    CHECK(!qb_i8_weights_pack(&k, &one, &s, 1, 0, &w), "K = 0 refused");
    CHECK(!qb_i8_weights_pack(&k, &one, &s, 1, 1 << 20, &w), "K beyond int32-safe sums refused");
}

int main(void) {
#ifdef QB_AMX_EMULATED
    QB_TEST_SKIP_AMX_EMU_WITHOUT_AVX512();
#endif
    rng r = {0x9e3779b97f4a7c15ull};
    bool sanitize = getenv("QB_SANITIZE") != NULL;
    check_select();
    qb_kernels_i8 ref;
    qb_kernels_i8_select(QB_ISA_SCALAR, &ref);
    check_quantize_by_hand(&ref);
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        qb_kernels_i8 k;
        if (qb_test_isa_left_out(qb_isa_name((qb_isa)i))) {
            printf("skipped %s (QBERT_ISA)\n", qb_isa_name((qb_isa)i));
            continue;
        }
        if (!qb_kernels_i8_select((qb_isa)i, &k)) {
            printf("skipped %s: this CPU cannot run it\n", qb_isa_name((qb_isa)i));
            continue;
        }
        printf("checking %s\n", k.name);
        check_gemm_shapes(&ref, &k, &r, sanitize);
        check_tile_shapes(&ref, &k, &r);
        check_saturation(&ref, &k, &r, 7, 300);
        check_saturation(&ref, &k, &r, 32, 320);
        check_quantize(&ref, &k, &r);
        check_quantize_by_hand(&k);
        check_quantize_s8(&k, &r);
#if defined(__x86_64__)
        if (k.amx) {
            /* the AVX-512 table runs AMX tiles here: check VNNI on its own too */
            qb_kernels_i8 vnni;
            qb_kernels_i8_init_avx512_vnni(&vnni);
            printf("checking %s (vnni, the cpu also has amx)\n", vnni.name);
            check_gemm_shapes(&ref, &vnni, &r, sanitize);
            check_tile_shapes(&ref, &vnni, &r);
            check_saturation(&ref, &vnni, &r, 7, 300);
        }
#endif
    }
    return qb_test_done("test_kernels_i8");
}
