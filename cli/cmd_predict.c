/* qbert predict: labels with probabilities (sequence models) or per-word
 * tags (token models), for texts on the command line or streamed from a
 * file or stdin, one output per input in input order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert predict MODEL_DIR TEXT [TEXT ...] [--pair TEXT] [options]\n"
    "       qbert predict MODEL_DIR --input FILE|- [options]\n"
    "\n"
    "Classifies each text.  Sequence models print the label and its probability;\n"
    "token-classification models (NER) print a tag for every whitespace-separated\n"
    "word, taken from the word's first sub-token.\n"
    "\n"
    "  --pair TEXT        second segment for every TEXT (sentence-pair models)\n"
    "  --input FILE|-     read inputs from FILE or stdin, one a line: plain text, or\n"
    "                     JSON {\"text\": ..., \"text_pair\": ...}; results stream out\n"
    "  --max-length L     truncate to L tokens, [CLS]/[SEP] included (default: the\n"
    "                     model's position table, at most 512); a note says when\n"
    "  --batch B          inputs run together (default 8)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --json             one JSON object a line: text, text_pair, input_ids,\n"
    "                     token_type_ids, logits, label, probability (token models:\n"
    "                     words, and label/logits per word/token)\n";

typedef struct {
    char *text, *pair;
    size_t text_len, pair_len;
    int line;
} pending;

typedef struct {
    qb_model *m;
    qb_session *s;
    qb_model_info info;
    int max_length, batch;
    bool json;
    const char *source; /* file name for messages */
    pending *in;
    qb_encoding *enc;
    const qb_encoding **encp;
    int n;
    /* token models: per-input word splits */
    const char **words;
    size_t *word_lens;
} predictor;

/* Whitespace-separated words of a text, for per-word tags. */
static int split_words(const char *t, size_t len, const char **w, size_t *wl, int cap) {
    int n = 0;
    size_t i = 0;
    while (i < len && n < cap) {
        while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
        size_t s = i;
        while (i < len && !(t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
        if (i > s) {
            w[n] = t + s;
            wl[n++] = i - s;
        }
    }
    return n;
}

/* The members every --json line starts with. */
static json_t *json_line(const pending *in, const qb_encoding *e, bool with_pair) {
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "text", qb_json_strn(in->text, in->text_len));
    if (ok && with_pair && in->pair) ok = qb_json_set(o, "text_pair", qb_json_strn(in->pair, in->pair_len));
    ok = ok && qb_json_set(o, "input_ids", qb_json_ints(e->input_ids, e->n)) &&
         qb_json_set(o, "token_type_ids", qb_json_ints(e->token_type_ids, e->n));
    return qb_json_built(o, ok);
}

/* One line of --json output; logits are floats, written with 9 digits. */
static void put_json_line(json_t *o, bool ok) {
    if (!qb_json_emit(stdout, o, ok, QB_JSON_LINE | QB_JSON_DIGITS9))
        fputs("qbert predict: error: out of memory writing JSON\n", stderr);
}

static void emit_sequence(predictor *p, int k) {
    const pending *in = &p->in[k];
    const qb_encoding *e = &p->enc[k];
    int L = p->info.num_labels;
    const float *logits = qb_session_logits(p->s, k);
    float probs[256];
    int best = qb_argmax(logits, L);
    qb_softmax_display(logits, L < 256 ? L : 256, probs);
    const char *label = qb_model_label(p->m, best);
    if (!p->json) {
        printf("%s\t%.4f\t%.*s%s%.*s\n", label, (double)probs[best], (int)in->text_len, in->text,
               in->pair ? " ||| " : "", in->pair ? (int)in->pair_len : 0, in->pair ? in->pair : "");
        return;
    }
    json_t *o = json_line(in, e, true);
    bool ok = o && qb_json_set(o, "logits", qb_json_floats(logits, L)) &&
              qb_json_set(o, "label", qb_json_strn(label, strlen(label))) &&
              qb_json_set(o, "probability", qb_json_real(probs[best])) &&
              qb_json_set(o, "truncated_tokens", json_integer(e->n_truncated));
    put_json_line(o, ok);
}

/* The tag of a word is the argmax at its first sub-token; words cut off by
 * truncation get none. */
static json_t *token_logits_json(const float *logits, int n, int L) {
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int t = 0; ok && t < n; t++) ok = qb_json_push(a, qb_json_floats(logits + (size_t)t * L, L));
    return qb_json_built(a, ok);
}

static void emit_tokens(predictor *p, int k) {
    const pending *in = &p->in[k];
    const qb_encoding *e = &p->enc[k];
    int L = p->info.num_labels, nw = split_words(in->text, in->text_len, p->words, p->word_lens, 4096);
    const float *logits = qb_session_logits(p->s, k);
    json_t *o = p->json ? json_line(in, e, false) : NULL, *words = json_array(), *tags = json_array();
    bool ok = o && words && tags && qb_json_set(o, "logits", token_logits_json(logits, e->n, L));
    for (int w = 0, t = 0; w < nw; w++) {
        while (t < e->n && e->word_ids[t] < w) t++;
        const char *tag = t < e->n && e->word_ids[t] == w ? qb_model_label(p->m, qb_argmax(logits + (size_t)t * L, L))
                                                          : NULL;
        if (!p->json) printf("%s%.*s/%s", w ? " " : "", (int)p->word_lens[w], p->words[w], tag ? tag : "-");
        else if (ok)
            ok = qb_json_push(words, qb_json_strn(p->words[w], p->word_lens[w])) &&
                 qb_json_push(tags, tag ? qb_json_strn(tag, strlen(tag)) : json_null());
    }
    if (!p->json) {
        putchar('\n');
        json_decref(words);
        json_decref(tags);
        return;
    }
    ok = qb_json_set(o, "words", words) && ok;
    ok = qb_json_set(o, "label", tags) && ok;
    ok = ok && qb_json_set(o, "truncated_tokens", json_integer(e->n_truncated));
    put_json_line(o, ok);
}

static void note_truncation(const predictor *p, int k) {
    const qb_encoding *e = &p->enc[k];
    if (e->n_truncated > 0)
        fprintf(stderr, "qbert predict: note: %s input %d truncated to %d tokens (%d dropped)\n", p->source,
                p->in[k].line, e->n, e->n_truncated);
}

static int flush(predictor *p) {
    if (!p->n) return QB_EXIT_OK;
    qb_error err = {0};
    for (int k = 0; k < p->n; k++) {
        pending *in = &p->in[k];
        qb_status st;
        if (p->info.task == QB_TASK_TOKEN) {
            int nw = split_words(in->text, in->text_len, p->words, p->word_lens, 4096);
            st = qb_tokenize_words(p->m, p->words, p->word_lens, nw, p->max_length, &p->enc[k], &err);
        } else {
            st = qb_tokenize(p->m, in->text, in->text_len, in->pair, in->pair_len, p->max_length, &p->enc[k], &err);
        }
        if (st) {
            fprintf(stderr, "qbert predict: error: %s input %d: %s\n", p->source, in->line, err.msg);
            return QB_EXIT_FAIL;
        }
        note_truncation(p, k);
        p->encp[k] = &p->enc[k];
    }
    if (qb_session_run_encodings(p->s, p->encp, p->n, &err)) return qb_report_error("predict", &err);
    for (int k = 0; k < p->n; k++) {
        if (p->info.task == QB_TASK_TOKEN) emit_tokens(p, k);
        else emit_sequence(p, k);
        free(p->in[k].text);
        free(p->in[k].pair);
    }
    fflush(stdout);
    p->n = 0;
    return QB_EXIT_OK;
}

/* Takes ownership of text and pair. */
static int add(predictor *p, char *text, size_t len, char *pair, size_t pair_len, int line) {
    p->in[p->n++] = (pending){text, pair, len, pair_len, line};
    return p->n == p->batch ? flush(p) : QB_EXIT_OK;
}

static int parse_json_line(predictor *p, const char *line, size_t len, int lineno) {
    json_t *j = NULL;
    qb_error err = {0};
    char what[4200];
    snprintf(what, sizeof what, "%s:%d", p->source, lineno);
    if (qb_json_parse(line, len, what, &j, &err)) {
        fprintf(stderr, "qbert predict: error: %s\n", err.msg);
        return QB_EXIT_FAIL;
    }
    size_t tl = 0, pl = 0;
    char *text = qb_json_strdup(json_object_get(j, "text"), &tl);
    char *pair = qb_json_strdup(json_object_get(j, "text_pair"), &pl);
    json_decref(j);
    if (!text) {
        free(pair);
        fprintf(stderr, "qbert predict: error: %s:%d: JSON line has no string \"text\"\n", p->source, lineno);
        return QB_EXIT_FAIL;
    }
    return add(p, text, tl, pair, pl, lineno);
}

static int stream(predictor *p, const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "qbert predict: error: %s: cannot open\n", path);
        return QB_EXIT_FAIL;
    }
    p->source = strcmp(path, "-") ? path : "stdin";
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = QB_EXIT_OK, lineno = 0;
    while (rc == QB_EXIT_OK && (got = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)got;
        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t lead = 0;
        while (lead < len && (line[lead] == ' ' || line[lead] == '\t')) lead++;
        if (lead < len && line[lead] == '{') {
            rc = parse_json_line(p, line, len, lineno);
        } else {
            char *text = malloc(len + 1);
            if (!text) rc = QB_EXIT_FAIL;
            else {
                memcpy(text, line, len);
                text[len] = 0;
                rc = add(p, text, len, NULL, 0, lineno);
            }
        }
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc ? rc : flush(p);
}

typedef struct {
    const char *dir, *pair, *input;
    int max_length, batch, threads;
    bool json;
    int n_texts;
    char **texts;
} predict_args;

static int parse_args(int argc, char **argv, predict_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--json")) a->json = true;
        else if ((v = qb_arg_value("--pair", &i, argc, argv))) a->pair = v;
        else if ((v = qb_arg_value("--input", &i, argc, argv))) a->input = v;
        else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("predict", "--max-length", v, 2, 1 << 20, &a->max_length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            if (!qb_arg_int("predict", "--batch", v, 1, 4096, &a->batch)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("predict", "--threads", v, 1, 1024, &a->threads)) return QB_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') return qb_usage_error("predict", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else a->texts[a->n_texts++] = argv[i];
    }
    if (!a->dir) return qb_usage_error("predict", "missing MODEL_DIR");
    if (!a->input && !a->n_texts) return qb_usage_error("predict", "give texts, or --input FILE|-");
    if (a->input && a->n_texts) return qb_usage_error("predict", "give texts or --input, not both");
    return QB_EXIT_OK;
}

static int setup(predictor *p, const predict_args *a) {
    qb_model_get_info(p->m, &p->info);
    p->max_length = qb_model_max_length(p->m, a->max_length);
    if (p->max_length > p->info.max_position) {
        fprintf(stderr, "qbert predict: error: --max-length %d exceeds the model's %d positions\n", p->max_length,
                p->info.max_position);
        return QB_EXIT_USAGE;
    }
    if (a->pair && p->info.task == QB_TASK_TOKEN)
        return qb_usage_error("predict", "--pair is for sequence models; %s tags tokens", a->dir);
    p->batch = a->batch;
    p->json = a->json;
    p->in = calloc((size_t)p->batch, sizeof *p->in);
    p->enc = calloc((size_t)p->batch, sizeof *p->enc);
    p->encp = calloc((size_t)p->batch, sizeof *p->encp);
    p->words = calloc(4096, sizeof *p->words);
    p->word_lens = calloc(4096, sizeof *p->word_lens);
    qb_session_params sp = {.max_batch = p->batch, .max_seq = p->max_length, .n_threads = a->threads};
    qb_error err = {0};
    if (!p->in || !p->enc || !p->encp || !p->words || !p->word_lens) {
        fprintf(stderr, "qbert predict: error: out of memory\n");
        return QB_EXIT_FAIL;
    }
    if (qb_session_create(p->m, &sp, &p->s, &err)) return qb_report_error("predict", &err);
    return QB_EXIT_OK;
}

static void teardown(predictor *p) {
    for (int k = 0; k < p->n; k++) {
        free(p->in[k].text);
        free(p->in[k].pair);
    }
    for (int k = 0; p->enc && k < p->batch; k++) qb_encoding_free(&p->enc[k]);
    free(p->in);
    free(p->enc);
    free(p->encp);
    free(p->words);
    free(p->word_lens);
    qb_session_free(p->s);
    qb_model_free(p->m);
}

static int run_texts(predictor *p, const predict_args *a) {
    p->source = "argument";
    for (int k = 0; k < a->n_texts; k++) {
        char *t = strdup(a->texts[k]), *pr = a->pair ? strdup(a->pair) : NULL;
        int rc = add(p, t, strlen(t), pr, pr ? strlen(pr) : 0, k + 1);
        if (rc) return rc;
    }
    return flush(p);
}

int qb_cmd_predict(int argc, char **argv) {
    predict_args a = {.batch = 8};
    a.texts = calloc((size_t)argc, sizeof *a.texts);
    int rc = a.texts ? parse_args(argc, argv, &a) : QB_EXIT_FAIL;
    predictor p = {0};
    if (!rc && !(p.m = qb_cli_load("predict", a.dir, NULL))) rc = QB_EXIT_FAIL;
    if (!rc) rc = setup(&p, &a);
    if (!rc) rc = a.input ? stream(&p, a.input) : run_texts(&p, &a);
    teardown(&p);
    free(a.texts);
    return rc;
}
