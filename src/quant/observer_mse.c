/* The mse observer: the clipping range that minimises the expected squared
 * quantization error over the histogram.  A value inside the representable
 * interval costs the uniform rounding noise step^2 / 12, one outside costs
 * its squared distance to the nearest end.  A candidate is scored on the
 * interval the scheme really represents (qb_qparams_from_range rounds the
 * zero point and widens the range to 0), so the search sees what
 * quantization will do.  Candidates shrink [min, max] towards 0 on a grid,
 * which is then refined around the best point twice. */
#include <math.h>
#include <stdlib.h>

#include "quant/observer_hist.h"

/* Prefix moments make a candidate's error O(1): mass, sum[k] and sq[k]
 * hold the count, sum x and sum x^2 of bins [0, k) (x^2 of a uniform bin
 * is centre^2 + width^2 / 12). */
typedef struct {
    qb_obs_hist h;
    double *mass, *sum, *sq;
    const qb_qscheme *scheme;
    int32_t qmin, qmax;
} error_model;

typedef struct {
    double a, b;  /* fractions of the lower and upper extents */
    double err;
} candidate;

static bool error_model_init(error_model *e, const qb_tensor_stats *st, const qb_qscheme *s) {
    e->h = qb_obs_hist_signed(st);
    e->scheme = s;
    qb_qscheme_limits(s, &e->qmin, &e->qmax);
    size_t n = (size_t)e->h.n + 1;
    e->mass = malloc(3 * n * sizeof *e->mass);
    if (!e->mass) return false;
    e->sum = e->mass + n;
    e->sq = e->sum + n;
    e->mass[0] = e->sum[0] = e->sq[0] = 0;
    double w = e->h.width;
    for (int k = 0; k < e->h.n; k++) {
        double c = e->h.counts[k], mid = e->h.lo + (k + 0.5) * w;
        e->mass[k + 1] = e->mass[k] + c;
        e->sum[k + 1] = e->sum[k] + c * mid;
        e->sq[k + 1] = e->sq[k] + c * (mid * mid + w * w / 12);
    }
    return true;
}

/* The count of values below t and the sum of (t - x)^2 over them. */
static void below(const error_model *e, double t, double *count, double *clip) {
    double u = (t - e->h.lo) / e->h.width;
    int k = u <= 0 ? 0 : u >= e->h.n ? e->h.n : (int)u;
    double f = k < e->h.n && u > 0 ? u - k : 0;
    double part = k < e->h.n ? e->h.counts[k] * f : 0, reach = f * e->h.width;
    *count = e->mass[k] + part;
    *clip = e->sq[k] - 2 * t * e->sum[k] + t * t * e->mass[k] + part * reach * reach / 3;
}

static double range_error(const error_model *e, double lo, double hi) {
    qb_qparams p = qb_qparams_from_range(e->scheme, (float)lo, (float)hi);
    double s = p.scale, ql = s * (e->qmin - p.zero_point), qh = s * (e->qmax - p.zero_point);
    double n_lo, clip_lo, n_hi, clip_hi;
    below(e, ql, &n_lo, &clip_lo);
    below(e, qh, &n_hi, &clip_hi);
    /* sum over x > qh of (x - qh)^2: all of (x - qh)^2 minus the part below. */
    int n = e->h.n;
    double all_hi = e->sq[n] - 2 * qh * e->sum[n] + qh * qh * e->mass[n];
    return clip_lo + (all_hi - clip_hi) + (n_hi - n_lo) * s * s / 12;
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* Scores the (2 steps + 1)^2 points (a line for symmetric schemes) within
 * half of the best so far, keeping the best; ties keep the wider range. */
static void search_around(const error_model *e, double lower, double upper, double half, int steps, candidate *best) {
    candidate centre = *best;
    int a_steps = e->scheme->symmetric ? 0 : steps;
    for (int i = a_steps; i >= -a_steps; i--) {
        for (int k = steps; k >= -steps; k--) {
            double b = clamp01(centre.b + half * k / steps);
            double a = e->scheme->symmetric ? b : clamp01(centre.a + half * i / steps);
            double lo = lower * a, hi = upper * b;
            if (!(hi > lo)) continue;
            double err = range_error(e, lo, hi);
            if (err < best->err) *best = (candidate){a, b, err};
        }
    }
}

bool qb_obs_mse_range(const qb_tensor_stats *st, const qb_qscheme *s, float *lo, float *hi) {
    error_model e;
    if (!error_model_init(&e, st, s)) return false;
    double amax = fmax(-st->min, st->max);
    double lower = s->symmetric ? -amax : fmin(st->min, 0), upper = s->symmetric ? amax : fmax(st->max, 0);
    /* The coarse grid spans [0, 1] on each side, min/max itself included. */
    candidate best = {0.5, 0.5, INFINITY};
    int steps = s->symmetric ? 1024 : 64; /* a 2-D grid costs steps^2 */
    double half = 0.5;
    search_around(&e, lower, upper, half, steps, &best);
    for (int round = 0; round < 2; round++) {
        half /= steps;
        steps = 8;
        search_around(&e, lower, upper, half, steps, &best);
    }
    free(e.mass);
    *lo = lower < 0 ? (float)(lower * best.a) : (float)st->min;
    *hi = upper > 0 ? (float)(upper * best.b) : (float)st->max;
    return true;
}
