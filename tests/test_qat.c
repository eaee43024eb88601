/* Quantization-aware training: the fake-quantization ops on hand-computed
 * cases, then whole tiny models (BERT sequence and token heads, ALBERT)
 * trained a few steps through fake quantization, converted to int8 or to
 * the packed low-bit formats (int4, int2, ternary) and run by the integer
 * engine: its logits must equal the QAT model's up to FP32 summation order
 * (1e-5), and its predictions exactly.  Then the distillation loss: its
 * gradient against finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fs.h"
#include "model/linear_format.h"
#include "rounding/affine.h"
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
    qb_fq_input_forward(&s, xq, x, 6, NULL);
    for (int i = 0; i < 6; i++) CHECK(xq[i] == want[i], "fq(%g) = %g, want %g", x[i], xq[i], want[i]);
    CHECK(s.seen && s.batch_lo == -6.0f && s.batch_hi == 200.0f, "batch range [%g, %g]", s.batch_lo, s.batch_hi);

    /* Straight-through inside the grid, 0 where clamped; -5 sits exactly on
     * the lower end (index 0) and passes. */
    const float dy[6] = {1, 2, 3, 4, 5, 6};
    float dx[6] = {0};
    qb_fq_input_backward(&s, dx, dy, x, 6, true, NULL);
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

/* The low-bit fake weights are the packed format's values: the quantizer's
 * own codes and FP16 scales, decoded. */
static void test_lowbit_fake_quant(void) {
    enum { N = 3, K = 160 };
    float w[N * K], wq[N * K];
    for (int i = 0; i < N * K; i++) w[i] = sinf(0.37f * (float)i) * (i % 7 == 0 ? 3.0f : 0.5f);
    const qb_lowbit_spec specs[] = {
        {.kind = QB_LOWBIT_GRID, .bits = 4, .group = 128}, {.kind = QB_LOWBIT_GRID, .bits = 2, .group = 64, .zero_point = true},
        {.kind = QB_LOWBIT_TERNARY, .bits = 2, .group = 32}, {.kind = QB_LOWBIT_GRID, .bits = 3, .group = K},
    };
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        const qb_lowbit_spec *sp = &specs[s];
        int G = qb_lowbit_groups(sp, K), gs = G == 1 ? K : sp->group;
        uint8_t codes[N * K], zero[N * 8], c2[N * K], z2[N * 8];
        uint16_t scale[N * 8], s2[N * 8];
        qb_lowbit_error e;
        CHECK(qb_fq_weight_lowbit(w, N, K, sp, wq, codes, scale, zero), "spec %zu: quantizer failed", s);
        CHECK(qb_lowbit_quantize(w, N, K, sp, c2, s2, z2, NULL, &e, NULL), "spec %zu: quantizer failed", s);
        int bad = 0, levels = qb_lowbit_levels(sp);
        for (int r = 0; r < N; r++)
            for (int k = 0; k < K; k++) {
                int g = r * G + k / gs, c = c2[r * K + k];
                bad += c >= levels || wq[r * K + k] != qb_f16_to_f32(s2[g]) * (float)(c - z2[g]);
            }
        CHECK(bad == 0, "spec %zu: %d fake weights are not the format's decoded codes", s, bad);
    }
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
    CHECK(diff <= 1e-5 * fmax(mag, 1.0), "%s: engine logits differ by %g (|logit| up to %g)", name, diff, mag);
    CHECK(same == rows, "%s: %d of %d predictions differ", name, rows - same, rows);
    printf("  %-18s max |engine - QAT| %.2e, predictions %d/%d equal\n", name, diff, same, rows);
    qb_session_free(s);
}

/* What each linear but the classifier must be stored as. */
static const char *format_of(const qb_qat_params *qp) {
    return qp->ternary ? "ternary" : qp->bits == 4 ? "int4" : qp->bits == 3 ? "int3" : qp->bits == 2 ? "int2" : "int8";
}

static void test_model(const char *name, qb_task task, qb_qat_params qp) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char dir[4096], out[4096], label[96];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", src, name);
    snprintf(out, sizeof out, "/tmp/qb-test-qat-%ld-%s", (long)getpid(), name);
    snprintf(label, sizeof label, "%s %s %s g%d", name, qp.observer == QB_FQ_LSQ ? "lsq" : "ema", format_of(&qp),
             qp.group_size);
    qb_model *m = NULL, *q = NULL;
    qb_trainer *t = NULL;
    qb_error err = {0};
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = task;
    tp.n_threads = 2;
    qp.momentum = 0.01f;
    bool token = task == QB_TASK_TOKEN;
    qb_batch b = {3, 7, ids, types, lens};
    qb_outdir od = {0};
    qb_status st = qb_model_load(dir, NULL, &m, &err);
    if (!st) st = qb_trainer_create(m, &tp, &t, &err);
    if (!st) st = qb_trainer_enable_qat(t, &qp, &err);
    if (!st) st = qb_trainer_reserve(t, 3, 7, &err);
    if (!st) st = train_a_little(t, &b, token ? tok_labels : seq_labels, &err);
    if (!st) st = qb_outdir_begin(&od, out, QB_OUTDIR_FORCE, &err);
    if (!st) st = qb_checkpoint_write_qat(t, (const char *const *)m->cfg.labels, m->cfg.num_labels, od.tmp, &err);
    if (!st) st = qb_model_load(od.tmp, NULL, &q, &err);
    CHECK(st == QB_OK, "%s: %s", label, err.msg);
    if (!st) {
        int n_fmt = 0;
        for (int i = 0; i < q->n_linears; i++) n_fmt += !strcmp(q->linears[i]->fmt->name, format_of(&qp));
        CHECK(n_fmt == q->n_linears - 1, "%s: %d of %d linears %s (all but the classifier)", label, n_fmt,
              q->n_linears, format_of(&qp));
        compare_with_engine(label, t, q, &b, token);
    }
    qb_outdir_abort(&od);
    qb_model_free(q);
    qb_trainer_free(t);
    qb_model_free(m);
}

/* ---- distillation: d(loss)/d(param) against central differences ------ */

static double distilled_loss(qb_trainer *st, qb_trainer *te, const qb_batch *b, const int32_t *labels) {
    qb_error err = {0};
    qb_distill_params dp = {.temperature = 2.0f, .hidden = true};
    float loss = NAN;
    qb_status s = qb_trainer_forward(te, b, NULL, false, NULL, &err);
    if (!s) s = qb_trainer_forward(st, b, labels, false, NULL, &err);
    if (!s) s = qb_trainer_distill(st, te, &dp, &loss, &err);
    CHECK(s == QB_OK, "distill: %s", err.msg);
    return loss;
}

static void check_distill_model(const char *name, qb_task task) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", src, name);
    qb_model *m = NULL;
    qb_trainer *st = NULL, *te = NULL;
    qb_error err = {0};
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = task;
    tp.n_threads = 2;
    tp.hidden_dropout = tp.attn_dropout = tp.classifier_dropout = 0;
    qb_batch b = {3, 7, ids, types, lens};
    const int32_t *labels = task == QB_TASK_TOKEN ? tok_labels : seq_labels;
    qb_status s = qb_model_load(dir, NULL, &m, &err);
    if (!s) s = qb_trainer_create(m, &tp, &st, &err);
    if (!s) s = qb_trainer_create(m, &tp, &te, &err);
    if (!s) s = qb_trainer_reserve(st, 3, 7, &err);
    if (!s) s = qb_trainer_reserve(te, 3, 7, &err);
    CHECK(s == QB_OK, "%s: %s", name, err.msg);
    if (s) goto done;
    /* the student drifts from the teacher, or every distillation gradient is 0 */
    for (int i = 0; i < st->n_params; i++)
        for (int64_t j = 0; j < st->params[i].numel; j++) st->params[i].w[j] += 0.05f * sinf(1.7f * (float)(i * 31 + j));
    qb_trainer_zero_grad(st);
    distilled_loss(st, te, &b, labels);
    CHECK(st->kd_loss > 0 && st->hidden_loss > 0, "%s: distillation terms %g, %g", name, st->kd_loss, st->hidden_loss);
    qb_trainer_backward(st);
    const char *names[] = {"classifier.weight", "embeddings.LayerNorm.weight", "encoder.layer.0.attention.self.query.weight",
                           "encoder.layer.1.output.dense.weight"};
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < st->n_params; i++) {
        qb_tparam *p = &st->params[i];
        bool pick = false;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) pick |= strstr(p->name, names[k]) != NULL;
        for (int64_t j = 0; pick && j < p->numel && j < 6; j++) {
            float w0 = p->w[j], h = 1e-2f;
            p->w[j] = w0 + h;
            double up = distilled_loss(st, te, &b, labels);
            p->w[j] = w0 - h;
            double down = distilled_loss(st, te, &b, labels);
            p->w[j] = w0;
            double num = (up - down) / (2.0 * h), rel = fabs(num - p->g[j]) / fmax(fabs(num), 1e-2);
            worst = fmax(worst, rel);
            CHECK(rel < 2e-2, "%s: d loss / d %s[%lld]: analytic %g, numeric %g", name, p->name, (long long)j,
                  p->g[j], num);
            checked++;
        }
    }
    CHECK(checked >= 12, "%s: only %d gradients checked", name, checked);
    printf("  %-18s distillation gradient: %d checked, worst relative error %.1e\n", name, checked, worst);
done:
    qb_trainer_free(st);
    qb_trainer_free(te);
    qb_model_free(m);
}

static void test_distill_gradient(void) {
    check_distill_model("tiny-bert-seq", QB_TASK_SEQUENCE);
    check_distill_model("tiny-bert-token", QB_TASK_TOKEN);
    check_distill_model("tiny-albert-seq", QB_TASK_SEQUENCE);
}

int main(void) {
    test_input_fake_quant();
    test_weight_fake_quant();
    test_lowbit_fake_quant();
    const qb_qat_params int8 = {.bits = 8}, lsq = {.observer = QB_FQ_LSQ, .bits = 8}, int6 = {.bits = 6};
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, int8);
    test_model("tiny-bert-token", QB_TASK_TOKEN, int8);
    test_model("tiny-albert-seq", QB_TASK_SEQUENCE, int8);
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, lsq);
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE, int6);
    /* the packed formats, on every tiny model; groups of 4 so a row of
     * the tiny models (8 and 12 inputs) has several scales */
    const qb_qat_params lowbit[] = {
        {.bits = 4, .group_size = 4}, {.bits = 2, .group_size = 4}, {.ternary = true, .group_size = 4},
        {.observer = QB_FQ_LSQ, .bits = 2, .group_size = -1, .zero_point = true}, {.bits = 3},
    };
    const char *models[] = {"tiny-bert-seq", "tiny-bert-token", "tiny-albert-seq"};
    for (size_t i = 0; i < sizeof lowbit / sizeof *lowbit; i++)
        for (int k = 0; k < 3; k++) test_model(models[k], k == 1 ? QB_TASK_TOKEN : QB_TASK_SEQUENCE, lowbit[i]);
    test_distill_gradient();
    return qb_test_done("test_qat");
}
