/* A calibration forward that starts at a block, from that block's input
 * kept by an earlier run of the same batch, computes what the whole forward
 * computes, bit for bit: GPTQ's passes start so (quant/compensate.c), and
 * their output must not depend on it.  Every block of the in-tree models,
 * every batch of a small calibration file, with the observer's halt too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/session.h"
#include "quant/calibrate.h"
#include "test_util.h"

#define MAX_APPS 16

typedef struct {
    const qb_model *m;
    float *x[MAX_APPS]; /* each block's input rows */
    int rows;
    int halt_at;        /* the block whose Q input halts the forward, or -1 */
} keeper;

/* The block (here also its application) whose Q reads x, or -1. */
static int app_of_q(const qb_model *m, const qb_linear *l) {
    int b = qb_model_block_of(m, l);
    return b >= 0 && l == &m->blocks[b].q ? b : -1;
}

static bool keep_inputs(void *ctx, const qb_linear *l, bool output, const float *x, int rows) {
    keeper *k = ctx;
    int app = output ? -1 : app_of_q(k->m, l);
    if (app < 0) return false;
    size_t n = (size_t)rows * l->in;
    free(k->x[app]);
    k->x[app] = malloc(n * sizeof(float));
    memcpy(k->x[app], x, n * sizeof(float));
    k->rows = rows;
    return app == k->halt_at;
}

/* The batch's outputs: logits of every example, padded as the session hands them out. */
static size_t outputs(const qb_session *s, float *out) {
    size_t n = 0;
    int L = s->m->cfg.num_labels, per = s->m->cfg.task == QB_TASK_TOKEN ? s->seq * L : L;
    for (int i = 0; i < s->batch; i++, n += (size_t)per) memcpy(out + n, qb_session_logits(s, i), per * sizeof(float));
    return n;
}

static void check_model(const char *name, const char *calib) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", src, name);
    qb_model *m = NULL;
    qb_error err = {0};
    qb_load_params lp = qb_load_default_params();
    CHECK(!qb_model_load(dir, &lp, &m, &err), "%s: %s", name, err.msg);
    if (!m) return;
    qb_quant_params p = qb_quant_default_params(QB_QUANT_DYNAMIC);
    p.calib_file = calib;
    p.n_threads = 2;
    qb_calib_texts t;
    CHECK(!qb_calib_texts_open(m, &p, &t, &err), "%s: %s", name, err.msg);
    int apps = m->cfg.num_layers * qb_model_inner_steps(m);
    CHECK(apps <= MAX_APPS && t.batches > 1, "%s: %d blocks, %d batches", name, apps, t.batches);
    size_t cap = (size_t)8 * 512 * 64;
    float *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got);
    for (int b = 0; b < t.batches && apps <= MAX_APPS; b++) {
        keeper k = {.m = m, .halt_at = -1};
        CHECK(!qb_calib_texts_run(&t, b, keep_inputs, &k, NULL, 0, &err), "%s: %s", name, err.msg);
        size_t n = outputs(t.s, want);
        for (int app = 0; app < apps; app++) {
            CHECK(k.x[app] != NULL, "%s batch %d: block %d's input not seen", name, b, app);
            if (!k.x[app]) continue;
            CHECK(!qb_calib_texts_run(&t, b, NULL, NULL, k.x[app], app, &err), "%s: %s", name, err.msg);
            CHECK(outputs(t.s, got) == n && !memcmp(want, got, n * sizeof *got),
                  "%s batch %d: the forward resumed at block %d differs", name, b, app);
            /* resumed and halted at a later block: the kept input is the same */
            if (app + 1 < apps) {
                keeper h = {.m = m, .halt_at = app + 1};
                CHECK(!qb_calib_texts_run(&t, b, keep_inputs, &h, k.x[app], app, &err), "%s: %s", name, err.msg);
                CHECK(h.x[app + 1] && h.rows == k.rows &&
                          !memcmp(h.x[app + 1], k.x[app + 1], (size_t)k.rows * m->cfg.hidden_size * sizeof(float)),
                      "%s batch %d: block %d's input kept from block %d differs", name, b, app + 1, app);
                for (int a = 0; a < MAX_APPS; a++) free(h.x[a]);
            }
        }
        for (int a = 0; a < MAX_APPS; a++) free(k.x[a]);
    }
    free(want);
    free(got);
    qb_calib_texts_close(&t);
    qb_model_free(m);
}

int main(void) {
    char calib[] = "/tmp/qb-calib-resume-XXXXXX";
    int fd = mkstemp(calib);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) return fprintf(stderr, "cannot write %s\n", calib), 1;
    fputs("sentence\tlabel\n", f);
    static const char *const words[] = {"a", "film", "of", "rare", "charm", "and", "the", "plot", "is", "thin"};
    for (int i = 0; i < 21; i++) {
        for (int w = 0; w <= (i * 7) % 23; w++) fprintf(f, "%s%s", w ? " " : "", words[(i + w * 3) % 10]);
        fprintf(f, "\t%d\n", i % 2);
    }
    fclose(f);
    check_model("tiny-bert-seq", calib);
    check_model("tiny-bert-token", calib);
    unlink(calib);
    return qb_test_done("test_calib_resume");
}
