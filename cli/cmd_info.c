/* qbert info: what a checkpoint holds, without running it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/escape.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert info MODEL_DIR [--linears] [--tensors] [--max-batch B --max-length L [--threads N]] [--json]\n"
    "\n"
    "Prints the architecture, shapes, parameter count, file size, tokenizer, labels\n"
    "and the kernel set this CPU will use.  The model is loaded as every command\n"
    "loads it (weights the kernels read packed are packed, on the command's\n"
    "threads), in the load time shown.\n"
    "\n"
    "  --linears  also list every linear layer with its weight format and shape\n"
    "  --tensors  also list every tensor with its dtype and shape\n"
    "  --max-batch B, --max-length L, --threads N\n"
    "             also the memory running the model with a session for B rows of\n"
    "             up to L tokens on N threads (default: all cores) takes, what\n"
    "             predict --batch B --max-length L needs, to check a small board:\n"
    "               weights held: copies the load made (FP32, int8 and low-bit\n"
    "                 weights packed for the kernels, converted or realigned\n"
    "                 tensors)\n"
    "               weights mapped: pages of model.safetensors every run reads\n"
    "                 whole (biases, norms, FP32 weights the kernels read as\n"
    "                 stored), in the kernel's 64 KiB fault-around windows;\n"
    "                 bytes a packed copy replaced are not resident\n"
    "               embeddings: the first L position rows, and the word table\n"
    "                 where a tied MLM head reads it whole (otherwise its rows\n"
    "                 are read from the file one token at a time, mapping none)\n"
    "               tokenizer: its vocabulary tables\n"
    "               session: activations and kernel scratch (qb_session_bytes)\n"
    "             Not counted: the process's own baseline (code, libc, thread\n"
    "             stacks, the pages of code a run touches): what the same bench\n"
    "             peaks at on a model of a few KB (tests/test_memory.sh), about\n"
    "             1 MB more than `qbert --version` peaks at.\n"
    "  --json     one JSON object instead of text\n";

static void shape_str(const qb_tensor_info *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static json_t *linears_json(const qb_model *m) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < qb_model_linear_count(m); i++) {
        double bits;
        int out, in;
        const char *fmt = qb_model_linear_format(m, i, &bits, &out, &in);
        json_t *l = json_object();
        ok = l && qb_json_set_str(l, "name", qb_model_linear_name(m, i)) && qb_json_set_str(l, "format", fmt) &&
             qb_json_set_real(l, "bits", bits) && qb_json_set_int(l, "out", out) && qb_json_set_int(l, "in", in);
        ok = qb_json_push(arr, l) && ok;
    }
    return qb_json_built(arr, ok);
}

static void print_linears(const qb_model *m) {
    printf("\n%-64s %-20s %6s %s\n", "linear", "format", "bits", "shape [out, in]");
    for (int i = 0; i < qb_model_linear_count(m); i++) {
        double bits;
        int out, in;
        const char *fmt = qb_model_linear_format(m, i, &bits, &out, &in);
        char esc[1024];
        printf("%-64s %-20s %6.3f [%d, %d]\n", qb_escape_str(esc, sizeof esc, qb_model_linear_name(m, i)), fmt, bits,
               out, in);
    }
}

/* The session --max-batch and --max-length ask for, or none. */
typedef struct {
    int batch, length, threads;
    size_t bytes;
    qb_model_memory model; /* what the model keeps resident for that session */
} session_size;

/* config.json's id2label (or Hugging Face's default LABEL_0, LABEL_1) means
 * nothing to a bare encoder or a masked-LM head. */
static bool has_labels(const qb_model_info *in) {
    return in->task == QB_TASK_SEQUENCE || in->task == QB_TASK_TOKEN;
}

/* What qbert embed does by default: the sentence-transformers layout, or
 * mean pooling over the whole model length. */
static void print_embedding(const qb_model *m) {
    qb_embed_params e = qb_model_embed_params(m);
    char pooling[96], text[256];
    printf("embedding    %s pooling, %s, %d tokens\n", qb_pooling_format(e.pooling, pooling, sizeof pooling),
           e.normalize ? "normalized" : "not normalized", qb_model_max_length(m, e.max_length));
    const char *name, *prompt;
    int is_default, i;
    for (i = 0; (name = qb_model_prompt_at(m, i, &prompt, &is_default)); i++) {
        printf("%s", i ? ", " : "prompts      ");
        qb_escape_write(stdout, name, strlen(name));
        printf(" \"%s\"%s", qb_escape_str(text, sizeof text, prompt), is_default ? " (default)" : "");
    }
    if (i) printf("\n");
}

static void print_text(const qb_model *m, const qb_model_info *in, const char *dir, double load_s, bool linears,
                       bool tensors, const session_size *ss) {
    printf("model        %s\n", dir);
    printf("architecture %s (%s), %s\n", in->class_name, in->model_type,
           in->task == QB_TASK_TOKEN  ? "token-classification head"
           : in->task == QB_TASK_NONE ? "no head (bare encoder: qbert embed)"
           : in->task == QB_TASK_MLM  ? "masked-LM head (qbert fill-mask, qbert embed)"
                                      : "sequence-classification head");
    printf("layers       %d x (hidden %d, heads %d, intermediate %d, %s)\n", in->num_layers, in->hidden_size,
           in->num_heads, in->intermediate_size, in->hidden_act);
    if (in->arch == QB_ARCH_ALBERT)
        printf("albert       embedding %d -> hidden %d, %d group(s) x %d inner layer(s), shared across layers\n",
               in->embedding_size, in->hidden_size, in->num_hidden_groups, in->inner_group_num);
    else if (in->embedding_size != in->hidden_size)
        printf("embeddings   %d, projected to hidden %d\n", in->embedding_size, in->hidden_size);
    printf("vocabulary   %d tokens, %d positions, %d token types, layer_norm_eps %g\n", in->vocab_size,
           in->max_position, in->type_vocab_size, (double)in->layer_norm_eps);
    printf("parameters   %lld (%.1f M)\n", (long long)in->n_params, in->n_params / 1e6);
    printf("file         model.safetensors, %lld bytes (%.1f MB), %d tensors\n", (long long)in->file_bytes,
           in->file_bytes / 1e6, in->n_tensors);
    printf("precision    %s\n", qb_model_quant_summary(m));
    printf("tokenizer    %s\n", in->tokenizer);
    if (in->task == QB_TASK_MLM && in->mask_token_id >= 0)
        printf("mask token   %s (id %d)\n", qb_token_text(m, in->mask_token_id), in->mask_token_id);
    if (!has_labels(in)) print_embedding(m);
    if (has_labels(in)) {
        printf("labels       %d:", in->num_labels);
        for (int i = 0; i < in->num_labels; i++) {
            const char *l = qb_model_label(m, i);
            printf(" %d=", i);
            qb_escape_write(stdout, l, strlen(l));
        }
    } else printf("labels       none (the head has no classes)");
    printf("\nkernels      %s\n", in->isa);
    printf("load time    %.1f ms\n", load_s * 1e3);
    if (ss->bytes) {
        printf("session      %.1f MB for batch %d x length %d\n", ss->bytes / 1e6, ss->batch, ss->length);
        printf("memory       %.1f MB: weights %.1f MB held + %.1f MB mapped, embeddings %.1f MB, tokenizer %.1f MB, "
               "session %.1f MB\n", (ss->model.total + ss->bytes) / 1e6, ss->model.held / 1e6,
               ss->model.mapped / 1e6, ss->model.embeddings / 1e6, ss->model.tokenizer / 1e6, ss->bytes / 1e6);
    }
    if (linears) print_linears(m);
    if (!tensors) return;
    printf("\n%-64s %-5s %s\n", "tensor", "dtype", "shape");
    for (int i = 0; i < in->n_tensors; i++) {
        qb_tensor_info t;
        char shape[96], name[1024];
        qb_model_tensor(m, i, &t);
        shape_str(&t, shape, sizeof shape);
        printf("%-64s %-5s %s\n", qb_escape_str(name, sizeof name, t.name), t.dtype, shape);
    }
}

static json_t *tensors_json(const qb_model *m, int n) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < n; i++) {
        qb_tensor_info t;
        qb_model_tensor(m, i, &t);
        json_t *o = json_object(), *shape = json_array();
        ok = o && shape && qb_json_set_str(o, "name", t.name) && qb_json_set_str(o, "dtype", t.dtype);
        for (int d = 0; ok && d < t.ndim; d++) ok = qb_json_push(shape, json_integer(t.shape[d]));
        ok = qb_json_set(o, "shape", shape) && ok;
        ok = qb_json_push(arr, o) && ok;
    }
    return qb_json_built(arr, ok);
}

static json_t *labels_json(const qb_model *m, int n) {
    json_t *arr = json_array();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < n; i++) {
        const char *l = qb_model_label(m, i);
        ok = qb_json_push(arr, qb_json_strn(l, strlen(l)));
    }
    return qb_json_built(arr, ok);
}

static json_t *embedding_json(const qb_model *m) {
    qb_embed_params e = qb_model_embed_params(m);
    char pooling[96];
    json_t *o = json_object(), *prompts = json_object();
    const char *name, *prompt, *def = NULL;
    int is_default;
    bool ok = prompts != NULL;
    for (int i = 0; ok && (name = qb_model_prompt_at(m, i, &prompt, &is_default)); i++) {
        ok = qb_json_set_str(prompts, name, prompt);
        if (is_default) def = name;
    }
    /* qb_json_set takes its value, set or not */
    ok = qb_json_set(o, "prompts", qb_json_built(prompts, ok)) &&
         qb_json_set(o, "default_prompt_name", def ? json_string(def) : json_null()) &&
         qb_json_set_str(o, "pooling", qb_pooling_format(e.pooling, pooling, sizeof pooling)) &&
         qb_json_set(o, "normalize", json_boolean(e.normalize)) &&
         qb_json_set_int(o, "max_length", qb_model_max_length(m, e.max_length));
    return qb_json_built(o, ok);
}

static bool set_shapes(json_t *o, const qb_model_info *in) {
    return qb_json_set_int(o, "num_layers", in->num_layers) && qb_json_set_int(o, "hidden_size", in->hidden_size) &&
           qb_json_set_int(o, "num_heads", in->num_heads) &&
           qb_json_set_int(o, "intermediate_size", in->intermediate_size) &&
           qb_json_set_int(o, "embedding_size", in->embedding_size) &&
           qb_json_set_int(o, "num_hidden_groups", in->num_hidden_groups) &&
           qb_json_set_int(o, "inner_group_num", in->inner_group_num) && qb_json_set_int(o, "vocab_size", in->vocab_size) &&
           qb_json_set_int(o, "max_position", in->max_position) &&
           qb_json_set_int(o, "type_vocab_size", in->type_vocab_size) &&
           qb_json_set_real(o, "layer_norm_eps", in->layer_norm_eps);
}

static void print_json(const qb_model *m, const qb_model_info *in, const char *dir, double load_s, bool linears,
                       bool tensors, const session_size *ss) {
    json_t *o = json_object();
    bool ok = o && qb_json_set_str(o, "model_dir", dir) && qb_json_set_str(o, "model_type", in->model_type) &&
              qb_json_set_str(o, "class", in->class_name) &&
              qb_json_set_str(o, "task", in->task == QB_TASK_TOKEN  ? "token"
                                         : in->task == QB_TASK_NONE ? "none"
                                         : in->task == QB_TASK_MLM  ? "mlm"
                                                                    : "sequence") &&
              qb_json_set_str(o, "hidden_act", in->hidden_act) && qb_json_set_str(o, "tokenizer", in->tokenizer) &&
              qb_json_set_str(o, "isa", in->isa) && qb_json_set_str(o, "precision", qb_model_quant_summary(m)) &&
              set_shapes(o, in) && qb_json_set_int(o, "n_params", in->n_params) &&
              qb_json_set_int(o, "file_bytes", in->file_bytes) && qb_json_set_int(o, "n_tensors", in->n_tensors) &&
              qb_json_set_real(o, "load_ms", load_s * 1e3) &&
              qb_json_set(o, "labels", labels_json(m, has_labels(in) ? in->num_labels : 0)) &&
              qb_json_set(o, "embedding", embedding_json(m));
    if (ok && ss->bytes)
        ok = qb_json_set_int(o, "session_bytes", (int64_t)ss->bytes) &&
             qb_json_set_int(o, "weights_held_bytes", (int64_t)ss->model.held) &&
             qb_json_set_int(o, "weights_mapped_bytes", (int64_t)ss->model.mapped) &&
             qb_json_set_int(o, "embeddings_bytes", (int64_t)ss->model.embeddings) &&
             qb_json_set_int(o, "tokenizer_bytes", (int64_t)ss->model.tokenizer) &&
             qb_json_set_int(o, "memory_bytes", (int64_t)(ss->model.total + ss->bytes));
    if (ok && tensors) ok = qb_json_set(o, "tensors", tensors_json(m, in->n_tensors));
    if (ok && linears) ok = qb_json_set(o, "linears", linears_json(m));
    qb_cli_put_json("info", o, ok);
}

/* Creates the session (its memory is allocated, not touched) to read its size. */
static int session_measure(const qb_model *m, session_size *ss) {
    qb_session_params sp = {.max_batch = ss->batch, .max_seq = ss->length, .n_threads = ss->threads};
    qb_session *s = NULL;
    qb_error err = {0};
    if (qb_session_create(m, &sp, &s, &err)) {
        fprintf(stderr, "qbert info: error: %s\n", err.msg);
        return 1;
    }
    ss->bytes = qb_session_bytes(s);
    qb_session_free(s);
    qb_model_resident(m, ss->length, &ss->model);
    return 0;
}

int qb_cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false, tensors = false, linears = false;
    session_size ss = {0};
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return QB_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (!strcmp(argv[i], "--linears")) linears = true;
        else if ((v = qb_arg_value("--max-batch", &i, argc, argv))) {
            if (!qb_arg_int("info", "--max-batch", v, 1, 1 << 20, &ss.batch)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--max-length", &i, argc, argv))) {
            if (!qb_arg_int("info", "--max-length", v, 2, 1 << 20, &ss.length)) return QB_EXIT_USAGE;
        } else if ((v = qb_arg_value("--threads", &i, argc, argv))) {
            if (!qb_arg_int("info", "--threads", v, 1, 4096, &ss.threads)) return QB_EXIT_USAGE;
        }
        else if (argv[i][0] == '-') return qb_usage_error("info", "unknown option '%s'", argv[i]);
        else if (!dir) dir = argv[i];
        else return qb_usage_error("info", "unexpected argument '%s'", argv[i]);
    }
    if (!dir) return qb_usage_error("info", "missing MODEL_DIR");
    if (!ss.batch != !ss.length) return qb_usage_error("info", "--max-batch and --max-length go together");
    double load_s;
    qb_model *m = qb_cli_load("info", dir, ss.threads, &load_s);
    if (!m) return QB_EXIT_FAIL;
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (ss.batch && session_measure(m, &ss)) {
        qb_model_free(m);
        return QB_EXIT_FAIL;
    }
    if (json) print_json(m, &in, dir, load_s, linears, tensors, &ss);
    else print_text(m, &in, dir, load_s, linears, tensors, &ss);
    qb_model_free(m);
    return QB_EXIT_OK;
}
