#include <math.h>

#include "report/report_internal.h"

/* A table cell: the value at a fixed precision, or n/a when not finite. */
static void cell(FILE *f, double v, int decimals) {
    if (isfinite(v)) fprintf(f, " %.*f |", decimals, v);
    else fputs(" n/a |", f);
}

static void table_row(FILE *f, const qb_report_row *row, const qb_report_analysis *a, int i) {
    fputs("| ", f);
    qb_report_put_md(f, row->method);
    if (a->pareto[i]) fputs(" (Pareto)", f);
    fputs(" |", f);
    if (!row->ok) {
        fputs(" failed | | | | | | | | | | | |\n", f);
        return;
    }
    cell(f, 100 * row->accuracy, 2);
    cell(f, 100 * (a->ner ? row->entity_f1 : row->macro_f1), 2);
    cell(f, 100 * row->agreement, 2);
    cell(f, row->size_bytes > 0 ? row->size_bytes / 1e6 : NAN, 1);
    cell(f, row->compression, 2);
    cell(f, row->p50_b1_ms, 2);
    cell(f, 100 * row->p50_spread, 0);
    cell(f, row->p90_b1_ms, 2);
    cell(f, row->throughput_b8, 1);
    if (row->speed_noisy) fprintf(f, " %.2f noisy |", row->speedup);
    else cell(f, row->speedup, 2);
    cell(f, row->peak_rss_mb, 1);
    cell(f, row->quantize_s, 1);
    fputc('\n', f);
}

static void methods(FILE *f, const qb_report *r) {
    fputs("\n## Methods\n\n", f);
    for (int i = 0; i < r->n_rows; i++) {
        fputs("- ", f);
        qb_report_put_md(f, r->rows[i].method);
        fputs(": ", f);
        qb_report_put_md(f, r->rows[i].description[0] ? r->rows[i].description : "(no description)");
        fputc('\n', f);
    }
}

static void failed(FILE *f, const qb_report *r) {
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) {
        if (r->rows[i].ok) continue;
        if (n++ == 0) fputs("\n## Failed methods\n\n", f);
        fputs("- ", f);
        qb_report_put_md(f, r->rows[i].method);
        fputs(": ", f);
        qb_report_put_md(f, r->rows[i].error[0] ? r->rows[i].error : "(no message)");
        fputc('\n', f);
    }
}

void qb_report_render_md(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    fputs("# qbert quantization comparison\n\n", f);
    qb_report_put_meta_md(f, &r->meta);
    fprintf(f,
            "\n## Results\n\n"
            "Accuracy, F1 and agreement (with FP32 predictions) in %%; size in MB (10^6 bytes) of "
            "model.safetensors; latency at batch 1 and throughput at batch 8 with %d threads, medians over "
            "interleaved rounds; spread is the rounds' interquartile range over their median; speedup is the "
            "median over rounds of FP32 p50 / method p50 (noisy: the rounds disagreed by more than %.0f%%, so "
            "the row is left out of the speed findings).\n\n",
            r->meta.threads, 100 * QB_REPORT_NOISY_SPREAD);
    fprintf(f,
            "| method | accuracy %% | %s %% | agreement %% | size MB | compression x | p50 ms (b1) | spread %% | p90 ms (b1) | "
            "throughput b8 (seq/s) | speedup x | peak RSS MB | quantize s |\n",
            a->ner ? "entity F1" : "macro-F1");
    fputs("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", f);
    for (int i = 0; i < r->n_rows; i++) table_row(f, &r->rows[i], a, i);
    failed(f, r);
    methods(f, r);
    fputs("\n## Findings\n\n", f);
    for (int i = 0; i < a->n_findings; i++) {
        fputs("- ", f);
        qb_report_put_md(f, a->findings[i]);
        fputc('\n', f);
    }
    fputs("\nCharts: accuracy_latency.svg, size.svg, speedup.svg, radar.svg (also inline in report.html).\n", f);
}
