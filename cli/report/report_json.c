#include <string.h>

#include "core/json.h"
#include "report/report_internal.h"

static json_t *str_json(const char *s, size_t cap) { return qb_json_strn(s, strnlen(s, cap)); }

/* A failed row's numbers were never measured: null. */
static bool set_num(json_t *o, const char *key, double v, bool ok) {
    return qb_json_set(o, key, ok ? qb_json_real(v) : json_null());
}

static bool set_count(json_t *o, const char *key, long long v, bool ok) {
    return qb_json_set(o, key, ok ? json_integer(v) : json_null());
}

/* The b1 and b8 keys keep their names; batch_latency and batch_throughput
 * say the batches they were measured at. */
static json_t *row_json(const qb_report_row *row, bool pareto, const qb_report_meta *m) {
    bool ok = row->ok;
    json_t *o = json_object();
    bool built = o && qb_json_set(o, "method", str_json(row->method, sizeof row->method)) &&
                 qb_json_set(o, "description", str_json(row->description, sizeof row->description)) &&
                 qb_json_set(o, "ok", json_boolean(ok)) &&
                 qb_json_set(o, "error", ok ? json_null() : str_json(row->error, sizeof row->error)) &&
                 set_num(o, "accuracy", row->accuracy, ok) && set_num(o, "macro_f1", row->macro_f1, ok) &&
                 set_num(o, "entity_f1", row->entity_f1, ok && row->entity_f1 >= 0) &&
                 set_num(o, "agreement", row->agreement, ok) && set_count(o, "n_examples", row->n_examples, ok) &&
                 set_count(o, "size_bytes", (long long)row->size_bytes, ok && row->size_bytes > 0) &&
                 set_num(o, "size_mb", row->size_bytes / 1e6, ok && row->size_bytes > 0) &&
                 set_num(o, "compression", row->compression, ok) && set_num(o, "p50_b1_ms", row->p50_b1_ms, ok) &&
                 set_num(o, "p90_b1_ms", row->p90_b1_ms, ok) && set_num(o, "throughput_b8", row->throughput_b8, ok) &&
                 set_num(o, "speedup", row->speedup, ok) && set_num(o, "p50_spread", row->p50_spread, ok) &&
                 set_num(o, "speedup_spread", row->speedup_spread, ok) &&
                 qb_json_set(o, "speed_noisy", json_boolean(ok && row->speed_noisy)) &&
                 set_num(o, "peak_rss_mb", row->peak_rss_mb, ok) && set_count(o, "n_truncated", row->n_truncated, ok) &&
                 set_num(o, "quantize_s", row->quantize_s, ok) && qb_json_set(o, "pareto", json_boolean(pareto)) &&
                 qb_json_set(o, "batch_latency", json_integer(qb_report_batch_lat(m))) &&
                 qb_json_set(o, "batch_throughput", json_integer(qb_report_batch_tput(m)));
    return qb_json_built(o, built);
}

static json_t *report_json(const qb_report *r, const qb_report_analysis *a) {
    json_t *o = json_object(), *rows = json_array(), *pareto = json_array(), *findings = json_array();
    bool ok = o && rows && pareto && findings;
    for (int i = 0; ok && i < r->n_rows; i++) {
        ok = qb_json_push(rows, row_json(&r->rows[i], a->pareto[i], &r->meta));
        if (ok && a->pareto[i]) ok = qb_json_push(pareto, str_json(r->rows[i].method, sizeof r->rows[i].method));
    }
    for (int i = 0; ok && i < a->n_findings; i++) ok = qb_json_push(findings, qb_json_strn(a->findings[i], strlen(a->findings[i])));
    ok = ok && qb_json_set(o, "schema", json_string("qbert.report/1")) &&
         qb_json_set(o, "quality_metric", json_string(a->ner ? "entity_f1" : "accuracy")) &&
         qb_json_set(o, "meta", qb_report_meta_json(&r->meta));
    ok = qb_json_set(o, "rows", rows) && ok;
    ok = qb_json_set(o, "pareto", pareto) && ok;
    ok = qb_json_set(o, "findings", findings) && ok;
    return qb_json_built(o, ok);
}

void qb_report_render_json(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    qb_report_put_json(f, report_json(r, a));
}
