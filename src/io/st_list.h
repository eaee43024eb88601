/* The tensors of a safetensors file being built: some point into an input
 * mapping, some into buffers the list owns until it is freed.  The
 * quantizer fills one; the linear formats push their tensors into it. */
#ifndef QB_IO_ST_LIST_H
#define QB_IO_ST_LIST_H

#include <stdbool.h>

#include "io/safetensors.h"

typedef struct qb_st_list {
    qb_st_write_tensor *t;
    int n, cap;
    void **owned;
    int n_owned, cap_owned;
    char **names;
} qb_st_list;

/* Room for cap tensors and cap owned buffers. */
bool qb_st_list_init(qb_st_list *o, int cap);
void qb_st_list_free(qb_st_list *o);
/* A buffer freed with the list, or NULL. */
void *qb_st_list_alloc(qb_st_list *o, size_t bytes);
/* Appends a tensor (name copied, data not); false when full or out of memory. */
bool qb_st_list_push(qb_st_list *o, const char *name, qb_dtype dtype, int ndim, const int64_t *shape,
                     const void *data);
/* The FP32 values of a float tensor of any float dtype and alignment, in a
 * buffer the list owns, or NULL. */
float *qb_st_list_f32(qb_st_list *o, const qb_st_tensor *t);
/* Pushes float tensor t converted to half (QB_F16 or QB_BF16). */
bool qb_st_list_push_half(qb_st_list *o, const qb_st_tensor *t, qb_dtype half);

#endif
