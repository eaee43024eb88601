/* Per-layer sensitivity: which linear layers cost the most accuracy when
 * quantized alone, as a table (md/json/csv) sorted by drop and a bar chart
 * with the layers --suggest keeps in higher precision highlighted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "report/report_internal.h"
#include "report/svg.h"

#define KEPT_COLOR "#D55E00"
#define QUANT_COLOR "#0072B2"

/* Largest drop first, then lowest SQNR (drops tie often: most layers
 * change no prediction); rows without a finite drop last, in input order. */
static int cmp_drop(const void *a, const void *b) {
    const qb_sensitivity_row *x = *(const qb_sensitivity_row *const *)a, *y = *(const qb_sensitivity_row *const *)b;
    bool fx = isfinite(x->drop), fy = isfinite(y->drop);
    if (fx != fy) return fx ? -1 : 1;
    if (fx && x->drop != y->drop) return x->drop < y->drop ? 1 : -1;
    if (x->sqnr_db != y->sqnr_db && isfinite(x->sqnr_db) && isfinite(y->sqnr_db))
        return x->sqnr_db > y->sqnr_db ? 1 : -1;
    return (x > y) - (x < y);
}

static void explain_exceptions(FILE *f, const qb_sensitivity *s, const qb_sensitivity_row *const *rows) {
    int n = 0;
    for (int i = 0; i < s->n_rows; i++) n += rows[i]->beyond_whole;
    if (!isfinite(s->whole_accuracy)) return;
    fprintf(f, "\nEvery linear quantized the same way: %.2f%% (drop %.2f pt, agreement with FP32 %.2f%%).",
            100 * s->whole_accuracy, 100 * (s->fp32_accuracy - s->whole_accuracy), 100 * s->whole_agreement);
    if (!n) {
        fputs(" No single layer loses more than that beyond noise (two sigma from the predictions that changed).\n",
              f);
        return;
    }
    fputs(" These layers alone lose more than the whole model, beyond noise (two sigma from the predictions that "
          "changed): ", f);
    for (int i = 0, k = 0; i < s->n_rows; i++)
        if (rows[i]->beyond_whole) {
            fputs(k++ ? ", " : "", f);
            qb_report_put_md(f, rows[i]->name);
        }
    fputs(". Quantization errors of different layers can cancel on these examples, so a layer's drop alone is "
          "not a lower bound for the whole model's; check these layers' SQNR, and the drop on more examples.\n", f);
}

static void put_md_num(FILE *f, double v, int decimals) {
    if (isfinite(v)) fprintf(f, " %.*f |", decimals, v);
    else fputs(" n/a |", f);
}

static void render_md(FILE *f, const qb_sensitivity *s, const qb_sensitivity_row *const *rows) {
    int kept = 0;
    for (int i = 0; i < s->n_rows; i++) kept += s->rows[i].kept;
    fputs("# qbert per-layer sensitivity\n\n", f);
    qb_report_put_meta_md(f, &s->meta);
    fputs("\nEach layer is quantized alone with ", f);
    qb_report_put_md(f, s->method);
    fprintf(f, "; drop is FP32 accuracy minus that accuracy, in points (FP32 %.2f%%", 100 * s->fp32_accuracy);
    if (isfinite(s->all_quantized_accuracy)) /* measured only for --suggest */
        fprintf(f, ", --suggest's start, the method's own plan, %.2f%%", 100 * s->all_quantized_accuracy);
    fprintf(f, "). SQNR and KL compare the output logits with FP32.");
    if (isfinite(s->all_quantized_accuracy))
        fprintf(f, " %d layer(s) are kept in higher precision by --suggest.", kept);
    fputs("\n\n", f);
    explain_exceptions(f, s, rows);
    fputs("\n| rank | layer | accuracy % | drop pt | SQNR dB | KL | kept | beyond whole |\n"
          "|--:|---|--:|--:|--:|--:|---|---|\n", f);
    for (int i = 0; i < s->n_rows; i++) {
        fprintf(f, "| %d | ", i + 1);
        qb_report_put_md(f, rows[i]->name);
        fputs(" |", f);
        put_md_num(f, 100 * rows[i]->accuracy, 2);
        put_md_num(f, 100 * rows[i]->drop, 2);
        put_md_num(f, rows[i]->sqnr_db, 1);
        if (isfinite(rows[i]->kl)) fprintf(f, " %.2e |", rows[i]->kl);
        else fputs(" n/a |", f);
        fputs(rows[i]->kept ? " kept |" : " |", f);
        fputs(rows[i]->beyond_whole ? " yes |\n" : " |\n", f);
    }
}

static json_t *row_json(const qb_sensitivity_row *r) {
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "name", qb_json_strn(r->name, strnlen(r->name, sizeof r->name))) &&
              qb_json_set(o, "accuracy", qb_json_real(r->accuracy)) && qb_json_set(o, "drop", qb_json_real(r->drop)) &&
              qb_json_set(o, "sqnr_db", qb_json_real(r->sqnr_db)) && qb_json_set(o, "kl", qb_json_real(r->kl)) &&
              qb_json_set(o, "agreement", qb_json_real(r->agreement)) &&
              qb_json_set(o, "kept", json_boolean(r->kept)) && qb_json_set(o, "beyond_whole", json_boolean(r->beyond_whole));
    return qb_json_built(o, ok);
}

static void render_json(FILE *f, const qb_sensitivity *s, const qb_sensitivity_row *const *rows) {
    json_t *o = json_object(), *arr = json_array();
    bool ok = o && arr && qb_json_set(o, "schema", json_string("qbert.sensitivity/1")) &&
              qb_json_set(o, "meta", qb_report_meta_json(&s->meta)) &&
              qb_json_set(o, "method", qb_json_strn(s->method, strnlen(s->method, sizeof s->method))) &&
              qb_json_set(o, "fp32_accuracy", qb_json_real(s->fp32_accuracy)) &&
              qb_json_set(o, "all_quantized_accuracy", qb_json_real(s->all_quantized_accuracy)) &&
              qb_json_set(o, "whole_accuracy", qb_json_real(s->whole_accuracy)) &&
              qb_json_set(o, "whole_agreement", qb_json_real(s->whole_agreement));
    for (int i = 0; ok && i < s->n_rows; i++) ok = qb_json_push(arr, row_json(rows[i]));
    ok = qb_json_set(o, "rows", arr) && ok;
    qb_report_put_json(f, qb_json_built(o, ok));
}

static void render_csv(FILE *f, const qb_sensitivity *s, const qb_sensitivity_row *const *rows) {
    fputs("rank,name,accuracy,drop,sqnr_db,kl,kept\n", f);
    for (int i = 0; i < s->n_rows; i++) {
        fprintf(f, "%d,", i + 1);
        qb_report_put_csv(f, rows[i]->name);
        const double v[] = {rows[i]->accuracy, rows[i]->drop, rows[i]->sqnr_db, rows[i]->kl};
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
            fputc(',', f);
            qb_report_put_csv_num(f, v[k]);
        }
        fprintf(f, ",%s\n", rows[i]->kept ? "true" : "false");
    }
}

/* The bar a layer gets: its accuracy drop in points, or, when no layer
 * changes the accuracy, its logits' SQNR (which still tells them apart). */
static double bar_value(const qb_sensitivity_row *r, bool by_drop) { return by_drop ? 100 * r->drop : r->sqnr_db; }

static void render_svg(FILE *f, const qb_sensitivity *s, const qb_sensitivity_row *const *rows) {
    const double bar = 16, gap = 6;
    double lo = 0, hi = 0, label_w = 60;
    bool by_drop = false;
    for (int i = 0; i < s->n_rows; i++) by_drop |= isfinite(rows[i]->drop) && rows[i]->drop != 0;
    int n = 0;
    for (int i = 0; i < s->n_rows; i++) {
        double v = bar_value(rows[i], by_drop);
        if (!isfinite(v)) continue;
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        label_w = fmax(label_w, qb_svg_text_width(rows[i]->name, 11));
        n++;
    }
    if (hi == lo) hi = lo + 1;
    const int W = (int)fmax(780, label_w + 520), H = (int)(60 + (n > 0 ? n : 1) * (bar + gap) + 100);
    qb_svg_plot p = {.left = label_w + 20, .top = 50, .height = (n > 0 ? n : 1) * (bar + gap), .x0 = lo, .x1 = hi,
                     .y0 = 0, .y1 = 1};
    p.width = W - p.left - 70;
    double xt[QB_SVG_MAX_TICKS];
    int nxt = qb_svg_nice_ticks(&p.x0, &p.x1, 6, xt);
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    qb_svg_begin(f, W, H, by_drop ? "Per-layer sensitivity" : "Per-layer sensitivity (no layer changes the accuracy)",
                 by_drop ? "Accuracy drop when each layer alone is quantized, largest first; layers kept in higher "
                           "precision by --suggest are highlighted."
                         : "Every accuracy drop is 0.00, so the bars show the SQNR of the logits against FP32 "
                           "when each layer alone is quantized, lowest (most sensitive) first.");
    qb_svg_axes(f, &p, xt, nxt, NULL, 0,
                by_drop ? "accuracy drop vs FP32 (points, higher = more sensitive)"
                        : "logit SQNR vs FP32 (dB, lower = more sensitive)",
                NULL);
    double x0 = qb_svg_px_x(&p, p.x0 > 0 ? p.x0 : 0);
    for (int i = 0, k = 0; i < s->n_rows; i++) {
        double v = bar_value(rows[i], by_drop);
        if (!isfinite(v)) continue;
        double y = p.top + gap / 2 + k++ * (bar + gap), x1 = qb_svg_px_x(&p, v);
        qb_svg_rect(f, fmin(x0, x1), y, fabs(x1 - x0), bar, rows[i]->kept ? KEPT_COLOR : QUANT_COLOR);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\" fill=\"#222222\">",
                p.left - 6, y + bar - 4);
        qb_svg_escape(f, rows[i]->name);
        fputs("</text>\n", f);
        qb_svg_textf(f, fmax(x0, x1) + 4, y + bar - 4, "start", 10, by_drop ? "%.2f" : "%.1f dB", v);
    }
    qb_svg_line(f, x0, p.top, x0, p.top + p.height, "#555555", 1, NULL);
    static const char *const labels[] = {"kept in higher precision (--suggest)", "quantized"};
    static const char *const colors[] = {KEPT_COLOR, QUANT_COLOR};
    qb_svg_legend(f, p.left, H - 30, labels, colors, 1);
    qb_svg_legend(f, p.left + 300, H - 30, labels + 1, colors + 1, 1);
    qb_svg_end(f);
}

qb_status qb_sensitivity_write(const qb_sensitivity *s, const char *dir, qb_error *err) {
    if (!s || !dir || s->n_rows < 0 || (s->n_rows > 0 && !s->rows))
        return qb_fail(err, QB_ERR_ARG, "sensitivity: no table or directory given");
    qb_status st = qb_report_prepare_dir(dir, err);
    if (st) return st;
    const qb_sensitivity_row **rows = malloc(((size_t)s->n_rows + 1) * sizeof *rows);
    if (!rows) return qb_fail(err, QB_ERR_NOMEM, "sensitivity: out of memory for %d rows", s->n_rows);
    for (int i = 0; i < s->n_rows; i++) rows[i] = &s->rows[i];
    qsort(rows, (size_t)s->n_rows, sizeof *rows, cmp_drop);
    static const struct {
        const char *name;
        void (*render)(FILE *, const qb_sensitivity *, const qb_sensitivity_row *const *);
    } outputs[] = {{"sensitivity.md", render_md},
                   {"sensitivity.json", render_json},
                   {"sensitivity.csv", render_csv},
                   {"sensitivity.svg", render_svg}};
    for (size_t i = 0; !st && i < sizeof outputs / sizeof outputs[0]; i++) {
        qb_report_out o;
        st = qb_report_out_open(&o, err);
        if (st) break;
        outputs[i].render(o.f, s, rows);
        st = qb_report_out_commit(&o, dir, outputs[i].name, err);
    }
    free(rows);
    return st;
}
