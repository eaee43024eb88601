#include <math.h>

#include "report/report_internal.h"

static const char header[] =
    "method,ok,error,accuracy,macro_f1,entity_f1,agreement,n_examples,size_bytes,size_mb,compression,"
    "p50_b1_ms,p90_b1_ms,throughput_b8,speedup,p50_spread,speedup_spread,speed_noisy,peak_rss_mb,n_truncated,"
    "quantize_s,pareto,description,batch_latency,batch_throughput\n";

static void num(FILE *f, double v, bool ok) {
    fputc(',', f);
    qb_report_put_csv_num(f, ok ? v : NAN);
}

/* The b1 and b8 columns keep their names; the last two say the batches they
 * were measured at. */
void qb_report_render_csv(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    int bl = qb_report_batch_lat(&r->meta), bt = qb_report_batch_tput(&r->meta);
    fputs(header, f);
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        bool ok = row->ok, sized = ok && row->size_bytes > 0;
        qb_report_put_csv(f, row->method);
        fprintf(f, ",%s,", ok ? "true" : "false");
        qb_report_put_csv(f, ok ? "" : row->error);
        num(f, row->accuracy, ok);
        num(f, row->macro_f1, ok);
        num(f, row->entity_f1, ok && row->entity_f1 >= 0);
        num(f, row->agreement, ok);
        num(f, row->n_examples, ok);
        num(f, (double)row->size_bytes, sized);
        num(f, row->size_bytes / 1e6, sized);
        num(f, row->compression, ok);
        num(f, row->p50_b1_ms, ok);
        num(f, row->p90_b1_ms, ok);
        num(f, row->throughput_b8, ok);
        num(f, row->speedup, ok);
        num(f, row->p50_spread, ok);
        num(f, row->speedup_spread, ok);
        fprintf(f, ",%s", ok && row->speed_noisy ? "true" : "false");
        num(f, row->peak_rss_mb, ok);
        num(f, row->n_truncated, ok);
        num(f, row->quantize_s, ok);
        fprintf(f, ",%s,", a->pareto[i] ? "true" : "false");
        qb_report_put_csv(f, row->description);
        fprintf(f, ",%d,%d\n", bl, bt);
    }
}
