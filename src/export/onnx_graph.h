/* A small builder over protobuf-c's ONNX messages (onnx.pb-c.h, generated
 * at build time from Debian's onnx.proto): nodes, initializers, graph
 * inputs and outputs, all allocated in one arena that qb_onnx_free()
 * releases.  An allocation failure is remembered and reported once, by
 * qb_onnx_write(), so graph code need not check every call. */
#ifndef QB_EXPORT_ONNX_GRAPH_H
#define QB_EXPORT_ONNX_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "qbert.h"

enum {
    QB_ONNX_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    QB_ONNX_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
    QB_ONNX_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
    QB_ONNX_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    QB_ONNX_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
    QB_ONNX_BFLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16,
};

typedef struct qb_onnx qb_onnx;

/* An empty model importing the default domain at opset and com.microsoft
 * at 1 (MatMulNBits). */
qb_onnx *qb_onnx_new(int opset);
void qb_onnx_free(qb_onnx *g);

/* n bytes that live as long as g (NULL after a failure). */
void *qb_onnx_alloc(qb_onnx *g, size_t n);
/* A printf-formatted string that lives as long as g. */
const char *qb_onnx_str(qb_onnx *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An initializer `name` of elem type and shape whose raw bytes are data
 * (not copied: data must live as long as g, e.g. from qb_onnx_alloc or the
 * model's mapping).  Returns name. */
const char *qb_onnx_initializer(qb_onnx *g, const char *name, int type, int ndim, const int64_t *dims,
                                const void *data, size_t nbytes);
bool qb_onnx_has_initializer(const qb_onnx *g, const char *name);
/* Small constants, copied: a scalar (ndim 0) or a 1-D vector. */
const char *qb_onnx_const_f(qb_onnx *g, float v);
const char *qb_onnx_const_i64s(qb_onnx *g, int n, const int64_t *v);
const char *qb_onnx_const_i64(qb_onnx *g, int64_t v);

/* A node of op (in domain, NULL for ONNX's) on n inputs ("" for an omitted
 * optional one) with n_out outputs named by the builder; out[i] are their
 * names.  Returns the node for attributes, or NULL after a failure. */
Onnx__NodeProto *qb_onnx_node(qb_onnx *g, const char *op, const char *domain, int n_in, const char *const *in,
                              int n_out, const char **out);
/* The usual one-output ONNX node; returns its output's name. */
const char *qb_onnx_op(qb_onnx *g, const char *op, int n_in, const char *const *in);
#define QB_ONNX_OP(g, op, ...)                                                                    \
    qb_onnx_op(g, op, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
               (const char *[]){__VA_ARGS__})

void qb_onnx_attr_int(qb_onnx *g, Onnx__NodeProto *n, const char *name, int64_t v);
void qb_onnx_attr_float(qb_onnx *g, Onnx__NodeProto *n, const char *name, float v);
void qb_onnx_attr_ints(qb_onnx *g, Onnx__NodeProto *n, const char *name, int k, const int64_t *v);
/* x cast to elem type `to`. */
const char *qb_onnx_cast(qb_onnx *g, const char *x, int to);
/* The node added last (for attributes after QB_ONNX_OP), or NULL. */
Onnx__NodeProto *qb_onnx_last(qb_onnx *g);

/* Graph inputs and outputs; dims[i] NULL means "fixed" size fixed[i],
 * otherwise a symbolic name ("batch", "sequence"). */
void qb_onnx_input(qb_onnx *g, const char *name, int type, int ndim, const char *const *dims, const int64_t *fixed);
/* Graph output `name`: value `from` through an Identity. */
void qb_onnx_output(qb_onnx *g, const char *from, const char *name, int type, int ndim, const char *const *dims,
                    const int64_t *fixed);

/* Serializes through path.tmp and a rename; QB_ERR_NOMEM if any earlier
 * call failed to allocate, QB_ERR_UNSUPPORTED past protobuf's 2 GB. */
qb_status qb_onnx_write(qb_onnx *g, const char *path, qb_error *err);

#endif
