/* The table of linear formats and its two lookups. */
#include <string.h>

#include "model/linear_format.h"

extern const qb_linear_format qb_linear_fp32, qb_linear_fp16, qb_linear_bf16, qb_linear_int8;

static const qb_linear_format *const rows[] = {&qb_linear_fp32, &qb_linear_fp16, &qb_linear_bf16, &qb_linear_int8};

const qb_linear_format *qb_linear_format_of(qb_dtype stored) {
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (rows[i]->dtype == stored) return rows[i];
    return &qb_linear_fp32; /* its bind refuses what is not a float */
}

const qb_linear_format *qb_linear_format_named(const char *name) {
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        if (!strcmp(rows[i]->name, name)) return rows[i];
    return NULL;
}
