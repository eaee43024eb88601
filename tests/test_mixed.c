/* Mixed precision, as a property: whatever format each linear is given
 * (fp32, fp16, bf16, int8 with dynamic or static inputs), the model must
 * compute what each layer's format computes, so its logits stay close to
 * FP32.  A hidden coupling between neighbouring layers (a quantized input,
 * a buffer or a fused residual that assumes the neighbour's format) shows
 * up as noise-level logits for some maps and not others.
 *
 * For each trained model: 40 random maps (every linear drawn from the five
 * formats, so each of the 25 pairs of neighbouring formats comes up about
 * 1.6 times per pair of neighbours, of which a model has dozens) plus the
 * regression case of issue #14 (only the attention output projections
 * int8), each run on every kernel set this CPU has, against FP32 logits of
 * the same kernel set.  The scalar set runs every map on the first 4
 * sentences only (it is ~50x slower).  Under the sanitizers (20x slower
 * again) 3 random maps on 32 sentences keep the suite's time bounded. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fs.h"
#include "eval/dataset.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test_util.h"

#define N_SENT 100
#define SEQ_MAX 128
#define MIN_COSINE 0.995
#define MIN_AGREEMENT 0.97

static const char *const formats[] = {"fp32", "fp16", "bf16", "int8-dynamic", "int8-static"};

typedef struct {
    const char *model, *data, *calib;
} model_case;

typedef struct {
    qb_encoding enc[N_SENT];
    int n;
    int n_scalar;             /* sentences the scalar kernels run */
    float *ref[QB_ISA_COUNT]; /* FP32 logits per kernel set, [n][seq_max * labels] */
    double worst_cos[QB_ISA_COUNT], worst_agree[QB_ISA_COUNT]; /* over the maps, for the log */
    int labels, per_ex;       /* logits per example: labels, or seq_max * labels for NER */
    bool token;
} fixture;

static qb_status tokenize_all(const qb_model *m, const char *path, int n, fixture *f, qb_error *err) {
    qb_dataset ds;
    qb_status st = qb_dataset_load(path, QB_DATA_AUTO, NULL, n, &ds, err);
    if (st) return st;
    for (int i = 0; !st && i < ds.n; i++) {
        const qb_example *e = &ds.ex[i];
        st = e->text ? qb_tokenize(m, e->text, e->text_len, e->pair, e->pair_len, SEQ_MAX, &f->enc[i], err)
                     : qb_tokenize_words(m, e->words, e->word_lens, e->n_words, SEQ_MAX, &f->enc[i], err);
        f->n = i + 1;
    }
    qb_dataset_free(&ds);
    return st;
}

/* Logits of the first n examples, [n][per_ex], padding rows zero. */
static qb_status run_model(const qb_model *m, const fixture *f, int n, float *out, qb_error *err) {
    qb_session_params sp = qb_session_default_params();
    sp.max_batch = 16;
    sp.max_seq = SEQ_MAX;
    sp.n_threads = 2;
    qb_session *s = NULL;
    qb_status st = qb_session_create(m, &sp, &s, err);
    for (int b = 0; !st && b < n; b += 16) {
        int nb = n - b < 16 ? n - b : 16;
        const qb_encoding *encs[16];
        for (int i = 0; i < nb; i++) encs[i] = &f->enc[b + i];
        st = qb_session_run_encodings(s, encs, nb, err);
        for (int i = 0; !st && i < nb; i++) {
            float *o = out + (size_t)(b + i) * f->per_ex;
            memset(o, 0, (size_t)f->per_ex * sizeof *o);
            int rows = f->token ? f->enc[b + i].n : 1;
            memcpy(o, qb_session_logits(s, i), (size_t)rows * f->labels * sizeof *o);
        }
    }
    qb_session_free(s);
    return st;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1 : 0);
}

/* Mean cosine and agreement of predictions (per token for NER). */
static void compare_logits(const fixture *f, int n, const float *ref, const float *got, double *cos, double *agree) {
    double c = 0;
    long same = 0, total = 0;
    for (int e = 0; e < n; e++) {
        int rows = f->token ? f->enc[e].n : 1;
        for (int r = 0; r < rows; r++) {
            const float *a = ref + (size_t)e * f->per_ex + (size_t)r * f->labels;
            const float *b = got + (size_t)e * f->per_ex + (size_t)r * f->labels;
            c += cosine(a, b, f->labels);
            same += qb_argmax(a, f->labels) == qb_argmax(b, f->labels);
            total++;
        }
    }
    *cos = c / (double)total;
    *agree = (double)same / (double)total;
}

static qb_model *load(const char *dir, qb_isa isa) {
    qb_load_params lp = qb_load_default_params();
    lp.isa = qb_isa_name(isa);
    qb_model *m = NULL;
    qb_error err = {0};
    if (qb_model_load(dir, &lp, &m, &err)) fprintf(stderr, "load %s: %s\n", dir, err.msg);
    return m;
}

static void write_map(const char *path, const qb_model *m, const char *const *fmt) {
    FILE *f = fopen(path, "w");
    fputs("{", f);
    for (int i = 0; i < m->n_linears; i++) fprintf(f, "%s\"%s\": \"%s\"", i ? ", " : "", m->linears[i]->name, fmt[i]);
    fputs("}\n", f);
    fclose(f);
}

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

/* Map 0 is the regression case: only attention's output projection int8. */
static void draw_map(const qb_model *m, int k, uint64_t *rng, const char **fmt) {
    for (int i = 0; i < m->n_linears; i++) {
        const char *name = m->linears[i]->name;
        bool attn_out = ends_with(name, "attention.output.dense") || ends_with(name, "attention.dense");
        uint32_t pick = qb_test_below(rng, 5);
        fmt[i] = k == 0 ? (attn_out ? "int8-dynamic" : "fp32") : formats[pick];
    }
}

static void check_map(const char *qdir, fixture *f, int k, const char *model, float *got) {
    for (int isa = 0; isa < QB_ISA_COUNT; isa++) {
        if (!f->ref[isa]) continue;
        qb_model *m = load(qdir, (qb_isa)isa);
        CHECK(m != NULL, "%s map %d: quantized model does not load", model, k);
        if (!m) continue;
        int n = isa == QB_ISA_SCALAR ? f->n_scalar : f->n;
        qb_error err = {0};
        qb_status st = run_model(m, f, n, got, &err);
        CHECK(st == QB_OK, "%s map %d %s: %s", model, k, qb_isa_name((qb_isa)isa), err.msg);
        double cos = 0, agree = 0;
        if (!st) compare_logits(f, n, f->ref[isa], got, &cos, &agree);
        f->worst_cos[isa] = fmin(f->worst_cos[isa], cos);
        f->worst_agree[isa] = fmin(f->worst_agree[isa], agree);
        CHECK(cos >= MIN_COSINE && agree >= MIN_AGREEMENT, "%s map %d on %s: cosine %.4f, agreement %.3f (map in %s)",
              model, k, qb_isa_name((qb_isa)isa), cos, agree, qdir);
        qb_model_free(m);
    }
}

static void run_case(const model_case *c, int n_maps, int n_sent, int n_scalar, const char *tmp) {
    char dir[4096], data[4096], calib[4096], stats[4200], map[4200], qdir[4200];
    qb_test_shared_path(dir, sizeof dir, c->model);
    qb_test_shared_path(data, sizeof data, c->data);
    qb_test_shared_path(calib, sizeof calib, c->calib);
    snprintf(stats, sizeof stats, "%s/stats.json", tmp);
    snprintf(map, sizeof map, "%s/map.json", tmp);
    snprintf(qdir, sizeof qdir, "%s/model", tmp);
    qb_error err = {0};
    fixture *f = calloc(1, sizeof *f);
    f->n_scalar = n_scalar;
    qb_model *fp32 = load(dir, QB_ISA_SCALAR);
    CHECK(fp32 && tokenize_all(fp32, data, n_sent, f, &err) == QB_OK, "%s: %s", c->model, err.msg);
    if (!fp32) {
        free(f);
        return;
    }
    f->token = fp32->cfg.task == QB_TASK_TOKEN;
    f->labels = fp32->cfg.num_labels;
    f->per_ex = f->token ? SEQ_MAX * f->labels : f->labels;
    qb_quant_params qp = qb_quant_default_params(QB_QUANT_DYNAMIC);
    qp.calib_file = calib;
    qp.calib_n = n_sent < 64 ? n_sent : 64;
    qp.n_threads = 2;
    CHECK(qb_calibrate(fp32, &qp, stats, NULL, &err) == QB_OK, "%s: calibrate: %s", c->model, err.msg);
    for (int isa = 0; isa < QB_ISA_COUNT; isa++) {
        f->worst_cos[isa] = f->worst_agree[isa] = 1;
        if (!qb_isa_supported((qb_isa)isa)) continue;
        qb_model *m = load(dir, (qb_isa)isa);
        f->ref[isa] = malloc((size_t)f->n * f->per_ex * sizeof(float));
        CHECK(m && run_model(m, f, isa ? f->n : f->n_scalar, f->ref[isa], &err) == QB_OK, "%s fp32: %s", c->model,
              err.msg);
        qb_model_free(m);
    }
    float *got = malloc((size_t)f->n * f->per_ex * sizeof(float));
    const char **fmt = calloc((size_t)fp32->n_linears, sizeof *fmt);
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)strlen(c->model);
    qp.calib_file = NULL;
    qp.calib_stats = stats;
    qp.observer = "percentile:99.99";
    qp.force = 1;
    for (int k = 0; k <= n_maps; k++) {
        draw_map(fp32, k, &rng, fmt);
        write_map(map, fp32, fmt);
        qp.precision_map = map;
        qb_status st = qb_quantize(fp32, &qp, qdir, NULL, &err);
        CHECK(st == QB_OK, "%s map %d: quantize: %s", c->model, k, err.msg);
        if (!st) check_map(qdir, f, k, c->model, got);
    }
    for (int isa = 0; isa < QB_ISA_COUNT; isa++)
        if (f->ref[isa])
            printf("%s: %d maps on %s (%d sentences): worst mean cosine %.5f, worst agreement %.3f\n", c->model,
                   n_maps + 1, qb_isa_name((qb_isa)isa), isa == QB_ISA_SCALAR ? f->n_scalar : f->n,
                   f->worst_cos[isa], f->worst_agree[isa]);
    qb_remove_tree(qdir);
    for (int i = 0; i < QB_ISA_COUNT; i++) free(f->ref[i]);
    for (int i = 0; i < N_SENT; i++) qb_encoding_free(&f->enc[i]);
    free(f);
    free(got);
    free(fmt);
    qb_model_free(fp32);
}

int main(void) {
    static const model_case cases[] = {
        {"models/bert-mini-sst2", "data/sst2/dev.tsv", "data/sst2/train.tsv"},
        {"models/albert-mini-sst2", "data/sst2/dev.tsv", "data/sst2/train.tsv"},
        {"models/bert-mini-conll", "data/conll2003/valid.txt", "data/conll2003/train.txt"},
    };
    bool sanitize = getenv("QB_SANITIZE") != NULL;
    int n_maps = sanitize ? 3 : 40, n_sent = sanitize ? 32 : N_SENT, n_scalar = 4;
    char tmp[] = "/tmp/qb-test-mixed-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], n_maps, n_sent, n_scalar, tmp);
    qb_remove_tree(tmp);
    return qb_test_done("test_mixed");
}
