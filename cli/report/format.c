#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/escape.h"
#include "core/json.h"
#include "report/report_internal.h"

/* A control character at p (C0, DEL, or C1 in UTF-8): its length, else 0. */
static size_t control_len(const char *p) {
    unsigned char c = (unsigned char)*p, d = (unsigned char)p[1];
    if (c < 0x20 || c == 0x7f) return 1;
    return c == 0xc2 && d >= 0x80 && d <= 0x9f ? 2 : 0;
}

void qb_report_put_md(FILE *f, const char *s) {
    for (const char *p = s ? s : ""; *p; p++) {
        size_t ctl = control_len(p);
        if (*p == '\n' || *p == '\r') fputc(' ', f);
        else if (ctl) qb_escape_write(f, p, ctl), p += ctl - 1;
        else if (*p == '<') fputs("&lt;", f);
        else if (strchr("\\`*_|[]#", *p)) fprintf(f, "\\%c", *p);
        else fputc(*p, f);
    }
}

/* Control characters other than line breaks are written as escapes (a
 * quoted field keeps its line breaks, as CSV allows). */
void qb_report_put_csv(FILE *f, const char *s) {
    s = s ? s : "";
    bool plain = !strpbrk(s, ",\"\r\n");
    for (const char *p = s; plain && *p; p++) plain = !control_len(p);
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        size_t ctl = *p == '\n' || *p == '\r' ? 0 : control_len(p);
        if (ctl) {
            qb_escape_write(f, p, ctl);
            p += ctl - 1;
            continue;
        }
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* The shortest of %.15g..%.17g that reads back exactly: readable numbers
 * without losing a bit. */
static void put_exact(FILE *f, double v) {
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

void qb_report_put_csv_num(FILE *f, double v) {
    if (isfinite(v)) put_exact(f, v);
}

static void md_item(FILE *f, const char *label, const char *value) {
    fprintf(f, "- %s: ", label);
    qb_report_put_md(f, value && *value ? value : "(not recorded)");
    fputc('\n', f);
}

void qb_report_meta_items(FILE *f, const qb_report_meta *m, qb_report_item_fn item) {
    char buf[1200];
    item(f, "Model", m->model_dir);
    item(f, "Task", m->task);
    snprintf(buf, sizeof buf, "%s (sha256 %s, n = %d, max length %d tokens, %d example(s) truncated)",
             m->data_path, m->data_sha256[0] ? m->data_sha256 : "not recorded", m->n_examples, m->max_length,
             m->n_truncated);
    item(f, "Dataset", buf);
    if (m->calib_path[0]) snprintf(buf, sizeof buf, "%s (n = %d)", m->calib_path, m->calib_n);
    else snprintf(buf, sizeof buf, "none");
    item(f, "Calibration", buf);
    if (m->map_path[0]) item(f, "Precision map (mixed)", m->map_path);
    if (m->bench_rounds) {
        snprintf(buf, sizeof buf,
                 "random ids, seq %d, batch %d (latency) and %d (throughput); %d rounds of %d runs per method, "
                 "methods in turn (then reversed), each round a process of its own",
                 m->seq, m->batch_lat, m->batch_tput, m->bench_rounds, m->bench_runs);
        item(f, "Benchmark", buf);
    }
    item(f, "CPU", m->cpu_model);
    item(f, "CPU flags", m->cpu_flags);
    item(f, "Kernels (ISA)", m->isa);
    snprintf(buf, sizeof buf, "%d", m->threads);
    item(f, "Threads", buf);
    snprintf(buf, sizeof buf, "%s (commit %s)", m->qbert_version, m->git_commit[0] ? m->git_commit : "unknown");
    item(f, "qbert", buf);
    item(f, "Compiler", m->compiler);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)m->seed);
    item(f, "Seed", buf);
    item(f, "Date (UTC)", m->created);
}

void qb_report_put_meta_md(FILE *f, const qb_report_meta *m) { qb_report_meta_items(f, m, md_item); }

int qb_report_batch_lat(const qb_report_meta *m) { return m->batch_lat > 0 ? m->batch_lat : 1; }

int qb_report_batch_tput(const qb_report_meta *m) { return m->batch_tput > 0 ? m->batch_tput : 8; }

void qb_report_row_cells(FILE *f, const qb_report_row *row, bool ner, qb_report_cell_fn cell) {
    cell(f, 100 * row->accuracy, 2, NULL);
    cell(f, 100 * (ner ? row->entity_f1 : row->macro_f1), 2, NULL);
    cell(f, 100 * row->agreement, 2, NULL);
    cell(f, row->size_bytes > 0 ? row->size_bytes / 1e6 : NAN, 1, NULL);
    cell(f, row->compression, 2, NULL);
    cell(f, row->p50_b1_ms, 2, NULL);
    cell(f, 100 * row->p50_spread, 0, NULL);
    cell(f, row->p90_b1_ms, 2, NULL);
    cell(f, row->throughput_b8, 1, NULL);
    cell(f, row->speedup, 2, row->speed_noisy ? "noisy" : NULL);
    cell(f, row->peak_rss_mb, 1, NULL);
    cell(f, row->quantize_s, 1, NULL);
}

static bool set_str(json_t *o, const char *key, const char *v) {
    return qb_json_set(o, key, qb_json_strn(v, strlen(v)));
}

static bool set_int(json_t *o, const char *key, long long v) { return qb_json_set(o, key, json_integer(v)); }

json_t *qb_report_meta_json(const qb_report_meta *m) {
    json_t *o = json_object();
    bool ok = o && set_str(o, "model_dir", m->model_dir) && set_str(o, "task", m->task) &&
              set_str(o, "data_path", m->data_path) && set_str(o, "data_sha256", m->data_sha256) &&
              set_int(o, "n_examples", m->n_examples) && set_int(o, "bench_seq", m->seq) &&
              set_int(o, "threads", m->threads) && set_str(o, "cpu_model", m->cpu_model) &&
              set_str(o, "cpu_flags", m->cpu_flags) && set_str(o, "isa", m->isa) &&
              set_str(o, "qbert_version", m->qbert_version) && set_str(o, "git_commit", m->git_commit) &&
              set_str(o, "compiler", m->compiler) &&
              qb_json_set(o, "seed", qb_json_u64(m->seed)) && set_str(o, "calib_path", m->calib_path) &&
              set_int(o, "calib_n", m->calib_n) && set_int(o, "max_length", m->max_length) &&
              set_int(o, "n_truncated", m->n_truncated) && set_int(o, "bench_rounds", m->bench_rounds) &&
              set_int(o, "bench_runs", m->bench_runs) && set_int(o, "batch_latency", m->batch_lat) &&
              set_int(o, "batch_throughput", m->batch_tput) && set_str(o, "precision_map", m->map_path) &&
              set_str(o, "created", m->created);
    return qb_json_built(o, ok);
}

void qb_report_put_json(FILE *f, json_t *doc) {
    qb_json_write(f, doc, QB_JSON_INDENT); /* NULL (out of memory) writes nothing */
    json_decref(doc);
}
