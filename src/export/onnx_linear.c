/* Each linear as ONNX, in the form its row of the format table declares,
 * from the tensors on disk (docs/quantized-format.md): ONNX wants the
 * weight as MatMul's B, [in, out], so every form transposes (or, for
 * MatMulNBits, keeps qbert's [out, in] code rows, which are its layout). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "export/export.h"
#include "model/linear_format.h"

static const qb_st_tensor *stored(const qb_export *e, const qb_linear *l, const char *suffix) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight%s", l->name, suffix);
    return qb_safetensors_find(&e->m->st, name);
}

/* [out, in] elements of size sz into a new [in, out] array. */
static void *transposed(qb_export *e, const void *w, int out, int in, size_t sz) {
    char *t = qb_onnx_alloc(e->g, (size_t)out * in * sz);
    if (!t) return NULL;
    const char *src = w;
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) memcpy(t + ((size_t)i * out + o) * sz, src + ((size_t)o * in + i) * sz, sz);
    return t;
}

static const char *with_bias(qb_export *e, const qb_linear *l, const char *y) {
    if (!l->b) return y;
    int64_t n[1] = {l->out};
    return QB_ONNX_OP(e->g, "Add", y, qb_export_floats(e, l->b, 1, n));
}

/* A companion's F32 values (the file may place them unaligned). */
static float *floats_of(qb_export *e, const qb_st_tensor *t) {
    float *f = qb_onnx_alloc(e->g, t->numel * sizeof *f);
    if (f) qb_safetensors_to_f32(t, f);
    return f;
}

static const char *float_linear(qb_export *e, const qb_linear *l, const char *x) {
    int64_t dims[2] = {l->in, l->out};
    const char *name = qb_onnx_str(e->g, "%s.weight", l->name);
    if (!qb_onnx_has_initializer(e->g, name)) {
        const qb_st_tensor *t = stored(e, l, "");
        bool half = !l->w;
        int type = !half ? QB_ONNX_FLOAT : t->dtype == QB_BF16 ? QB_ONNX_BFLOAT16 : QB_ONNX_FLOAT16;
        size_t sz = half ? 2 : 4;
        qb_onnx_initializer(e->g, name, type, 2, dims, transposed(e, half ? t->data : (const void *)l->w, l->out,
                                                                  l->in, sz), (size_t)l->out * l->in * sz);
    }
    const char *w = l->w ? name : qb_onnx_cast(e->g, name, QB_ONNX_FLOAT);
    return with_bias(e, l, QB_ONNX_OP(e->g, "MatMul", x, w));
}

/* The int8 weight [in, out] and its per-output scales. */
static void int8_weight(qb_export *e, const qb_linear *l, const char **w, const char **scale) {
    *w = qb_onnx_str(e->g, "%s.weight", l->name);
    *scale = qb_onnx_str(e->g, "%s.weight_scale", l->name);
    if (qb_onnx_has_initializer(e->g, *w)) return;
    int64_t dims[2] = {l->in, l->out}, n[1] = {l->out};
    const qb_st_tensor *t = stored(e, l, "");
    qb_onnx_initializer(e->g, *w, QB_ONNX_INT8, 2, dims, transposed(e, t->data, l->out, l->in, 1),
                        (size_t)l->out * l->in);
    qb_onnx_initializer(e->g, *scale, QB_ONNX_FLOAT, 1, n, floats_of(e, stored(e, l, "_scale")), l->out * 4);
}

/* ORT's dynamic form, as its quantize_dynamic writes it (ORT fuses it into
 * DynamicQuantizeMatMul): u8 inputs per tensor, where qbert's dynamic
 * models quantize per token by default. */
static const char *int8_dynamic(qb_export *e, const qb_linear *l, const char *x) {
    const char *w, *ws;
    int8_weight(e, l, &w, &ws);
    qb_export_dql *d = &e->dql;
    if (!d->x || strcmp(d->x, x)) {
        const char *out[3];
        qb_onnx_node(e->g, "DynamicQuantizeLinear", NULL, 1, &x, 3, out);
        *d = (qb_export_dql){x, out[0], out[1], out[2]};
    }
    const char *yf = qb_onnx_cast(e->g, QB_ONNX_OP(e->g, "MatMulInteger", d->q, w, d->zero), QB_ONNX_FLOAT);
    return with_bias(e, l, QB_ONNX_OP(e->g, "Mul", yf, QB_ONNX_OP(e->g, "Mul", d->scale, ws)));
}

/* QDQ pairs: the input on its calibrated u8 grid (after SmoothQuant's
 * factors; one pair for the linears that read a value on the same grid),
 * the weight dequantized per output channel; ORT fuses the pairs into
 * integer MatMuls. */
static const char *static_input(qb_export *e, const qb_linear *l, const char *x) {
    qb_export_qdq *c = &e->qdq;
    if (c->x && !strcmp(c->x, x) && c->scale == l->in_scale && c->zero == l->in_zero && c->smooth == l->in_smooth)
        return c->xd;
    *c = (qb_export_qdq){.x = x, .scale = l->in_scale, .zero = l->in_zero, .smooth = l->in_smooth};
    if (l->in_smooth) {
        int64_t n[1] = {l->in};
        x = QB_ONNX_OP(e->g, "Mul", x, qb_export_floats(e, l->in_smooth, 1, n));
    }
    const char *s = qb_onnx_const_f(e->g, l->in_scale);
    const char *z = qb_onnx_str(e->g, "%s.input_zero_point", l->name);
    uint8_t *zero = qb_onnx_has_initializer(e->g, z) ? NULL : qb_onnx_alloc(e->g, 1);
    if (zero) *zero = (uint8_t)l->in_zero, qb_onnx_initializer(e->g, z, QB_ONNX_UINT8, 0, NULL, zero, 1);
    return c->xd = QB_ONNX_OP(e->g, "DequantizeLinear", QB_ONNX_OP(e->g, "QuantizeLinear", x, s, z), s, z);
}

static const char *int8_static(qb_export *e, const qb_linear *l, const char *x) {
    const char *w, *ws;
    int8_weight(e, l, &w, &ws);
    const char *xd = static_input(e, l, x);
    const char *wd = QB_ONNX_OP(e->g, "DequantizeLinear", w, ws);
    qb_onnx_attr_int(e->g, qb_onnx_last(e->g), "axis", 1);
    return with_bias(e, l, QB_ONNX_OP(e->g, "MatMul", xd, wd));
}

static int group_of(const qb_export *e, const qb_linear *l) {
    int group = e->m->cfg.quant.group_size;
    return group <= 0 || group > l->in ? l->in : group;
}

/* 4-bit codes are packed as MatMulNBits packs them (low nibble first); its
 * blocks are qbert's groups, its default zero point (8) qbert's symmetric
 * one, and W.A8 rows ask it for int8 compute (accuracy_level 4). */
static const char *nbits(qb_export *e, const qb_linear *l, const char *x) {
    int group = group_of(e, l), G = l->in / group;
    const qb_st_tensor *codes = stored(e, l, ""), *zp = stored(e, l, "_zero_point");
    int64_t bdims[3] = {l->out, G, group / 2}, sdims[1] = {(int64_t)l->out * G};
    const char *in[4] = {x, qb_onnx_str(e->g, "%s.weight", l->name), qb_onnx_str(e->g, "%s.weight_scale", l->name),
                         zp ? qb_onnx_str(e->g, "%s.weight_zero_point", l->name) : ""};
    if (!qb_onnx_has_initializer(e->g, in[1])) {
        qb_onnx_initializer(e->g, in[1], QB_ONNX_UINT8, 3, bdims, codes->data, codes->nbytes);
        qb_onnx_initializer(e->g, in[2], QB_ONNX_FLOAT, 1, sdims, floats_of(e, stored(e, l, "_scale")),
                            sdims[0] * 4);
    }
    if (zp && !qb_onnx_has_initializer(e->g, in[3])) {
        int row = (G + 1) / 2;
        int64_t zdims[1] = {(int64_t)l->out * row};
        uint8_t *z = qb_onnx_alloc(e->g, zdims[0]);
        const uint8_t *src = zp->data;
        for (int o = 0; z && o < l->out; o++) {
            memset(z + (size_t)o * row, 0, row);
            for (int gi = 0; gi < G; gi++) z[(size_t)o * row + gi / 2] |= src[(size_t)o * G + gi] << (4 * (gi % 2));
        }
        qb_onnx_initializer(e->g, in[3], QB_ONNX_UINT8, 1, zdims, z, zdims[0]);
    }
    const char *y;
    Onnx__NodeProto *n = qb_onnx_node(e->g, "MatMulNBits", "com.microsoft", zp ? 4 : 3, in, 1, &y);
    qb_onnx_attr_int(e->g, n, "K", l->in);
    qb_onnx_attr_int(e->g, n, "N", l->out);
    qb_onnx_attr_int(e->g, n, "bits", 4);
    qb_onnx_attr_int(e->g, n, "block_size", group);
    if (l->fmt->integer_inputs) qb_onnx_attr_int(e->g, n, "accuracy_level", 4);
    return with_bias(e, l, y);
}

qb_status qb_export_linear_check(qb_export *e, const qb_linear *l, qb_error *err) {
    const qb_linear_format *f = l->fmt;
    if (f->onnx == QB_EXPORT_NONE)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: layer '%s' is %s: %s", e->m->dir, l->name, f->name,
                       f->onnx_refusal);
    if (f->onnx != QB_EXPORT_NBITS) return QB_OK;
    /* ONNX Runtime loads MatMulNBits only with these block sizes (a larger
     * one passes onnx.checker, then fails at load) */
    int group = group_of(e, l);
    if (group < 16 || group > 256 || (group & (group - 1)) || l->in % group)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: layer '%s' is %s in groups of %d inputs: MatMulNBits takes "
                       "groups of 16, 32, 64, 128 or 256 inputs that divide its %d inputs", e->m->dir, l->name,
                       f->name, group, l->in);
    return QB_OK;
}

static const char *int8_linear(qb_export *e, const qb_linear *l, const char *x) {
    return l->static_input ? int8_static(e, l, x) : int8_dynamic(e, l, x);
}

const char *qb_export_linear(qb_export *e, const qb_linear *l, const char *x) {
    static const char *(*const forms[])(qb_export *, const qb_linear *, const char *) = {
        [QB_EXPORT_FLOAT] = float_linear, [QB_EXPORT_INT8] = int8_linear, [QB_EXPORT_NBITS] = nbits};
    return forms[l->fmt->onnx](e, l, x);
}
