/* Several models in one process, a few calls of each in turn (A B C, then
 * C B A), so that the machine's load, the neighbours' memory traffic
 * included, falls on every model alike.  On a shared host separate
 * processes a minute apart differ by a third on short inputs, which are
 * bound by reading the weights: too much to tell two formats apart.
 *   --data: real sentences at batch 1, unpadded (model calls timed, not
 *     tokenization, which is the same for every model): sentences/s.
 *   --shape SEQxBATCH: random ids of that shape, --runs calls a round:
 *     milliseconds per call.
 * Per model: the median round with the rounds' range, and each round's
 * ratio to the first model (the median with its range).
 *
 *   bench_pair (--data TSV [--limit N] | --shape SEQxBATCH [--runs N]) [--threads T] [--rounds R]
 *              [--chunk C] MODEL_DIR...
 * TSV: a header line, then the text up to the first tab (SST-2's layout). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "qbert.h"

#define PAIR_MAX_MODELS 8
#define PAIR_MAX_ROUNDS 64

typedef struct {
    const char *data;
    int seq, batch, runs; /* --shape: batch x seq random ids, runs calls a round */
    int limit, threads, rounds, chunk;
    const char *dirs[PAIR_MAX_MODELS];
    int n_models;
} pair_opts;

typedef struct {
    qb_model *m;
    qb_session *s;
    qb_encoding *enc; /* --data: one per sentence */
    qb_batch batch;   /* --shape */
    double rate[PAIR_MAX_ROUNDS]; /* sentences/s, or ms per call */
} pair_model;

static int pair_usage(void) {
    fputs("usage: bench_pair (--data TSV [--limit N] | --shape SEQxBATCH [--runs N]) [--threads T] [--rounds R]\n"
          "                  [--chunk C] MODEL_DIR...\n"
          "  (2 to 8 models; defaults: all sentences, 10 runs, 2 threads, 7 rounds, 8 calls per turn)\n",
          stderr);
    return 2;
}

static bool pair_parse(int argc, char **argv, pair_opts *o) {
    *o = (pair_opts){.threads = 2, .rounds = 7, .chunk = 8, .runs = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--data") && has) o->data = argv[++i];
        else if (!strcmp(a, "--limit") && has) o->limit = atoi(argv[++i]);
        else if (!strcmp(a, "--shape") && has) {
            if (sscanf(argv[++i], "%dx%d", &o->seq, &o->batch) != 2) return false;
        }
        else if (!strcmp(a, "--runs") && has) o->runs = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has) o->threads = atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && has) o->rounds = atoi(argv[++i]);
        else if (!strcmp(a, "--chunk") && has) o->chunk = atoi(argv[++i]);
        else if (a[0] != '-' && o->n_models < PAIR_MAX_MODELS) o->dirs[o->n_models++] = a;
        else return false;
    }
    bool one_input = !o->data != !o->seq, shape_ok = !o->seq || (o->seq > 0 && o->batch > 0 && o->runs > 0);
    return one_input && shape_ok && o->n_models >= 2 && o->threads >= 1 && o->rounds >= 1 &&
           o->rounds <= PAIR_MAX_ROUNDS && o->chunk >= 1 && o->limit >= 0;
}

/* The texts of a TSV (each up to its first tab), malloc'd; NULL on error. */
static char **pair_read(const char *path, int limit, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char line[65536], **texts = NULL;
    int cap = 0;
    *n = 0;
    for (bool header = true; fgets(line, sizeof line, f) && (!limit || *n < limit); header = false) {
        if (header) continue;
        line[strcspn(line, "\t\r\n")] = 0;
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            char **t = realloc(texts, (size_t)cap * sizeof *t);
            if (!t) break;
            texts = t;
        }
        texts[(*n)++] = strdup(line);
    }
    fclose(f);
    return texts;
}

/* qbert bench's random ids, the same for every model. */
static bool pair_synthetic(pair_model *pm, const pair_opts *o) {
    size_t n = (size_t)o->batch * o->seq;
    int32_t *ids = malloc(n * sizeof *ids), *lens = malloc((size_t)o->batch * sizeof *lens);
    if (!ids || !lens) {
        free(ids);
        free(lens);
        return false;
    }
    qb_bench_random_ids(pm->m, ids, n);
    for (int b = 0; b < o->batch; b++) lens[b] = o->seq;
    pm->batch = (qb_batch){.batch = o->batch, .seq = o->seq, .input_ids = ids, .lengths = lens};
    return true;
}

static bool pair_open(pair_model *pm, const char *dir, const pair_opts *o, char **texts, int n) {
    qb_error err = {0};
    if (qb_model_load(dir, NULL, &pm->m, &err) == QB_OK) {
        qb_session_params sp = {.max_batch = o->seq ? o->batch : 1,
                                .max_seq = o->seq ? o->seq : qb_model_max_length(pm->m, 0),
                                .n_threads = o->threads};
        bool ok = qb_session_create(pm->m, &sp, &pm->s, &err) == QB_OK;
        if (ok && o->seq) return pair_synthetic(pm, o);
        pm->enc = ok ? calloc((size_t)n, sizeof *pm->enc) : NULL;
        ok = pm->enc != NULL;
        for (int i = 0; ok && i < n; i++)
            ok = qb_tokenize(pm->m, texts[i], strlen(texts[i]), NULL, 0, sp.max_seq, &pm->enc[i], &err) == QB_OK;
        if (ok) return true;
    }
    fprintf(stderr, "bench_pair: %s: %s\n", dir, err.msg[0] ? err.msg : "out of memory");
    return false;
}

/* Calls [i0, i1) (sentences, or synthetic runs) through one model; false
 * on a failed run. */
static bool pair_run(pair_model *pm, int i0, int i1, double *secs) {
    qb_error err = {0};
    double t = bench_seconds();
    for (int i = i0; i < i1; i++) {
        const qb_encoding *e = pm->enc ? &pm->enc[i] : NULL;
        if (e ? qb_session_run_encodings(pm->s, &e, 1, &err) : qb_session_run(pm->s, &pm->batch, &err)) {
            fprintf(stderr, "bench_pair: %s\n", err.msg);
            return false;
        }
    }
    *secs += bench_seconds() - t;
    return true;
}

/* One round: every chunk through every model, in turn order reversed
 * from chunk to chunk and from round to round. */
static bool pair_round(pair_model *pms, const pair_opts *o, int n, int round) {
    double secs[PAIR_MAX_MODELS] = {0};
    for (int c = 0; c * o->chunk < n; c++) {
        int i0 = c * o->chunk, i1 = i0 + o->chunk < n ? i0 + o->chunk : n;
        for (int j = 0; j < o->n_models; j++) {
            int k = (c + round) % 2 ? o->n_models - 1 - j : j;
            if (!pair_run(&pms[k], i0, i1, &secs[k])) return false;
        }
    }
    for (int k = 0; k < o->n_models; k++) pms[k].rate[round] = o->seq ? secs[k] * 1e3 / n : n / secs[k];
    return true;
}

static void pair_report(pair_model *pms, const pair_opts *o, int n) {
    if (o->seq)
        printf("seq %d, batch %d, %d threads, %d rounds of %d calls in turns of %d\n", o->seq, o->batch, o->threads,
               o->rounds, n, o->chunk);
    else
        printf("%d sentences, batch 1, %d threads, %d rounds of %d-sentence turns (model calls timed)\n", n,
               o->threads, o->rounds, o->chunk);
    for (int k = 0; k < o->n_models; k++) {
        double rate[PAIR_MAX_ROUNDS], ratio[PAIR_MAX_ROUNDS];
        for (int r = 0; r < o->rounds; r++) {
            rate[r] = pms[k].rate[r];
            ratio[r] = pms[k].rate[r] / pms[0].rate[r];
        }
        double rate50 = bench_quantile(rate, o->rounds, 0.5), rate_lo = rate[0], rate_hi = rate[o->rounds - 1];
        double ratio50 = bench_quantile(ratio, o->rounds, 0.5);
        printf("%-40s %8.2f %s [%.2f..%.2f]  x first: %.3f [%.3f..%.3f]\n", o->dirs[k], rate50,
               o->seq ? "ms per call" : "sentences/s", rate_lo, rate_hi, ratio50, ratio[0], ratio[o->rounds - 1]);
    }
}

int main(int argc, char **argv) {
    pair_opts o;
    if (!pair_parse(argc, argv, &o)) return pair_usage();
    int n = o.runs;
    char **texts = o.data ? pair_read(o.data, o.limit, &n) : NULL;
    if (o.data && (!texts || n == 0)) return fprintf(stderr, "bench_pair: %s: no sentences read\n", o.data), 1;
    pair_model pms[PAIR_MAX_MODELS] = {0};
    for (int k = 0; k < o.n_models; k++)
        if (!pair_open(&pms[k], o.dirs[k], &o, texts, n)) return 1;
    int warm = n < 32 ? n : 32;
    double ignored = 0;
    for (int k = 0; k < o.n_models; k++)
        if (!pair_run(&pms[k], 0, warm, &ignored)) return 1;
    for (int r = 0; r < o.rounds; r++)
        if (!pair_round(pms, &o, n, r)) return 1;
    pair_report(pms, &o, n);
    for (int k = 0; k < o.n_models; k++) {
        for (int i = 0; pms[k].enc && i < n; i++) qb_encoding_free(&pms[k].enc[i]);
        free(pms[k].enc);
        free((void *)pms[k].batch.input_ids);
        free((void *)pms[k].batch.lengths);
        qb_session_free(pms[k].s);
        qb_model_free(pms[k].m);
    }
    for (int i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    return 0;
}
