/* One table of linear-layer formats, the engine's only switch over number
 * formats (the counterpart of ggml's type traits): a row per format that a
 * linear's weight can be stored in, with how it binds from safetensors,
 * packs for the kernels, the kernel scratch it needs, how it runs and what
 * it frees.  A qb_linear carries its row; forward.c calls row->run and
 * knows no format. */
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
    int bits;                 /* int8 weights: the grid, 2..8 (7: reduce_range) */
    bool per_channel;         /* int8 weights: a scale per output row (else one) */
    int group;                /* low-bit grids: input columns per scale (>= in: one per row) */
    bool zero_point;          /* low-bit grids: asymmetric, a zero point per group */
    struct qb_lowbit_error *error; /* low-bit: where to add the weight's squared error (or NULL) */
    bool static_input;        /* integer inputs: write this calibrated grid */
    float in_scale;
    int32_t in_zero;
    const float *in_smooth;   /* static inputs: x_j is multiplied by in_smooth[j] before its grid (SmoothQuant), or NULL */
    /* Error compensation (quant/compensate.c).  hessian: low-bit grids are
     * rounded by GPTQ against this [in, in] sum of x x^T (overwritten), or
     * NULL for round to nearest; dequantized: where a row that can writes
     * the weights it stored, as FP32 [out, in] (or NULL). */
    double *hessian;
    double gptq_damp;
    bool gptq_act_order;
    float *dequantized;
    int *n_fallbacks;         /* out (or NULL): +1 where GPTQ could not factor the Hessian and rounded to nearest */
    qb_pool *pool;            /* the quantizer's threads (or NULL) */
} qb_linear_recipe;

/* How an ONNX export (src/export) writes a linear of a row, from the
 * tensors on disk (docs/quantized-format.md). */
typedef enum {
    QB_EXPORT_NONE,   /* ONNX cannot express it: onnx_refusal says why */
    QB_EXPORT_FLOAT,  /* MatMul on the weight as stored (FP16/BF16 cast to FP32) */
    QB_EXPORT_INT8,   /* ORT's dynamic form, or QDQ pairs on the calibrated input grid */
    QB_EXPORT_NBITS,  /* a 4-bit grid: com.microsoft MatMulNBits */
} qb_export_form;

typedef struct qb_linear_format {
    const char *name;         /* as quantization_config "modules" and info say it */
    qb_dtype dtype;           /* of the stored weight */
    qb_precision precision;
    float bits;               /* per stored weight, scales aside (ternary: 1.6) */
    bool integer_inputs;      /* runs on quantized inputs (an int8 method's activation config) */
    /* Binds weight tensor t (and its companions) into l, whose out and in
     * are set; checks every shape against them. */
    bool (*bind)(qb_binder *b, qb_linear *l, const qb_st_tensor *t);
    /* Fills what bind allocated for l from its weight t where bind
     * deferred it (qb_binder_defer_pack): runs after every bind, one
     * linear a task on the load's threads, so it writes l's buffers only.
     * False if out of memory. */
    bool (*pack)(const qb_model *m, qb_linear *l, const qb_st_tensor *t);
    /* Floats of per-thread kernel scratch a session keeps for l. */
    size_t (*scratch_floats)(const qb_linear *l);
    void (*run)(struct qb_session *s, const qb_linear *l, const qb_linear_io *io);
    void (*release)(qb_linear *l); /* NULL: nothing of its own */
    /* Pushes l's weight in this format (self), and its companions, made
     * from the input checkpoint's weight tensor t. */
    bool (*quantize)(const struct qb_linear_format *self, qb_st_list *out, const qb_linear *l,
                     const qb_st_tensor *t, const qb_linear_recipe *r);
    qb_export_form onnx;
    const char *onnx_refusal; /* QB_EXPORT_NONE: why */
    bool grouped;             /* scales per group of inputs: quantization_config.weights.group_size applies */
} qb_linear_format;

/* The row for a stored weight dtype (F32 and other float types: fp32). */
const qb_linear_format *qb_linear_format_of(qb_dtype stored);
/* The row of that name ("fp32", "int8", "int4", "kmeans2"...), or NULL. */
const qb_linear_format *qb_linear_format_named(const char *name);
/* A format as "modules" and precision maps write it: a row's name, with
 * "-dynamic" or "-static" after a row on integer inputs to choose them
 * ('d' or 's' in *inputs, else 0); NULL if it names no row. */
const qb_linear_format *qb_linear_format_parse(const char *s, char *inputs);
/* Row i of the table (0 <= i < qb_linear_format_count()). */
int qb_linear_format_count(void);
const qb_linear_format *qb_linear_format_at(int i);

/* For the rows on integer inputs (linear_input.c): the calibrated input
 * grid of a static linear, bound and written, and the u8 input of a call
 * in the session's qa buffers. */
bool qb_linear_bind_input_grid(qb_binder *b, qb_linear *l);
bool qb_linear_push_input_grid(qb_st_list *out, const qb_linear *l, const qb_linear_recipe *r);
void qb_linear_quantize_input(struct qb_session *s, const qb_linear *l, const qb_linear_io *io);

/* Embedding tables at 4 or 2 bits, one FP16 scale per row (linear_lowbit.c):
 * bound from a U8 tensor of [rows, cols] codes, and written from FP32. */
qb_lowbit_weights *qb_lowbit_bind_table(qb_binder *b, const qb_st_tensor *t, int bits, int rows, int cols);
bool qb_lowbit_push_table(qb_st_list *out, const qb_st_tensor *t, int bits);

#endif
