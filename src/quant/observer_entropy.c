/* The entropy observer: TensorRT's KL-divergence calibration (Migacz, "8-bit
 * Inference with TensorRT", GTC 2017), as its open re-implementations in
 * MXNet and ONNX Runtime carry it out.  Over a 2048-bin histogram of |x|,
 * each candidate threshold of i bins gives
 *   P = bins [0, i) with everything beyond folded into bin i - 1,
 *   Q = bins [0, i) merged into `levels` groups and expanded back, each
 *       group's mass shared among the bins where P is non-empty,
 * and the threshold with the least KL(P || Q) wins.
 *
 * Symmetric schemes run it once on |x| with half the levels (128 for
 * 8 bits).  For asymmetric ones each side of 0 gets its own threshold,
 * calibrated with the share of the 256 levels that side's width would get
 * in the final range; as the shares depend on the thresholds, the split
 * starts from [min, max] and is refitted twice.  A side too narrow for 16
 * levels is kept whole: it costs the other side almost nothing, and KL over
 * a handful of levels says little. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/observer_hist.h"

#define ENTROPY_BINS 2048
#define MIN_SIDE_LEVELS 16
#define SMOOTHING 1e-4 /* a count, as in MXNet's and ONNX Runtime's versions */

/* The |x| histogram being calibrated and prefix sums over its bins [0, k)
 * of h, h log h and the non-empty count, so a candidate costs O(levels)
 * rather than O(bins): within a level every non-empty bin has the same q,
 * and sum p log(p / q) splits into sum p log p - log q * sum p. */
typedef struct {
    double h[ENTROPY_BINS];
    double mass[ENTROPY_BINS + 1], plogp[ENTROPY_BINS + 1];
    int nonzero[ENTROPY_BINS + 1];
} kl_tables;

static double xlogx(double x) { return x > 0 ? x * log(x) : 0; }

static void kl_tables_fill(kl_tables *t) {
    const double *h = t->h;
    t->mass[0] = t->plogp[0] = 0;
    t->nonzero[0] = 0;
    for (int k = 0; k < ENTROPY_BINS; k++) {
        t->mass[k + 1] = t->mass[k] + h[k];
        t->plogp[k + 1] = t->plogp[k] + xlogx(h[k]);
        t->nonzero[k + 1] = t->nonzero[k] + (h[k] > 0);
    }
}

/* KL(P || Q) for a threshold of i bins.  A bin counts as empty when P is
 * (so the bin holding the folded outliers takes a share of its level).
 * Where P has mass and Q none (outliers folded into a level with nothing
 * else), Q gets SMOOTHING counts: a large but finite divergence.  Unlike
 * MXNet we leave P's empty bins alone; smoothing them too would make KL
 * drift with their number, so stretching the threshold over empty bins
 * would look like an improvement.  KL = sum(p log(p / q)) / P + log(Q / P). */
static double kl_divergence(const kl_tables *t, int i, int levels) {
    double outliers = t->mass[ENTROPY_BINS] - t->mass[i], kept = t->mass[i], sum = 0;
    double last = t->h[i - 1], last_p = last + outliers;
    bool outlier_bin = last <= 0 && outliers > 0; /* non-empty in P only */
    int merged = i / levels, q_zeros = 0;
    for (int j = 0; j < levels; j++) {
        int start = j * merged, stop = j == levels - 1 ? i : start + merged;
        double mass = t->mass[stop] - t->mass[start];
        int nonzero = t->nonzero[stop] - t->nonzero[start];
        if (j < levels - 1) {
            if (mass > 0) sum += t->plogp[stop] - t->plogp[start] - mass * log(mass / nonzero);
            continue;
        }
        /* The last level holds bin i - 1, whose P carries the outliers. */
        nonzero += outlier_bin;
        double q = mass > 0 ? mass / nonzero : SMOOTHING;
        q_zeros += mass <= 0;
        sum += t->plogp[stop - 1] - t->plogp[start] - (mass - last) * log(q) + xlogx(last_p) - last_p * log(q);
    }
    double p_total = kept + outliers, q_total = kept + SMOOTHING * q_zeros;
    return sum / p_total + log(q_total / p_total);
}

/* The winning number of bins, in [levels, ENTROPY_BINS].  Ties go to the
 * smaller threshold (np.argmin, as in MXNet and ONNX Runtime): they come
 * from stretching it over empty bins, which only coarsens the step. */
static int kl_best_bins(const kl_tables *t, int levels) {
    double best_kl = INFINITY;
    int best = ENTROPY_BINS;
    for (int i = levels; i <= ENTROPY_BINS; i++) {
        double kl = kl_divergence(t, i, levels);
        if (kl < best_kl) {
            best_kl = kl;
            best = i;
        }
    }
    return best;
}

/* The threshold for |x| on the given sides (both for symmetric schemes). */
static double threshold(const qb_tensor_stats *st, int sides, double extent, int levels, kl_tables *t) {
    memset(t->h, 0, sizeof t->h);
    if (sides >= 0) qb_obs_hist_add_side(st, +1, extent, ENTROPY_BINS, t->h);
    if (sides <= 0) qb_obs_hist_add_side(st, -1, extent, ENTROPY_BINS, t->h);
    kl_tables_fill(t);
    return extent * kl_best_bins(t, levels) / ENTROPY_BINS;
}

static double side_threshold(const qb_tensor_stats *st, int side, double extent, int levels, kl_tables *t) {
    if (extent <= 0 || levels < MIN_SIDE_LEVELS) return extent;
    return threshold(st, side, extent, levels, t);
}

static void asymmetric_thresholds(const qb_tensor_stats *st, int budget, double *neg, double *pos, kl_tables *t) {
    double neg_extent = fmax(-st->min, 0), pos_extent = fmax(st->max, 0);
    *neg = neg_extent;
    *pos = pos_extent;
    int last_pos_levels = -1;
    for (int round = 0; round < 3; round++) {
        int pos_levels = (int)lround(budget * *pos / (*neg + *pos));
        if (pos_levels == last_pos_levels) break;
        last_pos_levels = pos_levels;
        *neg = side_threshold(st, -1, neg_extent, budget - pos_levels, t);
        *pos = side_threshold(st, +1, pos_extent, pos_levels, t);
    }
}

bool qb_obs_entropy_range(const qb_tensor_stats *st, const qb_qscheme *s, float *lo, float *hi) {
    kl_tables *t = malloc(sizeof *t);
    if (!t) return false;
    int32_t qmin, qmax;
    qb_qscheme_limits(s, &qmin, &qmax);
    int budget = qmax - qmin + 1;
    if (s->symmetric) {
        double amax = threshold(st, 0, fmax(-st->min, st->max), budget / 2, t);
        *lo = (float)-amax;
        *hi = (float)amax;
    } else {
        double neg, pos;
        asymmetric_thresholds(st, budget, &neg, &pos, t);
        if (st->min < 0) *lo = (float)-neg;
        if (st->max > 0) *hi = (float)pos;
    }
    free(t);
    return true;
}
