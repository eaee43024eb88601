/* Bit-faithfulness against the independent PyTorch reference: for every
 * model in ../shared/golden, every case's input_ids, token_type_ids and
 * attention mask must be identical and every logit within 1e-4; masked-LM
 * models' top-10 ids at each mask identical (an order swap only between
 * logits closer than that) and their logits within 1e-4.  Cases are
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
#define TOP 10
#define MAX_MASKS 16

typedef struct {
    char *text, *pair;
    size_t text_len, pair_len;
    int max_length, n_ids, n_logits, n_masked;
    int32_t ids[512], types[512];
    float logits[512 * 16];
    int mask_pos[MAX_MASKS];
    int32_t top_ids[MAX_MASKS][TOP];
    float top_logits[MAX_MASKS][TOP];
    int32_t hf_ids[512]; /* where the file is a known difference: Hugging Face's ids */
    int n_hf;
    bool known;          /* qbert's ids are a known difference: the logits run on the file's */
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

/* "masked": [{"position", "top_ids", "top_logits"}] of masked-LM cases. */
static bool parse_masked(const json_t *masked, golden_case *c) {
    size_t n = json_array_size(masked);
    if (n > MAX_MASKS) return false;
    for (size_t k = 0; k < n; k++) {
        const json_t *e = json_array_get(masked, k);
        int64_t pos;
        int n_ids = 0, n_logits = 0;
        if (!qb_json_int(json_object_get(e, "position"), &pos) ||
            !read_ints(json_object_get(e, "top_ids"), c->top_ids[k], TOP, &n_ids) || n_ids != TOP ||
            json_array_size(json_object_get(e, "top_logits")) != TOP)
            return false;
        read_floats(json_object_get(e, "top_logits"), c->top_logits[k], &n_logits);
        c->mask_pos[k] = (int)pos;
    }
    c->n_masked = (int)n;
    return true;
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
    ok = ok && parse_masked(json_object_get(j, "masked"), c);
    json_decref(j);
    return ok;
}

/* The random checkpoints the golden README names: the first presets on
 * bert-mini-sst2's vocabulary (ALBERT with its own), the newer ones with
 * the tokenizer files they copy, some with another head. */
static bool make_random(const char *shared, const char *name, char *dir, size_t cap) {
    static const struct {
        const char *name, *preset, *args;
        bool bert_vocab;
    } models[] = {
        {"bert-base", "bert-base", "", true},
        {"distilbert-base", "distilbert-base", "", true},
        {"albert-base-v2", "albert-base-v2", "", false},
        {"roberta-base", "roberta-base", "", false},
        {"roberta-small-odd", "roberta-small-odd", "", false},
        {"roberta-small-odd-mlm", "roberta-small-odd", "--head mlm", false},
        {"electra-small", "electra-small", "", false},
        {"electra-small-token", "electra-small", "--head token", false},
        {"bert-mlm-mini", "bert-mlm-mini", "", false},
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        if (strcmp(name, models[i].name)) continue;
        char extra[4200];
        snprintf(extra, sizeof extra, "%s", models[i].args);
        if (models[i].bert_vocab) snprintf(extra, sizeof extra, "--vocab %s/models/bert-mini-sst2/vocab.txt", shared);
        return qb_test_random_model_named(shared, name, models[i].preset, extra, dir, cap);
    }
    CHECK(false, "%s: no recipe for this random model", name);
    return false;
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
    /* Hashing a base-size checkpoint takes a sanitized build a minute; the
     * hash only tells a changed generator from a wrong engine, which the
     * optimized build's run tells as well, and the logits check the weights. */
    struct stat st;
    if (getenv("QB_SANITIZE") && !stat(weights, &st) && st.st_size > (64 << 20)) {
        printf("  %s: weights sha256 left to the optimized build\n", name);
        return true;
    }
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

/* The TOP highest of v (ties: the lower id first), as the reference ranks. */
static void top_ids(const float *v, int n, int32_t *ids) {
    for (int k = 0; k < TOP; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool taken = false;
            for (int j = 0; j < k && !taken; j++) taken = ids[j] == i;
            if (!taken && (best < 0 || v[i] > v[best])) best = i;
        }
        ids[k] = best;
    }
}

/* Example b's masks: the worst |logit - golden| at the golden ids, or
 * INFINITY when the top ids differ other than by a swap of two logits
 * closer than TOL. */
static double compare_masked(qb_session *s, int b, const golden_case *c, float *vocab_logits, int V) {
    double worst = 0;
    qb_error err = {0};
    for (int k = 0; k < c->n_masked; k++) {
        CHECK(qb_session_mlm_logits(s, b, c->mask_pos[k], vocab_logits, &err) == QB_OK, "%s", err.msg);
        int32_t got[TOP];
        top_ids(vocab_logits, V, got);
        double d = 0;
        for (int i = 0; i < TOP; i++) {
            double e = fabs((double)vocab_logits[c->top_ids[k][i]] - c->top_logits[k][i]);
            d = e > d || isnan(e) ? (isnan(e) ? INFINITY : e) : d;
            bool same = got[i] == c->top_ids[k][i] ||
                        fabs((double)vocab_logits[got[i]] - vocab_logits[c->top_ids[k][i]]) < TOL;
            if (!same) d = INFINITY;
        }
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* Example b of the last run against case c: logits, or masked-LM top ids. */
static double compare_case(qb_session *s, int b, const qb_model_info *in, const golden_case *c, int i,
                           const char *name, float *vocab_logits) {
    if (in->task == QB_TASK_MLM) {
        int masks = 0;
        for (int t = 0; t < c->n_ids; t++) masks += c->ids[t] == in->mask_token_id;
        CHECK(masks == c->n_masked, "%s case %d: %d mask tokens, golden lists %d", name, i, masks, c->n_masked);
        CHECK(!qb_session_logits(s, b), "%s: a masked-LM model has no classifier logits", name);
        return compare_masked(s, b, c, vocab_logits, in->vocab_size);
    }
    int per_row = in->task == QB_TASK_TOKEN ? c->n_ids * in->num_labels : in->num_labels;
    CHECK(per_row == c->n_logits, "%s case %d: %d logits, golden has %d", name, i, per_row, c->n_logits);
    return compare_logits(qb_session_logits(s, b), c->logits, per_row);
}

/* How predict tokenizes for a token model: text (and pair) split into the
 * pre-tokenizer's words, each word tokenized alone. */
static bool words_of(const qb_model *m, const char *t, size_t len, const char **w, size_t *wl, qb_words *out) {
    qb_word_span sp[8192];
    qb_error err = {0};
    int n = 0;
    if (len > 8192 || qb_split_words(m, t ? t : "", len, sp, &n, &err)) return false;
    for (int i = 0; i < n; i++) w[i] = t + sp[i].tok_start, wl[i] = sp[i].tok_end - sp[i].tok_start;
    *out = (qb_words){w, wl, n};
    return true;
}

/* The ids of the case's words through the pre-tokenizer (predict's path)
 * in enc: the same as the sentence's, e. */
static bool word_path_same(const qb_model *m, const golden_case *c, qb_encoding *enc, const qb_encoding *e) {
    const char *w[2][8192];
    size_t wl[2][8192];
    qb_words text, pair;
    qb_error err = {0};
    if (!words_of(m, c->text, c->text_len, w[0], wl[0], &text) ||
        (c->pair && !words_of(m, c->pair, c->pair_len, w[1], wl[1], &pair)) ||
        qb_tokenize_word_pair(m, &text, c->pair ? &pair : NULL, c->max_length, enc, &err))
        return false;
    return enc->n == e->n && !memcmp(enc->input_ids, e->input_ids, (size_t)e->n * 4) &&
           !memcmp(enc->token_type_ids, e->token_type_ids, (size_t)e->n * 4);
}

/* Whether e holds the case's ids, or Hugging Face's where the golden README
 * names a known difference (then *known: the logits run on the golden's
 * own ids, which the reference ran). */
static bool ids_as_golden(const golden_case *c, const qb_encoding *e, bool *known) {
    *known = c->n_hf > 0;
    if (c->n_hf) return e->n == c->n_hf && !memcmp(e->input_ids, c->hf_ids, (size_t)c->n_hf * 4);
    if (e->n == c->n_ids && !memcmp(e->input_ids, c->ids, (size_t)c->n_ids * 4) &&
        !memcmp(e->token_type_ids, c->types, (size_t)c->n_ids * 4))
        return true;
    return *known = c->pair && e->n == c->n_ids &&
                    qb_test_one_token_moved(e->input_ids, e->token_type_ids, c->ids, c->types, c->n_ids);
}

/* The ids the reference ran, as an encoding over the case's arrays. */
static const qb_encoding *golden_encoding(golden_case *c, qb_encoding *e) {
    *e = (qb_encoding){.input_ids = c->ids, .token_type_ids = c->types, .n = c->n_ids};
    return e;
}

/* Runs every case alone, then all of them in padded batches of 8. */
/* Returns the kernel set it ran (a static name), or NULL when it did not load. */
static const char *check_model(const char *dir, golden_case *cases, int n, const char *name, const char *isa) {
    qb_model *m = NULL;
    qb_error err = {0};
    qb_load_params lp = {.isa = isa};
    CHECK(qb_model_load(dir, &lp, &m, &err) == QB_OK, "%s", err.msg);
    if (!m) return NULL;
    qb_model_info in;
    qb_model_get_info(m, &in);
    qb_session *s = NULL;
    qb_session_params sp = {.max_batch = 8, .max_seq = 512, .n_threads = 2};
    CHECK(qb_session_create(m, &sp, &s, &err) == QB_OK, "%s", err.msg);
    qb_encoding enc[8] = {0}, genc[8];
    const qb_encoding *encp[8];
    float *vocab_logits = malloc((size_t)in.vocab_size * sizeof(float));
    double worst = 0, worst_batched = 0;
    int token_mismatch = 0, checked = 0, words_checked = 0, known = 0;
    /* Under the sanitizers a base-size model, and the scalar kernels, run
     * ~20x slower: every third case still covers edge texts, pairs and
     * truncation. */
    bool slow = in.hidden_size > 256 || !strcmp(in.isa, "scalar");
    int stride = getenv("QB_SANITIZE") && slow ? 3 : 1;
    for (int i = 0; s && i < n; i += stride) {
        golden_case *c = &cases[i];
        checked++;
        CHECK(qb_tokenize(m, c->text, c->text_len, c->pair, c->pair_len, c->max_length, &enc[0], &err) == QB_OK,
              "%s", err.msg);
        bool same = ids_as_golden(c, &enc[0], &c->known);
        known += c->known;
        if (same && in.task == QB_TASK_TOKEN) {
            same = word_path_same(m, c, &enc[1], &enc[0]);
            CHECK(same, "%s case %d: ids through the pre-tokenizer's words differ from the reference", name, i);
            words_checked += same;
        }
        token_mismatch += !same;
        CHECK(same, "%s case %d: ids differ from the reference", name, i);
        if (!same) continue;
        encp[0] = c->known ? golden_encoding(c, &genc[0]) : &enc[0];
        CHECK(qb_session_run_encodings(s, encp, 1, &err) == QB_OK, "%s", err.msg);
        double d = compare_case(s, 0, &in, c, i, name, vocab_logits);
        CHECK(d <= TOL, "%s case %d: max |logit - golden| = %.3g", name, i, d);
        worst = d > worst ? d : worst;
    }
    for (int i = 0; s && !token_mismatch && stride == 1 && i < n; i += 8) {
        int k = n - i < 8 ? n - i : 8;
        for (int b = 0; b < k; b++) {
            golden_case *c = &cases[i + b];
            qb_tokenize(m, c->text, c->text_len, c->pair, c->pair_len, c->max_length, &enc[b], &err);
            encp[b] = c->known ? golden_encoding(c, &genc[b]) : &enc[b];
        }
        CHECK(qb_session_run_encodings(s, encp, k, &err) == QB_OK, "%s", err.msg);
        for (int b = 0; b < k; b++) {
            double d = compare_case(s, b, &in, &cases[i + b], i + b, name, vocab_logits);
            CHECK(d <= TOL, "%s case %d batched: max |logit - golden| = %.3g", name, i + b, d);
            worst_batched = d > worst_batched ? d : worst_batched;
        }
    }
    char batched[32] = "not batched";
    if (stride == 1 && !token_mismatch) snprintf(batched, sizeof batched, "%.2e batched", worst_batched);
    printf("  %-22s %2d cases, %s kernels: ids identical %d/%d, max |logit - golden| %.2e alone, %s\n", name,
           checked, in.isa, checked - token_mismatch, checked, worst, batched);
    if (known) printf("  %-22s %d case(s) tokenized as Hugging Face does where the golden README says the file "
                      "does not; their logits on the file's ids\n", name, known);
    if (in.task == QB_TASK_TOKEN) printf("  %-22s ids identical through words (predict's path) %d/%d\n", name,
                                         words_checked, checked);
    for (int b = 0; b < 8; b++) qb_encoding_free(&enc[b]);
    free(vocab_logits);
    qb_session_free(s);
    qb_model_free(m);
    return in.isa;
}

/* The golden README's known difference: the older ALBERT files read
 * special tokens written in the text as plain text, where Hugging Face
 * (and qbert) map them to their ids.  Such a case's ids are Hugging Face's,
 * from tokens-hf-albert-base-v2-specials.jsonl; its logits are still
 * checked, on the ids the reference ran. */
static void read_hf_specials(const char *shared, golden_case *cases, int n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/golden/tokens-hf-albert-base-v2-specials.jsonl", shared);
    char *text, *line, *nl;
    size_t len;
    qb_error err = {0};
    CHECK(qb_file_read_all(path, &text, &len, &err) == QB_OK, "%s", err.msg);
    for (line = text; text && (nl = memchr(line, '\n', len - (size_t)(line - text))); line = nl + 1) {
        json_t *j = NULL;
        CHECK(qb_json_parse(line, (size_t)(nl - line), path, &j, &err) == QB_OK, "%s", err.msg);
        size_t tl;
        const char *t = qb_json_str(json_object_get(j, "text"), &tl);
        for (int i = 0; t && i < n; i++)
            if (!cases[i].pair && cases[i].text_len == tl && !memcmp(cases[i].text, t, tl))
                CHECK(read_ints(json_object_get(j, "input_ids"), cases[i].hf_ids, 512, &cases[i].n_hf), "%s", path);
        json_decref(j);
    }
    free(text);
}

/* The trained models run again on the other kernel sets this CPU has
 * (those it did not pick itself), as QBERT_ISA would force them (with
 * QBERT_ISA set, on none). */
static const char *extra_isas(const char *name, const char *picked, int i) {
    static const char *isas[] = {"scalar", "avx2"};
    if (strncmp(name, "random-", 7) == 0 || !picked) return NULL;
    for (int seen = 0, j = 0; j < 2; j++) {
        qb_isa isa;
        bool runs = qb_isa_from_name(isas[j], &isa) && qb_isa_supported(isa) && !qb_test_isa_left_out(isas[j]) &&
                    strcmp(isas[j], picked);
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
    if (strstr(name, "albert")) read_hf_specials(shared, cases, n);
    if (resolve_model(shared, name, meta, dir, sizeof dir)) {
        const char *picked = check_model(dir, cases, n, name, NULL);
        const char *isa;
        for (int i = 0; (isa = extra_isas(name, picked, i)); i++) check_model(dir, cases, n, name, isa);
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
        "cases-random-albert-base-v2.jsonl", "cases-random-roberta-base.jsonl",
        "cases-random-roberta-small-odd.jsonl", "cases-random-roberta-small-odd-mlm.jsonl",
        "cases-random-electra-small.jsonl", "cases-random-electra-small-token.jsonl",
        "cases-random-bert-mlm-mini.jsonl",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (golden_wanted(files[i])) check_golden_file(shared, files[i]);
    return qb_test_done("test_golden");
}
