/* qbert info: what a checkpoint holds, without running it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/escape.h"
#include "core/json.h"

static const char help[] =
    "usage: qbert info MODEL_DIR [--linears] [--tensors] [--json]\n"
    "\n"
    "Prints the architecture, shapes, parameter count, file size, tokenizer, labels\n"
    "and the kernel set this CPU will use.  Weights are mapped, not read, so this is\n"
    "fast even for large models.\n"
    "\n"
    "  --linears  also list every linear layer with its weight format and shape\n"
    "  --tensors  also list every tensor with its dtype and shape\n"
    "  --json     one JSON object instead of text\n";

static void shape_str(const qb_tensor_info *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static void print_linears(const qb_model *m, bool json) {
    if (json) fputs(", \"linears\": [", stdout);
    else printf("\n%-64s %-20s %s\n", "linear", "format", "shape [out, in]");
    for (int i = 0; i < qb_model_linear_count(m); i++) {
        double bits;
        int out, in;
        const char *fmt = qb_model_linear_format(m, i, &bits, &out, &in), *name = qb_model_linear_name(m, i);
        if (!json) {
            char esc[1024];
            printf("%-64s %-20s [%d, %d]\n", qb_escape_str(esc, sizeof esc, name), fmt, out, in);
            continue;
        }
        printf("%s{\"name\": ", i ? ", " : "");
        qb_json_write_str(stdout, name, strlen(name));
        printf(", \"format\": \"%s\", \"bits\": %g, \"out\": %d, \"in\": %d}", fmt, bits, out, in);
    }
    if (json) putchar(']');
}

static void print_text(const qb_model *m, const qb_model_info *in, const char *dir, double load_s, bool linears,
                       bool tensors) {
    printf("model        %s\n", dir);
    printf("architecture %s (%s), %s head\n", in->class_name, in->model_type,
           in->task == QB_TASK_TOKEN ? "token-classification" : "sequence-classification");
    printf("layers       %d x (hidden %d, heads %d, intermediate %d, %s)\n", in->num_layers, in->hidden_size,
           in->num_heads, in->intermediate_size, in->hidden_act);
    if (in->arch == QB_ARCH_ALBERT)
        printf("albert       embedding %d -> hidden %d, %d group(s) x %d inner layer(s), shared across layers\n",
               in->embedding_size, in->hidden_size, in->num_hidden_groups, in->inner_group_num);
    printf("vocabulary   %d tokens, %d positions, %d token types, layer_norm_eps %g\n", in->vocab_size,
           in->max_position, in->type_vocab_size, (double)in->layer_norm_eps);
    printf("parameters   %lld (%.1f M)\n", (long long)in->n_params, in->n_params / 1e6);
    printf("file         model.safetensors, %lld bytes (%.1f MB), %d tensors\n", (long long)in->file_bytes,
           in->file_bytes / 1e6, in->n_tensors);
    printf("precision    %s\n", qb_model_quant_summary(m));
    printf("tokenizer    %s\n", in->tokenizer);
    printf("labels       %d:", in->num_labels);
    for (int i = 0; i < in->num_labels; i++) {
        const char *l = qb_model_label(m, i);
        printf(" %d=", i);
        qb_escape_write(stdout, l, strlen(l));
    }
    printf("\nkernels      %s\n", in->isa);
    printf("load time    %.1f ms\n", load_s * 1e3);
    if (linears) print_linears(m, false);
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

static void json_kv(const char *key, const char *val, bool comma) {
    printf("\"%s\": ", key);
    qb_json_write_str(stdout, val, strlen(val));
    if (comma) fputs(", ", stdout);
}

static void print_json(const qb_model *m, const qb_model_info *in, const char *dir, double load_s, bool linears,
                       bool tensors) {
    putchar('{');
    json_kv("model_dir", dir, true);
    json_kv("model_type", in->model_type, true);
    json_kv("class", in->class_name, true);
    json_kv("task", in->task == QB_TASK_TOKEN ? "token" : "sequence", true);
    json_kv("hidden_act", in->hidden_act, true);
    json_kv("tokenizer", in->tokenizer, true);
    json_kv("isa", in->isa, true);
    json_kv("precision", qb_model_quant_summary(m), true);
    printf("\"num_layers\": %d, \"hidden_size\": %d, \"num_heads\": %d, \"intermediate_size\": %d, "
           "\"embedding_size\": %d, \"num_hidden_groups\": %d, \"inner_group_num\": %d, \"vocab_size\": %d, "
           "\"max_position\": %d, \"type_vocab_size\": %d, \"layer_norm_eps\": %g, \"n_params\": %lld, "
           "\"file_bytes\": %lld, \"n_tensors\": %d, \"load_ms\": %.3f, \"labels\": [",
           in->num_layers, in->hidden_size, in->num_heads, in->intermediate_size, in->embedding_size,
           in->num_hidden_groups, in->inner_group_num, in->vocab_size, in->max_position, in->type_vocab_size,
           (double)in->layer_norm_eps, (long long)in->n_params, (long long)in->file_bytes, in->n_tensors,
           load_s * 1e3);
    for (int i = 0; i < in->num_labels; i++) {
        const char *l = qb_model_label(m, i);
        if (i) fputs(", ", stdout);
        qb_json_write_str(stdout, l, strlen(l));
    }
    putchar(']');
    if (tensors) {
        fputs(", \"tensors\": [", stdout);
        for (int i = 0; i < in->n_tensors; i++) {
            qb_tensor_info t;
            qb_model_tensor(m, i, &t);
            printf("%s{\"name\": ", i ? ", " : "");
            qb_json_write_str(stdout, t.name, strlen(t.name));
            printf(", \"dtype\": \"%s\", \"shape\": [", t.dtype);
            for (int d = 0; d < t.ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t.shape[d]);
            fputs("]}", stdout);
        }
        putchar(']');
    }
    if (linears) print_linears(m, true);
    puts("}");
}

int qb_cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false, tensors = false, linears = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return QB_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (!strcmp(argv[i], "--linears")) linears = true;
        else if (argv[i][0] == '-') return qb_usage_error("info", "unknown option '%s'", argv[i]);
        else if (!dir) dir = argv[i];
        else return qb_usage_error("info", "unexpected argument '%s'", argv[i]);
    }
    if (!dir) return qb_usage_error("info", "missing MODEL_DIR");
    double load_s;
    qb_model *m = qb_cli_load("info", dir, &load_s);
    if (!m) return QB_EXIT_FAIL;
    qb_model_info in;
    qb_model_get_info(m, &in);
    if (json) print_json(m, &in, dir, load_s, linears, tensors);
    else print_text(m, &in, dir, load_s, linears, tensors);
    qb_model_free(m);
    return QB_EXIT_OK;
}
