/* qbert compare: every quantization method on one model and dataset, side
 * by side.  Each method is quantized (cached under REPORT_DIR/models) and
 * evaluated in this process with the same code as `qbert eval`; then all are
 * benchmarked in interleaved rounds, each round of each method a `qbert
 * bench` process of its own (so its peak RSS is its own).  Finished
 * evaluations are kept in REPORT_DIR/rows, so an interrupted run resumes
 * with --resume. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/sha256.h"
#include "report/report.h"

static const char help[] =
    "usage: qbert compare MODEL_DIR --data FILE --calib FILE -o REPORT_DIR [options]\n"
    "\n"
    "Quantizes MODEL_DIR with every method, evaluates each, benchmarks them all in\n"
    "interleaved rounds, and writes REPORT_DIR/report.{md,json,csv,html} with SVG\n"
    "charts: accuracy and agreement with FP32, size and compression, latency and\n"
    "throughput at the --batch sizes, peak RSS, speedup over FP32 and quantization time\n"
    "(the mixed method's includes tuning its map).\n"
    "\n"
    "Each method means what the same name means in 'qbert quantize':\n"
    "  fp32                the original weights\n"
    "  fp16, bf16          --method fp16 / bf16 (half linears, fp32 embeddings)\n"
    "  dynamic             --method dynamic (per-token activations, fp32 embeddings)\n"
    "  dynamic-emb8        --method dynamic --quantize-embeddings\n"
    "  dynamic-per-tensor  --method dynamic --activations per-tensor\n"
    "  dynamic-rr          --method dynamic --reduce-range (7-bit weights; AVX2 runs\n"
    "                      them on vpmaddubsw, exactly)\n"
    "  static              --method static (observer percentile:99.99)\n"
    "  static-minmax, static-mse, static-entropy   --method static --observer ...\n"
    "  static-int8-attention  --method static --int8-attention\n"
    "  int4, int3, int2    --method dynamic --bits B --quantize-embeddings: packed\n"
    "                      weights in groups of 128 on u8 inputs, embeddings at B bits\n"
    "                      (2 for int2 and ternary, 4 for int3)\n"
    "  int4-weight-only    --method weight-only --bits 4 --quantize-embeddings\n"
    "  ternary             --method dynamic --bits ternary --quantize-embeddings\n"
    "  kmeans4, kmeans3, kmeans2   --method weight-only --bits B --codebook kmeans\n"
    "                      --quantize-embeddings\n"
    "  gptq4, gptq3        int4 / int3 with --rounding gptq (Hessians from --calib)\n"
    "  int4-bc             int4 with --bias-correction (on --calib)\n"
    "  static-smooth       --method static --smoothquant 0.5\n"
    "  qat                 qbert qat, one epoch on the first --qat-n --calib rows\n"
    "                      (labelled; static int8, scored on at most 256 of them)\n"
    "  qat2-kd, ternary-kd the same at 2 bits (groups of 128) or ternary, distilled\n"
    "                      from the FP32 model (--distill), lr 1e-4, batch 32\n"
    "  mixed               --method dynamic --precision-map MAP: the map given with\n"
    "                      --precision-map, or one tuned by 'qbert sensitivity\n"
    "                      --suggest' on the first 400 --calib texts (the most\n"
    "                      sensitive linears in fp16, within --mixed-budget)\n"
    "\n"
    "Speed: every method runs --rounds rounds of 'qbert bench' (--runs runs each), in\n"
    "turn and then in reverse, each round a process of its own.  Latency and peak RSS\n"
    "are medians over rounds; speedup is the median of the per-round ratios to fp32.\n"
    "A row is marked noisy, and kept out of the findings' speed claims, when the\n"
    "interquartile range of its rounds' p50 latencies (or of its per-round speedups)\n"
    "is more than 25% of their median.  Speedup and compression need fp32 in --methods.\n"
    "\n"
    "  --methods LIST     comma-separated (default: fp32,fp16,bf16,dynamic,dynamic-emb8,\n"
    "                     static,static-mse,static-entropy,mixed)\n"
    "  --task T           dataset format, as in eval (default auto)\n"
    "  --calib FILE       calibration texts for static methods\n"
    "  --calib-n N        calibration texts (default 512)\n"
    "  --qat-n N          training rows of the qat method (default 2000)\n"
    "  --precision-map F  the map the mixed method uses\n"
    "  --mixed-budget PT  accuracy the tuned map may lose on the calibration texts\n"
    "                     (default 0.1 points)\n"
    "  --limit N          evaluate the first N examples only\n"
    "  --max-length L     truncation (default: the model's positions, at most 512)\n"
    "  --seq L            benchmark sequence length (default 128)\n"
    "  --batch 1,8        benchmark batch sizes: latency at the first, throughput at the last\n"
    "  --threads N        threads (default: all cores)\n"
    "  --rounds N         benchmark rounds per method (default 5; 3 or more tell a busy\n"
    "                     machine from a quiet one)\n"
    "  --runs N           timed runs per method and round (default 10)\n"
    "  --resume           keep the evaluations an earlier run of this command finished\n"
    "                     (the benchmark always runs again: its rounds must interleave);\n"
    "                     refused if the model, data or a setting they depend on changed\n"
    "  --force            write into an existing REPORT_DIR, first removing what compare\n"
    "                     wrote there (rows/, models/, sensitivity/, the report files);\n"
    "                     other files are left alone\n"
    "\n"
    "An existing, non-empty REPORT_DIR is refused without --resume or --force.  A run\n"
    "that fails leaves no REPORT_DIR it created.  A method that fails is a row saying\n"
    "why; the exit status is 1 when every method failed.\n";

typedef struct {
    const char *name;
    qb_quant_method method;
    const char *observer;  /* static methods */
    int act_per_token;
    bool emb, mixed, qat, attention8;
    int bits;              /* 0: 8 */
    bool ternary, kmeans;
    const char *command;   /* the same thing with qbert quantize (or qat) */
    bool gptq, bias_correction, smooth; /* error compensation, on the --calib texts */
    bool distill;          /* qat: with the FP32 model as teacher */
    bool reduce_range;     /* 7-bit weights */
} method_spec;

#define LOWBIT(nm, meth, b, tern, km, cmd) \
    {nm, meth, NULL, meth == QB_QUANT_DYNAMIC, true, false, false, false, b, tern, km, cmd, \
     false, false, false, false, false}

static const method_spec methods_known[] = {
    {"fp32", QB_QUANT_DYNAMIC, .command = "the original FP32 weights"},
    {"fp16", QB_QUANT_FP16, .command = "quantize --method fp16"},
    {"bf16", QB_QUANT_BF16, .command = "quantize --method bf16"},
    {"dynamic", QB_QUANT_DYNAMIC, .act_per_token = 1, .command = "quantize --method dynamic"},
    {"dynamic-emb8", QB_QUANT_DYNAMIC, .act_per_token = 1, .emb = true,
     .command = "quantize --method dynamic --quantize-embeddings"},
    {"dynamic-per-tensor", QB_QUANT_DYNAMIC, .command = "quantize --method dynamic --activations per-tensor"},
    {"dynamic-rr", QB_QUANT_DYNAMIC, .act_per_token = 1, .reduce_range = true,
     .command = "quantize --method dynamic --reduce-range"},
    {"static", QB_QUANT_STATIC, "percentile:99.99", .command = "quantize --method static"},
    {"static-minmax", QB_QUANT_STATIC, "minmax", .command = "quantize --method static --observer minmax"},
    {"static-mse", QB_QUANT_STATIC, "mse", .command = "quantize --method static --observer mse"},
    {"static-entropy", QB_QUANT_STATIC, "entropy", .command = "quantize --method static --observer entropy"},
    {"static-int8-attention", QB_QUANT_STATIC, "percentile:99.99", .attention8 = true,
     .command = "quantize --method static --int8-attention"},
    {"mixed", QB_QUANT_DYNAMIC, .act_per_token = 1, .mixed = true,
     .command = "quantize --method dynamic --precision-map MAP"},
    LOWBIT("int4", QB_QUANT_DYNAMIC, 4, false, false, "quantize --method dynamic --bits 4 --quantize-embeddings"),
    LOWBIT("int4-weight-only", QB_QUANT_WEIGHT_ONLY, 4, false, false,
           "quantize --method weight-only --bits 4 --quantize-embeddings"),
    LOWBIT("int3", QB_QUANT_DYNAMIC, 3, false, false, "quantize --method dynamic --bits 3 --quantize-embeddings"),
    LOWBIT("int2", QB_QUANT_DYNAMIC, 2, false, false, "quantize --method dynamic --bits 2 --quantize-embeddings"),
    LOWBIT("ternary", QB_QUANT_DYNAMIC, 8, true, false,
           "quantize --method dynamic --bits ternary --quantize-embeddings"),
    LOWBIT("kmeans4", QB_QUANT_WEIGHT_ONLY, 4, false, true,
           "quantize --method weight-only --bits 4 --codebook kmeans --quantize-embeddings"),
    LOWBIT("kmeans3", QB_QUANT_WEIGHT_ONLY, 3, false, true,
           "quantize --method weight-only --bits 3 --codebook kmeans --quantize-embeddings"),
    LOWBIT("kmeans2", QB_QUANT_WEIGHT_ONLY, 2, false, true,
           "quantize --method weight-only --bits 2 --codebook kmeans --quantize-embeddings"),
    {"gptq4", QB_QUANT_DYNAMIC, .act_per_token = 1, .emb = true, .bits = 4, .gptq = true,
     .command = "quantize --method dynamic --bits 4 --rounding gptq --quantize-embeddings"},
    {"gptq3", QB_QUANT_DYNAMIC, .act_per_token = 1, .emb = true, .bits = 3, .gptq = true,
     .command = "quantize --method dynamic --bits 3 --rounding gptq --quantize-embeddings"},
    {"int4-bc", QB_QUANT_DYNAMIC, .act_per_token = 1, .emb = true, .bits = 4, .bias_correction = true,
     .command = "quantize --method dynamic --bits 4 --bias-correction --quantize-embeddings"},
    {"static-smooth", QB_QUANT_STATIC, "percentile:99.99", .smooth = true,
     .command = "quantize --method static --smoothquant 0.5"},
    {"qat", QB_QUANT_STATIC, .qat = true,
     .command = "qat --epochs 1 on the first --qat-n --calib rows (static int8, EMA input scales)"},
    {"qat2-kd", QB_QUANT_STATIC, .qat = true, .bits = 2, .distill = true,
     .command = "qat --bits 2 --distill --epochs 1 --lr 1e-4 --batch 32 on the first --qat-n --calib rows"},
    {"ternary-kd", QB_QUANT_STATIC, .qat = true, .ternary = true, .distill = true,
     .command = "qat --bits ternary --distill --epochs 1 --lr 1e-4 --batch 32 on the first --qat-n --calib rows"},
};

#define MAX_METHODS 32
#define MAX_ROUNDS 64

typedef struct {
    const char *dir, *data, *task, *calib, *out, *map;
    const method_spec *methods[MAX_METHODS];
    int n_methods, calib_n, qat_n, limit, max_length, seq, batch_lat, batch_tput, threads, rounds, runs;
    bool resume, force;
    bool map_given;   /* --precision-map (else mixed tunes one, and map becomes it) */
    bool created;     /* REPORT_DIR is this run's: removed if the run fails */
    bool own;         /* compare's files in REPORT_DIR are this run's (not --resume) */
    double mixed_budget, tune_s; /* tune_s: what tuning the mixed map took */
    char tuned_map[4200]; /* REPORT_DIR/sensitivity/precision_map.json when tuned here */
    /* the inputs' identities, which saved rows and cached models record */
    char model_real[PATH_MAX], data_real[PATH_MAX], calib_real[PATH_MAX], map_real[PATH_MAX];
    char model_file[96], data_sha[65], calib_sha[65], map_sha[65];
    _Atomic int *child; /* the qbert child running now (0: none), for an interrupt to stop */
} compare_args;

static const method_spec *find_method(const char *name) {
    for (size_t i = 0; i < sizeof methods_known / sizeof *methods_known; i++)
        if (!strcmp(methods_known[i].name, name)) return &methods_known[i];
    return NULL;
}

static int parse_methods(compare_args *a, const char *list) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    a->n_methods = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const method_spec *m = find_method(t);
        if (!m) return qb_usage_error("compare", "unknown method '%s'", t);
        for (int k = 0; k < a->n_methods; k++) /* one row per name: a second would only repeat it */
            if (a->methods[k] == m) return qb_usage_error("compare", "--methods names '%s' twice", t);
        if (a->n_methods == MAX_METHODS) return qb_usage_error("compare", "at most %d methods", MAX_METHODS);
        a->methods[a->n_methods++] = m;
    }
    return a->n_methods ? QB_EXIT_OK : qb_usage_error("compare", "--methods is empty");
}

static int parse_args(int argc, char **argv, compare_args *a) {
    const char *v;
    int rc = parse_methods(a, "fp32,fp16,bf16,dynamic,dynamic-emb8,static,static-mse,static-entropy,mixed");
    for (int i = 1; !rc && i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--resume")) a->resume = true;
        else if (!strcmp(argv[i], "--force")) a->force = true;
        else if ((v = qb_arg_value("--methods", &i, argc, argv))) rc = parse_methods(a, v);
        else if ((v = qb_arg_value("--data", &i, argc, argv))) a->data = v;
        else if ((v = qb_arg_value("--task", &i, argc, argv))) a->task = v;
        else if ((v = qb_arg_value("--calib", &i, argc, argv))) a->calib = v;
        else if ((v = qb_arg_value("--precision-map", &i, argc, argv))) a->map = v;
        else if ((v = qb_arg_value("--mixed-budget", &i, argc, argv))) {
            char *end;
            a->mixed_budget = strtod(v, &end);
            if (*end || !(a->mixed_budget >= 0)) rc = qb_usage_error("compare", "--mixed-budget takes points, e.g. 0.1");
        }
        else if ((v = qb_arg_path("-o", &i, argc, argv)) || (v = qb_arg_path("--output", &i, argc, argv))) a->out = v;
        else if ((v = qb_arg_value("--calib-n", &i, argc, argv))) rc = !qb_arg_int("compare", "--calib-n", v, 1, 1 << 24, &a->calib_n);
        else if ((v = qb_arg_value("--qat-n", &i, argc, argv))) rc = !qb_arg_int("compare", "--qat-n", v, 1, 1 << 24, &a->qat_n);
        else if ((v = qb_arg_value("--limit", &i, argc, argv))) rc = !qb_arg_int("compare", "--limit", v, 1, 1 << 30, &a->limit);
        else if ((v = qb_arg_value("--max-length", &i, argc, argv))) rc = !qb_arg_int("compare", "--max-length", v, 3, 1 << 20, &a->max_length);
        else if ((v = qb_arg_value("--seq", &i, argc, argv))) rc = !qb_arg_int("compare", "--seq", v, 1, 1 << 20, &a->seq);
        else if ((v = qb_arg_value("--threads", &i, argc, argv))) rc = !qb_arg_int("compare", "--threads", v, 1, 1024, &a->threads);
        else if ((v = qb_arg_value("--runs", &i, argc, argv))) rc = !qb_arg_int("compare", "--runs", v, 1, 100000, &a->runs);
        else if ((v = qb_arg_value("--rounds", &i, argc, argv))) rc = !qb_arg_int("compare", "--rounds", v, 1, MAX_ROUNDS, &a->rounds);
        else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            int b[2], n = qb_arg_int_list("compare", "--batch", v, b, 2);
            if (n < 0) rc = 1;
            else a->batch_lat = b[0], a->batch_tput = b[n - 1];
        } else if (argv[i][0] == '-') rc = qb_usage_error("compare", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else rc = qb_usage_error("compare", "unexpected argument '%s'", argv[i]);
    }
    if (rc) return QB_EXIT_USAGE;
    if (!a->dir) return qb_usage_error("compare", "missing MODEL_DIR");
    if (!a->data) return qb_usage_error("compare", "missing --data FILE");
    if (!a->out) return qb_usage_error("compare", "missing -o REPORT_DIR");
    if (a->resume && a->force)
        return qb_usage_error("compare", "--resume keeps REPORT_DIR's rows and --force removes them: give one");
    a->map_given = a->map != NULL;
    bool needs_calib = false;
    for (int k = 0; k < a->n_methods; k++)
        needs_calib |= a->methods[k]->method == QB_QUANT_STATIC || (a->methods[k]->mixed && !a->map) ||
                       a->methods[k]->gptq || a->methods[k]->bias_correction;
    if (needs_calib && !a->calib)
        return qb_usage_error("compare", "static methods, qat, GPTQ and bias correction (and mixed without "
                              "--precision-map) need --calib FILE");
    return QB_EXIT_OK;
}

/* Everything that can be wrong with the request is found before the first
 * long step, and before REPORT_DIR is touched: the benchmark fits the model,
 * the dataset loads and fits it, the calibration and map files exist. */
static int check_request(const compare_args *a, qb_model *m) {
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (a->seq > in.max_position)
        return qb_usage_error("compare", "--seq %d exceeds the model's %d positions (max_position_embeddings)",
                              a->seq, in.max_position);
    if (a->max_length > in.max_position)
        return qb_usage_error("compare", "--max-length %d exceeds the model's %d positions (max_position_embeddings)",
                              a->max_length, in.max_position);
    qb_error err = {0};
    qb_eval_params ep = qb_eval_default_params();
    ep.data = a->data;
    ep.task = a->task ? a->task : "auto";
    ep.limit = 1;
    ep.max_length = a->max_length;
    qb_eval_result r;
    if (qb_evaluate(m, &ep, &r, &err)) return qb_report_error("compare", &err);
    qb_eval_result_free(&r);
    const char *files[] = {a->calib, a->map};
    for (int i = 0; i < 2; i++)
        if (files[i] && !qb_file_exists(files[i])) {
            fprintf(stderr, "qbert compare: error: %s: cannot open\n", files[i]);
            return QB_EXIT_FAIL;
        }
    return QB_EXIT_OK;
}

/* A path as one name whatever the working directory it was given from. */
static void real_path(const char *p, char out[PATH_MAX]) {
    if (!p) out[0] = 0;
    else if (!realpath(p, out)) snprintf(out, PATH_MAX, "%s", p);
}

/* model.safetensors by size and modification time: hashing a large model
 * on every run would cost seconds. */
static void model_file_id(const char *dir, char *out, size_t cap) {
    char p[PATH_MAX + 32], when[32];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (stat(p, &st)) {
        snprintf(out, cap, "(missing)");
        return;
    }
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime(&st.st_mtime));
    snprintf(out, cap, "%lld bytes, modified %s.%09ldZ", (long long)st.st_size, when, (long)st.st_mtim.tv_nsec);
}

/* The inputs' identities, which saved rows and cached models record. */
static int fingerprint(compare_args *a) {
    real_path(a->dir, a->model_real);
    real_path(a->data, a->data_real);
    real_path(a->calib, a->calib_real);
    real_path(a->map_given ? a->map : NULL, a->map_real);
    model_file_id(a->dir, a->model_file, sizeof a->model_file);
    const char *files[] = {a->data, a->calib, a->map_given ? a->map : NULL};
    char *shas[] = {a->data_sha, a->calib_sha, a->map_sha};
    qb_error err = {0};
    for (int k = 0; k < 3; k++) {
        shas[k][0] = 0;
        if (files[k] && qb_sha256_file(files[k], shas[k], &err)) return qb_report_error("compare", &err);
    }
    return QB_EXIT_OK;
}

/* What a saved evaluation depends on, as (flag, value) pairs in the order a
 * change is reported: --resume keeps a row only if every pair is this run's.
 * The speed settings are not here: the benchmark always runs again. */
typedef struct {
    const char *flag;
    char value[PATH_MAX + 32];
} setting;

#define MAX_SETTINGS 16

static void put_setting(setting *set, int *n, const char *flag, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put_setting(setting *set, int *n, const char *flag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set[*n].flag = flag;
    vsnprintf(set[*n].value, sizeof set[*n].value, fmt, ap);
    va_end(ap);
    ++*n;
}

static bool uses_calib_n(const method_spec *s) {
    return (s->method == QB_QUANT_STATIC && !s->qat) || s->gptq || s->bias_correction;
}

static int row_settings(const compare_args *a, const method_spec *s, setting *set) {
    int n = 0;
    bool tuned = s->mixed && !a->map_given; /* its map comes from the --calib texts */
    put_setting(set, &n, "MODEL_DIR", "%s", a->model_real);
    put_setting(set, &n, "model.safetensors", "%s", a->model_file);
    put_setting(set, &n, "--data", "%s", a->data_real);
    put_setting(set, &n, "--data contents", "sha256 %s", a->data_sha);
    put_setting(set, &n, "--task", "%s", a->task ? a->task : "auto");
    if (a->limit) put_setting(set, &n, "--limit", "%d", a->limit);
    else put_setting(set, &n, "--limit", "none");
    put_setting(set, &n, "--max-length", "%d", a->max_length);
    put_setting(set, &n, "qbert", "%s", QBERT_VERSION);
    if (uses_calib_n(s) || s->qat || tuned) {
        put_setting(set, &n, "--calib", "%s", a->calib_real);
        put_setting(set, &n, "--calib contents", "sha256 %s", a->calib_sha);
    }
    if (uses_calib_n(s)) put_setting(set, &n, "--calib-n", "%d", a->calib_n);
    if (s->qat) put_setting(set, &n, "--qat-n", "%d", a->qat_n);
    if (s->mixed && a->map_given) {
        put_setting(set, &n, "--precision-map", "%s", a->map_real);
        put_setting(set, &n, "--precision-map contents", "sha256 %s", a->map_sha);
    } else if (tuned) {
        put_setting(set, &n, "--precision-map", "none (tuned on --calib)");
        put_setting(set, &n, "--mixed-budget", "%g", a->mixed_budget);
    }
    return n;
}

static void row_path(const compare_args *a, const char *method, char *path, size_t cap) {
    snprintf(path, cap, "%s/rows/%s.json", a->out, method);
}

/* One saved row against this run: a row made from other inputs is refused
 * rather than silently kept or measured again over the user's results. */
static int check_saved_row(const compare_args *a, const method_spec *s, const json_t *saved, const char *path) {
    if (!json_is_object(saved)) {
        fprintf(stderr, "qbert compare: error: %s records no settings (an older qbert wrote it): use a new -o or "
                        "drop --resume\n", path);
        return QB_EXIT_FAIL;
    }
    setting set[MAX_SETTINGS];
    int n = row_settings(a, s, set);
    for (int k = 0; k < n; k++) {
        const char *was = qb_json_str(json_object_get(saved, set[k].flag), NULL);
        json_t *now = qb_json_strn(set[k].value, strlen(set[k].value)); /* as saved: UTF-8 */
        bool same = was && now && !strcmp(was, qb_json_str(now, NULL));
        json_decref(now);
        if (same) continue;
        fprintf(stderr, "qbert compare: error: %s was made with %s %s; this run has %s %s: use a new -o or drop "
                        "--resume\n", a->out, set[k].flag, was ? was : "(not recorded)", set[k].flag, set[k].value);
        return QB_EXIT_FAIL;
    }
    return QB_EXIT_OK;
}

static int check_saved_rows(const compare_args *a) {
    for (int k = 0; k < a->n_methods; k++) {
        char path[PATH_MAX + 64];
        json_t *j = NULL;
        row_path(a, a->methods[k]->name, path, sizeof path);
        if (!qb_file_exists(path) || qb_json_load_object(path, &j, NULL)) continue; /* evaluated again */
        int rc = check_saved_row(a, a->methods[k], json_object_get(j, "settings"), path);
        json_decref(j);
        if (rc) return rc;
    }
    return QB_EXIT_OK;
}

/* What compare writes in REPORT_DIR, and all --force removes: files of
 * other programs there are left alone, and an input of this run found
 * among compare's names (a models/ folder of the user's) stops it. */
static int remove_own_files(const compare_args *a) {
    static const char *const own[] = {"rows", "models", "sensitivity", "sensitivity.log", "sensitivity.signature",
                                      ".write-test"};
    const char *inputs[] = {a->dir, a->data, a->calib, a->map};
    char p[PATH_MAX + 64];
    for (size_t k = 0; k < sizeof own / sizeof *own; k++)
        for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++)
            if (qb_path_join(p, sizeof p, a->out, own[k]) && qb_path_within(inputs[i], p)) {
                fprintf(stderr, "qbert compare: error: %s: --force would remove %s, which this run reads: use "
                                "another -o\n", a->out, inputs[i]);
                return QB_EXIT_FAIL;
            }
    for (size_t k = 0; k < sizeof own / sizeof *own; k++)
        if (qb_path_join(p, sizeof p, a->out, own[k])) qb_remove_tree(p);
    qb_report_remove(a->out);
    return QB_EXIT_OK;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* REPORT_DIR: made here, or an empty one, or one --resume continues or
 * --force clears; an earlier run's rows and models never mix with this
 * run's unasked, and report files never land in an unrelated directory. */
static int prepare_report_dir(compare_args *a) {
    char rows[PATH_MAX + 64];
    snprintf(rows, sizeof rows, "%s/rows", a->out);
    if (mkdir(a->out, 0755) == 0) a->created = true;
    else if (errno != EEXIST || !is_dir(a->out)) {
        fprintf(stderr, "qbert compare: error: %s: not writable (%s)\n", a->out,
                errno == EEXIST ? "not a directory" : strerror(errno));
        return QB_EXIT_FAIL;
    } else if (!qb_dir_is_empty(a->out)) {
        if (a->resume && !is_dir(rows)) {
            fprintf(stderr, "qbert compare: error: %s has no rows/ of an earlier compare: drop --resume, or use "
                            "another -o\n", a->out);
            return QB_EXIT_FAIL;
        }
        if (!a->resume && !a->force) {
            fprintf(stderr, "qbert compare: error: %s already exists: use --resume to continue it, --force to "
                            "replace its report, or another -o\n", a->out);
            return QB_EXIT_FAIL;
        }
        if (a->force && remove_own_files(a)) return QB_EXIT_FAIL;
    }
    a->own = !a->resume;
    mkdir(rows, 0755);
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/.write-test", a->out);
    qb_error err = {0};
    if (qb_file_write_atomic(probe, "ok", 2, &err)) {
        fprintf(stderr, "qbert compare: error: %s: not writable (%s)\n", a->out, err.msg);
        return QB_EXIT_FAIL;
    }
    remove(probe);
    return QB_EXIT_OK;
}

static int preflight(compare_args *a, qb_model *m) {
    int rc = check_request(a, m);
    if (!rc) rc = fingerprint(a);
    if (!rc) rc = prepare_report_dir(a);
    if (!rc && a->resume) rc = check_saved_rows(a);
    return rc;
}

/* A failed run leaves no REPORT_DIR it created, and none of its own files
 * in one it was given; a resumed one keeps the rows it had. */
static void discard_failed(const compare_args *a) {
    if (a->created) qb_remove_tree(a->out);
    else if (a->own) remove_own_files(a);
}

static void describe(const method_spec *s, const compare_args *a, char *buf, size_t cap) {
    if (s->mixed) snprintf(buf, cap, "quantize --method dynamic --precision-map %s", a->map ? a->map : "(none)");
    else if (s->method == QB_QUANT_STATIC && !s->qat && !s->attention8 && !s->smooth)
        snprintf(buf, cap, "quantize --method static --observer %s --calib-n %d --max-length %d", s->observer,
                 a->calib_n, a->max_length);
    else snprintf(buf, cap, "%s", s->command);
}

/* The signature of a finished method, with the seconds it took, so a later
 * run with the same signature reuses its directory and time. */
static qb_status write_signature(const char *sig, const char *sig_path, double seconds, qb_error *err) {
    char full[8300];
    snprintf(full, sizeof full, "%sseconds=%.3f\n", sig, seconds);
    return qb_file_write_atomic(sig_path, full, strlen(full), err);
}

/* Whether sig_path holds sig (and then the seconds it records). */
static bool signature_matches(const char *sig_path, const char *sig, double *seconds) {
    char *old = NULL;
    size_t n, len = strlen(sig);
    if (!qb_file_exists(sig_path) || qb_file_read_all(sig_path, &old, &n, NULL)) return false;
    bool same = n > len + 8 && !strncmp(old, sig, len) && !strncmp(old + len, "seconds=", 8);
    if (same && seconds) *seconds = atof(old + len + 8);
    free(old);
    return same;
}

/* A short QAT run (one epoch on the first --qat-n calibration rows, which
 * must be labelled); the same rows, at most 256, score the epoch, so the
 * evaluation data plays no part. */
static qb_status qat_cached(const compare_args *a, const method_spec *s, const char *dir, const char *sig,
                            const char *sig_path, double *seconds, qb_error *err) {
    qb_train_params t = qb_train_default_params();
    t.data = t.eval_data = a->calib;
    t.limit = a->qat_n;
    t.eval_limit = a->qat_n < 256 ? a->qat_n : 256;
    t.epochs = 1;
    t.max_length = a->max_length;
    t.n_threads = a->threads;
    t.qat = 1;
    t.force = 1;
    t.parents = 1; /* REPORT_DIR/models/ is compare's own */
    if (s->bits || s->ternary) { /* packed low-bit weights: the settings qbert qat picks for them */
        t.qat_bits = s->bits ? s->bits : 2;
        t.qat_ternary = s->ternary;
        t.lr = 1e-4f;
        t.batch = 32;
    }
    t.distill = s->distill;
    qb_train_report rep;
    qb_status st = qb_train(a->dir, &t, dir, &rep, err);
    if (st) return st;
    *seconds = rep.seconds;
    return write_signature(sig, sig_path, rep.seconds, err);
}

/* Quantizes once; a later run with the same signature reuses the directory. */
static qb_status quantize_cached(const compare_args *a, const qb_model *m, const method_spec *s, char dir[4096],
                                 size_t cap, double *seconds, qb_error *err) {
    if (!strcmp(s->name, "fp32")) {
        snprintf(dir, cap, "%s", a->dir);
        *seconds = 0;
        return QB_OK;
    }
    char sig[8192], sig_path[4200], map_sha[65] = "";
    snprintf(dir, cap, "%s/models/%s", a->out, s->name);
    snprintf(sig_path, sizeof sig_path, "%s.signature", dir);
    if (s->mixed && a->map) qb_sha256_file(a->map, map_sha, NULL); /* a tuned map is made in this run */
    snprintf(sig, sizeof sig,
             "model=%s\nmodel_file=%s\nmethod=%s\nrecipe=%s\ncalib=%s\ncalib_sha256=%s\ncalib_n=%d\nqat_n=%d\n"
             "max_length=%d\nmap=%s\nmap_sha256=%s\nversion=%s\n",
             a->model_real, a->model_file, s->name, s->command, a->calib_real, a->calib_sha, a->calib_n,
             s->qat ? a->qat_n : 0, a->max_length, a->map ? a->map : "", map_sha, QBERT_VERSION);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (signature_matches(sig_path, sig, seconds) && qb_file_exists(cfg)) return QB_OK;
    if (s->qat) return qat_cached(a, s, dir, sig, sig_path, seconds, err);
    qb_quant_params p = qb_quant_default_params(s->method);
    p.act_per_token = s->act_per_token;
    p.quantize_embeddings = s->emb;
    p.bits = s->bits ? s->bits : 8;
    p.ternary = s->ternary;
    p.kmeans = s->kmeans;
    p.int8_attention = s->attention8;
    p.gptq = s->gptq;
    p.bias_correction = s->bias_correction;
    p.smoothquant = s->smooth;
    p.reduce_range = s->reduce_range;
    if (s->observer) p.observer = s->observer;
    p.calib_file = a->calib;
    p.calib_n = a->calib_n;
    p.max_length = a->max_length;
    p.n_threads = a->threads;
    p.precision_map = s->mixed ? a->map : NULL;
    p.force = 1;
    p.parents = 1;
    qb_quant_report rep;
    qb_status st = qb_quantize(m, &p, dir, &rep, err);
    if (st) return st;
    if (rep.warning[0]) fprintf(stderr, "qbert compare: warning: %s\n", rep.warning);
    *seconds = rep.seconds;
    return write_signature(sig, sig_path, rep.seconds, err);
}

/* The mixed method's map, tuned by `qbert sensitivity` on calibration
 * texts so the evaluation data plays no part in choosing it. */
static qb_status tune_mixed_map(compare_args *a, qb_error *err) {
    if (a->map) return QB_OK;
    char out[4200], log[4300], max_length[16], threads[16], budget[32];
    snprintf(out, sizeof out, "%.4000s/sensitivity", a->out);
    snprintf(log, sizeof log, "%s.log", out);
    snprintf(a->tuned_map, sizeof a->tuned_map, "%.4100s/precision_map.json", out);
    char sig[8192], sig_path[4300];
    snprintf(sig_path, sizeof sig_path, "%s.signature", out);
    snprintf(sig, sizeof sig,
             "model=%s\nmodel_file=%s\ncalib=%s\ncalib_sha256=%s\nmax_length=%d\nbudget=%g\nversion=%s\n",
             a->model_real, a->model_file, a->calib_real, a->calib_sha, a->max_length, a->mixed_budget,
             QBERT_VERSION);
    if (a->resume && qb_file_exists(a->tuned_map) && signature_matches(sig_path, sig, &a->tune_s)) {
        a->map = a->tuned_map;
        return QB_OK;
    }
    snprintf(max_length, sizeof max_length, "%d", a->max_length);
    snprintf(threads, sizeof threads, "%d", a->threads);
    snprintf(budget, sizeof budget, "%g", a->mixed_budget);
    char *argv[] = {"qbert",    "sensitivity", (char *)a->dir, "--data",    (char *)a->calib, "--limit", "400",
                    "--max-length", max_length, "--threads",   threads, "--suggest", budget, "-o", out, "--force", NULL};
    double t0 = qb_now();
    if (qb_cli_run_self(argv, log, a->child) != 0)
        return qb_fail(err, QB_ERR_IO, "tuning the mixed map failed: see %s", log);
    a->map = a->tuned_map;
    a->tune_s = qb_now() - t0;
    return write_signature(sig, sig_path, a->tune_s, err);
}

/* One round of one method's benchmark: `qbert bench` in a process of its
 * own (the code a user runs, and a peak RSS counted from its own start). */
typedef struct {
    double p50_b1, p90_b1, p50_tput, rss;
} bench_sample;

static qb_status bench_once(const compare_args *a, const char *dir, bench_sample *out, qb_error *err) {
    char seq[16], batches[32], threads[16], runs[16];
    snprintf(seq, sizeof seq, "%d", a->seq);
    snprintf(batches, sizeof batches, "%d,%d", a->batch_lat, a->batch_tput);
    snprintf(threads, sizeof threads, "%d", a->threads);
    snprintf(runs, sizeof runs, "%d", a->runs);
    char *argv[] = {"qbert", "bench",    (char *)dir, "--seq", seq,   "--batch", batches, "--threads",
                    threads, "--runs", runs,        "--warmup", "2", "--json",  NULL};
    int pid;
    FILE *f = qb_cli_open_self(argv, &pid);
    if (!f) return qb_fail(err, QB_ERR_IO, "cannot run qbert bench: %s", strerror(errno));
    atomic_store(a->child, pid);
    char line[4096];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = NULL;
        if (qb_json_parse(line, strlen(line), "bench output", &j, NULL)) continue;
        int batch = (int)qb_json_get_number(j, "batch", 0);
        double p50 = qb_json_get_number(j, "p50_ms", NAN);
        if (batch == a->batch_lat) {
            out->p50_b1 = p50;
            out->p90_b1 = qb_json_get_number(j, "p90_ms", NAN);
            got |= 1;
        }
        if (batch == a->batch_tput) {
            out->p50_tput = p50;
            got |= 2;
        }
        out->rss = qb_json_get_number(j, "peak_rss_mb", NAN);
        json_decref(j);
    }
    int rc = qb_cli_close_self(f, pid);
    atomic_store(a->child, 0);
    if (rc != 0 || got != 3) return qb_fail(err, QB_ERR_IO, "%s: qbert bench failed (status %d)", dir, rc);
    return QB_OK;
}

/* Median of n values (sorted in place), and (q3 - q1) / median. */
static double median_spread(double *v, int n, double *spread) {
    qb_latency q;
    qb_latency_summarize(v, n, &q);
    *spread = q.p50_ms > 0 ? (q.p75_ms - q.p25_ms) / q.p50_ms : NAN;
    return q.p50_ms;
}

/* The rounds of one method into its row; base: the fp32 rounds, or NULL. */
static void summarize_rounds(const compare_args *a, const bench_sample *s, const bench_sample *base,
                             qb_report_row *row) {
    int n = a->rounds;
    double v[MAX_ROUNDS], spread;
    for (int k = 0; k < n; k++) v[k] = s[k].p50_b1;
    row->p50_b1_ms = median_spread(v, n, &row->p50_spread);
    for (int k = 0; k < n; k++) v[k] = s[k].p90_b1;
    row->p90_b1_ms = median_spread(v, n, &spread);
    for (int k = 0; k < n; k++) v[k] = s[k].p50_tput;
    row->throughput_b8 = a->batch_tput / (median_spread(v, n, &spread) / 1e3);
    for (int k = 0; k < n; k++) v[k] = s[k].rss;
    row->peak_rss_mb = median_spread(v, n, &spread);
    row->speedup = row->speedup_spread = NAN;
    if (base) {
        for (int k = 0; k < n; k++) v[k] = base[k].p50_b1 / s[k].p50_b1;
        row->speedup = median_spread(v, n, &row->speedup_spread);
    }
    row->speed_noisy = !(row->p50_spread <= QB_REPORT_NOISY_SPREAD) ||
                       (base && !(row->speedup_spread <= QB_REPORT_NOISY_SPREAD));
}

/* Every method's benchmark, round by round: A B C ... then C B A, so load
 * that comes and goes falls on all of them alike, and each row's speedup
 * is the median of ratios taken minutes apart at most, not a whole run.
 * A method whose benchmark fails becomes a failed row. */
static qb_status bench_interleaved(const compare_args *a, qb_report *rep, char (*dirs)[4096], qb_error *err) {
    int n = rep->n_rows, fp32 = -1;
    bench_sample *s = calloc((size_t)n * a->rounds, sizeof *s);
    if (!s) return qb_fail(err, QB_ERR_NOMEM, "compare: out of memory");
    for (int r = 0; r < a->rounds; r++)
        for (int j = 0; j < n; j++) {
            int i = r % 2 ? n - 1 - j : j;
            qb_report_row *row = &rep->rows[i];
            if (!row->ok) continue;
            fprintf(stderr, "benchmark round %d/%d: %s\n", r + 1, a->rounds, row->method);
            qb_error e = {0};
            if (bench_once(a, dirs[i], &s[(size_t)i * a->rounds + r], &e)) {
                row->ok = false;
                snprintf(row->error, sizeof row->error, "%.250s", e.msg);
                fprintf(stderr, "%s: failed: %s\n", row->method, e.msg);
            }
        }
    for (int i = 0; i < n; i++)
        if (!strcmp(rep->rows[i].method, "fp32") && rep->rows[i].ok) fp32 = i;
    for (int i = 0; i < n; i++)
        if (rep->rows[i].ok)
            summarize_rounds(a, &s[(size_t)i * a->rounds], fp32 >= 0 ? &s[(size_t)fp32 * a->rounds] : NULL,
                             &rep->rows[i]);
    free(s);
    return QB_OK;
}

static qb_status evaluate(const compare_args *a, const char *dir, const qb_model *fp32, qb_report_row *row,
                          qb_error *err) {
    qb_model *m = NULL;
    qb_status st = qb_model_load(dir, NULL, &m, err);
    if (st) return st;
    qb_progress pr = {0};
    qb_eval_params ep = qb_eval_default_params();
    ep.data = a->data;
    ep.task = a->task ? a->task : "auto";
    ep.limit = a->limit;
    ep.max_length = a->max_length;
    ep.n_threads = a->threads;
    ep.reference = fp32;
    ep.progress = qb_progress_callback;
    ep.progress_ctx = &pr;
    qb_eval_result r;
    st = qb_evaluate(m, &ep, &r, err);
    if (!st) {
        row->accuracy = r.accuracy;
        row->macro_f1 = r.macro_f1;
        row->entity_f1 = r.token_task ? r.entity_f1 : -1;
        row->agreement = r.agreement;
        row->n_examples = r.n;
        row->n_truncated = r.n_truncated;
        qb_eval_result_free(&r);
    }
    qb_model_free(m);
    return st;
}

static int64_t file_size(const char *dir) {
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* A row's evaluation, saved so --resume can skip it (its speed is
 * measured again: benchmark rounds only compare within one run). */
static json_t *settings_json(const compare_args *a, const method_spec *s) {
    setting set[MAX_SETTINGS];
    int n = row_settings(a, s, set);
    json_t *o = json_object();
    bool ok = o != NULL;
    for (int k = 0; ok && k < n; k++) ok = qb_json_set_str(o, set[k].flag, set[k].value);
    return qb_json_built(o, ok);
}

static void save_row(const compare_args *a, const method_spec *s, const qb_report_row *r) {
    char path[PATH_MAX + 64];
    row_path(a, r->method, path, sizeof path);
    json_t *o = json_object();
    bool ok = o && qb_json_set_str(o, "method", r->method) && qb_json_set_real(o, "accuracy", r->accuracy) &&
              qb_json_set_real(o, "macro_f1", r->macro_f1) && qb_json_set_real(o, "entity_f1", r->entity_f1) &&
              qb_json_set_real(o, "agreement", r->agreement) && qb_json_set_int(o, "n_examples", r->n_examples) &&
              qb_json_set_int(o, "n_truncated", r->n_truncated) && qb_json_set_int(o, "size_bytes", r->size_bytes) &&
              qb_json_set_real(o, "quantize_s", r->quantize_s) && qb_json_set(o, "settings", settings_json(a, s));
    if (ok) qb_json_write_file(path, o, QB_JSON_LINE, NULL); /* without it, --resume measures the row again */
    json_decref(o);
}

/* A saved row; preflight has checked that it was made from this run's inputs. */
static bool load_row(const compare_args *a, qb_report_row *r) {
    char path[PATH_MAX + 64];
    row_path(a, r->method, path, sizeof path);
    json_t *j = NULL;
    if (!qb_file_exists(path) || qb_json_load_object(path, &j, NULL)) return false;
    r->accuracy = qb_json_get_number(j, "accuracy", NAN);
    r->macro_f1 = qb_json_get_number(j, "macro_f1", NAN);
    r->entity_f1 = qb_json_get_number(j, "entity_f1", -1);
    r->agreement = qb_json_get_number(j, "agreement", NAN);
    r->n_examples = (int)qb_json_get_number(j, "n_examples", 0);
    r->n_truncated = (int)qb_json_get_number(j, "n_truncated", 0);
    r->size_bytes = (int64_t)qb_json_get_number(j, "size_bytes", 0);
    r->quantize_s = qb_json_get_number(j, "quantize_s", 0);
    r->ok = true;
    json_decref(j);
    return true;
}

/* Quantize and evaluate one method; dir gets the model it benchmarks. */
static void run_method(compare_args *a, const qb_model *fp32, int i, qb_report_row *row, char dir[4096]) {
    const method_spec *s = a->methods[i];
    snprintf(row->method, sizeof row->method, "%s", s->name);
    qb_error err = {0};
    qb_status st = QB_OK;
    if (s->mixed && !a->map) {
        fprintf(stderr, "[%d/%d] %s: tune the precision map (qbert sensitivity on %s)\n", i + 1, a->n_methods,
                s->name, a->calib);
        st = tune_mixed_map(a, &err);
    }
    describe(s, a, row->description, sizeof row->description);
    if (!st) fprintf(stderr, "[%d/%d] %s: quantize\n", i + 1, a->n_methods, s->name);
    if (!st) st = quantize_cached(a, fp32, s, dir, 4096, &row->quantize_s, &err);
    if (!st && s->mixed && a->map == a->tuned_map) row->quantize_s += a->tune_s; /* the map is part of the method */
    if (!st && a->resume && load_row(a, row)) {
        fprintf(stderr, "[%d/%d] %s: evaluation kept from the earlier run\n", i + 1, a->n_methods, s->name);
        return;
    }
    if (!st) fprintf(stderr, "[%d/%d] %s: evaluate\n", i + 1, a->n_methods, s->name);
    if (!st) st = evaluate(a, dir, fp32, row, &err);
    row->size_bytes = file_size(dir);
    row->ok = st == QB_OK;
    if (st) {
        snprintf(row->error, sizeof row->error, "%.250s", err.msg);
        fprintf(stderr, "[%d/%d] %s: failed: %s\n", i + 1, a->n_methods, s->name, err.msg);
    } else {
        save_row(a, s, row);
    }
}

/* The calibration texts the models record they used: --calib-n, or fewer
 * where the file holds fewer (0: no model calibrated). */
static int calib_used(const qb_report *rep, char (*dirs)[4096]) {
    int used = 0;
    char path[4200];
    for (int i = 0; i < rep->n_rows; i++) {
        json_t *j = NULL;
        if (!rep->rows[i].ok || !qb_path_join(path, sizeof path, dirs[i], "config.json") ||
            qb_json_load_object(path, &j, NULL))
            continue;
        json_t *cal = json_object_get(json_object_get(j, "quantization_config"), "calibration");
        int n = (int)qb_json_get_number(cal, "n", 0);
        if (n > 0 && (!used || n < used)) used = n;
        json_decref(j);
    }
    return used;
}

static void fill_meta(const compare_args *a, const qb_model *m, const qb_report *rep, char (*dirs)[4096],
                      qb_report_meta *meta) {
    int used = a->calib ? calib_used(rep, dirs) : 0;
    qb_cli_fill_meta(meta, m, a->dir, a->data, a->threads, a->calib, used ? used : a->calib ? a->calib_n : 0);
    for (int i = 0; i < rep->n_rows; i++)
        if (rep->rows[i].ok) {
            meta->n_examples = rep->rows[i].n_examples;
            meta->n_truncated = rep->rows[i].n_truncated;
            break;
        }
    meta->seq = a->seq;
    meta->max_length = a->max_length;
    meta->bench_rounds = a->rounds;
    meta->bench_runs = a->runs;
    meta->batch_lat = a->batch_lat;
    meta->batch_tput = a->batch_tput;
    for (int i = 0; i < a->n_methods; i++)
        if (a->methods[i]->mixed && a->map) snprintf(meta->map_path, sizeof meta->map_path, "%s", a->map);
    meta->seed = 42; /* the benchmark's token-id generator */
}

static void compression(qb_report *r) {
    const qb_report_row *base = NULL;
    for (int i = 0; i < r->n_rows; i++)
        if (!strcmp(r->rows[i].method, "fp32") && r->rows[i].ok) base = &r->rows[i];
    for (int i = 0; i < r->n_rows; i++) {
        qb_report_row *row = &r->rows[i];
        row->compression = base && row->size_bytes > 0 ? (double)base->size_bytes / row->size_bytes : NAN;
    }
}

/* One quiet line when the machine was busy (the report says the rest). */
static void warn_noisy(const qb_report *r) {
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) n += r->rows[i].ok && r->rows[i].speed_noisy;
    if (n)
        fprintf(stderr, "qbert compare: warning: %d method(s) had benchmark rounds whose interquartile range "
                        "(of p50 latency or of speedup) exceeds %.0f%% of their median (a busy machine?): marked "
                        "noisy, and left out of the findings' speed claims\n",
                n, 100 * QB_REPORT_NOISY_SPREAD);
}

static void warn_truncated(const qb_model *m, const qb_report_meta *meta) {
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (meta->n_truncated)
        fprintf(stderr, "qbert compare: note: %d of %d examples lost tokens at --max-length %d (the model allows %d)\n",
                meta->n_truncated, meta->n_examples, meta->max_length, in.max_position);
}

/* Ctrl-C or a kill: the child running now is stopped, and what this run
 * had begun under models/ and rows/ is removed; finished rows stay for
 * --resume. */
static void interrupted(void *ctx) {
    const compare_args *a = ctx;
    int pid = atomic_load(a->child);
    if (pid > 0) kill(pid, SIGTERM);
    char path[PATH_MAX + 128];
    for (int k = 0; k < a->n_methods; k++) {
        snprintf(path, sizeof path, "%s/models/%s", a->out, a->methods[k]->name);
        qb_staging_discard_own(path);
        row_path(a, a->methods[k]->name, path, sizeof path);
        qb_staging_discard_own(path);
    }
}

int qb_cmd_compare(int argc, char **argv) {
    compare_args a = {.calib_n = 512, .qat_n = 2000, .seq = 128, .batch_lat = 1, .batch_tput = 8, .rounds = 5, .runs = 10,
                      .mixed_budget = 0.1};
    _Atomic int child = 0;
    a.child = &child;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.threads) a.threads = qb_default_threads();
    qb_model *fp32 = qb_cli_load("compare", a.dir, a.threads, NULL);
    if (!fp32) return QB_EXIT_FAIL;
    a.max_length = qb_model_max_length(fp32, a.max_length);
    rc = preflight(&a, fp32);
    if (!rc) qb_cli_on_interrupt("compare", interrupted, &a);
    qb_report rep = {.rows = calloc((size_t)a.n_methods, sizeof(qb_report_row)), .n_rows = a.n_methods};
    char(*dirs)[4096] = calloc((size_t)a.n_methods, sizeof *dirs);
    if (!rep.rows || !dirs) rc = QB_EXIT_FAIL;
    double t0 = qb_now();
    for (int i = 0; !rc && i < a.n_methods; i++) run_method(&a, fp32, i, &rep.rows[i], dirs[i]);
    qb_error err = {0};
    if (!rc && bench_interleaved(&a, &rep, dirs, &err)) rc = qb_report_error("compare", &err);
    if (!rc) {
        compression(&rep);
        fill_meta(&a, fp32, &rep, dirs, &rep.meta);
        warn_noisy(&rep);
        warn_truncated(fp32, &rep.meta);
        if (qb_report_write(&rep, a.out, &err)) rc = qb_report_error("compare", &err);
        else printf("wrote %s/report.md, report.html, report.json, report.csv and 4 SVG charts (%.0f s)\n", a.out,
                    qb_now() - t0);
    }
    int failed = 0;
    for (int i = 0; !rc && i < rep.n_rows; i++) failed += !rep.rows[i].ok;
    if (failed) /* the report stays: it says why each failed */
        fprintf(stderr, "qbert compare: %s: %d of %d methods failed\n", failed == rep.n_rows ? "error" : "warning",
                failed, rep.n_rows);
    if (rc) discard_failed(&a);
    else if (failed == rep.n_rows) rc = QB_EXIT_FAIL;
    free(dirs);
    free(rep.rows);
    qb_model_free(fp32);
    return rc;
}
