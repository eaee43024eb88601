/* Sessions on one model in several threads at once (issue #19): each
 * thread tokenizes and runs its own session of 2 threads (the caller and
 * one pool worker) on one shared qb_model, FP32 and dynamic INT8, every
 * other run on its caller alone (qb_session_set_threads, as the server's
 * lanes do under load), and every logit must equal, bit for bit, what one
 * session on one thread computed for the same batch.  The pool's results
 * may not depend on which thread ran a task or on timing, and a model is
 * read-only after load.  Built with -fsanitize=thread (`make test-tsan`,
 * label tsan) the same run also shows no data race among the sessions or
 * inside a pool. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define N_WORKERS 3
#define MAX_BATCH 4

/* SST-2-like sentences of different lengths; the expected logits are the
 * single-threaded run's, not numbers written here. */
static const char *const texts[] = {
    "a gripping, beautifully acted film",
    "the plot is thin and the jokes fall flat",
    "not bad at all",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the movie is a disaster from start to finish , with performances so wooden you could build a house",
    "an exhilarating experience",
    "too long , too loud and far too pleased with itself",
};
#define N_TEXTS ((int)(sizeof texts / sizeof *texts))

/* Run r: texts [first, first + n): every text alone, then in fours. */
#define N_RUNS (N_TEXTS + N_TEXTS / MAX_BATCH)
static void run_span(int r, int *first, int *n) {
    if (r < N_TEXTS) *first = r, *n = 1;
    else *first = (r - N_TEXTS) * MAX_BATCH, *n = MAX_BATCH;
}

typedef struct {
    const qb_model *m;
    int labels, threads, rounds, start;
    const float *want; /* [N_RUNS][MAX_BATCH][labels] */
    float *got;        /* one run's logits (the reference fills want through it) */
    int mismatches, errors;
    char msg[512];
} worker;

/* Runs run r on s; false (and w->msg) on an error. */
static bool run_one(worker *w, qb_session *s, qb_encoding *enc, int r) {
    qb_error err = {0};
    const qb_encoding *encp[MAX_BATCH];
    int first, n;
    run_span(r, &first, &n);
    for (int b = 0; b < n; b++) {
        if (qb_tokenize(w->m, texts[first + b], strlen(texts[first + b]), NULL, 0, 64, &enc[b], &err)) break;
        encp[b] = &enc[b];
    }
    if (!err.msg[0]) qb_session_run_encodings(s, encp, n, &err);
    if (err.msg[0]) {
        snprintf(w->msg, sizeof w->msg, "%s", err.msg);
        return false;
    }
    for (int b = 0; b < n; b++) memcpy(w->got + (size_t)b * w->labels, qb_session_logits(s, b), w->labels * sizeof(float));
    return true;
}

static void *work(void *arg) {
    worker *w = arg;
    qb_error err = {0};
    qb_session *s = NULL;
    qb_session_params sp = {.max_batch = MAX_BATCH, .max_seq = 64, .n_threads = w->threads};
    qb_encoding enc[MAX_BATCH] = {0};
    if (qb_session_create(w->m, &sp, &s, &err)) {
        snprintf(w->msg, sizeof w->msg, "%s", err.msg);
        w->errors++;
        return NULL;
    }
    size_t per_run = (size_t)MAX_BATCH * w->labels;
    for (int k = 0; k < w->rounds * N_RUNS; k++) {
        int r = (w->start + k) % N_RUNS, first, n;
        run_span(r, &first, &n);
        if (qb_session_set_threads(s, 1 + k % 2, &err)) {
            snprintf(w->msg, sizeof w->msg, "%s", err.msg);
            w->errors++;
            break;
        }
        if (!run_one(w, s, enc, r)) {
            w->errors++;
            break;
        }
        w->mismatches += memcmp(w->got, w->want + r * per_run, (size_t)n * w->labels * sizeof(float)) != 0;
    }
    for (int b = 0; b < MAX_BATCH; b++) qb_encoding_free(&enc[b]);
    qb_session_free(s);
    return NULL;
}

/* The reference runs on a model packed on one thread, the workers on one
 * packed on three: the load's packing must not depend on its threads. */
static void check_model(const char *dir, const char *name, int rounds) {
    qb_model *m = NULL, *m1 = NULL;
    qb_error err = {0};
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = 1;
    CHECK(qb_model_load(dir, &lp, &m1, &err) == QB_OK, "%s", err.msg);
    lp.n_threads = 3;
    CHECK(qb_model_load(dir, &lp, &m, &err) == QB_OK, "%s", err.msg);
    if (!m || !m1) {
        qb_model_free(m1);
        qb_model_free(m);
        return;
    }
    qb_model_info in;
    qb_model_get_info(m, &in);
    size_t per_run = (size_t)MAX_BATCH * in.num_labels;
    float *want = calloc(N_RUNS * per_run, sizeof *want);
    float *got = calloc((size_t)(N_WORKERS + 1) * per_run, sizeof *got);

    /* the reference: one session, one thread */
    worker ref = {.m = m1, .labels = in.num_labels, .threads = 1, .rounds = 1, .want = want, .got = got};
    qb_session *s = NULL;
    qb_session_params sp = {.max_batch = MAX_BATCH, .max_seq = 64, .n_threads = 1};
    qb_encoding enc[MAX_BATCH] = {0};
    CHECK(qb_session_create(m1, &sp, &s, &err) == QB_OK, "%s", err.msg);
    for (int r = 0; s && r < N_RUNS; r++) {
        CHECK(run_one(&ref, s, enc, r), "%s reference run %d: %s", name, r, ref.msg);
        memcpy(want + r * per_run, got, per_run * sizeof *got);
    }
    for (int b = 0; b < MAX_BATCH; b++) qb_encoding_free(&enc[b]);
    CHECK(s && qb_session_set_threads(s, 2, &err) == QB_ERR_ARG && strstr(err.msg, "not in 1..1"),
          "a 1-thread session took 2 threads: '%s'", err.msg);
    qb_session_free(s);

    worker w[N_WORKERS];
    pthread_t tid[N_WORKERS];
    for (int t = 0; t < N_WORKERS; t++) {
        w[t] = (worker){.m = m, .labels = in.num_labels, .threads = 2, .rounds = rounds, .start = 3 * t,
                        .want = want, .got = got + (size_t)(t + 1) * per_run};
        CHECK(pthread_create(&tid[t], NULL, work, &w[t]) == 0, "cannot start thread %d", t);
    }
    int mismatches = 0;
    for (int t = 0; t < N_WORKERS; t++) {
        pthread_join(tid[t], NULL);
        CHECK(w[t].errors == 0, "%s thread %d: %s", name, t, w[t].msg);
        mismatches += w[t].mismatches;
    }
    CHECK(mismatches == 0, "%s: %d of %d runs in threads differ from the single-threaded run", name, mismatches,
          N_WORKERS * rounds * N_RUNS);
    printf("  %-6s %d threads x %d sessions of 2 threads (every other run on 1) on a model packed on 3 threads, "
           "%d runs each: %d differ from one thread on a model packed on 1\n",
           name, N_WORKERS, N_WORKERS, rounds * N_RUNS, mismatches);
    free(want);
    free(got);
    qb_model_free(m);
    qb_model_free(m1);
}

int main(void) {
    char fp32[4096];
    qb_test_shared_path(fp32, sizeof fp32, "models/bert-mini-sst2");
    int rounds = getenv("QB_SANITIZE") ? 1 : 4;
    check_model(fp32, "fp32", rounds);

    char tmp[] = "/tmp/qb_test_threads_XXXXXX", int8[4200];
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(int8, sizeof int8, "%s/int8", tmp);
    qb_model *m = NULL;
    qb_error err = {0};
    CHECK(qb_model_load(fp32, NULL, &m, &err) == QB_OK, "%s", err.msg);
    qb_quant_params qp = qb_quant_default_params(QB_QUANT_DYNAMIC);
    qp.n_threads = 2;
    bool quantized = m && qb_quantize(m, &qp, int8, NULL, &err) == QB_OK;
    CHECK(quantized, "quantize: %s", err.msg);
    qb_model_free(m);
    if (quantized) check_model(int8, "int8", rounds);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0, "%s", cmd);
    return qb_test_done("test_threads");
}
