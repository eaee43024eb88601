/* Histogram views and the resampling shared by the range methods. */
#include "quant/observer_hist.h"

#include <math.h>

qb_obs_hist qb_obs_hist_signed(const qb_tensor_stats *st) {
    qb_obs_hist h = {-st->range, 2 * st->range / st->n_bins, st->n_bins, st->bins, false};
    return h;
}

qb_obs_hist qb_obs_hist_folded(const qb_tensor_stats *st) {
    int half = st->n_bins / 2;
    qb_obs_hist h = {0, st->range / half, half, st->bins + half, true};
    return h;
}

double qb_obs_hist_quantile(const qb_obs_hist *h, double q) {
    double total = 0;
    for (int k = 0; k < h->n; k++) total += qb_obs_hist_count(h, k);
    double target = q * total, below = 0;
    int last = -1;
    for (int k = 0; k < h->n; k++) {
        double c = qb_obs_hist_count(h, k);
        if (c <= 0) continue;
        if (below + c >= target) return h->lo + (k + (target - below) / c) * h->width;
        below += c;
        last = k;
    }
    /* Only rounding in the running sum gets here (q = 1): the top edge. */
    return h->lo + (last + 1) * h->width;
}

/* Spreads count c, uniform over [a, b), into bins of width w; whatever lies
 * past the last bin stays in it. */
static void spread_uniform(double c, double a, double b, double w, int m, double *out) {
    int t = (int)(a / w);
    if (t >= m) t = m - 1;
    double left = c;
    for (; t < m - 1 && (t + 1) * w < b; t++) {
        double part = c * ((t + 1) * w - fmax(a, t * w)) / (b - a);
        out[t] += part;
        left -= part;
    }
    out[t] += left;
}

void qb_obs_hist_add_side(const qb_tensor_stats *st, int side, double extent, int m, double *out) {
    int half = st->n_bins / 2;
    double src_w = st->range / half, dst_w = extent / m;
    for (int k = 0; k < half; k++) {
        double c = side > 0 ? st->bins[half + k] : st->bins[half - 1 - k];
        if (c <= 0) continue;
        double a = k * src_w;
        if (a >= extent) out[m - 1] += c;
        else spread_uniform(c, a, a + src_w, dst_w, m, out);
    }
}
