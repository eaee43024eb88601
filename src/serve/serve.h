/* The server's parts: the batcher (queue and inference loop), the metrics,
 * the endpoints (requests in, replies out) and the HTTP glue (server.c). */
#ifndef QB_SERVE_SERVE_H
#define QB_SERVE_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/json.h"
#include "qbert.h"
#include "qbert_serve.h"

struct MHD_Connection;

/* The POST routes first, up to SRV_OPENAI. */
enum { SRV_EMBED, SRV_PREDICT, SRV_RERANK, SRV_TOKENIZE, SRV_DECODE, SRV_EMBED_ALL, SRV_SIMILARITY, SRV_OPENAI,
       SRV_INFO, SRV_HEALTH, SRV_METRICS, SRV_ROUTES, SRV_UNKNOWN = SRV_ROUTES };

/* ---- metrics: counters and histograms behind one mutex ---- */

#define SRV_LANES_MAX 2 /* inference loops (srv_lane) */

#define SRV_HIST_MAX 16
typedef struct {
    const double *bounds; /* upper bounds, ascending */
    int n;
    long long counts[SRV_HIST_MAX]; /* per bucket, not cumulative */
    long long total;
    double sum;
} srv_hist;

/* The status codes the server answers with, for the error counters. */
#define SRV_STATUSES 11
typedef struct {
    pthread_mutex_t mu;
    long long requests[SRV_ROUTES + 1];
    long long statuses[SRV_STATUSES];
    long long inputs, tokens;
    long long lane_batches[SRV_LANES_MAX];
    srv_hist latency, batch_rows, batch_tokens, infer_seconds;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, int route, int status, double seconds);
void srv_metrics_batch(srv_metrics *m, int lane, int rows, int tokens, double seconds);
/* The Prometheus text exposition; queue and in-flight gauges given, and
 * the lanes in use. */
char *srv_metrics_text(srv_metrics *m, long queue_depth, long in_flight, int lanes, size_t *len);

/* ---- jobs and the batcher ---- */

/* What a request refused or cut short by a shutdown is told. */
#define SRV_SHUTTING_DOWN "the server is shutting down"

double srv_now(void); /* monotonic seconds */

/* One request's inputs, tokenized, and the model's outputs for them
 * (width floats apart: an embedding, a classifier's logits, or with tokens
 * the last hidden state of each of the input's tokens). */
typedef struct srv_job {
    struct MHD_Connection *conn;
    int n, width;
    bool tokens;
    qb_encoding *enc;
    float *out;
    json_t *answer; /* /tokenize, /decode: the reply, made while the request is at hand */
    int pending;  /* inputs not yet run (under the batcher's lock) */
    int unqueued; /* inputs not yet taken into a batch (the same) */
    bool done;    /* (under the batcher's lock) */
    bool failed;
    char error[512];
} srv_job;

typedef struct {
    srv_job *job;
    int i;
    double queued_at;
} srv_item;

enum { SRV_WAIT_NONE, SRV_WAIT_INPUT, SRV_WAIT_THREADS };

/* An inference loop with its own session.  A batch that is alone runs on
 * all the threads; under load the lanes run batches side by side, each on
 * its share, since a batch on fewer threads spends less of its time
 * waiting for them inside each step (docs/architecture.md). */
typedef struct srv_lane {
    struct srv_batcher *b;
    qb_session *s;
    pthread_cond_t cv;      /* signalled for what it waits for */
    int wait;               /* SRV_WAIT_*, under the batcher's lock */
    srv_item *batch;        /* max_rows */
    const qb_encoding **encp;
    struct MHD_Connection **resume;
    pthread_t thread;
    bool running;
} srv_lane;

typedef struct srv_batcher {
    bool embed;             /* pooled embeddings, else logits */
    int hidden, max_rows, max_tokens;
    double max_wait;
    atomic_int *admitted;   /* requests in flight, queued or not */
    int queued_jobs;        /* requests with inputs in the queue */
    srv_metrics *metrics;
    pthread_mutex_t mu;
    srv_item *ring;         /* max_concurrent_requests x max_client_batch_size */
    int cap, head, count;
    long queued_tokens;
    bool stop;
    int threads, free_threads; /* all free: no lane runs */
    srv_lane lanes[SRV_LANES_MAX];
    int n_lanes;            /* in use */
    bool initialized;       /* mu and the lanes' cv */
} srv_batcher;

qb_status srv_batcher_start(srv_batcher *b, const qb_model *m, const qb_serve_params *p, int max_len,
                            srv_metrics *metrics, atomic_int *admitted, qb_error *err);
/* Queues every input of job (the caller has suspended its connection,
 * which the loop resumes once the last input has run).  Once stopped it
 * queues nothing: the job is done and failed, and false says to resume. */
bool srv_batcher_submit(srv_batcher *b, srv_job *job);
bool srv_batcher_done(srv_batcher *b, srv_job *job);
long srv_batcher_depth(srv_batcher *b);
/* Stop ends the lanes, failing what is queued; free follows once the
 * connection threads that read the jobs are gone. */
void srv_batcher_stop(srv_batcher *b);
void srv_batcher_free(srv_batcher *b);

/* ---- endpoints ---- */

typedef struct srv_ctx {
    const qb_model *m;
    qb_model_info info;
    bool embedder;          /* served as an embedding model (srv_embedder) */
    const qb_serve_params *p;
    int max_len;            /* tokens per input */
    qb_embed_params embed;  /* the model's pooling (embedding models) */
    int dim;                /* width of a job's output */
    const char *prompt;     /* for embedding requests that name none, or NULL */
} srv_ctx;

/* A reply: status, body (malloc'd JSON or text) and its type. */
typedef struct {
    int status;
    char *body;
    size_t len;
    const char *type;
} srv_reply;

/* A request's parsed body: what the reply needs besides the job. */
typedef struct srv_call {
    int route;
    json_t *doc;
    bool single;            /* inputs was one item, not a list */
    bool truncate, normalize, raw_scores, return_text, base64;
    const char *prompt;     /* put before each input, or NULL */
    srv_job job;
} srv_call;

/* Bare encoders, and masked-LM checkpoints through their encoder: the
 * models whose pooled states the embedding endpoints serve. */
bool srv_embedder(const qb_model_info *info);
/* An error reply r in OpenAI's shape, {"error": {"message", "type",
 * "param", "code"}}, for /v1/embeddings. */
void srv_error_openai(srv_reply *r);
/* x for model m served with p: its info, pooling, input length and output
 * width; token-classification models are refused. */
qb_status srv_ctx_init(srv_ctx *x, const qb_model *m, const qb_serve_params *p, qb_error *err);
bool srv_error(srv_reply *r, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Parses and tokenizes c->doc for c->route into c->job; false with an
 * error reply if the request is invalid. */
bool srv_call_prepare(const srv_ctx *x, srv_call *c, srv_reply *r);
/* The reply to a request whose job has run. */
void srv_call_reply(const srv_ctx *x, srv_call *c, srv_reply *r);
void srv_call_free(srv_call *c);
void srv_info_reply(const srv_ctx *x, srv_reply *r);

#endif
