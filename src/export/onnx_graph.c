/* The ONNX builder: protobuf-c messages in an arena, packed once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fs.h"
#include "export/onnx_graph.h"

typedef struct block {
    struct block *prev;
    max_align_t data[];
} block;

/* A growing array of message pointers (nodes, initializers, ...). */
typedef struct {
    size_t *n;
    void ***items;
    size_t cap;
} list;

struct qb_onnx {
    block *arena;
    bool failed;
    int n_names;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    list nodes, inits, inputs, outputs;
};

void *qb_onnx_alloc(qb_onnx *g, size_t n) {
    block *b = g->failed ? NULL : malloc(sizeof *b + (n ? n : 1));
    if (!b) {
        g->failed = true;
        return NULL;
    }
    b->prev = g->arena;
    g->arena = b;
    return b->data;
}

static void *alloc_zero(qb_onnx *g, size_t n) {
    void *p = qb_onnx_alloc(g, n);
    return p ? memset(p, 0, n) : NULL;
}

const char *qb_onnx_str(qb_onnx *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? qb_onnx_alloc(g, (size_t)n + 1) : NULL;
    if (!s) return "";
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static bool list_push(qb_onnx *g, list *l, void *item) {
    if (!item || g->failed) return false;
    if (*l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void **items = qb_onnx_alloc(g, cap * sizeof *items);
        if (!items) return false;
        if (*l->n) memcpy(items, *l->items, *l->n * sizeof *items);
        *l->items = items, l->cap = cap;
    }
    (*l->items)[(*l->n)++] = item;
    return true;
}

static Onnx__OperatorSetIdProto *opset_import(qb_onnx *g, const char *domain, int version) {
    Onnx__OperatorSetIdProto *o = alloc_zero(g, sizeof *o);
    if (!o) return NULL;
    onnx__operator_set_id_proto__init(o);
    o->domain = (char *)domain;
    o->has_version = true, o->version = version;
    return o;
}

qb_onnx *qb_onnx_new(int opset) {
    qb_onnx *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    onnx__model_proto__init(&g->model);
    onnx__graph_proto__init(&g->graph);
    g->model.has_ir_version = true;
    g->model.ir_version = 8; /* what onnx 1.12 (Debian) checks, and opsets 17-18 need */
    g->model.producer_name = "qbert";
    g->model.producer_version = QBERT_VERSION;
    g->model.graph = &g->graph;
    g->graph.name = "qbert";
    g->nodes = (list){&g->graph.n_node, (void ***)&g->graph.node, 0};
    g->inits = (list){&g->graph.n_initializer, (void ***)&g->graph.initializer, 0};
    g->inputs = (list){&g->graph.n_input, (void ***)&g->graph.input, 0};
    g->outputs = (list){&g->graph.n_output, (void ***)&g->graph.output, 0};
    Onnx__OperatorSetIdProto **ops = qb_onnx_alloc(g, 2 * sizeof *ops);
    if (ops) {
        ops[0] = opset_import(g, "", opset);
        ops[1] = opset_import(g, "com.microsoft", 1);
        g->model.opset_import = ops, g->model.n_opset_import = 2;
    }
    return g;
}

void qb_onnx_free(qb_onnx *g) {
    if (!g) return;
    for (block *b = g->arena, *prev; b; b = prev) prev = b->prev, free(b);
    free(g);
}

const char *qb_onnx_initializer(qb_onnx *g, const char *name, int type, int ndim, const int64_t *dims,
                                const void *data, size_t nbytes) {
    Onnx__TensorProto *t = alloc_zero(g, sizeof *t);
    int64_t *d = qb_onnx_alloc(g, (ndim ? ndim : 1) * sizeof *d);
    if (!t || !d) return name;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, ndim * sizeof *d);
    t->name = (char *)name;
    t->n_dims = ndim, t->dims = d;
    t->has_data_type = true, t->data_type = type;
    t->has_raw_data = true;
    t->raw_data = (ProtobufCBinaryData){nbytes, (uint8_t *)data};
    list_push(g, &g->inits, t);
    return name;
}

bool qb_onnx_has_initializer(const qb_onnx *g, const char *name) {
    for (size_t i = 0; i < g->graph.n_initializer; i++)
        if (!strcmp(g->graph.initializer[i]->name, name)) return true;
    return false;
}

static const char *const_copy(qb_onnx *g, int type, int ndim, const int64_t *dims, const void *v, size_t nbytes) {
    void *data = qb_onnx_alloc(g, nbytes);
    if (data) memcpy(data, v, nbytes);
    return qb_onnx_initializer(g, qb_onnx_str(g, "const_%d", g->n_names++), type, ndim, dims, data, nbytes);
}

const char *qb_onnx_const_f(qb_onnx *g, float v) { return const_copy(g, QB_ONNX_FLOAT, 0, NULL, &v, sizeof v); }

const char *qb_onnx_const_i64s(qb_onnx *g, int n, const int64_t *v) {
    int64_t dims[1] = {n};
    return const_copy(g, QB_ONNX_INT64, 1, dims, v, n * sizeof *v);
}

const char *qb_onnx_const_i64(qb_onnx *g, int64_t v) { return const_copy(g, QB_ONNX_INT64, 0, NULL, &v, sizeof v); }

Onnx__NodeProto *qb_onnx_node(qb_onnx *g, const char *op, const char *domain, int n_in, const char *const *in,
                              int n_out, const char **out) {
    Onnx__NodeProto *n = alloc_zero(g, sizeof *n);
    char **ins = qb_onnx_alloc(g, (n_in ? n_in : 1) * sizeof *ins), **outs = qb_onnx_alloc(g, n_out * sizeof *outs);
    if (!n || !ins || !outs) {
        for (int i = 0; i < n_out; i++) out[i] = "";
        return NULL;
    }
    onnx__node_proto__init(n);
    int id = g->n_names++;
    n->op_type = (char *)op;
    n->domain = (char *)(domain ? domain : "");
    n->name = (char *)qb_onnx_str(g, "%s_%d", op, id);
    memcpy(ins, in, n_in * sizeof *ins);
    for (int i = 0; i < n_out; i++) out[i] = outs[i] = (char *)qb_onnx_str(g, "%s_%d:%d", op, id, i);
    n->n_input = n_in, n->input = ins;
    n->n_output = n_out, n->output = outs;
    return list_push(g, &g->nodes, n) ? n : NULL;
}

const char *qb_onnx_op(qb_onnx *g, const char *op, int n_in, const char *const *in) {
    const char *out;
    qb_onnx_node(g, op, NULL, n_in, in, 1, &out);
    return out;
}

const char *qb_onnx_cast(qb_onnx *g, const char *x, int to) {
    const char *y;
    qb_onnx_attr_int(g, qb_onnx_node(g, "Cast", NULL, 1, &x, 1, &y), "to", to);
    return y;
}

Onnx__NodeProto *qb_onnx_last(qb_onnx *g) {
    return g->failed || !g->graph.n_node ? NULL : g->graph.node[g->graph.n_node - 1];
}

static Onnx__AttributeProto *attr(qb_onnx *g, Onnx__NodeProto *n, const char *name,
                                  Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = n ? alloc_zero(g, sizeof *a) : NULL;
    Onnx__AttributeProto **all = a ? qb_onnx_alloc(g, (n->n_attribute + 1) * sizeof *all) : NULL;
    if (!all) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true, a->type = type;
    if (n->n_attribute) memcpy(all, n->attribute, n->n_attribute * sizeof *all);
    all[n->n_attribute++] = a;
    n->attribute = all;
    return a;
}

void qb_onnx_attr_int(qb_onnx *g, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = true, a->i = v;
}

void qb_onnx_attr_float(qb_onnx *g, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = true, a->f = v;
}

void qb_onnx_attr_ints(qb_onnx *g, Onnx__NodeProto *n, const char *name, int k, const int64_t *v) {
    Onnx__AttributeProto *a = attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = a ? qb_onnx_alloc(g, k * sizeof *copy) : NULL;
    if (!copy) return;
    memcpy(copy, v, k * sizeof *copy);
    a->n_ints = k, a->ints = copy;
}

static Onnx__ValueInfoProto *value_info(qb_onnx *g, const char *name, int type, int ndim, const char *const *dims,
                                        const int64_t *fixed) {
    Onnx__ValueInfoProto *v = alloc_zero(g, sizeof *v);
    Onnx__TypeProto *t = alloc_zero(g, sizeof *t);
    Onnx__TypeProto__Tensor *tt = alloc_zero(g, sizeof *tt);
    Onnx__TensorShapeProto *shape = alloc_zero(g, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **d = qb_onnx_alloc(g, ndim * sizeof *d);
    if (!v || !t || !tt || !shape || !d) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(shape);
    for (int i = 0; i < ndim; i++) {
        d[i] = alloc_zero(g, sizeof *d[i]);
        if (!d[i]) return NULL;
        onnx__tensor_shape_proto__dimension__init(d[i]);
        if (dims[i]) {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d[i]->dim_param = (char *)dims[i];
        } else {
            d[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[i]->dim_value = fixed[i];
        }
    }
    shape->n_dim = ndim, shape->dim = d;
    tt->has_elem_type = true, tt->elem_type = type, tt->shape = shape;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, t->tensor_type = tt;
    v->name = (char *)name, v->type = t;
    return v;
}

void qb_onnx_input(qb_onnx *g, const char *name, int type, int ndim, const char *const *dims, const int64_t *fixed) {
    list_push(g, &g->inputs, value_info(g, name, type, ndim, dims, fixed));
}

void qb_onnx_output(qb_onnx *g, const char *from, const char *name, int type, int ndim, const char *const *dims,
                    const int64_t *fixed) {
    const char *out;
    Onnx__NodeProto *n = qb_onnx_node(g, "Identity", NULL, 1, &from, 1, &out);
    if (n) n->output[0] = (char *)name;
    list_push(g, &g->outputs, value_info(g, name, type, ndim, dims, fixed));
}

qb_status qb_onnx_write(qb_onnx *g, const char *path, qb_error *err) {
    if (g->failed) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory building the ONNX graph", path);
    size_t n = onnx__model_proto__get_packed_size(&g->model);
    if (n > INT32_MAX)
        return qb_fail(err, QB_ERR_UNSUPPORTED, "%s: the model needs %zu MB, past protobuf's 2 GB limit", path,
                       n >> 20);
    uint8_t *buf = malloc(n);
    if (!buf) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory serializing %zu MB", path, n >> 20);
    onnx__model_proto__pack(&g->model, buf);
    qb_status st = qb_file_write_atomic(path, buf, n, err);
    free(buf);
    return st;
}
