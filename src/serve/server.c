/* The HTTP side, on libmicrohttpd: a pool of connection threads (epoll)
 * reads requests, checks them (key, path, type, size, admission), parses
 * and tokenizes the body, queues the job and suspends the connection; the
 * inference loop resumes it, and the same connection thread writes the
 * reply.  Every limit is checked as soon as the headers are in, so an
 * oversized or unwanted request is answered before its body is read. */
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "serve/serve.h"

struct qb_server {
    qb_serve_params p;
    srv_ctx ctx;
    srv_metrics metrics;
    srv_batcher batcher;
    struct MHD_Daemon *d;
    atomic_int admitted;  /* model requests holding a slot */
    atomic_bool draining;
    int port;
};

/* One request's state, from its headers to its completion. */
typedef struct {
    int route;
    double t0;
    bool slot;            /* holds one of max_concurrent_requests */
    bool queued;          /* its job is in the batcher */
    bool answered;
    bool options;         /* an OPTIONS request: answered with Allow */
    bool oom;             /* the body did not fit in memory */
    int status;
    char *body;
    size_t len, cap;
    srv_call call;
} srv_req;

static int route_of(const char *url) {
    static const char *const paths[SRV_ROUTES] = {
        "/embed", "/predict", "/rerank", "/tokenize", "/decode", "/embed_all", "/similarity", "/v1/embeddings",
        "/info",  "/health",  "/metrics"};
    for (int r = 0; r < SRV_ROUTES; r++)
        if (!strcmp(url, paths[r])) return r;
    return SRV_UNKNOWN;
}

static bool is_post(int route) { return route <= SRV_OPENAI; }

static enum MHD_Result send_reply(qb_server *s, struct MHD_Connection *c, srv_req *q, srv_reply *r) {
    if (q->route == SRV_OPENAI && r->status >= 400) srv_error_openai(r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->status == 405 || q->options)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, is_post(q->route) ? "POST, OPTIONS" : "GET, HEAD, OPTIONS");
    if (atomic_load(&s->draining) || r->status == 413 || r->status == 429)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    q->answered = true;
    q->status = r->status;
    return ok;
}

/* Constant time, so the key cannot be guessed a byte at a time. */
static bool key_ok(const char *want, const char *auth) {
    const char *given = auth && !strncasecmp(auth, "Bearer ", 7) ? auth + 7 : "";
    size_t n = strlen(want), m = strlen(given);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(want[i] ^ given[i < m ? i : 0]);
    return !diff;
}

static long long content_length(struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return v ? atoll(v) : -1;
}

typedef struct {
    const char *first;
    bool differ;
} length_headers;

static enum MHD_Result note_length(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    length_headers *h = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) return MHD_YES;
    if (h->first && strcmp(h->first, value)) h->differ = true;
    if (!h->first) h->first = value;
    return MHD_YES;
}

/* Two Content-Length headers that disagree: which one frames the body is
 * a guess a proxy in front may make otherwise (RFC 9112 6.3). */
static bool lengths_differ(struct MHD_Connection *c) {
    length_headers h = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, note_length, &h);
    return h.differ;
}

/* A compressed body would reach the JSON parser as bytes it cannot read. */
static bool is_identity(struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    return !v || !*v || !strcasecmp(v, "identity");
}

static bool is_json_body(struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return v && !strncasecmp(v, "application/json", 16) && (!v[16] || v[16] == ';' || v[16] == ' ');
}

/* A body over the limit is still read, up to as much again, and dropped:
 * a client that sends its body before it reads (Python's http.client,
 * requests) would otherwise meet a closed socket, not the 413.  One that
 * waits (Expect: 100-continue) is refused at once. */
static bool too_large_to_read(const qb_server *s, struct MHD_Connection *c) {
    long long n = content_length(c), limit = (long long)s->p.payload_limit;
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    return n > limit && (n > 2 * limit || (expect && !strcasecmp(expect, "100-continue")));
}

/* What can be refused on the headers alone; false with the reply in r. */
static bool admit(qb_server *s, struct MHD_Connection *c, srv_req *q, const char *method, srv_reply *r) {
    if (atomic_load(&s->draining)) return srv_error(r, 503, "unhealthy", "%s", SRV_SHUTTING_DOWN);
    if (s->p.api_key && q->route != SRV_HEALTH &&
        !key_ok(s->p.api_key, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)))
        return srv_error(r, 401, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY)");
    if (q->route == SRV_UNKNOWN) return srv_error(r, 404, "not_found", "no such endpoint");
    if (!strcmp(method, "OPTIONS")) { /* RFC 9110 9.3.7: the methods, in Allow */
        q->options = true;
        *r = (srv_reply){204, strdup(""), 0, "text/plain"};
        return false;
    }
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"); /* HEAD: GET's headers, no body (MHD) */
    if (is_post(q->route) ? strcmp(method, "POST") : !get)
        return srv_error(r, 405, "validation", "this endpoint takes %s", is_post(q->route) ? "POST" : "GET or HEAD");
    if (!is_post(q->route)) return true;
    if (lengths_differ(c)) return srv_error(r, 400, "validation", "two Content-Length headers that differ");
    if (!is_identity(c))
        return srv_error(r, 415, "validation", "Content-Encoding '%s' is not supported: send the JSON uncompressed",
                         MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING));
    if (!is_json_body(c))
        return srv_error(r, 415, "validation", "the body must be sent as Content-Type: application/json");
    if (too_large_to_read(s, c))
        return srv_error(r, 413, "validation", "the body is %lld bytes, more than the %zu allowed", content_length(c),
                         s->p.payload_limit);
    if (atomic_fetch_add(&s->admitted, 1) >= s->p.max_concurrent_requests) {
        atomic_fetch_sub(&s->admitted, 1);
        return srv_error(r, 429, "overloaded", "more than %d requests in flight", s->p.max_concurrent_requests);
    }
    q->slot = true;
    return true;
}

/* A body over the limit (chunked, so not refused on its headers) is
 * remembered as too large and the rest of it dropped as it comes. */
static void body_append(qb_server *s, srv_req *q, const char *data, size_t n) {
    if (q->oom || q->len + n > s->p.payload_limit) {
        q->len = s->p.payload_limit + 1;
        return;
    }
    if (q->len + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap < q->len + n + 1) cap *= 2;
        char *b = realloc(q->body, cap);
        q->oom = !b;
        if (!b) return;
        q->body = b;
        q->cap = cap;
    }
    memcpy(q->body + q->len, data, n);
    q->len += n;
}

static enum MHD_Result get_reply(qb_server *s, struct MHD_Connection *c, srv_req *q) {
    srv_reply r = {200, NULL, 0, "text/plain"};
    if (q->route == SRV_INFO) srv_info_reply(&s->ctx, &r);
    else if (q->route == SRV_METRICS) {
        r.body = srv_metrics_text(&s->metrics, srv_batcher_depth(&s->batcher), atomic_load(&s->admitted),
                                  s->batcher.n_lanes, &r.len);
        r.type = "text/plain; version=0.0.4";
        if (!r.body) srv_error(&r, 500, "backend", "out of memory");
    } else r.body = strdup("");
    return send_reply(s, c, q, &r);
}

/* The body as JSON (then dropped: the document holds what is needed). */
static bool parse_body(qb_server *s, srv_req *q, srv_reply *r) {
    qb_error err = {0};
    bool ok = q->len <= s->p.payload_limit && !q->oom;
    if (q->oom) srv_error(r, 500, "backend", "out of memory for the request body");
    else if (!ok) srv_error(r, 413, "validation", "the body is more than the %zu bytes allowed", s->p.payload_limit);
    else if (qb_json_parse(q->body ? q->body : "", q->len, "request", &q->call.doc, &err))
        ok = srv_error(r, 400, "validation", "%s", err.msg);
    free(q->body);
    q->body = NULL;
    q->call.route = q->route;
    return ok;
}

/* The body is in: parse, tokenize, then queue (or answer at once). */
static enum MHD_Result start_call(qb_server *s, struct MHD_Connection *c, srv_req *q) {
    srv_reply r = {0};
    if (!parse_body(s, q, &r) || !srv_call_prepare(&s->ctx, &q->call, &r)) return send_reply(s, c, q, &r);
    if (q->route == SRV_TOKENIZE || q->route == SRV_DECODE) {
        srv_call_reply(&s->ctx, &q->call, &r);
        return send_reply(s, c, q, &r);
    }
    q->call.job.conn = c;
    q->queued = true;
    MHD_suspend_connection(c); /* before the job can finish and resume it */
    if (!srv_batcher_submit(&s->batcher, &q->call.job)) MHD_resume_connection(c);
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state) {
    qb_server *s = cls;
    srv_req *q = *state;
    if (!q) {
        if (!(q = calloc(1, sizeof *q))) return MHD_NO;
        *state = q;
        q->t0 = srv_now();
        q->route = route_of(url);
        srv_reply r = {0};
        if (!admit(s, c, q, method, &r)) return send_reply(s, c, q, &r);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!q->answered) body_append(s, q, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->answered) return MHD_YES;
    if (!is_post(q->route)) return get_reply(s, c, q);
    if (!q->queued) return start_call(s, c, q);
    if (!srv_batcher_done(&s->batcher, &q->call.job)) {
        MHD_suspend_connection(c); /* not ours to resume yet */
        return MHD_YES;
    }
    srv_reply r = {0};
    srv_call_reply(&s->ctx, &q->call, &r);
    return send_reply(s, c, q, &r);
}

/* Called once a request is over, answered or not (a client that hung up). */
static void completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why) {
    qb_server *s = cls;
    srv_req *q = *state;
    if (!q) return;
    srv_metrics_request(&s->metrics, q->route, q->answered ? q->status : 0, srv_now() - q->t0);
    if (q->slot) atomic_fetch_sub(&s->admitted, 1);
    srv_call_free(&q->call);
    free(q->body);
    free(q);
    *state = NULL;
}

static qb_status check_params(const qb_serve_params *p, qb_error *err) {
    if (p->http_threads < 1 || p->max_batch_tokens < 1 || p->max_wait_ms < 0 || p->max_concurrent_requests < 1 ||
        p->max_client_batch_size < 1 || p->payload_limit < 1 || p->timeout_s < 1 || p->max_input_length < 0)
        return qb_fail(err, QB_ERR_ARG, "serve: every limit must be positive");
    if (p->api_key && !*p->api_key) return qb_fail(err, QB_ERR_ARG, "serve: the API key is empty");
    if (p->parallel_batches < 0 || p->parallel_batches > SRV_LANES_MAX)
        return qb_fail(err, QB_ERR_ARG, "serve: parallel batches %d is not in 0..%d", p->parallel_batches,
                       SRV_LANES_MAX);
    return QB_OK;
}

/* An address, or a name the resolver knows ("localhost"): its first
 * address, IPv4 or IPv6. */
static qb_status parse_host(const char *host, int port, struct sockaddr_storage *ss, qb_error *err) {
    memset(ss, 0, sizeof *ss);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res || res->ai_addrlen > sizeof *ss) {
        if (res) freeaddrinfo(res);
        return qb_fail(err, QB_ERR_ARG, "serve: --host '%s' is not an address or a known host name (%s)", host,
                       rc ? gai_strerror(rc) : "no address");
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    return QB_OK;
}

/* Room for every admitted request plus those being refused with 429: a
 * refusal needs its connection accepted. */
static unsigned connection_limit(const qb_serve_params *p) {
    long open_max = sysconf(_SC_OPEN_MAX);
    long want = 4L * p->max_concurrent_requests + 4096;
    if (open_max > 128 && want > open_max - 64) want = open_max - 64;
    return (unsigned)want;
}

static qb_status start_daemon(qb_server *s, qb_error *err) {
    struct sockaddr_storage ss;
    qb_status st = parse_host(s->p.host, s->p.port, &ss, err);
    if (st) return st;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)s->p.port, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->p.http_threads,
                            MHD_OPTION_CONNECTION_LIMIT, connection_limit(&s->p),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.timeout_s,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_END);
    if (!s->d) return qb_fail(err, QB_ERR_IO, "serve: cannot listen on %s port %d (in use, or not an address here)",
                              s->p.host, s->p.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->p.port;
    return QB_OK;
}

qb_status qb_serve_start(const qb_model *m, const qb_serve_params *p, qb_server **out, qb_error *err) {
    *out = NULL;
    qb_status st = check_params(p, err);
    if (st) return st;
    qb_server *s = calloc(1, sizeof *s);
    if (!s) return qb_fail(err, QB_ERR_NOMEM, "serve: out of memory");
    s->p = *p;
    srv_metrics_init(&s->metrics);
    st = srv_ctx_init(&s->ctx, m, &s->p, err);
    if (!st) st = srv_batcher_start(&s->batcher, m, &s->p, s->ctx.max_len, &s->metrics, &s->admitted, err);
    if (!st) st = start_daemon(s, err);
    if (st) {
        qb_serve_free(s);
        return st;
    }
    *out = s;
    return QB_OK;
}

int qb_serve_port(const qb_server *s) { return s->port; }

/* The requests still in flight after waiting up to timeout_s for them. */
static int wait_admitted(qb_server *s, double timeout_s) {
    double until = srv_now() + timeout_s;
    while (atomic_load(&s->admitted) > 0 && srv_now() < until) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->admitted);
}

int qb_serve_drain(qb_server *s, double timeout_s) {
    atomic_store(&s->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    return wait_admitted(s, timeout_s);
}

void qb_serve_free(qb_server *s) {
    if (!s) return;
    srv_batcher_stop(&s->batcher); /* fails what is queued and resumes its connections */
    wait_admitted(s, 1.0);         /* for those replies to go out before the connections close */
    if (s->d) MHD_stop_daemon(s->d);
    srv_batcher_free(&s->batcher);
    srv_metrics_destroy(&s->metrics);
    free(s);
}
