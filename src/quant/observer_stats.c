/* Running statistics of one tensor: exact min/max and a histogram over
 * [-range, range] that doubles its range by merging bin pairs, so memory is
 * fixed and one pass over the calibration data suffices.  Also the JSON
 * form `qbert calibrate` saves them in. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "quant/observer.h"

#define MAX_BINS (1 << 24)

qb_status qb_tensor_stats_init(qb_tensor_stats *st, int n_bins) {
    memset(st, 0, sizeof *st);
    if (n_bins <= 0) n_bins = QB_TENSOR_STATS_DEFAULT_BINS;
    if (n_bins < 8 || n_bins > MAX_BINS || n_bins % 4 != 0) return QB_ERR_ARG;
    st->bins = calloc((size_t)n_bins, sizeof *st->bins);
    if (!st->bins) return QB_ERR_NOMEM;
    st->n_bins = n_bins;
    return QB_OK;
}

void qb_tensor_stats_free(qb_tensor_stats *st) {
    free(st->bins);
    memset(st, 0, sizeof *st);
}

/* The old bins [0, n) cover the middle half of the doubled range: old bins
 * 2i - n/2 and 2i - n/2 + 1 become new bin i.  Working outward from the
 * centre reads each old bin before it is overwritten. */
static void double_range(qb_tensor_stats *st) {
    int n = st->n_bins, h = n / 2, q = n / 4;
    double *b = st->bins;
    for (int i = h - 1; i >= q; i--) b[i] = b[2 * i - h] + b[2 * i - h + 1];
    for (int i = h; i < h + q; i++) b[i] = b[2 * i - h] + b[2 * i - h + 1];
    for (int i = 0; i < q; i++) b[i] = b[n - 1 - i] = 0;
    st->range *= 2;
}

/* Non-finite values carry no range information a scale could represent;
 * they are skipped rather than let one Inf destroy the histogram.  v - v
 * is 0 exactly for finite v, and the branch-free form lets this pass
 * vectorize. */
static size_t finite_bounds(const float *x, size_t n, double *lo, double *hi) {
    float l = INFINITY, h = -INFINITY;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        bool finite = v - v == 0;
        l = finite && v < l ? v : l;
        h = finite && v > h ? v : h;
        m += finite;
    }
    *lo = l;
    *hi = h;
    return m;
}

/* Zero always lands in bin n/2 (its left edge is 0 whatever the range), so
 * an all-zero start needs no range yet and survives later doublings. */
static void add_to_bins(qb_tensor_stats *st, const float *x, size_t n) {
    int half = st->n_bins / 2;
    if (st->range == 0) {
        for (size_t i = 0; i < n; i++) st->bins[half] += isfinite(x[i]) ? 1 : 0;
        return;
    }
    double per_unit = half / st->range;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        /* floor by hand: the libm call would dominate this loop. */
        double u = x[i] * per_unit;
        int k = (int)u;
        k = half + k - (u < k);
        st->bins[k < 0 ? 0 : k >= st->n_bins ? st->n_bins - 1 : k] += 1;
    }
}

void qb_tensor_stats_add(qb_tensor_stats *st, const float *x, size_t n) {
    if (!st->bins || !x) return;
    double lo, hi;
    size_t m = finite_bounds(x, n, &lo, &hi);
    if (m == 0) return;
    st->min = st->count ? fmin(st->min, lo) : lo;
    st->max = st->count ? fmax(st->max, hi) : hi;
    double amax = fmax(-lo, hi);
    if (st->range == 0) st->range = amax;
    while (st->range < amax) double_range(st);
    add_to_bins(st, x, n);
    st->count += (int64_t)m;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Whole counts go out as integers: shorter, and read back the same. */
static json_t *count_json(double c) {
    return c == floor(c) && c < 9.0e15 ? json_integer((json_int_t)c) : qb_json_real(c);
}

json_t *qb_tensor_stats_to_json(const qb_tensor_stats *st) {
    /* Written with 17 significant digits (the module's default), which read
     * back to the same double, so a reloaded file gives bit-identical ranges. */
    json_t *o = json_object(), *bins = json_array();
    bool ok = o && bins;
    for (int k = 0; ok && k < st->n_bins; k++) ok = qb_json_push(bins, count_json(st->bins[k]));
    ok = ok && qb_json_set(o, "min", qb_json_real(st->min)) && qb_json_set(o, "max", qb_json_real(st->max)) &&
         qb_json_set(o, "range", qb_json_real(st->range)) && qb_json_set(o, "count", json_integer(st->count));
    ok = qb_json_set(o, "bins", bins) && ok;
    return qb_json_built(o, ok);
}

static qb_status read_finite(const json_t *obj, const char *key, double *out, const char *what, qb_error *err) {
    const json_t *t = json_object_get(obj, key);
    if (!t) return qb_fail(err, QB_ERR_FORMAT, "%s: statistics lack \"%s\"", what, key);
    *out = qb_json_number(t, NAN);
    if (!isfinite(*out)) return qb_fail(err, QB_ERR_FORMAT, "%s: \"%s\" must be a finite number", what, key);
    return QB_OK;
}

static qb_status read_bins(qb_tensor_stats *st, const json_t *obj, const char *what, qb_error *err) {
    const json_t *arr = json_object_get(obj, "bins");
    if (!json_is_array(arr))
        return qb_fail(err, QB_ERR_FORMAT, "%s: statistics lack a \"bins\" array", what);
    size_t n = json_array_size(arr);
    if (n < 8 || n > MAX_BINS || n % 4 != 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"bins\" has %zu entries; expected a multiple of 4 in [8, %d]",
                       what, n, MAX_BINS);
    st->bins = calloc(n, sizeof *st->bins);
    if (!st->bins) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory for %zu bins", what, n);
    st->n_bins = (int)n;
    for (size_t k = 0; k < n; k++) {
        double c = qb_json_number(json_array_get(arr, k), NAN);
        if (!(c >= 0 && c < INFINITY))
            return qb_fail(err, QB_ERR_FORMAT, "%s: bins[%zu] must be a non-negative count", what, k);
        st->bins[k] = c;
    }
    return QB_OK;
}

/* Stats that passed the field checks but cannot have come from data would
 * give meaningless ranges later; refuse them here, naming the mismatch. */
static qb_status check_consistent(const qb_tensor_stats *st, const char *what, qb_error *err) {
    double total = 0;
    for (int k = 0; k < st->n_bins; k++) total += st->bins[k];
    if (fabs(total - (double)st->count) > 1e-9 * fmax(1.0, (double)st->count))
        return qb_fail(err, QB_ERR_FORMAT, "%s: bins hold %.17g values but \"count\" is %lld", what, total,
                       (long long)st->count);
    if (st->count == 0) return QB_OK;
    if (st->min > st->max)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"min\" %g is above \"max\" %g", what, st->min, st->max);
    /* Values are floats, and the range only ever doubles up to cover them. */
    double amax = fmax(-st->min, st->max);
    if (amax > FLT_MAX)
        return qb_fail(err, QB_ERR_FORMAT, "%s: [min, max] = [%g, %g] is beyond float", what, st->min, st->max);
    if (st->range < amax || st->range > 2 * amax)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"range\" %g does not fit [min, max] = [%g, %g]", what, st->range,
                       st->min, st->max);
    return QB_OK;
}

static qb_status read_stats(qb_tensor_stats *st, const json_t *obj, const char *what, qb_error *err) {
    if (!json_is_object(obj))
        return qb_fail(err, QB_ERR_FORMAT, "%s: statistics must be a JSON object", what);
    qb_status s;
    if ((s = read_finite(obj, "min", &st->min, what, err)) ||
        (s = read_finite(obj, "max", &st->max, what, err)) ||
        (s = read_finite(obj, "range", &st->range, what, err)))
        return s;
    if (st->range < 0) return qb_fail(err, QB_ERR_FORMAT, "%s: \"range\" must not be negative", what);
    int64_t count;
    if (!qb_json_int(json_object_get(obj, "count"), &count) || count < 0)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"count\" must be a non-negative integer", what);
    st->count = count;
    if ((s = read_bins(st, obj, what, err))) return s;
    return check_consistent(st, what, err);
}

qb_status qb_tensor_stats_read_json(qb_tensor_stats *st, const json_t *obj, const char *what, qb_error *err) {
    qb_tensor_stats_free(st);
    qb_status s = read_stats(st, obj, what, err);
    if (s) qb_tensor_stats_free(st);
    return s;
}
