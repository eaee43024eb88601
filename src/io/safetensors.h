/* safetensors: an 8-byte little-endian header length, a JSON header naming
 * each tensor's dtype, shape and [begin, end) byte offsets, then the data.
 * The file is mmapped and every tensor is checked before anyone reads it. */
#ifndef QB_IO_SAFETENSORS_H
#define QB_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/fs.h"
#include "qbert.h"

#define QB_MAX_DIMS 4

typedef struct {
    char *name;
    qb_dtype dtype;
    int ndim;
    int64_t shape[QB_MAX_DIMS];
    int64_t numel;
    size_t offset, nbytes;  /* relative to the data section */
    const void *data;       /* into the mapping */
    bool aligned;           /* data is a multiple of the element size (or empty) */
} qb_st_tensor;

typedef struct {
    char *path;
    qb_file_map map;
    qb_st_tensor *tensors;  /* sorted by name (find bisects them) */
    int n;
    int n_unaligned;        /* tensors whose data is not element-aligned */
    char *metadata;         /* the __metadata__ object as JSON text, or NULL */
} qb_safetensors;

/* Validates: header length within the file, JSON, known dtypes, shapes that
 * match byte sizes, offsets that tile the data section exactly (no overlap,
 * gap or trailing byte: Hugging Face's rule). */
qb_status qb_safetensors_open(qb_safetensors *st, const char *path, qb_error *err);
void qb_safetensors_close(qb_safetensors *st);
const qb_st_tensor *qb_safetensors_find(const qb_safetensors *st, const char *name);
/* name for a one-line message: control bytes as '?', cut to cap - 1 bytes
 * (names come from the file). */
const char *qb_st_name_shown(const char *name, char *buf, size_t cap);
/* Copies float tensor t's values, any float dtype and alignment, into out
 * (t->numel floats). */
void qb_safetensors_to_f32(const qb_st_tensor *t, float *out);

/* Writing: tensors are written in the given order, 8-byte aligned header,
 * to path + ".tmp" then renamed over path. */
typedef struct {
    const char *name;
    qb_dtype dtype;
    int ndim;
    int64_t shape[QB_MAX_DIMS];
    const void *data;
} qb_st_write_tensor;

qb_status qb_safetensors_write(const char *path, const qb_st_write_tensor *tensors, int n,
                               const char *metadata_json, qb_error *err);

#endif
