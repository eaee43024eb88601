/* Writing a trained model directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "io/safetensors.h"
#include "quant/quantize.h"
#include "train/checkpoint.h"

static qb_status write_weights(const qb_trainer *t, const char *dir, qb_error *err) {
    char path[4200];
    if (!qb_path_join(path, sizeof path, dir, "model.safetensors"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
    qb_st_write_tensor *out = calloc((size_t)t->n_params + 1, sizeof *out);
    if (!out) return qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    for (int i = 0; i < t->n_params; i++) {
        const qb_tparam *p = &t->params[i];
        out[i] = (qb_st_write_tensor){.name = p->name, .dtype = QB_F32, .ndim = p->ndim, .data = p->w};
        out[i].shape[0] = p->shape[0];
        out[i].shape[1] = p->shape[1];
    }
    qb_status st = qb_safetensors_write(path, out, t->n_params, "{\"format\": \"pt\", \"producer\": \"qbert train\"}",
                                        err);
    free(out);
    return st;
}

/* The family's class for the trained head: "<Family>For{Sequence,Token}Classification"
 * or "<Family>ForMaskedLM". */
static void class_name(const qb_trainer *t, char *buf, size_t cap) {
    const char *seq = t->view.cfg.family->default_class, *at = strstr(seq, "ForSequenceClassification");
    qb_task task = t->view.cfg.task;
    snprintf(buf, cap, "%.*sFor%s", (int)(at - seq), seq,
             task == QB_TASK_MLM ? "MaskedLM" : task == QB_TASK_TOKEN ? "TokenClassification"
                                                                      : "SequenceClassification");
}

/* Members the trained head decides; everything else is kept. */
static bool is_head_key(const char *key) {
    static const char *const keys[] = {"architectures", "id2label", "label2id", "num_labels", "_num_labels",
                                       "finetuning_task", "problem_type"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(key, keys[i])) return true;
    return false;
}

static bool put_head_members(json_t *cfg, const qb_trainer *t, const char *const *labels, int n) {
    json_t *arch = json_array(), *id2label = json_object(), *label2id = json_object();
    char cls[96];
    class_name(t, cls, sizeof cls);
    bool ok = arch && id2label && label2id && qb_json_push(arch, json_string(cls));
    if (t->view.cfg.task == QB_TASK_MLM) { /* no labels: the vocabulary is the head's */
        json_decref(id2label);
        json_decref(label2id);
        return qb_json_set(cfg, "architectures", arch) && ok;
    }
    for (int i = 0; ok && i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        ok = qb_json_set(id2label, id, qb_json_strn(labels[i], strlen(labels[i])));
        json_t *name = ok ? json_object_get(id2label, id) : NULL;
        ok = name && qb_json_set(label2id, json_string_value(name), json_integer(i));
    }
    ok = qb_json_set(cfg, "architectures", arch) && ok;
    ok = qb_json_set(cfg, "id2label", id2label) && ok;
    return qb_json_set(cfg, "label2id", label2id) && ok;
}

/* The source config with the head members first, rewritten for the new
 * labels, and its other members after them in their order. */
static qb_status build_config(const qb_trainer *t, const char *const *labels, int n, json_t **out, qb_error *err) {
    char src[4200];
    if (!qb_path_join(src, sizeof src, t->m->dir, "config.json"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", t->m->dir);
    json_t *in, *cfg = json_object();
    qb_status st = qb_json_load_object(src, &in, err);
    if (st) {
        json_decref(cfg);
        return st;
    }
    bool ok = cfg && put_head_members(cfg, t, labels, n);
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (ok && !is_head_key(key)) ok = qb_json_set(cfg, key, json_incref(v));
    }
    json_decref(in);
    *out = qb_json_built(cfg, ok);
    return *out ? QB_OK : qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
}

static qb_status write_config(const qb_trainer *t, const char *const *labels, int n, const char *dir,
                              qb_error *err) {
    char dst[4200];
    json_t *cfg = NULL;
    if (!qb_path_join(dst, sizeof dst, dir, "config.json")) return qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
    qb_status st = build_config(t, labels, n, &cfg, err);
    /* 15 digits: the config's decimals print as they were written */
    if (!st) st = qb_json_write_file(dst, cfg, QB_JSON_INDENT | QB_JSON_DIGITS15, err);
    json_decref(cfg);
    return st;
}

qb_status qb_checkpoint_write(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                              qb_error *err) {
    qb_status st = write_weights(t, dir, err);
    if (!st) st = write_config(t, labels, n_labels, dir, err);
    if (!st) st = qb_tokenizer_copy_files(t->m->dir, dir, err);
    return st;
}

/* The static model from the trained FP32 weights and the scales the QAT
 * trainer used: weights quantize to the integers (int8, or a packed low-bit
 * format's codes and FP16 scales) fake quantization produced, inputs keep
 * the trained scale and zero point. */
static qb_status convert_qat(const qb_trainer *t, const qb_model *m, const json_t *config, const char *dir,
                             qb_error *err) {
    qb_qparams *inputs = calloc((size_t)m->n_linears + 1, sizeof *inputs);
    if (!inputs) return qb_fail(err, QB_ERR_NOMEM, "qat: out of memory");
    qb_quant_params qp = qb_quant_default_params(QB_QUANT_STATIC);
    qp.bits = t->qat->p.bits;
    qp.ternary = t->qat->p.ternary;
    qp.group_size = t->qat->p.group_size;
    qp.weight_zero_point = t->qat->p.zero_point;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < m->n_linears; i++) {
        const qb_linear *l = m->linears[i];
        if (!qb_trainer_qat_input(t, l->name, &inputs[l->id].scale, &inputs[l->id].zero_point) &&
            l != &m->classifier)
            st = qb_fail(err, QB_ERR_ARG, "qat: '%s' has no trained input scale", l->name);
    }
    const char *label = t->qat->p.observer == QB_FQ_LSQ ? "qat-lsq" : "qat-ema";
    if (!st) st = qb_quantize_into(m, config, &qp, inputs, label, dir, NULL, err);
    free(inputs);
    return st;
}

/* Converts in memory: the trainer's view of the model (its weights and
 * their tensor table) and the config with the trained head. */
qb_status qb_checkpoint_write_qat(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                                   qb_error *err) {
    json_t *config = NULL;
    qb_status st = build_config(t, labels, n_labels, &config, err);
    if (!st) st = convert_qat(t, &t->view, config, dir, err);
    json_decref(config);
    return st;
}
