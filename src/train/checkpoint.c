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

static const char *class_name(const qb_trainer *t) {
    static const char *const names[][2] = {
        [QB_ARCH_BERT] = {"BertForSequenceClassification", "BertForTokenClassification"},
        [QB_ARCH_ALBERT] = {"AlbertForSequenceClassification", "AlbertForTokenClassification"},
        [QB_ARCH_DISTILBERT] = {"DistilBertForSequenceClassification", "DistilBertForTokenClassification"},
    };
    return names[t->view.cfg.arch][t->view.cfg.task == QB_TASK_TOKEN];
}

/* Members the trained head decides; everything else is kept verbatim. */
static bool is_head_key(const qb_json *j, int key) {
    static const char *const keys[] = {"architectures", "id2label", "label2id", "num_labels", "_num_labels",
                                       "finetuning_task"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (qb_json_str_eq(j, key, keys[i])) return true;
    return false;
}

/* A token's source text, quotes included for strings. */
static void write_raw(FILE *f, const qb_json *j, int t) {
    const qb_json_tok *k = &j->toks[t];
    int q = k->type == QB_JSON_STRING;
    fwrite(j->src + k->start - q, 1, k->end - k->start + 2 * (size_t)q, f);
}

static void write_head_members(FILE *f, const qb_trainer *t, const char *const *labels, int n) {
    fprintf(f, "  \"architectures\": [\"%s\"],\n  \"id2label\": {", class_name(t));
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\"%d\": ", i ? ", " : "", i);
        qb_json_write_str(f, labels[i], strlen(labels[i]));
    }
    fputs("},\n  \"label2id\": {", f);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        qb_json_write_str(f, labels[i], strlen(labels[i]));
        fprintf(f, ": %d", i);
    }
    fputs("}", f);
}

static qb_status write_config(const qb_trainer *t, const char *const *labels, int n, const char *dir,
                              qb_error *err) {
    char src[4200], dst[4200], *text = NULL, *buf = NULL;
    size_t len = 0, size = 0;
    qb_json j = {0};
    if (!qb_path_join(src, sizeof src, t->m->dir, "config.json") || !qb_path_join(dst, sizeof dst, dir, "config.json"))
        return qb_fail(err, QB_ERR_ARG, "%s: path too long", dir);
    qb_status st = qb_file_read_all(src, &text, &len, err);
    if (!st) st = qb_json_parse(&j, text, len, src, err);
    FILE *f = st ? NULL : open_memstream(&buf, &size);
    if (!st && !f) st = qb_fail(err, QB_ERR_NOMEM, "train: out of memory");
    if (!st) {
        fputs("{\n", f);
        write_head_members(f, t, labels, n);
        for (uint32_t k = 1; k < j.n; k = j.toks[k + 1].next) {
            if (is_head_key(&j, (int)k)) continue;
            fputs(",\n  ", f);
            write_raw(f, &j, (int)k);
            fputs(": ", f);
            write_raw(f, &j, (int)k + 1);
        }
        fputs("\n}\n", f);
        fclose(f);
        st = qb_file_write_atomic(dst, buf, size, err);
    }
    free(buf);
    qb_json_free(&j);
    free(text);
    return st;
}

qb_status qb_checkpoint_write(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                              qb_error *err) {
    qb_status st = write_weights(t, dir, err);
    if (!st) st = write_config(t, labels, n_labels, dir, err);
    if (!st) st = qb_tokenizer_copy_files(t->m->dir, dir, err);
    return st;
}

/* The static model from FP32 weights and the scales the QAT trainer used:
 * weights quantize to the integers (int8, or a packed low-bit format's
 * codes and FP16 scales) fake quantization produced, inputs keep the
 * trained scale and zero point. */
static qb_status convert_qat(const qb_trainer *t, const qb_model *fp32, const char *dir, qb_error *err) {
    qb_qparams *inputs = calloc((size_t)fp32->n_linears + 1, sizeof *inputs);
    if (!inputs) return qb_fail(err, QB_ERR_NOMEM, "qat: out of memory");
    qb_quant_params qp = qb_quant_default_params(QB_QUANT_STATIC);
    qp.bits = t->qat->p.bits;
    qp.ternary = t->qat->p.ternary;
    qp.group_size = t->qat->p.group_size;
    qp.weight_zero_point = t->qat->p.zero_point;
    qb_status st = QB_OK;
    for (int i = 0; !st && i < fp32->n_linears; i++) {
        const qb_linear *l = fp32->linears[i];
        if (!qb_trainer_qat_input(t, l->name, &inputs[l->id].scale, &inputs[l->id].zero_point) &&
            l != &fp32->classifier)
            st = qb_fail(err, QB_ERR_ARG, "qat: '%s' has no trained input scale", l->name);
    }
    const char *label = t->qat->p.observer == QB_FQ_LSQ ? "qat-lsq" : "qat-ema";
    if (!st) st = qb_quantize_into(fp32, &qp, inputs, label, dir, NULL, err);
    free(inputs);
    return st;
}

qb_status qb_checkpoint_write_qat(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                                   qb_error *err) {
    qb_outdir side;
    qb_model *fp32 = NULL;
    qb_load_params lp = qb_load_default_params();
    qb_status st = qb_outdir_begin(&side, dir, QB_OUTDIR_FORCE, err);
    if (st) return st;
    st = qb_checkpoint_write(t, labels, n_labels, side.tmp, err);
    if (!st) st = qb_model_load(side.tmp, &lp, &fp32, err);
    if (!st) st = convert_qat(t, fp32, dir, err);
    qb_model_free(fp32);
    qb_outdir_abort(&side);
    return st;
}
