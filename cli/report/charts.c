/* The four comparison charts.  Failed rows and rows without the plotted
 * numbers are left out; each method keeps its palette colour (by row index)
 * in every chart. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"
#include "report/svg.h"

#define FRONT_COLOR "#C0392B"
#define SIZE_COLOR "#0072B2"
#define SPEEDUP_COLOR "#009E73"

void qb_report_radar_caption(char *buf, size_t cap, const qb_report_meta *m) {
    snprintf(buf, cap,
             "Each axis is divided by the best method's value, so 1 = best and the scale is a ratio: "
             "accuracy / highest accuracy; speed = lowest p50 latency (batch %d) / p50; "
             "compression / highest compression; memory = lowest peak RSS / peak RSS.",
             qb_report_batch_lat(m));
}

typedef struct {
    double x0, y0, x1, y1;
} box;

static bool overlaps(const box *a, const box *b) {
    return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

/* A label's box for text of width w whose baseline starts at (x, y). */
static box label_box(double x, double y, double w) { return (box){x, y - 12, x + w, y + 3}; }

/* Free: inside the plot (the right margin may take labels), and 2 px clear
 * of every box taken, since rendered glyphs differ a little from the
 * width estimate. */
static bool box_free(const box *b, const box *taken, int n, const qb_svg_plot *p, double svg_w) {
    if (b->x0 < p->left + 2 || b->x1 > svg_w - 4 || b->y0 < p->top || b->y1 > p->top + p->height) return false;
    box pad = {b->x0 - 2, b->y0 - 2, b->x1 + 2, b->y1 + 2};
    for (int i = 0; i < n; i++)
        if (overlaps(&pad, &taken[i])) return false;
    return true;
}

/* The nearest free spot for a point's label: right of the point, left, above,
 * below, then on rings further out (joined to the point by a leader line),
 * never over another label or marker, never outside the plot.  Crowded
 * points (near-equal latencies) are what every compare run has. */
static box place_label(double px, double py, double w, const box *taken, int n, const qb_svg_plot *p,
                       double svg_w) {
    for (int ring = 0; ring < 40; ring++) {
        double r = 10 + 14 * ring;
        int steps = 8 + 4 * ring;
        for (int k = 0; k < steps; k++) {
            double ang = 2 * M_PI * k / steps, dx = r * cos(ang), dy = r * sin(ang);
            box b = label_box(dx >= 0 ? px + dx : px + dx - w, py + dy + 4, w);
            if (box_free(&b, taken, n, p, svg_w)) return b;
        }
    }
    return label_box(px + 8, py + 4, w); /* no room anywhere: the plot is full */
}

static int cmp_by_latency(const void *a, const void *b) {
    const qb_report_row *x = *(const qb_report_row *const *)a, *y = *(const qb_report_row *const *)b;
    return (x->p50_b1_ms > y->p50_b1_ms) - (x->p50_b1_ms < y->p50_b1_ms);
}

static void pareto_front(FILE *f, const qb_report *r, const qb_report_analysis *a, const qb_svg_plot *p) {
    const qb_report_row **front = malloc(((size_t)r->n_rows + 1) * sizeof *front);
    double *xs = malloc(((size_t)r->n_rows + 1) * 2 * sizeof *xs);
    if (!front || !xs) {
        free(front);
        free(xs);
        return;
    }
    double *ys = xs + r->n_rows + 1;
    int n = 0;
    for (int i = 0; i < r->n_rows; i++)
        if (a->pareto[i]) front[n++] = &r->rows[i];
    qsort(front, (size_t)n, sizeof *front, cmp_by_latency);
    fputs("<g id=\"pareto-front\" data-methods=\"", f);
    for (int i = 0; i < n; i++) {
        xs[i] = qb_svg_px_x(p, front[i]->p50_b1_ms);
        ys[i] = qb_svg_px_y(p, 100 * qb_report_quality(front[i], a->ner));
        if (i) fputc(' ', f);
        qb_svg_escape(f, front[i]->method);
    }
    fputs("\">\n", f);
    if (n > 0) qb_svg_polyline(f, xs, ys, n, FRONT_COLOR, 2, "6 4");
    for (int i = 0; i < n; i++) qb_svg_circle(f, xs[i], ys[i], 10, "none", FRONT_COLOR);
    fputs("</g>\n", f);
    free(front);
    free(xs);
}

/* Every marker's box is taken before any label is placed, so no label
 * covers a marker; each label then keeps clear of the labels before it. */
static void points_with_labels(FILE *f, const qb_report *r, const qb_report_analysis *a, const qb_svg_plot *p,
                               double svg_w) {
    box *taken = malloc(((size_t)r->n_rows * 2 + 1) * sizeof *taken);
    double *px = malloc(((size_t)r->n_rows * 2 + 1) * sizeof *px), *py = px ? px + r->n_rows : NULL;
    int nt = 0;
    for (int i = 0; i < r->n_rows && taken && px; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!qb_report_row_plottable(row, a->ner)) continue;
        px[i] = qb_svg_px_x(p, row->p50_b1_ms);
        py[i] = qb_svg_px_y(p, 100 * qb_report_quality(row, a->ner));
        taken[nt++] = (box){px[i] - 7, py[i] - 7, px[i] + 7, py[i] + 7};
    }
    for (int i = 0; i < r->n_rows && taken && px; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!qb_report_row_plottable(row, a->ner)) continue;
        double w = qb_svg_text_width(row->method, 12) * (a->pareto[i] ? 1.2 : 1);
        box b = place_label(px[i], py[i], w, taken, nt, p, svg_w);
        taken[nt++] = b;
        fputs("<g data-method=\"", f);
        qb_svg_escape(f, row->method);
        fputs("\">\n", f);
        double cx = fmin(fmax(px[i], b.x0), b.x1), cy = fmin(fmax(py[i], b.y0), b.y1);
        if (hypot(cx - px[i], cy - py[i]) > 12) qb_svg_line(f, px[i], py[i], cx, cy, "#999999", 0.8, NULL);
        qb_svg_circle(f, px[i], py[i], 6, qb_svg_color(i), "#ffffff");
        fprintf(f, "<text class=\"point-label\" x=\"%.1f\" y=\"%.1f\" font-size=\"12\"%s fill=\"#222222\">", b.x0,
                b.y1 - 3, a->pareto[i] ? " font-weight=\"bold\"" : "");
        qb_svg_escape(f, row->method);
        fputs("</text>\n</g>\n", f);
    }
    free(taken);
    free(px);
}

void qb_report_chart_accuracy_latency(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    const int W = 780, H = 520;
    const char *what = qb_report_quality_name(a->ner);
    int bl = qb_report_batch_lat(&r->meta);
    char title[96], ylabel[64], xlabel[96], desc[320];
    snprintf(title, sizeof title, "%s vs latency (batch %d)", a->ner ? "Entity F1" : "Accuracy", bl);
    snprintf(ylabel, sizeof ylabel, "%s (%%)", what);
    snprintf(xlabel, sizeof xlabel, "p50 latency at batch %d (ms, lower is better)", bl);
    snprintf(desc, sizeof desc,
             "Each successful method as a point: p50 latency at batch %d (x) against quality (y). "
             "The dashed line joins the Pareto-optimal methods: none of the others is both faster and more "
             "accurate.", bl);
    qb_svg_plot p = {.left = 90, .top = 50, .width = W - 90 - 60, .height = H - 50 - 110,
                     .x0 = 0, .x1 = 0, .y0 = INFINITY, .y1 = -INFINITY};
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!qb_report_row_plottable(row, a->ner)) continue;
        double q = 100 * qb_report_quality(row, a->ner);
        p.x1 = fmax(p.x1, row->p50_b1_ms);
        p.y0 = fmin(p.y0, q);
        p.y1 = fmax(p.y1, q);
        n++;
    }
    /* Latency starts at zero so distances read as ratios; accuracy is zoomed
     * to the data, with half a point of room, since differences are small. */
    p.y0 -= 0.5;
    p.y1 += 0.5;
    double xt[QB_SVG_MAX_TICKS], yt[QB_SVG_MAX_TICKS];
    int nxt = qb_svg_nice_ticks(&p.x0, &p.x1, 6, xt), nyt = qb_svg_nice_ticks(&p.y0, &p.y1, 6, yt);
    qb_svg_begin(f, W, H, title, desc);
    qb_svg_axes(f, &p, xt, nxt, yt, nyt, xlabel, ylabel);
    if (n == 0) qb_svg_text(f, p.left + p.width / 2, p.top + p.height / 2, "middle", 14, NULL, "no successful methods");
    pareto_front(f, r, a, &p);
    points_with_labels(f, r, a, &p, W);
    double ly = H - 28;
    qb_svg_line(f, p.left, ly - 4, p.left + 30, ly - 4, FRONT_COLOR, 2, "6 4");
    qb_svg_circle(f, p.left + 15, ly - 4, 7, "none", FRONT_COLOR);
    qb_svg_text(f, p.left + 38, ly, "start", 12, NULL,
                "Pareto front (bold labels): best quality for its latency. Upper left is better.");
    qb_svg_end(f);
}

/* Horizontal bars, one per row with a finite positive value (empty: what
 * the chart says when there is none).  ref > 0 draws a dashed reference
 * line at that value; shares (or NULL) adds "1/N of FP32" to a bar's
 * label, so a bar a sixteenth of the widest still reads as what it is. */
static void bar_chart(FILE *f, const qb_report *r, const double *v, const double *shares, const char *title,
                      const char *desc, const char *xlabel, const char *unit, const char *color, double ref,
                      const char *empty, bool mark_noisy) {
    int n = 0;
    double hi = ref > 0 ? ref : 0, label_w = 60;
    for (int i = 0; i < r->n_rows; i++) {
        if (!(r->rows[i].ok && isfinite(v[i]) && v[i] > 0)) continue;
        hi = fmax(hi, v[i]);
        label_w = fmax(label_w, qb_svg_text_width(r->rows[i].method, 13));
        n++;
    }
    const double bar = 30, gap = 12;
    const int W = 780, H = (int)(60 + (n > 0 ? n : 1) * (bar + gap) + 90);
    qb_svg_plot p = {.left = label_w + 30, .top = 50, .height = (n > 0 ? n : 1) * (bar + gap), .x0 = 0,
                     .x1 = hi * (shares ? 1.5 : 1.12), .y0 = 0, .y1 = 1};
    p.width = W - p.left - 40;
    double xt[QB_SVG_MAX_TICKS];
    int nxt = qb_svg_nice_ticks(&p.x0, &p.x1, 6, xt);
    qb_svg_begin(f, W, H, title, desc);
    qb_svg_axes(f, &p, xt, nxt, NULL, 0, xlabel, NULL);
    if (n == 0) qb_svg_text(f, p.left + p.width / 2, p.top + 25, "middle", 14, NULL, empty);
    int k = 0;
    for (int i = 0; i < r->n_rows; i++) {
        if (!(r->rows[i].ok && isfinite(v[i]) && v[i] > 0)) continue;
        double y = p.top + gap / 2 + k++ * (bar + gap), x1 = qb_svg_px_x(&p, v[i]);
        fputs("<g data-method=\"", f);
        qb_svg_escape(f, r->rows[i].method);
        fputs("\">\n", f);
        qb_svg_rect(f, p.left, y, x1 - p.left, bar, color);
        qb_svg_text(f, p.left - 8, y + bar / 2 + 5, "end", 13, NULL, r->rows[i].method);
        if (shares && shares[i] > 1.05)
            qb_svg_textf(f, x1 + 6, y + bar / 2 + 5, "start", 12, "%.2f%s (1/%.1f of FP32)", v[i], unit, shares[i]);
        else qb_svg_textf(f, x1 + 6, y + bar / 2 + 5, "start", 12, "%.2f%s%s", v[i], unit,
                          mark_noisy && r->rows[i].speed_noisy ? " (noisy)" : "");
        fputs("</g>\n", f);
    }
    if (ref > 0) {
        double x = qb_svg_px_x(&p, ref);
        qb_svg_line(f, x, p.top - 6, x, p.top + p.height, FRONT_COLOR, 2, "6 4");
        qb_svg_textf(f, x, p.top - 10, "middle", 12, "%gx = FP32", ref);
    }
    qb_svg_end(f);
}

void qb_report_chart_size(FILE *f, const qb_report *r) {
    double *v = malloc(((size_t)r->n_rows + 1) * 2 * sizeof *v);
    if (!v) return;
    for (int i = 0; i < r->n_rows; i++) v[i] = r->rows[i].size_bytes / 1e6, v[r->n_rows + i] = r->rows[i].compression;
    bar_chart(f, r, v, v + r->n_rows, "Model size", "model.safetensors size per successful method, in MB (10^6 bytes).",
              "size of model.safetensors (MB, lower is better)", " MB", SIZE_COLOR, 0, "no successful methods", false);
    free(v);
}

void qb_report_chart_speedup(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    double *v = malloc(((size_t)r->n_rows + 1) * sizeof *v);
    if (!v) return;
    for (int i = 0; i < r->n_rows; i++) v[i] = r->rows[i].speedup;
    int bl = qb_report_batch_lat(&r->meta);
    char title[64], desc[160];
    snprintf(title, sizeof title, "Speedup over FP32 (batch %d)", bl);
    snprintf(desc, sizeof desc,
             "Median over benchmark rounds of FP32's p50 latency over each method's at batch %d; the dashed line "
             "marks 1.0x.", bl);
    bar_chart(f, r, v, NULL, title, desc, "speedup (x, median of rounds' FP32 p50 / method p50, higher is better)", "x",
              SPEEDUP_COLOR, 1.0,
              a->baseline >= 0 ? "no successful methods" : "no fp32 row: speedup needs the FP32 baseline", true);
    free(v);
}

/* The four radar axes of one row, each as a fraction of the best row's. */
typedef struct {
    double best_q, best_p50, best_comp, best_rss;
} radar_best;

static bool radar_ok(const qb_report_row *row, bool ner) {
    return qb_report_row_plottable(row, ner) && qb_report_quality(row, ner) > 0 && isfinite(row->compression) &&
           row->compression > 0 && isfinite(row->peak_rss_mb) && row->peak_rss_mb > 0;
}

static void radar_values(const qb_report_row *row, const radar_best *b, bool ner, double out[4]) {
    out[0] = qb_report_quality(row, ner) / b->best_q;
    out[1] = b->best_p50 / row->p50_b1_ms;
    out[2] = row->compression / b->best_comp;
    out[3] = b->best_rss / row->peak_rss_mb;
}

void qb_report_chart_radar(FILE *f, const qb_report *r, const qb_report_analysis *a) {
    static const char *const axes[4] = {"accuracy", "speed", "compression", "memory"};
    const int W = 780, H = 560;
    const double cx = 270, cy = 290, R = 170;
    radar_best b = {0, INFINITY, 0, INFINITY};
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!radar_ok(row, a->ner)) continue;
        b.best_q = fmax(b.best_q, qb_report_quality(row, a->ner));
        b.best_p50 = fmin(b.best_p50, row->p50_b1_ms);
        b.best_comp = fmax(b.best_comp, row->compression);
        b.best_rss = fmin(b.best_rss, row->peak_rss_mb);
    }
    char caption[512];
    qb_report_radar_caption(caption, sizeof caption, &r->meta);
    qb_svg_begin(f, W, H, "Normalized metrics per method", caption);
    double xs[4], ys[4];
    for (int ring = 1; ring <= 4; ring++) {
        for (int k = 0; k < 4; k++) {
            double ang = -M_PI / 2 + k * M_PI / 2;
            xs[k] = cx + R * ring / 4 * cos(ang);
            ys[k] = cy + R * ring / 4 * sin(ang);
        }
        qb_svg_polygon(f, xs, ys, 4, "#d0d0d0", "none", 0);
        qb_svg_textf(f, cx + 4, cy - R * ring / 4 - 3, "start", 10, "%.2f", ring / 4.0);
    }
    for (int k = 0; k < 4; k++) {
        double ang = -M_PI / 2 + k * M_PI / 2;
        qb_svg_line(f, cx, cy, cx + R * cos(ang), cy + R * sin(ang), "#b0b0b0", 1, NULL);
        double lx = cx + (R + 18) * cos(ang), ly = cy + (R + 18) * sin(ang) + 5;
        qb_svg_text(f, lx, ly + (k == 2 ? 8 : 0), k == 1 ? "start" : k == 3 ? "end" : "middle", 13, "bold", axes[k]);
    }
    const char **labels = malloc(((size_t)r->n_rows + 1) * sizeof *labels);
    const char **colors = malloc(((size_t)r->n_rows + 1) * sizeof *colors);
    int n = 0;
    for (int i = 0; i < r->n_rows && labels && colors; i++) {
        const qb_report_row *row = &r->rows[i];
        if (!radar_ok(row, a->ner)) continue;
        double v[4];
        radar_values(row, &b, a->ner, v);
        for (int k = 0; k < 4; k++) {
            double ang = -M_PI / 2 + k * M_PI / 2;
            xs[k] = cx + R * v[k] * cos(ang);
            ys[k] = cy + R * v[k] * sin(ang);
        }
        fputs("<g data-method=\"", f);
        qb_svg_escape(f, row->method);
        fputs("\">\n", f);
        qb_svg_polygon(f, xs, ys, 4, qb_svg_color(i), qb_svg_color(i), 0.08);
        fputs("</g>\n", f);
        labels[n] = row->method;
        colors[n++] = qb_svg_color(i);
    }
    if (n == 0) qb_svg_text(f, cx, cy + R + 50, "middle", 14, NULL, "no methods with all four metrics");
    qb_svg_legend(f, 540, 110, labels, colors, n);
    qb_svg_text(f, 20, H - 40, "start", 11, NULL,
                "Each axis: value / best method's value (1 = best). accuracy / highest accuracy;");
    qb_svg_text(f, 20, H - 24, "start", 11, NULL,
                "speed = lowest p50 latency / p50; compression / highest; memory = lowest peak RSS / peak RSS.");
    free(labels);
    free(colors);
    qb_svg_end(f);
}
