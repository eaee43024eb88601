/* Internal to the observers: a read-only view of a histogram with uniform
 * bins, and the pieces the range methods share.  Inside a bin the values
 * are taken as uniformly spread, which is what every estimate here assumes. */
#ifndef QB_QUANT_OBSERVER_HIST_H
#define QB_QUANT_OBSERVER_HIST_H

#include <stdbool.h>

#include "quant/observer.h"

typedef struct {
    double lo, width;      /* bin k covers [lo + k * width, lo + (k + 1) * width) */
    int n;
    const double *counts;  /* for a folded view: the first bin at or above 0 */
    bool folded;           /* |x|: bin k adds the mirrored bin below 0 */
} qb_obs_hist;

/* The stats' histogram as it is, or folded onto |x| (n_bins / 2 bins over
 * [0, range]; the grid is symmetric about 0, so folding is exact). */
qb_obs_hist qb_obs_hist_signed(const qb_tensor_stats *st);
qb_obs_hist qb_obs_hist_folded(const qb_tensor_stats *st);

static inline double qb_obs_hist_count(const qb_obs_hist *h, int k) {
    return h->folded ? h->counts[k] + h->counts[-1 - k] : h->counts[k];
}

/* The value with a fraction q of the mass below it. */
double qb_obs_hist_quantile(const qb_obs_hist *h, double q);

/* Adds the mass of one side of the stats' histogram (side > 0: x >= 0,
 * side < 0: x < 0, mirrored) as |x| into m bins over [0, extent]; mass the
 * coarse source bins put beyond extent lands in the last bin. */
void qb_obs_hist_add_side(const qb_tensor_stats *st, int side, double extent, int m, double *out);

/* The searches behind qb_observer_range; false (lo, hi untouched) only
 * when scratch memory could not be had. */
bool qb_obs_mse_range(const qb_tensor_stats *st, const qb_qscheme *s, float *lo, float *hi);
bool qb_obs_entropy_range(const qb_tensor_stats *st, const qb_qscheme *s, float *lo, float *hi);

#endif
