#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/json.h"
#include "core/sha256.h"
#include "report/report.h"

const char *qb_arg_value(const char *name, int *i, int argc, char **argv) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != 0) return NULL;
    /* "--opt --next": the value was forgotten (one that begins with "--"
     * can still be given as --opt=VALUE) */
    if (*i + 1 >= argc || !strncmp(argv[*i + 1], "--", 2)) {
        fprintf(stderr, "qbert: %s needs a value\n", name);
        exit(QB_EXIT_USAGE);
    }
    return argv[++*i];
}

const char *qb_arg_path(const char *name, int *i, int argc, char **argv) {
    const char *v = qb_arg_value(name, i, argc, argv);
    if (v && !*v) {
        fprintf(stderr, "qbert: %s: empty path\n", name);
        exit(QB_EXIT_USAGE);
    }
    return v;
}

bool qb_arg_int(const char *cmd, const char *name, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "qbert %s: %s must be an integer in [%d, %d], got '%s'\n", cmd, name, lo, hi, v);
        return false;
    }
    *out = (int)x;
    return true;
}

bool qb_arg_bits(const char *cmd, const char *v, unsigned widths, bool ternary, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v && !*end && x >= 0 && x < 32 && (widths >> x & 1)) {
        *out = (int)x;
        return true;
    }
    char list[80] = "";
    size_t n = 0;
    for (int b = 31; b >= 0; b--)
        if (widths >> b & 1) {
            bool last = !(widths & ((1u << b) - 1)) && !ternary;
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", !n ? "" : last ? " or " : ", ", b);
        }
    qb_usage_error(cmd, "--bits is %s%s, not '%s'", list, ternary ? " or ternary" : "", v);
    return false;
}

bool qb_arg_double(const char *cmd, const char *name, const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "qbert %s: %s must be a number in [%g, %g], got '%s'\n", cmd, name, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

int qb_arg_int_list(const char *cmd, const char *name, const char *v, int *out, int cap) {
    int n = 0;
    for (const char *p = v;; p++) {
        char tok[24];
        size_t len = strcspn(p, ",");
        if (n == cap) {
            fprintf(stderr, "qbert %s: %s takes at most %d values\n", cmd, name, cap);
            return -1;
        }
        snprintf(tok, sizeof tok, "%.*s", (int)len, p);
        if (len >= sizeof tok || !qb_arg_int(cmd, name, tok, 1, 1 << 16, &out[n++])) {
            if (len >= sizeof tok) fprintf(stderr, "qbert %s: %s: '%s' is not a list of integers\n", cmd, name, v);
            return -1;
        }
        p += len;
        if (!*p) return n;
    }
}

int qb_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qbert %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'qbert %s --help')\n", cmd);
    va_end(ap);
    return QB_EXIT_USAGE;
}

int qb_report_error(const char *cmd, const qb_error *err) {
    /* the library names its module ("serve: ..."): once is enough */
    size_t n = strlen(cmd);
    const char *msg = !strncmp(err->msg, cmd, n) && !strncmp(err->msg + n, ": ", 2) ? err->msg + n + 2 : err->msg;
    fprintf(stderr, "qbert %s: error: %s\n", cmd, msg);
    return QB_EXIT_FAIL;
}

double qb_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int qb_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* $QBERT_CACHE_DIR/checked, else under $XDG_CACHE_HOME or ~/.cache; NULL
 * (no stamps) if QBERT_CACHE_DIR is empty or no directory is known. */
static const char *check_cache_dir(char *buf, size_t cap) {
    const char *own = getenv("QBERT_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (own) n = *own ? snprintf(buf, cap, "%s/checked", own) : -1;
    else if (xdg && *xdg == '/') n = snprintf(buf, cap, "%s/qbert/checked", xdg);
    else if (home && *home) n = snprintf(buf, cap, "%s/.cache/qbert/checked", home);
    else n = -1;
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

qb_model *qb_cli_load(const char *cmd, const char *dir, int threads, double *load_seconds) {
    qb_error err = {0};
    qb_model *m = NULL;
    double t0 = qb_now();
    qb_load_params lp = qb_load_default_params();
    const char *allow = getenv(QB_ENV_ALLOW_NONFINITE);
    lp.allow_nonfinite = allow && !strcmp(allow, "1");
    char cache[4096];
    lp.check_cache = check_cache_dir(cache, sizeof cache);
    lp.n_threads = threads;
    if (qb_model_load(dir, &lp, &m, &err)) {
        qb_report_error(cmd, &err);
        return NULL;
    }
    if (load_seconds) *load_seconds = qb_now() - t0;
    if (qb_model_warning(m)) fprintf(stderr, "qbert %s: warning: %s\n", cmd, qb_model_warning(m));
    return m;
}

void qb_progress_start(qb_progress *p, const char *what, long total) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->start = qb_now();
    p->tty = isatty(STDERR_FILENO);
}

static void progress_draw(qb_progress *p, bool final) {
    double el = qb_now() - p->start, rate = el > 0 ? p->done / el : 0;
    double eta = rate > 0 ? (p->total - p->done) / rate : 0;
    int width = 30, fill = p->total ? (int)(width * p->done / p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %ld/%ld  %.1f/s  %s %.0fs ", p->what, bar, p->done, p->total, rate,
            final ? "took" : "ETA", final ? el : eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

void qb_progress_step(qb_progress *p, long n) {
    p->done += n;
    if (!p->tty) return;
    double t = qb_now();
    if (t - p->last_draw < 0.1 && p->done < p->total) return;
    p->last_draw = t;
    progress_draw(p, false);
}

void qb_progress_end(qb_progress *p) {
    if (p->tty) progress_draw(p, true);
}

void qb_progress_callback(void *ctx, const char *stage, long done, long total) {
    qb_progress *pr = ctx;
    if (!pr->what) qb_progress_start(pr, stage, total);
    qb_progress_step(pr, done - pr->done);
    if (done == total) qb_progress_end(pr);
}

/* "model name" with, on x86, family, model and stepping: a VM's generic
 * "AMD EPYC" names no generation by itself. */
static void put_cpu_name(char *out, size_t cap, const char *name, const char *family, const char *model,
                         const char *stepping) {
    if (family[0]) snprintf(out, cap, "%s (family %s model %s stepping %s)", name, family, model, stepping);
    else snprintf(out, cap, "%s", name[0] ? name : "unknown");
}

/* The first CPU's model name, and into flags (when not NULL) the flags
 * the kernels care about. */
static void read_cpuinfo(char *model_out, size_t cap, char *flags, size_t flags_cap) {
    static const char *wanted[] = {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                   "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16"};
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192], padded[8200], pat[32], name[128] = "", family[16] = "", model[16] = "", stepping[16] = "";
    char implementer[16] = "", part[16] = ""; /* AArch64 names its cores by these codes */
    if (flags) flags[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += 2;
        v[strcspn(v, "\n")] = 0;
        char *field = !strncmp(line, "model name", 10) ? name
                      : !strncmp(line, "cpu family", 10) ? family
                      : !strncmp(line, "model\t", 6) ? model
                      : !strncmp(line, "stepping", 8) ? stepping
                      : !strncmp(line, "CPU implementer", 15) ? implementer
                      : !strncmp(line, "CPU part", 8) ? part : NULL;
        if (field && !field[0]) snprintf(field, field == name ? sizeof name : sizeof family, "%s", v);
        if (strncmp(line, "flags", 5) || !flags || flags[0]) continue;
        snprintf(padded, sizeof padded, " %s ", v);
        for (size_t k = 0; k < sizeof wanted / sizeof *wanted; k++) {
            snprintf(pat, sizeof pat, " %s ", wanted[k]);
            if (strstr(padded, pat))
                snprintf(flags + strlen(flags), flags_cap - strlen(flags), "%s%s", flags[0] ? " " : "", wanted[k]);
        }
    }
    if (f) fclose(f);
    if (!name[0] && implementer[0]) snprintf(name, sizeof name, "CPU implementer %s part %s", implementer, part);
    put_cpu_name(model_out, cap, name, family, model, stepping);
}

void qb_cli_cpu_name(char *out, size_t cap) { read_cpuinfo(out, cap, NULL, 0); }

void qb_cli_fill_meta(qb_report_meta *meta, const qb_model *m, const char *model_dir, const char *data, int threads,
                      const char *calib, int calib_n) {
    qb_model_info in;
    qb_model_get_info(m, &in);
    snprintf(meta->model_dir, sizeof meta->model_dir, "%s", model_dir);
    snprintf(meta->data_path, sizeof meta->data_path, "%s", data);
    qb_sha256_file(data, meta->data_sha256, NULL);
    snprintf(meta->task, sizeof meta->task, "%s", in.task == QB_TASK_TOKEN ? "ner" : "classification");
    meta->threads = threads;
    read_cpuinfo(meta->cpu_model, sizeof meta->cpu_model, meta->cpu_flags, sizeof meta->cpu_flags);
    snprintf(meta->qbert_version, sizeof meta->qbert_version, "%s", QBERT_VERSION);
    snprintf(meta->git_commit, sizeof meta->git_commit, "%s", qb_cli_git_commit);
    snprintf(meta->compiler, sizeof meta->compiler, "gcc %s", __VERSION__);
    snprintf(meta->isa, sizeof meta->isa, "%s", in.isa);
    snprintf(meta->calib_path, sizeof meta->calib_path, "%s", calib ? calib : "");
    meta->calib_n = calib_n;
    time_t t = time(NULL);
    strftime(meta->created, sizeof meta->created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

FILE *qb_cli_open_input(const char *cmd, const char *path, const char **source) {
    bool std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    *source = std_in ? "stdin" : path;
    if (!f) fprintf(stderr, "qbert %s: error: %s: cannot open: %s\n", cmd, path, strerror(errno));
    return f;
}

#define QB_CLI_LINE_MAX ((size_t)64 << 20)

ssize_t qb_cli_getline(char **line, size_t *cap, FILE *f) {
    size_t n = 0;
    int c = EOF;
    while ((c = getc(f)) != EOF) {
        if (n + 2 > *cap) {
            size_t want = *cap ? *cap * 2 : 256;
            char *grown = n < QB_CLI_LINE_MAX ? realloc(*line, want) : NULL;
            if (!grown) {
                errno = n < QB_CLI_LINE_MAX ? ENOMEM : EFBIG;
                return -2;
            }
            *line = grown;
            *cap = want;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (!n) return -1;
    (*line)[n] = 0;
    return (ssize_t)n;
}

const char *qb_cli_line_error(void) {
    return errno == EFBIG ? "line longer than 64 MiB, the limit for one line of input" : "out of memory";
}

size_t qb_cli_line_len(const char *line, ssize_t got) {
    size_t len = (size_t)got;
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--; /* CRLF */
    return len;
}

void qb_cli_put_json(const char *cmd, json_t *o, bool built) {
    if (!qb_json_emit(stdout, o, built, QB_JSON_LINE | QB_JSON_DIGITS9) && !ferror(stdout))
        fprintf(stderr, "qbert %s: error: out of memory writing JSON\n", cmd);
}
