/* Observer methods by name, and the choice of clipping range: min/max and
 * percentiles here, the searches (mse, entropy) in their own files. */
#include "quant/observer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/observer_hist.h"

static const char percentile_prefix[] = "percentile:";

static const struct {
    const char *name;
    qb_observer_kind kind;
} method_names[] = {{"minmax", QB_OBS_MINMAX}, {"mse", QB_OBS_MSE}, {"entropy", QB_OBS_ENTROPY}};

/* Only a plain decimal is accepted: strtod would also take " 99", "0x63"
 * and "inf", none of which anyone means on a command line. */
static bool parse_percentile(const char *s, double *out) {
    if (!isdigit((unsigned char)s[0])) return false;
    for (const char *c = s; *c; c++)
        if (!isdigit((unsigned char)*c) && *c != '.') return false;
    char *end;
    double p = strtod(s, &end);
    if (*end || !(p > 50 && p <= 100)) return false;
    *out = p;
    return true;
}

bool qb_observer_method_parse(const char *s, qb_observer_method *out) {
    if (!s) return false;
    for (size_t i = 0; i < sizeof method_names / sizeof *method_names; i++) {
        if (strcmp(s, method_names[i].name) == 0) {
            *out = (qb_observer_method){method_names[i].kind, 0};
            return true;
        }
    }
    size_t plen = sizeof percentile_prefix - 1;
    double p;
    if (strncmp(s, percentile_prefix, plen) != 0 || !parse_percentile(s + plen, &p)) return false;
    *out = (qb_observer_method){QB_OBS_PERCENTILE, p};
    return true;
}

void qb_observer_method_name(const qb_observer_method *m, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (m->kind == QB_OBS_PERCENTILE) {
        /* The fewest decimals that read back as the same double, so names
         * round-trip: "percentile:99.99", not "percentile:99.989999999999995". */
        char number[32];
        for (int decimals = 0; decimals <= 17; decimals++) {
            snprintf(number, sizeof number, "%.*f", decimals, m->percentile);
            if (strtod(number, NULL) == m->percentile) break;
        }
        snprintf(buf, cap, "%s%s", percentile_prefix, number);
        return;
    }
    for (size_t i = 0; i < sizeof method_names / sizeof *method_names; i++)
        if (method_names[i].kind == m->kind) snprintf(buf, cap, "%s", method_names[i].name);
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Symmetric schemes clip |x| at one threshold, so their percentile is of
 * |x|; asymmetric ones clip each tail at its own percentile. */
static void percentile_range(const qb_tensor_stats *st, double p, const qb_qscheme *s, float *lo, float *hi) {
    if (s->symmetric) {
        qb_obs_hist h = qb_obs_hist_folded(st);
        double a = clamp(qb_obs_hist_quantile(&h, p / 100), 0, fmax(-st->min, st->max));
        *lo = (float)-a;
        *hi = (float)a;
        return;
    }
    qb_obs_hist h = qb_obs_hist_signed(st);
    *lo = (float)clamp(qb_obs_hist_quantile(&h, 1 - p / 100), st->min, st->max);
    *hi = (float)clamp(qb_obs_hist_quantile(&h, p / 100), st->min, st->max);
}

void qb_observer_range(const qb_tensor_stats *st, const qb_observer_method *m, const qb_qscheme *s, float *lo,
                       float *hi) {
    *lo = (float)st->min;
    *hi = (float)st->max;
    /* A constant tensor (or none) has nothing to clip. */
    if (st->count == 0 || !st->bins || !(st->min < st->max) || !(st->range > 0)) return;
    switch (m->kind) {
    case QB_OBS_MINMAX: break;
    case QB_OBS_PERCENTILE: percentile_range(st, clamp(m->percentile, 50, 100), s, lo, hi); break;
    case QB_OBS_MSE: qb_obs_mse_range(st, s, lo, hi); break;
    case QB_OBS_ENTROPY: qb_obs_entropy_range(st, s, lo, hi); break;
    }
}
