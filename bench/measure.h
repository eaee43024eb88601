/* What the GEMM benchmarks measure with: the machine's multiply-add peaks,
 * which they set their kernels against (register-only loops of independent
 * accumulators, so the rate is the unit's and not the memory's), and the
 * quantiles they report. */
#ifndef QB_BENCH_MEASURE_H
#define QB_BENCH_MEASURE_H

#include <stdbool.h>

#include "kernels/kernels.h"

/* Operations (2 per multiply-add) that `iters` rounds of isa's peak loop do
 * on each of pool's threads (NULL: the caller alone): the FP32 FMA (vfmadd231ps) or, with int8,
 * the integer multiply-add (vpdpbusd on AVX-512, vpmaddwd + vpaddd on
 * AVX2).  The caller times the call with its own clock.  0 for the scalar
 * reference, which has no peak worth the name, or an ISA this CPU lacks. */
double bench_peak_ops(qb_isa isa, bool int8, qb_pool *pool, long iters);

/* A pool of n threads (NULL for 1), or exit. */
qb_pool *bench_pool(int n);

/* Seconds on the monotonic clock. */
double bench_seconds(void);

/* One peak sample: bench_peak_ops timed on that clock, in GOPS (GFLOPS
 * for FP32); 0 where the ISA has no peak. */
double bench_peak_gops(qb_isa isa, bool int8, qb_pool *pool, long iters);

/* The value at quantile q (0..1, nearest rank) of v[0..n), which it sorts. */
double bench_quantile(double *v, int n, double q);

#endif
