/* Activation-range observers for static quantization.  An observer sees
 * every calibration batch of one tensor (a linear layer's input) and keeps a
 * histogram; at the end it chooses the clipping range [lo, hi] the scale and
 * zero point are computed from:
 *
 *   minmax       the observed min and max
 *   percentile   the p-th / (100-p)-th percentiles (e.g. 99.99)
 *   mse          the range minimising the expected quantization error
 *                (rounding inside, clipping outside) over the histogram
 *   entropy      TensorRT's KL-divergence calibration: the threshold whose
 *                quantized distribution is closest to the observed one
 *
 * Statistics (min, max, histogram) serialize to JSON so `qbert calibrate`
 * can save them and `qbert quantize` reuse them with any observer. */
#ifndef QB_QUANT_OBSERVER_H
#define QB_QUANT_OBSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/json.h"
#include "rounding/affine.h"
#include "qbert.h"

typedef enum { QB_OBS_MINMAX, QB_OBS_PERCENTILE, QB_OBS_MSE, QB_OBS_ENTROPY } qb_observer_kind;

typedef struct {
    qb_observer_kind kind;
    double percentile;  /* for QB_OBS_PERCENTILE, in (50, 100] */
} qb_observer_method;

/* "minmax", "percentile:99.99", "mse", "entropy"; false if malformed. */
bool qb_observer_method_parse(const char *s, qb_observer_method *out);
void qb_observer_method_name(const qb_observer_method *m, char *buf, size_t cap);

/* Running statistics of one tensor.  The histogram covers [-range, range]
 * with a fixed bin count and doubles its range (merging bins) when a value
 * falls outside, so memory is constant and one pass suffices. */
typedef struct {
    double min, max;
    double range;       /* histogram covers [-range, range]; 0 before data */
    int n_bins;
    double *bins;       /* counts */
    int64_t count;
} qb_tensor_stats;

/* Bins finer than TensorRT's 2048 so that, after any number of doublings,
 * each side of the data still spans at least 2048 of them. */
#define QB_TENSOR_STATS_DEFAULT_BINS 8192

/* n_bins: a multiple of 4 (doubling merges pairs about the centre) in
 * [8, 1 << 24], or <= 0 for QB_TENSOR_STATS_DEFAULT_BINS. */
qb_status qb_tensor_stats_init(qb_tensor_stats *st, int n_bins);
void qb_tensor_stats_add(qb_tensor_stats *st, const float *x, size_t n);
void qb_tensor_stats_free(qb_tensor_stats *st);

/* The clipping range the method chooses for the given quantization scheme
 * (the scheme matters to mse/entropy: symmetric ranges are searched
 * symmetrically, asymmetric ones on each side). */
void qb_observer_range(const qb_tensor_stats *st, const qb_observer_method *m, const qb_qscheme *s, float *lo,
                       float *hi);

/* JSON: {"min":..,"max":..,"range":..,"count":..,"bins":[...]}; NULL when
 * out of memory. */
json_t *qb_tensor_stats_to_json(const qb_tensor_stats *st);
/* st must be zeroed or initialized; what it held is freed and replaced.
 * On error it is left empty. */
qb_status qb_tensor_stats_read_json(qb_tensor_stats *st, const json_t *obj, const char *what, qb_error *err);

#endif
