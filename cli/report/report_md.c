#include <math.h>

#include "report/report_internal.h"

/* A table cell: the value at a fixed precision, or n/a when not finite. */
static void cell(FILE *f, double v, int decimals, const char *note) {
    if (!isfinite(v)) fputs(" n/a |", f);
    else if (note) fprintf(f, " %.*f %s |", decimals, v, note);
    else fprintf(f, " %.*f |", decimals, v);
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
    qb_report_row_cells(f, row, a->ner, cell);
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
    int bl = qb_report_batch_lat(&r->meta), bt = qb_report_batch_tput(&r->meta);
    fprintf(f,
            "\n## Results\n\n"
            "Accuracy, F1 and agreement (with FP32 predictions) in %%; size in MB (10^6 bytes) of "
            "model.safetensors; latency at batch %d and throughput at batch %d with %d thread%s, medians over "
            "interleaved rounds; spread is the rounds' interquartile range over their median; speedup is the "
            "median over rounds of FP32 p50 / method p50, and it and compression need an fp32 row (noisy: the "
            "interquartile range of the rounds' p50 latencies or of their speedups exceeded %.0f%% of the median, "
            "so the row is left out of the speed findings); peak RSS is the benchmark process's, load and both "
            "batches included.\n\n",
            bl, bt, r->meta.threads, r->meta.threads == 1 ? "" : "s", 100 * QB_REPORT_NOISY_SPREAD);
    fprintf(f,
            "| method | accuracy %% | %s %% | agreement %% | size MB | compression x | p50 ms (b%d) | spread %% | "
            "p90 ms (b%d) | throughput b%d (seq/s) | speedup x | peak RSS MB | quantize s |\n",
            a->ner ? "entity F1" : "macro-F1", bl, bl, bt);
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
