/* The comparison report: one row per quantization method with its accuracy,
 * size, speed and memory, written as report.md (table + findings),
 * report.json, report.csv, SVG charts and a self-contained report.html. */
#ifndef QB_REPORT_REPORT_H
#define QB_REPORT_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "qbert.h"

/* Benchmark rounds whose interquartile range (of their p50 latencies, or of
 * their speedups over FP32) exceeds this share of their median say the
 * machine was busy: the row's speed is not compared. */
#define QB_REPORT_NOISY_SPREAD 0.25

typedef struct {
    char method[32];          /* "fp32", "dynamic", "static-mse", "mixed", ... */
    char description[160];    /* how it was made, e.g. "int8 per-channel, per-token activations" */
    bool ok;                  /* false: the method failed; error holds why */
    char error[256];
    /* accuracy */
    double accuracy, macro_f1, entity_f1; /* entity_f1 < 0 when not NER */
    double agreement;         /* with FP32 predictions (1 for fp32 itself) */
    int n_examples;
    /* size */
    int64_t size_bytes;       /* model.safetensors */
    double compression;       /* fp32 size / size */
    /* speed and memory: medians over benchmark rounds interleaved with the
     * other methods' (compare), each round a process of its own */
    /* The names keep b1 and b8 (report.json's keys are these); the batch
     * sizes are meta.batch_lat and meta.batch_tput, 1 and 8 unless --batch. */
    double p50_b1_ms, p90_b1_ms;  /* latency at the latency batch */
    double throughput_b8;     /* sequences/s at the throughput batch */
    double speedup;           /* median over rounds of fp32 p50_b1 / p50_b1 */
    double p50_spread;        /* (q3 - q1) / median of the rounds' p50_b1 */
    double speedup_spread;    /* the same for the rounds' speedups */
    bool speed_noisy;         /* rounds disagreed: kept out of the speed findings */
    double peak_rss_mb;       /* median of the rounds' processes, each from its own start */
    int n_truncated;          /* examples that lost tokens to max_length */
    double quantize_s;        /* time quantization took (0 for fp32) */
} qb_report_row;

typedef struct {
    char model_dir[1024], data_path[1024], data_sha256[65];
    char task[16];            /* "sst2", "conll", ... */
    int n_examples, seq, threads;
    char cpu_model[128], cpu_flags[256]; /* flags relevant to the kernels */
    char qbert_version[32], git_commit[48], compiler[64];
    char isa[16];
    uint64_t seed;
    char calib_path[1024];
    int calib_n;
    int max_length;           /* truncation of the evaluated examples */
    int n_truncated;          /* examples it cut */
    int bench_rounds, bench_runs, batch_lat, batch_tput; /* compare's benchmark (batches 0: 1 and 8) */
    char map_path[1024];      /* the mixed method's precision map, if any */
    char created[32];         /* ISO 8601 UTC */
} qb_report_meta;

typedef struct {
    qb_report_meta meta;
    qb_report_row *rows;
    int n_rows;
} qb_report;

/* Writes report.md, report.json, report.csv, accuracy_latency.svg (Pareto
 * front marked), size.svg, speedup.svg, radar.svg and report.html (the SVGs
 * inline, no external resources) into dir, each atomically. */
qb_status qb_report_write(const qb_report *r, const char *dir, qb_error *err);
/* Removes from dir the files qb_report_write writes, and nothing else. */
void qb_report_remove(const char *dir);

/* Per-layer sensitivity table and bar chart (sensitivity.md/.json/.csv/.svg). */
typedef struct {
    char name[96];            /* linear or layer name */
    double accuracy, drop;    /* accuracy with only this quantized; drop vs FP32 */
    double sqnr_db, kl;       /* output logits vs FP32 */
    double agreement;         /* predictions equal to FP32's */
    bool kept;                /* kept in higher precision by --suggest */
    bool beyond_whole;        /* drops more than the whole model does, beyond noise */
} qb_sensitivity_row;

typedef struct {
    qb_report_meta meta;
    char method[32];
    double fp32_accuracy, all_quantized_accuracy; /* the latter: the --suggest start, or NaN */
    double whole_accuracy, whole_agreement;       /* every linear quantized the same way */
    qb_sensitivity_row *rows;
    int n_rows;
} qb_sensitivity;

qb_status qb_sensitivity_write(const qb_sensitivity *s, const char *dir, qb_error *err);

#endif
