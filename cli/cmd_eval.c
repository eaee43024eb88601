/* qbert eval: accuracy, per-class precision/recall/F1, macro-F1 and, for
 * NER, entity-level F1 on a labelled dataset. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/escape.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert eval MODEL_DIR --data FILE [options]\n"
    "\n"
    "Runs the model over a labelled dataset and prints accuracy, per-class\n"
    "precision/recall/F1 and macro-F1; for token-classification models (CoNLL)\n"
    "also entity-level precision/recall/F1 (exact spans, conlleval rules), overall\n"
    "and per entity type (PER, ORG, LOC, MISC), with each\n"
    "word tagged from its first sub-token.\n"
    "\n"
    "  --data FILE        the dataset\n"
    "  --task T           sst2 | imdb | conll | tsv | jsonl | auto (default auto:\n"
    "                     detected from the file's header and layout); imdb reads\n"
    "                     each \"<br />\" as a space, as the models of MODELS.md were\n"
    "                     trained (predict --input reads the text as it is)\n"
    "  --limit N          first N examples only\n"
    "  --max-length L     truncation length, [CLS]/[SEP] included (default: the\n"
    "                     model's positions, at most 512); NER words beyond it are\n"
    "                     not scored.  The output says how many examples it cut\n"
    "  --batch B          examples run together (default 16)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --text-col C, --pair-col C, --label-col C, --header yes|no|auto\n"
    "                     columns (0-based) of a TSV file (default: those a header\n"
    "                     names: sentence/text/sentence1, sentence2/text_pair,\n"
    "                     label; else 0, none, 1)\n"
    "  --reference DIR    also run this model (e.g. the FP32 original of a quantized\n"
    "                     one) and report how often the two predictions agree\n"
    "  --json             one JSON object: n, accuracy, macro_f1, per_class, and\n"
    "                     entity_f1/entity_precision/entity_recall and\n"
    "                     entity_types (the same per type) for NER\n";

typedef struct {
    const char *dir, *reference;
    qb_eval_params p;
    bool json;
} eval_args;

static void print_text(const eval_args *a, const qb_model *m, const qb_eval_result *r) {
    printf("model        %s\n", a->dir);
    printf("data         %s (%s), %d %s, max_length %d\n", a->p.data, r->task, r->n,
           r->token_task ? "sentences" : "examples", r->max_length);
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (r->n_truncated)
        printf("truncated    %d of %d %s lost tokens at max_length %d (the model allows %d)\n", r->n_truncated, r->n,
               r->token_task ? "sentences" : "examples", r->max_length, in.max_position);
    if (r->token_task)
        printf("words        %lld scored; not scored: %d beyond max_length, %d without tokens\n", r->total,
               r->words_unscored - r->words_tokenless, r->words_tokenless);
    printf("accuracy     %.4f  (%lld/%lld%s)\n", r->accuracy, r->correct, r->total, r->token_task ? " words" : "");
    printf("macro-F1     %.4f\n", r->macro_f1);
    if (r->agreement_n)
        printf("agreement    %.4f with %s (%lld %s), logits: SQNR %.2f dB, KL %.3g, mean cosine per example %.6f\n",
               r->agreement, a->reference, r->agreement_n, r->token_task ? "words" : "predictions", r->sqnr_db,
               r->kl, r->cosine);
    if (r->token_task)
        printf("entity F1    %.4f  (precision %.4f, recall %.4f; %lld gold, %lld predicted, %lld correct)\n",
               r->entity_f1, r->entity_precision, r->entity_recall, r->entity_gold, r->entity_pred, r->entity_tp);
    for (int i = 0; r->token_task && i < r->n_entity_types; i++) {
        const struct qb_entity_score *t = &r->entity_types[i];
        char name[64];
        printf("  %-10s %.4f  (precision %.4f, recall %.4f; %lld gold, %lld predicted, %lld correct)\n",
               qb_escape_str(name, sizeof name, t->type), t->f1, t->precision, t->recall, t->gold, t->pred, t->tp);
    }
    printf("\n%-16s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (int k = 0; k < r->n_classes; k++) {
        char name[256];
        printf("%-16s %9.4f %9.4f %9.4f %9lld\n", qb_escape_str(name, sizeof name, qb_model_label(m, k)),
               r->precision[k], r->recall[k], r->f1[k], r->support[k]);
    }
    printf("\ntime         %.2f s, %.1f examples/s\n", r->seconds, r->n / r->seconds);
}

static json_t *per_class_json(const qb_model *m, const qb_eval_result *r) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int k = 0; ok && k < r->n_classes; k++) {
        json_t *c = json_object();
        ok = c && qb_json_set_str(c, "label", qb_model_label(m, k)) &&
             qb_json_set_real(c, "precision", r->precision[k]) && qb_json_set_real(c, "recall", r->recall[k]) &&
             qb_json_set_real(c, "f1", r->f1[k]) && qb_json_set_int(c, "support", r->support[k]);
        ok = qb_json_push(arr, c) && ok;
    }
    return qb_json_built(arr, ok);
}

static json_t *entity_types_json(const qb_eval_result *r) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < r->n_entity_types; i++) {
        const struct qb_entity_score *t = &r->entity_types[i];
        json_t *c = json_object();
        ok = c && qb_json_set_str(c, "type", t->type) && qb_json_set_real(c, "f1", t->f1) &&
             qb_json_set_real(c, "precision", t->precision) && qb_json_set_real(c, "recall", t->recall) &&
             qb_json_set_int(c, "gold", t->gold) && qb_json_set_int(c, "predicted", t->pred) &&
             qb_json_set_int(c, "correct", t->tp);
        ok = qb_json_push(arr, c) && ok;
    }
    return qb_json_built(arr, ok);
}

/* Agreement with the reference and the token task's entity scores, where
 * they were measured. */
static bool set_optional(json_t *o, const qb_eval_result *r) {
    bool ok = true;
    if (r->agreement_n)
        ok = qb_json_set_real(o, "agreement", r->agreement) && qb_json_set_int(o, "agreement_n", r->agreement_n) &&
             qb_json_set_real(o, "sqnr_db", r->sqnr_db) && qb_json_set_real(o, "kl", r->kl) &&
             qb_json_set_real(o, "cosine", r->cosine);
    if (ok && r->token_task)
        ok = qb_json_set_real(o, "entity_f1", r->entity_f1) &&
             qb_json_set_real(o, "entity_precision", r->entity_precision) &&
             qb_json_set_real(o, "entity_recall", r->entity_recall) && qb_json_set_int(o, "words_scored", r->total) &&
             qb_json_set_int(o, "words_unscored", r->words_unscored) &&
             qb_json_set_int(o, "words_tokenless", r->words_tokenless) &&
             qb_json_set(o, "entity_types", entity_types_json(r));
    return ok;
}

static void print_json(const eval_args *a, const qb_model *m, const qb_eval_result *r) {
    json_t *o = json_object();
    bool ok = o && qb_json_set_str(o, "model", a->dir) && qb_json_set_str(o, "data", a->p.data) &&
              qb_json_set_str(o, "task", r->task) && qb_json_set_int(o, "n", r->n) &&
              qb_json_set_int(o, "max_length", r->max_length) && qb_json_set_int(o, "truncated", r->n_truncated) &&
              qb_json_set_real(o, "accuracy", r->accuracy) && qb_json_set_real(o, "macro_f1", r->macro_f1) &&
              set_optional(o, r) && qb_json_set(o, "per_class", per_class_json(m, r)) &&
              qb_json_set_real(o, "seconds", r->seconds) && qb_json_set_real(o, "examples_per_s", r->n / r->seconds);
    qb_cli_put_json("eval", o, ok);
}

static int parse_args(int argc, char **argv, eval_args *a) {
    const char *v;
    qb_eval_params *p = &a->p;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--json")) a->json = true;
        else if ((v = qb_arg_value("--data", &i, argc, argv))) p->data = v;
        else if ((v = qb_arg_value("--reference", &i, argc, argv))) a->reference = v;
        else if ((v = qb_arg_value("--task", &i, argc, argv))) {
            static const char *tasks[] = {"auto", "sst2", "imdb", "conll", "tsv", "jsonl"};
            bool known = false;
            for (size_t t = 0; t < sizeof tasks / sizeof *tasks; t++) known |= !strcmp(v, tasks[t]);
            if (!known) return qb_usage_error("eval", "unknown --task '%s' (sst2, imdb, conll, tsv, jsonl, auto)", v);
            p->task = v;
        } else if ((v = qb_arg_value("--limit", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--limit", v, 1, 1 << 30, &p->limit)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--max-length", v, 3, 1 << 20, &p->max_length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--batch", v, 1, 4096, &p->batch)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--threads", v, 1, 1024, &p->n_threads)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--text-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--text-col", v, 0, 1000, &p->text_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--pair-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--pair-col", v, 0, 1000, &p->pair_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--label-col", &i, argc, argv))) {
            if (!qb_arg_int("eval", "--label-col", v, 0, 1000, &p->label_col)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--header", &i, argc, argv))) {
            p->header = !strcmp(v, "yes") ? 1 : !strcmp(v, "no") ? 0 : !strcmp(v, "auto") ? -1 : -2;
            if (p->header == -2) return qb_usage_error("eval", "--header is yes, no or auto, not '%s'", v);
        } else if (argv[i][0] == '-') return qb_usage_error("eval", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else return qb_usage_error("eval", "unexpected argument '%s'", argv[i]);
    }
    if (!a->dir) return qb_usage_error("eval", "missing MODEL_DIR");
    if (!p->data) return qb_usage_error("eval", "missing --data FILE");
    return QB_EXIT_OK;
}

int qb_cmd_eval(int argc, char **argv) {
    eval_args a = {.p = qb_eval_default_params()};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    qb_model *m = qb_cli_load("eval", a.dir, a.p.n_threads, NULL), *ref = NULL;
    if (m && a.reference) ref = qb_cli_load("eval", a.reference, a.p.n_threads, NULL);
    if (!m || (a.reference && !ref)) {
        qb_model_free(m);
        return QB_EXIT_FAIL;
    }
    qb_progress pr = {0};
    a.p.reference = ref;
    a.p.progress = qb_progress_callback;
    a.p.progress_ctx = &pr;
    qb_eval_result r;
    qb_error err = {0};
    if (qb_evaluate(m, &a.p, &r, &err)) {
        rc = qb_report_error("eval", &err);
    } else {
        if (a.json) print_json(&a, m, &r);
        else print_text(&a, m, &r);
        qb_eval_result_free(&r);
    }
    qb_model_free(ref);
    qb_model_free(m);
    return rc;
}
