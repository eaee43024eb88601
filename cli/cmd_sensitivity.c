/* qbert sensitivity: which linear layers lose accuracy when quantized.
 * Each linear is quantized alone (the rest stays FP32) and scored against
 * FP32: accuracy drop, and the output logits' SQNR and KL divergence.
 * --suggest MAX_DROP then keeps the most sensitive layers in FP16, one at
 * a time, until the whole model is within the budget, and writes the
 * precision map that `qbert quantize --precision-map` and `qbert compare`
 * (method mixed) use. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "report/report.h"

static const char help[] =
    "usage: qbert sensitivity MODEL_DIR --data FILE -o REPORT_DIR [options]\n"
    "\n"
    "Quantizes one linear layer at a time and measures the accuracy drop (entity F1\n"
    "for NER) and the SQNR and KL divergence of the output logits against FP32, then\n"
    "every linear at once the same way; a layer that alone loses more than the whole\n"
    "model, beyond noise, is named.  Writes sensitivity.md/.json/.csv and\n"
    "sensitivity.svg (bars of the drop, or of the SQNR when no layer changes the\n"
    "accuracy).  The suggested map gives the layers their formats: below 8 bits\n"
    "every linear, at 8 bits only those raised to fp16 (the classifier stays fp32,\n"
    "as in qbert quantize).  The quantized models it runs are scratch, removed at\n"
    "the end; a failed run leaves no REPORT_DIR it created.\n"
    "\n"
    "  --method M         dynamic (default) or static\n"
    "  --bits B           the quantized layers' weights: 8 (default, int8), 4, 3 or 2\n"
    "                     (packed, groups of 128); --suggest then raises the most\n"
    "                     sensitive layers a step at a time (B -> 4 -> 8 -> fp16)\n"
    "                     until the budget holds: the smallest map found greedily\n"
    "  --calib FILE       calibration texts (--method static; calibrated once)\n"
    "  --calib-n N        calibration texts (default 512)\n"
    "  --suggest DROP     keep the most sensitive layers in FP16 until the fully\n"
    "                     quantized model loses at most DROP points on --data; writes\n"
    "                     REPORT_DIR/precision_map.json\n"
    "  --holdout FILE     with --suggest: a second split the suggested map is also\n"
    "                     scored on\n"
    "  --force            write into an existing, non-empty REPORT_DIR, first removing\n"
    "                     what sensitivity writes there (other files are kept)\n"
    "  --task T, --limit N, --max-length L, --threads N   as in eval\n";

/* Scratch in REPORT_DIR, removed when the run ends. */
#define ONE_LAYER_MODEL ".one-layer-model"
#define SUGGESTED_MODEL ".suggested-model"
#define ONE_LAYER_MAP ".one-layer-map.json"
#define WHOLE_MAP ".whole-map.json"

typedef struct {
    const char *dir, *data, *out, *calib, *holdout, *task;
    qb_quant_method method;
    double suggest; /* points; < 0: no suggestion */
    int bits;       /* the layers' weights: 8, 4, 3 or 2 */
    int calib_n, limit, max_length, threads;
    char stats[4200]; /* calibration statistics, computed once */
    bool force;       /* an existing REPORT_DIR is reused, its earlier outputs removed */
    atomic_bool created; /* REPORT_DIR is this run's (read by the interrupt's thread too) */
} sens_args;

/* What sensitivity writes in REPORT_DIR: the scratch first, removed when
 * the run ends; all of it before a --force run, so no earlier map is
 * left beside a report that did not suggest one. */
static const char *const own_files[] = {ONE_LAYER_MODEL,    SUGGESTED_MODEL,    ONE_LAYER_MAP,     WHOLE_MAP,
                                        "calibration.json", "precision_map.json", "sensitivity.md", "sensitivity.json",
                                        "sensitivity.csv",  "sensitivity.svg"};
enum { N_SCRATCH = 4 };

/* A REPORT_DIR holding nothing but the scratch of a run that was killed
 * (SIGKILL leaves no time to remove it, staged copies included) is free. */
static bool holds_only_scratch(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool only = true;
    for (struct dirent *e; only && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        bool ours = false;
        for (size_t k = 0; k < N_SCRATCH && !ours; k++) ours = !strncmp(e->d_name, own_files[k], strlen(own_files[k]));
        only = ours;
    }
    closedir(d);
    return only;
}

static int parse_args(int argc, char **argv, sens_args *a) {
    const char *v;
    int rc = 0;
    for (int i = 1; !rc && i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--force")) a->force = true;
        else if ((v = qb_arg_value("--data", &i, argc, argv))) a->data = v;
        else if ((v = qb_arg_path("-o", &i, argc, argv)) || (v = qb_arg_path("--output", &i, argc, argv))) a->out = v;
        else if ((v = qb_arg_value("--calib", &i, argc, argv))) a->calib = v;
        else if ((v = qb_arg_value("--holdout", &i, argc, argv))) a->holdout = v;
        else if ((v = qb_arg_value("--task", &i, argc, argv))) a->task = v;
        else if ((v = qb_arg_value("--method", &i, argc, argv))) {
            if (strcmp(v, "dynamic") && strcmp(v, "static"))
                rc = qb_usage_error("sensitivity", "--method is dynamic or static, not '%s'", v);
            a->method = strcmp(v, "static") ? QB_QUANT_DYNAMIC : QB_QUANT_STATIC;
        } else if ((v = qb_arg_value("--bits", &i, argc, argv))) {
            rc = !qb_arg_bits("sensitivity", v, 0x11c, false, &a->bits);
        } else if ((v = qb_arg_value("--suggest", &i, argc, argv))) {
            char *end;
            a->suggest = strtod(v, &end);
            if (*end || !(a->suggest >= 0 && a->suggest <= 100))
                rc = qb_usage_error("sensitivity", "--suggest takes a drop in points, e.g. 0.5, not '%s'", v);
        } else if ((v = qb_arg_value("--calib-n", &i, argc, argv))) rc = !qb_arg_int("sensitivity", "--calib-n", v, 1, 1 << 24, &a->calib_n);
        else if ((v = qb_arg_value("--limit", &i, argc, argv))) rc = !qb_arg_int("sensitivity", "--limit", v, 1, 1 << 30, &a->limit);
        else if ((v = qb_arg_value("--max-length", &i, argc, argv))) rc = !qb_arg_int("sensitivity", "--max-length", v, 3, 1 << 20, &a->max_length);
        else if ((v = qb_arg_value("--threads", &i, argc, argv))) rc = !qb_arg_int("sensitivity", "--threads", v, 1, 1024, &a->threads);
        else if (argv[i][0] == '-') rc = qb_usage_error("sensitivity", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else rc = qb_usage_error("sensitivity", "unexpected argument '%s'", argv[i]);
    }
    if (rc) return QB_EXIT_USAGE;
    if (!a->dir) return qb_usage_error("sensitivity", "missing MODEL_DIR");
    if (!a->data) return qb_usage_error("sensitivity", "missing --data FILE");
    if (!a->out) return qb_usage_error("sensitivity", "missing -o REPORT_DIR");
    if (a->method == QB_QUANT_STATIC && !a->calib) return qb_usage_error("sensitivity", "--method static needs --calib FILE");
    if (a->method != QB_QUANT_STATIC && a->calib)
        return qb_usage_error("sensitivity", "--calib calibrates static inputs: it goes with --method static");
    if (a->holdout && a->suggest < 0)
        return qb_usage_error("sensitivity", "--holdout scores the suggested map: it goes with --suggest");
    if (!a->force && access(a->out, F_OK) == 0 && !qb_dir_is_empty(a->out) && !holds_only_scratch(a->out))
        return qb_usage_error("sensitivity", "%s already exists: use --force to replace its report, or another -o",
                              a->out);
    const char *in[] = {a->data, a->calib, a->holdout}; /* each read once a layer */
    qb_error err = {0};
    for (size_t k = 0; k < sizeof in / sizeof *in; k++) {
        if (in[k] && access(in[k], F_OK) != 0) return qb_usage_error("sensitivity", "%s: %s", in[k], strerror(errno));
        if (in[k] && qb_file_check_regular(in[k], &err)) return qb_usage_error("sensitivity", "%s", err.msg);
    }
    return QB_EXIT_OK;
}

/* Accuracy, or entity F1 for NER: the metric the budget is in. */
static double quality(const qb_eval_result *r) { return r->token_task ? r->entity_f1 : r->accuracy; }

static qb_status evaluate(const sens_args *a, const char *dir, const char *data, const qb_model *ref,
                          qb_eval_result *r, qb_error *err) {
    qb_model *m = NULL;
    qb_status st = qb_model_load(dir, NULL, &m, err);
    if (st) return st;
    qb_eval_params p = qb_eval_default_params();
    p.data = data;
    p.task = a->task ? a->task : "auto";
    p.limit = a->limit;
    p.max_length = a->max_length;
    p.n_threads = a->threads;
    p.reference = ref;
    st = qb_evaluate(m, &p, r, err);
    qb_model_free(m);
    return st;
}

/* A precision map: base ("*") for every linear, or nothing (the method's
 * own plan), then the n names, each with its value. */
static qb_status write_map(const char *path, const char *base, const char *const *names, const char *const *values,
                           int n, qb_error *err) {
    json_t *o = json_object();
    bool ok = o && (!base || qb_json_set_str(o, "*", base));
    for (int i = 0; ok && i < n; i++) ok = qb_json_set_str(o, names[i], values[i]);
    qb_status st =
        ok ? qb_json_write_file(path, o, QB_JSON_INDENT, err) : qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    json_decref(o);
    return st;
}

/* head: quantize the classifier too when the map does not say (the
 * method's default keeps it FP32, as `qbert quantize` does). */
static qb_status quantize_with_map(const sens_args *a, const qb_model *m, const char *map, bool head, const char *out,
                                   qb_error *err) {
    qb_quant_params p = qb_quant_default_params(a->method);
    p.precision_map = map;
    p.quantize_head = head;
    p.bits = a->bits;
    p.calib_stats = a->method == QB_QUANT_STATIC ? a->stats : NULL;
    p.max_length = a->max_length;
    p.n_threads = a->threads;
    p.force = 1;
    return qb_quantize(m, &p, out, NULL, err);
}

typedef struct {
    qb_sensitivity s;
    char **names;
    int n;
    double fp32_q;
} analysis;

/* Linear names in graph order, read from a plain load of the model. */
static int list_linears(const qb_model *m, analysis *an) {
    an->n = qb_model_linear_count(m);
    an->names = calloc((size_t)an->n, sizeof *an->names);
    an->s.rows = calloc((size_t)an->n, sizeof *an->s.rows);
    if (!an->names || !an->s.rows) return QB_EXIT_FAIL;
    for (int i = 0; i < an->n; i++) an->names[i] = strdup(qb_model_linear_name(m, i));
    return QB_EXIT_OK;
}

/* The format a quantized layer gets: "int8", or "int4"... */
static const char *layer_format(const sens_args *a) {
    static const char *names[] = {"", "", "int2", "int3", "int4"};
    return a->bits == 8 ? "int8" : names[a->bits];
}

static qb_status measure_each(const sens_args *a, const qb_model *m, analysis *an, qb_error *err) {
    char map[4300], qdir[4300];
    snprintf(map, sizeof map, "%s/" ONE_LAYER_MAP, a->out);
    snprintf(qdir, sizeof qdir, "%s/" ONE_LAYER_MODEL, a->out);
    double t0 = qb_now();
    for (int i = 0; i < an->n; i++) {
        qb_sensitivity_row *row = &an->s.rows[i];
        snprintf(row->name, sizeof row->name, "%s", an->names[i]);
        qb_eval_result r;
        const char *one[1] = {an->names[i]}, *fmt[1] = {layer_format(a)};
        qb_status st = write_map(map, "fp32", one, fmt, 1, err);
        if (!st) st = quantize_with_map(a, m, map, true, qdir, err);
        if (!st) st = evaluate(a, qdir, a->data, m, &r, err);
        if (st) return st;
        row->accuracy = quality(&r);
        row->drop = an->fp32_q - row->accuracy;
        row->sqnr_db = r.sqnr_db;
        row->kl = r.kl;
        row->agreement = r.agreement;
        qb_eval_result_free(&r);
        double el = qb_now() - t0;
        fprintf(stderr, "[%d/%d] %-55s drop %+6.2f pt  SQNR %5.1f dB  (ETA %.0f s)\n", i + 1, an->n, row->name,
                100 * row->drop, row->sqnr_db, el / (i + 1) * (an->n - i - 1));
    }
    remove(map);
    return QB_OK;
}

/* Every linear quantized the same way, classifier included (as each
 * single-layer row quantizes it alone), and which single layers lose more
 * than that beyond noise: two sigma of an accuracy difference come from
 * the predictions that changed (McNemar), at most those of both models. */
static qb_status measure_whole(const sens_args *a, const qb_model *m, analysis *an, qb_error *err) {
    char map[4300], qdir[4300];
    snprintf(map, sizeof map, "%s/" WHOLE_MAP, a->out);
    snprintf(qdir, sizeof qdir, "%s/" ONE_LAYER_MODEL, a->out);
    qb_eval_result r;
    qb_status st = write_map(map, layer_format(a), NULL, NULL, 0, err);
    if (!st) st = quantize_with_map(a, m, map, true, qdir, err);
    if (!st) st = evaluate(a, qdir, a->data, m, &r, err);
    remove(map);
    if (st) return st;
    an->s.whole_accuracy = quality(&r);
    an->s.whole_agreement = r.agreement;
    qb_eval_result_free(&r);
    double n = an->s.meta.n_examples, whole_drop = an->fp32_q - an->s.whole_accuracy;
    for (int i = 0; i < an->n; i++) {
        qb_sensitivity_row *row = &an->s.rows[i];
        double changed = (1 - row->agreement) * n + (1 - an->s.whole_agreement) * n;
        double noise = 2 * sqrt(changed > 1 ? changed : 1) / n;
        row->beyond_whole = row->drop > whole_drop + noise;
    }
    fprintf(stderr, "whole model (every linear %s %s): drop %+.2f pt\n", qb_quant_method_name(a->method),
            layer_format(a), 100 * whole_drop);
    return QB_OK;
}

static int by_drop(const void *x, const void *y) {
    const qb_sensitivity_row *a = *(qb_sensitivity_row *const *)x, *b = *(qb_sensitivity_row *const *)y;
    return (a->drop < b->drop) - (a->drop > b->drop);
}

/* The formats a layer is raised through, from the asked bits to fp16. */
static int ladder(const sens_args *a, const char **steps) {
    int n = 0;
    steps[n++] = layer_format(a);
    if (a->bits < 4) steps[n++] = "int4";
    if (a->bits < 8) steps[n++] = "int8";
    steps[n++] = "fp16";
    return n;
}

/* Greedy: every layer at the asked bits, then the most sensitive layers
 * raised one step at a time (to 4 bits, 8 bits, fp16), in order of their
 * drop, until the drop fits the budget (on the tuning split). */
static qb_status suggest(const sens_args *a, const qb_model *m, analysis *an, double *tuned_q, qb_error *err) {
    qb_sensitivity_row **order = calloc((size_t)an->n, sizeof *order);
    const char **names = calloc((size_t)an->n + 1, sizeof *names), **values = calloc((size_t)an->n + 1, sizeof *values);
    int *level = calloc((size_t)an->n + 1, sizeof *level);
    char map[4300], qdir[4300];
    snprintf(map, sizeof map, "%s/precision_map.json", a->out);
    snprintf(qdir, sizeof qdir, "%s/" SUGGESTED_MODEL, a->out);
    qb_status st = order && names && values && level ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "sensitivity: out of memory");
    /* the classifier (last in graph order) keeps the method's fp32 */
    int n = an->n - 1;
    for (int i = 0; !st && i < n; i++) order[i] = &an->s.rows[i];
    if (!st) qsort(order, (size_t)n, sizeof *order, by_drop);
    const char *steps[4];
    int n_steps = ladder(a, steps), step = 0, k = 0;
    for (int tries = 0; !st; tries++) {
        qb_eval_result r;
        int listed = 0;
        /* below 8 bits every layer is named, so the map alone gives the plan */
        for (int i = 0; i < n; i++)
            if (level[i] || a->bits != 8) names[listed] = order[i]->name, values[listed++] = steps[level[i]];
        st = write_map(map, NULL, names, values, listed, err);
        if (!st) st = quantize_with_map(a, m, map, false, qdir, err);
        if (!st) st = evaluate(a, qdir, a->data, NULL, &r, err);
        if (st) break;
        *tuned_q = quality(&r);
        qb_eval_result_free(&r);
        if (!tries) an->s.all_quantized_accuracy = *tuned_q;
        fprintf(stderr, "suggest: %d layer(s) raised, %d to %s: drop %+.2f pt (budget %.2f)\n", tries, k,
                step + 1 < n_steps ? steps[step + 1] : steps[step], 100 * (an->fp32_q - *tuned_q), a->suggest);
        if (100 * (an->fp32_q - *tuned_q) <= a->suggest + 1e-9 || step + 1 >= n_steps || n < 1) break;
        level[k] = step + 1;
        order[k]->kept = step + 1 == n_steps - 1;
        if (++k == n) k = 0, step++;
    }
    int count[4] = {0};
    for (int i = 0; !st && i < n; i++) count[level[i]]++;
    if (!st) {
        fprintf(stderr, "suggest: the map gives");
        for (int j = 0; j < n_steps; j++) fprintf(stderr, "%s %d %s", j ? "," : "", count[j], steps[j]);
        fprintf(stderr, " (the classifier stays fp32)\n");
    }
    free(order);
    free(names);
    free(values);
    free(level);
    return st;
}

static void remove_own(const char *out, size_t n) {
    char p[4400];
    for (size_t k = 0; k < n; k++)
        if (qb_path_join(p, sizeof p, out, own_files[k])) qb_remove_tree(p);
}

/* REPORT_DIR, made once the model has scored its data: a run that fails
 * before has written nothing. */
static qb_status make_report_dir(sens_args *a, qb_error *err) {
    if (mkdir(a->out, 0755) == 0) a->created = true;
    else if (errno != EEXIST) return qb_fail(err, QB_ERR_IO, "%s: cannot create it: %s", a->out, strerror(errno));
    else remove_own(a->out, sizeof own_files / sizeof *own_files);
    return QB_OK;
}

/* The scratch models and maps; a REPORT_DIR this run made, whole, if it failed. */
static void remove_scratch(const sens_args *a, bool failed) {
    if (failed && a->created) qb_remove_tree(a->out);
    else remove_own(a->out, N_SCRATCH);
}

/* Ctrl-C: the scratch models, whole or staged, and a REPORT_DIR this run made. */
static void interrupted(void *ctx) {
    const sens_args *a = ctx;
    char p[4400];
    for (size_t k = 0; k < N_SCRATCH; k++) {
        if (!qb_path_join(p, sizeof p, a->out, own_files[k])) continue;
        qb_staging_discard_own(p);
        qb_discard_tree(p);
    }
    if (atomic_load(&a->created)) qb_discard_tree(a->out);
}

static qb_status run(sens_args *a, const qb_model *m, analysis *an, qb_error *err) {
    qb_eval_result r;
    qb_status st = evaluate(a, a->dir, a->data, NULL, &r, err);
    if (st) return st;
    an->fp32_q = quality(&r);
    an->s.fp32_accuracy = an->fp32_q;
    qb_cli_fill_meta(&an->s.meta, m, a->dir, a->data, a->threads, a->calib, a->calib ? a->calib_n : 0);
    an->s.meta.n_examples = r.n;
    an->s.meta.max_length = a->max_length;
    an->s.meta.n_truncated = r.n_truncated;
    qb_eval_result_free(&r);
    snprintf(an->s.method, sizeof an->s.method, "%s", qb_quant_method_name(a->method));
    if ((st = make_report_dir(a, err))) return st;
    if (a->method == QB_QUANT_STATIC) {
        qb_quant_params p = qb_quant_default_params(QB_QUANT_STATIC);
        p.calib_file = a->calib;
        p.calib_n = a->calib_n;
        p.max_length = a->max_length;
        p.n_threads = a->threads;
        qb_quant_report rep;
        if ((st = qb_calibrate(m, &p, a->stats, &rep, err))) return st;
        an->s.meta.calib_n = rep.calib_used; /* the file may hold fewer than --calib-n */
    }
    if ((st = measure_each(a, m, an, err))) return st;
    if ((st = measure_whole(a, m, an, err))) return st;
    an->s.n_rows = an->n;
    an->s.all_quantized_accuracy = NAN;
    if (a->suggest >= 0) {
        double tuned = NAN;
        if ((st = suggest(a, m, an, &tuned, err))) return st;
        char map[4300], qdir[4300];
        snprintf(map, sizeof map, "%s/precision_map.json", a->out);
        snprintf(qdir, sizeof qdir, "%s/" SUGGESTED_MODEL, a->out);
        int kept = 0;
        for (int i = 0; i < an->n; i++) kept += an->s.rows[i].kept;
        printf("suggested map %s (%d of %d linears in fp16): on %s %.2f%% (fp32 %.2f%%, drop %.2f pt, budget %.2f pt)\n",
               map, kept, an->n, a->data, 100 * tuned, 100 * an->fp32_q, 100 * (an->fp32_q - tuned), a->suggest);
        if (a->holdout) {
            qb_eval_result q, f;
            if ((st = evaluate(a, qdir, a->holdout, NULL, &q, err))) return st;
            if ((st = evaluate(a, a->dir, a->holdout, NULL, &f, err))) return st;
            printf("on the holdout %s: %.2f%% (fp32 %.2f%%, drop %.2f pt)\n", a->holdout, 100 * quality(&q),
                   100 * quality(&f), 100 * (quality(&f) - quality(&q)));
            qb_eval_result_free(&q);
            qb_eval_result_free(&f);
        }
    }
    return qb_sensitivity_write(&an->s, a->out, err);
}

int qb_cmd_sensitivity(int argc, char **argv) {
    sens_args a = {.method = QB_QUANT_DYNAMIC, .suggest = -1, .bits = 8, .calib_n = 512};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.threads) a.threads = qb_default_threads();
    snprintf(a.stats, sizeof a.stats, "%s/calibration.json", a.out);
    qb_cli_on_interrupt("sensitivity", interrupted, &a);
    qb_model *m = qb_cli_load("sensitivity", a.dir, a.threads, NULL);
    if (!m) return QB_EXIT_FAIL;
    a.max_length = qb_model_max_length(m, a.max_length);
    analysis an = {0};
    qb_error err = {0};
    rc = list_linears(m, &an);
    if (!rc && run(&a, m, &an, &err)) rc = qb_report_error("sensitivity", &err);
    remove_scratch(&a, rc != 0);
    if (!rc) printf("wrote %s/sensitivity.md, .json, .csv, .svg\n", a.out);
    for (int i = 0; i < an.n; i++) free(an.names[i]);
    free(an.names);
    free(an.s.rows);
    qb_model_free(m);
    return rc;
}
