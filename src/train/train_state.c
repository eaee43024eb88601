#include "train/train_state.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"
#include "io/safetensors.h"

enum { SITE_FIELDS = 6 }; /* lo, hi, scale, zero point, Adam m, v */

static const char *const moment_suffix[2] = {".adam_m", ".adam_v"};

/* The counters a state records, written and read through one table; all
 * but the real-valued ones are counts that must fit an int. */
enum { N_COUNTERS = 11 };
static const struct {
    const char *key;
    bool real;
} counters[N_COUNTERS] = {
    {"epoch", false},   {"batch", false},   {"loss_sum", true},   {"examples", false}, {"steps", false},
    {"trained", false}, {"train_s", true},  {"best_epoch", false}, {"best", true},      {"n_updates", false},
    {"n_forward", false},
};

static void counters_get(const qb_trainer *t, const qb_train_cursor *c, double v[N_COUNTERS]) {
    double all[N_COUNTERS] = {c->epoch, c->batch, c->loss_sum, (double)c->examples, (double)c->steps,
                              (double)c->trained, c->train_s, c->best_epoch, c->best, (double)t->n_updates,
                              (double)t->n_forward};
    memcpy(v, all, sizeof all);
}

static void counters_set(qb_trainer *t, qb_train_cursor *c, const double v[N_COUNTERS]) {
    *c = (qb_train_cursor){.epoch = (int)v[0], .batch = (int)v[1], .loss_sum = v[2], .examples = (long)v[3],
                           .steps = (long)v[4], .trained = (long)v[5], .train_s = v[6], .best_epoch = (int)v[7],
                           .best = v[8]};
    t->n_updates = (long)v[9];
    t->n_forward = (long)v[10];
}

/* The metadata values are strings, as the safetensors format requires;
 * 17 significant digits read back bit for bit (and counters exactly). */
static char *metadata_text(const qb_trainer *t, const qb_train_cursor *c, const char *fingerprint) {
    double v[N_COUNTERS];
    counters_get(t, c, v);
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "format", json_string("qbert-train-state")) &&
              qb_json_set(o, "version", json_string("1")) &&
              qb_json_set(o, "fingerprint", qb_json_strn(fingerprint, strlen(fingerprint)));
    for (int i = 0; ok && i < N_COUNTERS; i++) {
        char num[32];
        snprintf(num, sizeof num, "%.17g", v[i]);
        ok = qb_json_set(o, counters[i].key, json_string(num));
    }
    const char *strings[3][2] = {{"out_dir", c->out_dir}, {"best_sha256", c->best_sha256},
                                 {"prev_sha256", c->prev_sha256}};
    for (int i = 0; ok && i < 3; i++)
        ok = qb_json_set(o, strings[i][0], qb_json_strn(strings[i][1], strlen(strings[i][1])));
    char *text = ok ? qb_json_dumps(o, QB_JSON_LINE) : NULL;
    json_decref(o);
    return text;
}

static void pack_sites(const qb_qat *q, float *out) {
    for (int i = 0; i < q->n_sites; i++) {
        const qb_fq_site *s = &q->sites[i];
        float row[SITE_FIELDS] = {s->lo, s->hi, s->scale, (float)s->zero, s->m, s->v};
        memcpy(out + (size_t)i * SITE_FIELDS, row, sizeof row);
    }
}

static void unpack_sites(qb_qat *q, const float *in) {
    for (int i = 0; i < q->n_sites; i++) {
        const float *row = in + (size_t)i * SITE_FIELDS;
        q->sites[i] = (qb_fq_site){.lo = row[0], .hi = row[1], .scale = row[2], .zero = (int32_t)row[3],
                                   .m = row[4], .v = row[5]};
    }
}

qb_status qb_train_state_save(const qb_trainer *t, const qb_train_cursor *c, const char *fingerprint,
                              const char *path, qb_error *err) {
    int n = 3 * t->n_params + 1;
    qb_st_write_tensor *out = calloc((size_t)n, sizeof *out);
    char (*names)[160] = calloc((size_t)n, sizeof *names);
    float *sites = t->qat ? malloc((size_t)t->qat->n_sites * SITE_FIELDS * sizeof *sites) : NULL;
    char *meta = metadata_text(t, c, fingerprint);
    qb_status st = QB_OK;
    if (!out || !names || !meta || (t->qat && !sites)) st = qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", path);
    int k = 0;
    for (int i = 0; !st && i < t->n_params; i++) {
        const qb_tparam *p = &t->params[i];
        const float *data[3] = {p->w, p->m, p->v};
        for (int j = 0; j < 3; j++, k++) {
            snprintf(names[k], sizeof names[k], "%s%s", p->name, j ? moment_suffix[j - 1] : "");
            out[k] = (qb_st_write_tensor){.name = names[k], .dtype = QB_F32, .ndim = 1, .data = data[j]};
            out[k].shape[0] = p->numel;
        }
    }
    if (!st && t->qat) {
        pack_sites(t->qat, sites);
        out[k] = (qb_st_write_tensor){.name = "qat.sites", .dtype = QB_F32, .ndim = 2, .data = sites};
        out[k].shape[0] = t->qat->n_sites;
        out[k++].shape[1] = SITE_FIELDS;
    }
    if (!st) st = qb_safetensors_write(path, out, k, meta, err);
    free(out);
    free(names);
    free(sites);
    free(meta);
    return st;
}

/* ---- loading ---------------------------------------------------------- */

static bool meta_number(const json_t *j, const char *key, double *out) {
    char *s = qb_json_strdup(json_object_get(j, key), NULL), *end = NULL;
    if (s) *out = strtod(s, &end);
    bool ok = s && end != s && !*end;
    free(s);
    return ok;
}

/* A string of the metadata into buf; absent (an older state) is "". */
static bool meta_string(const json_t *j, const char *key, char *buf, size_t cap) {
    buf[0] = 0;
    if (!json_object_get(j, key)) return true;
    char *v = qb_json_strdup(json_object_get(j, key), NULL);
    bool ok = v && strlen(v) < cap;
    if (ok) memcpy(buf, v, strlen(v) + 1);
    free(v);
    return ok;
}

static bool is_sha256(const char *s) {
    size_t n = strspn(s, "0123456789abcdef");
    return !s[n] && (n == 0 || n == 64);
}

/* Where the best epoch went: read after the counters, which reset c. */
static qb_status read_out_dir(qb_train_cursor *c, const json_t *j, const char *path, qb_error *err) {
    if (!meta_string(j, "out_dir", c->out_dir, sizeof c->out_dir))
        return qb_fail(err, QB_ERR_FORMAT, "%s: metadata 'out_dir' is not a path", path);
    if (!meta_string(j, "best_sha256", c->best_sha256, sizeof c->best_sha256) || !is_sha256(c->best_sha256) ||
        !meta_string(j, "prev_sha256", c->prev_sha256, sizeof c->prev_sha256) || !is_sha256(c->prev_sha256))
        return qb_fail(err, QB_ERR_FORMAT, "%s: metadata 'best_sha256' or 'prev_sha256' is not a SHA-256", path);
    return QB_OK;
}

/* The first "; "-separated setting where two fingerprints differ, so the
 * message names it instead of two long lists cut at the message's end. */
static qb_status settings_differ(const char *path, const char *had, const char *now, qb_error *err) {
    while (*had && *now) {
        size_t a = strcspn(had, ";"), b = strcspn(now, ";");
        if (a != b || memcmp(had, now, a))
            return qb_fail(err, QB_ERR_ARG, "%s: written by a run with other settings: it had '%.*s', this run has "
                           "'%.*s'", path, (int)a, had, (int)b, now);
        had += a + (had[a] == ';') + (had[a] == ';' && had[a + 1] == ' ');
        now += b + (now[b] == ';') + (now[b] == ';' && now[b + 1] == ' ');
    }
    return qb_fail(err, QB_ERR_ARG, "%s: written by a run with other settings ('%s'; this run has '%s')", path, had,
                   now);
}

static qb_status read_cursor(qb_trainer *t, qb_train_cursor *c, const json_t *j, const char *fingerprint,
                             const char *path, qb_error *err) {
    if (!qb_json_str_eq(json_object_get(j, "format"), "qbert-train-state"))
        return qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert training state", path);
    if (!qb_json_str_eq(json_object_get(j, "fingerprint"), fingerprint)) {
        char *had = qb_json_strdup(json_object_get(j, "fingerprint"), NULL);
        qb_status st = settings_differ(path, had ? had : "", fingerprint, err);
        free(had);
        return st;
    }
    double v[N_COUNTERS];
    for (int i = 0; i < N_COUNTERS; i++)
        if (!meta_number(j, counters[i].key, &v[i]))
            return qb_fail(err, QB_ERR_FORMAT, "%s: metadata '%s' is missing or not a number", path, counters[i].key);
    /* Counts must fit an int before they are converted. */
    for (int i = 0; i < N_COUNTERS; i++)
        if (!isfinite(v[i]) || (!counters[i].real && (v[i] < 0 || v[i] > 2e9 || v[i] != floor(v[i]))))
            return qb_fail(err, QB_ERR_FORMAT, "%s: metadata '%s' = %g is out of range", path, counters[i].key, v[i]);
    counters_set(t, c, v);
    return read_out_dir(c, j, path, err);
}

static qb_status read_tensor(const qb_safetensors *st, const char *name, int64_t numel, float *dst,
                             qb_error *err) {
    const qb_st_tensor *t = qb_safetensors_find(st, name);
    if (!t) return qb_fail(err, QB_ERR_FORMAT, "%s: tensor '%s' is missing", st->path, name);
    if (t->dtype != QB_F32 || t->numel != numel)
        return qb_fail(err, QB_ERR_FORMAT, "%s: '%s' should be F32 with %lld values", st->path, name,
                       (long long)numel);
    memcpy(dst, t->data, (size_t)numel * sizeof *dst);
    return QB_OK;
}

static qb_status read_params(qb_trainer *t, const qb_safetensors *st, qb_error *err) {
    char name[160];
    for (int i = 0; i < t->n_params; i++) {
        qb_tparam *p = &t->params[i];
        float *dst[3] = {p->w, p->m, p->v};
        for (int j = 0; j < 3; j++) {
            snprintf(name, sizeof name, "%s%s", p->name, j ? moment_suffix[j - 1] : "");
            qb_status s = read_tensor(st, name, p->numel, dst[j], err);
            if (s) return s;
        }
    }
    if (!t->qat) return QB_OK;
    float *sites = malloc((size_t)t->qat->n_sites * SITE_FIELDS * sizeof *sites);
    if (!sites) return qb_fail(err, QB_ERR_NOMEM, "%s: out of memory", st->path);
    qb_status s = read_tensor(st, "qat.sites", (int64_t)t->qat->n_sites * SITE_FIELDS, sites, err);
    if (!s) unpack_sites(t->qat, sites);
    free(sites);
    return s;
}

/* The format name sits in the header's first bytes (the metadata comes
 * first); 64 KiB of header is plenty and bounds what a stranger costs. */
bool qb_train_state_recognize(const char *path) {
    enum { PEEK = 1 << 16 };
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char len8[8];
    char *head = malloc(PEEK + 1);
    bool ok = head && fread(len8, 1, 8, f) == 8;
    uint64_t len = 0;
    for (int i = 7; ok && i >= 0; i--) len = len << 8 | len8[i];
    size_t n = ok ? fread(head, 1, len < PEEK ? (size_t)len : PEEK, f) : 0;
    if (head) head[n] = 0;
    ok = ok && n > 0 && head[0] == '{' && strstr(head, "\"format\":\"qbert-train-state\"");
    free(head);
    fclose(f);
    return ok;
}

qb_status qb_train_state_load(qb_trainer *t, qb_train_cursor *c, const char *fingerprint, const char *path,
                              qb_error *err) {
    if (!qb_train_state_recognize(path)) return qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert training state", path);
    qb_safetensors st = {0};
    json_t *j = NULL;
    qb_status s = qb_safetensors_open(&st, path, err);
    if (!s && !st.metadata) s = qb_fail(err, QB_ERR_FORMAT, "%s: not a qbert training state (no metadata)", path);
    if (!s) s = qb_json_parse(st.metadata, strlen(st.metadata), path, &j, err);
    if (!s) s = read_cursor(t, c, j, fingerprint, path, err);
    if (!s) s = read_params(t, &st, err);
    json_decref(j);
    qb_safetensors_close(&st);
    return s;
}
