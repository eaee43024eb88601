/* qb_train: FP32 fine-tuning and QAT.  Load, decide the head from the
 * data's labels, tokenize once, then per epoch: length-bucketed batches
 * through forward/backward/AdamW, the epoch's weights written to a staging
 * directory (QAT: converted to the int8 model there), scored on DEV by
 * qb_evaluate (the same code `qbert eval` runs), and renamed over OUT_DIR
 * only when they beat the best so far.  The training state is saved every
 * few hundred updates so an interrupted run can resume exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/sha256.h"
#include "quant/quantize.h"
#include "train/checkpoint.h"
#include "train/mlm_data.h"
#include "train/train_data.h"
#include "train/train_state.h"
#include "train/trainer.h"

qb_train_params qb_train_default_params(void) {
    qb_train_params p = {.task = "auto", .epochs = 3, .lr = 5e-5f, .batch = 16, .max_length = 0, .seed = 42,
                         .warmup_ratio = 0.1f, .weight_decay = 0.01f, .max_grad_norm = 1.0f,
                         .qat_bits = 8, .act_observer = "ema", .calib_batches = 16, .save_every = 200,
                         .temperature = 1.0f, .mlm_probability = 0.15f};
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Everything one run owns, freed in one place. */
typedef struct {
    const qb_train_params *p;
    const char *out_dir;
    qb_train_report *rep;
    qb_model *m;
    qb_dataset ds;
    qb_label_set labels;
    const char *const *names;  /* the head's labels: the model's or the data's */
    int n_names;
    bool own_head;             /* the checkpoint's classifier is kept */
    bool by_words;             /* token task whose DEV has no entities: word accuracy picks the best epoch */
    qb_trainer *t;
    qb_model *teacher_m;       /* --teacher DIR; NULL when the teacher is m itself */
    qb_trainer *teacher;       /* NULL: no distillation */
    qb_train_set set;
    int *order, *bounds;
    int32_t *ids, *types, *lens, *batch_labels;
    qb_outdir od;              /* the epoch being written, until it is kept or dropped */
    char out[4096];            /* OUT_DIR, normalized */
    char state_path[4200];
    char fingerprint[1024];
    qb_train_cursor at;
    /* masked-LM pre-training: texts instead of a dataset, DEV scored by its loss */
    bool mlm;
    qb_mlm_texts texts, dev_texts;
    qb_train_set dev_set;
    qb_mlm_masking mask;
    int *mask_scratch;
} run;

/* DEV's masks: fixed, whatever --seed, so held-out losses compare across
 * epochs and runs. */
enum { MLM_DEV_SEED = 1234 };

static bool is_mlm(const qb_train_params *p) { return p->task && !strcmp(p->task, "mlm"); }

static qb_status check_params(const char *model_dir, const qb_train_params *p, const char *out_dir, qb_error *err) {
    if (!p->data) return qb_fail(err, QB_ERR_ARG, "train: no training data given");
    if (!p->eval_data) return qb_fail(err, QB_ERR_ARG, "train: no DEV data given (it picks the best epoch)");
    if (!out_dir || !*out_dir) return qb_fail(err, QB_ERR_ARG, "train: no output directory given");
    if (p->epochs < 1 || p->batch < 1 || (p->max_length && p->max_length < 3))
        return qb_fail(err, QB_ERR_ARG, "train: epochs >= 1, batch >= 1 and max_length >= 3 (or 0: the model's)");
    if (!(p->lr > 0) || !isfinite(p->lr) || p->warmup_ratio < 0 || p->warmup_ratio > 1 || p->weight_decay < 0)
        return qb_fail(err, QB_ERR_ARG, "train: lr > 0, warmup ratio in [0, 1] and weight decay >= 0");
    const char *read[] = {p->data, p->eval_data, p->teacher};
    qb_status st = qb_outdir_check_inputs(out_dir, model_dir, read, 3, err);
    if (st) return st;
    if (p->qat && (p->qat_bits < 2 || p->qat_bits > 8))
        return qb_fail(err, QB_ERR_ARG, "qat: --bits %d is not in 2..8", p->qat_bits);
    if (p->qat && strcmp(p->act_observer, "ema") && strcmp(p->act_observer, "lsq"))
        return qb_fail(err, QB_ERR_ARG, "qat: --act-observer '%s' is not ema or lsq", p->act_observer);
    if (p->qat && p->calib_batches < 1) return qb_fail(err, QB_ERR_ARG, "qat: calibration needs >= 1 batch");
    bool lowbit = p->qat && (p->qat_ternary || p->qat_bits <= 4);
    if ((p->qat_group_size || p->qat_weight_zero_point) && !lowbit)
        return qb_fail(err, QB_ERR_ARG, "qat: --group-size and --weight-zero-point apply to --bits 4, 3, 2 or ternary");
    if (p->qat_group_size < -1) return qb_fail(err, QB_ERR_ARG, "qat: --group-size %d is not >= 1", p->qat_group_size);
    if (p->qat_ternary && p->qat_weight_zero_point)
        return qb_fail(err, QB_ERR_ARG, "qat: ternary weights are symmetric (no --weight-zero-point)");
    if (p->distill && (!(p->temperature > 0) || !isfinite(p->temperature)))
        return qb_fail(err, QB_ERR_ARG, "distill: --temperature %g is not > 0", (double)p->temperature);
    if (p->freeze_observers_after < 0 || p->save_every < 0)
        return qb_fail(err, QB_ERR_ARG, "train: --freeze-observers-after and --save-every must be >= 0");
    if (p->resume && !qb_file_exists(p->resume))
        return qb_fail(err, QB_ERR_IO, "%s: no such training state (--resume)", p->resume);
    if (p->resume && !qb_train_state_recognize(p->resume))
        return qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert training state (--resume)", p->resume);
    if (is_mlm(p) && p->new_head)
        return qb_fail(err, QB_ERR_ARG, "train: --new-head starts a fresh classifier; --task mlm trains the masked-LM "
                       "head the model has (or a fresh one where it has none)");
    if (!is_mlm(p) && p->whole_word_mask)
        return qb_fail(err, QB_ERR_ARG, "train: --whole-word-mask applies to --task mlm");
    if (is_mlm(p) && (p->qat || p->distill))
        return qb_fail(err, QB_ERR_ARG, "%s: --task mlm pre-trains in FP32 without a teacher (qbert train); QAT "
                       "and distillation fine-tune the result", p->qat ? "qat" : "distill");
    if (is_mlm(p) && !(p->mlm_probability > 0 && p->mlm_probability <= 1))
        return qb_fail(err, QB_ERR_ARG, "train: --mlm-probability %g is not in (0, 1]", (double)p->mlm_probability);
    return QB_OK;
}

/* The settings a resumed run must share with the one that saved the state. */
static void fingerprint(run *r, const char *model_dir) {
    const qb_train_params *p = r->p;
    snprintf(r->fingerprint, sizeof r->fingerprint,
             "model %s; data %s (limit %d); dev %s (limit %d); batch %d; epochs %d; lr %g; max_length %d; "
             "seed %llu; warmup %g; weight_decay %g; clip %g; threads %d; qat %d bits %d observer %s freeze %ld "
             "calib %d; ternary %d group %d zero %d; distill %d teacher %s hidden %d T %g; task %s p %g wwm %d",
             model_dir, p->data, p->limit, p->eval_data, p->eval_limit, p->batch, p->epochs, (double)p->lr,
             p->max_length,
             (unsigned long long)p->seed, (double)p->warmup_ratio, (double)p->weight_decay, (double)p->max_grad_norm,
             p->n_threads, p->qat, p->qat ? p->qat_bits : 0, p->qat ? p->act_observer : "-",
             p->qat ? p->freeze_observers_after : 0, p->qat ? p->calib_batches : 0, p->qat_ternary,
             p->qat_group_size, p->qat_weight_zero_point, p->distill, p->distill && p->teacher ? p->teacher : "-",
             p->distill_hidden, p->distill ? (double)p->temperature : 0.0, p->task ? p->task : "auto",
             (double)p->mlm_probability, p->whole_word_mask);
}

/* ---- labels: keep the checkpoint's head when it already speaks the data's labels */

/* A dataset label names a model label or is its integer id (as in eval). */
static int model_label_of(const void *ctx, const char *label) { return qb_model_label_find(ctx, label); }

static int set_label_of(const void *ctx, const char *label) {
    const qb_label_set *ls = ctx;
    for (int i = 0; i < ls->n; i++)
        if (!strcmp(ls->names[i], label)) return i;
    return -1;
}

/* Whether the training examples use tag (token tasks). */
static bool trained_tag(const qb_dataset *ds, const char *tag) {
    for (int i = 0; i < ds->n; i++)
        for (int w = 0; w < ds->ex[i].n_words; w++)
            if (!strcmp(ds->ex[i].tags[w], tag)) return true;
    return false;
}

/* DEV adds the tags a short --limit missed, but a tag neither the training
 * data nor the model's token head has (a typo, another tag set) would
 * throw that head away for a fresh one: refused. */
static qb_status check_dev_tags(const run *r, const char *dev, qb_error *err) {
    const qb_model *m = r->m;
    if (!r->labels.token_task || m->cfg.task != QB_TASK_TOKEN || r->p->new_head) return QB_OK;
    for (int i = 0; i < r->labels.n; i++) {
        const char *tag = r->labels.names[i];
        if (model_label_of(m, tag) < 0 && !trained_tag(&r->ds, tag))
            return qb_fail(err, QB_ERR_FORMAT, "%s: tag '%s' is in neither the training data %s nor %s's labels; it "
                           "would replace the trained head (--new-head if that is meant)", dev, tag, r->p->data, m->dir);
    }
    return QB_OK;
}

static void choose_head(run *r) {
    const qb_model *m = r->m;
    if (r->mlm) { /* the vocabulary is the head's labels */
        r->own_head = m->cfg.task == QB_TASK_MLM;
        return;
    }
    r->own_head = !r->p->new_head && (m->cfg.task == QB_TASK_SEQUENCE || m->cfg.task == QB_TASK_TOKEN) &&
                  (m->cfg.task == QB_TASK_TOKEN) == r->labels.token_task;
    for (int i = 0; r->own_head && i < r->labels.n; i++) r->own_head = model_label_of(m, r->labels.names[i]) >= 0;
    r->names = r->own_head ? (const char *const *)m->cfg.labels : (const char *const *)r->labels.names;
    r->n_names = r->own_head ? m->cfg.num_labels : r->labels.n;
}

/* ---- setup ------------------------------------------------------------ */

/* Masked LM: the texts, DEV's texts and a model whose tokenizer has a mask token. */
static qb_status load_mlm_inputs(run *r, const char *model_dir, qb_error *err) {
    const qb_train_params *p = r->p;
    qb_status st = qb_mlm_texts_load(p->data, p->limit, &r->texts, err);
    if (!st) st = qb_mlm_texts_load(p->eval_data, p->eval_limit, &r->dev_texts, err);
    if (st) return st;
    r->rep->n_eval = r->dev_texts.n;
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = r->p->n_threads;
    st = qb_model_load(model_dir, &lp, &r->m, err);
    if (!st && r->m->mask_id < 0)
        st = qb_fail(err, QB_ERR_FORMAT, "%s: the tokenizer has no mask token ([MASK] or <mask>) to pre-train with",
                     model_dir);
    if (st) return st;
    r->mask = (qb_mlm_masking){.probability = p->mlm_probability, .whole_word = p->whole_word_mask,
                               .mask_id = r->m->mask_id, .vocab_size = qb_tokenizer_vocab_size(r->m->tok),
                               .seed = p->seed};
    if (r->mask.vocab_size > r->m->cfg.vocab_size) r->mask.vocab_size = r->m->cfg.vocab_size;
    return QB_OK;
}

/* A tag of an entity span as the evaluator reads it (B-, I-, E-, S-). */
static bool entity_tag(const char *tag) { return tag && tag[0] && tag[1] == '-' && strchr("BIES", tag[0]); }

/* DEV is tokenized as qb_evaluate will, so a line it cannot read fails
 * before the first epoch, not after it; token tasks also learn whether
 * DEV has entities, without which entity F1 is 0 every epoch and word
 * accuracy must pick the best one. */
static qb_status check_dev(run *r, const qb_dataset *dev, qb_error *err) {
    qb_encoding enc = {0};
    int max_length = qb_model_max_length(r->m, r->p->max_length);
    bool entities = false;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < dev->n; i++) {
        const qb_example *x = &dev->ex[i];
        for (int w = 0; !entities && w < x->n_words; w++) entities = entity_tag(x->tags[w]);
        st = qb_example_tokenize(r->m, dev, x, max_length, &enc, err);
    }
    qb_encoding_free(&enc);
    r->by_words = dev->format == QB_DATA_CONLL && !entities;
    return st;
}

static qb_status load_inputs(run *r, const char *model_dir, qb_error *err) {
    const qb_train_params *p = r->p;
    if (r->mlm) return load_mlm_inputs(r, model_dir, err);
    qb_data_format fmt;
    qb_status st = qb_data_format_parse(p->task, &fmt, err);
    if (!st) st = qb_dataset_load(p->data, fmt, NULL, p->limit, &r->ds, err);
    if (st) return st;
    qb_dataset dev = {0};
    st = qb_dataset_load(p->eval_data, fmt, NULL, p->eval_limit, &dev, err); /* fail before training, not after */
    if (!st && (dev.format == QB_DATA_CONLL) != (r->ds.format == QB_DATA_CONLL))
        st = qb_fail(err, QB_ERR_ARG, "%s: DEV is %s but the training data %s is %s", p->eval_data,
                     qb_data_format_name(dev.format), p->data, qb_data_format_name(r->ds.format));
    r->rep->n_eval = dev.n;
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = r->p->n_threads;
    if (!st) st = qb_model_load(model_dir, &lp, &r->m, err);
    if (!st) st = qb_label_set_collect(&r->ds, &dev, &r->labels, err);
    if (!st) st = check_dev_tags(r, p->eval_data, err);
    if (!st) st = check_dev(r, &dev, err);
    qb_dataset_free(&dev);
    return st;
}

/* ---- the teacher: the FP32 model beside the student --------------------- */

/* "a, b, c" (the first few), for messages. */
static void label_list(char *buf, size_t cap, const char *const *names, int n) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n && at + 1 < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", i == 5 ? "..." : names[i]);
}

static qb_status check_teacher_labels(const run *r, const qb_model *tm, qb_error *err) {
    const qb_config *c = &tm->cfg;
    if (c->task != QB_TASK_SEQUENCE && c->task != QB_TASK_TOKEN)
        return qb_fail(err, QB_ERR_ARG, "%s: the teacher (%s) has no classification head to distil from; give one "
                       "fine-tuned on these labels (--teacher DIR)", tm->dir, c->class_name);
    bool same = (c->task == QB_TASK_TOKEN) == r->labels.token_task && c->num_labels == r->n_names;
    for (int i = 0; same && i < r->n_names; i++) same = c->labels[i] && !strcmp(c->labels[i], r->names[i]);
    if (same) return QB_OK;
    char want[160], got[160];
    label_list(want, sizeof want, r->names, r->n_names < 6 ? r->n_names : 6);
    label_list(got, sizeof got, (const char *const *)c->labels, c->num_labels < 6 ? c->num_labels : 6);
    return qb_fail(err, QB_ERR_ARG, "%s: the teacher's %s head (%d labels: %s) is not the student's (%d labels: %s); "
                   "distil from a teacher fine-tuned on these labels (--teacher DIR)", tm->dir,
                   c->task == QB_TASK_TOKEN ? "token" : "sequence", c->num_labels, got, r->n_names, want);
}

/* The same token for every id, and the same ids for a probe text (cased,
 * accented, with digits and punctuation: where normalizers differ), whatever
 * files hold the vocabulary (vocab.txt, tokenizer.json, spiece.model). */
static qb_status check_teacher_tokenizer(const qb_model *m, const qb_model *tm, qb_error *err) {
    static const char probe[] = "Hello, WORLD! Naïve café 1234 don't re-test";
    qb_model_info a, b;
    qb_model_get_info(m, &a);
    qb_model_get_info(tm, &b);
    int n = qb_tokenizer_vocab_size(m->tok);
    if (n != qb_tokenizer_vocab_size(tm->tok))
        return qb_fail(err, QB_ERR_ARG, "%s: the teacher's tokenizer (%s) has %d tokens, the student's (%s) %d", tm->dir,
                       b.tokenizer, qb_tokenizer_vocab_size(tm->tok), a.tokenizer, n);
    for (int id = 0; id < n; id++) {
        const char *x = qb_token_text(m, id), *y = qb_token_text(tm, id);
        if (!x != !y || (x && strcmp(x, y)))
            return qb_fail(err, QB_ERR_ARG, "%s: the teacher's tokenizer differs from the student's: token %d is '%s', "
                           "not '%s'", tm->dir, id, y ? y : "", x ? x : "");
    }
    qb_encoding ea = {0}, eb = {0};
    qb_status st = qb_tokenize(m, probe, sizeof probe - 1, NULL, 0, 64, &ea, err);
    if (!st) st = qb_tokenize(tm, probe, sizeof probe - 1, NULL, 0, 64, &eb, err);
    bool same = !st && ea.n == eb.n && !memcmp(ea.input_ids, eb.input_ids, (size_t)ea.n * sizeof *ea.input_ids);
    qb_encoding_free(&ea);
    qb_encoding_free(&eb);
    if (!st && !same)
        st = qb_fail(err, QB_ERR_ARG, "%s: the teacher's tokenizer (%s) splits text otherwise than the student's (%s)",
                     tm->dir, b.tokenizer, a.tokenizer);
    return st;
}

static qb_status check_teacher_shape(const qb_train_params *p, const qb_trainer *s, const qb_trainer *t,
                                     qb_error *err) {
    if (!p->distill_hidden || (t->n_apps == s->n_apps && t->H == s->H)) return QB_OK;
    return qb_fail(err, QB_ERR_ARG, "%s: --distill-hidden needs the student's %d layers of width %d; the teacher has "
                   "%d of %d", t->m->dir, s->n_apps, s->H, t->n_apps, t->H);
}

/* Loads the teacher (the input model unless --teacher), checks that it
 * speaks the student's labels and tokens, and gives it a trainer of its own
 * with the student's arena size: it only runs forwards, without dropout. */
static qb_status build_teacher(run *r, const char *model_dir, const qb_trainer_params *student, int B, int S,
                               qb_error *err) {
    const qb_train_params *p = r->p;
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = r->p->n_threads;
    qb_status st = QB_OK;
    if (p->teacher && !qb_same_file(p->teacher, model_dir)) st = qb_model_load(p->teacher, &lp, &r->teacher_m, err);
    const qb_model *tm = r->teacher_m ? r->teacher_m : r->m;
    if (!st) st = check_teacher_labels(r, tm, err);
    if (!st) st = check_teacher_tokenizer(r->m, tm, err);
    qb_trainer_params tp = *student;
    tp.new_head = false;
    if (!st) st = qb_trainer_create(tm, &tp, &r->teacher, err);
    if (!st) st = check_teacher_shape(p, r->t, r->teacher, err);
    if (!st && S > tm->cfg.max_position)
        st = qb_fail(err, QB_ERR_ARG, "%s: the teacher takes %d positions, the batches %d", tm->dir,
                     tm->cfg.max_position, S);
    return st ? st : qb_trainer_reserve(r->teacher, B, S, err);
}

static qb_status build_trainer(run *r, const char *model_dir, qb_error *err) {
    const qb_train_params *p = r->p;
    choose_head(r);
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = r->mlm ? QB_TASK_MLM : r->labels.token_task ? QB_TASK_TOKEN : QB_TASK_SEQUENCE;
    tp.num_labels = r->n_names;
    tp.new_head = !r->own_head;
    tp.seed = p->seed;
    tp.n_threads = p->n_threads;
    qb_status st = qb_trainer_create(r->m, &tp, &r->t, err);
    int max_length = qb_model_max_length(r->m, p->max_length);
    if (!st && r->mlm) {
        st = qb_train_set_encode_mlm(r->m, &r->texts, max_length, &r->set, err);
        if (!st) st = qb_train_set_encode_mlm(r->m, &r->dev_texts, max_length, &r->dev_set, err);
    } else if (!st) {
        st = r->own_head ? qb_train_set_encode(r->m, &r->ds, max_length, model_label_of, r->m, &r->set, err)
                         : qb_train_set_encode(r->m, &r->ds, max_length, set_label_of, &r->labels, &r->set, err);
    }
    if (st) return st;
    int B = p->batch < r->set.n ? p->batch : r->set.n, S = r->set.max_len;
    if (r->mlm) { /* DEV's batches run on the same arena */
        int most = r->set.n > r->dev_set.n ? r->set.n : r->dev_set.n;
        B = p->batch < most ? p->batch : most;
        S = r->dev_set.max_len > S ? r->dev_set.max_len : S;
        r->mask_scratch = malloc((size_t)S * sizeof *r->mask_scratch);
        if (!r->mask_scratch) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    }
    size_t BS = (size_t)B * (size_t)S;
    r->order = malloc((size_t)r->set.n * sizeof *r->order);
    r->bounds = malloc(((size_t)r->set.n + 2) * sizeof *r->bounds);
    r->ids = malloc(BS * sizeof *r->ids);
    r->types = malloc(BS * sizeof *r->types);
    r->lens = malloc((size_t)B * sizeof *r->lens);
    r->batch_labels = malloc(BS * sizeof *r->batch_labels);
    if (!r->order || !r->bounds || !r->ids || !r->types || !r->lens || !r->batch_labels)
        return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    if (p->qat) {
        qb_qat_params qp = {.observer = strcmp(p->act_observer, "lsq") ? QB_FQ_EMA : QB_FQ_LSQ,
                            .bits = p->qat_bits, .ternary = p->qat_ternary, .group_size = p->qat_group_size,
                            .zero_point = p->qat_weight_zero_point, .momentum = 0.01f,
                            .freeze_after = p->freeze_observers_after};
        st = qb_trainer_enable_qat(r->t, &qp, err);
    }
    if (!st) st = qb_trainer_reserve(r->t, B, S, err);
    if (!st && p->distill) st = build_teacher(r, model_dir, &tp, B, S, err);
    return st;
}

/* ---- one step --------------------------------------------------------- */

/* Masked LM: masks example i's tokens (already in ids) and writes its
 * labels; DEV (round 0) with its fixed seed, epoch e's round e + 1 with
 * --seed. */
static void mask_example(run *r, const qb_train_set *s, int i, int round, int32_t *ids, int32_t *labels) {
    qb_mlm_masking m = r->mask;
    if (round == 0) m.seed = MLM_DEV_SEED;
    int n = (int)(s->start[i + 1] - s->start[i]);
    qb_mlm_mask(&m, (uint64_t)round << 32 | (uint64_t)i, ids, s->flags + s->start[i], n, labels, r->mask_scratch);
}

/* Pads examples order[from .. to) of s (order NULL: from .. to) into one
 * batch; masked LM: masked for `round`. */
static qb_batch pad_examples(run *r, const qb_train_set *s, const int *order, int from, int to, int round) {
    int B = to - from, S = 1;
    for (int k = 0; k < B; k++) {
        int i = order ? order[from + k] : from + k;
        r->lens[k] = (int32_t)(s->start[i + 1] - s->start[i]);
        if (r->lens[k] > S) S = r->lens[k];
    }
    for (int k = 0; k < B; k++) {
        int i = order ? order[from + k] : from + k, n = r->lens[k];
        int32_t *ids = r->ids + (size_t)k * S, *types = r->types + (size_t)k * S;
        memcpy(ids, s->ids + s->start[i], (size_t)n * sizeof *ids);
        memcpy(types, s->types + s->start[i], (size_t)n * sizeof *types);
        memset(ids + n, 0, (size_t)(S - n) * sizeof *ids);
        memset(types + n, 0, (size_t)(S - n) * sizeof *types);
        if (r->mlm) {
            int32_t *lab = r->batch_labels + (size_t)k * S;
            mask_example(r, s, i, round, ids, lab);
            for (int j = n; j < S; j++) lab[j] = QB_IGNORE_INDEX;
            continue;
        }
        if (!s->token_task) {
            r->batch_labels[k] = s->labels[i];
            continue;
        }
        int32_t *lab = r->batch_labels + (size_t)k * S;
        memcpy(lab, s->labels + s->start[i], (size_t)n * sizeof *lab);
        for (int j = n; j < S; j++) lab[j] = QB_IGNORE_INDEX;
    }
    return (qb_batch){.batch = B, .seq = S, .input_ids = r->ids, .token_type_ids = r->types, .lengths = r->lens};
}

/* A training batch of this epoch's order. */
static qb_batch pad_batch(run *r, int from, int to) {
    return pad_examples(r, &r->set, r->order, from, to, r->at.epoch + 1);
}

/* Masked LM: the mean loss over every masked DEV token, in file order,
 * without dropout. */
static qb_status mlm_dev_loss(run *r, double *loss, qb_error *err) {
    double total = 0;
    long tokens = 0;
    for (int from = 0; from < r->dev_set.n; from += r->p->batch) {
        int to = from + r->p->batch < r->dev_set.n ? from + r->p->batch : r->dev_set.n;
        qb_batch b = pad_examples(r, &r->dev_set, NULL, from, to, 0);
        float l = 0;
        qb_status st = qb_trainer_forward(r->t, &b, r->batch_labels, false, &l, err);
        if (st) return st;
        total += (double)l * r->t->n_used;
        tokens += r->t->n_used;
    }
    if (!tokens) return qb_fail(err, QB_ERR_FORMAT, "%s: no DEV token was masked (texts too short?)", r->p->eval_data);
    r->rep->mlm_eval_tokens = tokens;
    *loss = total / (double)tokens;
    return isfinite(*loss) ? QB_OK : qb_fail(err, QB_ERR_NUMERIC, "train: held-out loss is %g", *loss);
}

static qb_status nonfinite(const run *r, int epoch, long step, float loss, qb_error *err) {
    if (r->at.best_epoch)
        return qb_fail(err, QB_ERR_NUMERIC,
                       "train: loss is %g at epoch %d, step %ld; stopped (try a lower --lr); %s keeps epoch %d "
                       "(DEV %.4f)", (double)loss, epoch, step, r->out_dir, r->at.best_epoch, r->at.best);
    return qb_fail(err, QB_ERR_NUMERIC,
                   "train: loss is %g at epoch %d, step %ld; stopped before any checkpoint (try a lower --lr); "
                   "%s not written", (double)loss, epoch, step, r->out_dir);
}

/* The report's token_task: 0, or which DEV score picks the best epoch. */
static int token_task_code(const run *r) {
    return !r->set.token_task ? 0 : r->by_words ? QB_TRAIN_TOKEN_WORDS : QB_TRAIN_TOKEN_ENTITIES;
}

static void report(const run *r, const char *phase, int epoch, long step, long steps, long ex, double loss,
                   double lr, double t0, double metric, int best) {
    if (!r->p->progress) return;
    qb_train_progress pr = {.phase = phase, .epoch = epoch, .epochs = r->p->epochs, .step = step, .steps = steps,
                            .examples = ex, .total_examples = r->set.n, .loss = loss, .lr = lr,
                            .seconds = now_s() - t0, .dev_metric = metric, .best = best,
                            .token_task = token_task_code(r), .mlm = r->mlm};
    r->p->progress(r->p->progress_ctx, &pr);
}

static qb_status save_state(run *r, qb_error *err) {
    return qb_train_state_save(r->t, &r->at, r->fingerprint, r->state_path, err);
}

/* The student's training forward, and the teacher's beside it when
 * distilling; *loss is the whole loss backward will differentiate. */
static qb_status forward(run *r, const qb_batch *b, float *loss, qb_error *err) {
    qb_status st = r->teacher ? qb_trainer_forward(r->teacher, b, NULL, false, NULL, err) : QB_OK;
    if (!st) st = qb_trainer_forward(r->t, b, r->batch_labels, true, loss, err);
    if (st || !r->teacher) return st;
    qb_distill_params dp = {.temperature = r->p->temperature, .hidden = r->p->distill_hidden};
    return qb_trainer_distill(r->t, r->teacher, &dp, loss, err);
}

/* Runs the epoch r->at.epoch from batch r->at.batch on. */
static qb_status train_epoch(run *r, const qb_adamw_params *ap, qb_error *err) {
    qb_train_cursor *at = &r->at;
    int epoch = at->epoch, n_batches = qb_train_set_batches(&r->set, r->p->batch, r->p->seed, epoch, r->order,
                                                            r->bounds);
    if (n_batches < 0) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    double t0 = now_s(), segment = t0;
    for (int b = at->batch; b < n_batches; b++) {
        qb_batch batch = pad_batch(r, r->bounds[b], r->bounds[b + 1]);
        float loss = 0, lr = qb_adamw_lr_at(ap, r->t->n_updates);
        qb_trainer_zero_grad(r->t);
        qb_status st = forward(r, &batch, &loss, err);
        if (st) return st;
        if (!isfinite(loss)) return nonfinite(r, epoch + 1, b + 1, loss, err);
        qb_trainer_backward(r->t);
        st = qb_trainer_step(r->t, ap, NULL, err);
        if (st == QB_ERR_NUMERIC) return nonfinite(r, epoch + 1, b + 1, NAN, err);
        if (st) return st;
        at->loss_sum += loss;
        at->examples += batch.batch;
        at->trained += batch.batch;
        at->batch = b + 1;
        r->rep->final_loss = at->loss_sum / (b + 1);
        report(r, "train", epoch + 1, b + 1, n_batches, at->examples, r->rep->final_loss, lr, t0, 0, 0);
        if (r->p->save_every && r->t->n_updates % r->p->save_every == 0 && b + 1 < n_batches) {
            at->train_s += now_s() - segment; /* the save is not training time */
            st = save_state(r, err);
            if (st) return st;
            segment = now_s();
        }
    }
    at->train_s += now_s() - segment;
    at->steps += n_batches;
    return QB_OK;
}

/* ---- scoring and keeping the best ------------------------------------ */

typedef struct {
    const run *r;
    int epoch;
    double t0;
} eval_progress_ctx;

static void eval_progress(void *ctx, const char *stage, long done, long total) {
    const eval_progress_ctx *c = ctx;
    (void)stage;
    report(c->r, "eval", c->epoch, done, total, done, c->r->rep->final_loss, 0, c->t0, 0, 0);
}

/* The trainer's model (QAT: the converted one) into the staging directory. */
static qb_status write_staged(run *r, qb_error *err) {
    if (r->mlm) return qb_checkpoint_write(r->t, NULL, 0, r->od.tmp, err);
    return r->p->qat ? qb_checkpoint_write_qat(r->t, r->names, r->n_names, r->od.tmp, err)
                     : qb_checkpoint_write(r->t, r->names, r->n_names, r->od.tmp, err);
}

/* dir/model.safetensors's SHA-256 into hex ("" when there is none). */
static qb_status weights_sha256(const char *dir, char hex[65], qb_error *err) {
    char path[4200];
    hex[0] = 0;
    if (!qb_path_join(path, sizeof path, dir, "model.safetensors"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
    return qb_file_exists(path) ? qb_sha256_file(path, hex, err) : QB_OK;
}

/* Writes the epoch's model to the staging directory and scores it there,
 * as `qbert eval` would score OUT_DIR. */
static qb_status score_epoch(run *r, int epoch, double *metric, qb_error *err) {
    qb_status st = write_staged(r, err);
    if (!st && r->mlm) st = mlm_dev_loss(r, metric, err);
    if (st || r->mlm) return st;
    qb_model *saved = NULL;
    qb_load_params lp = qb_load_default_params();
    lp.n_threads = r->p->n_threads;
    if (!st) st = qb_model_load(r->od.tmp, &lp, &saved, err);
    if (st) return st;
    eval_progress_ctx pc = {r, epoch, now_s()};
    qb_eval_params ep = qb_eval_default_params();
    ep.data = r->p->eval_data;
    ep.task = r->p->task;
    ep.limit = r->p->eval_limit;
    ep.max_length = r->p->max_length;
    ep.n_threads = r->p->n_threads;
    ep.progress = eval_progress;
    ep.progress_ctx = &pc;
    qb_eval_result res;
    st = qb_evaluate(saved, &ep, &res, err);
    if (!st) {
        *metric = res.token_task && !r->by_words ? res.entity_f1 : res.accuracy;
        qb_eval_result_free(&res);
    }
    qb_model_free(saved);
    return st;
}

/* The state is saved before a best epoch moves into OUT_DIR, with that
 * epoch's fingerprint: a run killed between the two resumes from a state
 * that holds the best weights and rebuilds OUT_DIR from them. */
static qb_status keep_if_best(run *r, int epoch, qb_error *err) {
    double metric = 0;
    qb_train_cursor *at = &r->at;
    qb_status st = score_epoch(r, epoch, &metric, err);
    if (st) return st;
    int best = !at->best_epoch || (r->mlm ? metric < at->best : metric > at->best);
    if (best) {
        memcpy(at->prev_sha256, at->best_sha256, sizeof at->prev_sha256);
        st = weights_sha256(r->od.tmp, at->best_sha256, err);
        at->best = metric;
        at->best_epoch = epoch;
    }
    at->epoch = epoch; /* the next epoch, from its start */
    at->batch = 0;
    at->loss_sum = 0;
    at->examples = 0;
    if (!st && (best || epoch < r->p->epochs)) st = save_state(r, err);
    if (!st && best) st = qb_outdir_commit(&r->od, err);
    if (st) return st;
    if (!best) qb_outdir_abort(&r->od);
    report(r, "epoch", epoch, 0, 0, r->set.n, r->rep->final_loss, 0, now_s(), metric, best);
    if (epoch == r->p->epochs) return QB_OK;
    return qb_outdir_begin(&r->od, r->out_dir, QB_OUTDIR_FORCE, err); /* the epoch kept before is ours */
}

static qb_status train_all(run *r, qb_error *err) {
    const qb_train_params *p = r->p;
    qb_adamw_params ap = qb_adamw_default_params();
    long per_epoch = (r->set.n + p->batch - 1) / p->batch;
    ap.lr = p->lr;
    ap.weight_decay = p->weight_decay;
    ap.max_grad_norm = p->max_grad_norm;
    ap.total_steps = per_epoch * p->epochs;
    ap.warmup_steps = (long)(p->warmup_ratio * (float)ap.total_steps);
    qb_status st = QB_OK;
    int first = r->at.epoch;
    double t0 = now_s(), trained_before = r->at.train_s;
    while (!st && r->at.epoch < p->epochs) {
        int epoch = r->at.epoch + 1;
        st = train_epoch(r, &ap, err);
        if (!st) st = keep_if_best(r, epoch, err);
        if (!st) r->rep->epochs_run = epoch;
    }
    r->rep->steps = r->at.steps;
    r->rep->examples_per_s = r->at.train_s > 0 ? (double)r->at.trained / r->at.train_s : 0;
    /* Training time is kept across --resume, the rest (conversion, DEV
     * scoring) is this run's: an epoch resumed midway counts both halves of
     * its training and its own conversion once. */
    int done = r->rep->epochs_run;
    double rest = (now_s() - t0) - (r->at.train_s - trained_before);
    r->rep->epoch_seconds = done ? r->at.train_s / done : 0;
    r->rep->epoch_total_seconds = done > first ? r->rep->epoch_seconds + rest / (done - first) : 0;
    return st;
}

/* The first QAT scales: the mean range of the first batches of epoch 1's
 * order, through FP32 forwards. */
static qb_status calibrate_scales(run *r, qb_error *err) {
    int n = qb_train_set_batches(&r->set, r->p->batch, r->p->seed, 0, r->order, r->bounds);
    if (n < 0) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    qb_trainer_qat_calibrate_begin(r->t);
    for (int b = 0; b < n && b < r->p->calib_batches; b++) {
        qb_batch batch = pad_batch(r, r->bounds[b], r->bounds[b + 1]);
        qb_status st = qb_trainer_forward(r->t, &batch, NULL, false, NULL, err);
        if (st) return st;
    }
    qb_trainer_qat_calibrate_end(r->t);
    return QB_OK;
}

static bool path_exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* The state holds the best epoch's weights: it was saved at that epoch's
 * end (just before the epoch moved into OUT_DIR). */
static bool state_holds_best(const qb_train_cursor *c) { return c->best_epoch == c->epoch && c->batch == 0; }

/* OUT_DIR rebuilt from the state's weights, which must give the very
 * bytes the state recorded. */
static qb_status rebuild_best(run *r, qb_error *err) {
    char got[65];
    qb_status st = write_staged(r, err);
    if (!st) st = weights_sha256(r->od.tmp, got, err);
    if (!st && strcmp(got, r->at.best_sha256))
        st = qb_fail(err, QB_ERR_FORMAT, "%s: the best epoch %d rebuilt from %s is not the one it recorded; start the "
                     "run again", r->out_dir, r->at.best_epoch, r->p->resume);
    if (!st) st = qb_outdir_commit(&r->od, err);
    return st ? st : qb_outdir_begin(&r->od, r->out_dir, QB_OUTDIR_FORCE, err);
}

/* A resumed run reports its best epoch as saved in OUT_DIR, so OUT_DIR
 * must hold the one the state recorded; an epoch that never moved in (the
 * run was killed between the state's save and the move) or a deleted
 * OUT_DIR is rebuilt when the state holds its weights.  Anything else is
 * refused before training: a foreign OUT_DIR is never replaced. */
static qb_status check_resumed_out(run *r, qb_error *err) {
    const qb_train_cursor *c = &r->at;
    const char *state = r->p->resume, *out = r->out_dir;
    bool exists = path_exists(out), force = r->p->force;
    if (!c->best_epoch) {
        if (!exists || force) return QB_OK;
        return qb_fail(err, QB_ERR_IO, "%s: already exists and is not this run's (%s has saved no epoch yet); use "
                       "--force to replace it", out, state);
    }
    if (!c->best_sha256[0])
        return qb_fail(err, QB_ERR_FORMAT, "%s: records no fingerprint of its best epoch's OUT_DIR (an older qbert "
                       "wrote it); start the run again", state);
    char have[65] = "";
    qb_status st = exists ? weights_sha256(out, have, err) : QB_OK;
    if (st || !strcmp(have, c->best_sha256)) return st;
    bool ours = !exists || force || (c->prev_sha256[0] && !strcmp(have, c->prev_sha256));
    if (state_holds_best(c) && ours) return rebuild_best(r, err);
    bool same_dir = !strcmp(c->out_dir, out) || qb_same_file(c->out_dir, out);
    if (!exists && !same_dir)
        return qb_fail(err, QB_ERR_IO, "%s: no such directory; %s saved its best epoch %d to %s (resume with -o %s)",
                       out, state, c->best_epoch, c->out_dir, c->out_dir);
    if (!exists)
        return qb_fail(err, QB_ERR_IO, "%s: missing, with the best epoch %d that %s saved there; a state saved "
                       "mid-epoch cannot rebuild it: start the run again", out, c->best_epoch, state);
    return qb_fail(err, QB_ERR_IO, "%s: not this run's output (its model.safetensors is not the best epoch %d that %s "
                   "saved to %s); refusing to resume into it", out, c->best_epoch, state, c->out_dir);
}

/* The state file is this run's to write and, once it finishes, delete: a
 * file that is not a training state is never taken over, nor (without
 * --force) an interrupted run's state that this run does not resume. */
static qb_status check_state_path(const run *r, qb_error *err) {
    const qb_train_params *p = r->p;
    const char *path = r->state_path;
    if (!path_exists(path) || (p->resume && qb_same_file(path, p->resume))) return QB_OK;
    if (!qb_train_state_recognize(path))
        return qb_fail(err, QB_ERR_IO, "%s: exists and is not a qbert training state; refusing to overwrite it "
                       "(choose another --state)", path);
    if (p->force) return QB_OK;
    return qb_fail(err, QB_ERR_IO, "%s: holds an interrupted run's state; continue it with --resume %s, or delete it "
                   "(or --force to start over)", path, path);
}

static qb_status start_or_resume(run *r, qb_error *err) {
    if (!r->p->resume && r->mlm) { /* where the held-out loss starts */
        qb_status st = mlm_dev_loss(r, &r->rep->mlm_loss_before, err);
        if (!st) report(r, "baseline", 0, 0, 0, 0, 0, 0, now_s(), r->rep->mlm_loss_before, 0);
        return st;
    }
    if (!r->p->resume) return r->p->qat ? calibrate_scales(r, err) : QB_OK;
    qb_status st = qb_train_state_load(r->t, &r->at, r->fingerprint, r->p->resume, err);
    if (!st) st = check_state_path(r, err);
    if (!st) st = check_resumed_out(r, err);
    if (!st) snprintf(r->at.out_dir, sizeof r->at.out_dir, "%s", r->out_dir); /* later saves name this one */
    return st;
}

static void run_free(run *r) {
    qb_outdir_abort(&r->od);
    free(r->order);
    free(r->bounds);
    free(r->ids);
    free(r->types);
    free(r->lens);
    free(r->batch_labels);
    qb_train_set_free(&r->set);
    qb_train_set_free(&r->dev_set);
    qb_mlm_texts_free(&r->texts);
    qb_mlm_texts_free(&r->dev_texts);
    free(r->mask_scratch);
    qb_trainer_free(r->t);
    qb_trainer_free(r->teacher);
    qb_model_free(r->teacher_m);
    qb_label_set_free(&r->labels);
    qb_dataset_free(&r->ds);
    qb_model_free(r->m);
}

qb_status qb_train(const char *model_dir, const qb_train_params *p, const char *out_dir, qb_train_report *rep,
                   qb_error *err) {
    qb_train_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    double t0 = now_s();
    qb_status st = check_params(model_dir, p, out_dir, err);
    if (st) return st;
    run r = {.p = p, .rep = rep, .mlm = is_mlm(p)};
    rep->mlm = r.mlm;
    st = qb_path_normalize(out_dir, r.out, sizeof r.out, err);
    if (st) return st;
    r.out_dir = r.out;
    fingerprint(&r, model_dir);
    /* a resumed run goes on in the state it resumed, unless told otherwise */
    const char *state = p->state_path ? p->state_path : p->resume;
    if (state) snprintf(r.state_path, sizeof r.state_path, "%s", state);
    else snprintf(r.state_path, sizeof r.state_path, "%s.state", r.out_dir);
    st = qb_path_parent_ready(r.state_path, p->parents, err);
    if (st) return st;
    snprintf(r.at.out_dir, sizeof r.at.out_dir, "%s", r.out_dir);
    st = p->resume ? QB_OK : check_state_path(&r, err); /* resumed: once the state it resumes has loaded */
    if (!st) st = load_inputs(&r, model_dir, err);
    if (!st && p->max_length > r.m->cfg.max_position) /* found now, by the model's name */
        st = qb_fail(err, QB_ERR_ARG, "%s: --max-length %d exceeds the model's %d positions", model_dir,
                     p->max_length, r.m->cfg.max_position);
    /* An unwritable or existing OUT_DIR fails now, not after an epoch; a
     * resumed run replaces the best epoch it wrote before. */
    unsigned flags = (p->force || p->resume ? QB_OUTDIR_FORCE : 0) | (p->parents ? QB_OUTDIR_PARENTS : 0);
    if (!st) st = qb_outdir_begin(&r.od, r.out_dir, flags, err);
    if (!st) st = build_trainer(&r, model_dir, err);
    if (!st) st = start_or_resume(&r, err);
    if (!st) {
        rep->n_train = r.set.n;
        rep->num_labels = r.n_names;
        rep->new_head = !r.own_head;
        rep->token_task = token_task_code(&r);
        st = train_all(&r, err);
    }
    if (!st) remove(r.state_path); /* a finished run needs no resuming */
    rep->best_epoch = r.at.best_epoch;
    rep->best_metric = r.at.best;
    rep->seconds = now_s() - t0;
    run_free(&r);
    return st;
}
