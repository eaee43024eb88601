#include "quant/calibrate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/sha256.h"
#include "eval/dataset.h"
#include "model/session.h"

#define CALIB_BINS 0 /* the observers' default (8192) */
/* "qbert_calibration": the format this build writes and reads.  2 added
 * "model_sha256"; a file without it cannot be matched to its model. */
#define CALIB_VERSION 2
#define CALIB_BATCH 8

/* A smoothed input is observed as its grid will see it: x_j * smooth[j]. */
static void observe_smoothed(qb_calib *c, const qb_linear *l, const float *smooth, const float *x, int rows) {
    float buf[4096];
    int per = (int)(sizeof buf / sizeof *buf) / l->in;
    float *tmp = per ? buf : malloc((size_t)l->in * sizeof *tmp);
    if (!per) per = 1;
    for (int r0 = 0; tmp && r0 < rows; r0 += per) {
        int n = rows - r0 < per ? rows - r0 : per;
        for (int r = 0; r < n; r++)
            for (int j = 0; j < l->in; j++) tmp[(size_t)r * l->in + j] = x[(size_t)(r0 + r) * l->in + j] * smooth[j];
        qb_tensor_stats_add(&c->stats[l->id], tmp, (size_t)n * l->in);
    }
    if (tmp != buf) free(tmp);
}

static bool observe(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    qb_calib *c = ctx;
    const float *smooth = c->smooth ? c->smooth[l->id] : NULL;
    if (output) qb_tensor_stats_add(&c->out_stats[l->id], x, (size_t)rows * l->out);
    else if (smooth) observe_smoothed(c, l, smooth, x, rows);
    else qb_tensor_stats_add(&c->stats[l->id], x, (size_t)rows * l->in);
    return false;
}

/* Whether a linear's statistics are kept: every input, and the outputs
 * attention reads. */
static bool kept(const qb_model *m, int i, bool outputs) {
    return !outputs || qb_model_attention_input(m, m->linears[i]);
}

static qb_status calib_alloc(const qb_model *m, qb_calib *c, qb_error *err) {
    memset(c, 0, sizeof *c);
    c->stats = calloc((size_t)m->n_linears, sizeof *c->stats);
    c->out_stats = calloc((size_t)m->n_linears, sizeof *c->out_stats);
    if (!c->stats || !c->out_stats) return qb_fail(err, QB_ERR_NOMEM, "calibration: out of memory");
    c->n = m->n_linears;
    for (int i = 0; i < c->n; i++) {
        qb_status st = qb_tensor_stats_init(&c->stats[i], CALIB_BINS);
        if (!st && kept(m, i, true)) st = qb_tensor_stats_init(&c->out_stats[i], CALIB_BINS);
        if (st) return qb_fail(err, st, "calibration: out of memory");
    }
    return QB_OK;
}

static qb_status tokenize_all(const qb_model *m, int max_length, qb_calib_texts *t, qb_error *err) {
    t->enc = calloc((size_t)t->ds.n, sizeof *t->enc);
    if (!t->enc) return qb_fail(err, QB_ERR_NOMEM, "calibration: out of memory");
    for (int i = 0; i < t->ds.n; i++) {
        qb_status st = qb_example_tokenize(m, &t->ds, &t->ds.ex[i], max_length, &t->enc[i], err);
        if (st) return st;
    }
    return QB_OK;
}

qb_status qb_calib_texts_open(const qb_model *m, const qb_quant_params *p, qb_calib_texts *t, qb_error *err) {
    *t = (qb_calib_texts){0};
    if (!p->calib_file) return qb_fail(err, QB_ERR_ARG, "this quantization needs calibration data (--calib FILE)");
    int want = p->calib_n > 0 ? p->calib_n : 512, max_length = qb_model_max_length(m, p->max_length);
    qb_status st = qb_dataset_load(p->calib_file, QB_DATA_AUTO, NULL, want, &t->ds, err);
    if (!st) st = tokenize_all(m, max_length, t, err);
    qb_session_params sp = {.max_batch = CALIB_BATCH, .max_seq = max_length, .n_threads = p->n_threads};
    if (!st) st = qb_session_create(m, &sp, &t->s, err);
    t->batches = (t->ds.n + CALIB_BATCH - 1) / CALIB_BATCH;
    return st;
}

qb_status qb_calib_texts_run(qb_calib_texts *t, int b, qb_linear_observer hook, void *ctx, const float *resume_x,
                             int resume_app, qb_error *err) {
    const qb_encoding *encp[CALIB_BATCH];
    int i0 = b * CALIB_BATCH, n = t->ds.n - i0 < CALIB_BATCH ? t->ds.n - i0 : CALIB_BATCH;
    for (int k = 0; k < n; k++) encp[k] = &t->enc[i0 + k];
    t->s->observe = hook;
    t->s->observe_ctx = ctx;
    t->s->resume_x = resume_x;
    t->s->resume_app = resume_app;
    return qb_session_run_encodings(t->s, encp, n, err);
}

void qb_calib_texts_close(qb_calib_texts *t) {
    qb_session_free(t->s);
    for (int i = 0; t->enc && i < t->ds.n; i++) qb_encoding_free(&t->enc[i]);
    free(t->enc);
    qb_dataset_free(&t->ds);
    *t = (qb_calib_texts){0};
}

qb_status qb_calib_pass(const qb_model *m, const qb_quant_params *p, qb_linear_observer hook, void *ctx,
                        const char *phase, int *used, qb_error *err) {
    qb_calib_texts t;
    qb_status st = qb_calib_texts_open(m, p, &t, err);
    for (int b = 0; !st && b < t.batches; b++) {
        st = qb_calib_texts_run(&t, b, hook, ctx, NULL, 0, err);
        int done = (b + 1) * CALIB_BATCH < t.ds.n ? (b + 1) * CALIB_BATCH : t.ds.n;
        if (p->progress && phase) p->progress(p->progress_ctx, phase, done, t.ds.n);
    }
    if (used) *used = t.ds.n;
    qb_calib_texts_close(&t);
    return st;
}

qb_status qb_calib_run(const qb_model *m, const qb_quant_params *p, const float *const *smooth, qb_calib *c,
                       qb_quant_report *rep, qb_error *err) {
    qb_status st = calib_alloc(m, c, err);
    if (st) return st;
    if (!p->calib_file) return qb_fail(err, QB_ERR_ARG, "static quantization needs calibration data (--calib FILE)");
    snprintf(c->source, sizeof c->source, "%s", p->calib_file);
    c->max_length = qb_model_max_length(m, p->max_length);
    if ((st = qb_sha256_file(p->calib_file, c->sha256, err))) return st;
    c->smooth = smooth;
    st = qb_calib_pass(m, p, observe, c, "calibrate", &c->used, err);
    c->has_outputs = !st;
    int want = p->calib_n > 0 ? p->calib_n : 512;
    if (!st && c->used < want && rep)
        snprintf(rep->warning, sizeof rep->warning, "%s has %d examples: calibrated on %d, not the %d asked",
                 p->calib_file, c->used, c->used, want);
    if (rep) rep->calib_used = c->used;
    return st;
}

/* {"<linear name>": stats, ...} over the kept linears; NULL when out of
 * memory. */
static json_t *stats_json(const qb_model *m, const qb_tensor_stats *stats, bool outputs) {
    json_t *o = json_object();
    bool ok = o != NULL;
    for (int i = 0; ok && i < m->n_linears; i++)
        if (kept(m, i, outputs)) ok = qb_json_set(o, m->linears[i]->name, qb_tensor_stats_to_json(&stats[i]));
    return qb_json_built(o, ok);
}

/* The sha256 of m's weights: statistics fit only the model they were
 * taken on, and another with the same layer names (any BERT of the same
 * depth) would read them without error.  Hashing bert-base's 440 MB takes
 * about 4 s, little beside calibrating or quantizing it. */
static qb_status model_fingerprint(const qb_model *m, char out[65], qb_error *err) {
    char path[4096];
    if (!qb_path_join(path, sizeof path, m->dir, "model.safetensors"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", m->dir);
    return qb_sha256_file(path, out, err);
}

/* One line without spaces: the largest JSON qbert writes (tens of MB for a
 * large model), read by machines. */
qb_status qb_calib_save(const qb_model *m, const qb_calib *c, const char *path, qb_error *err) {
    char model_sha[65];
    qb_status st = model_fingerprint(m, model_sha, err);
    if (st) return st;
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "qbert_calibration", json_integer(CALIB_VERSION)) &&
              qb_json_set(o, "model", qb_json_strn(m->dir, strlen(m->dir))) &&
              qb_json_set(o, "model_sha256", json_string(model_sha)) &&
              qb_json_set(o, "calib_file", qb_json_strn(c->source, strlen(c->source))) &&
              qb_json_set(o, "calib_sha256", json_string(c->sha256)) && qb_json_set(o, "n", json_integer(c->used)) &&
              qb_json_set(o, "max_length", json_integer(c->max_length)) &&
              qb_json_set(o, "linears", stats_json(m, c->stats, false)) &&
              qb_json_set(o, "outputs", stats_json(m, c->out_stats, true));
    st = ok ? qb_json_write_file(path, o, QB_JSON_COMPACT, err) : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    json_decref(o);
    return st;
}

/* The kept linears' statistics from object obj. */
static qb_status read_stats(const json_t *obj, const qb_model *m, qb_tensor_stats *stats, bool outputs,
                            const char *path, qb_error *err) {
    qb_status st = QB_OK;
    for (int i = 0; !st && i < m->n_linears; i++) {
        if (!kept(m, i, outputs)) continue;
        const json_t *t = json_object_get(obj, m->linears[i]->name);
        char what[4300];
        snprintf(what, sizeof what, "%s: %s '%s'", path, outputs ? "output of" : "linear", m->linears[i]->name);
        if (!t) st = qb_fail(err, QB_ERR_FORMAT, "%s: no statistics (calibrated on another model?)", what);
        else st = qb_tensor_stats_read_json(&stats[i], t, what, err);
    }
    return st;
}

/* The fields besides the statistics: a format this build reads, and a
 * text count that goes into config.json as it is. */
static qb_status read_header(const qb_model *m, const json_t *j, const char *path, qb_calib *c, qb_error *err) {
    int64_t v, n;
    if (!qb_json_int(json_object_get(j, "qbert_calibration"), &v) || v != CALIB_VERSION)
        return qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert calibration file of format %d (\"qbert_calibration\" "
                       "missing or another version): run qbert calibrate again", path, CALIB_VERSION);
    if (!qb_json_int(json_object_get(j, "n"), &n) || n < 1 || n > INT_MAX)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"n\" (the texts calibrated on) must be an integer from 1 to %d",
                       path, INT_MAX);
    c->used = (int)n;
    if (!qb_json_int(json_object_get(j, "max_length"), &n) || n < 3 || n > INT_MAX)
        return qb_fail(err, QB_ERR_FORMAT, "%s: \"max_length\" (the texts' truncation) must be an integer from 3 to %d",
                       path, INT_MAX);
    c->max_length = (int)n;
    char want[65];
    qb_status st = model_fingerprint(m, want, err);
    if (!st && !qb_json_str_eq(json_object_get(j, "model_sha256"), want))
        st = qb_fail(err, QB_ERR_ARG, "%s: calibrated on another model (its \"model_sha256\" is not the sha256 of "
                     "%s/model.safetensors): run qbert calibrate on this one", path, m->dir);
    return st;
}

qb_status qb_calib_load(const qb_model *m, const char *path, qb_calib *c, qb_error *err) {
    qb_status st = calib_alloc(m, c, err);
    if (st) return st;
    json_t *j = NULL;
    if ((st = qb_json_load_object(path, &j, err))) return st;
    st = read_header(m, j, path, c, err);
    const json_t *lin = json_object_get(j, "linears");
    if (!st && !json_is_object(lin))
        st = qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert calibration file (no \"linears\" object)", path);
    if (!st) st = read_stats(lin, m, c->stats, false, path, err);
    /* Files from before int8 attention have no "outputs": fine unless
     * int8 attention asks for them (the quantizer says so). */
    const json_t *outs = json_object_get(j, "outputs");
    c->has_outputs = !st && json_is_object(outs);
    if (c->has_outputs) st = read_stats(outs, m, c->out_stats, true, path, err);
    if (!st) {
        char *src = qb_json_strdup(json_object_get(j, "calib_file"), NULL);
        char *sha = qb_json_strdup(json_object_get(j, "calib_sha256"), NULL);
        snprintf(c->source, sizeof c->source, "%s", src ? src : path);
        snprintf(c->sha256, sizeof c->sha256, "%s", sha ? sha : "");
        free(src);
        free(sha);
    }
    json_decref(j);
    return st;
}

void qb_calib_free(qb_calib *c) {
    for (int i = 0; c->stats && i < c->n; i++) qb_tensor_stats_free(&c->stats[i]);
    for (int i = 0; c->out_stats && i < c->n; i++) qb_tensor_stats_free(&c->out_stats[i]);
    free(c->stats);
    free(c->out_stats);
    memset(c, 0, sizeof *c);
}
