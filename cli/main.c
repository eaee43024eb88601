/* qbert: the command-line client of the qbert library. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "qbert " QBERT_VERSION ": run BERT-family models (BERT, ALBERT, DistilBERT, RoBERTa, XLM-R, ELECTRA) on the CPU\n"
    "\n"
    "usage: qbert COMMAND MODEL_DIR [options]\n"
    "\n"
    "commands:\n"
    "  info     architecture, shapes, parameters, tokenizer and labels of a model\n"
    "  predict  classify texts given on the command line or streamed from a file\n"
    "  embed    sentence embeddings (sentence-transformers pooling) as JSON lines or .npy\n"
    "  fill-mask  a masked-LM model's top tokens at each [MASK] / <mask>\n"
    "  eval     accuracy, per-class P/R/F1, macro-F1 (entity F1 for NER) on a dataset\n"
    "  bench    latency, throughput and memory, on synthetic inputs or real sentences\n"
    "  quantize write a quantized copy: INT8, FP16/BF16, 4/3/2-bit, ternary, k-means\n"
    "  calibrate save activation statistics for static quantization\n"
    "  compare  every method side by side: accuracy, size, speed, memory; a report\n"
    "  sensitivity  accuracy lost per quantized layer; a suggested precision map\n"
    "  train    fine-tune in FP32 on a labelled dataset; keeps the best epoch by DEV score\n"
    "  qat      quantization-aware training; writes the int8 model that scores best on DEV\n"
    "  serve    an HTTP server: text-embeddings-inference and OpenAI embeddings APIs\n"
    "  export   write the model (FP32, FP16, int8, int4) as ONNX for ONNX Runtime\n"
    "\n"
    "MODEL_DIR is a Hugging Face checkpoint directory: config.json, model.safetensors,\n"
    "tokenizer.json, vocab.txt or spiece.model, and optionally tokenizer_config.json.\n"
    "\n"
    "--allow-nonfinite, given to any command, loads a model even if a weight is NaN or\n"
    "infinite (refused by default; quantize, train and qat refuse it always).  That\n"
    "check reads every weight once per file: a file found finite is stamped in\n"
    "$QBERT_CACHE_DIR/checked (default ~/.cache/qbert; QBERT_CACHE_DIR= turns it off),\n"
    "and any write to the file makes the check run again.\n"
    "\n"
    "'qbert COMMAND --help' explains each command.  Environment:\n"
    "QBERT_ISA=scalar|avx2|avx512|avx512-vnni (x86-64) or scalar|neon|dotprod|i8mm\n"
    "(AArch64) forces a kernel set (default: the best this CPU supports; avx512-vnni is\n"
    "avx512 without AMX tiles, as on a CPU without them).\n";

/* --allow-nonfinite is taken out of the command's arguments wherever it
 * stands (before a "--") and handed on through the environment, so every
 * command that loads a model, and every qbert it runs as a child, sees it. */
static int take_allow_nonfinite(int argc, char **argv) {
    int out = 1;
    bool rest = false;
    for (int i = 1; i < argc; i++) {
        rest = rest || !strcmp(argv[i], "--");
        if (!rest && !strcmp(argv[i], "--allow-nonfinite")) setenv(QB_ENV_ALLOW_NONFINITE, "1", 1);
        else argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

/* A closed standard descriptor would go to the next file opened: a model
 * read as "stdin", results written into its weights.  /dev/null, opened
 * read-only, holds the place, so reads see nothing and writes fail. */
static void hold_std_fds(void) {
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int got = open("/dev/null", O_RDONLY);
        if (got >= 0 && got != fd) {
            dup2(got, fd);
            close(got);
        }
    }
}

/* Results lost to a full disk or a closed descriptor are a failure: exit 0
 * would tell a pipeline they were all written. */
static int check_stdout(const char *cmd, int rc) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    fprintf(stderr, "qbert %s: error: standard output: %s\n", cmd, errno ? strerror(errno) : "write error");
    return rc ? rc : QB_EXIT_FAIL;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {
        {"info", qb_cmd_info}, {"predict", qb_cmd_predict}, {"embed", qb_cmd_embed}, {"fill-mask", qb_cmd_fill_mask},
        {"eval", qb_cmd_eval}, {"bench", qb_cmd_bench},
        {"quantize", qb_cmd_quantize}, {"calibrate", qb_cmd_calibrate},
        {"compare", qb_cmd_compare}, {"sensitivity", qb_cmd_sensitivity},
        {"train", qb_cmd_train},
        {"qat", qb_cmd_qat}, {"serve", qb_cmd_serve}, {"export", qb_cmd_export},
    };
    /* a parent qbert waiting for its signals in a thread leaves them
     * blocked in its children (qb_cli_discard_on_interrupt) */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    hold_std_fds();
    argc = take_allow_nonfinite(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? QB_EXIT_USAGE : QB_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qbert %s\n", QBERT_VERSION);
        return QB_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return check_stdout(argv[1], cmds[i].run(argc - 1, argv + 1));
    fprintf(stderr, "qbert: unknown command '%s'\n\n%s", argv[1], usage);
    return QB_EXIT_USAGE;
}
