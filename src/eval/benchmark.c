/* qb_bench_synthetic: latency of forward passes over random token ids;
 * qb_bench_data: a dataset's texts end to end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/error.h"
#include "eval/dataset.h"
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
    struct rusage ru;
    if (kb < 0 && getrusage(RUSAGE_SELF, &ru) == 0) kb = ru.ru_maxrss;
    return (double)kb * 1024 / 1e6; /* KiB to MB of 10^6 bytes, as every size qbert prints */
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
    if (n < 1) { /* the shape the caller set stays */
        *l = (qb_latency){.seq = l->seq, .batch = l->batch};
        return;
    }
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

typedef struct {
    qb_session *s;
    qb_encoding *enc;
    const qb_encoding **encp;
    double *batch_ms;
    int n_batches;
} data_bench;

/* One pass over ds in batches; timings added to r when timed. */
static qb_status data_pass(const qb_model *m, const qb_bench_data_params *p, const qb_dataset *ds, int batch,
                           data_bench *b, qb_bench_data_result *r, bool timed, qb_error *err) {
    for (int i = 0; i < ds->n; i += batch) {
        int n = ds->n - i < batch ? ds->n - i : batch;
        double t0 = now();
        for (int k = 0; k < n; k++) {
            qb_status st = qb_example_tokenize(m, ds, &ds->ex[i + k], r->max_length, &b->enc[k], err);
            if (st) return st;
            b->encp[k] = &b->enc[k];
            if (timed) r->tokens += b->enc[k].n;
        }
        double t1 = now();
        qb_status st = qb_session_run_encodings(b->s, b->encp, n, err);
        if (st) return st;
        if (!timed) continue;
        double t2 = now();
        r->tokenize_s += t1 - t0;
        r->model_s += t2 - t1;
        b->batch_ms[b->n_batches++] = (t2 - t0) * 1e3;
        if (p->progress) p->progress(p->progress_ctx, "bench", i + n, ds->n);
    }
    return QB_OK;
}

qb_status qb_bench_data(const qb_model *m, const qb_bench_data_params *p, qb_bench_data_result *r, qb_error *err) {
    memset(r, 0, sizeof *r);
    if (!p->data) return qb_fail(err, QB_ERR_ARG, "bench: no dataset given");
    int batch = p->batch > 0 ? p->batch : 1;
    r->max_length = qb_model_max_length(m, p->max_length);
    qb_data_format fmt;
    qb_dataset ds = {0};
    qb_status st = qb_data_format_parse(p->task, &fmt, err);
    if (!st) st = qb_dataset_load(p->data, fmt, NULL, p->limit, &ds, err);
    if (st) return st;
    r->n = ds.n;
    qb_session_params sp = {.max_batch = batch, .max_seq = r->max_length, .n_threads = p->n_threads};
    data_bench b = {.enc = calloc((size_t)batch, sizeof *b.enc), .encp = calloc((size_t)batch, sizeof *b.encp),
                    .batch_ms = malloc(((size_t)ds.n / batch + 1) * sizeof(double))};
    if (!b.enc || !b.encp || !b.batch_ms) st = qb_fail(err, QB_ERR_NOMEM, "bench: out of memory");
    if (!st) st = qb_session_create(m, &sp, &b.s, err);
    /* the untimed pass: a shallow copy with a smaller n is the prefix */
    qb_dataset head = ds;
    head.n = ds.n < 16 * batch ? ds.n : 16 * batch;
    if (!st) st = data_pass(m, p, &head, batch, &b, r, false, err);
    if (!st) st = data_pass(m, p, &ds, batch, &b, r, true, err);
    if (!st) qb_latency_summarize(b.batch_ms, b.n_batches, &r->batch);
    r->batch.batch = batch;
    for (int k = 0; b.enc && k < batch; k++) qb_encoding_free(&b.enc[k]);
    free(b.enc);
    free(b.encp);
    free(b.batch_ms);
    qb_session_free(b.s);
    qb_dataset_free(&ds);
    return st;
}
