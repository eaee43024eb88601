/* A small SVG writer for the report charts: a plot frame that maps data to
 * pixels, nice axis ticks, shapes and escaped text.  Everything is written to
 * a FILE* (usually an in-memory stream), styled with presentation attributes
 * rather than a <style> block so several charts can be inlined in one HTML
 * page without their styles colliding. */
#ifndef QB_REPORT_SVG_H
#define QB_REPORT_SVG_H

#include <stdio.h>

/* The plotting area in pixels and the data range drawn into it. */
typedef struct {
    double left, top, width, height; /* pixels */
    double x0, x1, y0, y1;           /* data range; y grows upwards */
} qb_svg_plot;

#define QB_SVG_MAX_TICKS 16

/* Widens [*lo, *hi] to round numbers and fills up to QB_SVG_MAX_TICKS ticks
 * about `target` apart in count; returns the number of ticks. */
int qb_svg_nice_ticks(double *lo, double *hi, int target, double *ticks);

double qb_svg_px_x(const qb_svg_plot *p, double x);
double qb_svg_px_y(const qb_svg_plot *p, double y);

/* Opens the <svg> root (width, height, viewBox, fonts) with a <title> and
 * <desc> for screen readers, and draws the visible title. */
void qb_svg_begin(FILE *f, int width, int height, const char *title, const char *desc);
void qb_svg_end(FILE *f);

/* Writes s escaped for XML/HTML text and attributes; bytes that are not
 * valid UTF-8 and control characters XML forbids become U+FFFD. */
void qb_svg_escape(FILE *f, const char *s);

/* anchor: "start", "middle" or "end".  weight: NULL or "bold". */
void qb_svg_text(FILE *f, double x, double y, const char *anchor, int size, const char *weight,
                 const char *text);
void qb_svg_textf(FILE *f, double x, double y, const char *anchor, int size, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Text rotated -90 degrees around (x, y): vertical axis titles. */
void qb_svg_text_vertical(FILE *f, double x, double y, int size, const char *text);

void qb_svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *stroke, double width,
                 const char *dash);
void qb_svg_rect(FILE *f, double x, double y, double w, double h, const char *fill);
void qb_svg_circle(FILE *f, double cx, double cy, double r, const char *fill, const char *stroke);
/* xs/ys are pixels.  fill NULL: an open polyline; otherwise a closed polygon
 * filled at fill_opacity. */
void qb_svg_polyline(FILE *f, const double *xs, const double *ys, int n, const char *stroke, double width,
                     const char *dash);
void qb_svg_polygon(FILE *f, const double *xs, const double *ys, int n, const char *stroke, const char *fill,
                    double fill_opacity);

/* Grid lines, tick labels and axis titles (with units) for a plot frame. */
void qb_svg_axes(FILE *f, const qb_svg_plot *p, const double *xt, int nxt, const double *yt, int nyt,
                 const char *xlabel, const char *ylabel);

/* A vertical legend of coloured swatches starting at (x, y). */
void qb_svg_legend(FILE *f, double x, double y, const char *const *labels, const char *const *colors, int n);

/* A categorical palette of 16 distinct colours (Okabe-Ito first), cycled. */
const char *qb_svg_color(int i);

/* Rough rendered width of text at a font size: for label placement. */
double qb_svg_text_width(const char *text, int size);

#endif
