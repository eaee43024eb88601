/* One table of linear-layer formats, the engine's only switch over number
 * formats (the counterpart of ggml's type traits): a row per format that a
 * linear's weight can be stored in, with how it binds from safetensors,
 * the kernel scratch it needs, how it runs and what it frees.  A qb_linear
 * carries its row; forward.c calls row->run and knows no format. */
#ifndef QB_MODEL_LINEAR_FORMAT_H
#define QB_MODEL_LINEAR_FORMAT_H

#include "io/st_list.h"
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

/* How a quantizer asks for a linear to be written; a row reads what its
 * format uses. */
typedef struct {
    int bits;                 /* integer weights: the grid, 2..8 */
    bool per_channel;         /* integer weights: a scale per output row (else one) */
    bool static_input;        /* integer inputs: write this calibrated grid */
    float in_scale;
    int32_t in_zero;
} qb_linear_recipe;

typedef struct qb_linear_format {
    const char *name;         /* as quantization_config "modules" and info say it */
    qb_dtype dtype;           /* of the stored weight */
    qb_precision precision;
    int bits;                 /* per stored weight, scales aside */
    bool integer_inputs;      /* runs on quantized inputs (an int8 method's activation config) */
    /* Binds weight tensor t, of shape [l->out, l->in], into l. */
    bool (*bind)(qb_binder *b, qb_linear *l, const qb_st_tensor *t);
    /* Floats of per-thread kernel scratch a session keeps for it. */
    size_t (*scratch_floats)(void);
    void (*run)(struct qb_session *s, const qb_linear *l, const qb_linear_io *io);
    void (*release)(qb_linear *l); /* NULL: nothing of its own */
    /* Pushes l's weight in this format, and its companions, made from the
     * input checkpoint's weight tensor t. */
    bool (*quantize)(qb_st_list *out, const qb_linear *l, const qb_st_tensor *t, const qb_linear_recipe *r);
} qb_linear_format;

/* The row for a stored weight dtype (F32 and other float types: fp32). */
const qb_linear_format *qb_linear_format_of(qb_dtype stored);
/* The row of that name ("fp32", "fp16", "bf16", "int8"), or NULL. */
const qb_linear_format *qb_linear_format_named(const char *name);

#endif
