/* qbert embed: sentence embeddings of texts given on the command line or
 * read from a file, pooled as the model directory's sentence-transformers
 * modules say (or as the flags override), written as JSON lines or one
 * float32 .npy array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/fs.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert embed MODEL_DIR TEXT [TEXT ...] [options]\n"
    "       qbert embed MODEL_DIR --input FILE|- [options]\n"
    "\n"
    "Sentence embeddings: the encoder's last hidden states pooled over each text's\n"
    "tokens ([CLS] and [SEP] included, padding never), optionally L2-normalized.\n"
    "Works on bare encoders (BertModel, sentence-transformers directories) and on\n"
    "classifiers, whose head is then not run.\n"
    "\n"
    "By default the directory's sentence-transformers files decide: modules.json\n"
    "(a Normalize module normalizes), 1_Pooling/config.json (the pooling modes),\n"
    "sentence_bert_config.json (max_seq_length), config_sentence_transformers.json\n"
    "(default_prompt_name: the prompt put before every text).  Without them: mean\n"
    "pooling, no normalization, no prompt.  The flags override:\n"
    "\n"
    "  --input FILE|-     read texts from FILE or stdin, one a line (an empty line is\n"
    "                     the empty text); outputs keep input order\n"
    "  --pooling P        cls, mean, max, mean_sqrt_len, weightedmean, lasttoken, or\n"
    "                     several joined by '+', each once (concatenated in\n"
    "                     sentence-transformers' order, cls, max, mean,\n"
    "                     mean_sqrt_len, weightedmean, lasttoken, whatever order\n"
    "                     they are given in: cls+mean is 2 x hidden wide)\n"
    "  --normalize        L2-normalize each embedding; --no-normalize: do not\n"
    "  --max-length L     truncate to L tokens, [CLS]/[SEP] included\n"
    "  --prompt-name P    put the model's prompt P (config_sentence_transformers.json's\n"
    "                     \"prompts\", e.g. query) before each text, as\n"
    "                     sentence-transformers' encode(prompt_name=P) does; the\n"
    "                     output's \"text\" stays the text given; --no-prompt: none\n"
    "  --format F         jsonl (default): one object a line, {\"text\", \"input_ids\",\n"
    "                     \"embedding\"}; npy: one float32 [n, dim] array (needs -o)\n"
    "  -o OUT             write to OUT (through a temporary file renamed when\n"
    "                     complete) instead of stdout; -o - is stdout (npy too)\n"
    "  --batch B          texts run together (default 32)\n"
    "  --threads N        compute threads (default: all cores)\n";

typedef struct {
    const char *dir, *input, *pooling, *format, *out, *prompt_name;
    bool no_prompt;
    char **texts;
    int n_texts;
    int normalize; /* -1: the model's */
    int max_length, batch, threads;
} embed_args;

/* Texts and where they came from, for messages. */
typedef struct {
    char **text;
    size_t *len;
    int n, cap;
    const char *source;
} text_list;

static bool list_add(text_list *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **t = realloc(l->text, (size_t)cap * sizeof *t);
        if (t) l->text = t;
        size_t *len = realloc(l->len, (size_t)cap * sizeof *len);
        if (len) l->len = len;
        if (!t || !len) return false;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (!c) return false;
    memcpy(c, s, n);
    c[n] = 0;
    l->text[l->n] = c;
    l->len[l->n++] = n;
    return true;
}

static void list_free(text_list *l) {
    for (int i = 0; i < l->n; i++) free(l->text[i]);
    free(l->text);
    free(l->len);
}

static int read_texts(const char *path, text_list *l) {
    FILE *f = qb_cli_open_input("embed", path, &l->source);
    if (!f) return QB_EXIT_FAIL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = QB_EXIT_OK;
    while (!rc && (got = qb_cli_getline(&line, &cap, f)) >= 0) {
        if (!list_add(l, line, qb_cli_line_len(line, got))) {
            fprintf(stderr, "qbert embed: error: %s: out of memory at line %d\n", l->source, l->n + 1);
            rc = QB_EXIT_FAIL;
        }
    }
    if (!rc && got == -2) {
        fprintf(stderr, "qbert embed: error: %s:%d: %s\n", l->source, l->n + 1, qb_cli_line_error());
        rc = QB_EXIT_FAIL;
    } else if (!rc && ferror(f)) {
        fprintf(stderr, "qbert embed: error: %s: read error after line %d\n", l->source, l->n);
        rc = QB_EXIT_FAIL;
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

static int parse_args(int argc, char **argv, embed_args *a) {
    *a = (embed_args){.normalize = -1, .batch = 32, .threads = 0, .format = "jsonl"};
    a->texts = calloc((size_t)argc, sizeof *a->texts);
    if (!a->texts) return QB_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            exit(QB_EXIT_OK);
        } else if (!strcmp(argv[i], "--normalize")) a->normalize = 1;
        else if (!strcmp(argv[i], "--no-normalize")) a->normalize = 0;
        else if (!strcmp(argv[i], "--no-prompt")) a->no_prompt = true;
        else if ((v = qb_arg_value("--prompt-name", &i, argc, argv))) a->prompt_name = v;
        else if ((v = qb_arg_value("--input", &i, argc, argv))) a->input = v;
        else if ((v = qb_arg_value("--pooling", &i, argc, argv))) a->pooling = v;
        else if ((v = qb_arg_value("--format", &i, argc, argv))) a->format = v;
        else if ((v = qb_arg_path("-o", &i, argc, argv))) a->out = v;
        else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("embed", "--max-length", v, 2, 1 << 20, &a->max_length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--batch", &i, argc, argv))) {
            if (!qb_arg_int("embed", "--batch", v, 1, 4096, &a->batch)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("embed", "--threads", v, 1, 1024, &a->threads)) return QB_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1]) return qb_usage_error("embed", "unknown option '%s'", argv[i]);
        else if (!a->dir) a->dir = argv[i];
        else a->texts[a->n_texts++] = argv[i];
    }
    if (!a->dir) return qb_usage_error("embed", "missing MODEL_DIR");
    if (!a->input && !a->n_texts) return qb_usage_error("embed", "give texts, or --input FILE|-");
    if (a->input && a->n_texts) return qb_usage_error("embed", "give texts or --input, not both");
    if (strcmp(a->format, "jsonl") && strcmp(a->format, "npy"))
        return qb_usage_error("embed", "--format is jsonl or npy, not '%s'", a->format);
    if (!strcmp(a->format, "npy") && !a->out) return qb_usage_error("embed", "--format npy needs -o OUT");
    if (a->no_prompt && a->prompt_name) return qb_usage_error("embed", "give --prompt-name or --no-prompt, not both");
    if (a->pooling && !qb_pooling_parse(a->pooling))
        return qb_usage_error("embed", "--pooling: '%s' is not distinct modes (cls, mean, max, mean_sqrt_len, "
                              "weightedmean, lasttoken, joined by '+')", a->pooling);
    return QB_EXIT_OK;
}

/* The .npy format, version 1.0: magic, a little-endian header length, a
 * Python dict literal padded with spaces to a multiple of 64 bytes. */
static char *npy_bytes(const float *v, int n, int dim, size_t *size) {
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, dim);
    size_t header = ((size_t)10 + dl + 1 + 63) / 64 * 64, data = (size_t)n * dim * sizeof(float);
    char *b = malloc(header + data + 1);
    if (!b) return NULL;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (char)((header - 10) & 0xff);
    b[9] = (char)((header - 10) >> 8);
    memset(b + 10, ' ', header - 10);
    memcpy(b + 10, dict, (size_t)dl);
    b[header - 1] = '\n';
    memcpy(b + header, v, data); /* x86 and ARM Linux are little-endian, as '<f4' says */
    *size = header + data;
    return b;
}

typedef struct {
    qb_model *m;
    qb_session *s;
    int max_length, dim, batch;
    bool npy;
    FILE *out;       /* jsonl lines */
    float *all;      /* npy: [n, dim] */
    size_t prompt_len;
    char *prompted;  /* the prompt, then room for the longest text */
    qb_encoding *enc;
    const qb_encoding **encp;
} embedder;

static bool write_line(embedder *e, const char *text, size_t len, const qb_encoding *enc, const float *v) {
    json_t *o = json_object();
    bool ok = o && qb_json_set(o, "text", qb_json_strn(text, len)) &&
              qb_json_set(o, "input_ids", qb_json_ints(enc->input_ids, enc->n)) &&
              qb_json_set(o, "embedding", qb_json_floats(v, e->dim));
    return qb_json_emit(e->out, o, ok, QB_JSON_LINE | QB_JSON_DIGITS9);
}

/* Texts [at, at + n): tokenize, run as one batch, write. */
static int embed_batch(embedder *e, const text_list *l, int at, int n) {
    qb_error err = {0};
    for (int k = 0; k < n; k++) {
        int i = at + k;
        const char *text = l->text[i];
        size_t len = l->len[i];
        if (e->prompted) {
            memcpy(e->prompted + e->prompt_len, text, len);
            text = e->prompted, len += e->prompt_len;
        }
        if (qb_tokenize(e->m, text, len, NULL, 0, e->max_length, &e->enc[k], &err)) {
            if (l->source) fprintf(stderr, "qbert embed: error: %s:%d: %s\n", l->source, i + 1, err.msg);
            else fprintf(stderr, "qbert embed: error: text %d: %s\n", i + 1, err.msg);
            return QB_EXIT_FAIL;
        }
        e->encp[k] = &e->enc[k];
    }
    if (qb_session_run_encodings(e->s, e->encp, n, &err)) return qb_report_error("embed", &err);
    for (int k = 0; k < n; k++) {
        const float *v = qb_session_embedding(e->s, k);
        if (e->npy) memcpy(e->all + (size_t)(at + k) * e->dim, v, (size_t)e->dim * sizeof(float));
        else if (!write_line(e, l->text[at + k], l->len[at + k], &e->enc[k], v)) {
            fprintf(stderr, "qbert embed: error: %s: write failed\n", "output");
            return QB_EXIT_FAIL;
        }
    }
    return QB_EXIT_OK;
}

/* The prompt, copied once ahead of the room each text is copied into. */
static int setup_prompt(embedder *e, const embed_args *a, const text_list *l) {
    qb_error err = {0};
    const char *prompt = NULL;
    if (!a->no_prompt && qb_model_prompt(e->m, a->prompt_name, &prompt, &err)) return qb_report_error("embed", &err);
    if (!prompt || !*prompt) return QB_EXIT_OK;
    size_t longest = 0;
    for (int i = 0; i < l->n; i++) longest = l->len[i] > longest ? l->len[i] : longest;
    e->prompt_len = strlen(prompt);
    if (!(e->prompted = malloc(e->prompt_len + longest + 1)))
        return fputs("qbert embed: error: out of memory\n", stderr), QB_EXIT_FAIL;
    memcpy(e->prompted, prompt, e->prompt_len);
    return QB_EXIT_OK;
}

static int setup(embedder *e, const embed_args *a) {
    qb_error err = {0};
    qb_embed_params p = qb_model_embed_params(e->m);
    if (a->pooling) p.pooling = qb_pooling_parse(a->pooling);
    if (a->normalize >= 0) p.normalize = a->normalize;
    if (a->max_length) p.max_length = a->max_length;
    qb_model_info info;
    qb_model_get_info(e->m, &info);
    e->max_length = qb_model_max_length(e->m, p.max_length);
    if (e->max_length > info.max_position) {
        fprintf(stderr, "qbert embed: error: --max-length %d exceeds the model's %d positions\n", e->max_length,
                info.max_position);
        return QB_EXIT_USAGE;
    }
    e->dim = qb_embed_dim(e->m, p.pooling);
    qb_session_params sp = {.max_batch = e->batch, .max_seq = e->max_length, .n_threads = a->threads};
    if (qb_session_create(e->m, &sp, &e->s, &err) || qb_session_set_pooling(e->s, &p, &err))
        return qb_report_error("embed", &err);
    e->enc = calloc((size_t)e->batch, sizeof *e->enc);
    e->encp = calloc((size_t)e->batch, sizeof *e->encp);
    if (!e->enc || !e->encp) return fputs("qbert embed: error: out of memory\n", stderr), QB_EXIT_FAIL;
    return QB_EXIT_OK;
}

/* Runs every text; the output file appears only when all of it is written.
 * out NULL or "-": standard output (npy too, for a pipe). */
static int run(embedder *e, const text_list *l, const char *out) {
    char *mem = NULL;
    size_t mem_size = 0;
    bool to_stdout = !out || !strcmp(out, "-");
    if (e->npy) e->all = malloc((size_t)l->n * e->dim * sizeof(float) + 1);
    else e->out = to_stdout ? stdout : open_memstream(&mem, &mem_size);
    if (e->npy ? !e->all : !e->out) return fputs("qbert embed: error: out of memory\n", stderr), QB_EXIT_FAIL;
    int rc = QB_EXIT_OK;
    for (int at = 0; !rc && at < l->n; at += e->batch)
        rc = embed_batch(e, l, at, l->n - at < e->batch ? l->n - at : e->batch);
    if (e->out == stdout) return fflush(stdout) ? QB_EXIT_FAIL : rc;
    if (e->out) fclose(e->out);
    char *data = mem;
    size_t size = mem_size;
    if (!rc && e->npy && !(data = npy_bytes(e->all, l->n, e->dim, &size)))
        rc = (fputs("qbert embed: error: out of memory\n", stderr), QB_EXIT_FAIL);
    qb_error err = {0};
    if (!rc && to_stdout && (fwrite(data, 1, size, stdout) != size || fflush(stdout)))
        rc = (fputs("qbert embed: error: writing standard output failed\n", stderr), QB_EXIT_FAIL);
    else if (!rc && !to_stdout && qb_file_write_atomic(out, data, size, &err)) rc = qb_report_error("embed", &err);
    if (data != mem) free(data);
    free(mem);
    return rc;
}

int qb_cmd_embed(int argc, char **argv) {
    embed_args a;
    int rc = parse_args(argc, argv, &a);
    text_list l = {0};
    embedder e = {.batch = a.batch, .npy = a.format && !strcmp(a.format, "npy")};
    if (!rc && a.input) rc = read_texts(a.input, &l);
    for (int i = 0; !rc && i < a.n_texts; i++)
        if (!list_add(&l, a.texts[i], strlen(a.texts[i]))) rc = QB_EXIT_FAIL;
    if (!rc && !(e.m = qb_cli_load("embed", a.dir, a.threads, NULL))) rc = QB_EXIT_FAIL;
    qb_error err = {0};
    if (!rc && a.out && strcmp(a.out, "-") && qb_model_check_output(e.m, a.out, &err))
        rc = qb_report_error("embed", &err);
    if (!rc) rc = setup(&e, &a);
    if (!rc) rc = setup_prompt(&e, &a, &l);
    if (!rc && a.out) qb_cli_discard_on_interrupt("embed", a.out, NULL);
    if (!rc) rc = run(&e, &l, a.out);
    for (int k = 0; e.enc && k < e.batch; k++) qb_encoding_free(&e.enc[k]);
    free(e.enc);
    free(e.encp);
    free(e.all);
    free(e.prompted);
    qb_session_free(e.s);
    qb_model_free(e.m);
    list_free(&l);
    free(a.texts);
    return rc;
}
