/* What the report writers share: the analysis computed once from the rows
 * (baseline, quality metric, Pareto front, findings), the renderers for each
 * output, the text escapers, and the in-memory buffer that becomes one
 * atomically written file. */
#ifndef QB_REPORT_INTERNAL_H
#define QB_REPORT_INTERNAL_H

#include "core/json.h"
#include <stdbool.h>
#include <stdio.h>

#include "report/report.h"

#define QB_REPORT_FINDING_LEN 512

typedef struct {
    int baseline; /* the FP32 row, or -1 when it is missing or failed */
    bool ner;     /* quality is entity F1 rather than accuracy */
    bool *pareto; /* per row: on the latency/quality Pareto front */
    char (*findings)[QB_REPORT_FINDING_LEN];
    int n_findings, cap_findings;
} qb_report_analysis;

qb_status qb_report_analyze(const qb_report *r, qb_report_analysis *a, qb_error *err);
void qb_report_analysis_free(qb_report_analysis *a);

/* The metric the accuracy axis and findings use: accuracy, or entity F1 for
 * NER.  A fraction in [0, 1]. */
double qb_report_quality(const qb_report_row *row, bool ner);
const char *qb_report_quality_name(bool ner);
/* A row that succeeded and has finite quality and batch-1 latency. */
bool qb_report_row_plottable(const qb_report_row *row, bool ner);

/* Each writes one whole output to f. */
void qb_report_render_md(FILE *f, const qb_report *r, const qb_report_analysis *a);
void qb_report_render_json(FILE *f, const qb_report *r, const qb_report_analysis *a);
void qb_report_render_csv(FILE *f, const qb_report *r, const qb_report_analysis *a);
void qb_report_render_html(FILE *f, const qb_report *r, const qb_report_analysis *a);
/* The charts, as <svg> elements without an XML declaration (so they inline). */
void qb_report_chart_accuracy_latency(FILE *f, const qb_report *r, const qb_report_analysis *a);
void qb_report_chart_size(FILE *f, const qb_report *r);
void qb_report_chart_speedup(FILE *f, const qb_report *r, const qb_report_analysis *a);
void qb_report_chart_radar(FILE *f, const qb_report *r, const qb_report_analysis *a);
/* The radar chart's caption (it names the latency batch). */
void qb_report_radar_caption(char *buf, size_t cap, const qb_report_meta *m);
/* The benchmark's batch sizes for the labels: the meta's, or 1 and 8 (the
 * defaults) when it records none. */
int qb_report_batch_lat(const qb_report_meta *m);
int qb_report_batch_tput(const qb_report_meta *m);

/* Markdown table cell / paragraph text: pipes, markup and newlines escaped. */
void qb_report_put_md(FILE *f, const char *s);
/* One CSV field, quoted when it needs to be (RFC 4180). */
void qb_report_put_csv(FILE *f, const char *s);
/* A number that reads back to the same double; an empty field when it is
 * not finite. */
void qb_report_put_csv_num(FILE *f, double v);
/* Each run detail as a (label, value) item, in the order every report lists them. */
typedef void (*qb_report_item_fn)(FILE *f, const char *label, const char *value);
void qb_report_meta_items(FILE *f, const qb_report_meta *m, qb_report_item_fn item);
/* The results table's cells after the method, in column order, as the md
 * and html writers print them: note is "noisy" on a speedup whose rounds
 * disagreed, else NULL; a value that is not finite reads n/a. */
typedef void (*qb_report_cell_fn)(FILE *f, double v, int decimals, const char *note);
void qb_report_row_cells(FILE *f, const qb_report_row *row, bool ner, qb_report_cell_fn cell);
/* The reproducibility header as Markdown bullet lines. */
void qb_report_put_meta_md(FILE *f, const qb_report_meta *m);
/* The reproducibility header as a JSON object (NULL when out of memory). */
json_t *qb_report_meta_json(const qb_report_meta *m);
/* doc, indented, to f; takes doc's reference. */
void qb_report_put_json(FILE *f, json_t *doc);

/* An output built in memory, then written as dir/name through a temporary
 * name and a rename. */
typedef struct {
    FILE *f;
    char *data;
    size_t size;
} qb_report_out;

qb_status qb_report_out_open(qb_report_out *o, qb_error *err);
/* Always releases the buffer; the file exists only if QB_OK. */
qb_status qb_report_out_commit(qb_report_out *o, const char *dir, const char *name, qb_error *err);
/* Creates dir if it is missing; QB_ERR_IO naming it if it cannot be used. */
qb_status qb_report_prepare_dir(const char *dir, qb_error *err);

#endif
