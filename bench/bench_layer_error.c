/* Per-linear output error of quantized models against their FP32 original,
 * each linear in isolation: every linear of every quantized model runs on
 * exactly the inputs that linear sees in the FP32 model, over texts the
 * quantizer did not calibrate on.
 *
 *   bench_layer_error FP32_DIR DATA N QUANT_DIR... [--max-length L]
 *
 * Prints one TSV row per (linear, model): the mean squared output error
 * and the mean over output channels of |mean output shift| (what bias
 * correction removes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/linear_format.h"
#include "model/session.h"
#include "quant/calibrate.h"

#define MAX_MODELS 16

typedef struct {
    double sq;      /* sum of squared output errors */
    double *shift;  /* [out] sum of output errors */
    long rows;
} layer_err;

typedef struct {
    const qb_model *fp;
    qb_session *ref;                 /* runs the FP32 linears */
    int n;
    const qb_model *q[MAX_MODELS];
    qb_session *qs[MAX_MODELS];
    layer_err *err[MAX_MODELS];      /* [n_linears] */
    float *y_fp, *y_q;
    size_t cap;
} bench;

static void run_linear(qb_session *s, const qb_linear *l, const float *x, int rows, float *y) {
    qb_linear_io io = {.x = x, .rows = rows, .y = y, .act = QB_ACT_NONE};
    s->qa_for = NULL;
    l->fmt->run(s, l, &io);
}

static bool observe(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    bench *b = ctx;
    size_t need = (size_t)rows * l->out;
    if (output || need > b->cap) {
        if (!output) fprintf(stderr, "bench_layer_error: %d rows exceed the buffers; skipped\n", rows);
        return false;
    }
    run_linear(b->ref, l, x, rows, b->y_fp);
    for (int k = 0; k < b->n; k++) {
        const qb_linear *ql = b->q[k]->linears[l->id];
        layer_err *e = &b->err[k][l->id];
        run_linear(b->qs[k], ql, x, rows, b->y_q);
        for (size_t i = 0; i < need; i++) {
            double d = (double)b->y_q[i] - b->y_fp[i];
            e->sq += d * d;
            e->shift[i % (size_t)l->out] += d;
        }
        e->rows += rows;
    }
    return false;
}

static double mean_abs_shift(const layer_err *e, int out) {
    double s = 0;
    for (int j = 0; j < out; j++) s += fabs(e->shift[j] / (double)e->rows);
    return s / out;
}

static void report(const bench *b, char **names) {
    printf("linear\tmodel\tmse\tmean_abs_shift\n");
    for (int i = 0; i < b->fp->n_linears; i++) {
        const qb_linear *l = b->fp->linears[i];
        for (int k = 0; k < b->n; k++) {
            const layer_err *e = &b->err[k][i];
            if (!e->rows) continue;
            printf("%s\t%s\t%.6e\t%.6e\n", l->name, names[k], e->sq / ((double)e->rows * l->out),
                   mean_abs_shift(e, l->out));
        }
    }
}

static int fail(const char *what, const qb_error *err) {
    fprintf(stderr, "bench_layer_error: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    int max_length = 128, nq = 0;
    char *names[MAX_MODELS];
    const char *fp_dir = NULL, *data = NULL;
    int n_texts = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--max-length") && i + 1 < argc) max_length = atoi(argv[++i]);
        else if (!fp_dir) fp_dir = argv[i];
        else if (!data) data = argv[i];
        else if (!n_texts) n_texts = atoi(argv[i]);
        else if (nq < MAX_MODELS) names[nq++] = argv[i];
    }
    if (!fp_dir || !data || n_texts <= 0 || !nq) {
        fprintf(stderr, "usage: bench_layer_error FP32_DIR DATA N QUANT_DIR... [--max-length L]\n");
        return 2;
    }
    qb_error err = {0};
    qb_load_params lp = qb_load_default_params();
    qb_model *fp = NULL;
    if (qb_model_load(fp_dir, &lp, &fp, &err)) return fail(fp_dir, &err);
    bench b = {.fp = fp, .n = nq};
    qb_session_params sp = {.max_batch = 8, .max_seq = max_length};
    if (qb_session_create(fp, &sp, &b.ref, &err)) return fail(fp_dir, &err);
    for (int k = 0; k < nq; k++) {
        qb_model *q = NULL;
        if (qb_model_load(names[k], &lp, &q, &err) || qb_session_create(q, &sp, &b.qs[k], &err))
            return fail(names[k], &err);
        if (q->n_linears != fp->n_linears) {
            fprintf(stderr, "bench_layer_error: %s: not a quantization of %s\n", names[k], fp_dir);
            return 1;
        }
        b.q[k] = q;
        b.err[k] = calloc((size_t)fp->n_linears, sizeof *b.err[k]);
        for (int i = 0; i < fp->n_linears; i++) b.err[k][i].shift = calloc((size_t)fp->linears[i]->out, sizeof(double));
    }
    int widest = 0;
    for (int i = 0; i < fp->n_linears; i++) widest = fp->linears[i]->out > widest ? fp->linears[i]->out : widest;
    b.cap = (size_t)8 * max_length * widest;
    b.y_fp = malloc(b.cap * sizeof *b.y_fp);
    b.y_q = malloc(b.cap * sizeof *b.y_q);
    qb_quant_params p = qb_quant_default_params(QB_QUANT_STATIC);
    p.calib_file = data;
    p.calib_n = n_texts;
    p.max_length = max_length;
    if (qb_calib_pass(fp, &p, observe, &b, NULL, NULL, &err)) return fail(data, &err);
    report(&b, names);
    for (int k = 0; k < nq; k++) {
        for (int i = 0; i < fp->n_linears; i++) free(b.err[k][i].shift);
        free(b.err[k]);
        qb_session_free(b.qs[k]);
        qb_model_free((qb_model *)b.q[k]);
    }
    qb_session_free(b.ref);
    qb_model_free(fp);
    free(b.y_fp);
    free(b.y_q);
    return 0;
}
