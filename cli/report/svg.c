#include "report/svg.h"

#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <string.h>

/* Okabe-Ito without its yellow (unreadable on white), then Paul Tol's
 * muted and dark colours: sixteen that stay apart, one per method compare
 * can run. */
static const char *const palette[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9",
                                      "#000000", "#882255", "#44AA99", "#999933", "#332288", "#AA4499",
                                      "#117733", "#661100", "#6699CC", "#888888"};

const char *qb_svg_color(int i) {
    int n = (int)(sizeof palette / sizeof palette[0]);
    return palette[((i % n) + n) % n];
}

static double nice_step(double range, int target) {
    double raw = range / (target > 1 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double frac = raw / mag;
    double nice = frac <= 1 ? 1 : frac <= 2 ? 2 : frac <= 2.5 ? 2.5 : frac <= 5 ? 5 : 10;
    return nice * mag;
}

int qb_svg_nice_ticks(double *lo, double *hi, int target, double *ticks) {
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi < *lo) {
        double t = *lo;
        *lo = *hi;
        *hi = t;
    }
    if (*hi - *lo < 1e-12) { /* one value: give it some room either side */
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1;
        *lo -= pad;
        *hi += pad;
    }
    double step = nice_step(*hi - *lo, target);
    *lo = floor(*lo / step) * step;
    *hi = ceil(*hi / step) * step;
    int n = 0;
    for (double v = *lo; v <= *hi + step * 1e-9 && n < QB_SVG_MAX_TICKS; v += step)
        ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    return n;
}

double qb_svg_px_x(const qb_svg_plot *p, double x) {
    return p->left + (x - p->x0) / (p->x1 - p->x0) * p->width;
}

double qb_svg_px_y(const qb_svg_plot *p, double y) {
    return p->top + p->height - (y - p->y0) / (p->y1 - p->y0) * p->height;
}

void qb_svg_begin(FILE *f, int width, int height, const char *title, const char *desc) {
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"13\" role=\"img\">\n",
            width, height, width, height);
    fputs("<title>", f);
    qb_svg_escape(f, title);
    fputs("</title>\n<desc>", f);
    qb_svg_escape(f, desc);
    fputs("</desc>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
    qb_svg_text(f, width / 2.0, 26, "middle", 17, "bold", title);
}

void qb_svg_end(FILE *f) { fputs("</svg>\n", f); }

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static int utf8_len(const unsigned char *s) {
    if (s[0] < 0x80) return 1;
    int n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4)) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (n == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
    if (n == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;
    if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;
    return n;
}

void qb_svg_escape(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        switch (*p) {
        case '&': fputs("&amp;", f); p++; continue;
        case '<': fputs("&lt;", f); p++; continue;
        case '>': fputs("&gt;", f); p++; continue;
        case '"': fputs("&quot;", f); p++; continue;
        case '\'': fputs("&#39;", f); p++; continue;
        default: break;
        }
        /* XML 1.0 allows no control characters but tab and newlines. */
        bool bad_ctl = *p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r';
        int n = bad_ctl ? 0 : utf8_len(p);
        if (n == 0) {
            fputs("\xEF\xBF\xBD", f);
            p++;
            continue;
        }
        fwrite(p, 1, (size_t)n, f);
        p += n;
    }
}

void qb_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *weight,
                 const char *text) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\" fill=\"#222222\"", x, y, anchor,
            size);
    if (weight) fprintf(f, " font-weight=\"%s\"", weight);
    fputc('>', f);
    qb_svg_escape(f, text);
    fputs("</text>\n", f);
}

void qb_svg_textf(FILE *f, double x, double y, const char *anchor, int size, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    qb_svg_text(f, x, y, anchor, size, NULL, buf);
}

void qb_svg_text_vertical(FILE *f, double x, double y, int size, const char *text) {
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"%d\" fill=\"#222222\" "
            "transform=\"rotate(-90 %.1f %.1f)\">",
            x, y, size, x, y);
    qb_svg_escape(f, text);
    fputs("</text>\n", f);
}

static void put_dash(FILE *f, const char *dash) {
    if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
}

void qb_svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke, double width,
                 const char *dash) {
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"", x1,
            y1, x2, y2, stroke, width);
    put_dash(f, dash);
    fputs("/>\n", f);
}

void qb_svg_rect(FILE *f, double x, double y, double w, double h, const char *fill) {
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y, w, h, fill);
}

void qb_svg_circle(FILE *f, double cx, double cy, double r, const char *fill, const char *stroke) {
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"", cx, cy, r, fill);
    if (stroke) fprintf(f, " stroke=\"%s\" stroke-width=\"2\"", stroke);
    fputs("/>\n", f);
}

static void put_points(FILE *f, const double *xs, const double *ys, int n) {
    fputs(" points=\"", f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.1f,%.1f", i ? " " : "", xs[i], ys[i]);
    fputc('"', f);
}

void qb_svg_polyline(FILE *f, const double *xs, const double *ys, int n, const char *stroke, double width,
                     const char *dash) {
    fputs("<polyline", f);
    put_points(f, xs, ys, n);
    fprintf(f, " fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\"", stroke, width);
    put_dash(f, dash);
    fputs("/>\n", f);
}

void qb_svg_polygon(FILE *f, const double *xs, const double *ys, int n, const char *stroke, const char *fill,
                    double fill_opacity) {
    fputs("<polygon", f);
    put_points(f, xs, ys, n);
    fprintf(f, " fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n",
            fill, fill_opacity, stroke);
}

/* Tick labels drop trailing zeros but keep the precision the step needs. */
static void tick_label(char *buf, size_t cap, double v) { snprintf(buf, cap, "%.6g", v); }

void qb_svg_axes(FILE *f, const qb_svg_plot *p, const double *xt, int nxt, const double *yt, int nyt,
                 const char *xlabel, const char *ylabel) {
    char lab[64];
    double bottom = p->top + p->height, right = p->left + p->width;
    for (int i = 0; i < nyt; i++) {
        double y = qb_svg_px_y(p, yt[i]);
        qb_svg_line(f, p->left, y, right, y, "#e3e3e3", 1, NULL);
        tick_label(lab, sizeof lab, yt[i]);
        qb_svg_text(f, p->left - 6, y + 4, "end", 12, NULL, lab);
    }
    for (int i = 0; i < nxt; i++) {
        double x = qb_svg_px_x(p, xt[i]);
        qb_svg_line(f, x, p->top, x, bottom, "#e3e3e3", 1, NULL);
        tick_label(lab, sizeof lab, xt[i]);
        qb_svg_text(f, x, bottom + 17, "middle", 12, NULL, lab);
    }
    qb_svg_line(f, p->left, bottom, right, bottom, "#555555", 1.2, NULL);
    qb_svg_line(f, p->left, p->top, p->left, bottom, "#555555", 1.2, NULL);
    if (xlabel) qb_svg_text(f, p->left + p->width / 2, bottom + 40, "middle", 13, NULL, xlabel);
    if (ylabel) qb_svg_text_vertical(f, p->left - 52, p->top + p->height / 2, 13, ylabel);
}

void qb_svg_legend(FILE *f, double x, double y, const char *const *labels, const char *const *colors, int n) {
    for (int i = 0; i < n; i++) {
        double yy = y + i * 20;
        qb_svg_rect(f, x, yy - 10, 12, 12, colors[i]);
        qb_svg_text(f, x + 18, yy, "start", 12, NULL, labels[i]);
    }
}

double qb_svg_text_width(const char *text, int size) {
    /* DejaVu Sans averages a little over half an em per character. */
    return (double)strlen(text ? text : "") * size * 0.6;
}
