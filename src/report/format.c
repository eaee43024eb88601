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

void qb_report_put_json_num(FILE *f, double v) {
    if (isfinite(v)) put_exact(f, v);
    else fputs("null", f);
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

static void json_str(FILE *f, const char *key, const char *v, bool last) {
    fprintf(f, "    \"%s\": ", key);
    qb_json_write_str(f, v, strlen(v));
    fputs(last ? "\n" : ",\n", f);
}

void qb_report_put_meta_json(FILE *f, const qb_report_meta *m) {
    fputs("{\n", f);
    json_str(f, "model_dir", m->model_dir, false);
    json_str(f, "task", m->task, false);
    json_str(f, "data_path", m->data_path, false);
    json_str(f, "data_sha256", m->data_sha256, false);
    fprintf(f, "    \"n_examples\": %d,\n    \"bench_seq\": %d,\n    \"threads\": %d,\n", m->n_examples, m->seq,
            m->threads);
    json_str(f, "cpu_model", m->cpu_model, false);
    json_str(f, "cpu_flags", m->cpu_flags, false);
    json_str(f, "isa", m->isa, false);
    json_str(f, "qbert_version", m->qbert_version, false);
    json_str(f, "git_commit", m->git_commit, false);
    json_str(f, "compiler", m->compiler, false);
    fprintf(f, "    \"seed\": %llu,\n", (unsigned long long)m->seed);
    json_str(f, "calib_path", m->calib_path, false);
    fprintf(f, "    \"calib_n\": %d,\n    \"max_length\": %d,\n    \"n_truncated\": %d,\n", m->calib_n, m->max_length,
            m->n_truncated);
    fprintf(f, "    \"bench_rounds\": %d,\n    \"bench_runs\": %d,\n    \"batch_latency\": %d,\n"
               "    \"batch_throughput\": %d,\n", m->bench_rounds, m->bench_runs, m->batch_lat, m->batch_tput);
    json_str(f, "precision_map", m->map_path, false);
    json_str(f, "created", m->created, true);
    fputs("  }", f);
}
