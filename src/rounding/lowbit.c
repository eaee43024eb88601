/* Low-bit weight quantizers (lowbit.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "rounding/lowbit.h"

#define QB_KMEANS_ITERS 25

int qb_lowbit_levels(const qb_lowbit_spec *s) { return s->kind == QB_LOWBIT_TERNARY ? 3 : 1 << s->bits; }

int qb_lowbit_groups(const qb_lowbit_spec *s, int K) {
    if (s->kind == QB_LOWBIT_KMEANS || s->per_tensor || s->group >= K) return 1;
    return (K + s->group - 1) / s->group;
}

/* The FP16 a scale is stored as, kept positive: a group of zeros gets
 * scale 1 (every code then decodes to 0).  One past FP16's range becomes
 * an infinity, which the quantizer refuses to write. */
static uint16_t scale_h16(float s) {
    if (!(s > 0) || !isfinite(s)) s = 1.0f;
    uint16_t h = qb_f32_to_f16(s);
    return qb_f16_to_f32(h) > 0 ? h : 1; /* below the smallest subnormal */
}

static int code_of(float x, float inv, int zero, int top) {
    float q = nearbyintf(x * inv) + (float)zero;
    return q > (float)top ? top : q >= 0 ? (int)q : 0; /* NaN to 0 */
}

/* Codes of x on the grid (scale, zero) with levels 0..top; squared error. */
static double grid_codes(const float *x, int n, uint16_t sh, int zero, int top, uint8_t *codes) {
    float s = qb_f16_to_f32(sh), inv = 1.0f / s;
    double err = 0;
    for (int i = 0; i < n; i++) {
        int c = code_of(x[i], inv, zero, top);
        double d = (double)x[i] - (double)s * (c - zero);
        err += d * d;
        codes[i] = (uint8_t)c;
    }
    return err;
}

/* Round to nearest on a uniform grid, its range clipped by the factor
 * (1, 0.95, ..., 0.75) that gives the smallest squared error: outliers of
 * a group otherwise stretch every step of it. */
static double quantize_grid(const float *x, int n, const qb_lowbit_spec *s, uint8_t *codes, uint16_t *scale,
                            uint8_t *zero, uint8_t *tmp) {
    int top = (1 << s->bits) - 1;
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    double best = INFINITY;
    for (int f = 0; f < 6; f++) {
        float clip = 1.0f - 0.05f * (float)f, sc;
        int z;
        if (s->zero_point) {
            sc = (hi - lo) * clip / (float)top;
            z = (int)nearbyintf(-lo * clip / qb_f16_to_f32(scale_h16(sc)));
            z = z < 0 ? 0 : z > top ? top : z;
        } else {
            sc = fmaxf(-lo, hi) * clip / ((float)top / 2.0f);
            z = (top + 1) / 2;
        }
        uint16_t sh = scale_h16(sc);
        double err = grid_codes(x, n, sh, z, top, tmp);
        if (err < best || f == 0) { /* an infinite scale's NaN error is kept, to be refused */
            best = err;
            *scale = sh;
            *zero = (uint8_t)z;
            memcpy(codes, tmp, (size_t)n);
        }
    }
    return best;
}

/* Ternary weights {-a, 0, +a}: the threshold 0.7 mean|w| and the mean
 * magnitude above it (Li and Liu, Ternary Weight Networks). */
static double quantize_ternary(const float *x, int n, uint8_t *codes, uint16_t *scale, uint8_t *zero) {
    double mag = 0;
    for (int i = 0; i < n; i++) mag += fabs(x[i]);
    float delta = (float)(0.7 * mag / n), sum = 0;
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > delta) sum += fabsf(x[i]), kept++;
    *scale = scale_h16(kept ? sum / (float)kept : 0);
    *zero = 1;
    float a = qb_f16_to_f32(*scale);
    double err = 0;
    for (int i = 0; i < n; i++) {
        int c = x[i] > delta ? 2 : x[i] < -delta ? 0 : 1;
        double d = (double)x[i] - (double)a * (c - 1);
        err += d * d;
        codes[i] = (uint8_t)c;
    }
    return err;
}

/* Deterministic per-row random numbers (splitmix64). */
static double rand_unit(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static int nearest(const float *c, int k, float x) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (fabsf(x - c[j]) < fabsf(x - c[best])) best = j;
    return best;
}

/* Sorts the centroids (their order is free) and assigns every value to
 * the nearest by the midpoints between neighbours; squared error. */
static double assign(const float *x, int n, uint16_t *ch, int k, uint8_t *codes) {
    float c[16], mid[16];
    for (int j = 1; j < k; j++)
        for (int i = j; i > 0 && qb_f16_to_f32(ch[i]) < qb_f16_to_f32(ch[i - 1]); i--) {
            uint16_t t = ch[i];
            ch[i] = ch[i - 1], ch[i - 1] = t;
        }
    for (int j = 0; j < k; j++) c[j] = qb_f16_to_f32(ch[j]);
    for (int j = 0; j + 1 < k; j++) mid[j] = 0.5f * (c[j] + c[j + 1]);
    double err = 0;
    for (int i = 0; i < n; i++) {
        int lo = 0, hi = k - 1; /* the first centroid whose upper midpoint is >= x */
        while (lo < hi) {
            int m = (lo + hi) / 2;
            if (x[i] > mid[m]) lo = m + 1;
            else hi = m;
        }
        double d = (double)x[i] - c[lo];
        err += d * d;
        codes[i] = (uint8_t)lo;
    }
    return err;
}

/* Lloyd's iterations from centroids c (FP16); an empty cluster keeps its
 * centroid.  Returns the final squared error with codes assigned. */
static double lloyd(const float *x, int n, uint16_t *ch, int k, uint8_t *codes) {
    double err = assign(x, n, ch, k, codes);
    for (int it = 0; it < QB_KMEANS_ITERS; it++) {
        double sum[16] = {0};
        int cnt[16] = {0};
        for (int i = 0; i < n; i++) sum[codes[i]] += x[i], cnt[codes[i]]++;
        uint16_t next[16];
        for (int j = 0; j < k; j++) next[j] = cnt[j] ? qb_f32_to_f16((float)(sum[j] / cnt[j])) : ch[j];
        double e = assign(x, n, next, k, codes);
        if (!(e < err)) break;
        err = e;
        memcpy(ch, next, (size_t)k * sizeof *ch);
    }
    return assign(x, n, ch, k, codes);
}

/* k-means++ seeding: each next centroid drawn with probability
 * proportional to the squared distance to the nearest one chosen. */
static void seed_plus_plus(const float *x, int n, int k, uint64_t seed, uint16_t *ch, double *d2) {
    float c[16];
    c[0] = x[(int)(rand_unit(&seed) * n) % n];
    for (int j = 1; j < k; j++) {
        double total = 0;
        for (int i = 0; i < n; i++) {
            double d = x[i] - c[nearest(c, j, x[i])];
            d2[i] = d * d;
            total += d2[i];
        }
        double r = rand_unit(&seed) * total;
        int pick = n - 1;
        for (int i = 0; i < n && total > 0; i++)
            if ((r -= d2[i]) <= 0) {
                pick = i;
                break;
            }
        c[j] = x[pick];
    }
    for (int j = 0; j < k; j++) ch[j] = qb_f32_to_f16(c[j]);
}

/* k centroids for one row: the better of Lloyd from k-means++ and Lloyd
 * from the row's uniform grid, or the grid itself, so the codebook is never
 * worse than the grid it generalises. */
static double quantize_kmeans(const float *x, int n, int bits, uint64_t seed, uint8_t *codes, uint16_t *cb,
                              uint8_t *tmp, double *d2, double *grid_err) {
    int k = 1 << bits;
    qb_lowbit_spec g = {QB_LOWBIT_GRID, bits, n, false, false};
    uint16_t sh;
    uint8_t z;
    *grid_err = quantize_grid(x, n, &g, codes, &sh, &z, tmp);
    for (int j = 0; j < k; j++) cb[j] = qb_f32_to_f16(qb_f16_to_f32(sh) * (float)(j - z));
    double best = assign(x, n, cb, k, codes);
    uint16_t c[16];
    memcpy(c, cb, (size_t)k * sizeof *c);
    double e = lloyd(x, n, c, k, tmp);
    if (e < best) best = e, memcpy(cb, c, (size_t)k * sizeof *c), memcpy(codes, tmp, (size_t)n);
    seed_plus_plus(x, n, k, seed, c, d2);
    e = lloyd(x, n, c, k, tmp);
    if (e < best) best = e, memcpy(cb, c, (size_t)k * sizeof *c), memcpy(codes, tmp, (size_t)n);
    return best;
}

/* One row: its codes and scales (or codebook); squared errors added to e. */
static void quantize_row(const float *x, int K, const qb_lowbit_spec *s, int r, uint8_t *codes, uint16_t *scale,
                         uint8_t *zero, uint16_t *codebook, uint8_t *tmp, double *d2, qb_lowbit_error *e) {
    int G = qb_lowbit_groups(s, K), gs = G == 1 ? K : s->group;
    for (int i = 0; i < K; i++) e->signal += (double)x[i] * x[i];
    if (s->kind == QB_LOWBIT_KMEANS) {
        double ge;
        e->err += quantize_kmeans(x, K, s->bits, 0x5EEDull + (uint64_t)r, codes, codebook, tmp, d2, &ge);
        e->grid_err += ge;
        return;
    }
    for (int g = 0; g < G; g++) {
        int k0 = g * gs, n = K - k0 < gs ? K - k0 : gs;
        e->err += s->kind == QB_LOWBIT_TERNARY ? quantize_ternary(x + k0, n, codes + k0, scale + g, zero + g)
                                               : quantize_grid(x + k0, n, s, codes + k0, scale + g, zero + g, tmp);
    }
}

/* One grid for the whole matrix, written into every row's single group:
 * the kernels read per-row scales either way. */
static bool quantize_tensor(const float *w, int N, int K, const qb_lowbit_spec *s, uint8_t *codes, uint16_t *scale,
                            uint8_t *zero, qb_lowbit_error *e) {
    size_t n = (size_t)N * K;
    uint8_t *tmp = malloc(n);
    if (!tmp || n > (size_t)INT32_MAX) {
        free(tmp);
        return false;
    }
    *e = (qb_lowbit_error){0};
    for (size_t i = 0; i < n; i++) e->signal += (double)w[i] * w[i];
    e->err = s->kind == QB_LOWBIT_TERNARY ? quantize_ternary(w, (int)n, codes, scale, zero)
                                          : quantize_grid(w, (int)n, s, codes, scale, zero, tmp);
    for (int r = 1; r < N; r++) scale[r] = scale[0], zero[r] = zero[0];
    free(tmp);
    return true;
}

/* Rows go out 16 at a time; each run's errors are kept apart and summed
 * in row order, so the totals do not depend on which thread ran what. */
enum { QUANTIZE_RUN = 16 };

typedef struct {
    const float *w;
    int K, G, L;
    const qb_lowbit_spec *s;
    uint8_t *codes, *tmp; /* tmp: K per thread */
    uint16_t *scale, *codebook;
    uint8_t *zero;
    double *d2;           /* K per thread */
    qb_lowbit_error *runs;
    int N;
} quantize_job;

static void quantize_run(void *ctx, int run, int t) {
    const quantize_job *j = ctx;
    int K = j->K, G = j->G, L = j->L;
    qb_lowbit_error *mine = &j->runs[run];
    for (int r = run * QUANTIZE_RUN; r < j->N && r < (run + 1) * QUANTIZE_RUN; r++)
        quantize_row(j->w + (size_t)r * K, K, j->s, r, j->codes + (size_t)r * K, j->scale ? j->scale + (size_t)r * G : NULL,
                     j->zero ? j->zero + (size_t)r * G : NULL, j->codebook ? j->codebook + (size_t)r * L : NULL,
                     j->tmp + (size_t)t * K, j->d2 + (size_t)t * K, mine);
}

bool qb_lowbit_quantize(const float *w, int N, int K, const qb_lowbit_spec *s, uint8_t *codes, uint16_t *scale,
                        uint8_t *zero, uint16_t *codebook, qb_lowbit_error *e, qb_pool *pool) {
    if (s->per_tensor && s->kind != QB_LOWBIT_KMEANS) return quantize_tensor(w, N, K, s, codes, scale, zero, e);
    size_t threads = (size_t)qb_pool_threads(pool);
    int n_runs = (N + QUANTIZE_RUN - 1) / QUANTIZE_RUN;
    quantize_job j = {.w = w, .K = K, .G = qb_lowbit_groups(s, K), .L = qb_lowbit_levels(s), .s = s, .codes = codes,
                      .tmp = malloc(threads * (size_t)K), .scale = scale, .codebook = codebook, .zero = zero,
                      .d2 = malloc(threads * (size_t)K * sizeof(double)),
                      .runs = calloc((size_t)n_runs + 1, sizeof(qb_lowbit_error)), .N = N};
    bool ok = j.tmp && j.d2 && j.runs;
    if (ok) qb_pool_run(pool, n_runs, quantize_run, &j);
    *e = (qb_lowbit_error){0};
    for (int r = 0; ok && r < n_runs; r++)
        e->err += j.runs[r].err, e->signal += j.runs[r].signal, e->grid_err += j.runs[r].grid_err;
    free(j.tmp);
    free(j.d2);
    free(j.runs);
    return ok;
}

void qb_lowbit_decode(const uint8_t *codes, int N, int K, const qb_lowbit_spec *s, const uint16_t *scale,
                      const uint8_t *zero, const uint16_t *codebook, float *out) {
    int G = qb_lowbit_groups(s, K), gs = G == 1 ? K : s->group, L = qb_lowbit_levels(s);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)n * K + k, g = (size_t)n * G + (size_t)(k / gs);
            out[i] = s->kind == QB_LOWBIT_KMEANS ? qb_f16_to_f32(codebook[(size_t)n * L + codes[i]])
                                                 : qb_f16_to_f32(scale[g]) * (float)((int)codes[i] - zero[g]);
        }
}
