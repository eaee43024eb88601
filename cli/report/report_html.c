/* report.html: one self-contained page (no scripts, no network) with the
 * table, the findings and the four charts inline. */
#include <math.h>

#include "report/report_internal.h"
#include "report/svg.h"

static const char css[] =
    "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;"
    "color:#222;line-height:1.45}\n"
    "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}\n"
    "table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:4px 8px}\n"
    "th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
    "tr.failed td{color:#a00}tr.pareto td:first-child{font-weight:bold}\n"
    "dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:.9em}\n"
    "dl.meta dt{font-weight:bold}dl.meta dd{margin:0;word-break:break-all}\n"
    "figure{margin:16px 0}figcaption{font-size:.85em;color:#555;max-width:780px}\n"
    "svg{max-width:100%;height:auto}\n";

static void meta_item(FILE *f, const char *label, const char *value) {
    fprintf(f, "<dt>%s</dt><dd>", label);
    qb_svg_escape(f, value && *value ? value : "(not recorded)");
    fputs("</dd>\n", f);
}

static void meta(FILE *f, const qb_report_meta *m) {
    fputs("<dl class=\"meta\">\n", f);
    qb_report_meta_items(f, m, meta_item);
    fputs("</dl>\n", f);
}

static void td(FILE *f, double v, int decimals, const char *note) {
    if (!isfinite(v)) fputs("<td class=\"n\">n/a</td>", f);
    else if (note) fprintf(f, "<td class=\"n\">%.*f %s</td>", decimals, v, note);
    else fprintf(f, "<td class=\"n\">%.*f</td>", decimals, v);
}

static void table(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    int bl = qb_report_batch_lat(&r->meta), bt = qb_report_batch_tput(&r->meta);
    fprintf(f,
            "<table>\n<tr><th>method</th><th>accuracy %%</th><th>%s %%</th><th>agreement %%</th><th>size MB</th>"
            "<th>compression &#215;</th><th>p50 ms (b%d)</th><th>spread %%</th><th>p90 ms (b%d)</th>"
            "<th>throughput b%d (seq/s)</th>"
            "<th>speedup &#215;</th><th>peak RSS MB</th><th>quantize s</th></tr>\n",
            a->ner ? "entity F1" : "macro-F1", bl, bl, bt);
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        fprintf(f, "<tr class=\"%s\"><td title=\"", !row->ok ? "failed" : a->pareto[i] ? "pareto" : "");
        qb_svg_escape(f, row->description);
        fputs("\">", f);
        qb_svg_escape(f, row->method);
        fputs("</td>", f);
        if (!row->ok) {
            fputs("<td colspan=\"12\">failed: ", f);
            qb_svg_escape(f, row->error[0] ? row->error : "(no message)");
            fputs("</td></tr>\n", f);
            continue;
        }
        qb_report_row_cells(f, row, a->ner, td);
        fputs("</tr>\n", f);
    }
    fprintf(f,
            "</table>\n<p>Bold: Pareto-optimal for batch-%d latency vs accuracy. Size in MB = 10<sup>6</sup> bytes; "
            "speedup = the median over benchmark rounds of FP32 p50 / method p50 (noisy: the rounds disagreed, "
            "left out of the findings). Hover a method for how it was made.</p>\n",
            bl);
}

static void figure(FILE *f, const char *caption) {
    fputs("<figcaption>", f);
    qb_svg_escape(f, caption);
    fputs("</figcaption></figure>\n", f);
}

void qb_report_render_html(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    char caption[512];
    int bl = qb_report_batch_lat(&r->meta);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>qbert quantization comparison</title>\n<style>\n",
          f);
    fputs(css, f);
    fputs("</style>\n</head>\n<body>\n<h1>qbert quantization comparison</h1>\n", f);
    meta(f, &r->meta);
    fputs("<h2>Results</h2>\n", f);
    table(f, r, a);
    fputs("<h2>Findings</h2>\n<ul>\n", f);
    for (int i = 0; i < a->n_findings; i++) {
        fputs("<li>", f);
        qb_svg_escape(f, a->findings[i]);
        fputs("</li>\n", f);
    }
    fputs("</ul>\n<h2>Charts</h2>\n<figure>\n", f);
    qb_report_chart_accuracy_latency(f, r, a);
    snprintf(caption, sizeof caption, "Quality against batch-%d latency; the dashed line is the Pareto front.", bl);
    figure(f, caption);
    fputs("<figure>\n", f);
    qb_report_chart_speedup(f, r, a);
    snprintf(caption, sizeof caption, "Speedup over FP32 at batch %d (median over rounds of FP32 p50 / method p50).", bl);
    figure(f, caption);
    fputs("<figure>\n", f);
    qb_report_chart_size(f, r);
    figure(f, "Size of model.safetensors.");
    fputs("<figure>\n", f);
    qb_report_chart_radar(f, r, a);
    qb_report_radar_caption(caption, sizeof caption, &r->meta);
    figure(f, caption);
    fputs("</body>\n</html>\n", f);
}
