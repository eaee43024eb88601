/* qb_evaluate: a model over a labelled dataset.  Sequence tasks score each
 * example's argmax; NER scores each word's tag taken from its first
 * sub-token, and entity spans with conlleval's rules. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/escape.h"
#include "eval/dataset.h"
#include "eval/metrics.h"
#include "model/model.h"

qb_eval_params qb_eval_default_params(void) {
    qb_eval_params p = {.task = "auto", .text_col = QB_COLUMN_AUTO, .pair_col = QB_COLUMN_AUTO,
                        .label_col = QB_COLUMN_AUTO, .header = -1, .max_length = 0, .batch = 16};
    return p;
}

typedef struct {
    const qb_model *m;
    const qb_eval_params *p;
    const qb_dataset *ds;
    qb_session *s, *ref_s;
    qb_confusion conf;
    qb_entity_counts ent;
    qb_eval_result *r;
    qb_encoding *enc;
    const qb_encoding **encp;
    const char **gold, **pred; /* NER: one sentence's scored tags */
    double signal, noise, kl_sum, cos_sum; /* logits against the reference's */
} evaluator;

/* A dataset label names a model label (id2label) or is its integer id. */
static int label_id(const evaluator *e, const qb_example *x, qb_error *err) {
    int id = qb_model_label_find(e->m, x->label), n = e->m->cfg.num_labels;
    if (id < 0) {
        char names[256] = "", name[64], label[128];
        for (int i = 0; i < n && strlen(names) < 200; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     qb_escape_str(name, sizeof name, qb_model_label(e->m, i)));
        qb_fail(err, QB_ERR_FORMAT, "%s:%d: label '%s' is not one of the model's labels (%s) or their ids",
                e->ds->path, x->line, qb_escape_str(label, sizeof label, x->label), names);
    }
    return id;
}

/* log-sum-exp in double: the KL of two nearly equal distributions is a
 * small difference of large terms. */
static double log_sum_exp(const float *x, int n) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) s += exp(x[i] - mx);
    return mx + log(s);
}

static void compare_with_reference(evaluator *e, int pred, const float *logits, const float *ref) {
    int L = e->m->cfg.num_labels;
    e->r->agreement += pred == qb_argmax(ref, L);
    e->r->agreement_n++;
    double lq = log_sum_exp(logits, L), lr = log_sum_exp(ref, L), dot = 0, rr = 0, qq = 0;
    for (int i = 0; i < L; i++) {
        double d = (double)ref[i] - logits[i];
        e->signal += (double)ref[i] * ref[i];
        e->noise += d * d;
        e->kl_sum += exp(ref[i] - lr) * ((ref[i] - lr) - (logits[i] - lq));
        dot += (double)ref[i] * logits[i], rr += (double)ref[i] * ref[i], qq += (double)logits[i] * logits[i];
    }
    /* Two all-zero vectors point the same way; one alone points nowhere. */
    e->cos_sum += rr > 0 && qq > 0 ? dot / sqrt(rr * qq) : rr == qq;
}

static qb_status eval_sequence_batch(evaluator *e, int first, int n, qb_error *err) {
    for (int k = 0; k < n; k++) {
        qb_status st = qb_example_tokenize(e->m, e->ds, &e->ds->ex[first + k], e->r->max_length, &e->enc[k], err);
        if (st) return st;
        e->r->n_truncated += e->enc[k].n_truncated > 0;
        e->encp[k] = &e->enc[k];
    }
    qb_status st = qb_session_run_encodings(e->s, e->encp, n, err);
    if (!st && e->ref_s) st = qb_session_run_encodings(e->ref_s, e->encp, n, err);
    for (int k = 0; !st && k < n; k++) {
        int gold = label_id(e, &e->ds->ex[first + k], err), L = e->m->cfg.num_labels;
        if (gold < 0) return err->code;
        int pred = qb_argmax(qb_session_logits(e->s, k), L);
        qb_confusion_add(&e->conf, gold, pred);
        if (e->ref_s) compare_with_reference(e, pred, qb_session_logits(e->s, k), qb_session_logits(e->ref_s, k));
    }
    return st;
}

static qb_status eval_sentence(evaluator *e, const qb_example *x, qb_error *err) {
    qb_encoding *enc = &e->enc[0];
    qb_status st = qb_example_tokenize(e->m, e->ds, x, e->r->max_length, enc, err);
    if (st) return st;
    e->r->n_truncated += enc->n_truncated > 0;
    e->encp[0] = enc;
    if ((st = qb_session_run_encodings(e->s, e->encp, 1, err))) return st;
    if (e->ref_s && (st = qb_session_run_encodings(e->ref_s, e->encp, 1, err))) return st;
    const float *logits = qb_session_logits(e->s, 0);
    const float *ref = e->ref_s ? qb_session_logits(e->ref_s, 0) : NULL;
    int L = e->m->cfg.num_labels, n = 0;
    for (int w = 0, t = 0; w < x->n_words; w++) {
        while (t < enc->n && enc->word_ids[t] < w) t++;
        if (t >= enc->n || enc->word_ids[t] != w) { /* cut by max_length only if no later word has tokens */
            e->r->words_unscored++;
            e->r->words_tokenless += t < enc->n || !enc->n_truncated;
            continue;
        }
        int gold = qb_model_label_id(e->m, x->tags[w]);
        if (gold < 0)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: tag '%s' is not one of the model's labels", e->ds->path,
                           x->line + w, x->tags[w]);
        int pred = qb_argmax(logits + (size_t)t * L, L);
        qb_confusion_add(&e->conf, gold, pred);
        if (ref) compare_with_reference(e, pred, logits + (size_t)t * L, ref + (size_t)t * L);
        e->gold[n] = x->tags[w];
        e->pred[n++] = qb_model_label(e->m, pred);
    }
    qb_entity_add(&e->ent, e->gold, e->pred, n);
    return QB_OK;
}

static qb_status check_fit(const evaluator *e, qb_error *err) {
    bool conll = e->ds->format == QB_DATA_CONLL, token = e->m->cfg.task == QB_TASK_TOKEN;
    if (e->m->cfg.task == QB_TASK_NONE || e->m->cfg.task == QB_TASK_MLM)
        return qb_fail(err, QB_ERR_ARG, "%s: a bare encoder (%s) has no classification head to evaluate", e->m->dir,
                       e->m->cfg.class_name);
    if (!token && (e->m->cfg.head_function == QB_HEAD_NONE || e->m->cfg.num_labels < 2))
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: its head gives %s, not classes: accuracy is not defined for it",
                       e->m->dir, e->m->cfg.head_function == QB_HEAD_NONE ? "regression outputs" : "one score");
    if (conll && !token)
        return qb_fail(err, QB_ERR_ARG, "%s: CoNLL token tags, but %s is a sequence-classification model",
                       e->ds->path, e->m->dir);
    if (!conll && token)
        return qb_fail(err, QB_ERR_ARG, "%s: sentence labels, but %s is a token-classification model (needs CoNLL)",
                       e->ds->path, e->m->dir);
    for (int i = 0; !conll && i < e->ds->n; i++)
        if (!e->ds->ex[i].label)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: example has no label", e->ds->path, e->ds->ex[i].line);
    const qb_model *ref = e->p->reference;
    if (ref && (ref->cfg.num_labels != e->m->cfg.num_labels || ref->cfg.task != e->m->cfg.task))
        return qb_fail(err, QB_ERR_ARG, "reference %s has other labels or another task than %s", ref->dir, e->m->dir);
    if (e->r->max_length > e->m->cfg.max_position)
        return qb_fail(err, QB_ERR_ARG, "max_length %d exceeds the %d positions of %s", e->r->max_length,
                       e->m->cfg.max_position, e->m->dir);
    if (ref && e->r->max_length > ref->cfg.max_position)
        return qb_fail(err, QB_ERR_ARG, "max_length %d exceeds the %d positions of the reference model %s (use "
                       "--max-length %d)", e->r->max_length, ref->cfg.max_position, ref->dir, ref->cfg.max_position);
    return QB_OK;
}

static qb_status run_all(evaluator *e, qb_error *err) {
    const qb_dataset *ds = e->ds;
    bool token = e->m->cfg.task == QB_TASK_TOKEN;
    int step = token ? 1 : e->p->batch;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < ds->n; i += step) {
        int n = ds->n - i < step ? ds->n - i : step;
        st = token ? eval_sentence(e, &ds->ex[i], err) : eval_sequence_batch(e, i, n, err);
        if (e->p->progress) e->p->progress(e->p->progress_ctx, "eval", i + n, ds->n);
    }
    return st;
}

static void fill_result(evaluator *e) {
    qb_eval_result *r = e->r;
    const qb_confusion *c = &e->conf;
    r->token_task = e->m->cfg.task == QB_TASK_TOKEN;
    r->accuracy = qb_confusion_accuracy(c);
    r->macro_f1 = qb_confusion_macro_f1(c);
    r->total = c->n;
    r->correct = (long long)(r->accuracy * c->n + 0.5);
    r->entity_f1 = qb_entity_f1(&e->ent);
    r->entity_precision = qb_entity_precision(&e->ent);
    r->entity_recall = qb_entity_recall(&e->ent);
    r->entity_gold = e->ent.n_gold;
    r->entity_pred = e->ent.n_pred;
    r->entity_tp = e->ent.tp;
    qb_entity_sort_types(&e->ent);
    for (int i = 0; i < e->ent.n_types && i < 32; i++) {
        const qb_entity_type_counts *t = &e->ent.types[i];
        struct qb_entity_score *o = &r->entity_types[r->n_entity_types++];
        snprintf(o->type, sizeof o->type, "%s", t->name);
        o->f1 = qb_entity_type_f1(t);
        o->precision = t->n_pred ? (double)t->tp / (double)t->n_pred : 0;
        o->recall = t->n_gold ? (double)t->tp / (double)t->n_gold : 0;
        o->gold = t->n_gold, o->pred = t->n_pred, o->tp = t->tp;
    }
    r->agreement = r->agreement_n ? r->agreement / r->agreement_n : NAN;
    r->sqnr_db = !r->agreement_n ? NAN : e->noise > 0 ? 10 * log10(e->signal / e->noise) : INFINITY;
    r->kl = r->agreement_n ? e->kl_sum / r->agreement_n : NAN;
    r->cosine = r->agreement_n ? e->cos_sum / r->agreement_n : NAN;
    for (int k = 0; k < r->n_classes; k++) {
        qb_class_score s = qb_confusion_class(c, k);
        r->precision[k] = s.precision;
        r->recall[k] = s.recall;
        r->f1[k] = s.f1;
        r->support[k] = s.support;
    }
}

static qb_status prepare(evaluator *e, qb_error *err) {
    const qb_eval_params *p = e->p;
    int maxw = 1, L = e->m->cfg.num_labels;
    for (int i = 0; i < e->ds->n; i++) maxw = e->ds->ex[i].n_words > maxw ? e->ds->ex[i].n_words : maxw;
    e->enc = calloc((size_t)p->batch, sizeof *e->enc);
    e->encp = calloc((size_t)p->batch, sizeof *e->encp);
    e->gold = calloc((size_t)maxw, sizeof *e->gold);
    e->pred = calloc((size_t)maxw, sizeof *e->pred);
    e->r->precision = calloc((size_t)L, sizeof(double));
    e->r->recall = calloc((size_t)L, sizeof(double));
    e->r->f1 = calloc((size_t)L, sizeof(double));
    e->r->support = calloc((size_t)L, sizeof(long long));
    e->r->n_classes = L;
    if (!e->enc || !e->encp || !e->gold || !e->pred || !e->r->precision || !e->r->recall || !e->r->f1 ||
        !e->r->support)
        return qb_fail(err, QB_ERR_NOMEM, "eval: out of memory");
    qb_session_params sp = {.max_batch = p->batch, .max_seq = e->r->max_length, .n_threads = p->n_threads};
    qb_status st = check_fit(e, err);
    if (!st) st = qb_confusion_init(&e->conf, L);
    if (!st) st = qb_session_create(e->m, &sp, &e->s, err);
    if (!st && p->reference) st = qb_session_create(p->reference, &sp, &e->ref_s, err);
    return st;
}

qb_status qb_evaluate(const qb_model *m, const qb_eval_params *p, qb_eval_result *r, qb_error *err) {
    memset(r, 0, sizeof *r);
    if (!p->data) return qb_fail(err, QB_ERR_ARG, "eval: no dataset given");
    int max_length = qb_model_max_length(m, p->max_length);
    if (p->batch < 1 || max_length < 3) return qb_fail(err, QB_ERR_ARG, "eval: batch >= 1 and max_length >= 3");
    qb_data_format fmt;
    /* a column left to the file: the header's name, else the default layout */
    bool chosen = p->text_col != QB_COLUMN_AUTO || p->pair_col != QB_COLUMN_AUTO ||
                  p->label_col != QB_COLUMN_AUTO || p->header != -1;
    qb_tsv_columns cols = {p->text_col == QB_COLUMN_AUTO ? 0 : p->text_col,
                           p->pair_col == QB_COLUMN_AUTO ? -1 : p->pair_col,
                           p->label_col == QB_COLUMN_AUTO ? 1 : p->label_col, p->header};
    qb_dataset ds = {0};
    qb_status st = qb_data_format_parse(p->task, &fmt, err);
    if (!st) st = qb_dataset_load(p->data, fmt, chosen ? &cols : NULL, p->limit, &ds, err);
    if (st) return st;
    evaluator e = {.m = m, .p = p, .ds = &ds, .r = r};
    r->max_length = max_length;
    snprintf(r->task, sizeof r->task, "%s", qb_data_format_name(ds.format));
    r->n = ds.n;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = prepare(&e, err);
    if (!st) st = run_all(&e, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (!st) fill_result(&e);
    for (int k = 0; e.enc && k < p->batch; k++) qb_encoding_free(&e.enc[k]);
    free(e.enc);
    free(e.encp);
    free(e.gold);
    free(e.pred);
    qb_confusion_free(&e.conf);
    qb_session_free(e.s);
    qb_session_free(e.ref_s);
    qb_dataset_free(&ds);
    if (st) qb_eval_result_free(r);
    return st;
}

void qb_eval_result_free(qb_eval_result *r) {
    if (!r) return;
    free(r->precision);
    free(r->recall);
    free(r->f1);
    free(r->support);
    r->precision = r->recall = r->f1 = NULL;
    r->support = NULL;
}
