/* qbert eval: accuracy, per-class precision/recall/F1, macro-F1 and, for
 * NER, entity-level F1 on a labelled dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "core/json.h"
#include "eval/dataset.h"
#include "eval/metrics.h"

static const char help[] =
    "usage: qbert eval MODEL_DIR --data FILE [options]\n"
    "\n"
    "Runs the model over a labelled dataset and prints accuracy, per-class\n"
    "precision/recall/F1 and macro-F1; for token-classification models (CoNLL)\n"
    "also entity-level precision/recall/F1 (exact spans, conlleval rules), with each\n"
    "word tagged from its first sub-token.\n"
    "\n"
    "  --data FILE        the dataset\n"
    "  --task T           sst2 | imdb | conll | tsv | jsonl | auto (default auto:\n"
    "                     detected from the file's header and layout)\n"
    "  --limit N          first N examples only\n"
    "  --max-length L     truncation length, [CLS]/[SEP] included (default 128);\n"
    "                     NER words beyond it are not scored\n"
    "  --batch B          examples run together (default 16)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --text-col C, --pair-col C, --label-col C, --header yes|no|auto\n"
    "                     columns (0-based) for --task tsv (default 0, none, 1, auto)\n"
    "  --reference DIR    also run this model (e.g. the FP32 original of a quantized\n"
    "                     one) and report how often the two predictions agree\n"
    "  --json             one JSON object: n, accuracy, macro_f1, per_class, and\n"
    "                     entity_f1/entity_precision/entity_recall for NER\n";

typedef struct {
    const char *dir, *data, *reference;
    qb_data_format fmt;
    qb_tsv_columns cols;
    int limit, max_length, batch, threads;
    bool json;
} eval_args;

typedef struct {
    qb_model *m;
    qb_session *s;
    qb_model_info info;
    qb_model *ref;       /* --reference: predictions compared with m's */
    qb_session *ref_s;
    long agree, compared;
    const qb_dataset *ds;
    const eval_args *a;
    qb_confusion conf;
    qb_entity_counts ent;
    int scored;         /* examples (sequence) or words (NER) scored */
    int unscored_words; /* NER words cut off by max_length */
    qb_encoding *enc;
    const qb_encoding **encp;
    const char **gold, **pred; /* NER: one sentence's scored tags */
} evaluator;

/* A dataset label names a model label (id2label) or is its integer id. */
static int label_id(const evaluator *e, const qb_example *x, const char *label, qb_error *err) {
    int id = qb_model_label_id(e->m, label);
    char *end;
    long v = strtol(label, &end, 10);
    if (id < 0 && *label && !*end && v >= 0 && v < e->info.num_labels) id = (int)v;
    if (id < 0) {
        char names[256] = "";
        for (int i = 0; i < e->info.num_labels && strlen(names) < 200; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", qb_model_label(e->m, i));
        qb_fail(err, QB_ERR_FORMAT, "%s:%d: label '%s' is not one of the model's labels (%s) or their ids",
                e->ds->path, x->line, label, names);
    }
    return id;
}

/* Tokenizer errors name a byte offset; add the file and line. */
static qb_status fail_at(const evaluator *e, const qb_example *x, qb_status st, qb_error *err) {
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", e->ds->path, x->line);
    return qb_fail_wrap(err, st, where);
}

static qb_status eval_sequence_batch(evaluator *e, int first, int n, qb_error *err) {
    for (int k = 0; k < n; k++) {
        const qb_example *x = &e->ds->ex[first + k];
        qb_status st = qb_tokenize(e->m, x->text, x->text_len, x->pair, x->pair_len, e->a->max_length, &e->enc[k], err);
        if (st) return fail_at(e, x, st, err);
        e->encp[k] = &e->enc[k];
    }
    qb_status st = qb_session_run_encodings(e->s, e->encp, n, err);
    if (!st && e->ref_s) st = qb_session_run_encodings(e->ref_s, e->encp, n, err);
    for (int k = 0; !st && k < n; k++) {
        const qb_example *x = &e->ds->ex[first + k];
        int gold = label_id(e, x, x->label, err), L = e->info.num_labels;
        if (gold < 0) return err->code;
        int pred = qb_argmax(qb_session_logits(e->s, k), L);
        qb_confusion_add(&e->conf, gold, pred);
        if (e->ref_s) {
            e->agree += pred == qb_argmax(qb_session_logits(e->ref_s, k), L);
            e->compared++;
        }
        e->scored++;
    }
    return st;
}

static qb_status eval_sentence(evaluator *e, const qb_example *x, qb_error *err) {
    qb_encoding *enc = &e->enc[0];
    qb_status st = qb_tokenize_words(e->m, x->words, x->word_lens, x->n_words, e->a->max_length, enc, err);
    if (st) return fail_at(e, x, st, err);
    e->encp[0] = enc;
    if ((st = qb_session_run_encodings(e->s, e->encp, 1, err))) return st;
    if (e->ref_s && (st = qb_session_run_encodings(e->ref_s, e->encp, 1, err))) return st;
    const float *logits = qb_session_logits(e->s, 0);
    const float *ref_logits = e->ref_s ? qb_session_logits(e->ref_s, 0) : NULL;
    int L = e->info.num_labels, n = 0;
    for (int w = 0, t = 0; w < x->n_words; w++) {
        while (t < enc->n && enc->word_ids[t] < w) t++;
        if (t >= enc->n || enc->word_ids[t] != w) {
            e->unscored_words++;
            continue;
        }
        int gold = qb_model_label_id(e->m, x->tags[w]);
        if (gold < 0)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: tag '%s' is not one of the model's labels", e->ds->path,
                           x->line + w, x->tags[w]);
        int pred = qb_argmax(logits + (size_t)t * L, L);
        qb_confusion_add(&e->conf, gold, pred);
        if (ref_logits) {
            e->agree += pred == qb_argmax(ref_logits + (size_t)t * L, L);
            e->compared++;
        }
        e->gold[n] = x->tags[w];
        e->pred[n++] = qb_model_label(e->m, pred);
        e->scored++;
    }
    qb_entity_add(&e->ent, e->gold, e->pred, n);
    return QB_OK;
}

static qb_status check_fit(const evaluator *e, qb_error *err) {
    bool conll = e->ds->format == QB_DATA_CONLL, token = e->info.task == QB_TASK_TOKEN;
    if (conll && !token)
        return qb_fail(err, QB_ERR_ARG, "%s: CoNLL token tags, but %s is a sequence-classification model",
                       e->ds->path, e->a->dir);
    if (!conll && token)
        return qb_fail(err, QB_ERR_ARG, "%s: sentence labels, but %s is a token-classification model (needs CoNLL)",
                       e->ds->path, e->a->dir);
    for (int i = 0; !conll && i < e->ds->n; i++)
        if (!e->ds->ex[i].label)
            return qb_fail(err, QB_ERR_FORMAT, "%s:%d: example has no label", e->ds->path, e->ds->ex[i].line);
    return QB_OK;
}

static qb_status run_all(evaluator *e, qb_error *err) {
    const qb_dataset *ds = e->ds;
    qb_progress pr;
    qb_progress_start(&pr, "eval", ds->n);
    qb_status st = QB_OK;
    bool token = e->info.task == QB_TASK_TOKEN;
    int step = token ? 1 : e->a->batch;
    for (int i = 0; !st && i < ds->n; i += step) {
        int n = ds->n - i < step ? ds->n - i : step;
        st = token ? eval_sentence(e, &ds->ex[i], err) : eval_sequence_batch(e, i, n, err);
        qb_progress_step(&pr, n);
    }
    qb_progress_end(&pr);
    return st;
}

static void print_text(const evaluator *e, double secs) {
    const qb_confusion *c = &e->conf;
    bool token = e->info.task == QB_TASK_TOKEN;
    printf("model        %s\n", e->a->dir);
    printf("data         %s (%s), %d %s, max_length %d\n", e->ds->path, qb_data_format_name(e->ds->format),
           e->ds->n, token ? "sentences" : "examples", e->a->max_length);
    if (token) printf("words        %d scored, %d beyond max_length not scored\n", e->scored, e->unscored_words);
    printf("accuracy     %.4f  (%lld/%lld%s)\n", qb_confusion_accuracy(c),
           (long long)(qb_confusion_accuracy(c) * c->n + 0.5), (long long)c->n, token ? " words" : "");
    printf("macro-F1     %.4f\n", qb_confusion_macro_f1(c));
    if (e->ref_s)
        printf("agreement    %.4f with %s (%ld/%ld %s)\n", (double)e->agree / e->compared, e->a->reference, e->agree,
               e->compared, token ? "words" : "predictions");
    if (token)
        printf("entity F1    %.4f  (precision %.4f, recall %.4f; %lld gold, %lld predicted, %lld correct)\n",
               qb_entity_f1(&e->ent), qb_entity_precision(&e->ent), qb_entity_recall(&e->ent),
               (long long)e->ent.n_gold, (long long)e->ent.n_pred, (long long)e->ent.tp);
    printf("\n%-16s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (int k = 0; k < c->n_classes; k++) {
        qb_class_score s = qb_confusion_class(c, k);
        printf("%-16s %9.4f %9.4f %9.4f %9lld\n", qb_model_label(e->m, k), s.precision, s.recall, s.f1,
               (long long)s.support);
    }
    printf("\ntime         %.2f s, %.1f examples/s\n", secs, e->ds->n / secs);
}

static void print_json(const evaluator *e, double secs) {
    const qb_confusion *c = &e->conf;
    fputs("{\"model\": ", stdout);
    qb_json_write_str(stdout, e->a->dir, strlen(e->a->dir));
    fputs(", \"data\": ", stdout);
    qb_json_write_str(stdout, e->ds->path, strlen(e->ds->path));
    printf(", \"task\": \"%s\", \"n\": %d, \"max_length\": %d, \"accuracy\": %.6f, \"macro_f1\": %.6f",
           qb_data_format_name(e->ds->format), e->ds->n, e->a->max_length, qb_confusion_accuracy(c),
           qb_confusion_macro_f1(c));
    if (e->ref_s) printf(", \"agreement\": %.6f, \"agreement_n\": %ld", (double)e->agree / e->compared, e->compared);
    if (e->info.task == QB_TASK_TOKEN)
        printf(", \"entity_f1\": %.6f, \"entity_precision\": %.6f, \"entity_recall\": %.6f, \"words_scored\": %d, "
               "\"words_unscored\": %d", qb_entity_f1(&e->ent), qb_entity_precision(&e->ent),
               qb_entity_recall(&e->ent), e->scored, e->unscored_words);
    fputs(", \"per_class\": [", stdout);
    for (int k = 0; k < c->n_classes; k++) {
        qb_class_score s = qb_confusion_class(c, k);
        const char *l = qb_model_label(e->m, k);
        fputs(k ? ", {\"label\": " : "{\"label\": ", stdout);
        qb_json_write_str(stdout, l, strlen(l));
        printf(", \"precision\": %.6f, \"recall\": %.6f, \"f1\": %.6f, \"support\": %lld}", s.precision, s.recall,
               s.f1, (long long)s.support);
    }
    printf("], \"seconds\": %.3f, \"examples_per_s\": %.2f}\n", secs, e->ds->n / secs);
}

static int parse_args(int argc, char **argv, eval_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--json")) a->json = true;
        else if ((v = qb_arg_value("--data", &i, argc, argv))) a->data = v;
        else if ((v = qb_arg_value("--reference", &i, argc, argv))) a->reference = v;
        else if ((v = qb_arg_value("--task", &i, argc, argv))) {
            if (!qb_data_format_from_name(v, &a->fmt))
                return qb_usage_error("eval", "unknown --task '%s' (sst2, imdb, conll, tsv, jsonl, auto)", v);
        } else if ((v = qb_arg_value("--limit", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--limit", v, 1, 1 << 30, &a->limit)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--max-length", v, 3, 1 << 20, &a->max_length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--batch", v, 1, 4096, &a->batch)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--threads", v, 1, 1024, &a->threads)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--text-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--text-col", v, 0, 1000, &a->cols.text_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--pair-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--pair-col", v, 0, 1000, &a->cols.pair_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--label-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--label-col", v, 0, 1000, &a->cols.label_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--header", &i, argc, argv))) {
            a->cols.header = !strcmp(v, "yes") ? 1 : !strcmp(v, "no") ? 0 : -1;
        } else if (argv[i][0] == '-') return qb_usage_error("eval", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else return qb_usage_error("eval", "unexpected argument '%s'", argv[i]);
    }
    if (!a->dir) return qb_usage_error("eval", "missing MODEL_DIR");
    if (!a->data) return qb_usage_error("eval", "missing --data FILE");
    return QB_EXIT_OK;
}

static int evaluate(evaluator *e, const eval_args *a) {
    qb_error err = {0};
    qb_model_get_info(e->m, &e->info);
    if (a->max_length > e->info.max_position)
        return qb_usage_error("eval", "--max-length %d exceeds the model's %d positions", a->max_length,
                              e->info.max_position);
    int maxw = 1;
    for (int i = 0; i < e->ds->n; i++) maxw = e->ds->ex[i].n_words > maxw ? e->ds->ex[i].n_words : maxw;
    e->enc = calloc((size_t)a->batch, sizeof *e->enc);
    e->encp = calloc((size_t)a->batch, sizeof *e->encp);
    e->gold = calloc((size_t)maxw, sizeof *e->gold);
    e->pred = calloc((size_t)maxw, sizeof *e->pred);
    qb_session_params sp = {.max_batch = a->batch, .max_seq = a->max_length, .n_threads = a->threads};
    if (!e->enc || !e->encp || !e->gold || !e->pred) return QB_EXIT_FAIL;
    if (check_fit(e, &err) || qb_confusion_init(&e->conf, e->info.num_labels) ||
        qb_session_create(e->m, &sp, &e->s, &err) || (e->ref && qb_session_create(e->ref, &sp, &e->ref_s, &err)))
        return qb_report_error("eval", &err);
    if (e->ref) {
        qb_model_info ri;
        qb_model_get_info(e->ref, &ri);
        if (ri.num_labels != e->info.num_labels || ri.task != e->info.task)
            return qb_usage_error("eval", "--reference %s has other labels or another task", a->reference);
    }
    double t0 = qb_now();
    if (run_all(e, &err)) return qb_report_error("eval", &err);
    double secs = qb_now() - t0;
    if (a->json) print_json(e, secs);
    else print_text(e, secs);
    return QB_EXIT_OK;
}

int qb_cmd_eval(int argc, char **argv) {
    eval_args a = {.fmt = QB_DATA_AUTO, .cols = {0, -1, 1, -1}, .max_length = 128, .batch = 16};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    qb_dataset ds = {0};
    qb_error err = {0};
    if (qb_dataset_load(a.data, a.fmt, &a.cols, a.limit, &ds, &err)) return qb_report_error("eval", &err);
    evaluator e = {.ds = &ds, .a = &a};
    e.m = qb_cli_load("eval", a.dir, NULL);
    if (e.m && a.reference) e.ref = qb_cli_load("eval", a.reference, NULL);
    rc = e.m && (e.ref || !a.reference) ? evaluate(&e, &a) : QB_EXIT_FAIL;
    for (int k = 0; e.enc && k < a.batch; k++) qb_encoding_free(&e.enc[k]);
    free(e.enc);
    free(e.encp);
    free(e.gold);
    free(e.pred);
    qb_confusion_free(&e.conf);
    qb_session_free(e.s);
    qb_session_free(e.ref_s);
    qb_model_free(e.m);
    qb_model_free(e.ref);
    qb_dataset_free(&ds);
    return rc;
}
