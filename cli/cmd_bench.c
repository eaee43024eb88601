/* qbert bench: latency, throughput and memory.  Synthetic mode times fixed
 * shapes, interleaving configurations round by round (A B A B) so that
 * background load hits them alike; data mode runs real sentences end to
 * end, tokenization included, padding only to the longest of each batch. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert bench MODEL_DIR [--seq 128] [--batch 1,8] [--threads N] [--runs N] [--json]\n"
    "       qbert bench MODEL_DIR --data FILE [--limit N] [--batch B] [--max-length L] [--json]\n"
    "\n"
    "Synthetic mode times one forward pass per shape (random token ids, every\n"
    "position real) and prints latency p50/p90/p99, throughput, load time and peak\n"
    "RSS.  Shapes are interleaved round by round so background load affects them alike.\n"
    "\n"
    "Data mode (--data) runs a dataset's sentences end to end: tokenization\n"
    "included, each batch padded only to its longest sentence, and prints\n"
    "sentences/s and tokens/s.\n"
    "\n"
    "  --seq L[,L...]     sequence lengths (default 128)\n"
    "  --batch B[,B...]   batch sizes (default 1,8; data mode: one value, default 1)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --runs N           timed runs per shape (default 20), after --warmup N (default 3)\n"
    "  --data FILE        dataset for data mode (--task as in eval; auto-detected;\n"
    "                     IMDB's \"<br />\" read as a space, as eval reads it)\n"
    "  --limit N          first N sentences (data mode)\n"
    "  --max-length L     truncation in data mode (default: the model's positions,\n"
    "                     at most 512, as in every command)\n"
    "  --json             one JSON object a configuration: seq, batch, threads, p50_ms,\n"
    "                     p90_ms, p99_ms, tokens_per_s, peak_rss_mb, ... (see docs/cli-json.md)\n";

#define MAX_CONFIGS 16

typedef struct {
    const char *dir, *data, *task;
    int seqs[MAX_CONFIGS], n_seqs, batches[MAX_CONFIGS], n_batches;
    int threads, runs, warmup, limit, max_length;
    bool json;
    char cpu[160];   /* the CPU's name, beside every figure */
} bench_args;

static bool set_latency(json_t *o, const qb_latency *l) {
    return qb_json_set_real(o, "p50_ms", l->p50_ms) && qb_json_set_real(o, "p90_ms", l->p90_ms) &&
           qb_json_set_real(o, "p99_ms", l->p99_ms);
}

static bool set_footer(json_t *o, const bench_args *a, double load_ms) {
    return qb_json_set_real(o, "peak_rss_mb", qb_peak_rss_mb()) && qb_json_set_real(o, "load_ms", load_ms) &&
           qb_json_set_str(o, "cpu", a->cpu);
}

/* One line a configuration, if built whole; timings with 9 digits. */
static void put_line(json_t *o, bool ok) {
    qb_cli_put_json("bench", o, ok);
}

static void print_config(const bench_args *a, const qb_model_info *in, const qb_latency *l, double load_ms) {
    double tps = l->batch * l->seq / (l->p50_ms / 1e3);
    if (a->json) {
        json_t *o = json_object();
        bool ok = o && qb_json_set_str(o, "mode", "synthetic") &&
                  qb_json_set_str(o, "model", a->dir) &&
                  qb_json_set_str(o, "isa", in->isa) && qb_json_set_int(o, "seq", l->seq) &&
                  qb_json_set_int(o, "batch", l->batch) && qb_json_set_int(o, "threads", a->threads) &&
                  qb_json_set_int(o, "runs", a->runs) && set_latency(o, l) &&
                  qb_json_set_real(o, "mean_ms", l->mean_ms) && qb_json_set_real(o, "min_ms", l->min_ms) &&
                  qb_json_set_real(o, "max_ms", l->max_ms) && qb_json_set_real(o, "tokens_per_s", tps) &&
                  qb_json_set_real(o, "sequences_per_s", l->batch / (l->p50_ms / 1e3)) &&
                  set_footer(o, a, load_ms);
        put_line(o, ok);
    } else {
        printf("%5d %5d %7d %9.2f %9.2f %9.2f %9.2f %11.0f %9.1f\n", l->seq, l->batch, a->threads, l->p50_ms,
               l->p90_ms, l->p99_ms, l->min_ms, tps, l->batch / (l->p50_ms / 1e3));
    }
}

static int bench_synthetic(qb_model *m, const bench_args *a, double load_ms) {
    qb_model_info in;
    qb_model_get_info(m, &in);
    int nc = a->n_seqs * a->n_batches;
    qb_latency lat[MAX_CONFIGS * MAX_CONFIGS];
    for (int c = 0; c < nc; c++) {
        lat[c] = (qb_latency){.seq = a->seqs[c / a->n_batches], .batch = a->batches[c % a->n_batches]};
        if (lat[c].seq > in.max_position)
            return qb_usage_error("bench", "--seq %d exceeds the model's %d positions", lat[c].seq, in.max_position);
    }
    qb_error err = {0};
    if (qb_bench_synthetic(m, lat, nc, a->runs, a->warmup, a->threads, &err)) return qb_report_error("bench", &err);
    if (!a->json)
        printf("model %s (%s, %s kernels, %s), load %.1f ms\ncpu %s\n%5s %5s %7s %9s %9s %9s %9s %11s %9s\n", a->dir,
               in.class_name, in.isa, qb_model_quant_summary(m), load_ms, a->cpu, "seq", "batch", "threads", "p50_ms",
               "p90_ms", "p99_ms", "min_ms", "tokens/s", "seqs/s");
    for (int c = 0; c < nc; c++) print_config(a, &in, &lat[c], load_ms);
    if (!a->json) printf("peak RSS %.1f MB (the process's, over every row above)\n", qb_peak_rss_mb());
    return QB_EXIT_OK;
}

static void print_data(const bench_args *a, const qb_model_info *in, const qb_bench_data_result *r, double load_ms) {
    double secs = r->tokenize_s + r->model_s;
    if (a->json) {
        json_t *o = json_object();
        bool ok = o && qb_json_set_str(o, "mode", "data") &&
                  qb_json_set_str(o, "model", a->dir) &&
                  qb_json_set_str(o, "data", a->data) &&
                  qb_json_set_str(o, "isa", in->isa) && qb_json_set_int(o, "n", r->n) &&
                  qb_json_set_int(o, "batch", a->batches[0]) &&
                  qb_json_set_int(o, "threads", a->threads) &&
                  qb_json_set_int(o, "max_length", r->max_length) &&
                  qb_json_set_real(o, "mean_tokens", (double)r->tokens / r->n) &&
                  qb_json_set_real(o, "sentences_per_s", r->n / secs) &&
                  qb_json_set_real(o, "tokens_per_s", r->tokens / secs) &&
                  qb_json_set_real(o, "seconds", secs) && qb_json_set_real(o, "tokenize_s", r->tokenize_s) &&
                  qb_json_set_real(o, "model_s", r->model_s) && set_latency(o, &r->batch) && set_footer(o, a, load_ms);
        put_line(o, ok);
        return;
    }
    printf("model        %s (%s kernels), load %.1f ms\ncpu          %s\n", a->dir, in->isa, load_ms, a->cpu);
    printf("data         %s, %d sentences, %.1f tokens on average, batch %d, %d thread%s\n", a->data, r->n,
           (double)r->tokens / r->n, a->batches[0], a->threads, a->threads == 1 ? "" : "s");
    printf("throughput   %.1f sentences/s, %.0f tokens/s (end to end, tokenization included)\n", r->n / secs,
           r->tokens / secs);
    printf("time         %.3f s: tokenize %.3f s, model %.3f s\n", secs, r->tokenize_s, r->model_s);
    printf("batch        p50 %.3f ms, p90 %.3f ms, p99 %.3f ms\n", r->batch.p50_ms, r->batch.p90_ms,
           r->batch.p99_ms);
    printf("peak RSS     %.1f MB\n", qb_peak_rss_mb());
}

static int bench_data(qb_model *m, const bench_args *a, double load_ms) {
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (a->max_length > in.max_position)
        return qb_usage_error("bench", "--max-length %d exceeds the model's %d positions", a->max_length,
                              in.max_position);
    qb_progress pr = {0};
    qb_bench_data_params p = {.data = a->data, .task = a->task, .limit = a->limit, .max_length = a->max_length,
                              .batch = a->batches[0], .n_threads = a->threads, .progress = qb_progress_callback,
                              .progress_ctx = &pr};
    qb_bench_data_result r;
    qb_error err = {0};
    if (qb_bench_data(m, &p, &r, &err)) return qb_report_error("bench", &err);
    print_data(a, &in, &r, load_ms);
    return QB_EXIT_OK;
}

static int parse_args(int argc, char **argv, bench_args *a) {
    const char *v, *synthetic_only = NULL, *data_only = NULL;
    bool batch_given = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seq") || !strcmp(argv[i], "--runs") || !strcmp(argv[i], "--warmup"))
            synthetic_only = argv[i];
        if (!strcmp(argv[i], "--task") || !strcmp(argv[i], "--limit") || !strcmp(argv[i], "--max-length"))
            data_only = argv[i];
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--json")) a->json = true;
        else if ((v = qb_arg_value("--seq", &i, argc, argv))) {
            if ((a->n_seqs = qb_arg_int_list("bench", "--seq", v, a->seqs, MAX_CONFIGS)) < 0) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            batch_given = true;
            if ((a->n_batches = qb_arg_int_list("bench", "--batch", v, a->batches, MAX_CONFIGS)) < 0)
                return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("bench", "--threads", v, 1, 1024, &a->threads)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--runs", &i, argc, argv))) {
            if (!qb_arg_int("bench", "--runs", v, 1, 1000000, &a->runs)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--warmup", &i, argc, argv))) {
            if (!qb_arg_int("bench", "--warmup", v, 0, 1000000, &a->warmup)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--data", &i, argc, argv))) a->data = v;
        else if ((v = qb_arg_value("--task", &i, argc, argv))) a->task = v;
        else if ((v = qb_arg_value("--limit", &i, argc, argv))) {
            if (!qb_arg_int("bench", "--limit", v, 1, 1 << 30, &a->limit)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("bench", "--max-length", v, 3, 1 << 20, &a->max_length)) return QB_EXIT_USAGE;
        } else if (argv[i][0] == '-') return qb_usage_error("bench", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else return qb_usage_error("bench", "unexpected argument '%s'", argv[i]);
    }
    if (!a->dir) return qb_usage_error("bench", "missing MODEL_DIR");
    /* an option the mode does not read would leave figures the user did not ask for */
    if (a->data && synthetic_only)
        return qb_usage_error("bench", "%s applies to synthetic mode, not to --data", synthetic_only);
    if (!a->data && data_only) return qb_usage_error("bench", "%s applies to data mode: it needs --data", data_only);
    if (a->data && !batch_given) a->n_batches = 1, a->batches[0] = 1;
    if (a->data && a->n_batches != 1) return qb_usage_error("bench", "data mode takes one --batch value");
    return QB_EXIT_OK;
}

int qb_cmd_bench(int argc, char **argv) {
    bench_args a = {.seqs = {128}, .n_seqs = 1, .batches = {1, 8}, .n_batches = 2,
                    .runs = 20, .warmup = 3, .max_length = 0};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!a.threads) a.threads = qb_default_threads();
    qb_cli_cpu_name(a.cpu, sizeof a.cpu);
    double load_s;
    qb_model *m = qb_cli_load("bench", a.dir, a.threads, &load_s);
    if (!m) return QB_EXIT_FAIL;
    a.max_length = qb_model_max_length(m, a.max_length);
    rc = a.data ? bench_data(m, &a, load_s * 1e3) : bench_synthetic(m, &a, load_s * 1e3);
    qb_model_free(m);
    return rc;
}
