/* The public API at its edges, as a C caller meets them: NULL and
 * out-of-range arguments are refused with a message naming the field, a
 * refused run leaves nothing stale to read, and the helpers accept what
 * cleanup code and empty inputs hand them. */
#include <stdio.h>
#include <string.h>

#include "qbert.h"
#include "test_util.h"

static void check_arguments(const char *dir, qb_model *m, qb_session *s) {
    qb_error err = {0};
    qb_model *none = NULL;
    CHECK(qb_model_load(NULL, NULL, &none, &err) == QB_ERR_ARG && !none, "load(NULL dir): %s", err.msg);
    CHECK(qb_model_load("x", NULL, NULL, &err) == QB_ERR_ARG, "load(NULL out): %s", err.msg);
    qb_load_params bad = {.n_threads = -3};
    CHECK(qb_model_load("x", &bad, &none, &err) == QB_ERR_ARG, "load(-3 threads): %s", err.msg);
    bad = (qb_load_params){.isa = "foo"};
    CHECK(qb_model_load(dir, &bad, &none, &err) == QB_ERR_ARG && strstr(err.msg, "isa=foo"),
          "load(isa foo): %s", err.msg);
    char file[4200];
    snprintf(file, sizeof file, "%s/config.json", dir);
    CHECK(qb_model_load(file, NULL, &none, &err) == QB_ERR_IO && strstr(err.msg, "config.json: not a directory"),
          "load(a file): %s", err.msg);
    qb_quant_params qp = qb_quant_default_params((qb_quant_method)42);
    CHECK(qb_quantize(m, &qp, "never", NULL, &err) == QB_ERR_ARG && strstr(err.msg, "unknown method 42"),
          "quantize(method 42): %s", err.msg);
    CHECK(qb_tokenize(m, "a", 1, NULL, 0, 16, NULL, &err) == QB_ERR_ARG, "tokenize(NULL encoding): %s", err.msg);
    qb_encoding e = {0};
    CHECK(qb_tokenize_word_pair(m, NULL, NULL, 16, &e, &err) == QB_ERR_ARG, "word_pair(NULL words): %s", err.msg);
    CHECK(qb_session_run(s, NULL, &err) == QB_ERR_ARG, "run(NULL batch): %s", err.msg);
    qb_batch no_ids = {.batch = 1, .seq = 2, .lengths = (const int32_t[]){2}};
    CHECK(qb_session_run(s, &no_ids, &err) == QB_ERR_ARG, "run(NULL input_ids): %s", err.msg);
    const qb_encoding *encs[2] = {&e, NULL};
    CHECK(qb_session_run_encodings(s, encs, 1, &err) == QB_ERR_ARG && strstr(err.msg, "no tokens"),
          "run_encodings(never tokenized): %s", err.msg);
    CHECK(qb_tokenize(m, "a", 1, NULL, 0, 16, &e, &err) == QB_OK, "%s", err.msg);
    CHECK(qb_session_run_encodings(s, encs, 2, &err) == QB_ERR_ARG && strstr(err.msg, "input 1: NULL"),
          "run_encodings(NULL entry): %s", err.msg);
    CHECK(qb_session_set_pooling(s, NULL, &err) == QB_ERR_ARG, "set_pooling(NULL): %s", err.msg);
    qb_encoding_free(&e);
    qb_eval_result_free(NULL);
}

/* A batch refused at its second row must not leave the first row's new
 * length beside the old run's outputs. */
static void check_failed_run(qb_session *s) {
    qb_error err = {0};
    const int32_t ids[2 * 8] = {101, 2204, 102, 0, 0, 0, 0, 0, 101, 2204, 2143, 2003, 2204, 102, 0, 0};
    qb_batch ok = {.batch = 2, .seq = 8, .input_ids = ids, .lengths = (const int32_t[]){3, 6}};
    CHECK(qb_session_run(s, &ok, &err) == QB_OK, "%s", err.msg);
    int n = 0;
    CHECK(qb_session_hidden(s, 0, &n) && n == 3 && qb_session_logits(s, 1), "run: row 0 has %d tokens", n);
    int32_t bad[2 * 10] = {101, 2204, 2204, 2204, 2204, 2204, 2204, 2204, 2204, 102, 101, 99999999, 102};
    qb_batch refused = {.batch = 2, .seq = 10, .input_ids = bad, .lengths = (const int32_t[]){10, 3}};
    CHECK(qb_session_run(s, &refused, &err) == QB_ERR_ARG, "bad id accepted");
    CHECK(!qb_session_hidden(s, 0, &n) && !qb_session_logits(s, 0),
          "after a refused run, row 0 still reads (%d tokens)", n);
}

static void check_summarize(void) {
    qb_latency l;
    memset(&l, 0xff, sizeof l);
    qb_latency_summarize(NULL, 0, &l);
    CHECK(l.p50_ms == 0 && l.min_ms == 0 && l.max_ms == 0 && l.mean_ms == 0, "summary of none: p50 %g", l.p50_ms);
    double ms[3] = {3, 1, 2};
    l = (qb_latency){.seq = 128, .batch = 8};
    qb_latency_summarize(ms, 3, &l);
    CHECK(l.p50_ms == 2 && l.min_ms == 1 && l.max_ms == 3, "summary of 3: p50 %g", l.p50_ms);
    CHECK(l.seq == 128 && l.batch == 8, "summary changed the shape to %d x %d", l.seq, l.batch);
}

int main(void) {
    char dir[4096];
    qb_test_shared_path(dir, sizeof dir, "models/bert-mini-sst2");
    qb_model *m = NULL;
    qb_session *s = NULL;
    qb_error err = {0};
    CHECK(qb_model_load(dir, NULL, &m, &err) == QB_OK, "%s", err.msg);
    qb_session_params sp = {.max_batch = 2, .max_seq = 16, .n_threads = 1};
    if (m) CHECK(qb_session_create(m, &sp, &s, &err) == QB_OK, "%s", err.msg);
    if (s) {
        check_arguments(dir, m, s);
        check_failed_run(s);
    }
    check_summarize();
    qb_session_free(s);
    qb_model_free(m);
    return qb_test_done("test_api");
}
