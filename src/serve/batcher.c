/* The queue of tokenized inputs and the lanes that run them, in batches
 * cut by a token budget (serve.h).  Connection threads queue; a lane takes
 * what is there, takes its threads, runs the batch on its own session,
 * copies each output into its request and resumes the connections whose
 * last input ran.  It waits up to max_wait after the oldest input for the
 * batch to fill only while other requests are in flight outside the queue
 * (being read, tokenized or answered: their clients are about to send
 * more), so a lone client never waits. */
#define _GNU_SOURCE
#include <sched.h>
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

/* Under the lock: wakes the first lane that waits for `what`, or every
 * such lane for threads.  Inputs go to the lowest idle lane, so a lone
 * client is always served by lane 0, whose session stays warm, and the
 * other lanes sleep unless inputs are left over. */
static void wake_lane(srv_batcher *b, int what) {
    for (int i = 0; i < b->n_lanes; i++) {
        if (b->lanes[i].wait != what) continue;
        pthread_cond_signal(&b->lanes[i].cv);
        if (what == SRV_WAIT_INPUT) return;
    }
}

bool srv_batcher_submit(srv_batcher *b, srv_job *job) {
    double t = srv_now();
    pthread_mutex_lock(&b->mu);
    if (b->stop) { /* the lanes are gone: nothing would run it */
        job->done = job->failed = true;
        snprintf(job->error, sizeof job->error, "%s", SRV_SHUTTING_DOWN);
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    job->pending = job->unqueued = job->n;
    b->queued_jobs++;
    for (int i = 0; i < job->n; i++) {
        /* Cannot overflow: every request holds a slot of
         * max_concurrent_requests and at most max_client_batch_size inputs. */
        b->ring[(b->head + b->count++) % b->cap] = (srv_item){job, i, t};
        b->queued_tokens += job->enc[i].n;
    }
    wake_lane(b, SRV_WAIT_INPUT);
    pthread_mutex_unlock(&b->mu);
    return true;
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
 * the batch may grow), then takes a batch; inputs left over wake the next
 * idle lane.  0 when stopped and empty.  Another lane may take the inputs
 * meanwhile: then it waits again. */
static int take_batch(srv_lane *l, long *tokens) {
    srv_batcher *b = l->b;
    srv_item *batch = l->batch;
    l->wait = SRV_WAIT_INPUT;
    do {
        while (!b->stop && !b->count) pthread_cond_wait(&l->cv, &b->mu);
        if (!b->count) return 0;
        double until = b->ring[b->head].queued_at + b->max_wait;
        struct timespec ts = deadline_ts(until);
        while (b->count && may_grow(b) && srv_now() < until) pthread_cond_timedwait(&l->cv, &b->mu, &ts);
    } while (!b->count);
    l->wait = SRV_WAIT_NONE;
    int n = 0;
    *tokens = 0;
    while (b->count && n < b->max_rows) {
        srv_item *it = &b->ring[b->head];
        int len = it->job->enc[it->i].n;
        if (n && *tokens + len > b->max_tokens) break;
        batch[n++] = *it;
        if (--it->job->unqueued == 0) b->queued_jobs--;
        *tokens += len;
        b->head = (b->head + 1) % b->cap;
        b->count--;
        b->queued_tokens -= len;
    }
    if (b->count) wake_lane(b, SRV_WAIT_INPUT);
    return n;
}

/* Under the lock, a batch of `jobs` requests taken: the threads it runs
 * on.  All of them when no other lane runs and no other request is in
 * flight (a lone client gets the whole machine); else an equal share, as
 * soon as one is free.  (Deciding by the queue alone, a lane that found it
 * momentarily empty took every thread while the other lane's batch
 * waited, and the lanes took turns.) */
static int take_threads(srv_lane *l, int jobs) {
    srv_batcher *b = l->b;
    for (l->wait = SRV_WAIT_THREADS; !b->free_threads;) pthread_cond_wait(&l->cv, &b->mu);
    l->wait = SRV_WAIT_NONE;
    bool alone = b->free_threads == b->threads && atomic_load(b->admitted) <= jobs;
    int want = alone ? b->threads : b->threads / b->n_lanes;
    int got = want < b->free_threads ? want : b->free_threads;
    b->free_threads -= got;
    return got;
}

/* Requests in batch[0, n): a request's inputs are queued together. */
static int count_jobs(const srv_item *batch, int n) {
    int jobs = 0;
    for (int k = 0; k < n; k++) jobs += !k || batch[k].job != batch[k - 1].job;
    return jobs;
}

/* Copies outputs into their jobs and gives the threads back; returns how
 * many connections to resume.  Lanes write disjoint outputs, but a job's
 * failure and count are shared, so those go under the lock. */
static int finish_batch(srv_lane *l, int n, int threads, const qb_error *err) {
    srv_batcher *b = l->b;
    for (int k = 0; k < n && !err; k++) {
        srv_job *j = l->batch[k].job;
        int rows = 1;
        const float *v = j->tokens ? qb_session_hidden(l->s, k, &rows)
                         : b->embed ? qb_session_embedding(l->s, k)
                                    : qb_session_logits(l->s, k);
        size_t len = j->tokens ? (size_t)rows * (size_t)b->hidden : (size_t)j->width;
        memcpy(j->out + (size_t)l->batch[k].i * j->width, v, len * sizeof(float));
    }
    int n_resume = 0;
    pthread_mutex_lock(&b->mu);
    b->free_threads += threads;
    for (int k = 0; k < n; k++) {
        srv_job *j = l->batch[k].job;
        if (err && !j->failed) {
            j->failed = true;
            snprintf(j->error, sizeof j->error, "%s", err->msg);
        }
        if (--j->pending == 0) {
            j->done = true;
            l->resume[n_resume++] = j->conn;
        }
    }
    wake_lane(b, SRV_WAIT_THREADS);
    pthread_mutex_unlock(&b->mu);
    return n_resume;
}

/* Lanes running side by side each keep to their own share of the CPUs
 * the server may use (lane k the k-th run of them), and run anywhere when
 * alone.  Left free, two lanes woken by connection threads on one CPU
 * took turns there while another ran only the process they share the
 * machine with: beside a busy loop on one of two cores, 262 against 312
 * requests/s. */
typedef struct {
    cpu_set_t home, share; /* the CPUs the lane's thread may run on; its share */
    bool kept;             /* to its share */
} lane_cpus;

/* Reads the calling lane thread's CPUs and cuts lane `lane`'s share of
 * them; with fewer CPUs than lanes (or none read) it keeps to all. */
static void lane_cpus_init(lane_cpus *cpus, int lane, int n_lanes) {
    *cpus = (lane_cpus){.kept = false};
    if (sched_getaffinity(0, sizeof cpus->home, &cpus->home)) CPU_ZERO(&cpus->home);
    cpus->share = cpus->home;
    int n = CPU_COUNT(&cpus->home), k = 0;
    for (int c = 0; c < CPU_SETSIZE && n >= n_lanes; c++) {
        if (!CPU_ISSET(c, &cpus->home)) continue;
        if (k * n_lanes / n != lane) CPU_CLR(c, &cpus->share);
        k++;
    }
}

static void lane_place(lane_cpus *cpus, bool side_by_side) {
    if (side_by_side == cpus->kept || CPU_EQUAL(&cpus->home, &cpus->share)) return;
    const cpu_set_t *set = side_by_side ? &cpus->share : &cpus->home;
    sched_setaffinity(0, sizeof *set, set); /* a refusal only costs speed */
    cpus->kept = side_by_side;
}

static void *loop(void *arg) {
    srv_lane *l = arg;
    srv_batcher *b = l->b;
    int lane = (int)(l - b->lanes);
    char name[16];
    snprintf(name, sizeof name, "qbert-lane%d", lane);
    pthread_setname_np(pthread_self(), name); /* for top -H and the tests */
    lane_cpus cpus;
    lane_cpus_init(&cpus, lane, b->n_lanes);
    for (;;) {
        long tokens;
        pthread_mutex_lock(&b->mu);
        int n = take_batch(l, &tokens);
        bool stopping = b->stop;
        int threads = n && !stopping ? take_threads(l, count_jobs(l->batch, n)) : 0;
        pthread_mutex_unlock(&b->mu);
        if (!n) break;
        for (int k = 0; k < n; k++) l->encp[k] = &l->batch[k].job->enc[l->batch[k].i];
        qb_error err = {0};
        lane_place(&cpus, threads < b->threads);
        double t0 = srv_now();
        /* Stopped: the drain has waited for these already; they are
         * answered with an error rather than hold up the exit. */
        qb_status st = stopping ? qb_fail(&err, QB_ERR_ARG, "%s", SRV_SHUTTING_DOWN)
                                : qb_session_set_threads(l->s, threads, &err);
        if (!st) st = qb_session_run_encodings(l->s, l->encp, n, &err);
        if (!stopping) srv_metrics_batch(b->metrics, lane, n, (int)tokens, srv_now() - t0);
        /* After resume the job may be answered and freed at once: the
         * connections are resumed last, with no job touched after. */
        int n_resume = finish_batch(l, n, threads, st ? &err : NULL);
        for (int k = 0; k < n_resume; k++) MHD_resume_connection(l->resume[k]);
    }
    return NULL;
}

static qb_status alloc_queue(srv_batcher *b, const qb_serve_params *p, qb_error *err) {
    b->cap = p->max_concurrent_requests * p->max_client_batch_size;
    b->ring = calloc((size_t)b->cap, sizeof *b->ring);
    if (!b->ring) return qb_fail(err, QB_ERR_NOMEM, "serve: out of memory for a queue of %d inputs", b->cap);
    return QB_OK;
}

/* A session of max_rows x max_len holds the token budget: rows are cut so
 * that a batch of the longest inputs still fits. */
static qb_status lane_init(srv_lane *l, srv_batcher *b, const qb_model *m, const qb_serve_params *p, int max_len,
                           qb_error *err) {
    l->b = b;
    qb_session_params sp = {.max_batch = b->max_rows, .max_seq = max_len, .n_threads = p->n_threads};
    qb_status st = qb_session_create(m, &sp, &l->s, err);
    if (!st && b->embed) {
        qb_embed_params e = qb_model_embed_params(m);
        e.normalize = 0; /* per request: TEI's "normalize" */
        st = qb_session_set_pooling(l->s, &e, err);
    }
    if (st) return st;
    l->batch = calloc((size_t)b->max_rows, sizeof *l->batch);
    l->encp = calloc((size_t)b->max_rows, sizeof *l->encp);
    l->resume = calloc((size_t)b->max_rows, sizeof *l->resume);
    if (!l->batch || !l->encp || !l->resume) return qb_fail(err, QB_ERR_NOMEM, "serve: out of memory for a batch");
    return QB_OK;
}

static qb_status lanes_init(srv_batcher *b, const qb_model *m, const qb_serve_params *p, int max_len,
                            qb_error *err) {
    qb_status st = lane_init(&b->lanes[0], b, m, p, max_len, err);
    if (st) return st;
    b->threads = b->free_threads = qb_session_threads(b->lanes[0].s);
    int want = p->parallel_batches ? p->parallel_batches : SRV_LANES_MAX;
    b->n_lanes = want < b->threads ? want : b->threads;
    for (int i = 1; i < b->n_lanes && !st; i++) st = lane_init(&b->lanes[i], b, m, p, max_len, err);
    return st;
}

qb_status srv_batcher_start(srv_batcher *b, const qb_model *m, const qb_serve_params *p, int max_len,
                            srv_metrics *metrics, atomic_int *admitted, qb_error *err) {
    qb_model_info info;
    qb_model_get_info(m, &info);
    b->embed = srv_embedder(&info);
    b->hidden = info.hidden_size;
    b->max_tokens = p->max_batch_tokens;
    b->max_rows = p->max_batch_tokens / max_len;
    if (b->max_rows < 1)
        return qb_fail(err, QB_ERR_ARG, "serve: --max-batch-tokens %d is less than --max-input-length %d",
                       p->max_batch_tokens, max_len);
    b->max_wait = p->max_wait_ms * 1e-3;
    b->metrics = metrics;
    b->admitted = admitted;
    qb_status st = lanes_init(b, m, p, max_len, err);
    if (!st) st = alloc_queue(b, p, err);
    if (st) return st;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca; /* deadlines are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < b->n_lanes; i++) pthread_cond_init(&b->lanes[i].cv, &ca);
    pthread_condattr_destroy(&ca);
    b->initialized = true;
    for (int i = 0; i < b->n_lanes; i++) {
        srv_lane *l = &b->lanes[i];
        if (pthread_create(&l->thread, NULL, loop, l))
            return qb_fail(err, QB_ERR_NOMEM, "serve: cannot start an inference thread");
        l->running = true;
    }
    return QB_OK;
}

/* Fails what is still queued and ends the loops. */
void srv_batcher_stop(srv_batcher *b) {
    if (b->initialized) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        for (int i = 0; i < b->n_lanes; i++) pthread_cond_signal(&b->lanes[i].cv);
        pthread_mutex_unlock(&b->mu);
    }
    for (int i = 0; i < SRV_LANES_MAX; i++) {
        srv_lane *l = &b->lanes[i];
        if (l->running) pthread_join(l->thread, NULL);
        l->running = false;
    }
}

/* Once no connection thread can call in any more. */
void srv_batcher_free(srv_batcher *b) {
    for (int i = 0; i < SRV_LANES_MAX; i++) {
        srv_lane *l = &b->lanes[i];
        qb_session_free(l->s);
        free(l->batch);
        free(l->encp);
        free(l->resume);
    }
    if (b->initialized) {
        pthread_mutex_destroy(&b->mu);
        for (int i = 0; i < b->n_lanes; i++) pthread_cond_destroy(&b->lanes[i].cv);
    }
    free(b->ring);
    memset(b, 0, sizeof *b);
}
