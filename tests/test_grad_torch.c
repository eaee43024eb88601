/* qbert's backward pass against PyTorch's autograd on the same batch
 * (dumps written by tests/make_grad_dump.py; no torch needed here).
 *
 * Metric, per parameter tensor:
 *     max_i |g_qbert[i] - g_torch[i]| / max_i |g_torch[i]|
 * over every element (rows an embedding dump leaves out must be 0 in qbert
 * too).  Bars: that error <= 1e-4 for every tensor; |loss - loss_torch| <= 1e-5.
 * The attention key biases are the exception: their gradient is exactly 0
 * in exact arithmetic (softmax ignores a constant added to a row), so both
 * programs hold round-off noise there.  A tensor whose PyTorch gradient is
 * below 1e-6 * G (G: the model's largest |g_torch|) must instead have
 * max |g_qbert| <= 1e-5 * G.
 * Every trainer parameter must appear in the dump and vice versa; the
 * masked-LM dump's word embeddings carry the decoder's gradient and the
 * input side's summed.  QB_GRAD_VERBOSE=1 prints every tensor's error. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/trainer.h"

typedef struct {
    uint32_t batch, seq, task, n_labels;
    int32_t *ids, *types, *lens, *labels;
    float loss;
    uint32_t n_params;
    const unsigned char *params, *end;  /* the per-parameter records */
    unsigned char *buf;
} grad_dump;

typedef struct {
    const unsigned char *p, *end;
    bool ok;
} reader;

static void rd(reader *r, void *dst, size_t n) {
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p, n);
    r->p += n;
}

static int32_t *rd_i32s(reader *r, size_t n) {
    int32_t *a = calloc(n ? n : 1, sizeof *a);
    rd(r, a, n * sizeof *a);
    return a;
}

static bool dump_load(const char *path, grad_dump *d) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    d->buf = malloc((size_t)n);
    bool got = d->buf && fread(d->buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!got) return false;
    reader r = {d->buf, d->buf + n, true};
    uint32_t magic, version;
    rd(&r, &magic, 4);
    rd(&r, &version, 4);
    if (magic != 0x44524751u || (version != 1 && version != 2)) return false;
    rd(&r, &d->batch, 4);
    rd(&r, &d->seq, 4);
    rd(&r, &d->task, 4);
    if (d->task > (version == 1 ? 1u : 2u)) return false; /* 2, masked LM, came with version 2 */
    rd(&r, &d->n_labels, 4);
    size_t bs = (size_t)d->batch * d->seq;
    d->ids = rd_i32s(&r, bs);
    d->types = rd_i32s(&r, bs);
    d->lens = rd_i32s(&r, d->batch);
    d->labels = rd_i32s(&r, d->n_labels);
    rd(&r, &d->loss, 4);
    rd(&r, &d->n_params, 4);
    d->params = r.p;
    d->end = r.end;
    return r.ok;
}

static void dump_free(grad_dump *d) {
    free(d->ids);
    free(d->types);
    free(d->lens);
    free(d->labels);
    free(d->buf);
}

/* Compares one record with t's gradient (t NULL: only raises *global_max);
 * advances r past it.  Returns the tensor's error. */
static double compare_record(reader *r, qb_trainer *t, double *global_max, int *matched) {
    uint16_t len;
    char name[256];
    uint32_t ndim, n_rows;
    int64_t shape[4] = {0};
    rd(r, &len, 2);
    if (len >= sizeof name) len = sizeof name - 1;
    rd(r, name, len);
    name[len] = 0;
    rd(r, &ndim, 4);
    if (ndim > 4) ndim = 4;
    rd(r, shape, 8 * ndim);
    rd(r, &n_rows, 4);
    int64_t numel = 1;
    for (uint32_t i = 0; i < ndim; i++) numel *= shape[i];
    int64_t cols = ndim == 2 ? shape[1] : numel;
    float *ref = calloc((size_t)numel, sizeof *ref);
    if (n_rows == 0xffffffffu) {
        rd(r, ref, (size_t)numel * 4);
    } else {
        int32_t *rows = rd_i32s(r, n_rows);
        for (uint32_t i = 0; i < n_rows && r->ok; i++)
            if (rows[i] >= 0 && rows[i] < shape[0]) rd(r, ref + (size_t)rows[i] * cols, (size_t)cols * 4);
        free(rows);
    }
    if (!t) {
        for (int64_t i = 0; i < numel; i++) *global_max = fmax(*global_max, fabs(ref[i]));
        free(ref);
        return 0;
    }
    qb_tparam *p = qb_trainer_param(t, name);
    CHECK(p != NULL, "'%s' is in the dump but not in the trainer", name);
    double err = INFINITY;
    if (p && p->numel == numel) {
        double amax = 0, dmax = 0;
        for (int64_t i = 0; i < numel; i++) {
            amax = fmax(amax, fabs(ref[i]));
            dmax = fmax(dmax, fabs((double)p->g[i] - ref[i]));
        }
        (*matched)++;
        if (amax < 1e-6 * *global_max) { /* analytically zero */
            double qmax = 0;
            for (int64_t i = 0; i < numel; i++) qmax = fmax(qmax, fabs(p->g[i]));
            CHECK(qmax <= 1e-5 * *global_max, "'%s': gradient should be ~0, qbert has %.3g", name, qmax);
            free(ref);
            return 0;
        }
        err = dmax / amax;
    } else if (p) {
        CHECK(0, "'%s': %lld elements in the dump, %lld in the trainer", name, (long long)numel, (long long)p->numel);
    }
    CHECK(err <= 1e-4, "'%s': gradient error %.3g > 1e-4", name, err);
    if (getenv("QB_GRAD_VERBOSE")) printf("  %-52s %.3g\n", name, err);
    free(ref);
    return err;
}

/* mlm_chunk: the masked-LM decoder's rows a chunk (0: the trainer's
 * default); a small one makes backward recompute chunks. */
static void check_dump(const char *model_dir, const char *dump_path, int mlm_chunk) {
    qb_error err = {0};
    qb_model *m = NULL;
    grad_dump d;
    CHECK(dump_load(dump_path, &d), "%s: unreadable dump", dump_path);
    if (!d.buf || !d.params) {
        dump_free(&d);
        return;
    }
    qb_status st = qb_model_load(model_dir, NULL, &m, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    qb_trainer *t = NULL;
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = d.task == 2 ? QB_TASK_MLM : d.task ? QB_TASK_TOKEN : QB_TASK_SEQUENCE;
    tp.n_threads = 2;
    tp.mlm_chunk = mlm_chunk;
    if (!st) st = qb_trainer_create(m, &tp, &t, &err);
    if (!st) st = qb_trainer_reserve(t, (int)d.batch, (int)d.seq, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    float loss = 0;
    qb_batch b = {(int)d.batch, (int)d.seq, d.ids, d.types, d.lens};
    if (!st) st = qb_trainer_forward(t, &b, d.labels, false, &loss, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    if (!st) {
        qb_trainer_zero_grad(t);
        qb_trainer_backward(t);
        CHECK(fabsf(loss - d.loss) <= 1e-5f, "%s: loss %.7f, PyTorch %.7f", dump_path, loss, d.loss);
        reader r = {d.params, d.end, true};
        double worst = 0, global_max = 0;
        int matched = 0;
        for (uint32_t i = 0; i < d.n_params && r.ok; i++) compare_record(&r, NULL, &global_max, &matched);
        r.p = d.params;
        for (uint32_t i = 0; i < d.n_params && r.ok; i++)
            worst = fmax(worst, compare_record(&r, t, &global_max, &matched));
        CHECK(r.ok, "%s: truncated", dump_path);
        CHECK(matched == t->n_params, "%s: %d of the trainer's %d parameters in the dump", dump_path, matched,
              t->n_params);
        printf("%-40s loss %.7f (torch %.7f, |diff| %.2g), %d tensors, max grad error %.3g%s\n", dump_path, loss,
               d.loss, fabs((double)loss - d.loss), matched, worst, mlm_chunk ? " (decoder chunks of 2 rows)" : "");
    }
    qb_trainer_free(t);
    qb_model_free(m);
    dump_free(&d);
}

int main(void) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char model[4096], dump[4096];
    static const char *tiny[] = {"tiny-bert-seq", "tiny-bert-token", "tiny-albert-seq", "tiny-bert-mlm"};
    for (size_t i = 0; i < sizeof tiny / sizeof *tiny; i++) {
        snprintf(model, sizeof model, "%s/tests/data/%s", src, tiny[i]);
        snprintf(dump, sizeof dump, "%s/tests/data/grad-dump-%s.bin", src, tiny[i]);
        check_dump(model, dump, 0);
        if (strstr(tiny[i], "mlm")) check_dump(model, dump, 2);
    }
    if (qb_test_failures) return qb_test_done("test_grad_torch"); /* not hidden by a skip below */
    static const char *mini[][2] = {{"models/bert-mini-sst2", "bert-mini"}, {"models/albert-mini-sst2", "albert-mini"}};
    for (size_t i = 0; i < 2; i++) {
        qb_test_shared_path(model, sizeof model, mini[i][0]);
        snprintf(dump, sizeof dump, "%s/tests/data/grad-dump-%s.bin", src, mini[i][1]);
        check_dump(model, dump, 0);
    }
    return qb_test_done("test_grad_torch");
}
