/* Quantization-aware training: the fake-quantization ops on hand-computed
 * cases, then whole tiny models (BERT sequence and token heads, ALBERT)
 * trained a few steps through fake quantization, converted to int8 and run
 * by the integer engine: its logits must equal the QAT model's up to FP32
 * summation order, and its predictions exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fs.h"
#include "model/linear_format.h"
#include "quant/affine.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/fake_quant.h"
#include "train/trainer.h"

static void test_input_fake_quant(void) {
    /* scale 0.5, zero point 10: the grid is 0.5 * ([0, 255] - 10) = [-5, 122.5] */
    qb_fq_site s = {.scale = 0.5f, .zero = 10};
    const float x[6] = {0.0f, 1.24f, -5.0f, -6.0f, 200.0f, 0.75f};
    const float want[6] = {0.0f, 1.0f, -5.0f, -5.0f, 122.5f, 1.0f}; /* 0.75 / 0.5 = 1.5 rounds to even 2 */
    float xq[6];
    qb_fq_input_forward(&s, xq, x, 6, 1);
    for (int i = 0; i < 6; i++) CHECK(xq[i] == want[i], "fq(%g) = %g, want %g", x[i], xq[i], want[i]);
    CHECK(s.seen && s.batch_lo == -6.0f && s.batch_hi == 200.0f, "batch range [%g, %g]", s.batch_lo, s.batch_hi);

    /* Straight-through inside the grid, 0 where clamped; -5 sits exactly on
     * the lower end (index 0) and passes. */
    const float dy[6] = {1, 2, 3, 4, 5, 6};
    float dx[6] = {0};
    qb_fq_input_backward(&s, dx, dy, x, 6, true, 1);
    const float want_dx[6] = {1, 2, 3, 0, 0, 6};
    for (int i = 0; i < 6; i++) CHECK(dx[i] == want_dx[i], "dx[%d] = %g, want %g", i, dx[i], want_dx[i]);
    /* LSQ: inside, round(x/s) - x/s: 0, 2 - 2.48, -10 + 10, 2 - 1.5;
     * below: -zero; above: 255 - zero; scaled by 1 / sqrt(6 * 255). */
    double g = 1 * 0 + 2 * (2 - 2.48) + 3 * 0 + 4 * (-10.0) + 5 * 245.0 + 6 * 0.5;
    g /= sqrt(6 * 255.0);
    CHECK(fabs(s.grad - g) < 1e-4, "LSQ scale gradient %g, want %g", s.grad, g);

    /* EMA: range moves 1% of the way to the batch's, the scale follows. */
    s.lo = -1.0f;
    s.hi = 1.0f;
    qb_fq_site_update(&s, QB_FQ_EMA, 0.01f);
    CHECK(fabsf(s.lo - (-1.05f)) < 1e-6f && fabsf(s.hi - 2.99f) < 1e-6f, "EMA range [%g, %g]", s.lo, s.hi);
    CHECK(fabsf(s.scale - (2.99f + 1.05f) / 255.0f) < 1e-7f && s.zero == 66, "EMA scale %g zero %d", s.scale, s.zero);
    CHECK(!s.seen, "the batch range is consumed");
}

static void test_weight_fake_quant(void) {
    const float w[2 * 3] = {0.9f, -0.3f, 0.1f, -2.0f, 1.0f, 0.26f};
    for (int bits = 2; bits <= 8; bits += 2) {
        float wq[6], scale[2], scale_ref[2];
        int8_t q[6], q_ref[6];
        qb_fq_weight(w, 2, 3, bits, wq, q, scale);
        qb_quantize_weight_s8(w, 2, 3, bits, true, q_ref, scale_ref);
        for (int i = 0; i < 6; i++)
            CHECK(wq[i] == scale_ref[i / 3] * (float)q_ref[i], "%d bits: wq[%d] %g is not the converter's %g * %d",
                  bits, i, wq[i], scale_ref[i / 3], q_ref[i]);
    }
}

/* ---- whole models: QAT logits == int8 engine logits ------------------ */

static const int32_t ids[] = {101, 150, 160, 170, 102, 0, 0, 101, 180, 102, 0, 0, 0, 0,
                              101, 190, 200, 210, 220, 230, 102};
static const int32_t types[] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
static const int32_t lens[] = {5, 3, 7}, seq_labels[] = {1, 0, 1};
static const int32_t tok_labels[] = {-100, 1, 2, 0, -100, -100, -100, -100, 3, -100, -100, -100, -100, -100,
                                     -100, 0, 1, -100, 2, 3, -100};

static qb_status train_a_little(qb_trainer *t, const qb_batch *b, const int32_t *labels, qb_error *err) {
    qb_trainer_qat_calibrate_begin(t);
    qb_status st = qb_trainer_forward(t, b, NULL, false, NULL, err);
    qb_trainer_qat_calibrate_end(t);
    qb_adamw_params ap = qb_adamw_default_params();
    ap.lr = 1e-3f;
    for (int step = 0; !st && step < 3; step++) {
        qb_trainer_zero_grad(t);
        st = qb_trainer_forward(t, b, labels, true, NULL, err);
        if (!st) qb_trainer_backward(t);
        if (!st) st = qb_trainer_step(t, &ap, NULL, err);
    }
    return st ? st : qb_trainer_forward(t, b, NULL, false, NULL, err);
}

/* Compares the trainer's last logits with the int8 engine's on batch b. */
static void compare_with_engine(const char *name, const qb_trainer *t, const qb_model *q, const qb_batch *b,
                                bool token) {
    qb_session *s = NULL;
    qb_error err = {0};
    qb_session_params sp = {.max_batch = b->batch, .max_seq = b->seq, .n_threads = 2};
    qb_status st = qb_session_create(q, &sp, &s, &err);
    if (!st) st = qb_session_run(s, b, &err);
    CHECK(st == QB_OK, "%s: engine: %s", name, err.msg);
    if (st) return;
    const float *ref = qb_trainer_logits(t);
    int L = t->L, row = 0, same = 0, rows = 0;
    double diff = 0, mag = 0;
    for (int e = 0; e < b->batch; e++)
        for (int i = 0; i < (token ? lens[e] : 1); i++, row++, rows++) {
            const float *got = qb_session_logits(s, e) + (size_t)i * L, *want = ref + (size_t)row * L;
            for (int k = 0; k < L; k++) {
                diff = fmax(diff, fabs(got[k] - want[k]));
                mag = fmax(mag, fabs(want[k]));
            }
            same += qb_argmax(got, L) == qb_argmax(want, L);
        }
    /* Both sum the same integer products; only FP32 rounding differs. */
    CHECK(diff <= 1e-4 * fmax(mag, 1.0), "%s: int8 engine logits differ by %g (|logit| up to %g)", name, diff, mag);
    CHECK(same == rows, "%s: %d of %d predictions differ", name, rows - same, rows);
    printf("  %-18s max |engine - QAT| %.2e, predictions %d/%d equal\n", name, diff, same, rows);
    qb_session_free(s);
}

static void test_model(const char *name, qb_task task, qb_fq_observer obs, int bits) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char dir[4096], out[4096], label[96];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", src, name);
    snprintf(out, sizeof out, "/tmp/qb-test-qat-%ld-%s", (long)getpid(), name);
    snprintf(label, sizeof label, "%s %s %d-bit", name, obs == QB_FQ_LSQ ? "lsq" : "ema", bits);
    qb_model *m = NULL, *q = NULL;
    qb_trainer *t = NULL;
    qb_error err = {0};
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = task;
    tp.n_threads = 2;
    qb_qat_params qp = {.observer = obs, .bits = bits, .momentum = 0.01f};
    bool token = task == QB_TASK_TOKEN;
    qb_batch b = {3, 7, ids, types, lens};
    char tmp[4200] = "";
    qb_status st = qb_model_load(dir, NULL, &m, &err);
    if (!st) st = qb_trainer_create(m, &tp, &t, &err);
    if (!st) st = qb_trainer_enable_qat(t, &qp, &err);
    if (!st) st = qb_trainer_reserve(t, 3, 7, &err);
    if (!st) st = train_a_little(t, &b, token ? tok_labels : seq_labels, &err);
    if (!st) st = qb_outdir_begin(out, true, tmp, sizeof tmp, &err);
    if (!st) st = qb_checkpoint_write_int8(t, (const char *const *)m->cfg.labels, m->cfg.num_labels, tmp, &err);
    if (!st) st = qb_model_load(tmp, NULL, &q, &err);
    CHECK(st == QB_OK, "%s: %s", label, err.msg);
    if (!st) {
        int n_int8 = 0;
        for (int i = 0; i < q->n_linears; i++) n_int8 += q->linears[i]->fmt->precision == QB_PREC_INT8;
        CHECK(n_int8 == q->n_linears - 1, "%s: %d of %d linears int8 (all but the classifier)", label, n_int8,
              q->n_linears);
        compare_with_engine(label, t, q, &b, token);
    }
    if (tmp[0]) qb_outdir_abort(tmp);
    qb_model_free(q);
    qb_trainer_free(t);
    qb_model_free(m);
}

int main(void) {
    test_input_fake_quant();
    test_weight_fake_quant();
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, QB_FQ_EMA, 8);
    test_model("tiny-bert-token", QB_TASK_TOKEN, QB_FQ_EMA, 8);
    test_model("tiny-albert-seq", QB_TASK_SEQUENCE, QB_FQ_EMA, 8);
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, QB_FQ_LSQ, 8);
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, QB_FQ_EMA, 4);
    return qb_test_done("test_qat");
}
