/* qbert serve: an HTTP server over one loaded model, with the endpoints of
 * Hugging Face's text-embeddings-inference (/embed, /predict, /rerank,
 * /tokenize, /info, /health, /metrics) and OpenAI's /v1/embeddings.
 *
 * Requests are parsed and tokenized on libmicrohttpd's connection threads,
 * queued, and run in batches (by token budget) by inference loops that
 * own a qb_session each: one batch on all the threads when it is alone,
 * batches side by side when more wait.  The connection waits suspended
 * meanwhile, so a slow model never holds a connection thread. */
#ifndef QBERT_SERVE_H
#define QBERT_SERVE_H

#include <stddef.h>

#include "qbert.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qb_server qb_server;

typedef struct qb_serve_params {
    const char *host;            /* address to bind (default "127.0.0.1") */
    int port;                    /* 0: any free port (see qb_serve_port) */
    int n_threads;               /* compute threads (0: all cores) */
    int parallel_batches;        /* under load, batches run at once, each on its share of
                                    the threads and CPUs (0: 2, or 1 with one thread) */
    int http_threads;            /* connection threads: parsing, tokenizing, replies */
    int max_batch_tokens;        /* a batch's token budget */
    int max_wait_ms;             /* how long the first queued input waits for requests being read */
    int max_concurrent_requests; /* beyond it: 429 */
    int max_input_length;        /* tokens per input (0: the model's) */
    int max_client_batch_size;   /* inputs per request (beyond: 413) */
    size_t payload_limit;        /* request body bytes (beyond: 413) */
    int timeout_s;               /* a connection idle this long is closed */
    const char *api_key;         /* NULL: none; else "Authorization: Bearer KEY" */
    const char *model_id;        /* the name /info and /v1/embeddings report */
    const char *default_prompt_name; /* the prompt of requests that name none (NULL: the
                                        model's default_prompt_name, as sentence-transformers) */
    int no_default_prompt;       /* requests that name no prompt get none */
} qb_serve_params;

qb_serve_params qb_serve_default_params(void);

/* Binds, starts the connection threads and the inference loop.  m must
 * outlive the server. */
qb_status qb_serve_start(const qb_model *m, const qb_serve_params *p, qb_server **out, qb_error *err);
int qb_serve_port(const qb_server *s);
/* Stops accepting connections, answers new requests on open ones with 503,
 * and waits up to timeout_s for the requests in flight to be answered;
 * returns how many were still unanswered. */
int qb_serve_drain(qb_server *s, double timeout_s);
void qb_serve_free(qb_server *s);

#ifdef __cplusplus
}
#endif
#endif
