/* Training-speed benchmark: times qbert's full training step (zero_grad,
 * forward with dropout, backward, clipped AdamW) over one epoch's
 * length-bucketed batches, as `qbert train` makes them.
 *
 *   bench_train MODEL_DIR --data TSV [--limit N] [--batch B] [--max-length L]
 *               [--threads N] [--steps-warmup N] [--dump FILE] [--json]
 *
 * --dump writes the padded batches so bench/train_torch.py trains PyTorch
 * on exactly the same ones (bench/compare_train.sh runs both).  Layout,
 * little-endian:
 *     u32 magic 0x42525451 ("QTRB"), u32 version 1, u32 n_batches
 *     per batch: u32 B, u32 S, i32 ids[B*S], i32 types[B*S],
 *                i32 lengths[B], i32 labels[B]
 *
 * Every batch is padded before the clock starts, so both sides time the
 * step alone.  Warm-up steps run the first batches (not timed), then every
 * batch is timed once; the weights keep training throughout, as in a run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "eval/dataset.h"
#include "train/train_data.h"
#include "train/trainer.h"
#include "measure.h"

#define BENCH_DUMP_MAGIC 0x42525451u
#define BENCH_DUMP_VERSION 1u

typedef struct {
    const char *model_dir, *data, *dump;
    int limit, batch, max_length, threads, warmup;
    bool json;
} bench_opts;

/* One padded batch; its arrays point into bench_batches.storage. */
typedef struct {
    qb_batch b;
    int32_t *labels;
} bench_batch;

typedef struct {
    bench_batch *v;
    int n;
    int32_t *storage;
    long examples, padded_tokens, real_tokens;
} bench_batches;

typedef struct {
    double *ms;              /* per timed step */
    int n;
    double seconds, loss_sum;
    float eval_loss;         /* batch 0, dropout off, before any update */
} bench_result;

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench_usage(void) {
    fprintf(stderr, "usage: bench_train MODEL_DIR --data TSV [--limit N (2048)] [--batch B (32)] "
                    "[--max-length L (66)] [--threads N (2)] [--steps-warmup N (3)] [--dump FILE] [--json]\n");
}

static bool bench_int_arg(const char *name, const char *s, int min, int *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < min || v > 1000000) {
        fprintf(stderr, "bench_train: %s needs an integer >= %d\n", name, min);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool bench_parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.limit = 2048, .batch = 32, .max_length = 66, .threads = 2, .warmup = 3};
    bool ok = true;
    for (int i = 1; ok && i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--data") && v) o->data = argv[++i];
        else if (!strcmp(a, "--dump") && v) o->dump = argv[++i];
        else if (!strcmp(a, "--limit")) ok = bench_int_arg(a, argv[++i], 1, &o->limit);
        else if (!strcmp(a, "--batch")) ok = bench_int_arg(a, argv[++i], 1, &o->batch);
        else if (!strcmp(a, "--max-length")) ok = bench_int_arg(a, argv[++i], 3, &o->max_length);
        else if (!strcmp(a, "--threads")) ok = bench_int_arg(a, argv[++i], 1, &o->threads);
        else if (!strcmp(a, "--steps-warmup")) ok = bench_int_arg(a, argv[++i], 0, &o->warmup);
        else if (a[0] != '-' && !o->model_dir) o->model_dir = a;
        else {
            fprintf(stderr, "bench_train: unexpected argument '%s'\n", a);
            ok = false;
        }
    }
    if (ok && (!o->model_dir || !o->data)) {
        fprintf(stderr, "bench_train: MODEL_DIR and --data are required\n");
        ok = false;
    }
    if (!ok) bench_usage();
    return ok;
}

/* A dataset label names a model label or is its integer id, as train.c reads it. */
static int bench_label_of(const void *ctx, const char *label) { return qb_model_label_find(ctx, label); }

/* Every example needs a label to train on (train.c learns this from
 * qb_label_set_collect, which the benchmark skips). */
static qb_status bench_check_labels(const qb_dataset *ds, qb_error *err) {
    for (int i = 0; i < ds->n; i++)
        if (!ds->ex[i].label)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: example has no label", ds->path, ds->ex[i].line);
    return QB_OK;
}

/* Pads example order[from .. to) as train.c's pad_batch does: S is the
 * longest example, ids and types padded with 0. */
static void bench_pad(const qb_train_set *s, const int *order, int from, int to, int32_t *mem, bench_batch *out) {
    int B = to - from, S = 1;
    for (int k = 0; k < B; k++) {
        int i = order[from + k];
        int n = (int)(s->start[i + 1] - s->start[i]);
        S = n > S ? n : S;
    }
    int32_t *ids = mem, *types = ids + (size_t)B * S, *lens = types + (size_t)B * S, *labels = lens + B;
    for (int k = 0; k < B; k++) {
        int i = order[from + k];
        int n = (int)(s->start[i + 1] - s->start[i]);
        lens[k] = n;
        labels[k] = s->labels[i];
        memcpy(ids + (size_t)k * S, s->ids + s->start[i], (size_t)n * sizeof *ids);
        memcpy(types + (size_t)k * S, s->types + s->start[i], (size_t)n * sizeof *types);
        memset(ids + (size_t)k * S + n, 0, (size_t)(S - n) * sizeof *ids);
        memset(types + (size_t)k * S + n, 0, (size_t)(S - n) * sizeof *types);
    }
    out->b = (qb_batch){.batch = B, .seq = S, .input_ids = ids, .token_type_ids = types, .lengths = lens};
    out->labels = labels;
}

static size_t bench_batch_ints(int B, int S) {
    return 2 * (size_t)B * (size_t)S + 2 * (size_t)B;
}

/* Epoch 0's batches (seed 42, as `qbert train`), all padded up front. */
static qb_status bench_make_batches(const qb_train_set *s, int batch, bench_batches *bs, qb_error *err) {
    int *order = malloc((size_t)s->n * sizeof *order), *bounds = malloc(((size_t)s->n + 2) * sizeof *bounds);
    int n = order && bounds ? qb_train_set_batches(s, batch, 42, 0, order, bounds) : -1;
    size_t total = 0;
    for (int b = 0; b < n; b++) {
        int S = 1;
        for (int k = bounds[b]; k < bounds[b + 1]; k++) {
            int len = (int)(s->start[order[k] + 1] - s->start[order[k]]);
            S = len > S ? len : S;
        }
        total += bench_batch_ints(bounds[b + 1] - bounds[b], S);
    }
    bs->v = n > 0 ? calloc((size_t)n, sizeof *bs->v) : NULL;
    bs->storage = n > 0 ? malloc(total * sizeof *bs->storage) : NULL;
    qb_status st = bs->v && bs->storage ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "bench_train: out of memory");
    int32_t *mem = bs->storage;
    for (int b = 0; !st && b < n; b++) {
        bench_batch *bb = &bs->v[b];
        bench_pad(s, order, bounds[b], bounds[b + 1], mem, bb);
        mem += bench_batch_ints(bb->b.batch, bb->b.seq);
        bs->examples += bb->b.batch;
        bs->padded_tokens += (long)bb->b.batch * bb->b.seq;
        for (int k = 0; k < bb->b.batch; k++) bs->real_tokens += bb->b.lengths[k];
    }
    bs->n = st ? 0 : n;
    free(order);
    free(bounds);
    return st;
}

static void bench_batches_free(bench_batches *bs) {
    free(bs->v);
    free(bs->storage);
}

static bool bench_write_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    return fwrite(b, 1, 4, f) == 4;
}

static bool bench_write_i32s(FILE *f, const int32_t *v, size_t n) {
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) ok = bench_write_u32(f, (uint32_t)v[i]);
    return ok;
}

static qb_status bench_dump(const bench_batches *bs, const char *path, qb_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return qb_fail(err, QB_ERR_IO, "%s: cannot create the batch dump", path);
    bool ok = bench_write_u32(f, BENCH_DUMP_MAGIC) && bench_write_u32(f, BENCH_DUMP_VERSION) &&
              bench_write_u32(f, (uint32_t)bs->n);
    for (int b = 0; ok && b < bs->n; b++) {
        const qb_batch *q = &bs->v[b].b;
        size_t BS = (size_t)q->batch * q->seq;
        ok = bench_write_u32(f, (uint32_t)q->batch) && bench_write_u32(f, (uint32_t)q->seq) &&
             bench_write_i32s(f, q->input_ids, BS) && bench_write_i32s(f, q->token_type_ids, BS) &&
             bench_write_i32s(f, q->lengths, (size_t)q->batch) &&
             bench_write_i32s(f, bs->v[b].labels, (size_t)q->batch);
    }
    if (fclose(f) != 0) ok = false;
    return ok ? QB_OK : qb_fail(err, QB_ERR_IO, "%s: write failed (disk full?)", path);
}

/* One full training step, the work `qbert train` does per batch. */
static qb_status bench_step(qb_trainer *t, const qb_adamw_params *ap, const bench_batch *bb, float *loss,
                            qb_error *err) {
    qb_trainer_zero_grad(t);
    qb_status st = qb_trainer_forward(t, &bb->b, bb->labels, true, loss, err);
    if (st) return st;
    qb_trainer_backward(t);
    return qb_trainer_step(t, ap, NULL, err);
}

static qb_status bench_run(qb_trainer *t, const bench_batches *bs, int warmup, bench_result *r, qb_error *err) {
    qb_adamw_params ap = qb_adamw_default_params();
    ap.lr = 2e-5f; /* constant: no schedule, every step costs the same */
    qb_status st = qb_trainer_forward(t, &bs->v[0].b, bs->v[0].labels, false, &r->eval_loss, err);
    for (int i = 0; !st && i < warmup; i++) {
        float loss;
        st = bench_step(t, &ap, &bs->v[i % bs->n], &loss, err);
    }
    r->ms = malloc((size_t)bs->n * sizeof *r->ms);
    if (!st && !r->ms) st = qb_fail(err, QB_ERR_NOMEM, "bench_train: out of memory");
    for (int b = 0; !st && b < bs->n; b++) {
        float loss = 0;
        double t0 = bench_now();
        st = bench_step(t, &ap, &bs->v[b], &loss, err);
        double dt = bench_now() - t0;
        r->ms[b] = 1e3 * dt;
        r->seconds += dt;
        r->loss_sum += loss;
        r->n = b + 1;
    }
    return st;
}

static void bench_report(const bench_opts *o, const bench_batches *bs, const bench_result *r) {
    double *ms = r->ms;
    double eps = (double)bs->examples / r->seconds, pad = (double)bs->padded_tokens / (double)bs->examples;
    double med = bench_quantile(ms, r->n, 0.5), p10 = bench_quantile(ms, r->n, 0.1);
    double p90 = bench_quantile(ms, r->n, 0.9), mean_loss = r->loss_sum / r->n;
    if (o->json) {
        printf("{\"engine\": \"qbert\", \"threads\": %d, \"batch\": %d, \"batches\": %d, \"examples\": %ld, "
               "\"mean_padded_len\": %.4f, \"real_tokens\": %ld, \"warmup_steps\": %d, \"eval_loss0\": %.8f, "
               "\"mean_train_loss\": %.6f, \"seconds\": %.4f, \"examples_per_s\": %.3f, \"ms_step_median\": %.3f, "
               "\"ms_step_p10\": %.3f, \"ms_step_p90\": %.3f, \"ms_step_min\": %.3f, \"ms_step_max\": %.3f}\n",
               o->threads, o->batch, bs->n, bs->examples, pad, bs->real_tokens, o->warmup, (double)r->eval_loss,
               mean_loss, r->seconds, eps, med, p10, p90, ms[0], ms[r->n - 1]);
        return;
    }
    printf("qbert training: %d threads, batch %d, %d batches, %ld examples, mean padded length %.4f "
           "(%ld real tokens)\n", o->threads, o->batch, bs->n, bs->examples, pad, bs->real_tokens);
    printf("  loss of batch 0, dropout off, before training: %.8f\n", (double)r->eval_loss);
    printf("  mean training loss over the timed steps: %.6f (dropout on)\n", mean_loss);
    printf("  %.2f examples/s  (%.3f s for %d steps after %d warm-up)\n", eps, r->seconds, r->n, o->warmup);
    printf("  ms/step: median %.2f, p10 %.2f, p90 %.2f, min %.2f, max %.2f\n", med, p10, p90, ms[0],
           ms[r->n - 1]);
}

/* Loads, tokenizes and batches; trains only when no step fails. */
static qb_status bench_main(const bench_opts *o, qb_error *err) {
    qb_model *m = NULL;
    qb_dataset ds = {0};
    qb_train_set set = {0};
    bench_batches bs = {0};
    bench_result r = {0};
    qb_trainer *t = NULL;
    qb_load_params lp = qb_load_default_params();
    qb_trainer_params tp = qb_trainer_default_params();
    tp.n_threads = o->threads;
    tp.seed = 42;
    qb_status st = qb_model_load(o->model_dir, &lp, &m, err);
    if (!st) st = qb_dataset_load(o->data, QB_DATA_AUTO, NULL, o->limit, &ds, err);
    if (!st && ds.format == QB_DATA_CONLL)
        st = qb_fail(err, QB_ERR_ARG, "%s: bench_train times sequence classification; CoNLL is a token task",
                     o->data);
    if (!st) st = bench_check_labels(&ds, err);
    if (!st) st = qb_trainer_create(m, &tp, &t, err);
    if (!st) st = qb_train_set_encode(m, &ds, o->max_length, bench_label_of, m, &set, err);
    if (!st) st = bench_make_batches(&set, o->batch, &bs, err);
    if (!st && bs.n == 0) st = qb_fail(err, QB_ERR_ARG, "%s: no batches", o->data);
    if (!st && o->dump) st = bench_dump(&bs, o->dump, err);
    if (!st) st = qb_trainer_reserve(t, o->batch, set.max_len, err);
    if (!st) st = bench_run(t, &bs, o->warmup, &r, err);
    if (!st) bench_report(o, &bs, &r);
    free(r.ms);
    bench_batches_free(&bs);
    qb_train_set_free(&set);
    qb_trainer_free(t);
    qb_dataset_free(&ds);
    qb_model_free(m);
    return st;
}

int main(int argc, char **argv) {
    bench_opts o;
    if (!bench_parse(argc, argv, &o)) return 2;
    qb_error err = {0};
    qb_status st = bench_main(&o, &err);
    if (st) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    return 0;
}
