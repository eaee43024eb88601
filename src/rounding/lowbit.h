/* Producing low-bit weights from FP32: round to nearest on a uniform grid
 * (symmetric, or with a zero point per group), ternary, and k-means
 * codebooks.  The result is unpacked codes (one byte each) plus what the
 * kernels read beside them (kernels_lowbit.h), scales and centroids already
 * rounded to the FP16 they are stored in, so the codes are chosen against
 * the values the model will really use. */
#ifndef QB_ROUNDING_LOWBIT_H
#define QB_ROUNDING_LOWBIT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/pool.h"

typedef enum { QB_LOWBIT_GRID, QB_LOWBIT_TERNARY, QB_LOWBIT_KMEANS } qb_lowbit_kind;

typedef struct {
    qb_lowbit_kind kind;
    int bits;          /* grid and k-means: 2..4 (2^bits levels); ternary: 3 levels */
    int group;         /* grid and ternary: columns per scale; K (or more) = one per row */
    bool zero_point;   /* grid: asymmetric, a zero point per group */
    bool per_tensor;   /* grid and ternary: one scale (and zero) for the whole matrix, stored per row */
} qb_lowbit_spec;

/* Squared error and signal of one weight matrix, for SQNR = 10 log10(signal / err).
 * grid_err: k-means only, the error of the per-row uniform grid it started from. */
typedef struct qb_lowbit_error {
    double err, signal, grid_err;
} qb_lowbit_error;

int qb_lowbit_levels(const qb_lowbit_spec *s);
int qb_lowbit_groups(const qb_lowbit_spec *s, int K);

/* w [N, K] -> codes [N, K] (rows over pool's threads; NULL: the caller's); grid and ternary: scale and zero [N, groups],
 * code value = scale * (code - zero); k-means: codebook [N, levels], value =
 * codebook[code].  Scales and centroids come out as FP16 bits.  Returns
 * false on allocation failure. */
bool qb_lowbit_quantize(const float *w, int N, int K, const qb_lowbit_spec *s, uint8_t *codes, uint16_t *scale,
                        uint8_t *zero, uint16_t *codebook, qb_lowbit_error *e, qb_pool *pool);

/* The FP32 values codes [N, K] stand for, as the kernels decode them:
 * scale * (code - zero) on grids and ternary, codebook[code] for k-means. */
void qb_lowbit_decode(const uint8_t *codes, int N, int K, const qb_lowbit_spec *s, const uint16_t *scale,
                      const uint8_t *zero, const uint16_t *codebook, float *out);

static inline double qb_lowbit_sqnr_db(double signal, double err) {
    return err > 0 ? 10.0 * __builtin_log10(signal / err) : 300.0;
}

#endif
