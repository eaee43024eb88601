/* Shared pieces of the qbert command-line tool: argument helpers, timing,
 * memory, progress, and the per-command entry points.  The commands are thin
 * clients of include/qbert.h. */
#ifndef QB_CLI_H
#define QB_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "qbert.h"
#include "report/report.h"

/* The commit this binary was built from, "-dirty" if tracked files
 * differed, or "unknown" (build/generated/qb_commit.c, written at every
 * build by cmake/git_commit.cmake). */
extern const char qb_cli_git_commit[];

/* Exit codes: 0 success, 1 the work failed (bad file, bad input), 2 usage. */
enum { QB_EXIT_OK = 0, QB_EXIT_FAIL = 1, QB_EXIT_USAGE = 2 };

int qb_cmd_info(int argc, char **argv);
int qb_cmd_predict(int argc, char **argv);
int qb_cmd_embed(int argc, char **argv);
int qb_cmd_fill_mask(int argc, char **argv);
int qb_cmd_eval(int argc, char **argv);
int qb_cmd_bench(int argc, char **argv);
int qb_cmd_quantize(int argc, char **argv);
int qb_cmd_calibrate(int argc, char **argv);
int qb_cmd_compare(int argc, char **argv);
int qb_cmd_sensitivity(int argc, char **argv);
int qb_cmd_train(int argc, char **argv);
int qb_cmd_qat(int argc, char **argv);
int qb_cmd_serve(int argc, char **argv);
int qb_cmd_export(int argc, char **argv);

/* Argument scanning: qb_arg_value("--seq", &i, argc, argv) returns the value
 * of an option at argv[i] ("--seq 128" or "--seq=128") and advances i, or
 * NULL if argv[i] is not that option. */
const char *qb_arg_value(const char *name, int *i, int argc, char **argv);
/* qb_arg_value for a path to write: an empty one is a usage error. */
const char *qb_arg_path(const char *name, int *i, int argc, char **argv);
bool qb_arg_int(const char *cmd, const char *name, const char *v, int lo, int hi, int *out);
bool qb_arg_double(const char *cmd, const char *name, const char *v, double lo, double hi, double *out);
/* --bits V: one of the widths (bit b set: b bits), else a usage message
 * listing them (and "or ternary" where the caller takes that too). */
bool qb_arg_bits(const char *cmd, const char *v, unsigned widths, bool ternary, int *out);
/* "1,8,32" into out[] (an empty value, as in "1,,8", refused); returns the
 * count or -1 (message printed). */
int qb_arg_int_list(const char *cmd, const char *name, const char *v, int *out, int cap);
int qb_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int qb_report_error(const char *cmd, const qb_error *err);

/* An input stream of lines: path, or standard input for "-"; *source
 * names it in messages ("stdin").  NULL after a one-line error. */
FILE *qb_cli_open_input(const char *cmd, const char *path, const char **source);
/* getline for input texts, which the dataset readers' limit bounds: -1 at
 * the end or on a read error, -2 for a line past 64 MiB (errno EFBIG) or
 * out of memory (ENOMEM), reported by qb_cli_line_error. */
ssize_t qb_cli_getline(char **line, size_t *cap, FILE *f);
const char *qb_cli_line_error(void);
/* A line read by getline (got bytes) without its LF or CRLF ending. */
size_t qb_cli_line_len(const char *line, ssize_t got);

double qb_now(void);          /* monotonic seconds */
int qb_default_threads(void);

/* Set (to "1") by --allow-nonfinite: qb_cli_load then loads weights that
 * hold NaN or infinities. */
#define QB_ENV_ALLOW_NONFINITE "QBERT_ALLOW_NONFINITE"

/* Loads a model, packing its weights on the command's --threads (0: all
 * cores), printing the error; NULL on failure. */
qb_model *qb_cli_load(const char *cmd, const char *dir, int threads, double *load_seconds);

/* Reproducibility record of a report: CPU model and flags, versions,
 * commit, compiler, the dataset's sha256, the date. */
/* The CPU's model name, with family, model and stepping where /proc/cpuinfo
 * has them: what every speed figure is quoted beside. */
void qb_cli_cpu_name(char *out, size_t cap);
/* One JSON line of o (if built) on standard output; a failure to write
 * it is left to main's check of standard output, any other is reported. */
struct json_t;
void qb_cli_put_json(const char *cmd, struct json_t *o, bool built);
void qb_cli_fill_meta(qb_report_meta *meta, const qb_model *m, const char *model_dir, const char *data,
                      int threads, const char *calib, int calib_n);

/* Progress on stderr, drawn only when stderr is a terminal. */
typedef struct {
    const char *what;
    long total, done;
    double start, last_draw;
    bool tty;
} qb_progress;

void qb_progress_start(qb_progress *p, const char *what, long total);
void qb_progress_step(qb_progress *p, long n);
void qb_progress_end(qb_progress *p);
/* A qb_progress_fn over a zeroed qb_progress (ctx): starts it on the first call. */
void qb_progress_callback(void *ctx, const char *stage, long done, long total);


/* From here on SIGINT, SIGTERM and SIGHUP remove what this process began
 * beside out and also (either may be NULL; see qb_staging_discard_own)
 * before it dies of the signal.  Call before any thread starts: the
 * threads inherit the signals blocked, for one thread to wait for them. */
void qb_cli_discard_on_interrupt(const char *cmd, const char *out, const char *also);
/* The same with cleanup(ctx) run instead, in that thread while the
 * command's own threads go on: it must rename what it removes first. */
void qb_cli_on_interrupt(const char *cmd, void (*cleanup)(void *ctx), void *ctx);

/* This program run again as a child with argv (argv[0] first, NULL last),
 * no shell in between.  run_self sends its stdout and stderr to log_path
 * and returns its exit status (-1: it could not run or did not exit),
 * with the child's pid in *running while it runs (for an interrupt);
 * open_self returns its stdout to read (NULL if it could not start), and
 * close_self waits for it and returns its exit status. */
int qb_cli_run_self(char *const argv[], const char *log_path, _Atomic int *running);
FILE *qb_cli_open_self(char *const argv[], int *pid);
int qb_cli_close_self(FILE *f, int pid);

/* One record of a TSV or CSV file (cli/table.c): field[i] (len[i] bytes,
 * NUL-terminated, CSV quotes removed) point into buf, reused between
 * records; free buf when done. */
#define QB_TABLE_MAX_FIELDS 256
#define QB_TABLE_MAX_FIELDS_STR "256"
enum { QB_TABLE_OK, QB_TABLE_OPEN_QUOTE, QB_TABLE_BAD_QUOTE, QB_TABLE_TOO_WIDE, QB_TABLE_NOMEM };
typedef struct {
    char *buf;
    char *field[QB_TABLE_MAX_FIELDS];
    size_t len[QB_TABLE_MAX_FIELDS];
    int n;
} qb_table_row;
/* Splits rec at sep ('\t': no quoting; ',': RFC 4180 quoting, where
 * QB_TABLE_OPEN_QUOTE asks for the record's next line). */
int qb_table_split(const char *rec, size_t len, char sep, qb_table_row *r);
const char *qb_table_problem(int rc);

#endif
