/* One enum of element types and one traits table (ggml's type_traits).
 * The loader, writers, `info` and kernel dispatch read this table; adding a
 * quantized format means adding a row here and its kernels. */
#ifndef QB_CORE_DTYPE_H
#define QB_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    QB_F32, QB_F16, QB_BF16, QB_I8, QB_U8, QB_I32, QB_I64,
    QB_DTYPE_COUNT
} qb_dtype;

typedef struct {
    const char *name;        /* safetensors spelling: "F32" */
    size_t size;             /* bytes per element */
    bool is_float;
    /* A float type's exponent field: a value is NaN or infinite exactly
     * when all of these bits are set (0 for integer types). */
    uint32_t exp_mask;
    /* Widening to float, for types that have a float meaning (NULL if none). */
    void (*to_f32)(const void *src, float *dst, size_t n);
} qb_dtype_traits;

const qb_dtype_traits *qb_dtype_traits_of(qb_dtype t);
/* Parses a safetensors dtype name; false if unknown. */
bool qb_dtype_from_name(const char *name, size_t len, qb_dtype *out);

float qb_f16_to_f32(uint16_t h);
uint16_t qb_f32_to_f16(float f);
float qb_bf16_to_f32(uint16_t h);
uint16_t qb_f32_to_bf16(float f); /* round to nearest even */

#endif
