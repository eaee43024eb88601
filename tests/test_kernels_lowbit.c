/* The low-bit kernels: pack/unpack round trips of every code, the scalar
 * W.A8 reference against double-precision arithmetic on the dequantized
 * weights, every SIMD path the CPU runs against that reference (bit for
 * bit where the activation is exact, within 2e-6 for GELU), threads
 * against one thread, the AVX-512 table held to VNNI and on AMX (where
 * the CPU has it) one by one, and the weight-only path against double precision,
 * on odd shapes, every code, symmetric and with zero points, several group
 * sizes.  QB_SANITIZE=1 shrinks the shapes. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels_lowbit.h"
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

static const qb_code codes_all[] = {QB_CODE_U4, QB_CODE_U3, QB_CODE_U2, QB_CODE_T5};
static const char *code_names[] = {"U4", "U3", "U2", "T5"};

static void check_round_trip(rng *r) {
    static const int lens[] = {1, 2, 3, 5, 7, 8, 13, 323, 769};
    for (size_t c = 0; c < 4; c++) {
        qb_code code = codes_all[c];
        int levels = qb_code_levels(code);
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            int K = lens[l];
            size_t bytes = qb_code_row_bytes(code, K);
            uint8_t *in = malloc((size_t)K), *out = malloc((size_t)K), *row = malloc(bytes + 8);
            for (int k = 0; k < K; k++) in[k] = (uint8_t)(k % 3 == 0 ? levels - 1 : (int)(rng_next(r) % (uint32_t)levels));
            memset(row, 0xA5, bytes + 8);
            qb_code_pack_row(code, in, K, row);
            CHECK(row[bytes] == 0xA5, "%s K=%d: pack wrote past row_bytes", code_names[c], K);
            qb_code_unpack_row(code, row, K, 0, K, out);
            CHECK(memcmp(in, out, (size_t)K) == 0, "%s K=%d: round trip differs", code_names[c], K);
            /* every start within a byte of any code, runs ending inside one or at K */
            for (int k0 = 0; k0 < K && k0 < 17; k0++)
                for (int n = 1; k0 + n <= K; n = n < 11 ? n + 1 : K - k0) {
                    qb_code_unpack_row(code, row, K, k0, n, out);
                    CHECK(memcmp(in + k0, out, (size_t)n) == 0, "%s K=%d: unpack of [%d, %d) differs", code_names[c],
                          K, k0, k0 + n);
                    if (k0 + n == K) break;
                }
            /* bytes past the last code are zero: repacking all-zero codes clears every bit */
            uint8_t *zeros = calloc((size_t)K, 1);
            qb_code_pack_row(code, zeros, K, row);
            bool clear = true;
            for (size_t b = 0; b < bytes; b++) clear &= row[b] == 0;
            CHECK(clear, "%s K=%d: padding bits not zero", code_names[c], K);
            free(zeros);
            free(in);
            free(out);
            free(row);
        }
    }
    uint8_t max4[2] = {15, 15}, row4;
    qb_code_pack_row(QB_CODE_U4, max4, 2, &row4);
    CHECK(row4 == 0xFF, "U4 by hand: %#x", row4);
    uint8_t t5[5] = {2, 1, 0, 0, 1}, row5;
    qb_code_pack_row(QB_CODE_T5, t5, 5, &row5);
    CHECK(row5 == 2 + 3 + 81, "T5 by hand: %d", row5);
    CHECK(qb_code_row_bytes(QB_CODE_U3, 9) == 3 + 2, "U3 row bytes");
}

/* One weight matrix with its buffers. */
typedef struct {
    qb_lowbit_weights w;
    uint8_t *rows, *zero;
    float *scale, *codebook;
} weights;

static weights weights_make(qb_code code, int N, int K, int group, bool zeros, bool codebook, rng *r) {
    weights m;
    memset(&m, 0, sizeof m);
    int levels = qb_code_levels(code), G = (K + group - 1) / group;
    size_t rb = qb_code_row_bytes(code, K);
    m.rows = malloc(rb * N);
    uint8_t *codes = malloc((size_t)K);
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) codes[k] = (uint8_t)(rng_next(r) % 5 == 0 ? levels - 1 : (int)(rng_next(r) % (uint32_t)levels));
        qb_code_pack_row(code, codes, K, m.rows + rb * n);
    }
    free(codes);
    if (codebook) {
        m.codebook = malloc(sizeof(float) * N * levels);
        for (int i = 0; i < N * levels; i++) m.codebook[i] = rng_unit(r) * 0.1f;
    } else {
        m.scale = malloc(sizeof(float) * N * G);
        for (int i = 0; i < N * G; i++) m.scale[i] = (1.0f + rng_unit(r)) * 0.01f + 1e-4f;
        if (zeros) {
            m.zero = malloc((size_t)N * G);
            for (int i = 0; i < N * G; i++) m.zero[i] = (uint8_t)(i % 7 == 0 ? levels - 1 : (int)(rng_next(r) % (uint32_t)levels));
        }
    }
    m.w = (qb_lowbit_weights){.code = code, .N = N, .K = K, .group = group, .G = G, .rows = m.rows,
                              .row_bytes = rb, .scale = m.scale, .zero = m.zero, .codebook = m.codebook};
    return m;
}

static void weights_free(weights *m) {
    qb_lowbit_weights_free(&m->w);
    free(m->rows);
    free(m->zero);
    free(m->scale);
    free(m->codebook);
}

/* Activations and outputs; strides exceed widths so stride mistakes show. */
typedef struct {
    int M, N, K, lda, ldc, ldr;
    uint8_t *A;
    float *x, *a_scale, *bias, *residual, *C_ref, *C;
    int32_t *a_zero;
} acts;

static acts acts_make(int M, int N, int K, rng *r) {
    acts p = {.M = M, .N = N, .K = K, .lda = K + 5, .ldc = N + 7, .ldr = N + 3};
    p.A = malloc((size_t)M * p.lda);
    p.x = malloc(sizeof(float) * M * p.lda);
    p.a_scale = malloc(sizeof(float) * M);
    p.a_zero = malloc(sizeof(int32_t) * M);
    p.bias = malloc(sizeof(float) * N);
    p.residual = malloc(sizeof(float) * M * p.ldr);
    p.C_ref = malloc(sizeof(float) * M * p.ldc);
    p.C = malloc(sizeof(float) * M * p.ldc);
    for (int i = 0; i < M * p.lda; i++) {
        uint32_t v = rng_next(r);
        p.A[i] = v % 4 == 0 ? 255 : v % 4 == 1 ? 0 : (uint8_t)(v >> 8);
        p.x[i] = rng_unit(r);
    }
    for (int m = 0; m < M; m++) {
        p.a_scale[m] = (1.5f + rng_unit(r)) / 255.0f * 4.0f;
        p.a_zero[m] = m % 3 == 0 ? 0 : m % 3 == 1 ? 255 : (int32_t)(rng_next(r) % 256);
    }
    for (int n = 0; n < N; n++) p.bias[n] = rng_unit(r);
    for (int i = 0; i < M * p.ldr; i++) p.residual[i] = rng_unit(r);
    return p;
}

static void acts_free(acts *p) {
    free(p->A);
    free(p->x);
    free(p->a_scale);
    free(p->a_zero);
    free(p->bias);
    free(p->residual);
    free(p->C_ref);
    free(p->C);
}

static qb_lowbit_a8_args a8_args(const acts *p, const qb_lowbit_weights *w, float *C, bool bias, bool res, qb_act act) {
    return (qb_lowbit_a8_args){.M = p->M, .A = p->A, .lda = p->lda, .a_scale = p->a_scale, .a_zero = p->a_zero,
                               .W = w, .C = C, .ldc = p->ldc, .bias = bias ? p->bias : NULL,
                               .residual = res ? p->residual : NULL, .ldr = p->ldr, .act = act};
}

static bool outputs_identical(const acts *p, const float *a, const float *b) {
    for (int m = 0; m < p->M; m++)
        if (memcmp(a + (size_t)m * p->ldc, b + (size_t)m * p->ldc, sizeof(float) * p->N) != 0) return false;
    return true;
}

static double max_rel_err(const acts *p, const float *got, const float *want) {
    double worst = 0.0;
    for (int m = 0; m < p->M; m++)
        for (int n = 0; n < p->N; n++) {
            size_t i = (size_t)m * p->ldc + n;
            double e = fabs((double)got[i] - want[i]) / (1.0 + fabs((double)want[i]));
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

/* The dequantized weights, row-major [N][K], in double. */
static double *dequantized(const qb_lowbit_weights *w) {
    double *d = malloc(sizeof(double) * w->N * w->K);
    float *row = malloc(sizeof(float) * w->K);
    for (int n = 0; n < w->N; n++) {
        qb_lowbit_dequantize(w, n, 0, w->K, row);
        for (int k = 0; k < w->K; k++) d[(size_t)n * w->K + k] = row[k];
        /* dequantize of a sub-range agrees with the whole row */
        int k0 = w->K / 3, count = w->K - k0;
        qb_lowbit_dequantize(w, n, k0, count, row);
        for (int k = 0; k < count; k++)
            if (row[k] != (float)d[(size_t)n * w->K + k0 + k]) {
                CHECK(false, "dequantize of [%d, %d) differs at %d", k0, w->K, k0 + k);
                break;
            }
    }
    free(row);
    return d;
}

/* The scalar reference (no bias, activation or residual) against double
 * arithmetic, within float rounding of the terms' magnitudes. */
static void check_reference(const qb_kernels_lowbit *ref, const acts *p, const qb_lowbit_weights *w, const double *d,
                            void *scratch, const char *what) {
    qb_lowbit_a8_args a = a8_args(p, w, p->C_ref, false, false, QB_ACT_NONE);
    qb_lowbit_gemm_a8(ref, &a, NULL, scratch);
    int bad = 0;
    for (int m = 0; m < p->M; m++)
        for (int n = 0; n < p->N; n++) {
            double s = 0.0, mag = 0.0;
            for (int k = 0; k < p->K; k++) {
                double wv = d[(size_t)n * p->K + k];
                s += ((double)p->A[(size_t)m * p->lda + k] - p->a_zero[m]) * wv;
                mag += ((double)p->A[(size_t)m * p->lda + k] + p->a_zero[m]) * fabs(wv);
            }
            double got = p->C_ref[(size_t)m * p->ldc + n];
            bad += !(fabs(got - p->a_scale[m] * s) <= 1e-6 * p->a_scale[m] * mag + 1e-30);
        }
    CHECK(bad == 0, "scalar reference off double precision in %d places (%s)", bad, what);
}

static void check_a8_isa(const qb_kernels_lowbit *ref, const qb_kernels_lowbit *k, const acts *p,
                         const qb_lowbit_weights *w, void *scratch, bool all_options, const char *what) {
    static const qb_act act_list[] = {QB_ACT_NONE, QB_ACT_GELU, QB_ACT_RELU};
    for (int opt = 0; opt < 4; opt++)
        for (size_t ai = 0; ai < sizeof act_list / sizeof *act_list; ai++) {
            bool bias = opt & 1, res = opt & 2;
            if (!all_options && !(opt == 0 && ai == 0) && !(opt == 3 && ai == 1)) continue;
            qb_lowbit_a8_args ar = a8_args(p, w, p->C_ref, bias, res, act_list[ai]);
            qb_lowbit_a8_args ak = a8_args(p, w, p->C, bias, res, act_list[ai]);
            qb_lowbit_gemm_a8(ref, &ar, NULL, scratch);
            memset(p->C, 0xff, sizeof(float) * p->M * p->ldc);
            qb_lowbit_gemm_a8(k, &ak, NULL, scratch);
            if (act_list[ai] == QB_ACT_GELU) {
                double e = max_rel_err(p, p->C, p->C_ref);
                CHECK(e < 2e-6, "%s %s bias=%d res=%d gelu: rel err %.3g", qb_isa_name(k->isa), what, bias, res, e);
            } else {
                CHECK(outputs_identical(p, p->C, p->C_ref), "%s %s bias=%d res=%d act=%d: differs from scalar",
                      qb_isa_name(k->isa), what, bias, res, (int)act_list[ai]);
            }
        }
    for (int threads = 2; threads <= 3; threads++) {
        qb_lowbit_a8_args a1 = a8_args(p, w, p->C_ref, true, true, QB_ACT_GELU);
        qb_lowbit_a8_args an = a8_args(p, w, p->C, true, true, QB_ACT_GELU);
        qb_lowbit_gemm_a8(k, &a1, NULL, scratch);
        qb_pool *pool = qb_test_pool(threads);
        qb_lowbit_gemm_a8(k, &an, pool, scratch);
        qb_pool_free(pool);
        CHECK(outputs_identical(p, p->C, p->C_ref), "%s %s: %d threads differ from one", qb_isa_name(k->isa), what,
              threads);
    }
}

/* The table's panel decoder, where it has one, is the generic panel of
 * qb_lowbit_dequantize bit for bit, for whole and ragged panels. */
static void check_dequantize_panel(const qb_kernels_lowbit *k, const qb_lowbit_weights *w, const char *what) {
    if (!k->dequantize_panel) return;
    size_t floats = (size_t)16 * w->K;
    float *a = malloc(floats * sizeof *a), *b = malloc(floats * sizeof *b);
    int n0s[3] = {0, w->N > 16 ? 16 : 0, w->N - 1};
    for (int i = 0; i < 3; i++)
        for (int nr = 8; nr <= 16; nr += 8) {
            int n0 = n0s[i], cols = w->N - n0 < nr ? w->N - n0 : nr;
            qb_lowbit_dequantize_panel(qb_lowbit_dequantize, w, n0, cols, nr, 0, w->K, a);
            memset(b, 0xff, floats * sizeof *b);
            k->dequantize_panel(w, n0, cols, nr, b);
            CHECK(!memcmp(a, b, (size_t)nr * w->K * sizeof *a), "%s %s: panel of %d rows from %d, width %d differs",
                  qb_isa_name(k->isa), what, cols, n0, nr);
        }
    free(a);
    free(b);
}

/* The table's decoder is qb_lowbit_dequantize bit for bit, from any start
 * (odd, mid-group) to any end. */
static void check_dequantize(const qb_kernels_lowbit *k, const qb_lowbit_weights *w, const char *what) {
    int K = w->K, starts[4] = {0, 1, 2, K / 2 & ~1};
    float *a = malloc((size_t)K * sizeof *a), *b = malloc((size_t)K * sizeof *b);
    for (int n = 0; n < w->N && n < 5; n++)
        for (int s = 0; s < 4; s++) {
            int k0 = starts[s] < K ? starts[s] : 0, count = K - k0 - (s == 2 ? K / 7 : 0);
            if (count <= 0) continue;
            qb_lowbit_dequantize(w, n, k0, count, a);
            k->dequantize(w, n, k0, count, b);
            CHECK(!memcmp(a, b, (size_t)count * sizeof *a), "%s %s: dequantize row %d [%d, %d) differs",
                  qb_isa_name(k->isa), what, n, k0, k0 + count);
        }
    free(a);
    free(b);
    check_dequantize_panel(k, w, what);
}

/* Weight-only: FP32 x against the double product with the dequantized
 * weights, act(x W^T + bias) + residual. */
static void check_f32(const qb_kernels_lowbit *k, const qb_kernels *kf, const acts *p, const qb_lowbit_weights *w,
                      const double *d, float *scratch, const char *what) {
    check_dequantize(k, w, what);
    for (int threads = 1; threads <= 2; threads++)
        for (int opt = 0; opt < 2; opt++) {
            qb_act act = opt ? QB_ACT_GELU : QB_ACT_NONE;
            qb_lowbit_f32_args a = {.M = p->M, .x = p->x, .lda = p->lda, .W = w, .C = p->C, .ldc = p->ldc,
                                    .bias = opt ? p->bias : NULL, .residual = opt ? p->residual : NULL,
                                    .ldr = p->ldr, .act = act};
            qb_pool *pool = qb_test_pool(threads);
            qb_lowbit_gemm_f32(k, kf, &a, pool, scratch);
            qb_pool_free(pool);
            int bad = 0;
            for (int m = 0; m < p->M; m++)
                for (int n = 0; n < p->N; n++) {
                    double s = opt ? p->bias[n] : 0.0, mag = 1.0;
                    for (int k = 0; k < p->K; k++) {
                        double xv = p->x[(size_t)m * p->lda + k], wv = d[(size_t)n * p->K + k];
                        s += xv * wv;
                        mag += fabs(xv * wv);
                    }
                    if (opt) s = 0.5 * s * (1.0 + erf(s / sqrt(2.0))) + p->residual[(size_t)m * p->ldr + n];
                    bad += !(fabs(p->C[(size_t)m * p->ldc + n] - s) <= 2e-5 * mag);
                }
            CHECK(bad == 0, "%s weight-only %s act=%d threads=%d: %d outputs off", kf->name, what, (int)act, threads,
                  bad);
        }
}

/* Weight-only: codebooks, and the few-row kernels (gemm_f32_few), which
 * take up to QB_LOWBIT_FEW_ROWS rows (panels of 48, the last of 1 to 3
 * vectors) where K and the group are whole runs of 16 and leave more to
 * the decoding path; every code, grids with and without zero points, and
 * codebooks, with a ragged last strip (N = 67) and K = 323, which they
 * leave too. */
static void check_f32_shapes(const qb_kernels_lowbit *ks, const qb_kernels *kf, const bool *on, rng *r) {
    const int ms[] = {2, 17, 33, 48, 49, 113, QB_LOWBIT_FEW_ROWS, QB_LOWBIT_FEW_ROWS + 1};
    for (size_t c = 0; c < 4; c++)
        for (int kind = 0; kind < 3; kind++)
            for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
                for (int K = 323; K <= 336; K += 13) {
                    bool book = kind == 2;
                    int M = ms[mi], N = 67, group = book ? K : 48;
                    weights wm = weights_make(codes_all[c], N, K, group, kind == 0, book, r);
                    CHECK(qb_lowbit_weights_prepare(&wm.w, QB_LOWBIT_PANELS_ALL), "prepare");
                    acts p = acts_make(M, N, K, r);
                    double *d = dequantized(&wm.w);
                    size_t floats = qb_lowbit_f32_scratch_floats(K) * 2;
                    float *fs = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
                    char what[96];
                    snprintf(what, sizeof what, "%s %s M=%d N=%d K=%d", code_names[c],
                             book ? "codebook" : kind ? "symmetric" : "zero points", M, N, K);
                    for (int i = 0; i < QB_ISA_COUNT; i++) {
                        if (!on[i]) continue;
                        check_f32(&ks[i], &kf[i], &p, &wm.w, d, fs, what);
                        if (!ks[i].gemm_f32_few) continue;
                        qb_lowbit_f32_args a = {.M = M, .x = p.x, .lda = p.lda, .W = &wm.w, .C = p.C, .ldc = p.ldc};
                        bool fits = M <= QB_LOWBIT_FEW_ROWS && K % 16 == 0;
                        CHECK(ks[i].gemm_f32_few(&a, 0, N, fs, false) == fits, "%s %s: gemm_f32_few %s",
                              qb_isa_name(ks[i].isa), what, fits ? "refused" : "took");
                    }
                    free(fs);
                    free(d);
                    acts_free(&p);
                    weights_free(&wm);
                }
}

typedef struct {
    int K, group;
} kg;

/* The AVX-512 tables one by one: held to VNNI, and on AMX where the CPU
 * has it (rows past the last 16 and K or groups not whole 64-k tiles take
 * the VNNI code inside it), against scalar on odd shapes, U4 symmetric (up
 * to fused_rows rows multiply the panels as they are, more rows decode
 * them: both, on every CPU, through a table that always decodes) and with
 * zero points. */
static void check_avx512_variants(const qb_kernels_lowbit *ref, bool sanitize, rng *r) {
#if defined(__x86_64__)
    if (!qb_isa_supported(QB_ISA_AVX512)) return;
    qb_kernels_lowbit vnni, best, decoded;
    qb_kernels_lowbit_init_avx512_vnni(&vnni);
    qb_kernels_lowbit_init_avx512(&best);
    decoded = vnni;
    decoded.fused_rows = 0;
    CHECK(!vnni.amx && vnni.isa == QB_ISA_AVX512 && vnni.gemm_a8, "VNNI-held table");
    printf("checking avx512 held to VNNI%s\n", best.amx ? ", and avx512 on AMX" : " (no AMX here)");
    /* 4164: K past one decoded span (QB_LOWBIT_KD), so a block is decoded more than once;
     * 512, 256: a group per chunk, so AMX folds groups of two chunks together */
    static const kg kgs[] = {{320, 128}, {323, 64}, {320, 320}, {323, 323}, {4164, 128}, {512, 256}};
    /* 13: six rows, then seven left, which run as four and three */
    const int ms[] = {1, 3, 13, 17, sanitize ? 19 : 127}, ns[] = {1, 3, 17, sanitize ? 67 : 769};
    for (size_t q = 0; q < sizeof kgs / sizeof *kgs; q++)
        for (int sym = 0; sym < 2; sym++)
            for (int mi = 0; mi < 5; mi++)
                for (int ni = 0; ni < 4; ni++) {
                    int M = ms[mi], N = ns[ni], K = kgs[q].K, group = kgs[q].group;
                    bool big = (size_t)M * N * K > 2000000;
                    if (big && sym) continue;
                    char what[96];
                    snprintf(what, sizeof what, "U4 %s M=%d N=%d K=%d group=%d", sym ? "symmetric" : "zero points", M,
                             N, K, group);
                    weights wm = weights_make(QB_CODE_U4, N, K, group, !sym, false, r);
                    CHECK(qb_lowbit_weights_prepare(&wm.w, QB_LOWBIT_PANELS_ALL), "prepare");
                    acts p = acts_make(M, N, K, r);
                    void *scratch = aligned_alloc(64, qb_lowbit_scratch_bytes(K, group) * 3);
                    check_a8_isa(ref, &vnni, &p, &wm.w, scratch, !big, what);
                    if (sym) check_a8_isa(ref, &decoded, &p, &wm.w, scratch, !big, what);
                    if (best.amx) check_a8_isa(ref, &best, &p, &wm.w, scratch, !big, what);
                    free(scratch);
                    acts_free(&p);
                    weights_free(&wm);
                }
#else
    (void)ref, (void)sanitize, (void)r;
#endif
}

/* The largest sums the integer paths see: A all 255 against |code - zero|
 * = 15 in every column, of both signs (AVX2 adds four vpmaddubsw results
 * in int16: 4 x 2 x 255 x 15 = 30600). */
static void check_extremes(const qb_kernels_lowbit *ref, const qb_kernels_lowbit *ks, const bool *on, rng *r) {
    int M = 7, N = 35, K = 320, group = 128;
    weights wm = weights_make(QB_CODE_U4, N, K, group, true, false, r);
    uint8_t *codes = malloc((size_t)K);
    for (int n = 0; n < N; n++) {
        memset(codes, n % 2 ? 15 : 0, (size_t)K);
        qb_code_pack_row(QB_CODE_U4, codes, K, wm.rows + wm.w.row_bytes * n);
        for (int g = 0; g < wm.w.G; g++) wm.zero[n * wm.w.G + g] = n % 2 ? 0 : 15;
    }
    free(codes);
    CHECK(qb_lowbit_weights_prepare(&wm.w, QB_LOWBIT_PANELS_ALL), "prepare");
    acts p = acts_make(M, N, K, r);
    memset(p.A, 255, (size_t)M * p.lda);
    void *scratch = aligned_alloc(64, qb_lowbit_scratch_bytes(K, group) * 3);
    double *d = dequantized(&wm.w);
    check_reference(ref, &p, &wm.w, d, scratch, "U4 extremes");
    for (int i = 1; i < QB_ISA_COUNT; i++)
        if (on[i]) check_a8_isa(ref, &ks[i], &p, &wm.w, scratch, false, "U4 extremes");
    free(d);
    free(scratch);
    acts_free(&p);
    weights_free(&wm);
}

int main(void) {
#ifdef QB_AMX_EMULATED
    QB_TEST_SKIP_AMX_EMU_WITHOUT_AVX512();
#endif
    rng r = {0x9e3779b97f4a7c15ull};
    bool sanitize = getenv("QB_SANITIZE") != NULL;
    check_round_trip(&r);
    qb_kernels_lowbit ref, ks[QB_ISA_COUNT];
    qb_kernels kf[QB_ISA_COUNT];
    bool on[QB_ISA_COUNT];
    CHECK(qb_kernels_lowbit_select(QB_ISA_SCALAR, &ref), "scalar always runs");
    CHECK(!qb_kernels_lowbit_select(QB_ISA_COUNT, &ks[0]), "an out-of-range ISA must be refused");
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        on[i] = qb_kernels_lowbit_select((qb_isa)i, &ks[i]) && qb_kernels_select((qb_isa)i, &kf[i]);
        CHECK(on[i] == qb_isa_supported((qb_isa)i), "select %s", qb_isa_name((qb_isa)i));
        if (on[i]) CHECK(ks[i].isa == (qb_isa)i && ks[i].gemm_a8, "table of %s", qb_isa_name((qb_isa)i));
        if (qb_test_isa_left_out(qb_isa_name((qb_isa)i))) on[i] = false;
        printf(on[i] ? "checking %s\n" : "skipped %s: this CPU cannot run it\n", qb_isa_name((qb_isa)i));
    }
    /* the last 16 k of a group or of a run (256) hold 3, 5, 7, 11 and 15: every
     * partial step count of the ARM tiles */
    static const kg kgs[] = {{320, 128}, {320, 32},  {323, 64}, {7, 7},    {768, 768},
                             {768, 64},  {323, 323}, {600, 5},  {319, 64}, {331, 331}};
    int big_m = sanitize ? 19 : 127, big_n = sanitize ? 67 : 769;
    const int shapes[][2] = {{1, 3}, {3, 17}, {17, 1}, {big_m, 17}, {3, big_n}, {big_m, big_n}};
    for (size_t c = 0; c < 4; c++)
        for (int sym = 0; sym < 2; sym++)
            for (size_t q = 0; q < sizeof kgs / sizeof *kgs; q++)
                for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                    int M = shapes[s][0], N = shapes[s][1], K = kgs[q].K, group = kgs[q].group;
                    bool big = (size_t)M * N * K > 2000000;
                    /* the largest shape (the scalar reference's cost) for U4 at every K and
                     * group, for the other codes at K = 320, group 128 */
                    if (big && (sym || K < 320 || (c > 0 && !(K == 320 && group == 128)))) continue;
                    char what[96];
                    snprintf(what, sizeof what, "%s %s M=%d N=%d K=%d group=%d", code_names[c],
                             sym ? "symmetric" : "zero points", M, N, K, group);
                    weights wm = weights_make(codes_all[c], N, K, group, !sym, false, &r);
                    CHECK(qb_lowbit_weights_prepare(&wm.w, QB_LOWBIT_PANELS_ALL), "prepare");
                    acts p = acts_make(M, N, K, &r);
                    size_t bytes = qb_lowbit_scratch_bytes(K, group) * 3;
                    void *scratch = aligned_alloc(64, bytes);
                    double *d = dequantized(&wm.w);
                    if (!big) check_reference(&ref, &p, &wm.w, d, scratch, what);
                    for (int i = 1; i < QB_ISA_COUNT; i++)
                        if (on[i]) check_a8_isa(&ref, &ks[i], &p, &wm.w, scratch, !big, what);
                    if (!big && s % 2 == 0) {
                        size_t floats = qb_lowbit_f32_scratch_floats(K) * 2;
                        float *fs = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
                        for (int i = 0; i < QB_ISA_COUNT; i++)
                            if (on[i]) check_f32(&ks[i], &kf[i], &p, &wm.w, d, fs, what);
                        free(fs);
                    }
                    free(d);
                    free(scratch);
                    acts_free(&p);
                    weights_free(&wm);
                }
    check_extremes(&ref, ks, on, &r);
    check_avx512_variants(&ref, sanitize, &r);
    check_f32_shapes(ks, kf, on, &r);
    return qb_test_done("test_kernels_lowbit");
}
