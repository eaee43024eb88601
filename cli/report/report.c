#include <stdio.h>

#include "core/error.h"
#include "core/fs.h"
#include "report/report_internal.h"

typedef enum { OUT_MD, OUT_JSON, OUT_CSV, OUT_HTML, OUT_ACC_LAT, OUT_SIZE, OUT_SPEEDUP, OUT_RADAR } out_kind;

static const struct {
    out_kind kind;
    const char *name;
} outputs[] = {
    {OUT_MD, "report.md"},           {OUT_JSON, "report.json"}, {OUT_CSV, "report.csv"},
    {OUT_ACC_LAT, "accuracy_latency.svg"}, {OUT_SIZE, "size.svg"},  {OUT_SPEEDUP, "speedup.svg"},
    {OUT_RADAR, "radar.svg"},        {OUT_HTML, "report.html"},
};

static void render(FILE *f, out_kind k, const qb_report *r, const qb_report_analysis *a) {
    /* Standalone SVG files get the XML declaration that inline ones must not. */
    if (k == OUT_ACC_LAT || k == OUT_SIZE || k == OUT_SPEEDUP || k == OUT_RADAR)
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    switch (k) {
    case OUT_MD: qb_report_render_md(f, r, a); break;
    case OUT_JSON: qb_report_render_json(f, r, a); break;
    case OUT_CSV: qb_report_render_csv(f, r, a); break;
    case OUT_HTML: qb_report_render_html(f, r, a); break;
    case OUT_ACC_LAT: qb_report_chart_accuracy_latency(f, r, a); break;
    case OUT_SIZE: qb_report_chart_size(f, r); break;
    case OUT_SPEEDUP: qb_report_chart_speedup(f, r, a); break;
    case OUT_RADAR: qb_report_chart_radar(f, r, a); break;
    }
}

void qb_report_remove(const char *dir) {
    char path[4096];
    for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++)
        if (qb_path_join(path, sizeof path, dir, outputs[i].name)) remove(path);
}

qb_status qb_report_write(const qb_report *r, const char *dir, qb_error *err) {
    if (!r || !dir) return qb_fail(err, QB_ERR_ARG, "report: no report or directory given");
    qb_status st = qb_report_prepare_dir(dir, err);
    if (st) return st;
    qb_report_analysis a;
    st = qb_report_analyze(r, &a, err);
    for (size_t i = 0; !st && i < sizeof outputs / sizeof outputs[0]; i++) {
        qb_report_out o;
        st = qb_report_out_open(&o, err);
        if (st) break;
        render(o.f, outputs[i].kind, r, &a);
        st = qb_report_out_commit(&o, dir, outputs[i].name, err);
    }
    qb_report_analysis_free(&a);
    return st;
}
