/* The analysis behind the report: which row is the FP32 baseline, which rows
 * are Pareto-optimal, and short rule-based findings built only from the
 * numbers in the rows. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "report/report_internal.h"

/* A loss larger than this (percentage points) is called out. */
#define QB_REPORT_LOSS_PT 0.5
/* Batch-1 latencies this close are a tie on a shared, noisy CPU. */
#define QB_REPORT_LATENCY_TIE 0.05

double qb_report_quality(const qb_report_row *row, bool ner) { return ner ? row->entity_f1 : row->accuracy; }

const char *qb_report_quality_name(bool ner) { return ner ? "entity F1" : "accuracy"; }

bool qb_report_row_plottable(const qb_report_row *row, bool ner) {
    double q = qb_report_quality(row, ner);
    return row->ok && isfinite(q) && q >= 0 && isfinite(row->p50_b1_ms) && row->p50_b1_ms > 0;
}

static bool dominates(const qb_report_row *a, const qb_report_row *b, bool ner) {
    double qa = qb_report_quality(a, ner), qb = qb_report_quality(b, ner);
    return a->p50_b1_ms <= b->p50_b1_ms && qa >= qb && (a->p50_b1_ms < b->p50_b1_ms || qa > qb);
}

/* A noisy row's latency is no evidence either way: it neither joins the
 * front nor pushes another row off it, as it makes no other speed claim. */
static bool speed_comparable(const qb_report_row *row, bool ner) {
    return qb_report_row_plottable(row, ner) && !row->speed_noisy;
}

static void mark_pareto(const qb_report *r, qb_report_analysis *a) {
    for (int i = 0; i < r->n_rows; i++) {
        a->pareto[i] = speed_comparable(&r->rows[i], a->ner);
        for (int j = 0; j < r->n_rows && a->pareto[i]; j++)
            if (j != i && speed_comparable(&r->rows[j], a->ner) && dominates(&r->rows[j], &r->rows[i], a->ner))
                a->pareto[i] = false;
    }
}

static void add(qb_report_analysis *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(qb_report_analysis *a, const char *fmt, ...) {
    if (a->n_findings == a->cap_findings) return; /* sized for the worst case up front */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->findings[a->n_findings++], QB_REPORT_FINDING_LEN, fmt, ap);
    va_end(ap);
}

/* Two standard deviations of the accuracy difference, in points.  The
 * difference between two models on the same examples comes only from the
 * examples whose prediction changed (McNemar), so with agreement known the
 * spread is sqrt(changed) examples; without it, two independent proportions.
 * None for entity F1 (NAN): its agreement counts words, its score entities,
 * and neither is the sentences n counts. */
static double noise_pt(const qb_report_row *row, double q, int n, bool ner) {
    if (ner) return NAN;
    if (n <= 0) return INFINITY;
    if (isfinite(row->agreement) && row->agreement >= 0 && row->agreement <= 1) {
        double changed = (1 - row->agreement) * n;
        return 200.0 * sqrt(changed > 1 ? changed : 1) / n;
    }
    return 200.0 * sqrt(2 * q * (1 - q) / n);
}

static int row_n(const qb_report *r, const qb_report_row *row) {
    return row->n_examples > 0 ? row->n_examples : r->meta.n_examples;
}

/* ", 1.23x speedup" for a finite ratio, else nothing: a ratio to FP32 is
 * not a number without an FP32 row, and "nanx" says nothing. */
static const char *ratio(char *buf, size_t cap, double v, const char *what) {
    if (isfinite(v)) snprintf(buf, cap, ", %.2fx %s", v, what);
    else buf[0] = 0;
    return buf;
}

static void compare_with_baseline(const qb_report *r, qb_report_analysis *a) {
    const qb_report_row *base = &r->rows[a->baseline];
    double qb = qb_report_quality(base, a->ner);
    const char *what = qb_report_quality_name(a->ner);
    add(a, "Baseline %s: %s %.2f%%, p50 %.2f ms at batch %d, %.1f MB.", base->method, what, 100 * qb,
        base->p50_b1_ms, qb_report_batch_lat(&r->meta), base->size_bytes / 1e6);
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        if (i == a->baseline || !qb_report_row_plottable(row, a->ner)) continue;
        double q = qb_report_quality(row, a->ner), d = 100 * (q - qb);
        double noise = noise_pt(row, q, row_n(r, row), a->ner);
        if (isnan(noise) && d < -QB_REPORT_LOSS_PT)
            add(a, "%s loses %.2f pt %s vs %s: more than %.1f pt (no noise estimate for entity F1).", row->method, -d,
                what, base->method, QB_REPORT_LOSS_PT);
        else if (isnan(noise))
            add(a, "%s: %+.2f pt %s vs %s (no noise estimate for entity F1).", row->method, d, what, base->method);
        else if (fabs(d) <= noise)
            add(a, "%s: %+.2f pt %s vs %s, within noise (2 sigma = %.2f pt on n = %d).", row->method, d, what,
                base->method, noise, row_n(r, row));
        else if (d < -QB_REPORT_LOSS_PT)
            add(a, "%s loses %.2f pt %s vs %s: more than %.1f pt and beyond noise (2 sigma = %.2f pt).",
                row->method, -d, what, base->method, QB_REPORT_LOSS_PT, noise);
        else
            add(a, "%s: %+.2f pt %s vs %s (beyond noise, 2 sigma = %.2f pt).", row->method, d, what,
                base->method, noise);
    }
}

typedef enum { BY_QUALITY, BY_LATENCY, BY_THROUGHPUT, BY_SIZE, BY_RSS } rank_key;

/* Higher is better for every key after this sign flip.  A row whose
 * benchmark rounds disagreed has no speed to rank. */
static double score(const qb_report_row *row, rank_key k, bool ner) {
    switch (k) {
    case BY_QUALITY: return qb_report_quality(row, ner);
    case BY_LATENCY: return row->speed_noisy ? NAN : -row->p50_b1_ms;
    case BY_THROUGHPUT: return row->speed_noisy ? NAN : row->throughput_b8;
    case BY_SIZE: return row->size_bytes > 0 ? -(double)row->size_bytes : NAN;
    case BY_RSS: return row->peak_rss_mb > 0 ? -row->peak_rss_mb : NAN;
    }
    return NAN;
}

/* Best plottable row by key among those within max_loss points of the
 * baseline (max_loss < 0: no accuracy constraint), with compression and
 * speedup at least the given minimums; -1 if none. */
static int best(const qb_report *r, const qb_report_analysis *a, rank_key k, double max_loss, double min_comp,
                double min_speedup) {
    int b = -1;
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        double s = score(row, k, a->ner);
        if (!qb_report_row_plottable(row, a->ner) || !isfinite(s)) continue;
        if (max_loss >= 0) {
            if (a->baseline < 0) continue;
            double d = 100 * (qb_report_quality(row, a->ner) - qb_report_quality(&r->rows[a->baseline], a->ner));
            if (d < -max_loss) continue;
        }
        if (min_comp > 0 && !(row->compression >= min_comp)) continue;
        if (min_speedup > 0 && (row->speed_noisy || !(row->speedup >= min_speedup))) continue;
        if (b < 0 || s > score(&r->rows[b], k, a->ner)) b = i;
    }
    return b;
}

static bool noisy_row(const qb_report *r, const qb_report_analysis *a, int i) {
    (void)a;
    return r->rows[i].ok && r->rows[i].speed_noisy;
}

static void leaders(const qb_report *r, qb_report_analysis *a) {
    const char *what = qb_report_quality_name(a->ner);
    int bl = qb_report_batch_lat(&r->meta), bt = qb_report_batch_tput(&r->meta);
    char x[48];
    int i = best(r, a, BY_QUALITY, -1, 0, 0);
    if (i >= 0) {
        const qb_report_row *row = &r->rows[i];
        double q = qb_report_quality(row, a->ner);
        const char *note = ".";
        if (a->baseline >= 0 && i != a->baseline) {
            double d = 100 * (q - qb_report_quality(&r->rows[a->baseline], a->ner));
            if (d == 0) note = ", tied with the baseline.";
            else if (fabs(d) <= noise_pt(row, q, row_n(r, row), a->ner)) note = "; its lead over the baseline is within noise.";
        }
        add(a, "Most accurate: %s (%s %.2f%%)%s", row->method, what, 100 * q, note);
    }
    bool noisy = false;
    for (int j = 0; j < r->n_rows; j++) noisy |= noisy_row(r, a, j);
    const char *unranked = noisy ? " among the rows not marked noisy" : "";
    i = best(r, a, BY_LATENCY, -1, 0, 0);
    if (i >= 0) {
        const qb_report_row *row = &r->rows[i];
        add(a, "Fastest at batch %d%s: %s (p50 %.2f ms%s).", bl, unranked, row->method, row->p50_b1_ms,
            ratio(x, sizeof x, row->speedup, "speedup"));
        for (int j = 0; j < r->n_rows; j++)
            if (j != i && qb_report_row_plottable(&r->rows[j], a->ner) && !r->rows[j].speed_noisy &&
                r->rows[j].p50_b1_ms <= row->p50_b1_ms * (1 + QB_REPORT_LATENCY_TIE))
                add(a, "%s (p50 %.2f ms) is within %.0f%% of %s: treat their latency as a tie.", r->rows[j].method,
                    r->rows[j].p50_b1_ms, 100 * QB_REPORT_LATENCY_TIE, row->method);
    }
    int t = best(r, a, BY_THROUGHPUT, -1, 0, 0);
    if (t >= 0)
        add(a, "Highest throughput at batch %d%s: %s (%.1f sequences/s).", bt, unranked, r->rows[t].method,
            r->rows[t].throughput_b8);
    i = best(r, a, BY_SIZE, -1, 0, 0);
    if (i >= 0)
        add(a, "Smallest: %s (%.1f MB%s).", r->rows[i].method, r->rows[i].size_bytes / 1e6,
            ratio(x, sizeof x, r->rows[i].compression, "compression"));
    i = best(r, a, BY_RSS, -1, 0, 0);
    if (i >= 0) add(a, "Lowest peak memory: %s (%.1f MB RSS).", r->rows[i].method, r->rows[i].peak_rss_mb);
}

static void constrained(const qb_report *r, qb_report_analysis *a) {
    static const double losses[] = {0.5, 1.0};
    char x[48], smallest[96];
    for (size_t k = 0; k < sizeof losses / sizeof losses[0] && a->baseline >= 0; k++) {
        int i = best(r, a, BY_LATENCY, losses[k], 0, 0), j = best(r, a, BY_SIZE, losses[k], 0, 0);
        double c = j >= 0 ? r->rows[j].compression : NAN;
        if (isfinite(c)) snprintf(smallest, sizeof smallest, "%s (%.2fx compression)", r->rows[j].method, c);
        else snprintf(smallest, sizeof smallest, "%s", j >= 0 ? r->rows[j].method : "none");
        if (i >= 0)
            add(a, "Fastest within %.1f pt of %s: %s%s; smallest within %.1f pt: %s.", losses[k],
                r->rows[a->baseline].method, r->rows[i].method, ratio(x, sizeof x, r->rows[i].speedup, "speedup"),
                losses[k], smallest);
    }
    /* 2x is half precision, 3.5x int8, 5x and 7x the low-bit formats */
    static const double comps[] = {2.0, 3.5, 5.0, 7.0}, speeds[] = {1.5, 2.0};
    const char *what = qb_report_quality_name(a->ner);
    /* a row that wins at a higher compression too is named there only */
    for (size_t k = 0; k < sizeof comps / sizeof *comps; k++) {
        int i = best(r, a, BY_QUALITY, -1, comps[k], 0);
        bool again = k + 1 < sizeof comps / sizeof *comps && best(r, a, BY_QUALITY, -1, comps[k + 1], 0) == i;
        if (i >= 0 && !again)
            add(a, "Best %s at %.1fx compression or more: %s (%.2f%%).", what, comps[k], r->rows[i].method,
                100 * qb_report_quality(&r->rows[i], a->ner));
    }
    for (size_t k = 0; k < 2; k++) {
        int i = best(r, a, BY_QUALITY, -1, 0, speeds[k]);
        if (i >= 0)
            add(a, "Best %s at %.1fx speedup or more: %s (%.2f%%).", what, speeds[k], r->rows[i].method,
                100 * qb_report_quality(&r->rows[i], a->ner));
    }
}

typedef bool (*row_pick)(const qb_report *r, const qb_report_analysis *a, int i);

static bool on_front(const qb_report *r, const qb_report_analysis *a, int i) {
    return qb_report_row_plottable(&r->rows[i], a->ner) && a->pareto[i];
}

static bool dominated_row(const qb_report *r, const qb_report_analysis *a, int i) {
    return speed_comparable(&r->rows[i], a->ner) && !a->pareto[i];
}

/* The names of the rows pick accepts, comma-separated; returns how many. */
static int list_names(const qb_report *r, const qb_report_analysis *a, row_pick pick, char *buf, size_t cap) {
    int n = 0;
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < r->n_rows; i++) {
        if (!pick(r, a, i)) continue;
        int w = snprintf(buf + used, cap - used, "%s%s", n ? ", " : "", r->rows[i].method);
        if (w > 0 && (size_t)w < cap - used) used += (size_t)w;
        n++;
    }
    return n;
}

static void pareto_findings(const qb_report *r, qb_report_analysis *a) {
    char names[QB_REPORT_FINDING_LEN / 2];
    if (list_names(r, a, on_front, names, sizeof names))
        add(a, "Pareto-optimal for batch-%d latency vs %s (nothing is both faster and more accurate): %s.",
            qb_report_batch_lat(&r->meta), qb_report_quality_name(a->ner), names);
    if (list_names(r, a, dominated_row, names, sizeof names))
        add(a, "Dominated (another method is at least as fast and as accurate): %s.", names);
}

static void noisy_rows(const qb_report *r, qb_report_analysis *a) {
    char names[QB_REPORT_FINDING_LEN / 2];
    if (list_names(r, a, noisy_row, names, sizeof names))
        add(a, "Speed not compared for %s: the interquartile range of their benchmark rounds' p50 latencies (or of "
            "their speedups) exceeded %.0f%% of the median (a busy machine); their latency, throughput and speedup "
            "are left out of these findings. Rerun on a quiet machine.", names, 100 * QB_REPORT_NOISY_SPREAD);
}

static void failures(const qb_report *r, qb_report_analysis *a) {
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!row->ok)
            add(a, "%s failed and is left out of the charts: %.300s", row->method,
                row->error[0] ? row->error : "(no message)");
        else if (!qb_report_row_plottable(row, a->ner))
            add(a, "%s has no finite %s or latency and is left out of the charts.", row->method,
                qb_report_quality_name(a->ner));
    }
}

static int find_baseline(const qb_report *r, bool ner) {
    for (int i = 0; i < r->n_rows; i++)
        if (strcasecmp(r->rows[i].method, "fp32") == 0 && qb_report_row_plottable(&r->rows[i], ner)) return i;
    return -1;
}

qb_status qb_report_analyze(const qb_report *r, qb_report_analysis *a, qb_error *err) {
    memset(a, 0, sizeof *a);
    if (r->n_rows < 0 || (r->n_rows > 0 && !r->rows))
        return qb_fail(err, QB_ERR_ARG, "report: %d rows but no row array", r->n_rows);
    for (int i = 0; i < r->n_rows; i++)
        if (r->rows[i].ok && r->rows[i].entity_f1 >= 0) a->ner = true;
    a->baseline = find_baseline(r, a->ner);
    a->cap_findings = 3 * r->n_rows + 16; /* per-row lines, ties, and the fixed ones */
    a->pareto = calloc((size_t)r->n_rows + 1, sizeof *a->pareto);
    a->findings = calloc((size_t)a->cap_findings, sizeof *a->findings);
    if (!a->pareto || !a->findings) {
        qb_report_analysis_free(a);
        return qb_fail(err, QB_ERR_NOMEM, "report: out of memory for %d rows", r->n_rows);
    }
    mark_pareto(r, a);
    if (a->baseline >= 0) compare_with_baseline(r, a);
    else add(a, "No successful fp32 row: accuracy changes, speedups and compression vs FP32 cannot be computed "
                "(they need fp32 among the methods).");
    leaders(r, a);
    constrained(r, a);
    pareto_findings(r, a);
    noisy_rows(r, a);
    failures(r, a);
    return QB_OK;
}

void qb_report_analysis_free(qb_report_analysis *a) {
    free(a->pareto);
    free(a->findings);
    memset(a, 0, sizeof *a);
}
