/* One table of linear-layer formats, the engine's only switch over number
 * formats (the counterpart of ggml's type traits): a row per format that a
 * linear's weight can be stored in, with how it binds from safetensors,
 * the kernel scratch it needs, how it runs and what it frees.  A qb_linear
 * carries its row; forward.c calls row->run and knows no format. */
#ifndef QB_MODEL_LINEAR_FORMAT_H
#define QB_MODEL_LINEAR_FORMAT_H

#include "model/binder.h"

struct qb_session;

/* One call: y = act(x W^T + b) + residual, rows x in -> rows x out. */
typedef struct {
    const float *x;
    int rows;
    float *y;
    const float *residual;    /* or NULL */
    qb_act act;
    /* x is the input of the linear run just before this one, unchanged
     * since: a format that transforms inputs may reuse that work (K and V
     * after Q).  The graph knows this; pointers cannot tell. */
    bool same_input;
} qb_linear_io;

typedef struct qb_linear_format {
    const char *name;         /* as quantization_config "modules" and info say it */
    qb_precision precision;
    int bits;                 /* per stored weight, scales aside */
    /* Binds weight tensor t, of shape [l->out, l->in], into l. */
    bool (*bind)(qb_binder *b, qb_linear *l, const qb_st_tensor *t);
    /* Floats of per-thread kernel scratch a session keeps for it. */
    size_t (*scratch_floats)(void);
    void (*run)(struct qb_session *s, const qb_linear *l, const qb_linear_io *io);
    void (*release)(qb_linear *l); /* NULL: nothing of its own */
} qb_linear_format;

/* The row for a stored weight dtype (F32 and other float types: fp32). */
const qb_linear_format *qb_linear_format_of(qb_dtype stored);

#endif
