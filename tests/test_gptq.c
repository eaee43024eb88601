/* GPTQ rounding (rounding/gptq.h) on correlated synthetic inputs: its output
 * error ||X (W - Q)^T||^2 = tr(dW H dW^T) below round to nearest's for
 * every low-bit format, act_order off and on; the grids exactly RTN's
 * (static groups); the codes against the paper's algorithm written
 * plainly (explicit inverse, one column at a time, the inverse updated by
 * OBS); odd shapes; dead and duplicated input columns; an H that no
 * damping saves; threads against one thread; timings at bert-base's
 * shapes.  QB_SANITIZE=1 shrinks the shapes. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/dtype.h"
#include "rounding/gptq.h"
#include "test_util.h"

static double gauss(uint64_t *s) {
    double g = 0;
    for (int i = 0; i < 6; i++) g += qb_test_uniform(s, -1, 1);
    return g / sqrt(2.0); /* variance 1 */
}

/* Weights with a few outliers, as trained linears have. */
static float *make_w(uint64_t *s, int N, int K) {
    float *w = malloc((size_t)N * K * sizeof *w);
    for (size_t i = 0; i < (size_t)N * K; i++)
        w[i] = (float)(0.05 * gauss(s) * (qb_test_uniform(s, 0, 1) < 0.01f ? 4 : 1));
    return w;
}

/* X = Z A + noise: columns correlated through A, each column scaled by
 * its own factor, a few of them 10x (the outlier features of BERT's
 * LayerNorm outputs); dead: a column of zeros, dup: a column copied. */
static double *make_x(uint64_t *s, int T, int K, int dead, int dup_to, int dup_from) {
    int R = K / 2 + 1;
    double *a = malloc((size_t)R * K * sizeof *a), *x = malloc((size_t)T * K * sizeof *x), *z = malloc(R * sizeof *z);
    double *scale = malloc((size_t)K * sizeof *scale);
    for (size_t i = 0; i < (size_t)R * K; i++) a[i] = qb_test_uniform(s, -1, 1) / sqrt(R);
    for (int k = 0; k < K; k++) scale[k] = exp(qb_test_uniform(s, -1, 1)) * (k % 37 == 5 ? 10 : 1);
    for (int t = 0; t < T; t++) {
        double *xt = x + (size_t)t * K;
        for (int r = 0; r < R; r++) z[r] = gauss(s);
        for (int k = 0; k < K; k++) xt[k] = 0.3 * gauss(s);
        for (int r = 0; r < R; r++)
            for (int k = 0; k < K; k++) xt[k] += z[r] * a[(size_t)r * K + k];
        for (int k = 0; k < K; k++) xt[k] *= scale[k];
        if (dead >= 0) xt[dead] = 0;
        if (dup_to >= 0) xt[dup_to] = xt[dup_from];
    }
    free(a), free(z), free(scale);
    return x;
}

static double *make_h(const double *x, int T, int K) {
    double *h = calloc((size_t)K * K, sizeof *h);
    for (int t = 0; t < T; t++) {
        const double *xt = x + (size_t)t * K;
        for (int i = 0; i < K; i++)
            for (int j = 0; j <= i; j++) h[(size_t)i * K + j] += xt[i] * xt[j];
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < i; j++) h[(size_t)j * K + i] = h[(size_t)i * K + j];
    return h;
}

/* A quantized matrix: RTN's or GPTQ's outputs. */
typedef struct {
    uint8_t *codes, *zero;
    uint16_t *scale, *codebook;
    qb_lowbit_error e;
} qmat;

static qmat qmat_make(int N, int K, const qb_lowbit_spec *s) {
    int G = qb_lowbit_groups(s, K), L = qb_lowbit_levels(s);
    return (qmat){
        malloc((size_t)N * K), calloc((size_t)N * G, 1), calloc((size_t)N * G, 2), calloc((size_t)N * L, 2), {0, 0, 0}};
}

static void qmat_free(qmat *q) { free(q->codes), free(q->zero), free(q->scale), free(q->codebook); }

static double decode(const qmat *q, const qb_lowbit_spec *s, int K, int r, int k) {
    int c = q->codes[(size_t)r * K + k];
    if (s->kind == QB_LOWBIT_KMEANS) return qb_f16_to_f32(q->codebook[(size_t)r * qb_lowbit_levels(s) + c]);
    int G = qb_lowbit_groups(s, K);
    size_t g = (size_t)r * G + (G == 1 ? 0 : k / s->group);
    return (double)qb_f16_to_f32(q->scale[g]) * (c - q->zero[g]);
}

/* tr(dW H dW^T); *finite false if a decoded weight is NaN or Inf. */
static double out_loss(const float *w, int N, int K, const double *h, const qmat *q, const qb_lowbit_spec *s,
                       bool *finite) {
    double loss = 0, *d = malloc((size_t)K * sizeof *d);
    *finite = true;
    for (int r = 0; r < N; r++) {
        for (int k = 0; k < K; k++) {
            double v = decode(q, s, K, r, k);
            *finite &= isfinite(v) != 0;
            d[k] = w[(size_t)r * K + k] - v;
        }
        for (int i = 0; i < K; i++) {
            double hi = 0;
            for (int j = 0; j < K; j++) hi += h[(size_t)i * K + j] * d[j];
            loss += d[i] * hi;
        }
    }
    free(d);
    return loss;
}

static bool rtn(const float *w, int N, int K, const qb_lowbit_spec *s, qmat *q) {
    return qb_lowbit_quantize(w, N, K, s, q->codes, q->scale, q->zero, q->codebook, &q->e, NULL);
}

/* GPTQ on a copy of h. */
static bool gptq(const float *w, int N, int K, const double *h, const qb_lowbit_spec *s, const qb_gptq_params *p,
                 qmat *q, int *dead, const char **why) {
    double *hc = malloc((size_t)K * K * sizeof *hc);
    memcpy(hc, h, (size_t)K * K * sizeof *hc);
    bool ok = qb_gptq_quantize(w, N, K, hc, s, p, q->codes, q->scale, q->zero, q->codebook, &q->e, dead, why);
    free(hc);
    return ok;
}

static const char *spec_name(const qb_lowbit_spec *s, int K, char *buf, size_t cap) {
    const char *kind = s->kind == QB_LOWBIT_GRID ? "grid" : s->kind == QB_LOWBIT_TERNARY ? "ternary" : "kmeans";
    if (s->kind == QB_LOWBIT_KMEANS) snprintf(buf, cap, "kmeans%d", s->bits);
    else if (s->group >= K) snprintf(buf, cap, "%s%d%s per-row", kind, s->bits, s->zero_point ? " zp" : "");
    else snprintf(buf, cap, "%s%d%s g%d", kind, s->bits, s->zero_point ? " zp" : "", s->group);
    return buf;
}

/* Grids identical to RTN's, e exactly as qb_lowbit_quantize measures. */
static void check_static(const char *what, const float *w, int N, int K, const qb_lowbit_spec *s, const qmat *a,
                         const qmat *b) {
    int G = qb_lowbit_groups(s, K), L = qb_lowbit_levels(s);
    if (s->kind == QB_LOWBIT_KMEANS) {
        CHECK(!memcmp(a->codebook, b->codebook, (size_t)N * L * 2), "%s: codebooks differ from RTN's", what);
        /* RTN sums rows in whatever order its threads finish */
        CHECK(fabs(a->e.grid_err - b->e.grid_err) <= 1e-12 * a->e.grid_err, "%s: grid_err %.17g, RTN's %.17g", what,
              b->e.grid_err, a->e.grid_err);
    } else {
        CHECK(!memcmp(a->scale, b->scale, (size_t)N * G * 2), "%s: scales differ from RTN's", what);
        CHECK(!memcmp(a->zero, b->zero, (size_t)N * G), "%s: zero points differ from RTN's", what);
    }
    double err = 0, signal = 0;
    bool in_range = true;
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            double x = w[(size_t)r * K + k], d = x - decode(b, s, K, r, k);
            err += d * d, signal += x * x;
            in_range &= b->codes[(size_t)r * K + k] < L;
        }
    CHECK(in_range, "%s: a code out of range", what);
    CHECK(fabs(b->e.err - err) <= 1e-9 * err && fabs(b->e.signal - signal) <= 1e-9 * signal,
          "%s: e = (%g, %g), measured (%g, %g)", what, b->e.err, b->e.signal, err, signal);
}

/* One case: GPTQ's output error against RTN's; returns the ratio. */
static double run_case(const float *w, int N, int K, const double *h, const qb_lowbit_spec *s, bool act_order,
                       double max_ratio) {
    char name[64], what[96];
    snprintf(what, sizeof what, "%s N=%d K=%d%s", spec_name(s, K, name, sizeof name), N, K,
             act_order ? " act_order" : "");
    qmat a = qmat_make(N, K, s), b = qmat_make(N, K, s);
    qb_gptq_params p = {.damp = 0.01, .act_order = act_order};
    int dead = -1;
    const char *why = "unset";
    CHECK(rtn(w, N, K, s, &a), "%s: RTN failed", what);
    bool ok = gptq(w, N, K, h, s, &p, &b, &dead, &why);
    CHECK(ok && !why && dead == 0, "%s: GPTQ returned %d (%s), %d dead", what, ok, why ? why : "", dead);
    check_static(what, w, N, K, s, &a, &b);
    bool fa, fb;
    double la = out_loss(w, N, K, h, &a, s, &fa), lb = out_loss(w, N, K, h, &b, s, &fb);
    CHECK(fa && fb, "%s: a decoded weight is not finite", what);
    CHECK(lb <= max_ratio * la, "%s: GPTQ output error %g, RTN's %g (ratio %.3f, at most %.3f)", what, lb, la, lb / la,
          max_ratio);
    qmat_free(&a), qmat_free(&b);
    return la > 0 ? lb / la : 1;
}

/* Every format: grid 4/3/2 bits symmetric and with zero points, groups of
 * 128 and per row; ternary; k-means 4 and 2.  Returns how many (16). */
static int specs(int K, qb_lowbit_spec all[16]) {
    int c = 0;
    for (int bits = 4; bits >= 2; bits--)
        for (int zp = 0; zp < 2; zp++)
            for (int per_row = 0; per_row < 2; per_row++)
                all[c++] = (qb_lowbit_spec){
                    .kind = QB_LOWBIT_GRID, .bits = bits, .group = per_row ? K : 128, .zero_point = zp};
    all[c++] = (qb_lowbit_spec){.kind = QB_LOWBIT_TERNARY, .bits = 2, .group = 128};
    all[c++] = (qb_lowbit_spec){.kind = QB_LOWBIT_TERNARY, .bits = 2, .group = K};
    all[c++] = (qb_lowbit_spec){.kind = QB_LOWBIT_KMEANS, .bits = 4, .group = K};
    all[c++] = (qb_lowbit_spec){.kind = QB_LOWBIT_KMEANS, .bits = 2, .group = K};
    return c;
}

static void check_formats(uint64_t *rs, bool sanitize) {
    int N = sanitize ? 24 : 96, K = 256, T = sanitize ? 384 : 1024;
    float *w = make_w(rs, N, K);
    double *x = make_x(rs, T, K, -1, -1, -1), *h = make_h(x, T, K);
    qb_lowbit_spec s[16];
    int n = specs(K, s);
    printf("output error GPTQ / RTN, N=%d K=%d T=%d:\n", N, K, T);
    for (int i = 0; i < n; i++) {
        char name[64];
        /* 4 bits leaves RTN little to fix; below, GPTQ should more than halve it */
        double bound = s[i].bits >= 4 ? 0.9 : 0.7;
        double off = run_case(w, N, K, h, &s[i], false, bound), on = run_case(w, N, K, h, &s[i], true, bound);
        printf("  %-18s act_order off %.3f  on %.3f\n", spec_name(&s[i], K, name, sizeof name), off, on);
    }
    free(w), free(x), free(h);
}

/* K not a multiple of the group, single rows and columns. */
static void check_odd_shapes(uint64_t *rs, bool sanitize) {
    static const int Ks[] = {1, 3, 17, 127, 769}, Ns[] = {1, 3, 17};
    const qb_lowbit_spec grid = {.kind = QB_LOWBIT_GRID, .bits = 3, .group = 128, .zero_point = true};
    const qb_lowbit_spec km = {.kind = QB_LOWBIT_KMEANS, .bits = 2, .group = 128};
    double worst = 0;
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
        int K = Ks[ki], T = K + 64;
        if (sanitize && K > 200) continue;
        double *x = make_x(rs, T, K, -1, -1, -1), *h = make_h(x, T, K);
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++) {
            float *w = make_w(rs, Ns[ni], K);
            /* a few columns leave GPTQ little to move (K = 1: nothing; it must
             * then be RTN exactly), many should show its gain */
            double bound = K >= 127 ? 0.9 : 1.0;
            for (int act = 0; act < 2; act++) {
                double r1 = run_case(w, Ns[ni], K, h, &grid, act, bound);
                double r2 = run_case(w, Ns[ni], K, h, &km, act, bound);
                worst = fmax(worst, fmax(r1, r2));
            }
            free(w);
        }
        free(x), free(h);
    }
    printf("odd shapes: worst GPTQ / RTN ratio %.4f\n", worst);
}

/* ---- the paper's algorithm, plainly --------------------------------------- */

static int ref_code(const qmat *q, const qb_lowbit_spec *s, int K, int r, int col, double v, double *dec) {
    int L = qb_lowbit_levels(s);
    if (s->kind == QB_LOWBIT_KMEANS) {
        int best = 0;
        for (int c = 1; c < L; c++)
            if (fabs(v - qb_f16_to_f32(q->codebook[(size_t)r * L + c])) <
                fabs(v - qb_f16_to_f32(q->codebook[(size_t)r * L + best])))
                best = c;
        *dec = qb_f16_to_f32(q->codebook[(size_t)r * L + best]);
        return best;
    }
    int G = qb_lowbit_groups(s, K), g = r * G + (G == 1 ? 0 : col / s->group), z = q->zero[g];
    double sc = qb_f16_to_f32(q->scale[g]), c = nearbyint(v / sc) + z;
    int ci = c > L - 1 ? L - 1 : c < 0 ? 0 : (int)c;
    *dec = sc * (ci - z);
    return ci;
}

/* Gauss-Jordan inverse of a symmetric positive definite [n, n]. */
static void ref_inverse(double *a, int n, double *inv) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) inv[(size_t)i * n + j] = i == j;
    for (int c = 0; c < n; c++) {
        double piv = a[(size_t)c * n + c];
        for (int j = 0; j < n; j++) a[(size_t)c * n + j] /= piv, inv[(size_t)c * n + j] /= piv;
        for (int i = 0; i < n; i++) {
            double f = a[(size_t)i * n + c];
            if (i == c || f == 0) continue;
            for (int j = 0; j < n; j++) a[(size_t)i * n + j] -= f * a[(size_t)c * n + j];
            for (int j = 0; j < n; j++) inv[(size_t)i * n + j] -= f * inv[(size_t)c * n + j];
        }
    }
}

/* GPTQ as the paper states it: q = quant(w_j), the other weights moved by
 * -(w_j - q) / Hinv[j][j] * Hinv[:, j], and column j removed from Hinv
 * by the OBS update.  Codes into q->codes, grids already RTN's in q. */
static void ref_gptq(const float *w, int N, int K, const double *h0, const qb_lowbit_spec *s, double damp,
                     bool act_order, qmat *q) {
    double *h = malloc((size_t)K * K * sizeof *h), *hinv = malloc((size_t)K * K * sizeof *hinv);
    double *ww = malloc((size_t)N * K * sizeof *ww), mean = 0;
    int *perm = malloc((size_t)K * sizeof *perm);
    memcpy(h, h0, (size_t)K * K * sizeof *h);
    for (int i = 0; i < K; i++) {
        if (h[(size_t)i * K + i] == 0) h[(size_t)i * K + i] = 1;
        mean += h[(size_t)i * K + i] / K;
        perm[i] = i;
    }
    for (int i = 0; i < K; i++) h[(size_t)i * K + i] += damp * mean;
    for (int i = 1; act_order && i < K; i++) /* insertion sort: stable, decreasing diagonal */
        for (int j = i; j > 0 && h[(size_t)perm[j] * K + perm[j]] > h[(size_t)perm[j - 1] * K + perm[j - 1]]; j--) {
            int t = perm[j];
            perm[j] = perm[j - 1], perm[j - 1] = t;
        }
    double *hp = malloc((size_t)K * K * sizeof *hp);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) hp[(size_t)i * K + j] = h[(size_t)perm[i] * K + perm[j]];
    ref_inverse(hp, K, hinv);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < K; j++) ww[(size_t)r * K + j] = w[(size_t)r * K + perm[j]];
    for (int j = 0; j < K; j++) {
        double d = hinv[(size_t)j * K + j];
        for (int r = 0; r < N; r++) {
            double dec, *wr = ww + (size_t)r * K;
            q->codes[(size_t)r * K + perm[j]] = (uint8_t)ref_code(q, s, K, r, perm[j], wr[j], &dec);
            double err = (wr[j] - dec) / d;
            for (int k = j + 1; k < K; k++) wr[k] -= err * hinv[(size_t)j * K + k];
        }
        for (int a = j + 1; a < K; a++)
            for (int b = j + 1; b < K; b++)
                hinv[(size_t)a * K + b] -= hinv[(size_t)a * K + j] * hinv[(size_t)j * K + b] / d;
    }
    free(h), free(hinv), free(ww), free(perm), free(hp);
}

static void check_reference(uint64_t *rs) {
    const int N = 32, K = 96, T = 256;
    const qb_lowbit_spec cases[] = {
        {.kind = QB_LOWBIT_GRID, .bits = 3, .group = 32, .zero_point = true},
        {.kind = QB_LOWBIT_GRID, .bits = 2, .group = 96},
        {.kind = QB_LOWBIT_TERNARY, .bits = 2, .group = 40},
        {.kind = QB_LOWBIT_KMEANS, .bits = 2, .group = 96},
    };
    float *w = make_w(rs, N, K);
    double *x = make_x(rs, T, K, 7, 20, 3), *h = make_h(x, T, K);
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (int act = 0; act < 2; act++) {
            const qb_lowbit_spec *s = &cases[c];
            char name[64];
            qmat a = qmat_make(N, K, s), b = qmat_make(N, K, s);
            /* blocks that do not divide K: 96 = 40 + 40 + 16, 13 * 7 + 5 */
            qb_gptq_params p = {.damp = 0.01, .act_order = act, .block = act ? 7 : 40};
            int dead;
            CHECK(gptq(w, N, K, h, s, &p, &b, &dead, NULL), "reference case %zu", c);
            CHECK(rtn(w, N, K, s, &a), "RTN");
            ref_gptq(w, N, K, h, s, p.damp, act, &a);
            int differ = 0;
            for (int i = 0; i < N * K; i++) differ += a.codes[i] != b.codes[i];
            bool fa, fb;
            double la = out_loss(w, N, K, h, &a, s, &fa), lb = out_loss(w, N, K, h, &b, s, &fb);
            printf("reference %-14s act_order %d: %d of %d codes differ, loss %.9g vs %.9g\n",
                   spec_name(s, K, name, sizeof name), act, differ, N * K, lb, la);
            CHECK(differ <= N * K / 200, "%s act_order %d: %d codes differ from the reference", name, act, differ);
            CHECK(fabs(la - lb) <= 1e-6 * la, "%s act_order %d: loss %.9g, the reference's %.9g", name, act, lb, la);
            qmat_free(&a), qmat_free(&b);
        }
    free(w), free(x), free(h);
}

/* ---- singular and hopeless Hessians ---------------------------------------- */

static void check_singular(uint64_t *rs) {
    const int N = 16, K = 150, T = 400;
    const qb_lowbit_spec s = {.kind = QB_LOWBIT_GRID, .bits = 2, .group = 64, .zero_point = true};
    float *w = make_w(rs, N, K);
    double *x = make_x(rs, T, K, 9, 30, 31);
    for (int t = 0; t < T; t++) x[(size_t)t * K + 100] = 0; /* a second dead column */
    double *h = make_h(x, T, K);
    for (int damp_i = 0; damp_i < 3; damp_i++) {
        double damp = damp_i == 0 ? 0.01 : damp_i == 1 ? 1e-9 : 0; /* 0: only the retries save it */
        for (int act = 0; act < 2; act++) {
            qmat a = qmat_make(N, K, &s), b = qmat_make(N, K, &s);
            qb_gptq_params p = {.damp = damp, .act_order = act};
            int dead = -1;
            const char *why = "unset";
            bool ok = gptq(w, N, K, h, &s, &p, &b, &dead, &why);
            CHECK(ok && !why, "singular H, damp %g act_order %d: returned %d (%s)", damp, act, ok, why ? why : "");
            CHECK(dead == 2, "singular H: %d dead columns, expected 2", dead);
            CHECK(rtn(w, N, K, &s, &a), "RTN");
            bool fa, fb;
            double la = out_loss(w, N, K, h, &a, &s, &fa), lb = out_loss(w, N, K, h, &b, &s, &fb);
            CHECK(fb && isfinite(b.e.err) && isfinite(lb), "singular H, damp %g: not finite", damp);
            CHECK(lb < la, "singular H, damp %g act_order %d: loss %g, RTN's %g", damp, act, lb, la);
            /* no input reaches a dead column: GPTQ leaves RTN's codes there */
            bool kept = true;
            for (int r = 0; r < N; r++)
                kept &= a.codes[r * K + 9] == b.codes[r * K + 9] && a.codes[r * K + 100] == b.codes[r * K + 100];
            CHECK(kept, "singular H: a dead column's codes are not RTN's");
            qmat_free(&a), qmat_free(&b);
        }
    }
    /* slightly indefinite (as an H summed in float can be): 0.01 of damping
     * leaves a negative eigenvalue, a retry's 0.1 removes it */
    {
        double mean = 0;
        for (int i = 0; i < K; i++) mean += h[(size_t)i * K + i] / K;
        for (int i = 0; i < K; i++) h[(size_t)i * K + i] -= 0.05 * mean;
        qmat a = qmat_make(N, K, &s), b = qmat_make(N, K, &s);
        const char *why = "unset";
        int dead;
        bool ok = gptq(w, N, K, h, &s, NULL, &b, &dead, &why), fa, fb;
        CHECK(ok && !why, "an H that a retry's damping saves: returned %d (%s)", ok, why ? why : "");
        CHECK(rtn(w, N, K, &s, &a), "RTN");
        double la = out_loss(w, N, K, h, &a, &s, &fa), lb = out_loss(w, N, K, h, &b, &s, &fb);
        CHECK(fb && lb < la, "an H that a retry's damping saves: loss %g, RTN's %g", lb, la);
        qmat_free(&a), qmat_free(&b);
    }
    /* not positive semidefinite at all: false, a reason, RTN's outputs */
    for (int i = 0; i < K * K; i++) h[i] = 0;
    for (int i = 0; i < K; i++) h[(size_t)i * K + i] = i == 3 ? -1e6 : 1;
    qmat a = qmat_make(N, K, &s), b = qmat_make(N, K, &s);
    const char *why = NULL;
    int dead;
    bool ok = gptq(w, N, K, h, &s, NULL, &b, &dead, &why);
    CHECK(!ok && why && *why, "an indefinite H must be refused");
    printf("indefinite H: %s\n", why ? why : "(no reason)");
    CHECK(rtn(w, N, K, &s, &a) && !memcmp(a.codes, b.codes, (size_t)N * K), "refused: outputs not RTN's");
    /* a diagonal H: no feedback, so grid codes are RTN's exactly */
    for (int i = 0; i < K; i++) h[(size_t)i * K + i] = 1 + i % 5;
    ok = gptq(w, N, K, h, &s, NULL, &b, &dead, &why);
    CHECK(ok && !memcmp(a.codes, b.codes, (size_t)N * K), "diagonal H: codes differ from RTN's");
    qmat_free(&a), qmat_free(&b);
    free(w), free(x), free(h);
}

/* One thread and three: the same bytes. */
static void check_threads(uint64_t *rs) {
    const int N = 40, K = 300, T = 400;
    const qb_lowbit_spec s = {.kind = QB_LOWBIT_GRID, .bits = 3, .group = 128};
    float *w = make_w(rs, N, K);
    double *x = make_x(rs, T, K, -1, -1, -1), *h = make_h(x, T, K);
    qmat a = qmat_make(N, K, &s), b = qmat_make(N, K, &s);
    int threads = 3, dead;
    qb_gptq_params p = qb_gptq_default_params();
    CHECK(gptq(w, N, K, h, &s, &p, &a, &dead, NULL), "1 thread");
    p.pool = qb_test_pool(threads);
    CHECK(gptq(w, N, K, h, &s, &p, &b, &dead, NULL), "%d threads", threads);
    qb_pool_free(p.pool);
    CHECK(!memcmp(a.codes, b.codes, (size_t)N * K), "1 thread and %d give different codes", threads);
    qmat_free(&a), qmat_free(&b);
    free(w), free(x), free(h);
}

/* ---- timing ----------------------------------------------------------------- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * t.tv_nsec;
}

/* H of inputs with AR(1) correlation between neighbouring columns: built in
 * O(K^2), where X^T X would cost more than GPTQ at K = 3072. */
static void time_shape(uint64_t *rs, int N, int K) {
    const qb_lowbit_spec s = {.kind = QB_LOWBIT_GRID, .bits = 4, .group = 128};
    float *w = make_w(rs, N, K);
    double *h = malloc((size_t)K * K * sizeof *h), *sd = malloc((size_t)K * sizeof *sd);
    for (int k = 0; k < K; k++) sd[k] = exp(qb_test_uniform(rs, -1, 1));
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) h[(size_t)i * K + j] = 1000 * sd[i] * sd[j] * pow(0.9, abs(i - j));
    qmat a = qmat_make(N, K, &s);
    int dead;
    qb_gptq_params p = qb_gptq_default_params();
    p.pool = qb_test_pool(2);
    double t0 = now();
    CHECK(qb_lowbit_quantize(w, N, K, &s, a.codes, a.scale, a.zero, a.codebook, &a.e, p.pool), "RTN");
    double t1 = now();
    CHECK(qb_gptq_quantize(w, N, K, h, &s, &p, a.codes, a.scale, a.zero, a.codebook, &a.e, &dead, NULL),
          "GPTQ N=%d K=%d", N, K);
    double t2 = now();
    printf("timing N=%d K=%d, 2 threads: GPTQ %.3f s (its RTN %.3f s)\n", N, K, t2 - t1, t1 - t0);
    qb_pool_free(p.pool);
    qmat_free(&a);
    free(w), free(h), free(sd);
}

int main(void) {
    uint64_t rs = 0x9E3779B97F4A7C15ull;
    bool sanitize = getenv("QB_SANITIZE") != NULL;
    check_reference(&rs);
    check_formats(&rs, sanitize);
    check_odd_shapes(&rs, sanitize);
    check_singular(&rs);
    check_threads(&rs);
    time_shape(&rs, sanitize ? 64 : 768, sanitize ? 256 : 768);
    if (!sanitize) time_shape(&rs, 768, 3072);
    return qb_test_done("test_gptq");
}
