/* qbert serve: the model behind an HTTP server (include/qbert_serve.h)
 * until SIGTERM or SIGINT, which drain it: no new connections, the
 * requests in flight answered, exit 0 (1 when some outlast the drain). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "qbert_serve.h"

static const char help[] =
    "usage: qbert serve MODEL_DIR [options]\n"
    "\n"
    "Serves the model over HTTP with the API of Hugging Face's text-embeddings-inference\n"
    "and OpenAI's embeddings, so their clients work unchanged:\n"
    "  POST /embed           {\"inputs\": str | [str], \"normalize\": true, \"truncate\": false,\n"
    "                        \"prompt_name\": null}\n"
    "  POST /embed_all       {\"inputs\": str | [str], \"truncate\": false, \"prompt_name\": null}:\n"
    "                        every token's last hidden state, unpooled\n"
    "  POST /similarity      {\"inputs\": {\"source_sentence\": str, \"sentences\": [str]},\n"
    "                        \"parameters\": {\"truncate\": false, \"prompt_name\": null}}:\n"
    "                        cosines to the source\n"
    "  POST /v1/embeddings   {\"input\": str | [str], \"model\", \"encoding_format\": \"float\"|\"base64\"}\n"
    "  POST /predict         {\"inputs\": str | [str, str] | [[str], ...], \"raw_scores\": false}\n"
    "  POST /rerank          {\"query\", \"texts\": [str], \"return_text\": false} (one-output models)\n"
    "  POST /tokenize        {\"inputs\": str | [str], \"add_special_tokens\": true,\n"
    "                        \"prompt_name\": null}\n"
    "  POST /decode          {\"ids\": [int] | [[int]], \"skip_special_tokens\": true}\n"
    "  GET  /info, /health, /metrics (Prometheus)\n"
    "Embedding endpoints need a bare encoder (BertModel, sentence-transformers layout)\n"
    "or a masked-LM checkpoint (its encoder, pooled as qbert embed pools it); /predict\n"
    "and /rerank a sequence classifier.  Inputs are cut at the right only\n"
    "(\"truncation_direction\": \"Left\" is refused), and \"dimensions\" must be the\n"
    "model's own.  Errors are {\"error\", \"error_type\"} (/v1/embeddings: OpenAI's\n"
    "{\"error\": {\"message\", \"type\", \"param\", \"code\"}}):\n"
    "400 malformed, 401 no or wrong key, 413 too large, 415 not JSON, 422 too long or\n"
    "not tokenizable, 429 overloaded, 503 shutting down.  \"prompt_name\" puts one of\n"
    "the model's prompts (config_sentence_transformers.json) before each input.\n"
    "\n"
    "Inputs are tokenized on the connection threads and run in batches: one batch on\n"
    "all the compute threads while it is alone, batches side by side on a share of\n"
    "them each when more wait.  SIGTERM or SIGINT stops accepting, answers what is in\n"
    "flight, exits 0; what is still queued after --drain-seconds gets 500, exit 1; a\n"
    "second signal stops at once (exit 1).\n"
    "\n"
    "  --host ADDR                   address or host name to bind (default 127.0.0.1: this\n"
    "                                machine only)\n"
    "  --port P                      (default 8080; 0: any free port, printed on stderr)\n"
    "  --threads N                   the model's compute threads (default: all cores)\n"
    "  --parallel-batches N          batches run at once under load, each on threads / N\n"
    "                                threads, its share of the CPUs and its own working\n"
    "                                memory (default 2; 1: one batch at a time, half the\n"
    "                                memory)\n"
    "  --http-threads N              connection threads: parsing, tokenizing (default 2)\n"
    "  --max-batch-tokens T          token budget of one batch (default 8192); the session\n"
    "                                holds T / max-input-length inputs of any length\n"
    "  --max-wait-ms MS              how long a batch waits for requests still being\n"
    "                                read (default 5; none coming: no wait)\n"
    "  --max-concurrent-requests N   requests in flight; beyond: 429 (default 512)\n"
    "  --max-input-length L          tokens per input (default: the model's); longer\n"
    "                                inputs get 422 unless the request says \"truncate\"\n"
    "  --max-client-batch-size N     inputs per request; beyond: 413 (default 32)\n"
    "  --payload-limit BYTES         request body size; beyond: 413, sent once the body is\n"
    "                                read if it is at most twice this (default 2000000)\n"
    "  --timeout S                   a connection idle this long is closed (default 10)\n"
    "  --drain-seconds S             on SIGTERM or SIGINT, how long the requests in flight\n"
    "                                may take to finish (default 4)\n"
    "  --api-key KEY                 require \"Authorization: Bearer KEY\" (not on /health)\n"
    "  --model-id NAME               the name /info and /v1/embeddings give (default: MODEL_DIR)\n"
    "  --default-prompt-name P       the prompt of embedding requests that name none\n"
    "                                (default: the model's default_prompt_name, as\n"
    "                                sentence-transformers does; TEI has none by default)\n"
    "  --no-default-prompt           requests that name no prompt get none\n";

static int parse_int(const char *name, const char *v, int lo, int hi, int *out) {
    return qb_arg_int("serve", name, v, lo, hi, out) ? QB_EXIT_OK : QB_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, qb_serve_params *p, int *drain_s, const char **dir) {
    for (int i = 1; i < argc; i++) {
        const char *v;
        int rc = QB_EXIT_OK, payload = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if ((v = qb_arg_value("--host", &i, argc, argv))) p->host = v;
        else if ((v = qb_arg_value("--api-key", &i, argc, argv))) p->api_key = v;
        else if ((v = qb_arg_value("--model-id", &i, argc, argv))) p->model_id = v;
        else if ((v = qb_arg_value("--default-prompt-name", &i, argc, argv))) p->default_prompt_name = v;
        else if (!strcmp(argv[i], "--no-default-prompt")) p->no_default_prompt = 1;
        else if ((v = qb_arg_value("--port", &i, argc, argv))) rc = parse_int("--port", v, 0, 65535, &p->port);
        else if ((v = qb_arg_value("--threads", &i, argc, argv))) rc = parse_int("--threads", v, 1, 1024, &p->n_threads);
        else if ((v = qb_arg_value("--parallel-batches", &i, argc, argv)))
            rc = parse_int("--parallel-batches", v, 1, 2, &p->parallel_batches);
        else if ((v = qb_arg_value("--http-threads", &i, argc, argv)))
            rc = parse_int("--http-threads", v, 1, 256, &p->http_threads);
        else if ((v = qb_arg_value("--max-batch-tokens", &i, argc, argv)))
            rc = parse_int("--max-batch-tokens", v, 2, 1 << 20, &p->max_batch_tokens);
        else if ((v = qb_arg_value("--max-wait-ms", &i, argc, argv)))
            rc = parse_int("--max-wait-ms", v, 0, 60000, &p->max_wait_ms);
        else if ((v = qb_arg_value("--max-concurrent-requests", &i, argc, argv)))
            rc = parse_int("--max-concurrent-requests", v, 1, 1 << 16, &p->max_concurrent_requests);
        else if ((v = qb_arg_value("--max-input-length", &i, argc, argv)))
            rc = parse_int("--max-input-length", v, 2, 1 << 20, &p->max_input_length);
        else if ((v = qb_arg_value("--max-client-batch-size", &i, argc, argv)))
            rc = parse_int("--max-client-batch-size", v, 1, 1 << 16, &p->max_client_batch_size);
        else if ((v = qb_arg_value("--payload-limit", &i, argc, argv))) {
            rc = parse_int("--payload-limit", v, 16, 1 << 30, &payload);
            p->payload_limit = (size_t)payload;
        } else if ((v = qb_arg_value("--timeout", &i, argc, argv))) rc = parse_int("--timeout", v, 1, 3600, &p->timeout_s);
        else if ((v = qb_arg_value("--drain-seconds", &i, argc, argv)))
            rc = parse_int("--drain-seconds", v, 0, 3600, drain_s);
        else if (argv[i][0] == '-') return qb_usage_error("serve", "unknown option '%s'", argv[i]);
        else if (!*dir) *dir = argv[i];
        else return qb_usage_error("serve", "one MODEL_DIR only (got '%s' too)", argv[i]);
        if (rc) return rc;
    }
    if (!*dir) return qb_usage_error("serve", "missing MODEL_DIR");
    if (p->default_prompt_name && p->no_default_prompt)
        return qb_usage_error("serve", "give --default-prompt-name or --no-default-prompt, not both");
    if (!p->model_id) p->model_id = *dir;
    return QB_EXIT_OK;
}

/* Every connection is a descriptor: lift the soft limit to the hard one. */
static void raise_open_files(void) {
    struct rlimit r;
    if (!getrlimit(RLIMIT_NOFILE, &r) && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* A second SIGINT or SIGTERM during the drain: the user will not wait. */
static void *stop_at_once(void *set) {
    int sig;
    if (sigwait(set, &sig) == 0) {
        fprintf(stderr, "qbert serve: %s again: stopped without draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        _exit(QB_EXIT_FAIL);
    }
    return NULL;
}

int qb_cmd_serve(int argc, char **argv) {
    qb_serve_params p = qb_serve_default_params();
    p.model_id = NULL;
    const char *dir = NULL;
    int drain_s = 4;
    int rc = parse_args(argc, argv, &p, &drain_s, &dir);
    if (rc) return rc;
    qb_model *m = qb_cli_load("serve", dir, p.n_threads, NULL);
    if (!m) return QB_EXIT_FAIL;
    /* Blocked before any thread starts, so every thread inherits it and
     * the signals wait for sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_open_files();
    qb_server *s = NULL;
    qb_error err = {0};
    if (qb_serve_start(m, &p, &s, &err)) {
        qb_model_free(m);
        return qb_report_error("serve", &err);
    }
    fprintf(stderr, "qbert serve: %s on http://%s%s%s:%d/\n", dir, strchr(p.host, ':') ? "[" : "", p.host,
            strchr(p.host, ':') ? "]" : "", qb_serve_port(s));
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "qbert serve: %s: draining (a second signal stops at once)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    pthread_t impatient;
    if (pthread_create(&impatient, NULL, stop_at_once, &stop) == 0) pthread_detach(impatient);
    int left = qb_serve_drain(s, drain_s);
    if (left) fprintf(stderr, "qbert serve: %d requests still in flight after %d s\n", left, drain_s);
    qb_serve_free(s);
    qb_model_free(m);
    fprintf(stderr, "qbert serve: stopped\n");
    return left ? QB_EXIT_FAIL : QB_EXIT_OK;
}
