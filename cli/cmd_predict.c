/* qbert predict: labels with probabilities (sequence models) or per-word
 * tags (token models), for texts on the command line or streamed from a
 * file or stdin, one output per input in input order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "core/escape.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert predict MODEL_DIR TEXT [TEXT ...] [--pair TEXT] [options]\n"
    "       qbert predict MODEL_DIR --input FILE|- [options]\n"
    "\n"
    "Classifies each text.  Sequence models print the label and its probability\n"
    "(a softmax; a sigmoid for one-label models such as cross-encoders, and for\n"
    "problem_type multi_label_classification, which prints every label with its\n"
    "score, highest first; the raw output for problem_type regression).  Token-classification models (NER) print a tag for\n"
    "every word, split as the model's pre-tokenizer splits (\"York.\" is two\n"
    "words), taken from the word's first sub-token.\n"
    "\n"
    "  --pair TEXT        second segment for every TEXT (sentence pairs; token\n"
    "                     models tag the words of both)\n"
    "  --aggregate simple token models: entity spans instead of tags, as Hugging\n"
    "                     Face's aggregation_strategy=\"simple\": sub-tokens grouped\n"
    "                     by entity type (a B- tag starts a new one), each printed\n"
    "                     as TYPE START END SCORE TEXT (character offsets into its\n"
    "                     segment, the mean score of its sub-tokens)\n"
    "  --input FILE|-     read inputs from FILE or stdin, one a line; results stream\n"
    "                     out in input order\n"
    "  --input-format F   text: each line is a text (the default); jsonl: each line\n"
    "                     is {\"text\": ..., \"text_pair\": ...} (the default for\n"
    "                     FILE.jsonl and FILE.ndjson); tsv, csv: a header line names\n"
    "                     the columns (the default for FILE.tsv and FILE.csv; CSV\n"
    "                     quoting as RFC 4180); never guessed from a line\n"
    "  --text-column C    tsv/csv: the text's column (default: sentence, text or\n"
    "                     sentence1, the first the header has)\n"
    "  --pair-column C    tsv/csv: the second segment's column (default: sentence2\n"
    "                     beside sentence1, or text_pair if the header has one)\n"
    "  --on-error E       a line that cannot be read or tokenized: stop (default)\n"
    "                     writes every result before it, then exits 1 naming the\n"
    "                     line; skip reports it on stderr (and, with --json, as\n"
    "                     {\"line\": N, \"error\": ...} in its place) and goes on\n"
    "  --max-length L     truncate to L tokens, [CLS]/[SEP] included (default: the\n"
    "                     model's position table, at most 512); a note says when\n"
    "  --batch B          inputs run together (default 8)\n"
    "  --threads N        compute threads (default: all cores)\n"
    "  --json             one JSON object a line: text, text_pair, input_ids,\n"
    "                     token_type_ids, logits, label, probability, scores,\n"
    "                     truncated_tokens (token models: words, tags, token_logits,\n"
    "                     entities); docs/cli-json.md lists the fields.  Every other\n"
    "                     field of a JSONL input object (or column of a tsv/csv\n"
    "                     input, as a string) comes first, as it was: an \"id\"\n"
    "                     stays with its result (one named like a field above,\n"
    "                     e.g. a gold \"label\", as \"input_label\")\n"
    "  --fields F,...     --json: only these of the fields above (input fields are\n"
    "                     always kept), e.g. --fields label,probability\n"
    "\n"
    "Text output shows control characters in texts and labels as escapes (\\n,\n"
    "\\t, \\x1b), so one input is always one line.\n";

typedef struct {
    char *text, *pair;
    size_t text_len, pair_len;
    int line;
    char *error;   /* --on-error skip: why this input has no result */
    json_t *extra; /* input fields other than the text(s), carried to the output */
} pending;

/* The fields --json writes, which --fields chooses from. */
static const char *const output_fields[] = {"text", "text_pair", "input_ids", "token_type_ids", "logits",
                                            "label", "probability", "scores", "function_to_apply",
                                            "truncated_tokens", "words", "tags", "token_logits", "entities"};
enum { N_OUTPUT_FIELDS = sizeof output_fields / sizeof *output_fields };

/* A TSV or CSV input: its header and the columns read. */
typedef struct {
    char sep;
    qb_table_row header, row;
    int text_col, pair_col; /* pair_col -1: none */
} table_input;

typedef struct {
    qb_model *m;
    qb_session *s;
    qb_model_info info;
    int max_length, batch;
    bool json, skip_errors;
    bool drop[N_OUTPUT_FIELDS]; /* --fields left these out */
    const char *text_column, *pair_column; /* tsv/csv: --text-column, --pair-column */
    int n_skipped;
    const char *source; /* file name for messages */
    pending *in;
    qb_encoding *enc;
    const qb_encoding **encp;
    int n;
    int *slot;    /* in[k]'s row in the session's batch (-1: none) */
    float *probs; /* num_labels */
    int *order;   /* num_labels: multi-label scores, highest first */
    bool aggregate;
    /* token models: the words of an input's text, then of its pair */
    const char **words;
    size_t *word_lens;
    qb_word_span *spans;
    size_t words_cap;
    qb_words text_words, pair_words;
} predictor;

/* Room for the words of an input of len bytes: at most one a byte. */
static bool words_reserve(predictor *p, size_t len) {
    size_t need = len + 1;
    if (need <= p->words_cap) return true;
    const char **w = realloc(p->words, need * sizeof *w);
    if (w) p->words = w;
    size_t *wl = w ? realloc(p->word_lens, need * sizeof *wl) : NULL;
    if (wl) p->word_lens = wl;
    qb_word_span *sp = wl ? realloc(p->spans, need * sizeof *sp) : NULL;
    if (!sp) return false;
    p->spans = sp;
    p->words_cap = need;
    return true;
}

/* One segment's words from index `first` on, as the model's pre-tokenizer
 * splits them. */
static qb_status split_segment(predictor *p, const char *t, size_t len, int first, qb_words *out, qb_error *err) {
    int n = 0;
    qb_status st = qb_split_words(p->m, t ? t : "", len, p->spans + first, &n, err);
    for (int i = 0; !st && i < n; i++) {
        const qb_word_span *sp = &p->spans[first + i];
        p->words[first + i] = t + sp->tok_start;
        p->word_lens[first + i] = sp->tok_end - sp->tok_start;
    }
    *out = (qb_words){p->words + first, p->word_lens + first, n};
    return st;
}

/* in's words: text_words, then pair_words (when it has a pair). */
static qb_status split_input(predictor *p, const pending *in, qb_error *err) {
    if (!words_reserve(p, in->text_len + in->pair_len + 1)) return qb_fail(err, QB_ERR_NOMEM, "out of memory");
    qb_status st = split_segment(p, in->text, in->text_len, 0, &p->text_words, err);
    p->pair_words = (qb_words){0};
    if (!st && in->pair) st = split_segment(p, in->pair, in->pair_len, p->text_words.n, &p->pair_words, err);
    return st;
}

/* The input's own fields, which come first; one named like a field the
 * output writes ("label": an SST-2 file's gold label) is kept as
 * "input_<name>" rather than overwritten by the prediction. */
static bool put_input_fields(json_t *o, const json_t *extra) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)extra, key, v) {
        bool clash = !strcmp(key, "line") || !strcmp(key, "error");
        for (int f = 0; f < N_OUTPUT_FIELDS && !clash; f++) clash = !strcmp(key, output_fields[f]);
        char name[300];
        snprintf(name, sizeof name, "%s%s", clash ? "input_" : "", key);
        if (json_object_set(o, name, v)) return false;
    }
    return true;
}

/* The members every --json line starts with: the input's own fields first. */
static json_t *json_line(const pending *in, const qb_encoding *e, bool with_pair) {
    json_t *o = json_object();
    bool ok = o && (!in->extra || put_input_fields(o, in->extra)) &&
              qb_json_set(o, "text", qb_json_strn(in->text, in->text_len));
    if (ok && with_pair && in->pair) ok = qb_json_set(o, "text_pair", qb_json_strn(in->pair, in->pair_len));
    ok = ok && qb_json_set(o, "input_ids", qb_json_ints(e->input_ids, e->n)) &&
         qb_json_set(o, "token_type_ids", qb_json_ints(e->token_type_ids, e->n));
    return qb_json_built(o, ok);
}

/* One line of --json output; logits are floats, written with 9 digits. */
static void put_json_line(const predictor *p, json_t *o, bool ok) {
    for (int f = 0; o && f < N_OUTPUT_FIELDS; f++)
        if (p->drop[f]) json_object_del(o, output_fields[f]);
    qb_cli_put_json("predict", o, ok);
}

/* Labels by decreasing score (ties: lower id first). */
static void order_by_score(const float *scores, int n, int *order) {
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && scores[order[j - 1]] < scores[i]; j--) order[j] = order[j - 1];
        order[j] = i;
    }
}

static void write_label_scores(const predictor *p, const float *scores, int best) {
    int L = p->info.num_labels;
    if (p->info.head_function != QB_HEAD_SIGMOID || L == 1) {
        const char *label = qb_model_label(p->m, best);
        qb_escape_write(stdout, label, strlen(label));
        printf("\t%.4f\t", (double)scores[best]);
        return;
    }
    order_by_score(scores, L, p->order);
    for (int i = 0; i < L; i++) {
        const char *label = qb_model_label(p->m, p->order[i]);
        qb_escape_write(stdout, label, strlen(label));
        printf(":%.4f", (double)scores[p->order[i]]);
        fputs(i + 1 < L ? " " : "\t", stdout);
    }
}

static void emit_sequence(predictor *p, int k) {
    const pending *in = &p->in[k];
    const qb_encoding *e = &p->enc[k];
    int L = p->info.num_labels;
    const float *logits = qb_session_logits(p->s, p->slot[k]);
    float *probs = p->probs;
    int best = qb_argmax(logits, L);
    qb_head_scores(p->m, logits, L, probs);
    const char *label = qb_model_label(p->m, best);
    if (!p->json) {
        write_label_scores(p, probs, best);
        qb_escape_write(stdout, in->text, in->text_len);
        if (in->pair) {
            fputs(" ||| ", stdout);
            qb_escape_write(stdout, in->pair, in->pair_len);
        }
        putchar('\n');
        return;
    }
    json_t *o = json_line(in, e, true);
    bool ok = o && qb_json_set(o, "logits", qb_json_floats(logits, L)) &&
              qb_json_set(o, "label", qb_json_strn(label, strlen(label))) &&
              qb_json_set(o, "probability", qb_json_real(probs[best])) &&
              qb_json_set(o, "scores", qb_json_floats(probs, L)) &&
              qb_json_set_str(o, "function_to_apply", qb_head_function_name(p->info.head_function)) &&
              qb_json_set(o, "truncated_tokens", json_integer(e->n_truncated));
    put_json_line(p, o, ok);
}

/* The tag of a word is the argmax at its first sub-token; words cut off by
 * truncation get none. */
static json_t *token_logits_json(const float *logits, int n, int L) {
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int t = 0; ok && t < n; t++) ok = qb_json_push(a, qb_json_floats(logits + (size_t)t * L, L));
    return qb_json_built(a, ok);
}

static void write_word_tags(predictor *p, int k, json_t *words, json_t *tags, bool *ok) {
    const qb_encoding *e = &p->enc[k];
    int L = p->info.num_labels, nw = p->text_words.n + p->pair_words.n;
    const float *logits = qb_session_logits(p->s, p->slot[k]);
    for (int w = 0, t = 0; w < nw; w++) {
        while (t < e->n && e->word_ids[t] < w) t++;
        const char *tag = t < e->n && e->word_ids[t] == w ? qb_model_label(p->m, qb_argmax(logits + (size_t)t * L, L))
                                                          : NULL;
        const char *word = p->words[w] + (p->spans[w].start - p->spans[w].tok_start); /* shown without spaces */
        size_t word_len = p->spans[w].end - p->spans[w].start;
        if (p->json) {
            if (*ok)
                *ok = qb_json_push(words, qb_json_strn(word, word_len)) &&
                      qb_json_push(tags, tag ? qb_json_strn(tag, strlen(tag)) : json_null());
            continue;
        }
        fputs(w == p->text_words.n && w ? " ||| " : w ? " " : "", stdout);
        qb_escape_write(stdout, word, word_len);
        putchar('/');
        if (tag) qb_escape_write(stdout, tag, strlen(tag));
        else putchar('-');
    }
}

/* ---- entity spans (--aggregate simple) --------------------------------- */

static size_t char_offset(const char *t, size_t byte) {
    size_t c = 0;
    for (size_t i = 0; i < byte; i++) c += ((unsigned char)t[i] & 0xC0) != 0x80;
    return c;
}

static json_t *entity_json(const predictor *p, const pending *in, const qb_entity *x) {
    const char *type = qb_model_label(p->m, x->label) + x->type_offset;
    const char *seg = x->segment ? in->pair : in->text;
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "entity", qb_json_strn(type, strlen(type))) && qb_json_set(o, "score", qb_json_real(x->score)) &&
              qb_json_set(o, "start", json_integer((json_int_t)char_offset(seg, x->start))) &&
              qb_json_set(o, "end", json_integer((json_int_t)char_offset(seg, x->end))) &&
              qb_json_set(o, "text", qb_json_strn(seg + x->start, x->end - x->start)) &&
              qb_json_set(o, "segment", json_integer(x->segment));
    return qb_json_built(o, ok);
}

static json_t *entities(predictor *p, int k, bool *ok) {
    const qb_encoding *e = &p->enc[k];
    qb_entity *ents = malloc((size_t)(e->n + 1) * sizeof *ents);
    json_t *out = json_array();
    *ok = *ok && ents && out;
    int n = *ok ? qb_entities_simple(p->m, e, qb_session_logits(p->s, p->slot[k]), p->spans, p->text_words.n,
                                     p->text_words.n + p->pair_words.n, ents)
                : 0;
    for (int i = 0; *ok && i < n; i++) *ok = qb_json_push(out, entity_json(p, &p->in[k], &ents[i]));
    free(ents);
    return out;
}

/* Text output: TYPE START END SCORE TEXT per entity, tab-separated; "-" for none. */
static void write_entities(const json_t *ents) {
    size_t i;
    const json_t *x;
    json_array_foreach(ents, i, x) {
        const json_t *type = json_object_get(x, "entity"), *text = json_object_get(x, "text");
        fputs(i ? "\t" : "", stdout);
        qb_escape_write(stdout, json_string_value(type), json_string_length(type));
        printf(" %lld %lld %.4f ", (long long)json_integer_value(json_object_get(x, "start")),
               (long long)json_integer_value(json_object_get(x, "end")), json_real_value(json_object_get(x, "score")));
        qb_escape_write(stdout, json_string_value(text), json_string_length(text));
    }
    if (!json_array_size(ents)) putchar('-');
}

static void emit_tokens(predictor *p, int k) {
    const pending *in = &p->in[k];
    const qb_encoding *e = &p->enc[k];
    qb_error err = {0};
    bool ok = !split_input(p, in, &err);
    json_t *o = p->json ? json_line(in, e, true) : NULL, *words = json_array(), *tags = json_array(), *ents = NULL;
    if (p->aggregate) ents = entities(p, k, &ok);
    else write_word_tags(p, k, words, tags, &ok);
    if (!p->json) {
        if (p->aggregate) write_entities(ents);
        putchar('\n');
        json_decref(words);
        json_decref(tags);
        json_decref(ents);
        return;
    }
    const float *logits = qb_session_logits(p->s, p->slot[k]);
    ok = ok && o && words && tags && qb_json_set(o, "token_logits", token_logits_json(logits, e->n, p->info.num_labels));
    if (p->aggregate) ok = qb_json_set(o, "entities", ents) && ok;
    else ok = qb_json_set(o, "words", words) && qb_json_set(o, "tags", tags) && ok;
    if (p->aggregate) json_decref(words), json_decref(tags);
    ok = ok && qb_json_set(o, "truncated_tokens", json_integer(e->n_truncated));
    put_json_line(p, o, ok);
}

static void note_truncation(const predictor *p, int k) {
    const qb_encoding *e = &p->enc[k];
    if (e->n_truncated > 0)
        fprintf(stderr, "qbert predict: note: %s input %d truncated to %d tokens (%d dropped)\n", p->source,
                p->in[k].line, e->n, e->n_truncated);
}

/* A line that has no result: with --on-error skip it is reported and, in
 * --json output, stands in its place; with stop it ends the run. */
static void emit_error(const predictor *p, const pending *in) {
    fprintf(stderr, "qbert predict: error: %s (skipped)\n", in->error);
    if (!p->json) return;
    json_t *o = json_object();
    bool ok = o && (!in->extra || put_input_fields(o, in->extra)) &&
              qb_json_set(o, "line", json_integer(in->line)) &&
              qb_json_set(o, "error", qb_json_strn(in->error, strlen(in->error)));
    /* not put_json_line: --fields chooses among results, and this is none */
    qb_cli_put_json("predict", o, ok);
}

static char *error_text(const predictor *p, int line, const char *msg) {
    char buf[4608];
    snprintf(buf, sizeof buf, "%s input %d: %s", p->source, line, msg);
    return strdup(buf);
}

static qb_status tokenize_one(predictor *p, int k, qb_error *err) {
    pending *in = &p->in[k];
    if (p->info.task != QB_TASK_TOKEN)
        return qb_tokenize(p->m, in->text, in->text_len, in->pair, in->pair_len, p->max_length, &p->enc[k], err);
    qb_status st = split_input(p, in, err);
    return st ? st : qb_tokenize_word_pair(p->m, &p->text_words, in->pair ? &p->pair_words : NULL, p->max_length,
                                           &p->enc[k], err);
}

/* Runs the pending inputs and writes their results in input order.  An
 * input that does not tokenize is skipped (--on-error skip) or ends the
 * run after the results of the inputs before it are written. */
static int flush(predictor *p) {
    if (!p->n) return QB_EXIT_OK;
    qb_error err = {0};
    int rows = 0, stop = p->n;
    char *stop_msg = NULL;
    for (int k = 0; k < p->n && stop == p->n; k++) {
        pending *in = &p->in[k];
        p->slot[k] = -1;
        if (in->error) continue;
        if (tokenize_one(p, k, &err)) {
            char *msg = error_text(p, in->line, err.msg);
            if (p->skip_errors && msg) in->error = msg;
            else stop = k, stop_msg = msg;
            continue;
        }
        note_truncation(p, k);
        p->slot[k] = rows;
        p->encp[rows++] = &p->enc[k];
    }
    int rc = QB_EXIT_OK;
    if (rows && qb_session_run_encodings(p->s, p->encp, rows, &err)) {
        rc = qb_report_error("predict", &err);
        stop = 0;
    }
    for (int k = 0; k < stop; k++) {
        if (p->in[k].error) emit_error(p, &p->in[k]), p->n_skipped++;
        else if (p->info.task == QB_TASK_TOKEN) emit_tokens(p, k);
        else emit_sequence(p, k);
    }
    fflush(stdout);
    if (stop < p->n && !rc) {
        fprintf(stderr, "qbert predict: error: %s\n", stop_msg ? stop_msg : "out of memory");
        rc = QB_EXIT_FAIL;
    }
    free(stop_msg);
    for (int k = 0; k < p->n; k++) {
        free(p->in[k].text);
        free(p->in[k].pair);
        free(p->in[k].error);
        json_decref(p->in[k].extra);
    }
    p->n = 0;
    return rc;
}

/* Takes ownership of text, pair, error and extra. */
static int add(predictor *p, char *text, size_t len, char *pair, size_t pair_len, int line, char *error,
               json_t *extra) {
    p->in[p->n++] = (pending){text, pair, len, pair_len, line, error, extra};
    return p->n == p->batch ? flush(p) : QB_EXIT_OK;
}

/* A line that cannot be read: stop writes what came before it and fails;
 * skip queues the error in the line's place. */
static int bad_line(predictor *p, int lineno, const char *msg) {
    char *e = strdup(msg);
    if (p->skip_errors && e) return add(p, NULL, 0, NULL, 0, lineno, e, NULL);
    int rc = flush(p); /* fails first if an earlier line does not tokenize */
    if (!rc) fprintf(stderr, "qbert predict: error: %s\n", e ? e : msg);
    free(e);
    return QB_EXIT_FAIL;
}

/* A line cut off by the limit (or memory) ends the run even with
 * --skip-errors: the rest of that line would read as new lines. */
static int unreadable_line(predictor *p, int lineno) {
    int rc = flush(p);
    if (!rc) fprintf(stderr, "qbert predict: error: %s:%d: %s\n", p->source, lineno, qb_cli_line_error());
    return QB_EXIT_FAIL;
}

static int parse_json_line(predictor *p, const char *line, size_t len, int lineno) {
    json_t *j = NULL;
    qb_error err = {0};
    char what[4200], msg[4608];
    snprintf(what, sizeof what, "%s:%d", p->source, lineno);
    if (qb_json_parse(line, len, what, &j, &err)) return bad_line(p, lineno, err.msg);
    size_t tl = 0, pl = 0;
    char *text = qb_json_strdup(json_object_get(j, "text"), &tl);
    char *pair = qb_json_strdup(json_object_get(j, "text_pair"), &pl);
    if (!text) {
        free(pair);
        json_decref(j);
        snprintf(msg, sizeof msg, "%s:%d: JSON line has no string \"text\"", p->source, lineno);
        return bad_line(p, lineno, msg);
    }
    json_object_del(j, "text");
    json_object_del(j, "text_pair");
    return add(p, text, tl, pair, pl, lineno, NULL, j);
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return false;
    return true;
}

static int column(const qb_table_row *h, const char *name) {
    for (int i = 0; i < h->n; i++)
        if (!strcmp(h->field[i], name)) return i;
    return -1;
}

static int no_column(const predictor *p, const table_input *t, const char *what, const char *option) {
    char cols[1024] = "";
    for (int i = 0, at = 0; i < t->header.n && at < (int)sizeof cols; i++)
        at += snprintf(cols + at, sizeof cols - at, "%s'%s'", i ? ", " : "", t->header.field[i]);
    fprintf(stderr, "qbert predict: error: %s:1: the header has no column %s (it has %s; choose with %s)\n",
            p->source, what, cols, option);
    return QB_EXIT_FAIL;
}

/* The header names the columns: the text's and the pair's, by name or by
 * Hugging Face's usual names. */
static int table_header(predictor *p, table_input *t, const char *rec, size_t len) {
    int rc = qb_table_split(rec, len, t->sep, &t->header);
    if (rc) {
        fprintf(stderr, "qbert predict: error: %s:1: header: %s\n", p->source, qb_table_problem(rc));
        return QB_EXIT_FAIL;
    }
    const char *text = p->text_column;
    for (const char *const *d = (const char *const[]){"sentence", "text", "sentence1", NULL}; !text && *d; d++)
        if (column(&t->header, *d) >= 0) text = *d;
    t->text_col = text ? column(&t->header, text) : -1;
    if (t->text_col < 0) {
        char what[300];
        snprintf(what, sizeof what, text ? "'%s'" : "sentence, text or sentence1", text);
        return no_column(p, t, what, "--text-column");
    }
    const char *pair = p->pair_column ? p->pair_column : !strcmp(text, "sentence1") ? "sentence2" : "text_pair";
    t->pair_col = column(&t->header, pair);
    if (p->pair_column && t->pair_col < 0) {
        char what[300];
        snprintf(what, sizeof what, "'%s'", pair);
        return no_column(p, t, what, "--pair-column");
    }
    return QB_EXIT_OK;
}

static char *copy_field(const qb_table_row *r, int i, size_t *len) {
    *len = r->len[i];
    char *c = malloc(*len + 1);
    if (c) memcpy(c, r->field[i], *len + 1);
    return c;
}

/* A data record: its text (and pair) columns, the others carried along. */
static int table_record(predictor *p, table_input *t, const char *rec, size_t len, int lineno) {
    char msg[4400];
    int rc = qb_table_split(rec, len, t->sep, &t->row);
    if (rc || t->row.n != t->header.n) {
        if (rc) snprintf(msg, sizeof msg, "%s:%d: %s", p->source, lineno, qb_table_problem(rc));
        else snprintf(msg, sizeof msg, "%s:%d: %d fields, the header has %d", p->source, lineno, t->row.n,
                      t->header.n);
        return bad_line(p, lineno, msg);
    }
    size_t tl, pl = 0;
    char *text = copy_field(&t->row, t->text_col, &tl);
    char *pair = t->pair_col >= 0 ? copy_field(&t->row, t->pair_col, &pl) : NULL;
    json_t *extra = json_object();
    bool ok = text && (t->pair_col < 0 || pair) && extra;
    for (int i = 0; ok && i < t->row.n; i++)
        if (i != t->text_col && i != t->pair_col)
            ok = qb_json_set(extra, t->header.field[i], qb_json_strn(t->row.field[i], t->row.len[i]));
    if (!ok) {
        free(text);
        free(pair);
        json_decref(extra);
        return bad_line(p, lineno, "out of memory");
    }
    return add(p, text, tl, pair, pl, lineno, NULL, extra);
}

static bool quotes_open(const char *s, size_t n) {
    bool open = false;
    for (size_t i = 0; i < n; i++) open ^= s[i] == '"';
    return open;
}

/* A TSV/CSV record that starts with line (len bytes); a CSV record whose
 * quotes are open goes on over the next lines.  The first is the header. */
static int table_line(predictor *p, table_input *t, FILE *f, char **line, size_t *cap, size_t len, int *lineno) {
    int first = *lineno;
    size_t n = len;
    char *rec = malloc(len + 1);
    if (rec) memcpy(rec, *line, len);
    ssize_t got = 0;
    while (rec && t->sep == ',' && quotes_open(rec, n) && (got = qb_cli_getline(line, cap, f)) >= 0) {
        size_t more = qb_cli_line_len(*line, got);
        char *r = realloc(rec, n + more + 2);
        if (!r) break;
        rec = r;
        rec[n++] = '\n';
        memcpy(rec + n, *line, more);
        n += more;
        ++*lineno;
    }
    if (got == -2) {
        free(rec);
        return unreadable_line(p, *lineno + 1);
    }
    int rc = !rec ? bad_line(p, first, "out of memory")
           : first == 1 ? table_header(p, t, rec, n)
           : is_blank(rec, n) ? QB_EXIT_OK : table_record(p, t, rec, n, first);
    free(rec);
    return rc;
}

enum { FORMAT_TEXT, FORMAT_JSONL, FORMAT_TSV, FORMAT_CSV };

static int stream(predictor *p, const char *path, int format) {
    FILE *f = qb_cli_open_input("predict", path, &p->source);
    if (!f) return QB_EXIT_FAIL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = QB_EXIT_OK, lineno = 0;
    table_input t = {.sep = format == FORMAT_CSV ? ',' : '\t'};
    while (rc == QB_EXIT_OK && (got = qb_cli_getline(&line, &cap, f)) >= 0) {
        size_t len = qb_cli_line_len(line, got);
        lineno++;
        if (format == FORMAT_TSV || format == FORMAT_CSV) {
            rc = table_line(p, &t, f, &line, &cap, len, &lineno);
            continue;
        }
        if (format == FORMAT_JSONL) {
            if (!is_blank(line, len)) rc = parse_json_line(p, line, len, lineno);
            continue;
        }
        if (memchr(line, '\r', len)) { /* a file with CR-only line endings is one long line */
            char msg[4300];
            snprintf(msg, sizeof msg, "%s:%d: carriage return inside a line (CR-only line endings? convert them "
                     "to LF)", p->source, lineno);
            rc = bad_line(p, lineno, msg);
            continue;
        }
        char *text = malloc(len + 1);
        if (!text) {
            rc = bad_line(p, lineno, "out of memory");
            break;
        }
        memcpy(text, line, len);
        text[len] = 0;
        rc = add(p, text, len, NULL, 0, lineno, NULL, NULL);
    }
    if (rc == QB_EXIT_OK && got == -2) rc = unreadable_line(p, lineno + 1);
    if (rc == QB_EXIT_OK && ferror(f)) { /* what was read is still scored and written */
        if (flush(p) == QB_EXIT_OK)
            fprintf(stderr, "qbert predict: error: %s: read error after line %d\n", p->source, lineno);
        rc = QB_EXIT_FAIL;
    }
    free(line);
    free(t.header.buf);
    free(t.row.buf);
    if (f != stdin) fclose(f);
    if (rc == QB_EXIT_OK) rc = flush(p);
    if (p->n_skipped)
        fprintf(stderr, "qbert predict: %d of %d lines skipped (--on-error skip)\n", p->n_skipped, lineno);
    return rc;
}

typedef struct {
    const char *dir, *pair, *input, *input_format, *text_column, *pair_column, *fields;
    int max_length, batch, threads;
    bool json, skip_errors, aggregate;
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
        else if ((v = qb_arg_value("--aggregate", &i, argc, argv))) {
            if (strcmp(v, "simple")) return qb_usage_error("predict", "--aggregate is simple, not '%s'", v);
            a->aggregate = true;
        }
        else if ((v = qb_arg_value("--pair", &i, argc, argv))) a->pair = v;
        else if ((v = qb_arg_value("--text-column", &i, argc, argv))) a->text_column = v;
        else if ((v = qb_arg_value("--pair-column", &i, argc, argv))) a->pair_column = v;
        else if ((v = qb_arg_value("--fields", &i, argc, argv))) a->fields = v;
        else if ((v = qb_arg_value("--input", &i, argc, argv))) a->input = v;
        else if ((v = qb_arg_value("--input-format", &i, argc, argv))) {
            if (strcmp(v, "text") && strcmp(v, "jsonl") && strcmp(v, "tsv") && strcmp(v, "csv"))
                return qb_usage_error("predict", "--input-format is text, jsonl, tsv or csv, not '%s'", v);
            a->input_format = v;
        } else if ((v = qb_arg_value("--on-error", &i, argc, argv))) {
            if (strcmp(v, "stop") && strcmp(v, "skip"))
                return qb_usage_error("predict", "--on-error is stop or skip, not '%s'", v);
            a->skip_errors = !strcmp(v, "skip");
        }
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
    if (a->input_format && !a->input) return qb_usage_error("predict", "--input-format goes with --input");
    if (a->fields && !a->json) return qb_usage_error("predict", "--fields goes with --json");
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
    if (p->info.task == QB_TASK_NONE || p->info.task == QB_TASK_MLM) {
        fprintf(stderr, "qbert predict: error: %s: a bare encoder (%s) has no classification head; use 'qbert embed'\n",
                a->dir, p->info.class_name);
        return QB_EXIT_FAIL;
    }
    if (a->aggregate && p->info.task != QB_TASK_TOKEN)
        return qb_usage_error("predict", "--aggregate is for token-classification models; %s classifies sequences",
                              a->dir);
    p->batch = a->batch;
    p->json = a->json;
    p->skip_errors = a->skip_errors;
    p->in = calloc((size_t)p->batch, sizeof *p->in);
    p->enc = calloc((size_t)p->batch, sizeof *p->enc);
    p->encp = calloc((size_t)p->batch, sizeof *p->encp);
    p->slot = calloc((size_t)p->batch, sizeof *p->slot);
    p->aggregate = a->aggregate;
    p->probs = calloc((size_t)(p->info.num_labels > 0 ? p->info.num_labels : 1), sizeof *p->probs);
    p->order = calloc((size_t)(p->info.num_labels > 0 ? p->info.num_labels : 1), sizeof *p->order);
    qb_session_params sp = {.max_batch = p->batch, .max_seq = p->max_length, .n_threads = a->threads};
    qb_error err = {0};
    if (!p->in || !p->enc || !p->encp || !p->slot || !p->probs || !p->order || !words_reserve(p, 8192)) {
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
        free(p->in[k].error);
        json_decref(p->in[k].extra);
    }
    for (int k = 0; p->enc && k < p->batch; k++) qb_encoding_free(&p->enc[k]);
    free(p->slot);
    free(p->probs);
    free(p->order);
    free(p->spans);
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
        if (!t || (a->pair && !pr)) {
            free(t);
            free(pr);
            fprintf(stderr, "qbert predict: error: out of memory\n");
            return QB_EXIT_FAIL;
        }
        int rc = add(p, t, strlen(t), pr, pr ? strlen(pr) : 0, k + 1, NULL, NULL);
        if (rc) return rc;
    }
    return flush(p);
}

/* Chosen by the user or by the file's name, never by a line's first
 * character: a text may well start with '{'. */
static int input_format(const predict_args *a) {
    const char *dot = strrchr(a->input, '.'), *f = a->input_format ? a->input_format : dot ? dot + 1 : "";
    if (!strcmp(f, "jsonl") || (!a->input_format && !strcmp(f, "ndjson"))) return FORMAT_JSONL;
    return !strcmp(f, "tsv") ? FORMAT_TSV : !strcmp(f, "csv") ? FORMAT_CSV : FORMAT_TEXT;
}

/* --fields: the output fields left out; false after a usage message. */
static bool choose_fields(predictor *p, const char *list) {
    for (int f = 0; f < N_OUTPUT_FIELDS; f++) p->drop[f] = true;
    for (const char *s = list; *s;) {
        size_t n = strcspn(s, ",");
        int f = 0;
        while (f < N_OUTPUT_FIELDS && (strlen(output_fields[f]) != n || strncmp(output_fields[f], s, n))) f++;
        if (f == N_OUTPUT_FIELDS) {
            qb_usage_error("predict", "--fields: unknown field '%.*s' (text, text_pair, input_ids, token_type_ids, "
                           "logits, label, probability, scores, function_to_apply, truncated_tokens, words, tags, "
                           "token_logits, entities)", (int)n, s);
            return false;
        }
        p->drop[f] = false;
        s += n + (s[n] == ',');
    }
    return true;
}

int qb_cmd_predict(int argc, char **argv) {
    predict_args a = {.batch = 8};
    a.texts = calloc((size_t)argc, sizeof *a.texts);
    int rc = a.texts ? parse_args(argc, argv, &a) : QB_EXIT_FAIL;
    predictor p = {0};
    if (!rc && !(p.m = qb_cli_load("predict", a.dir, a.threads, NULL))) rc = QB_EXIT_FAIL;
    if (!rc) rc = setup(&p, &a);
    p.text_column = a.text_column;
    p.pair_column = a.pair_column;
    if (!rc && a.fields && !choose_fields(&p, a.fields)) rc = QB_EXIT_USAGE;
    if (!rc) rc = a.input ? stream(&p, a.input, input_format(&a)) : run_texts(&p, &a);
    teardown(&p);
    free(a.texts);
    return rc;
}
