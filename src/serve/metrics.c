/* Prometheus metrics: request counters by endpoint and status, input and
 * token counts, and histograms of latency, batch rows, batch tokens and
 * inference time.  One mutex: updates are a few per request, far from the
 * model's hot path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

static const char *const route_names[SRV_ROUTES + 1] = {
    "embed", "predict", "rerank", "tokenize", "decode", "embed_all", "similarity", "v1_embeddings",
    "info",  "health",  "metrics", "unknown"};
static const int statuses[SRV_STATUSES] = {200, 400, 401, 404, 405, 413, 415, 422, 429, 500, 503};

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double rows_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
static const double tokens_bounds[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
#define COUNT(a) ((int)(sizeof(a) / sizeof(a)[0]))

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->latency = (srv_hist){.bounds = latency_bounds, .n = COUNT(latency_bounds)};
    m->infer_seconds = (srv_hist){.bounds = latency_bounds, .n = COUNT(latency_bounds)};
    m->batch_rows = (srv_hist){.bounds = rows_bounds, .n = COUNT(rows_bounds)};
    m->batch_tokens = (srv_hist){.bounds = tokens_bounds, .n = COUNT(tokens_bounds)};
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void hist_add(srv_hist *h, double v) {
    int b = 0;
    while (b < h->n && v > h->bounds[b]) b++;
    if (b < h->n) h->counts[b]++;
    h->total++;
    h->sum += v;
}

void srv_metrics_request(srv_metrics *m, int route, int status, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->requests[route]++;
    for (int i = 0; i < SRV_STATUSES; i++)
        if (statuses[i] == status) m->statuses[i]++;
    if (route < SRV_INFO) hist_add(&m->latency, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_batch(srv_metrics *m, int lane, int rows, int tokens, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->lane_batches[lane]++;
    m->inputs += rows;
    m->tokens += tokens;
    hist_add(&m->batch_rows, rows);
    hist_add(&m->batch_tokens, tokens);
    hist_add(&m->infer_seconds, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void hist_write(FILE *f, const char *name, const char *help, const srv_hist *h) {
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long long cum = 0;
    for (int b = 0; b < h->n; b++) {
        cum += h->counts[b];
        fprintf(f, "%s_bucket{le=\"%g\"} %lld\n", name, h->bounds[b], cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %lld\n%s_sum %.6f\n%s_count %lld\n", name, h->total, name, h->sum, name,
            h->total);
}

static void counters_write(FILE *f, const srv_metrics *m, int lanes) {
    fputs("# HELP qbert_requests_total Requests by endpoint.\n# TYPE qbert_requests_total counter\n", f);
    for (int r = 0; r <= SRV_ROUTES; r++)
        fprintf(f, "qbert_requests_total{endpoint=\"%s\"} %lld\n", route_names[r], m->requests[r]);
    fputs("# HELP qbert_responses_total Responses by status code.\n# TYPE qbert_responses_total counter\n", f);
    for (int i = 0; i < SRV_STATUSES; i++)
        fprintf(f, "qbert_responses_total{code=\"%d\"} %lld\n", statuses[i], m->statuses[i]);
    long long errors = 0;
    for (int i = 1; i < SRV_STATUSES; i++) errors += m->statuses[i];
    fprintf(f, "# HELP qbert_errors_total Responses with a status other than 200.\n# TYPE qbert_errors_total counter\n"
               "qbert_errors_total %lld\n", errors);
    fprintf(f, "# HELP qbert_inputs_total Inputs run by the model.\n# TYPE qbert_inputs_total counter\n"
               "qbert_inputs_total %lld\n", m->inputs);
    fprintf(f, "# HELP qbert_tokens_total Tokens run by the model.\n# TYPE qbert_tokens_total counter\n"
               "qbert_tokens_total %lld\n", m->tokens);
    fputs("# HELP qbert_batches_total Batches run, by lane (--parallel-batches).\n"
          "# TYPE qbert_batches_total counter\n", f);
    for (int l = 0; l < lanes; l++) fprintf(f, "qbert_batches_total{lane=\"%d\"} %lld\n", l, m->lane_batches[l]);
}

char *srv_metrics_text(srv_metrics *m, long queue_depth, long in_flight, int lanes, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    pthread_mutex_lock(&m->mu);
    counters_write(f, m, lanes);
    hist_write(f, "qbert_request_duration_seconds", "Time from request headers to reply, model endpoints.",
               &m->latency);
    hist_write(f, "qbert_batch_size", "Inputs per batch the model ran.", &m->batch_rows);
    hist_write(f, "qbert_batch_tokens", "Tokens per batch the model ran.", &m->batch_tokens);
    hist_write(f, "qbert_inference_duration_seconds", "Time the model took per batch.", &m->infer_seconds);
    pthread_mutex_unlock(&m->mu);
    fprintf(f, "# HELP qbert_queue_depth Inputs waiting for the model.\n# TYPE qbert_queue_depth gauge\n"
               "qbert_queue_depth %ld\n", queue_depth);
    fprintf(f, "# HELP qbert_requests_in_flight Model requests admitted and not yet answered.\n"
               "# TYPE qbert_requests_in_flight gauge\nqbert_requests_in_flight %ld\n", in_flight);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}
