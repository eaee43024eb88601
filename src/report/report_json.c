#include <math.h>
#include <string.h>

#include "core/json.h"
#include "report/report_internal.h"

static void key_num(FILE *f, const char *key, double v, bool ok) {
    fprintf(f, ", \"%s\": ", key);
    qb_report_put_json_num(f, ok ? v : NAN);
}

static void row_json(FILE *f, const qb_report_row *row, bool pareto) {
    bool ok = row->ok; /* a failed row's numbers were never measured: null */
    fputs("    {\"method\": ", f);
    qb_json_write_str(f, row->method, strnlen(row->method, sizeof row->method));
    fputs(", \"description\": ", f);
    qb_json_write_str(f, row->description, strnlen(row->description, sizeof row->description));
    fprintf(f, ", \"ok\": %s, \"error\": ", ok ? "true" : "false");
    if (ok) fputs("null", f);
    else qb_json_write_str(f, row->error, strnlen(row->error, sizeof row->error));
    key_num(f, "accuracy", row->accuracy, ok);
    key_num(f, "macro_f1", row->macro_f1, ok);
    key_num(f, "entity_f1", row->entity_f1, ok && row->entity_f1 >= 0);
    key_num(f, "agreement", row->agreement, ok);
    key_num(f, "n_examples", row->n_examples, ok);
    key_num(f, "size_bytes", (double)row->size_bytes, ok && row->size_bytes > 0);
    key_num(f, "size_mb", row->size_bytes / 1e6, ok && row->size_bytes > 0);
    key_num(f, "compression", row->compression, ok);
    key_num(f, "p50_b1_ms", row->p50_b1_ms, ok);
    key_num(f, "p90_b1_ms", row->p90_b1_ms, ok);
    key_num(f, "throughput_b8", row->throughput_b8, ok);
    key_num(f, "speedup", row->speedup, ok);
    key_num(f, "p50_spread", row->p50_spread, ok);
    key_num(f, "speedup_spread", row->speedup_spread, ok);
    fprintf(f, ", \"speed_noisy\": %s", ok && row->speed_noisy ? "true" : "false");
    key_num(f, "peak_rss_mb", row->peak_rss_mb, ok);
    key_num(f, "n_truncated", row->n_truncated, ok);
    key_num(f, "quantize_s", row->quantize_s, ok);
    fprintf(f, ", \"pareto\": %s}", pareto ? "true" : "false");
}

void qb_report_render_json(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    fputs("{\n  \"schema\": \"qbert.report/1\",\n  \"quality_metric\": ", f);
    fputs(a->ner ? "\"entity_f1\"" : "\"accuracy\"", f);
    fputs(",\n  \"meta\": ", f);
    qb_report_put_meta_json(f, &r->meta);
    fputs(",\n  \"rows\": [\n", f);
    for (int i = 0; i < r->n_rows; i++) {
        row_json(f, &r->rows[i], a->pareto[i]);
        fputs(i + 1 < r->n_rows ? ",\n" : "\n", f);
    }
    fputs("  ],\n  \"pareto\": [", f);
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) {
        if (!a->pareto[i]) continue;
        if (n++) fputs(", ", f);
        qb_json_write_str(f, r->rows[i].method, strnlen(r->rows[i].method, sizeof r->rows[i].method));
    }
    fputs("],\n  \"findings\": [\n", f);
    for (int i = 0; i < a->n_findings; i++) {
        fputs("    ", f);
        qb_json_write_str(f, a->findings[i], strlen(a->findings[i]));
        fputs(i + 1 < a->n_findings ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
}
