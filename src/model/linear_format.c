/* The table of linear formats: which row a stored weight dtype binds to. */
#include "model/linear_format.h"

extern const qb_linear_format qb_linear_fp32, qb_linear_fp16, qb_linear_bf16, qb_linear_int8;

const qb_linear_format *qb_linear_format_of(qb_dtype stored) {
    switch (stored) {
    case QB_F16: return &qb_linear_fp16;
    case QB_BF16: return &qb_linear_bf16;
    case QB_I8: return &qb_linear_int8;
    default: return &qb_linear_fp32; /* its bind refuses what is not a float */
    }
}
