/* One short text through the C API, call after call, as the Python
 * binding's predict() does it (tokenize, run, read the logits): the
 * baseline bench/python_overhead.py holds the binding against.
 * usage: bench_call MODEL_DIR TEXT CALLS THREADS -> median microseconds */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "qbert.h"

int main(int argc, char **argv) {
    if (argc != 5) return fprintf(stderr, "usage: bench_call MODEL_DIR TEXT CALLS THREADS\n"), 2;
    int calls = atoi(argv[3]);
    qb_error err = {0};
    qb_model *m = NULL;
    qb_session *s = NULL;
    qb_encoding e = {0};
    const qb_encoding *ep = &e;
    double *us = calloc(calls > 0 ? (size_t)calls : 1, sizeof *us);
    if (!us || qb_model_load(argv[1], NULL, &m, &err)) return fprintf(stderr, "bench_call: %s\n", err.msg), 1;
    /* the binding's session: its default batch of 8, the model's length */
    qb_session_params sp = {.max_batch = 8, .max_seq = qb_model_max_length(m, 0), .n_threads = atoi(argv[4])};
    if (qb_session_create(m, &sp, &s, &err)) return fprintf(stderr, "bench_call: %s\n", err.msg), 1;
    qb_model_info info;
    qb_model_get_info(m, &info);
    volatile int sink = 0;
    for (int i = -10; i < calls; i++) { /* 10 warm-up calls */
        double t = bench_seconds();
        if (qb_tokenize(m, argv[2], strlen(argv[2]), NULL, 0, sp.max_seq, &e, &err) ||
            qb_session_run_encodings(s, &ep, 1, &err))
            return fprintf(stderr, "bench_call: %s\n", err.msg), 1;
        sink += qb_argmax(qb_session_logits(s, 0), info.num_labels);
        if (i >= 0) us[i] = (bench_seconds() - t) * 1e6;
    }
    printf("%.2f\n", bench_quantile(us, calls, 0.5));
    qb_encoding_free(&e);
    qb_session_free(s);
    qb_model_free(m);
    free(us);
    return 0;
}
