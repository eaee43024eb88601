/* Bit-faithfulness against the independent PyTorch reference: for every
 * model in ../shared/golden, every case's input_ids, token_type_ids and
 * attention mask must be identical and every logit within 1e-4.  Cases are
 * run one at a time and again as one padded batch (padding must not change
 * a logit).  Random-weight models are regenerated from their preset and
 * seed, and their weights' sha256 checked against the golden file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fs.h"
#include "core/json.h"
#include "core/sha256.h"
#include "kernels/kernels.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct {
    char *text, *pair;
    size_t text_len, pair_len;
    int max_length, n_ids, n_logits;
    int32_t ids[512], types[512];
    float logits[512 * 16];
} golden_case;

static bool read_ints(const json_t *arr, int32_t *out, int cap, int *n) {
    if (!json_is_array(arr) || (int)json_array_size(arr) > cap) return false;
    *n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int64_t v;
        if (!qb_json_int(json_array_get(arr, i), &v)) return false;
        out[(*n)++] = (int32_t)v;
    }
    return true;
}

/* Flattens a list of numbers or a list of lists of numbers. */
static void read_floats(const json_t *t, float *out, int *n) {
    if (json_is_number(t)) {
        out[(*n)++] = (float)qb_json_number(t, NAN);
        return;
    }
    for (size_t i = 0; json_is_array(t) && i < json_array_size(t); i++) read_floats(json_array_get(t, i), out, n);
}

static bool parse_case(const char *line, size_t len, golden_case *c) {
    json_t *j = NULL;
    qb_error err = {0};
    if (qb_json_parse(line, len, "golden", &j, &err)) return false;
    memset(c, 0, sizeof *c);
    c->text = qb_json_strdup(json_object_get(j, "text"), &c->text_len);
    c->pair = qb_json_strdup(json_object_get(j, "text_pair"), &c->pair_len);
    c->max_length = (int)qb_json_get_number(j, "max_length", 128);
    int n_types = 0, n_mask = 0;
    int32_t mask[512];
    bool ok = c->text && read_ints(json_object_get(j, "input_ids"), c->ids, 512, &c->n_ids) &&
              read_ints(json_object_get(j, "token_type_ids"), c->types, 512, &n_types) &&
              read_ints(json_object_get(j, "attention_mask"), mask, 512, &n_mask) &&
              n_types == c->n_ids && n_mask == c->n_ids;
    for (int i = 0; ok && i < n_mask; i++) ok = mask[i] == 1;
    read_floats(json_object_get(j, "logits"), c->logits, &c->n_logits);
    json_decref(j);
    return ok;
}

/* The random checkpoints the golden README names: BERT-family presets on
 * bert-mini-sst2's vocabulary, ALBERT with its own. */
static bool make_random(const char *shared, const char *preset, char *dir, size_t cap) {
    char extra[4200] = "";
    if (!strstr(preset, "albert")) snprintf(extra, sizeof extra, "--vocab %s/models/bert-mini-sst2/vocab.txt", shared);
    return qb_test_random_model(shared, preset, extra, dir, cap);
}

static bool resolve_model(const char *shared, const char *name, const json_t *meta, char *dir, size_t cap) {
    if (strncmp(name, "random-", 7) == 0) {
        if (!make_random(shared, name + 7, dir, cap)) {
            const char *ci = getenv("CI");
            CHECK(!(ci && !strcmp(ci, "true")), "cannot regenerate %s (needs /usr/bin/python3 with numpy)", name);
            printf("  skipped %s: /usr/bin/python3 with numpy not available to regenerate it\n", name);
            return false;
        }
    } else {
        snprintf(dir, cap, "%s/models/%s", shared, name);
    }
    char weights[4300], got[65];
    qb_error err = {0};
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    CHECK(qb_sha256_file(weights, got, &err) == QB_OK, "%s", err.msg);
    const json_t *want = json_object_get(json_object_get(meta, "meta"), "weights_sha256");
    CHECK(qb_json_str_eq(want, got), "%s: weights sha256 %s differs from the golden file's", weights, got);
    return true;
}

static double compare_logits(const float *got, const float *want, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
    }
    return worst;
}

/* Runs every case alone, then all of them in padded batches of 8. */
static void check_model(const char *dir, golden_case *cases, int n, const char *name, const char *isa) {
    qb_model *m = NULL;
    qb_error err = {0};
    qb_load_params lp = {.isa = isa};
    CHECK(qb_model_load(dir, &lp, &m, &err) == QB_OK, "%s", err.msg);
    if (!m) return;
    qb_model_info in;
    qb_model_get_info(m, &in);
    qb_session *s = NULL;
    qb_session_params sp = {.max_batch = 8, .max_seq = 512, .n_threads = 2};
    CHECK(qb_session_create(m, &sp, &s, &err) == QB_OK, "%s", err.msg);
    qb_encoding enc[8] = {0};
    const qb_encoding *encp[8];
    double worst = 0, worst_batched = 0;
    int token_mismatch = 0, checked = 0;
    /* Under the sanitizers a base-size model runs ~20x slower: every third
     * case still covers edge texts, pairs and truncation. */
    int stride = getenv("QB_SANITIZE") && in.hidden_size > 256 ? 3 : 1;
    for (int i = 0; s && i < n; i += stride) {
        golden_case *c = &cases[i];
        checked++;
        CHECK(qb_tokenize(m, c->text, c->text_len, c->pair, c->pair_len, c->max_length, &enc[0], &err) == QB_OK,
              "%s", err.msg);
        bool same = enc[0].n == c->n_ids && !memcmp(enc[0].input_ids, c->ids, (size_t)c->n_ids * 4) &&
                    !memcmp(enc[0].token_type_ids, c->types, (size_t)c->n_ids * 4);
        token_mismatch += !same;
        CHECK(same, "%s case %d: ids differ from the reference", name, i);
        if (!same) continue;
        encp[0] = &enc[0];
        CHECK(qb_session_run_encodings(s, encp, 1, &err) == QB_OK, "%s", err.msg);
        int per_row = in.task == QB_TASK_TOKEN ? c->n_ids * in.num_labels : in.num_labels;
        CHECK(per_row == c->n_logits, "%s case %d: %d logits, golden has %d", name, i, per_row, c->n_logits);
        double d = compare_logits(qb_session_logits(s, 0), c->logits, per_row);
        CHECK(d <= TOL, "%s case %d: max |logit - golden| = %.3g", name, i, d);
        worst = d > worst ? d : worst;
    }
    for (int i = 0; s && !token_mismatch && stride == 1 && i < n; i += 8) {
        int k = n - i < 8 ? n - i : 8;
        for (int b = 0; b < k; b++) {
            golden_case *c = &cases[i + b];
            qb_tokenize(m, c->text, c->text_len, c->pair, c->pair_len, c->max_length, &enc[b], &err);
            encp[b] = &enc[b];
        }
        CHECK(qb_session_run_encodings(s, encp, k, &err) == QB_OK, "%s", err.msg);
        for (int b = 0; b < k; b++) {
            golden_case *c = &cases[i + b];
            int per_row = in.task == QB_TASK_TOKEN ? c->n_ids * in.num_labels : in.num_labels;
            double d = compare_logits(qb_session_logits(s, b), c->logits, per_row);
            CHECK(d <= TOL, "%s case %d batched: max |logit - golden| = %.3g", name, i + b, d);
            worst_batched = d > worst_batched ? d : worst_batched;
        }
    }
    printf("  %-22s %2d cases, %s kernels: ids identical %d/%d, max |logit - golden| %.2e alone, %.2e batched\n",
           name, checked, in.isa, checked - token_mismatch, checked, worst, worst_batched);
    for (int b = 0; b < 8; b++) qb_encoding_free(&enc[b]);
    qb_session_free(s);
    qb_model_free(m);
}

/* The trained models run again on other kernel sets this CPU has, as
 * QBERT_ISA would force them (with QBERT_ISA set, on none). */
static const char *extra_isas(const char *name, int i) {
    static const char *isas[] = {"scalar", "avx2"};
    if (strncmp(name, "random-", 7) == 0) return NULL;
    for (int seen = 0, j = 0; j < 2; j++) {
        qb_isa isa;
        bool runs = qb_isa_from_name(isas[j], &isa) && qb_isa_supported(isa) && !qb_test_isa_left_out(isas[j]);
        if (runs && seen++ == i) return isas[j];
    }
    return NULL;
}

static void check_golden_file(const char *shared, const char *file) {
    char path[4200];
    snprintf(path, sizeof path, "%s/golden/%s", shared, file);
    char *text;
    size_t len;
    qb_error err = {0};
    CHECK(qb_file_read_all(path, &text, &len, &err) == QB_OK, "%s", err.msg);
    if (!text) return;
    golden_case *cases = calloc(64, sizeof *cases);
    int n = 0;
    char *line = text, *nl;
    json_t *meta = NULL;
    for (int ln = 0; (nl = memchr(line, '\n', len - (size_t)(line - text))); line = nl + 1, ln++) {
        if (ln == 0) {
            CHECK(qb_json_parse(line, (size_t)(nl - line), path, &meta, &err) == QB_OK, "%s", err.msg);
            continue;
        }
        CHECK(n < 64 && parse_case(line, (size_t)(nl - line), &cases[n]), "%s:%d: bad case", path, ln + 1);
        n++;
    }
    char name[128], dir[4200];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(file) - strlen("cases-.jsonl")), file + strlen("cases-"));
    if (resolve_model(shared, name, meta, dir, sizeof dir)) {
        check_model(dir, cases, n, name, NULL);
        for (int i = 0; extra_isas(name, i); i++) check_model(dir, cases, n, name, extra_isas(name, i));
    }
    for (int i = 0; i < n; i++) {
        free(cases[i].text);
        free(cases[i].pair);
    }
    free(cases);
    json_decref(meta);
    free(text);
}

/* QB_GOLDEN_MODELS=a,b limits the run to those models (make test-arm64:
 * under emulation a base-size random model takes minutes). */
static bool golden_wanted(const char *file) {
    const char *list = getenv("QB_GOLDEN_MODELS");
    if (!list || !*list) return true;
    const char *name = file + strlen("cases-");
    size_t len = strlen(file) - strlen("cases-.jsonl");
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == len && !strncmp(p, name, len)) return true;
        p += n + (p[n] == ',');
    }
    return false;
}

int main(void) {
    qb_test_need_shared("golden");
    const char *shared = qb_test_shared_dir();
    static const char *files[] = {
        "cases-bert-mini-sst2.jsonl", "cases-bert-mini-imdb.jsonl", "cases-bert-mini-conll.jsonl",
        "cases-albert-mini-sst2.jsonl", "cases-random-bert-base.jsonl", "cases-random-distilbert-base.jsonl",
        "cases-random-albert-base-v2.jsonl",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (golden_wanted(files[i])) check_golden_file(shared, files[i]);
    return qb_test_done("test_golden");
}
