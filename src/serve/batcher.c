/* The queue of tokenized inputs and the one loop that runs them through the
 * model's only session, in batches cut by a token budget.  Connection
 * threads queue; the loop takes what is there, runs it, copies each output
 * into its request and resumes the connections whose last input ran.  It
 * waits up to max_wait after the oldest input for the batch to fill only
 * while other requests are in flight outside the queue (being read,
 * tokenized or answered: their clients are about to send more), so a lone
 * client never waits. */
#include <stdatomic.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "serve/serve.h"

double srv_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static struct timespec deadline_ts(double t) {
    struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
    return ts;
}

void srv_batcher_submit(srv_batcher *b, srv_job *job) {
    double t = srv_now();
    pthread_mutex_lock(&b->mu);
    job->pending = job->unqueued = job->n;
    b->queued_jobs++;
    for (int i = 0; i < job->n; i++) {
        /* Cannot overflow: every request holds a slot of
         * max_concurrent_requests and at most max_client_batch_size inputs. */
        b->ring[(b->head + b->count++) % b->cap] = (srv_item){job, i, t};
        b->queued_tokens += job->enc[i].n;
    }
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

bool srv_batcher_done(srv_batcher *b, srv_job *job) {
    pthread_mutex_lock(&b->mu);
    bool done = job->done;
    pthread_mutex_unlock(&b->mu);
    return done;
}

long srv_batcher_depth(srv_batcher *b) {
    pthread_mutex_lock(&b->mu);
    long n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* Whether the queued batch may still grow: room in it, and requests in
 * flight that are not in the queue. */
static bool may_grow(const srv_batcher *b) {
    return !b->stop && b->count < b->max_rows && b->queued_tokens < b->max_tokens &&
           atomic_load(b->admitted) > b->queued_jobs;
}

/* Under the lock: waits for inputs (and for max_wait after the oldest while
 * the batch may grow), then takes a batch.  0 when stopped and empty. */
static int take_batch(srv_batcher *b, long *tokens) {
    while (!b->stop && !b->count) pthread_cond_wait(&b->cv, &b->mu);
    if (!b->count) return 0;
    double until = b->ring[b->head].queued_at + b->max_wait;
    struct timespec ts = deadline_ts(until);
    while (may_grow(b) && srv_now() < until) pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    int n = 0;
    *tokens = 0;
    while (b->count && n < b->max_rows) {
        srv_item *it = &b->ring[b->head];
        int len = it->job->enc[it->i].n;
        if (n && *tokens + len > b->max_tokens) break;
        b->batch[n++] = *it;
        if (--it->job->unqueued == 0) b->queued_jobs--;
        *tokens += len;
        b->head = (b->head + 1) % b->cap;
        b->count--;
        b->queued_tokens -= len;
    }
    return n;
}

/* Copies outputs into their jobs; returns how many connections to resume. */
static int finish_batch(srv_batcher *b, int n, const qb_error *err) {
    int n_resume = 0;
    for (int k = 0; k < n; k++) {
        srv_job *j = b->batch[k].job;
        const float *v = err ? NULL : b->embed ? qb_session_embedding(b->s, k) : qb_session_logits(b->s, k);
        if (v) memcpy(j->out + (size_t)b->batch[k].i * j->width, v, (size_t)j->width * sizeof(float));
        else if (!j->failed) {
            j->failed = true;
            snprintf(j->error, sizeof j->error, "%s", err ? err->msg : "the model gave no output");
        }
    }
    pthread_mutex_lock(&b->mu);
    for (int k = 0; k < n; k++) {
        srv_job *j = b->batch[k].job;
        if (--j->pending == 0) {
            j->done = true;
            b->resume[n_resume++] = j->conn;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return n_resume;
}

static void *loop(void *arg) {
    srv_batcher *b = arg;
    for (;;) {
        long tokens;
        pthread_mutex_lock(&b->mu);
        int n = take_batch(b, &tokens);
        bool stopping = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (!n) break;
        for (int k = 0; k < n; k++) b->encp[k] = &b->batch[k].job->enc[b->batch[k].i];
        qb_error err = {0};
        double t0 = srv_now();
        /* Stopped: the drain has waited for these already; they are
         * answered with an error rather than hold up the exit. */
        qb_status st = stopping ? qb_fail(&err, QB_ERR_ARG, "the server is shutting down")
                                : qb_session_run_encodings(b->s, b->encp, n, &err);
        if (!stopping) srv_metrics_batch(b->metrics, n, (int)tokens, srv_now() - t0);
        /* After resume the job may be answered and freed at once: the
         * connections are resumed last, with no job touched after. */
        int n_resume = finish_batch(b, n, st ? &err : NULL);
        for (int k = 0; k < n_resume; k++) MHD_resume_connection(b->resume[k]);
    }
    return NULL;
}

static qb_status alloc_queue(srv_batcher *b, const qb_serve_params *p, qb_error *err) {
    b->cap = p->max_concurrent_requests * p->max_client_batch_size;
    b->ring = calloc((size_t)b->cap, sizeof *b->ring);
    b->batch = calloc((size_t)b->max_rows, sizeof *b->batch);
    b->encp = calloc((size_t)b->max_rows, sizeof *b->encp);
    b->resume = calloc((size_t)b->max_rows, sizeof *b->resume);
    if (!b->ring || !b->batch || !b->encp || !b->resume)
        return qb_fail(err, QB_ERR_NOMEM, "serve: out of memory for a queue of %d inputs", b->cap);
    return QB_OK;
}

/* A session of max_rows x max_len holds the token budget: rows are cut so
 * that a batch of the longest inputs still fits. */
qb_status srv_batcher_start(srv_batcher *b, const qb_model *m, const qb_serve_params *p, int max_len,
                            srv_metrics *metrics, atomic_int *admitted, qb_error *err) {
    qb_model_info info;
    qb_model_get_info(m, &info);
    b->embed = info.task == QB_TASK_NONE;
    b->max_tokens = p->max_batch_tokens;
    b->max_rows = p->max_batch_tokens / max_len;
    if (b->max_rows < 1)
        return qb_fail(err, QB_ERR_ARG, "serve: --max-batch-tokens %d is less than --max-input-length %d",
                       p->max_batch_tokens, max_len);
    b->max_wait = p->max_wait_ms * 1e-3;
    b->metrics = metrics;
    b->admitted = admitted;
    qb_session_params sp = {.max_batch = b->max_rows, .max_seq = max_len, .n_threads = p->n_threads};
    qb_status st = qb_session_create(m, &sp, &b->s, err);
    if (!st && b->embed) {
        qb_embed_params e = qb_model_embed_params(m);
        e.normalize = 0; /* per request: TEI's "normalize" */
        st = qb_session_set_pooling(b->s, &e, err);
        b->width = qb_embed_dim(m, e.pooling);
    } else b->width = info.num_labels;
    if (!st) st = alloc_queue(b, p, err);
    if (st) return st;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca; /* deadlines are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, loop, b)) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        return qb_fail(err, QB_ERR_NOMEM, "serve: cannot start the inference thread");
    }
    b->running = true;
    return QB_OK;
}

/* Fails what is still queued, ends the loop and frees everything. */
void srv_batcher_stop(srv_batcher *b) {
    if (b->running) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
    }
    qb_session_free(b->s);
    free(b->ring);
    free(b->batch);
    free(b->encp);
    free(b->resume);
    memset(b, 0, sizeof *b);
}
