/* Finite-difference checks of every op's backward, then of whole tiny
 * models (BERT sequence and token heads, ALBERT with one layer shared by
 * three) with dropout on: the mask is a function of (seed, step), so the
 * perturbed forwards see the same mask as the analytic backward.
 *
 * Each op's scalar loss is sum(out * R) for a fixed random R, so its
 * backward is seeded with dout = R.  Central differences in float with
 * h = 1e-2 on O(1) inputs; the loss is summed in double.  Whole models
 * use Richardson-extrapolated differences on 6 elements of every tensor.
 * Metric per tensor: max_i |g[i] - fd[i]| / max_i |fd[i]|; bar 1e-3 per op,
 * 2e-3 per model tensor. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "train/trainer.h"

#define H_STEP 1e-2f
#define TOL 1e-3
/* A whole model's loss is a float: its round-off over 2h bounds what the
 * differences can resolve (test_grad_torch checks the same gradients
 * against autograd to 1e-4). */
#define MODEL_TOL 2e-3

static uint64_t rng_state = 12345;

static float uniform(float lo, float hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng_state >> 40) / 16777216.0);
}

static float *random_floats(size_t n, float lo, float hi) {
    float *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = uniform(lo, hi);
    return a;
}

static float *zero_floats(size_t n) { return calloc(n, sizeof(float)); }

typedef double (*loss_fn)(void *ctx);

/* Compares grad (analytic) with central differences of loss in x. */
static double check_tensor(const char *what, loss_fn f, void *ctx, float *x, size_t n, const float *grad) {
    double dmax = 0, fmax_ = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + H_STEP;
        double up = f(ctx);
        x[i] = keep - H_STEP;
        double down = f(ctx);
        x[i] = keep;
        double fd = (up - down) / (2.0 * H_STEP);
        dmax = fmax(dmax, fabs(grad[i] - fd));
        fmax_ = fmax(fmax_, fabs(fd));
    }
    double err = dmax / (fmax_ > 0 ? fmax_ : 1.0);
    CHECK(err <= TOL, "%s: relative error %.3g > %g", what, err, TOL);
    printf("  %-36s max rel err %.2e\n", what, err);
    return err;
}

static double weighted_sum(const float *y, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
    return s;
}

static qb_kernels kern;
static float *pack_buf, *scratch_buf, *attn_buf;

static qb_op_ctx op_ctx(void) {
    qb_op_ctx c = {&kern, NULL, pack_buf, scratch_buf, attn_buf, 8, 12};
    return c;
}

/* ---- linear ----------------------------------------------------------- */

typedef struct {
    int rows, in, out;
    float *x, *w, *b, *y, *r;
} linear_case;

static double linear_loss(void *p) {
    linear_case *c = p;
    qb_op_ctx oc = op_ctx();
    qb_op_linear_forward(&oc, c->y, c->x, c->w, c->b, c->rows, c->in, c->out);
    return weighted_sum(c->y, c->r, (size_t)c->rows * c->out);
}

static void test_linear(void) {
    linear_case c = {.rows = 5, .in = 7, .out = 3};
    c.x = random_floats(35, -1, 1);
    c.w = random_floats(21, -1, 1);
    c.b = random_floats(3, -1, 1);
    c.y = zero_floats(15);
    c.r = random_floats(15, -1, 1);
    /* gradients start non-zero: backward must accumulate */
    float *dx = random_floats(35, -1, 1), *dw = random_floats(21, -1, 1), *db = random_floats(3, -1, 1);
    float *dx0 = malloc(35 * 4), *dw0 = malloc(21 * 4), *db0 = malloc(3 * 4);
    memcpy(dx0, dx, 35 * 4);
    memcpy(dw0, dw, 21 * 4);
    memcpy(db0, db, 3 * 4);
    qb_op_ctx oc = op_ctx();
    qb_op_linear_backward(&oc, dx, dw, db, c.r, c.x, c.w, c.rows, c.in, c.out);
    for (int i = 0; i < 35; i++) dx[i] -= dx0[i];
    for (int i = 0; i < 21; i++) dw[i] -= dw0[i];
    for (int i = 0; i < 3; i++) db[i] -= db0[i];
    check_tensor("linear dx", linear_loss, &c, c.x, 35, dx);
    check_tensor("linear dW (accumulated)", linear_loss, &c, c.w, 21, dw);
    check_tensor("linear db (accumulated)", linear_loss, &c, c.b, 3, db);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db), free(dx0), free(dw0), free(db0);
}

/* ---- layernorm -------------------------------------------------------- */

typedef struct {
    int rows, dim;
    float *x, *g, *b, *y, *mean, *rstd, *r;
} ln_case;

static double ln_loss(void *p) {
    ln_case *c = p;
    qb_op_ctx oc = op_ctx();
    qb_op_layernorm_forward(&oc, c->y, c->mean, c->rstd, c->x, c->g, c->b, 1e-5f, c->rows, c->dim);
    return weighted_sum(c->y, c->r, (size_t)c->rows * c->dim);
}

static void test_layernorm(void) {
    ln_case c = {.rows = 3, .dim = 9};
    size_t n = 27;
    c.x = random_floats(n, -2, 2);
    c.g = random_floats(9, 0.5f, 1.5f);
    c.b = random_floats(9, -1, 1);
    c.y = zero_floats(n);
    c.mean = zero_floats(3);
    c.rstd = zero_floats(3);
    c.r = random_floats(n, -1, 1);
    float *dx = zero_floats(n), *dg = zero_floats(9), *db = zero_floats(9);
    ln_loss(&c);
    qb_op_ctx oc = op_ctx();
    qb_op_layernorm_backward(&oc, dx, dg, db, c.r, c.x, c.mean, c.rstd, c.g, c.rows, c.dim);
    check_tensor("layernorm dx", ln_loss, &c, c.x, n, dx);
    check_tensor("layernorm dgamma", ln_loss, &c, c.g, 9, dg);
    check_tensor("layernorm dbeta", ln_loss, &c, c.b, 9, db);
    free(c.x), free(c.g), free(c.b), free(c.y), free(c.mean), free(c.rstd), free(c.r), free(dx), free(dg), free(db);
}

/* ---- activations, dropout, residual ----------------------------------- */

typedef struct {
    qb_act act;
    size_t n;
    float *x, *y, *r;
    qb_dropout drop;
    bool dropout;
} elem_case;

static double elem_loss(void *p) {
    elem_case *c = p;
    qb_op_ctx oc = op_ctx();
    if (c->dropout) qb_op_dropout_forward(&c->drop, c->y, c->x, c->n);
    else qb_op_act_forward(&oc, c->act, c->y, c->x, c->n);
    return weighted_sum(c->y, c->r, c->n);
}

static void test_elementwise(void) {
    static const struct { qb_act act; const char *name; } acts[] = {
        {QB_ACT_GELU, "gelu (erf)"}, {QB_ACT_GELU_TANH, "gelu (tanh)"}, {QB_ACT_RELU, "relu"}, {QB_ACT_TANH, "tanh"}};
    elem_case c = {.act = QB_ACT_NONE, .n = 40};
    c.x = random_floats(40, -3, 3);
    for (size_t i = 0; i < 40; i++) /* keep ReLU's kink out of the difference's reach */
        if (fabsf(c.x[i]) < 0.05f) c.x[i] = 0.5f;
    c.y = zero_floats(40);
    c.r = random_floats(40, -1, 1);
    float *dx = zero_floats(40);
    qb_op_ctx oc = op_ctx();
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++) {
        c.act = acts[a].act;
        memset(dx, 0, 40 * 4);
        qb_op_act_backward(&oc, c.act, dx, c.r, c.x, 40);
        check_tensor(acts[a].name, elem_loss, &c, c.x, 40, dx);
    }
    c.dropout = true;
    c.drop = (qb_dropout){7, 3, 11, 0.3f};
    memset(dx, 0, 40 * 4);
    qb_op_dropout_backward(&c.drop, dx, c.r, 40);
    check_tensor("dropout p=0.3", elem_loss, &c, c.x, 40, dx);
    int kept = 0;
    elem_loss(&c);
    for (int i = 0; i < 40; i++) kept += c.y[i] != 0;
    CHECK(kept > 15 && kept < 40, "dropout kept %d of 40 at p=0.3", kept);
    /* residual: both inputs get dy */
    float *da = zero_floats(40), *db = zero_floats(40);
    qb_op_residual_backward(da, db, c.r, 40);
    CHECK(memcmp(da, c.r, 160) == 0 && memcmp(db, c.r, 160) == 0, "residual backward is not a copy of dy");
    free(c.x), free(c.y), free(c.r), free(dx), free(da), free(db);
}

/* ---- embeddings ------------------------------------------------------- */

typedef struct {
    int rows, dim;
    int32_t ids[6], types[6], pos[6];
    float *word, *type, *posw, *y, *r;
} embed_case;

static double embed_loss(void *p) {
    embed_case *c = p;
    qb_op_embed_forward(c->y, c->ids, c->types, c->pos, c->word, c->type, c->posw, c->rows, c->dim);
    return weighted_sum(c->y, c->r, (size_t)c->rows * c->dim);
}

static void test_embed(void) {
    embed_case c = {.rows = 6, .dim = 5, .ids = {3, 1, 3, 0, 2, 3}, .types = {0, 1, 1, 0, 0, 1}, .pos = {0, 1, 2, 0, 1, 2}};
    c.word = random_floats(20, -1, 1);
    c.type = random_floats(10, -1, 1);
    c.posw = random_floats(15, -1, 1);
    c.y = zero_floats(30);
    c.r = random_floats(30, -1, 1);
    float *dw = zero_floats(20), *dt = zero_floats(10), *dp = zero_floats(15);
    qb_op_embed_backward(dw, dt, dp, c.r, c.ids, c.types, c.pos, c.rows, c.dim);
    check_tensor("embedding word (repeated ids)", embed_loss, &c, c.word, 20, dw);
    check_tensor("embedding token type", embed_loss, &c, c.type, 10, dt);
    check_tensor("embedding position", embed_loss, &c, c.posw, 15, dp);
    free(c.word), free(c.type), free(c.posw), free(c.y), free(c.r), free(dw), free(dt), free(dp);
}

/* ---- attention -------------------------------------------------------- */

typedef struct {
    qb_attn_shape s;
    qb_dropout drop;
    float *q, *k, *v, *ctx, *probs, *r;
    size_t n;
} attn_case;

static double attn_loss(void *p) {
    attn_case *c = p;
    qb_op_ctx oc = op_ctx();
    qb_op_attention_forward(&oc, &c->s, &c->drop, c->ctx, c->probs, c->q, c->k, c->v);
    return weighted_sum(c->ctx, c->r, c->n);
}

static void test_attention(float p_drop) {
    static const int32_t offsets[] = {0, 3}, lens[] = {3, 5};
    static const int64_t prob_offsets[] = {0, 2 * 9};
    attn_case c = {.s = {2, 2, 12, offsets, lens, prob_offsets}, .drop = {5, 1, 2, p_drop}};
    c.n = 8 * 12;
    c.q = random_floats(c.n, -1, 1);
    c.k = random_floats(c.n, -1, 1);
    c.v = random_floats(c.n, -1, 1);
    c.ctx = zero_floats(c.n);
    c.probs = zero_floats(2 * 9 + 2 * 25);
    c.r = random_floats(c.n, -1, 1);
    float *dq = zero_floats(c.n), *dk = zero_floats(c.n), *dv = zero_floats(c.n);
    attn_loss(&c);
    qb_op_ctx oc = op_ctx();
    qb_op_attention_backward(&oc, &c.s, &c.drop, dq, dk, dv, c.r, c.probs, c.q, c.k, c.v);
    char what[64];
    snprintf(what, sizeof what, "attention dq (dropout %.1f)", p_drop);
    check_tensor(what, attn_loss, &c, c.q, c.n, dq);
    snprintf(what, sizeof what, "attention dk (dropout %.1f)", p_drop);
    check_tensor(what, attn_loss, &c, c.k, c.n, dk);
    snprintf(what, sizeof what, "attention dv (dropout %.1f)", p_drop);
    check_tensor(what, attn_loss, &c, c.v, c.n, dv);
    free(c.q), free(c.k), free(c.v), free(c.ctx), free(c.probs), free(c.r), free(dq), free(dk), free(dv);
}

/* ---- cross-entropy ---------------------------------------------------- */

typedef struct {
    int rows, classes;
    int32_t labels[5];
    float *z, *probs;
} ce_case;

static double ce_loss(void *p) {
    ce_case *c = p;
    int used;
    return qb_op_cross_entropy_forward(c->probs, c->z, c->labels, c->rows, c->classes, &used);
}

static void test_cross_entropy(void) {
    ce_case c = {.rows = 5, .classes = 4, .labels = {2, QB_IGNORE_INDEX, 0, 3, QB_IGNORE_INDEX}};
    c.z = random_floats(20, -2, 2);
    c.probs = zero_floats(20);
    int used;
    qb_op_cross_entropy_forward(c.probs, c.z, c.labels, c.rows, c.classes, &used);
    CHECK(used == 3, "cross-entropy used %d rows, want 3", used);
    float *dz = zero_floats(20);
    qb_op_cross_entropy_backward(dz, c.probs, c.labels, c.rows, c.classes, used);
    check_tensor("cross-entropy (ignore -100)", ce_loss, &c, c.z, 20, dz);
    CHECK(dz[4] == 0 && dz[16] == 0, "ignored rows got a gradient");
    free(c.z), free(c.probs), free(dz);
}

/* ---- whole tiny models ------------------------------------------------ */

typedef struct {
    qb_trainer *t;
    qb_batch b;
    const int32_t *labels;
} model_case;

static double model_loss(void *p) {
    model_case *c = p;
    qb_error err;
    float loss = 0;
    c->t->n_forward = 0; /* the same dropout masks every time */
    qb_trainer_forward(c->t, &c->b, c->labels, true, &loss, &err);
    return loss;
}

static double central_difference(model_case *c, float *x, float h) {
    float keep = *x;
    *x = keep + h;
    double up = model_loss(c);
    *x = keep - h;
    double down = model_loss(c);
    *x = keep;
    return (up - down) / (2.0 * h);
}

/* A dozen float layers curve the loss enough that a plain central
 * difference's h^2 error shows; Richardson's extrapolation cancels it. */
static double model_fd(model_case *c, float *x) {
    return (4.0 * central_difference(c, x, 2 * H_STEP) - central_difference(c, x, 4 * H_STEP)) / 3.0;
}

/* Up to `per` evenly spread elements of every parameter tensor. */
static void check_model_params(model_case *c, int per, double *worst) {
    qb_trainer *t = c->t;
    model_loss(c);
    qb_trainer_zero_grad(t);
    qb_trainer_backward(t);
    for (int i = 0; i < t->n_params; i++) {
        qb_tparam *p = &t->params[i];
        float *g = malloc((size_t)p->numel * sizeof *g);
        memcpy(g, p->g, (size_t)p->numel * sizeof *g);
        /* finite differences on a subset: gather it into a small tensor */
        int n = p->numel < per ? (int)p->numel : per;
        double dmax = 0, fmax_ = 0;
        for (int j = 0; j < n; j++) {
            int64_t at = (int64_t)j * p->numel / n;
            double fd = model_fd(c, &p->w[at]);
            dmax = fmax(dmax, fabs(g[at] - fd));
            fmax_ = fmax(fmax_, fabs(fd));
        }
        /* key biases have an exactly-zero gradient: compare absolutely */
        double err = fmax_ > 1e-4 ? dmax / fmax_ : dmax;
        CHECK(err <= MODEL_TOL, "%s: relative error %.3g", p->name, err);
        *worst = fmax(*worst, err);
        free(g);
    }
}

/* Masked LM: the word embeddings are also the decoder, so rows that are
 * both an input token and a label (170, 211) and rows that are only one
 * (150 input, 37 label) each get their own elements checked. */
static void check_word_rows(model_case *c, double *worst) {
    qb_trainer *t = c->t;
    qb_tparam *p = NULL;
    for (int i = 0; i < t->n_params && !p; i++)
        if (t->params[i].w == t->word_emb) p = &t->params[i];
    if (!p) return;
    model_loss(c);
    qb_trainer_zero_grad(t);
    qb_trainer_backward(t);
    static const int rows[] = {170, 211, 150, 37};
    double dmax = 0, fmax_ = 0;
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < t->E; j += 3) {
            int64_t at = (int64_t)rows[r] * t->E + j;
            float g = p->g[at];
            double fd = model_fd(c, &p->w[at]);
            dmax = fmax(dmax, fabs(g - fd));
            fmax_ = fmax(fmax_, fabs(fd));
        }
    double err = dmax / fmax_;
    CHECK(err <= MODEL_TOL, "%s rows 170, 211, 150, 37: relative error %.3g", p->name, err);
    *worst = fmax(*worst, err);
}

static void test_model(const char *name, qb_task task) {
    const char *src = getenv("QB_SOURCE_DIR") ? getenv("QB_SOURCE_DIR") : ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", src, name);
    qb_model *m = NULL;
    qb_error err = {0};
    qb_status st = qb_model_load(dir, NULL, &m, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    if (st) return;
    qb_trainer_params tp = qb_trainer_default_params();
    tp.task = task;
    tp.n_threads = 2;
    tp.hidden_dropout = tp.attn_dropout = tp.classifier_dropout = 0.2f;
    qb_trainer *t = NULL;
    st = qb_trainer_create(m, &tp, &t, &err);
    if (!st) st = qb_trainer_reserve(t, 3, 7, &err);
    CHECK(st == QB_OK, "%s", err.msg);
    /* A fresh head's normal(0, 0.02) weights are smaller than the step h;
     * scaled to the tiny checkpoints' 0.3, the differences resolve them. */
    for (int i = 0; !st && t->mlm_fresh[0] && i < t->n_params; i++)
        if (t->params[i].w == t->mlm_dense.w)
            for (int64_t j = 0; j < t->params[i].numel; j++) t->params[i].w[j] *= 15.0f;
    static const int32_t ids[] = {101, 150, 160, 170, 102, 0, 0, 101, 180, 102, 0, 0, 0, 0,
                                  101, 190, 200, 210, 220, 230, 102};
    static const int32_t types[] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    static const int32_t lens[] = {5, 3, 7}, seq_labels[] = {1, 0, 1};
    static const int32_t tok_labels[] = {-100, 1, 2, 0, -100, -100, -100, -100, 3, -100, -100, -100, -100, -100,
                                         -100, 0, 1, -100, 2, 3, -100};
    static const int32_t mlm_labels[] = {-100, 37, -100, 170, -100, -100, -100, -100, -100, -100, -100, -100, -100,
                                         -100, -100, 5, -100, 211, 220, -100, 239};
    model_case c = {t, {3, 7, ids, types, lens},
                    task == QB_TASK_TOKEN ? tok_labels : task == QB_TASK_MLM ? mlm_labels : seq_labels};
    double worst = 0;
    if (!st) check_model_params(&c, 6, &worst);
    if (!st && task == QB_TASK_MLM) check_word_rows(&c, &worst);
    printf("  %-36s %s max rel err %.2e over %d tensors\n", name, task == QB_TASK_MLM ? "mlm" : "   ", worst,
           t ? t->n_params : 0);
    qb_trainer_free(t);
    qb_model_free(m);
}

int main(void) {
    if (!qb_kernels_select(qb_cpu_best_isa(), &kern)) return 1;
    pack_buf = aligned_alloc(64, qb_gemm_f32_pack_floats() * sizeof(float));
    scratch_buf = zero_floats(qb_op_linear_scratch_floats(64, 64, 64));
    attn_buf = zero_floats(qb_op_attention_work_floats(8, 12));
    printf("ops (%s kernels):\n", kern.name);
    test_linear();
    test_layernorm();
    test_elementwise();
    test_embed();
    test_attention(0.0f);
    test_attention(0.3f);
    test_cross_entropy();
    printf("whole models (dropout 0.2, 6 elements of every tensor):\n");
    test_model("tiny-bert-seq", QB_TASK_SEQUENCE);
    test_model("tiny-bert-token", QB_TASK_TOKEN);
    test_model("tiny-albert-seq", QB_TASK_SEQUENCE);
    test_model("tiny-bert-mlm", QB_TASK_MLM);
    test_model("tiny-bert-seq", QB_TASK_MLM); /* a fresh masked-LM head */
    free(pack_buf);
    free(scratch_buf);
    free(attn_buf);
    return qb_test_done("test_grad");
}
