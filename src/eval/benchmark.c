/* qb_bench_synthetic: latency of forward passes over random token ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/error.h"
#include "model/model.h"

/* VmHWM is this address space's own peak.  ru_maxrss is not: Linux
 * carries it across exec, so a child that compare spawns (vfork + exec)
 * would report its parent's peak when that was higher. */
double qb_peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && kb < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    if (kb >= 0) return (double)kb / 1024.0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* KiB */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double q) {
    double pos = q / 100.0 * (n - 1);
    int lo = (int)pos;
    return lo >= n - 1 ? sorted[n - 1] : sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
}

void qb_latency_summarize(double *ms, int n, qb_latency *l) {
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    l->mean_ms = 0;
    for (int i = 0; i < n; i++) l->mean_ms += ms[i] / n;
    l->p25_ms = percentile(ms, n, 25);
    l->p50_ms = percentile(ms, n, 50);
    l->p75_ms = percentile(ms, n, 75);
    l->p90_ms = percentile(ms, n, 90);
    l->p99_ms = percentile(ms, n, 99);
    l->min_ms = ms[0];
    l->max_ms = ms[n - 1];
}

/* Ids in [1000, vocab) avoid special tokens, as real text mostly does. */
void qb_bench_random_ids(const qb_model *m, int32_t *ids, size_t n) {
    int vocab = m->cfg.vocab_size;
    uint64_t state = 42;
    int lo = vocab > 2000 ? 1000 : 0;
    for (size_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        ids[i] = lo + (int32_t)((state >> 33) % (uint64_t)(vocab - lo));
    }
}

qb_status qb_bench_synthetic(const qb_model *m, qb_latency *out, int n, int runs, int warmup, int n_threads,
                             qb_error *err) {
    if (n < 1 || runs < 1 || warmup < 0) return qb_fail(err, QB_ERR_ARG, "bench: need shapes and runs >= 1");
    int maxs = 1, maxb = 1;
    for (int c = 0; c < n; c++) {
        if (out[c].seq < 1 || out[c].batch < 1) return qb_fail(err, QB_ERR_ARG, "bench: seq and batch must be >= 1");
        maxs = out[c].seq > maxs ? out[c].seq : maxs;
        maxb = out[c].batch > maxb ? out[c].batch : maxb;
    }
    qb_session *s = NULL;
    qb_session_params sp = {.max_batch = maxb, .max_seq = maxs, .n_threads = n_threads};
    qb_status st = qb_session_create(m, &sp, &s, err);
    if (st) return st;
    int32_t *ids = malloc((size_t)maxb * maxs * sizeof *ids), *lens = malloc((size_t)maxb * sizeof *lens);
    double *ms = malloc((size_t)n * runs * sizeof *ms);
    if (!ids || !lens || !ms) st = qb_fail(err, QB_ERR_NOMEM, "bench: out of memory");
    else qb_bench_random_ids(m, ids, (size_t)maxb * maxs);
    for (int r = -warmup; !st && r < runs; r++) {
        for (int c = 0; !st && c < n; c++) {
            for (int b = 0; b < out[c].batch; b++) lens[b] = out[c].seq;
            qb_batch qb = {.batch = out[c].batch, .seq = out[c].seq, .input_ids = ids, .lengths = lens};
            double t0 = now();
            st = qb_session_run(s, &qb, err);
            if (r >= 0) ms[c * runs + r] = (now() - t0) * 1e3;
        }
    }
    for (int c = 0; !st && c < n; c++) qb_latency_summarize(ms + (size_t)c * runs, runs, &out[c]);
    free(ids);
    free(lens);
    free(ms);
    qb_session_free(s);
    return st;
}
