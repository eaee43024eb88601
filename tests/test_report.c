/* The comparison report on a synthetic set of methods (one failed): every
 * file is written and parses, values round-trip through JSON, the Pareto
 * front drawn is the one computed here independently, text is escaped, and
 * bad rows or directories are handled.  With QB_REPORT_OUT set, the report
 * is also written there for tests/test_report_browser.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "core/json.h"
#include "report/report.h"
#include "test_util.h"

#define N_ROWS 7

static qb_report_row make_row(const char *method, double acc, double p50, double mb, double agree) {
    qb_report_row r;
    memset(&r, 0, sizeof r);
    snprintf(r.method, sizeof r.method, "%s", method);
    snprintf(r.description, sizeof r.description, "%s <weights> & \"activations\"", method);
    r.ok = true;
    r.accuracy = acc;
    r.macro_f1 = acc - 0.001;
    r.entity_f1 = -1;
    r.agreement = agree;
    r.n_examples = 872;
    r.size_bytes = (int64_t)(mb * 1e6);
    r.compression = 44.7 / mb;
    r.p50_b1_ms = p50;
    r.p90_b1_ms = p50 * 1.1;
    r.throughput_b8 = 8000.0 / (p50 * 5);
    r.speedup = 4.0 / p50;
    r.peak_rss_mb = 40 + 2 * mb;
    r.quantize_s = strcmp(method, "fp32") ? 1.25 : 0;
    return r;
}

static void make_report(qb_report *r, qb_report_row *rows) {
    memset(r, 0, sizeof *r);
    rows[0] = make_row("fp32", 0.9128440366972477, 4.0, 44.7, 1.0);
    rows[1] = make_row("fp16", 0.9128440366972477, 4.4, 22.4, 0.9989);
    rows[2] = make_row("bf16", 0.9105504587155964, 3.0, 22.4, 0.99);
    rows[3] = make_row("dynamic", 0.9059633027522935, 1.6, 11.5, 0.975);
    rows[4] = make_row("static-mse", 0, 0, 0, 0);
    rows[4].ok = false;
    snprintf(rows[4].error, sizeof rows[4].error, "calib.jsonl: missing \"text\", field <1> & more");
    rows[5] = make_row("mixed", 0.9139908256880734, 2.2, 14.0, 0.985);
    rows[6] = make_row("static-minmax", 0.8949541284403669, 1.5, 11.5, 0.96);
    r->rows = rows;
    r->n_rows = N_ROWS;
    qb_report_meta *m = &r->meta;
    snprintf(m->model_dir, sizeof m->model_dir, "models/bert-mini-sst2");
    snprintf(m->data_path, sizeof m->data_path, "data/sst2/dev.tsv");
    snprintf(m->data_sha256, sizeof m->data_sha256, "%064d", 7);
    snprintf(m->task, sizeof m->task, "sst2");
    m->n_examples = 872;
    m->seq = 128;
    m->threads = 2;
    snprintf(m->cpu_model, sizeof m->cpu_model, "Intel(R) Xeon(R) Platinum 8481C");
    snprintf(m->cpu_flags, sizeof m->cpu_flags, "avx512f avx512bw avx512vnni avx512bf16");
    snprintf(m->qbert_version, sizeof m->qbert_version, "0.1.0");
    snprintf(m->git_commit, sizeof m->git_commit, "cb46a43");
    snprintf(m->compiler, sizeof m->compiler, "gcc 12.2.0");
    snprintf(m->isa, sizeof m->isa, "avx512");
    m->seed = 1234;
    snprintf(m->calib_path, sizeof m->calib_path, "data/sst2/calib.tsv");
    m->calib_n = 128;
    snprintf(m->created, sizeof m->created, "2024-05-01T12:00:00Z");
}

/* The front computed independently: no other ok row is at least as fast and
 * as accurate and strictly better in one.  Sorted by latency. */
static int expected_front(const qb_report *r, int *idx) {
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) {
        const qb_report_row *a = &r->rows[i];
        bool dominated = !a->ok;
        for (int j = 0; j < r->n_rows && !dominated; j++) {
            const qb_report_row *b = &r->rows[j];
            dominated = j != i && b->ok && b->p50_b1_ms <= a->p50_b1_ms && b->accuracy >= a->accuracy &&
                        (b->p50_b1_ms < a->p50_b1_ms || b->accuracy > a->accuracy);
        }
        if (!dominated) idx[n++] = i;
    }
    for (int i = 1; i < n; i++) /* insertion sort by latency */
        for (int j = i; j > 0 && r->rows[idx[j]].p50_b1_ms < r->rows[idx[j - 1]].p50_b1_ms; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return n;
}

static char *slurp(const char *dir, const char *name) {
    char path[4096], *data = NULL;
    size_t n;
    qb_error err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (qb_file_read_all(path, &data, &n, &err)) return NULL;
    return data;
}

/* Tags balance (XML-style; self-closing and <?..?> allowed) and every '&'
 * starts an entity. */
static bool xml_balanced(const char *s) {
    char stack[64][32];
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&' && !(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 || strncmp(p, "&gt;", 4) == 0 ||
                           strncmp(p, "&quot;", 6) == 0 || strncmp(p, "&#", 2) == 0))
            return false;
        if (*p != '<') continue;
        const char *end = strchr(p, '>');
        if (!end) return false;
        if (p[1] == '?' || p[1] == '!') {
            p = end;
            continue;
        }
        bool closing = p[1] == '/', self = end[-1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " \t\n/>");
        if (len == 0 || len >= 32) return false;
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], name, len)) return false;
            depth--;
        } else if (!self) {
            if (depth == 64) return false;
            memcpy(stack[depth], name, len);
            stack[depth++][len] = 0;
        }
        p = end;
    }
    return depth == 0;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void check_json(const char *dir, const qb_report *r, const int *front, int nf) {
    char *src = slurp(dir, "report.json");
    CHECK(src, "report.json missing");
    if (!src) return;
    json_t *j = NULL;
    qb_error err;
    CHECK(qb_json_parse(src, strlen(src), "report.json", &j, &err) == QB_OK, "report.json: %s", err.msg);
    const json_t *meta = json_object_get(j, "meta"), *rows = json_object_get(j, "rows");
    CHECK(meta && qb_json_str_eq(json_object_get(meta, "data_sha256"), r->meta.data_sha256), "meta sha");
    CHECK(qb_json_get_number(meta, "seed", 0) == 1234, "meta seed");
    CHECK(qb_json_str_eq(json_object_get(meta, "cpu_flags"), r->meta.cpu_flags), "meta flags");
    CHECK(json_array_size(rows) == N_ROWS, "rows");
    for (int i = 0; i < N_ROWS && rows; i++) {
        const json_t *o = json_array_get(rows, i);
        const qb_report_row *x = &r->rows[i];
        CHECK(qb_json_str_eq(json_object_get(o, "method"), x->method), "row %d method", i);
        CHECK(qb_json_str_eq(json_object_get(o, "description"), x->description), "row %d description", i);
        CHECK(qb_json_get_bool(o, "ok", !x->ok) == x->ok, "row %d ok", i);
        if (!x->ok) {
            CHECK(qb_json_str_eq(json_object_get(o, "error"), x->error), "failed row error round-trips");
            CHECK(json_is_null(json_object_get(o, "accuracy")), "failed row accuracy is null");
            continue;
        }
        static const char *const keys[] = {"accuracy", "macro_f1", "agreement", "compression", "p50_b1_ms",
                                           "p90_b1_ms", "throughput_b8", "speedup", "peak_rss_mb", "quantize_s"};
        const double vals[] = {x->accuracy,  x->macro_f1, x->agreement,     x->compression, x->p50_b1_ms,
                               x->p90_b1_ms, x->throughput_b8, x->speedup, x->peak_rss_mb, x->quantize_s};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            CHECK(qb_json_get_number(o, keys[k], NAN) == vals[k], "row %d %s round-trips", i, keys[k]);
        CHECK(qb_json_get_number(o, "size_bytes", 0) == (double)x->size_bytes, "row %d size", i);
        CHECK(json_is_null(json_object_get(o, "entity_f1")), "entity_f1 null when not NER");
    }
    const json_t *p = json_object_get(j, "pareto");
    CHECK((int)json_array_size(p) == nf, "pareto list size");
    for (int i = 0; i < nf && p; i++)
        CHECK(qb_json_str_eq(json_array_get(p, i), r->rows[front[i]].method) ||
                  qb_json_str_eq(json_array_get(p, (i + 1) % nf), r->rows[front[i]].method) ||
                  qb_json_str_eq(json_array_get(p, (i + 2) % nf), r->rows[front[i]].method),
              "pareto member %s", r->rows[front[i]].method);
    json_decref(j);
    free(src);
}

/* Fields in one CSV record starting at *p (quotes honoured); advances *p. */
static int csv_fields(const char **p) {
    int n = 1;
    bool quoted = false;
    for (; **p; (*p)++) {
        char c = **p;
        if (c == '"') quoted = !quoted;
        else if (c == ',' && !quoted) n++;
        else if (c == '\n' && !quoted) {
            (*p)++;
            break;
        }
    }
    return n;
}

static void check_csv(const char *dir) {
    char *src = slurp(dir, "report.csv");
    CHECK(src, "report.csv missing");
    if (!src) return;
    CHECK(strncmp(src, "method,ok,error,accuracy,macro_f1,entity_f1,agreement,", 54) == 0, "csv header");
    int records = 0, header_fields = 0;
    for (const char *p = src; *p; records++) {
        int n = csv_fields(&p);
        if (records == 0) header_fields = n;
        else CHECK(n == header_fields, "csv record %d has %d fields, header %d", records, n, header_fields);
    }
    CHECK(records == 1 + N_ROWS, "csv records %d", records);
    CHECK(strstr(src, "\"calib.jsonl: missing \"\"text\"\", field <1> & more\""), "csv error quoted");
    free(src);
}

/* The dashed front must join the drawn points of the expected methods, in
 * order of latency. */
static void check_front_svg(const char *svg, const qb_report *r, const int *front, int nf) {
    char want[256] = "";
    for (int i = 0; i < nf; i++) {
        strcat(want, i ? " " : "id=\"pareto-front\" data-methods=\"");
        strcat(want, r->rows[front[i]].method);
    }
    strcat(want, "\"");
    const char *g = strstr(svg, want);
    CHECK(g, "pareto group lists %s", want);
    const char *pts = g ? strstr(g, "<polyline points=\"") : NULL;
    CHECK(pts, "pareto polyline present");
    if (!pts) return;
    pts += strlen("<polyline points=\"");
    for (int i = 0; i < nf; i++) {
        char *end;
        double x = strtod(pts, &end), y = strtod(end + 1, &end);
        pts = end;
        char tag[96];
        snprintf(tag, sizeof tag, "<g data-method=\"%s\">\n<circle cx=\"", r->rows[front[i]].method);
        const char *c = strstr(svg, tag);
        CHECK(c, "point for %s", r->rows[front[i]].method);
        if (!c) continue;
        c += strlen(tag);
        double cx = strtod(c, &end);
        double cy = strtod(strstr(end, "cy=\"") + 4, NULL);
        CHECK(fabs(cx - x) < 0.05 && fabs(cy - y) < 0.05, "front point %d (%.1f,%.1f) vs %s at (%.1f,%.1f)", i, x, y,
              r->rows[front[i]].method, cx, cy);
    }
    CHECK(*pts == '"', "front has exactly %d points", nf);
}

static void check_charts(const char *dir, const qb_report *r, const int *front, int nf) {
    static const char *const charts[] = {"accuracy_latency.svg", "size.svg", "speedup.svg", "radar.svg"};
    for (int c = 0; c < 4; c++) {
        char *svg = slurp(dir, charts[c]);
        CHECK(svg, "%s missing", charts[c]);
        if (!svg) continue;
        CHECK(xml_balanced(svg), "%s well-formed", charts[c]);
        CHECK(strstr(svg, "viewBox=\"0 0 ") && strstr(svg, "width=\"") && strstr(svg, "<title>"), "%s header",
              charts[c]);
        for (int i = 0; i < r->n_rows; i++) {
            char label[64];
            snprintf(label, sizeof label, "data-method=\"%s\"", r->rows[i].method);
            if (r->rows[i].ok) CHECK(strstr(svg, label), "%s has %s", charts[c], r->rows[i].method);
            else CHECK(!strstr(svg, r->rows[i].method), "%s leaves out failed %s", charts[c], r->rows[i].method);
        }
        if (c == 0) {
            CHECK(strstr(svg, "(ms"), "latency axis has units");
            check_front_svg(svg, r, front, nf);
        }
        if (c == 2) CHECK(strstr(svg, "1x = FP32"), "speedup line at 1.0");
        free(svg);
    }
}

static void check_html_md(const char *dir, const qb_report *r) {
    char *html = slurp(dir, "report.html"), *md = slurp(dir, "report.md");
    CHECK(html && md, "report.html/report.md missing");
    if (!html || !md) {
        free(html);
        free(md);
        return;
    }
    CHECK(count(html, "<svg ") == 4 && count(html, "</svg>") == 4, "html inlines 4 svgs");
    CHECK(!strstr(html, "<?xml"), "no XML declaration inside html");
    int urls = count(html, "http://") + count(html, "https://");
    CHECK(urls == count(html, "xmlns=\"http://www.w3.org/2000/svg\""), "html: only the SVG xmlns is a URL");
    CHECK(!strstr(html, "<script") && !strstr(html, "<link"), "html has no scripts or links");
    CHECK(strstr(html, "missing &quot;text&quot;, field &lt;1&gt; &amp; more"), "html escapes the error");
    CHECK(strstr(md, "Most accurate: mixed"), "findings name the most accurate");
    CHECK(strstr(md, "Fastest at batch 1: static-minmax"), "findings name the fastest");
    CHECK(strstr(md, "static-minmax loses 1.79 pt"), "findings flag a loss over 0.5 pt");
    CHECK(strstr(md, "fp16: +0.00 pt accuracy vs fp32, within noise"), "findings say when within noise");
    CHECK(strstr(md, "Pareto-optimal") && strstr(md, "## Findings"), "findings list the front");
    CHECK(strstr(md, "static-mse: calib.jsonl: missing \"text\", field &lt;1> & more"), "md lists the failure");
    CHECK(strstr(md, r->meta.data_sha256) && strstr(md, "avx512vnni") && strstr(md, "gcc 12.2.0") &&
              strstr(md, "Seed: 1234") && strstr(md, "cb46a43") && strstr(md, "n = 128"),
          "md reproducibility header");
    CHECK(strstr(md, "| static-mse | failed |"), "failed row in table");
    CHECK(count(md, "\n| ") == 1 + N_ROWS, "md table rows");
    free(html);
    free(md);
}

static void check_sensitivity(const char *dir) {
    qb_sensitivity_row rows[4] = {
        {.name = "layer.0.attention.self.query", .accuracy = 0.91, .drop = 0.003, .sqnr_db = 30, .kl = 1e-4},
        {.name = "layer.3.output.dense", .accuracy = 0.88, .drop = 0.033, .sqnr_db = 18, .kl = 3e-3, .kept = true},
        {.name = "layer.1.intermediate.dense", .accuracy = 0.914, .drop = -0.001, .sqnr_db = 32, .kl = 5e-5},
        {.name = "pooler <dense> & \"x\"", .accuracy = NAN, .drop = NAN, .sqnr_db = INFINITY, .kl = NAN}};
    qb_sensitivity s;
    memset(&s, 0, sizeof s);
    snprintf(s.method, sizeof s.method, "static-mse");
    s.fp32_accuracy = 0.913;
    s.all_quantized_accuracy = 0.87;
    s.rows = rows;
    s.n_rows = 4;
    qb_error err;
    CHECK(qb_sensitivity_write(&s, dir, &err) == QB_OK, "sensitivity write: %s", err.msg);
    char *md = slurp(dir, "sensitivity.md"), *js = slurp(dir, "sensitivity.json");
    char *csv = slurp(dir, "sensitivity.csv"), *svg = slurp(dir, "sensitivity.svg");
    CHECK(md && js && csv && svg, "sensitivity files");
    if (md) {
        const char *a = strstr(md, "layer.3"), *b = strstr(md, "layer.0"), *c = strstr(md, "layer.1");
        CHECK(a && b && c && a < b && b < c, "sensitivity.md sorted by drop");
        CHECK(strstr(md, "| kept |"), "sensitivity.md marks kept layers");
    }
    if (js) {
        json_t *j = NULL;
        CHECK(qb_json_parse(js, strlen(js), "sensitivity.json", &j, &err) == QB_OK, "%s", err.msg);
        const json_t *r = json_object_get(j, "rows");
        CHECK(json_array_size(r) == 4, "sensitivity rows");
        CHECK(qb_json_get_number(json_array_get(r, 0), "drop", 0) == 0.033, "first row is the largest drop");
        CHECK(qb_json_get_bool(json_array_get(r, 0), "kept", false), "kept flag");
        CHECK(json_is_null(json_object_get(json_array_get(r, 3), "drop")), "NaN drop is null");
        json_decref(j);
    }
    if (csv) CHECK(count(csv, "\n") == 5 && strncmp(csv, "rank,name,", 10) == 0, "sensitivity.csv lines");
    if (svg) {
        CHECK(xml_balanced(svg), "sensitivity.svg well-formed");
        CHECK(strstr(svg, "#D55E00") && strstr(svg, "layer.3.output.dense"), "kept bar highlighted");
    }
    free(md);
    free(js);
    free(csv);
    free(svg);
}

/* Label boxes as the chart writer sizes them (0.6 em a character, bold
 * 10% wider), from the SVG's own attributes. */
typedef struct {
    double x0, y0, x1, y1;
} box;

static int svg_labels(const char *svg, box *out, int cap) {
    int n = 0;
    for (const char *p = svg; n < cap && (p = strstr(p, "<text class=\"point-label\"")); p++) {
        double x = 0, y = 0;
        const char *xs = strstr(p, " x=\""), *ys = strstr(p, " y=\""), *gt = strchr(p, '>');
        const char *end = gt ? strstr(gt, "</text>") : NULL;
        if (!xs || !ys || !end) break;
        x = atof(xs + 4);
        y = atof(ys + 4);
        bool bold = strstr(p, "font-weight=\"bold\"") && strstr(p, "font-weight=\"bold\"") < gt;
        double w = (double)(end - gt - 1) * 12 * 0.6 * (bold ? 1.2 : 1);
        out[n++] = (box){x, y - 9, x + w, y + 3};
    }
    return n;
}

static int svg_markers(const char *svg, box *out, int cap, char colors[][16]) {
    int n = 0;
    for (const char *p = svg; n < cap && (p = strstr(p, "<circle cx=\"")); p++) {
        const char *r = strstr(p, " r=\""), *fill = strstr(p, " fill=\"");
        if (!r || atof(r + 4) != 6 || !fill) continue;
        double cx = atof(p + 12), cy = atof(strstr(p, " cy=\"") + 5);
        out[n] = (box){cx - 6, cy - 6, cx + 6, cy + 6};
        snprintf(colors[n++], 16, "%.7s", fill + 7);
    }
    return n;
}

static bool boxes_meet(const box *a, const box *b) {
    return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

/* Twelve methods within 2% of each other in latency and accuracy: every
 * label readable (no label over another or over a marker, none outside the
 * chart) and every method in a colour of its own. */
static void make_crowded(qb_report *r, qb_report_row *rows, int n) {
    static const char *const names[] = {"fp32", "fp16", "bf16", "dynamic", "dynamic-emb8", "dynamic-per-tensor",
                                        "static", "static-minmax", "static-mse", "static-entropy", "mixed",
                                        "int8-long-method-name"};
    make_report(r, rows);
    for (int i = 0; i < n; i++)
        rows[i] = make_row(names[i], 0.80 + 0.0005 * (i % 5), 16.9 + 0.03 * i, 44.7 / (1 + i % 4), 0.99);
    r->n_rows = n;
}

static void check_crowded(const char *dir) {
    enum { N = 12 };
    qb_report r;
    qb_report_row rows[N];
    make_crowded(&r, rows, N);
    qb_error err = {0};
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "crowded: %s", err.msg);
    char *svg = slurp(dir, "accuracy_latency.svg");
    if (!svg) return;
    box labels[N], marks[N];
    char colors[N][16];
    int nl = svg_labels(svg, labels, N), nm = svg_markers(svg, marks, N, colors);
    CHECK(nl == N && nm == N, "crowded: %d labels, %d markers", nl, nm);
    double width = atof(strstr(svg, "viewBox=\"0 0 ") + 13);
    for (int i = 0; i < nl; i++) {
        CHECK(labels[i].x0 >= 0 && labels[i].x1 <= width, "crowded: label %d inside the chart", i);
        for (int j = 0; j < nl; j++) CHECK(j == i || !boxes_meet(&labels[i], &labels[j]), "labels %d, %d overlap", i, j);
        for (int j = 0; j < nm; j++) CHECK(!boxes_meet(&labels[i], &marks[j]), "label %d covers marker %d", i, j);
    }
    for (int i = 0; i < nm; i++)
        for (int j = 0; j < i; j++) CHECK(strcmp(colors[i], colors[j]), "markers %d and %d share %s", i, j, colors[i]);
    free(svg);
}

/* A row whose rounds disagreed is marked and never named for its speed. */
/* Whether the line of s that starts at head names name. */
static bool line_names(char *s, const char *head, const char *name) {
    char *p = strstr(s, head), *e = p ? strchr(p, '\n') : NULL;
    if (!p) return false;
    if (e) *e = 0;
    bool found = strstr(p, name) != NULL;
    if (e) *e = '\n';
    return found;
}

static void check_noisy(const char *dir) {
    qb_report r;
    qb_report_row rows[N_ROWS];
    make_report(&r, rows);
    rows[6].speed_noisy = true; /* static-minmax, otherwise the fastest */
    rows[6].speedup = 148.26;
    qb_error err = {0};
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "noisy: %s", err.msg);
    char *md = slurp(dir, "report.md");
    CHECK(md && !strstr(md, "Fastest at batch 1 among the rows not marked noisy: static-minmax") &&
              strstr(md, "Fastest at batch 1 among the rows not marked noisy: dynamic"),
          "noisy row not named fastest, and the finding says it was left out");
    CHECK(md && strstr(md, "148.26 noisy") && strstr(md, "Speed not compared for static-minmax"),
          "noisy row marked in the table and findings");
    CHECK(md && !strstr(md, "148.26x"), "no speed claim from a noisy row");
    CHECK(md && !line_names(md, "Pareto-optimal", "static-minmax") && !line_names(md, "Dominated", "static-minmax"),
          "a noisy row is neither Pareto-optimal nor dominated");
    free(md);
    char *svg = slurp(dir, "speedup.svg");
    CHECK(svg && strstr(svg, "148.26x (noisy)"), "the speedup chart marks the noisy row");
    free(svg);
}

/* When no layer changes the accuracy, the chart ranks them by SQNR. */
static void check_sensitivity_sqnr(const char *dir) {
    qb_sensitivity_row rows[3] = {{.name = "a.dense", .drop = 0, .sqnr_db = 31},
                                  {.name = "b.dense", .drop = 0, .sqnr_db = 12},
                                  {.name = "c.dense", .drop = 0, .sqnr_db = 25}};
    qb_sensitivity s = {.method = "dynamic", .fp32_accuracy = 0.8, .rows = rows, .n_rows = 3, .whole_accuracy = NAN};
    qb_error err;
    CHECK(qb_sensitivity_write(&s, dir, &err) == QB_OK, "sensitivity sqnr: %s", err.msg);
    char *svg = slurp(dir, "sensitivity.svg");
    const char *b = svg ? strstr(svg, ">b.dense<") : NULL, *c = svg ? strstr(svg, ">c.dense<") : NULL;
    CHECK(svg && strstr(svg, "SQNR") && strstr(svg, "12.0 dB") && b && c && b < c, "all-zero drops plot SQNR");
    free(svg);
}

/* NaN/inf rows and an empty report still write parseable files. */
static void check_degenerate(const char *dir) {
    qb_report r;
    qb_report_row big[N_ROWS];
    make_report(&r, big);
    big[1].p50_b1_ms = NAN;
    big[2].accuracy = INFINITY;
    big[3].speedup = 0;
    big[3].peak_rss_mb = NAN;
    qb_error err;
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "NaN rows: %s", err.msg);
    char *js = slurp(dir, "report.json"), *svg = slurp(dir, "accuracy_latency.svg");
    json_t *j = NULL;
    CHECK(js && qb_json_parse(js, strlen(js), "report.json", &j, &err) == QB_OK, "NaN report.json parses");
    if (js) json_decref(j);
    CHECK(svg && xml_balanced(svg) && !strstr(svg, "nan") && !strstr(svg, "inf"), "no nan in svg");
    CHECK(svg && !strstr(svg, "data-method=\"fp16\""), "NaN-latency row left out of the chart");
    free(js);
    free(svg);
    r.n_rows = 0;
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "empty report: %s", err.msg);
    svg = slurp(dir, "radar.svg");
    CHECK(svg && xml_balanced(svg), "empty radar well-formed");
    free(svg);
}

/* Entity F1 gets no noise estimate (its agreement counts words, not the
 * sentences n counts), and a best score equal to the baseline's is a tie,
 * not a lead. */
static void check_ner_findings(const char *dir) {
    qb_report r;
    qb_report_row rows[N_ROWS];
    make_report(&r, rows);
    r.n_rows = 3;
    rows[0].entity_f1 = 0.7255, rows[1].entity_f1 = 0.7255, rows[2].entity_f1 = 0.60;
    rows[1].agreement = 0.999, rows[2].agreement = 0.937;
    qb_error err;
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "NER report: %s", err.msg);
    char *md = slurp(dir, "report.md");
    CHECK(md && strstr(md, "bf16 loses 12.55 pt entity F1 vs fp32: more than 0.5 pt (no noise estimate for entity F1)"),
          "NER loss without a noise figure");
    CHECK(md && strstr(md, "fp16: +0.00 pt entity F1 vs fp32 (no noise estimate"), "NER change without a noise figure");
    CHECK(md && !strstr(md, "sigma"), "no sigma for entity F1");
    CHECK(md && strstr(md, "Most accurate: fp32 (entity F1 72.55%).") , "the baseline first on a tie");
    free(md);
    rows[0] = make_row("fp32", 0.9, 4.0, 44.7, 1.0), rows[1] = make_row("dynamic", 0.9, 1.6, 11.5, 1.0);
    rows[1].accuracy = 0.9; /* listed first, so the tie goes to it */
    r.rows = (qb_report_row[]){rows[1], rows[0]};
    r.n_rows = 2;
    CHECK(qb_report_write(&r, dir, &err) == QB_OK, "tie report: %s", err.msg);
    md = slurp(dir, "report.md");
    CHECK(md && strstr(md, "Most accurate: dynamic (accuracy 90.00%), tied with the baseline."), "a tie says so");
    free(md);
}

static void check_bad_dir(const char *tmp, const qb_report *r) {
    char file[4096], bad[4200];
    snprintf(file, sizeof file, "%s/plain-file", tmp);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(bad, sizeof bad, "%s/sub", file);
    qb_error err = {0};
    CHECK(qb_report_write(r, bad, &err) == QB_ERR_IO, "dir under a file: QB_ERR_IO");
    CHECK(strstr(err.msg, bad), "error names the path: %s", err.msg);
    CHECK(qb_report_write(r, file, &err) == QB_ERR_IO && strstr(err.msg, file), "a file as dir: %s", err.msg);
    snprintf(bad, sizeof bad, "%s/no/such/dir", tmp);
    CHECK(qb_sensitivity_write(&(qb_sensitivity){0}, bad, &err) == QB_ERR_IO && strstr(err.msg, bad),
          "sensitivity: missing parent: %s", err.msg);
}

int main(void) {
    char tmp[] = "/tmp/qb_test_report_XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    qb_report_row rows[N_ROWS];
    qb_report r;
    make_report(&r, rows);
    int front[N_ROWS], nf = expected_front(&r, front);
    CHECK(nf == 3, "expected front size %d", nf);
    qb_error err = {0};
    CHECK(qb_report_write(&r, tmp, &err) == QB_OK, "write: %s", err.msg);
    check_json(tmp, &r, front, nf);
    check_csv(tmp);
    check_charts(tmp, &r, front, nf);
    check_html_md(tmp, &r);
    check_sensitivity(tmp);
    const char *out = getenv("QB_REPORT_OUT");
    if (out && *out) {
        CHECK(qb_report_write(&r, out, &err) == QB_OK, "QB_REPORT_OUT: %s", err.msg);
        check_sensitivity(out);
        char crowded[4200];
        snprintf(crowded, sizeof crowded, "%s/crowded", out);
        check_crowded(crowded);
    }
    check_crowded(tmp);
    check_noisy(tmp);
    check_sensitivity_sqnr(tmp);
    check_degenerate(tmp);
    check_ner_findings(tmp);
    check_bad_dir(tmp, &r);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return qb_test_done("test_report");
}
