/* What binding a checkpoint's tensors needs, shared by weights.c (the
 * architecture's names) and the linear formats (each format's tensors). */
#ifndef QB_MODEL_BINDER_H
#define QB_MODEL_BINDER_H

#include "model/model.h"

typedef struct qb_binder {
    qb_model *m;
    const char *prefix;   /* "bert.", "albert.", "distilbert." or "" */
    const char *file;
    qb_error *err;        /* the first failure; later binds do nothing */
    char *arena;          /* qb_binder_alloc_packed's current chunk, model-owned */
    size_t arena_used, arena_cap;
    struct qb_binder_pack *packs; /* qb_binder_defer_pack's, in bind order */
    int n_packs;
} qb_binder;

/* The checkpoint's tensor `name`, or NULL; marks it used (every tensor a
 * binder looks up and finds is bound, or checked and refused). */
const qb_st_tensor *qb_binder_find(qb_binder *b, const char *name);
/* Hands p, of bytes, to the model, which frees it with itself (and counts
 * it as held: qb_model_resident); frees p on failure. */
bool qb_binder_own(qb_binder *b, void *p, size_t bytes);
/* bytes (64-byte aligned) for weights the load packs, in chunks on 2 MiB
 * pages that the model frees with itself; NULL with the error set. */
void *qb_binder_alloc_packed(qb_binder *b, size_t bytes, const char *what);
/* t's mapped bytes are no longer read (a copy or packing replaced them):
 * says so to qb_model_resident, and drops the pages reading t mapped,
 * t's and its neighbours' (binder.c says why). */
void qb_binder_release(qb_binder *b, const qb_st_tensor *t);
/* l's format packs l from its weight t once every tensor is bound (its
 * `pack`), on the load's threads; bind allocates what pack fills.
 * release: the kernels never read t (the packed copy replaces it), so it
 * is released.  False with the error set if out of memory. */
bool qb_binder_defer_pack(qb_binder *b, qb_linear *l, const qb_st_tensor *t, bool release);
/* Runs the deferred packs, one linear a task on n_threads threads (0: all
 * online cores), if nothing failed; frees the list either way. */
void qb_binder_run_packs(qb_binder *b, int n_threads);
bool qb_binder_check_shape(qb_binder *b, const qb_st_tensor *t, int ndim, int64_t d0, int64_t d1);
/* Adds t to the model's parameter registry (data: its FP32 values, or NULL). */
void qb_binder_register(qb_binder *b, const qb_st_tensor *t, const float *data);
/* t's values as an FP32 copy the model owns, or NULL. */
const float *qb_binder_f32_copy(qb_binder *b, const qb_st_tensor *t);
/* A float tensor as FP32: mapped when it is F32 and aligned, else converted. */
const float *qb_binder_f32(qb_binder *b, const qb_st_tensor *t, int ndim, int64_t d0, int64_t d1);
/* A companion tensor of a quantized one ("<base><suffix>") of dtype with
 * exactly n elements, or NULL with the error set. */
const qb_st_tensor *qb_binder_companion(qb_binder *b, const char *base, const char *suffix, qb_dtype dtype,
                                        int64_t n);
/* I8 tensors need an int8 quantization_config. */
bool qb_binder_int8_allowed(qb_binder *b, const qb_st_tensor *t);
/* Every value of F32 tensor t (at any byte offset) is positive and finite:
 * scales, SmoothQuant factors. */
bool qb_binder_positive(qb_binder *b, const qb_st_tensor *t);

#endif
