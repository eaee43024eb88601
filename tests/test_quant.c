/* Static INT8 quantization: the affine math against hand-computed and
 * PyTorch MinMaxObserver values, and the calibration observers on
 * synthetic data whose right answers are known. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "rounding/affine.h"
#include "quant/observer.h"
#include "test_util.h"

static const qb_qscheme U8_ASYM = {.is_signed = false, .symmetric = false};
static const qb_qscheme U8_SYM = {.is_signed = false, .symmetric = true};
static const qb_qscheme S8_SYM = {.is_signed = true, .symmetric = true};

/* ---- deterministic data ------------------------------------------------- */

static double rng_uniform(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static double rng_gauss(uint64_t *s) {
    double u = rng_uniform(s), v = rng_uniform(s);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

/* Mean squared error of x after quantizing with the range's parameters. */
static double quant_mse(const float *x, size_t n, const qb_qscheme *s, float lo, float hi) {
    qb_qparams p = qb_qparams_from_range(s, lo, hi);
    int32_t qmin, qmax;
    qb_qscheme_limits(s, &qmin, &qmax);
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - qb_dequantize_value(qb_quantize_value(x[i], p, qmin, qmax), p);
        e += d * d;
    }
    return e / (double)n;
}

static void stats_of(qb_tensor_stats *st, const float *x, size_t n, size_t batch) {
    CHECK(qb_tensor_stats_init(st, 0) == QB_OK, "init");
    for (size_t i = 0; i < n; i += batch) qb_tensor_stats_add(st, x + i, n - i < batch ? n - i : batch);
}

static qb_observer_method method(const char *name) {
    qb_observer_method m = {QB_OBS_MINMAX, 0};
    CHECK(qb_observer_method_parse(name, &m), "parse %s", name);
    return m;
}

static bool near(double a, double b, double tol) { return fabs(a - b) <= tol; }

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* ---- affine ------------------------------------------------------------- */

static void check_params(const qb_qscheme *s, float lo, float hi, float scale, int32_t zp) {
    qb_qparams p = qb_qparams_from_range(s, lo, hi);
    CHECK(p.scale == scale && p.zero_point == zp,
          "[%g, %g] signed=%d sym=%d reduce=%d: got scale %.9g zp %d, want %.9g %d", lo, hi, s->is_signed,
          s->symmetric, s->reduce_range, p.scale, p.zero_point, scale, zp);
}

static void test_qparams(void) {
    qb_qscheme u8r = {.is_signed = false, .symmetric = false, .reduce_range = true};
    qb_qscheme s8r = {.is_signed = true, .symmetric = true, .reduce_range = true};
    qb_qscheme u8sr = {.is_signed = false, .symmetric = true, .reduce_range = true};
    qb_qscheme s8a = {.is_signed = true, .symmetric = false};
    int32_t qmin, qmax;
    qb_qscheme_limits(&u8r, &qmin, &qmax);
    CHECK(qmin == 0 && qmax == 127, "quint8 reduce_range is [0, 127]");
    qb_qscheme_limits(&s8r, &qmin, &qmax);
    CHECK(qmin == -64 && qmax == 63, "qint8 reduce_range is [-64, 63]");

    /* MinMaxObserver, quint8 per_tensor_affine: scale = (max - min) / 255,
     * zero_point = 0 - round(min / scale): -1 / (3/255) = -85. */
    check_params(&U8_ASYM, -1.0f, 2.0f, 3.0f / 255.0f, 85);
    /* -0.5 / (2.2 / 255) = -57.95 -> 58. */
    check_params(&U8_ASYM, -0.5f, 1.7f, (1.7f - -0.5f) / 255.0f, 58);
    check_params(&u8r, -1.0f, 2.0f, 3.0f / 127.0f, 42); /* 127 / 3 = 42.33 */
    check_params(&s8a, -1.0f, 2.0f, 3.0f / 255.0f, -128 + 85);
    /* per_tensor_symmetric: scale = amax / ((qmax - qmin) / 2). */
    check_params(&S8_SYM, -2.0f, 1.0f, 2.0f / 127.5f, 0);
    check_params(&s8r, -2.0f, 1.0f, 2.0f / 63.5f, 0);
    check_params(&U8_SYM, -2.0f, 1.0f, 2.0f / 127.5f, 128);
    check_params(&u8sr, 0.5f, 3.0f, 3.0f / 63.5f, 64);
    /* The range always includes 0, so a positive range starts at zero point
     * 0 and a negative one ends at 255. */
    check_params(&U8_ASYM, 1.0f, 5.0f, 5.0f / 255.0f, 0);
    check_params(&U8_ASYM, -5.0f, -1.0f, 5.0f / 255.0f, 255);
    check_params(&s8a, -5.0f, -1.0f, 5.0f / 255.0f, 127);
    /* All zeros: any scale represents them; 1 by contract. */
    check_params(&U8_ASYM, 0.0f, 0.0f, 1.0f, 0);
    check_params(&s8a, 0.0f, 0.0f, 1.0f, -128);
    check_params(&S8_SYM, 0.0f, 0.0f, 1.0f, 0);
    check_params(&U8_SYM, 0.0f, 0.0f, 1.0f, 128);
    /* A step that underflows, and a range wider than float, are degenerate
     * too rather than a division by zero. */
    check_params(&U8_ASYM, -1e-44f, 0.0f, 1.0f, 0);
    qb_qparams p = qb_qparams_from_range(&U8_ASYM, -3e38f, 3e38f);
    CHECK(isfinite(p.scale) && p.scale > 0 && p.zero_point >= 0 && p.zero_point <= 255, "huge range");

    /* A zero point out of [qmin, qmax] is clamped. */
    qb_qparams zp_far = {1.0f, 200};
    CHECK(qb_quantize_value(0.0f, zp_far, 0, 127) == 127, "zero point 200 clamps to 127");
}

static void test_rounding(void) {
    qb_qparams one = {1.0f, 0};
    static const struct { float x; int32_t q; } half_even[] = {
        {2.5f, 2}, {3.5f, 4}, {-2.5f, -2}, {-3.5f, -4}, {0.5f, 0}, {1.5f, 2}, {-0.5f, 0}, {2.4999f, 2}, {2.5001f, 3},
    };
    for (size_t i = 0; i < sizeof half_even / sizeof *half_even; i++) {
        int32_t q = qb_quantize_value(half_even[i].x, one, -128, 127);
        CHECK(q == half_even[i].q, "round(%g) = %d, want %d", half_even[i].x, q, half_even[i].q);
    }
    /* Rounding happens before the zero point is added. */
    qb_qparams half = {0.5f, 10};
    CHECK(qb_quantize_value(1.25f, half, 0, 255) == 12, "1.25 / 0.5 = 2.5 -> 2, + 10");
    CHECK(qb_quantize_value(1.75f, half, 0, 255) == 14, "1.75 / 0.5 = 3.5 -> 4, + 10");
    CHECK(qb_dequantize_value(12, half) == 1.0f, "dequantize");
    CHECK(qb_quantize_value(1000.0f, one, -128, 127) == 127, "clamp high");
    CHECK(qb_quantize_value(-1000.0f, one, -128, 127) == -128, "clamp low");
    CHECK(qb_quantize_value(-5.0f, one, 0, 255) == 0, "u8 clamps negatives");
    CHECK(qb_quantize_value(300.0f, one, 0, 255) == 255, "u8 clamps 300");
    CHECK(qb_quantize_value(127.5f, one, -128, 127) == 127, "127.5 -> 128 (even) -> clamped 127");
    CHECK(qb_quantize_value(-128.5f, one, -128, 127) == -128, "-128.5 -> -128 (even)");
    CHECK(qb_quantize_value(INFINITY, one, -128, 127) == 127, "+inf clamps");
    CHECK(qb_quantize_value(NAN, one, -128, 127) == -128, "NaN goes to qmin, not undefined behaviour");
}

static void test_weights(void) {
    /* Row amax 127.5 and 15.9375 give scales 1 and 1/8 exactly. */
    const float w[2 * 4] = {127.5f, -3.5f, 2.5f, -127.5f, 15.9375f, 0.3125f, 0.4375f, -1.0f};
    int8_t q[12];
    float scale[3];
    qb_quantize_weight_s8(w, 2, 4, 8, true, q, scale);
    static const int8_t per_channel[8] = {127, -4, 2, -128, 127, 2, 4, -8};
    CHECK(scale[0] == 1.0f && scale[1] == 0.125f, "per-channel scales %g %g", scale[0], scale[1]);
    CHECK(memcmp(q, per_channel, 8) == 0, "per-channel values %d %d %d %d | %d %d %d %d", q[0], q[1], q[2], q[3],
          q[4], q[5], q[6], q[7]);

    qb_quantize_weight_s8(w, 2, 4, 8, false, q, scale);
    static const int8_t per_tensor[8] = {127, -4, 2, -128, 16, 0, 0, -1};
    CHECK(scale[0] == 1.0f && scale[1] == 1.0f, "per-tensor scale repeated %g %g", scale[0], scale[1]);
    CHECK(memcmp(q, per_tensor, 8) == 0, "per-tensor values %d %d %d %d | %d %d %d %d", q[0], q[1], q[2], q[3], q[4],
          q[5], q[6], q[7]);

    /* reduce_range: [-64, 63], scale = amax / 63.5. */
    const float r[4] = {63.5f, -63.5f, 10.5f, -0.5f};
    qb_quantize_weight_s8(r, 1, 4, 7, true, q, scale);
    CHECK(scale[0] == 1.0f && q[0] == 63 && q[1] == -64 && q[2] == 10 && q[3] == 0,
          "reduce_range: scale %g q %d %d %d %d", scale[0], q[0], q[1], q[2], q[3]);

    /* 4 bits: [-8, 7], scale = amax / 7.5; 7.5 rounds to 8 and clamps to 7,
     * 2.5 rounds half to even to 2. */
    const float w4[4] = {7.5f, -7.5f, 2.5f, -0.4f};
    qb_quantize_weight_s8(w4, 1, 4, 4, true, q, scale);
    CHECK(scale[0] == 1.0f && q[0] == 7 && q[1] == -8 && q[2] == 2 && q[3] == 0,
          "4-bit: scale %g q %d %d %d %d", scale[0], q[0], q[1], q[2], q[3]);

    const float zeros[3] = {0, 0, 0};
    qb_quantize_weight_s8(zeros, 1, 3, 8, true, q, scale);
    CHECK(scale[0] == 1.0f && q[0] == 0 && q[2] == 0, "all-zero row");

    /* Embedding rows: scale = amax / 127, values in [-127, 127]. */
    const float e[3 * 4] = {127, -63.5f, 0.5f, 1.5f, 0, 0, 0, 0, -254, 1, 3, 0};
    qb_quantize_rows_symmetric_s8(e, 3, 4, q, scale);
    CHECK(scale[0] == 1.0f && scale[1] == 1.0f && scale[2] == 2.0f, "row scales %g %g %g", scale[0], scale[1],
          scale[2]);
    static const int8_t rows[8] = {127, -64, 0, 2, 0, 0, 0, 0};
    CHECK(memcmp(q, rows, 8) == 0 && q[8] == -127 && q[9] == 0 && q[10] == 2 && q[11] == 0,
          "row values %d %d %d %d | %d %d %d %d", q[0], q[1], q[2], q[3], q[8], q[9], q[10], q[11]);
}

/* ---- observer methods by name ------------------------------------------- */

static void test_method_parse(void) {
    qb_observer_method m;
    CHECK(qb_observer_method_parse("minmax", &m) && m.kind == QB_OBS_MINMAX, "minmax");
    CHECK(qb_observer_method_parse("mse", &m) && m.kind == QB_OBS_MSE, "mse");
    CHECK(qb_observer_method_parse("entropy", &m) && m.kind == QB_OBS_ENTROPY, "entropy");
    CHECK(qb_observer_method_parse("percentile:99.99", &m) && m.kind == QB_OBS_PERCENTILE && m.percentile == 99.99,
          "percentile:99.99");
    CHECK(qb_observer_method_parse("percentile:100", &m) && m.percentile == 100, "percentile:100");
    static const char *bad[] = {"percentile:abc", "percentile:40", "percentile:50", "percentile:", "percentile",
                                "percentile:100.1", "percentile:99.9x", "percentile: 99", "percentile:inf",
                                "percentile:nan", "percentile:0x63", "percentile:-99", "", "MSE", "minmax2",
                                "kl"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!qb_observer_method_parse(bad[i], &m), "\"%s\" must be rejected", bad[i]);
    CHECK(!qb_observer_method_parse(NULL, &m), "NULL");

    static const char *names[] = {"minmax", "mse", "entropy", "percentile:99.99", "percentile:99.999", "percentile:100",
                                  "percentile:99.9999"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char buf[64];
        CHECK(qb_observer_method_parse(names[i], &m), "%s", names[i]);
        qb_observer_method_name(&m, buf, sizeof buf);
        CHECK(strcmp(buf, names[i]) == 0, "name round trip: %s -> %s", names[i], buf);
    }
}

/* ---- histogram ---------------------------------------------------------- */

static double bin_total(const qb_tensor_stats *st) {
    double t = 0;
    for (int k = 0; k < st->n_bins; k++) t += st->bins[k];
    return t;
}

static void test_stats_basics(void) {
    qb_tensor_stats st;
    CHECK(qb_tensor_stats_init(&st, 6) == QB_ERR_ARG && !st.bins, "6 bins: not a multiple of 4");
    CHECK(qb_tensor_stats_init(&st, 4) == QB_ERR_ARG, "4 bins: too few");
    CHECK(qb_tensor_stats_init(&st, 0) == QB_OK && st.n_bins == QB_TENSOR_STATS_DEFAULT_BINS, "default bins");

    float lo, hi;
    qb_observer_method mse = method("mse");
    qb_observer_range(&st, &mse, &U8_ASYM, &lo, &hi);
    CHECK(lo == 0 && hi == 0, "no data: [0, 0]");

    const float odd[] = {NAN, INFINITY, -INFINITY, 1.0f, -2.0f};
    qb_tensor_stats_add(&st, odd, 5);
    qb_tensor_stats_add(&st, NULL, 3);
    CHECK(st.count == 2 && st.min == -2 && st.max == 1 && bin_total(&st) == 2, "non-finite values skipped");
    qb_tensor_stats_free(&st);

    /* A constant tensor has nothing to clip, whatever the method. */
    float seven[100];
    for (int i = 0; i < 100; i++) seven[i] = 7.0f;
    stats_of(&st, seven, 100, 100);
    static const char *all[] = {"minmax", "percentile:99", "mse", "entropy"};
    for (size_t i = 0; i < 4; i++) {
        qb_observer_method m = method(all[i]);
        qb_observer_range(&st, &m, &U8_ASYM, &lo, &hi);
        CHECK(lo == 7 && hi == 7, "%s on a constant: [%g, %g]", all[i], lo, hi);
    }
    qb_tensor_stats_free(&st);

    /* Zeros before any range exists stay at 0 when one appears. */
    CHECK(qb_tensor_stats_init(&st, 0) == QB_OK, "init");
    float zeros[1000] = {0}, ones[1000];
    uint64_t seed = 7;
    for (int i = 0; i < 1000; i++) ones[i] = (float)(1 + rng_uniform(&seed));
    qb_tensor_stats_add(&st, zeros, 1000);
    CHECK(st.range == 0 && st.count == 1000, "all zeros: no range yet");
    qb_tensor_stats_add(&st, ones, 1000);
    qb_observer_method p75 = method("percentile:75");
    qb_observer_range(&st, &p75, &S8_SYM, &lo, &hi);
    /* Half the mass at 0, the other half U(1, 2): the 75th percentile of
     * |x| is the median of the U(1, 2) half. */
    qsort(ones, 1000, sizeof *ones, cmp_float);
    double median = 0.5 * (ones[499] + ones[500]);
    CHECK(near(hi, median, 4 * st.range / st.n_bins) && lo == -hi, "zeros then U(1,2): p75 of |x| = %g, want %g", hi,
          median);
    qb_tensor_stats_free(&st);
}

static void test_doubling(void) {
    /* Six batches, each four times wider: the histogram doubles its range
     * twice per batch. */
    enum { BATCH = 20000, BATCHES = 6, N = BATCH * BATCHES };
    float *x = malloc(N * sizeof *x), *sorted = malloc(N * sizeof *x);
    uint64_t seed = 11;
    double width = 0.5;
    for (int b = 0; b < BATCHES; b++, width *= 4)
        for (int i = 0; i < BATCH; i++) x[b * BATCH + i] = (float)(width * (2 * rng_uniform(&seed) - 1) + 0.1 * width);
    qb_tensor_stats st;
    stats_of(&st, x, N, BATCH);
    memcpy(sorted, x, N * sizeof *x);
    qsort(sorted, N, sizeof *sorted, cmp_float);
    double amax = fmax(-sorted[0], sorted[N - 1]);
    CHECK(st.count == N && bin_total(&st) == N, "count %lld, bins hold %g", (long long)st.count, bin_total(&st));
    CHECK(st.min == sorted[0] && st.max == sorted[N - 1], "exact min/max");
    CHECK(st.range >= amax && st.range < 2 * amax, "range %g for amax %g", st.range, amax);

    double bin_width = 2 * st.range / st.n_bins, worst = 0;
    static const double ps[] = {75, 90, 99, 99.9};
    for (size_t i = 0; i < 4; i++) {
        qb_observer_method m = {QB_OBS_PERCENTILE, ps[i]};
        float lo, hi;
        qb_observer_range(&st, &m, &U8_ASYM, &lo, &hi);
        double want_hi = sorted[(size_t)(ps[i] / 100 * (N - 1))];
        double want_lo = sorted[(size_t)((1 - ps[i] / 100) * (N - 1))];
        worst = fmax(worst, fmax(fabs(hi - want_hi), fabs(lo - want_lo)) / bin_width);
        CHECK(near(hi, want_hi, 2 * bin_width) && near(lo, want_lo, 2 * bin_width),
              "p%g after doubling: [%g, %g], exact [%g, %g], bin %g", ps[i], lo, hi, want_lo, want_hi, bin_width);
    }
    printf("doubling: range %g for amax %g; quantiles within %.2f bins of exact\n", st.range, amax, worst);
    qb_tensor_stats_free(&st);
    free(x);
    free(sorted);
}

/* ---- observers on known data -------------------------------------------- */

static const char *methods[] = {"minmax", "percentile:99.99", "mse", "entropy"};
static const qb_qscheme *const schemes[] = {&U8_ASYM, &S8_SYM, &U8_SYM};
static const char *scheme_names[] = {"u8 asym", "s8 sym", "u8 sym"};

static void test_uniform(void) {
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    uint64_t seed = 3;
    for (int i = 0; i < N; i++) x[i] = (float)(-1 + 4 * rng_uniform(&seed));
    qb_tensor_stats st;
    stats_of(&st, x, N, 4096);
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < 4; i++) {
            qb_observer_method m = method(methods[i]);
            float lo, hi;
            qb_observer_range(&st, &m, schemes[s], &lo, &hi);
            /* minmax hands back [min, max] as observed; the scheme's
             * parameters make it symmetric. */
            double want_lo = schemes[s]->symmetric && i > 0 ? -st.max : st.min;
            printf("uniform U(-1,3) %-8s %-17s [%.4f, %.4f]\n", scheme_names[s], methods[i], lo, hi);
            CHECK(near(lo, want_lo, 0.02 * 4) && near(hi, st.max, 0.02 * 4),
                  "%s %s on uniform data should stay near [%g, %g]: [%g, %g]", scheme_names[s], methods[i], want_lo,
                  st.max, lo, hi);
        }
    }
    qb_tensor_stats_free(&st);
    free(x);
}

static void test_outliers(void) {
    /* N(0, 1) with 16 outliers at 40-50 sigma.  They are too many for the
     * error-optimal range to drop them entirely (clipping all of them to 4
     * would cost 16 * 45^2 / 1e6 = 0.03 per value, more than minmax's
     * rounding noise), but all lie beyond it. */
    enum { N = 1000000, OUT = 16 };
    float *x = malloc(N * sizeof *x);
    uint64_t seed = 5;
    for (int i = 0; i < N; i++) x[i] = (float)rng_gauss(&seed);
    for (int i = 0; i < OUT; i++) x[(size_t)i * (N / OUT)] = (i % 2 ? -40.0f : 50.0f) - (float)(i % 5);
    qb_tensor_stats st;
    stats_of(&st, x, N, 8192);
    for (size_t s = 0; s < 3; s++) {
        double err[4];
        for (size_t i = 0; i < 4; i++) {
            qb_observer_method m = method(methods[i]);
            float lo, hi;
            qb_observer_range(&st, &m, schemes[s], &lo, &hi);
            err[i] = quant_mse(x, N, schemes[s], lo, hi);
            printf("gauss+outliers %-8s %-17s [%8.4f, %8.4f]  quantization mse %.4g\n", scheme_names[s], methods[i],
                   lo, hi, err[i]);
            if (i == 0) CHECK(lo == -44 && hi == 50, "minmax keeps the outliers: [%g, %g]", lo, hi);
            else if (i == 2)
                CHECK(lo > -40 && hi < 46 && lo < -4 && hi > 4, "mse clips the outliers: [%g, %g]", lo, hi);
            else CHECK(lo > -8 && hi < 8 && lo < -3 && hi > 3, "%s clips at a few sigma: [%g, %g]", methods[i], lo, hi);
            if (schemes[s]->symmetric && i > 0) CHECK(lo == -hi, "symmetric range");
        }
        CHECK(err[2] < 0.8 * err[0], "%s: mse range error %g, minmax %g", scheme_names[s], err[2], err[0]);
        /* The mse range is the best of the four, as measured on the data. */
        CHECK(err[2] <= fmin(err[1], err[3]), "%s: mse %g vs percentile %g, entropy %g", scheme_names[s], err[2],
              err[1], err[3]);
    }
    /* Against brute force: no symmetric threshold on a 0.25 grid does
     * measurably better on the data than the searched one. */
    qb_observer_method mse = method("mse");
    float lo, hi;
    qb_observer_range(&st, &mse, &S8_SYM, &lo, &hi);
    double searched = quant_mse(x, N, &S8_SYM, lo, hi), best = INFINITY, best_t = 0;
    for (double t = 0.25; t <= 50; t += 0.25) {
        double e = quant_mse(x, N, &S8_SYM, (float)-t, (float)t);
        if (e < best) best = e, best_t = t;
    }
    printf("gauss+outliers s8 sym: searched threshold %.4f (mse %.5g), best on a 0.25 grid %.2f (mse %.5g)\n", hi,
           searched, best_t, best);
    CHECK(searched <= 1.005 * best, "mse search %g vs brute force %g", searched, best);
    qb_tensor_stats_free(&st);
    free(x);
}

/* One far outlier on each side: TensorRT's P folds it into an otherwise
 * empty level, which must cost a finite divergence (not rule out every
 * clipping threshold), and thresholds stretched over the empty bins past
 * the data must not win ties. */
static void test_entropy_lone_outliers(void) {
    enum { N = 400000 };
    float *x = malloc(N * sizeof *x);
    uint64_t seed = 13;
    for (int i = 0; i < N; i++) x[i] = (float)rng_gauss(&seed);
    x[5] = 80;
    x[9] = -30;
    qb_tensor_stats st;
    stats_of(&st, x, N, N);
    qb_observer_method m = method("entropy");
    for (size_t s = 0; s < 3; s++) {
        float lo, hi;
        qb_observer_range(&st, &m, schemes[s], &lo, &hi);
        printf("gauss+2 lone outliers %-8s entropy [%.4f, %.4f]\n", scheme_names[s], lo, hi);
        CHECK(lo > -7 && lo < -3 && hi > 3 && hi < 7, "%s: [%g, %g]", scheme_names[s], lo, hi);
    }
    qb_tensor_stats_free(&st);
    free(x);
}

/* Post-ReLU/GELU-like data (one-sided, long tail): the asymmetric entropy
 * and mse ranges keep the low end and clip the tail. */
static void test_one_sided(void) {
    enum { N = 300000 };
    float *x = malloc(N * sizeof *x);
    uint64_t seed = 9;
    for (int i = 0; i < N; i++) x[i] = (float)(-log(1 - rng_uniform(&seed)) - 0.05);
    qb_tensor_stats st;
    stats_of(&st, x, N, 1000);
    double err_minmax = quant_mse(x, N, &U8_ASYM, (float)st.min, (float)st.max);
    static const char *clipping[] = {"entropy", "mse", "percentile:99.99"};
    for (size_t i = 0; i < 3; i++) {
        qb_observer_method m = method(clipping[i]);
        float lo, hi;
        qb_observer_range(&st, &m, &U8_ASYM, &lo, &hi);
        double err = quant_mse(x, N, &U8_ASYM, lo, hi);
        printf("exponential (max %.2f) u8 asym %-17s [%.4f, %.4f]  quantization mse %.4g (minmax %.4g)\n", st.max,
               clipping[i], lo, hi, err, err_minmax);
        CHECK(near(lo, st.min, 0.01) && hi < st.max && hi > 5, "%s: [%g, %g]", clipping[i], lo, hi);
    }
    qb_tensor_stats_free(&st);
    free(x);
}

/* ---- JSON --------------------------------------------------------------- */

static qb_status read_stats_text(const char *text, qb_tensor_stats *st, qb_error *err) {
    json_t *j = NULL;
    qb_status s = qb_json_parse(text, strlen(text), "calib.json", &j, err);
    if (s) return s;
    s = qb_tensor_stats_read_json(st, j, "calib.json", err);
    json_decref(j);
    return s;
}

static void test_json_round_trip(void) {
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x);
    uint64_t seed = 21;
    for (int i = 0; i < N; i++) x[i] = (float)(0.3 * rng_gauss(&seed) + 0.1);
    x[17] = 9.75f;
    x[18] = -4.1f;
    qb_tensor_stats st, back;
    stats_of(&st, x, N, 3000);
    /* Reading replaces (and frees) what an initialized struct held. */
    CHECK(qb_tensor_stats_init(&back, 2048) == QB_OK, "init");
    json_t *o = qb_tensor_stats_to_json(&st);
    char *text = qb_json_dumps(o, QB_JSON_COMPACT);
    json_decref(o);
    qb_error err = {0};
    CHECK(read_stats_text(text, &back, &err) == QB_OK, "%s", err.msg);
    CHECK(back.min == st.min && back.max == st.max && back.range == st.range && back.count == st.count &&
              back.n_bins == st.n_bins && memcmp(back.bins, st.bins, st.n_bins * sizeof *st.bins) == 0,
          "statistics survive JSON exactly");
    static const char *all[] = {"minmax", "percentile:99.9", "percentile:99.999", "mse", "entropy"};
    for (size_t s = 0; s < 3; s++) {
        for (size_t i = 0; i < 5; i++) {
            qb_observer_method m = method(all[i]);
            float lo, hi, lo2, hi2;
            qb_observer_range(&st, &m, schemes[s], &lo, &hi);
            qb_observer_range(&back, &m, schemes[s], &lo2, &hi2);
            CHECK(lo == lo2 && hi == hi2, "%s %s after reload: [%.9g, %.9g] vs [%.9g, %.9g]", scheme_names[s], all[i],
                  lo, hi, lo2, hi2);
        }
    }
    qb_tensor_stats_free(&back);
    qb_tensor_stats_free(&st);
    free(text);
    free(x);
}

static void test_json_malformed(void) {
    static const char *bad[] = {
        "[]",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":0}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":0,\"bins\":{}}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":0,\"bins\":[0,0,0,0,0,0]}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":1,\"bins\":[0,0,0,0,0,0,-1,2]}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":3,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":2,\"max\":1,\"range\":2,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":0,\"max\":3,\"range\":1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":\"0\",\"max\":1,\"range\":1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":0,\"max\":1,\"range\":-1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":1.5,\"bins\":[0,0,0,0,0,0,1,0.5]}",
        "{\"min\":0,\"max\":1,\"range\":1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,\"1\"]}",
        "{\"min\":0,\"max\":1e999,\"range\":1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"max\":1,\"range\":1,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":0,\"max\":1,\"range\":3,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
        "{\"min\":0,\"max\":1e300,\"range\":1e300,\"count\":2,\"bins\":[0,0,0,0,0,0,1,1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        qb_tensor_stats st = {0};
        qb_error err = {0};
        qb_status s = read_stats_text(bad[i], &st, &err);
        CHECK(s == QB_ERR_FORMAT && strstr(err.msg, "calib.json") && !st.bins, "case %zu (%s): status %d, \"%s\"", i,
              bad[i], s, err.msg);
        if (i == 5) printf("malformed stats, e.g.: %s\n", err.msg);
    }
    qb_tensor_stats st = {0};
    qb_error err = {0};
    const char *good = "{\"min\":-0.5,\"max\":1,\"range\":1,\"count\":2,\"bins\":[0,0,0,1,0,0,0,1]}";
    CHECK(read_stats_text(good, &st, &err) == QB_OK && st.n_bins == 8, "a small valid file: %s", err.msg);
    qb_tensor_stats_free(&st);
}

int main(void) {
    test_qparams();
    test_rounding();
    test_weights();
    test_method_parse();
    test_stats_basics();
    test_doubling();
    test_uniform();
    test_outliers();
    test_entropy_lone_outliers();
    test_one_sided();
    test_json_round_trip();
    test_json_malformed();
    return qb_test_done("test_quant");
}
