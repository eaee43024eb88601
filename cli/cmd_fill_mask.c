/* qbert fill-mask: a masked-LM model's best tokens at each mask token of a
 * text, as Hugging Face's fill-mask pipeline ranks them (softmax over the
 * whole vocabulary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/escape.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert fill-mask MODEL_DIR TEXT [TEXT ...] [options]\n"
    "\n"
    "For every mask token in each text, the top-k tokens of a masked-LM model\n"
    "(BertForMaskedLM, RobertaForMaskedLM ...), with their softmax score over the\n"
    "vocabulary.  Write the model's own mask token: [MASK] for BERT, <mask> for\n"
    "RoBERTa (`qbert info` shows it).\n"
    "\n"
    "  --top-k K          tokens per mask (default 5)\n"
    "  --json             one object a line: {\"text\", \"input_ids\", \"masks\": [{\"position\",\n"
    "                     \"top\": [{\"token_id\", \"token\", \"token_str\", \"score\",\n"
    "                     \"logit\"}]}]}; token_str is the token decoded\n"
    "  --max-length L     truncate to L tokens, special tokens included\n"
    "  --threads N        compute threads (default: all cores)\n";

typedef struct {
    const char *dir;
    char **texts;
    int n_texts, top_k, max_length, threads;
    bool json;
} fill_args;

static int parse_args(int argc, char **argv, fill_args *a) {
    *a = (fill_args){.top_k = 5};
    a->texts = calloc((size_t)argc, sizeof *a->texts);
    if (!a->texts) return QB_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--json")) a->json = true;
        else if ((v = qb_arg_value("--top-k", &i, argc, argv))) {
            if (!qb_arg_int("fill-mask", "--top-k", v, 1, 1 << 24, &a->top_k)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("fill-mask", "--max-length", v, 2, 1 << 20, &a->max_length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("fill-mask", "--threads", v, 1, 1024, &a->threads)) return QB_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) return qb_usage_error("fill-mask", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else a->texts[a->n_texts++] = argv[i];
    }
    if (!a->dir) return qb_usage_error("fill-mask", "missing MODEL_DIR");
    if (!a->n_texts) return qb_usage_error("fill-mask", "give at least one text with a mask token");
    return QB_EXIT_OK;
}

typedef struct {
    float logit;
    int32_t id;
} ranked;

/* Highest logit first; ties: the lower id, as torch.topk on the reference. */
static int by_logit(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->logit != b->logit) return a->logit < b->logit ? 1 : -1;
    return a->id < b->id ? -1 : a->id > b->id;
}

typedef struct {
    qb_model *m;
    qb_session *s;
    qb_model_info info;
    int max_length, top_k;
    bool json;
    float *logits, *probs; /* [vocab] */
    ranked *order;         /* [vocab] */
    qb_encoding enc;
} filler;

/* Ranks the vocabulary at position pos of the last run into f->order. */
static bool rank_position(filler *f, int pos, qb_error *err) {
    int V = f->info.vocab_size;
    if (qb_session_mlm_logits(f->s, 0, pos, f->logits, err)) return false;
    qb_softmax(f->logits, V, f->probs);
    for (int v = 0; v < V; v++) f->order[v] = (ranked){f->logits[v], v};
    qsort(f->order, (size_t)V, sizeof *f->order, by_logit);
    return true;
}

/* The token as text, as the pipeline's token_str (tokenizer.decode([id])):
 * " Construct" for RoBERTa's "ĠConstruct". */
static const char *token_str(const filler *f, int32_t id, char *buf, size_t cap) {
    qb_error err = {0};
    size_t len;
    if (qb_detokenize(f->m, &id, 1, 0, buf, cap, &len, &err)) return qb_token_text(f->m, id);
    return buf;
}

/* {"position", "top": [{"token_id", "token", "token_str", "score", "logit"}]} of the ranked position. */
static json_t *mask_json(const filler *f, int pos) {
    json_t *top = json_array(), *m = json_object();
    bool ok = top && m;
    for (int k = 0; ok && k < f->top_k; k++) {
        int32_t id = f->order[k].id;
        const char *tok = qb_token_text(f->m, id);
        char buf[256];
        const char *str = token_str(f, id, buf, sizeof buf);
        json_t *o = json_object();
        ok = o && qb_json_set_int(o, "token_id", id) && qb_json_set_str(o, "token", tok ? tok : "") &&
             qb_json_set_str(o, "token_str", str ? str : "") &&
             qb_json_set_real(o, "score", f->probs[id]) && qb_json_set_real(o, "logit", f->logits[id]);
        ok = qb_json_push(top, qb_json_built(o, ok));
    }
    ok = ok && qb_json_set_int(m, "position", pos);
    if (!ok) json_decref(top);
    ok = ok && qb_json_set(m, "top", top);
    return qb_json_built(m, ok);
}

static void print_top(const filler *f, int pos) {
    printf("  %s at token %d:\n", qb_token_text(f->m, f->info.mask_token_id), pos);
    for (int k = 0; k < f->top_k; k++) {
        int32_t id = f->order[k].id;
        char esc[256], buf[256];
        const char *str = token_str(f, id, buf, sizeof buf), *shown = str ? qb_escape_str(esc, sizeof esc, str) : "?";
        int width = 0; /* characters, not bytes, so the scores line up */
        for (const char *c = shown; *c; c++) width += ((unsigned char)*c & 0xC0) != 0x80;
        printf("    %s%*s %8.4f  (id %d, logit %.4f)\n", shown, width < 20 ? 20 - width : 0, "",
               (double)f->probs[id], id, (double)f->logits[id]);
    }
}

static int count_masks(const filler *f, const qb_encoding *e) {
    int n = 0;
    for (int pos = 0; pos < e->n; pos++) n += e->input_ids[pos] == f->info.mask_token_id;
    return n;
}

/* Masks that truncation cut off are not filled: the user is told how many. */
static void note_cut_masks(const filler *f, const char *text, int n, int kept) {
    qb_encoding all = {0};
    qb_error err = {0};
    if (f->enc.n_truncated > 0 && !qb_tokenize(f->m, text, strlen(text), NULL, 0, f->enc.n + f->enc.n_truncated,
                                               &all, &err)) {
        int cut = count_masks(f, &all) - kept;
        if (cut > 0)
            fprintf(stderr, "qbert fill-mask: note: text %d: %d of its masks lie past its first %d tokens "
                            "(--max-length) and are not filled\n", n, cut, f->enc.n);
    }
    qb_encoding_free(&all);
}

/* One text: tokenize, run, rank every mask position, print. */
static int fill_one(filler *f, const char *text, int n) {
    qb_error err = {0};
    const qb_encoding *encp = &f->enc;
    if (qb_tokenize(f->m, text, strlen(text), NULL, 0, f->max_length, &f->enc, &err) ||
        qb_session_run_encodings(f->s, &encp, 1, &err)) {
        fprintf(stderr, "qbert fill-mask: error: text %d: %s\n", n, err.msg);
        return QB_EXIT_FAIL;
    }
    int any = count_masks(f, &f->enc);
    note_cut_masks(f, text, n, any);
    if (!any) {
        fprintf(stderr, "qbert fill-mask: error: text %d: no %s (the model's mask token) in its first %d tokens\n", n,
                qb_token_text(f->m, f->info.mask_token_id), f->enc.n);
        return QB_EXIT_FAIL;
    }
    json_t *masks = f->json ? json_array() : NULL;
    bool ok = !f->json || masks;
    if (!f->json) { /* a terminal is not to obey the text's control characters */
        qb_escape_write(stdout, text, strlen(text));
        putchar('\n');
    }
    for (int pos = 0; ok && pos < f->enc.n; pos++) {
        if (f->enc.input_ids[pos] != f->info.mask_token_id) continue;
        if (!rank_position(f, pos, &err)) {
            json_decref(masks);
            return qb_report_error("fill-mask", &err);
        }
        if (f->json) ok = qb_json_push(masks, mask_json(f, pos));
        else print_top(f, pos);
    }
    if (!f->json) return QB_EXIT_OK;
    json_t *o = json_object();
    ok = ok && o && qb_json_set_str(o, "text", text) &&
         qb_json_set(o, "input_ids", qb_json_ints(f->enc.input_ids, f->enc.n));
    if (!ok) json_decref(masks);
    ok = ok && qb_json_set(o, "masks", masks);
    return qb_json_emit(stdout, o, ok, QB_JSON_LINE | QB_JSON_DIGITS9) ? QB_EXIT_OK : QB_EXIT_FAIL;
}

static int setup(filler *f, const fill_args *a) {
    qb_error err = {0};
    qb_model_get_info(f->m, &f->info);
    if (f->info.task != QB_TASK_MLM) {
        fprintf(stderr, "qbert fill-mask: error: %s: %s has no masked-LM head (need *ForMaskedLM)\n", a->dir,
                f->info.class_name);
        return QB_EXIT_FAIL;
    }
    if (f->info.mask_token_id < 0) {
        fprintf(stderr, "qbert fill-mask: error: %s: the tokenizer has no mask token ([MASK] or <mask>)\n", a->dir);
        return QB_EXIT_FAIL;
    }
    f->max_length = qb_model_max_length(f->m, a->max_length);
    if (f->max_length > f->info.max_position)
        return qb_usage_error("fill-mask", "--max-length %d exceeds the model's %d positions", f->max_length,
                              f->info.max_position);
    f->top_k = a->top_k < f->info.vocab_size ? a->top_k : f->info.vocab_size;
    f->json = a->json;
    qb_session_params sp = {.max_batch = 1, .max_seq = f->max_length, .n_threads = a->threads};
    if (qb_session_create(f->m, &sp, &f->s, &err)) return qb_report_error("fill-mask", &err);
    size_t V = (size_t)f->info.vocab_size;
    f->logits = malloc(V * sizeof *f->logits);
    f->probs = malloc(V * sizeof *f->probs);
    f->order = malloc(V * sizeof *f->order);
    if (!f->logits || !f->probs || !f->order) return fputs("qbert fill-mask: error: out of memory\n", stderr), QB_EXIT_FAIL;
    return QB_EXIT_OK;
}

int qb_cmd_fill_mask(int argc, char **argv) {
    fill_args a;
    filler f = {0};
    int rc = parse_args(argc, argv, &a);
    if (!rc && !(f.m = qb_cli_load("fill-mask", a.dir, a.threads, NULL))) rc = QB_EXIT_FAIL;
    if (!rc) rc = setup(&f, &a);
    for (int i = 0; !rc && i < a.n_texts; i++) rc = fill_one(&f, a.texts[i], i + 1);
    if (!rc && fflush(stdout)) rc = QB_EXIT_FAIL;
    qb_encoding_free(&f.enc);
    free(f.logits);
    free(f.probs);
    free(f.order);
    qb_session_free(f.s);
    qb_model_free(f.m);
    free(a.texts);
    return rc;
}
