/* qbert train and qbert qat: fine-tuning in FP32 or through fake
 * quantization, the best epoch (by DEV score) kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char train_help[] =
    "usage: qbert train MODEL_DIR --data TRAIN --eval DEV -o OUT_DIR [options]\n"
    "\n"
    "Fine-tunes a checkpoint in FP32 (AdamW, linear warm-up and decay, gradient\n"
    "clipping, dropout as in Hugging Face), scores it on DEV after every epoch and\n"
    "keeps the best epoch in OUT_DIR, a checkpoint directory every command loads.\n"
    "The labels come from TRAIN: when they are not the model's own (e.g. CoNLL\n"
    "tags on an SST-2 model) a fresh classification head is trained.  MODEL_DIR\n"
    "may also be a body without a head (BertModel, a masked-LM checkpoint): it\n"
    "gets a fresh head, and a fresh pooler if it has none, as Hugging Face's\n"
    "AutoModelForSequenceClassification (weights normal(0, initializer_range)\n"
    "drawn from --seed, biases 0).\n"
    "\n"
    "  --data FILE        training set (sst2, imdb, conll, tsv or jsonl)\n"
    "  --eval FILE        DEV set, same format; accuracy, or entity F1 for NER\n"
    "                     (word accuracy for tags without entities, e.g. POS)\n"
    "  -o, --out DIR      output directory (written atomically; must not exist)\n"
    "  --task T           sst2 | imdb | conll | tsv | jsonl | auto (default auto),\n"
    "                     or mlm (below)\n"
    "  --epochs N         passes over TRAIN (default 3)\n"
    "  --lr X             peak learning rate (default 5e-5)\n"
    "  --batch B          examples a step (default 16)\n"
    "  --max-length L     truncation, [CLS]/[SEP] included (default: the model's\n"
    "                     positions, at most 512, as in every command)\n"
    "  --seed S           initialization, dropout and batch order (default 42)\n"
    "  --warmup R         share of steps with linear warm-up (default 0.1)\n"
    "  --weight-decay X   decoupled weight decay (default 0.01)\n"
    "  --clip X           gradient-norm clipping, 0 for none (default 1)\n"
    "  --threads N        compute threads (default: all cores); results are\n"
    "                     byte-identical for a given seed and thread count\n"
    "  --limit N          first N training examples only\n"
    "  --eval-limit N     first N DEV examples only\n"
    "  --new-head         start a fresh classifier even if the labels match\n"
    "  --force            replace an existing OUT_DIR (a directory or a file)\n"
    "                     and an interrupted run's state at OUT_DIR.state\n"
    "  --parents          create OUT_DIR's missing parent directories\n"
    "  --resume FILE      continue an interrupted run from its state file (kept\n"
    "                     there unless --state says otherwise); OUT_DIR must hold\n"
    "                     the best epoch the state recorded\n"
    "  --state FILE       where the run keeps its state (default OUT_DIR.state;\n"
    "                     written atomically, removed when the run finishes;\n"
    "                     an existing file that is not a state is refused)\n"
    "  --save-every N     updates between state saves, 0: epoch ends only (200)\n"
    "\n"
    "Masked-LM pre-training (--task mlm): TRAIN and DEV are texts, one document a\n"
    "line (a .tsv or .jsonl file: the text column its reader finds), each\n"
    "truncated to --max-length.  Tokens are masked as Hugging Face's\n"
    "DataCollatorForLanguageModeling does: each token but [CLS]/[SEP] and other\n"
    "specials is chosen with probability P, of those 80% become [MASK], 10% a\n"
    "random token, 10% stay; the loss is the cross-entropy at the chosen tokens.\n"
    "Training masks are drawn anew every epoch from --seed; DEV's are fixed, so\n"
    "its loss (and perplexity, exp(loss)) compares across epochs and runs.  It is\n"
    "printed before training and after every epoch; OUT_DIR keeps the epoch with\n"
    "the lowest, a *ForMaskedLM checkpoint (decoder tied to the word embeddings)\n"
    "that `qbert fill-mask` runs and `qbert train` fine-tunes.  A model without a\n"
    "masked-LM head (a classifier, a bare encoder) gets a fresh one, as\n"
    "BertForMaskedLM initializes it; BERT and RoBERTa-family models only.\n"
    "  --task mlm         masked-LM pre-training\n"
    "  --mlm-probability P  share of tokens to predict (default 0.15)\n"
    "  --whole-word-mask  choose whole words (all pieces of a word together,\n"
    "                     round(P * tokens) per text, as DataCollatorForWholeWordMask)\n";

static const char qat_help[] =
    "usage: qbert qat MODEL_DIR --data TRAIN --eval DEV -o OUT_DIR [options]\n"
    "\n"
    "Quantization-aware training: fine-tunes an FP32 checkpoint with every linear\n"
    "layer but the classifier computing through fake quantization (weights on the\n"
    "grid of the format OUT_DIR stores, per-tensor asymmetric u8 inputs,\n"
    "straight-through gradients), with exactly the rounding of qbert's integer\n"
    "kernels. After each epoch the model is converted to a static model directory\n"
    "(the format of `qbert quantize --method static`), scored on DEV with the\n"
    "integer kernels, and kept in OUT_DIR if it is the best so far.  As with\n"
    "train, a body without a head (BertModel, a masked-LM checkpoint) gets a\n"
    "fresh head.\n"
    "\n"
    "  --bits N|ternary   weights (default 8): 5..8 are per-channel symmetric\n"
    "                     grids stored in int8 (int8 kernels); 4, 3, 2 and\n"
    "                     ternary train on the packed int4, int3, int2 and\n"
    "                     ternary formats' own quantizer (FP16 scale per group,\n"
    "                     clipped range; ternary {-a, 0, a}) and OUT_DIR stores\n"
    "                     them packed (W.A8 kernels)\n"
    "  --group-size G     4 bits and fewer: input columns per scale (default 128),\n"
    "                     or channel (one per row)\n"
    "  --weight-zero-point  4, 3, 2 bits: asymmetric groups (a zero point each)\n"
    "  --act-observer O   input scales: ema (moving min/max, default) or lsq\n"
    "                     (scales learned by gradient, Esser et al. 2020)\n"
    "  --freeze-observers-after N\n"
    "                     stop moving the input scales after N updates (default:\n"
    "                     never)\n"
    "  --calib-batches N  batches whose mean range sets the first scales (16)\n"
    "\n"
    "Knowledge distillation (TernaryBERT, KDLSQ-BERT): an FP32 teacher runs\n"
    "beside the student on every batch (no dropout, no gradient) and the loss is\n"
    "  CE(student, labels) + T^2 KL(softmax(teacher/T) || softmax(student/T))\n"
    "  [+ sum over layers of mean((h_student - h_teacher)^2) with --distill-hidden]\n"
    "with the KL averaged over examples (token heads: over labelled tokens) and\n"
    "h each block's output hidden states, averaged over tokens and dimensions.\n"
    "  --distill          distil from the FP32 input model (it must have the\n"
    "                     data's labels: its own head is kept)\n"
    "  --teacher DIR      distil from another FP32 checkpoint with the student's\n"
    "                     labels and tokenizer (implies --distill)\n"
    "  --distill-hidden   add the hidden-state MSE (same layer count and width;\n"
    "                     implies --distill)\n"
    "  --temperature T    softening temperature, > 0 (default 1; implies\n"
    "                     --distill)\n"
    "\n"
    "Training options, as for `qbert train` (defaults differ: 1 epoch, lr 2e-5;\n"
    "at 4 bits and fewer lr 1e-4):\n"
    "  --data, --eval, -o, --task, --epochs, --lr, --batch, --max-length, --seed,\n"
    "  --warmup, --weight-decay, --clip, --threads, --limit, --eval-limit,\n"
    "  --force, --parents, --resume FILE, --state FILE, --save-every N\n";

typedef struct {
    const char *dir, *out;
    const char *mlm_option; /* a masked-LM option given, for the message without --task mlm */
    bool lr_given;
    qb_train_params p;
} train_args;

static bool parse_float(const char *v, double lo, double hi, float *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) return false;
    *out = (float)x;
    return true;
}

/* The options only `qbert qat` has; 1 if argv[*i] was one. */
static int parse_qat_option(int *i, int argc, char **argv, train_args *a, int *rc) {
    qb_train_params *p = &a->p;
    const char *v;
    int n;
    if ((v = qb_arg_value("--bits", i, argc, argv))) {
        p->qat_ternary = !strcmp(v, "ternary");
        if (!p->qat_ternary && !qb_arg_bits("qat", v, 0x1fc, true, &p->qat_bits)) *rc = QB_EXIT_USAGE;
    } else if ((v = qb_arg_value("--group-size", i, argc, argv))) {
        if (!strcmp(v, "channel")) p->qat_group_size = -1;
        else if (!qb_arg_int("qat", "--group-size", v, 1, 1 << 20, &p->qat_group_size)) *rc = QB_EXIT_USAGE;
    } else if (!strcmp(argv[*i], "--weight-zero-point")) p->qat_weight_zero_point = 1;
    else if (!strcmp(argv[*i], "--distill")) p->distill = 1;
    else if (!strcmp(argv[*i], "--distill-hidden")) p->distill = p->distill_hidden = 1;
    else if ((v = qb_arg_value("--teacher", i, argc, argv))) p->distill = 1, p->teacher = v;
    else if ((v = qb_arg_value("--temperature", i, argc, argv))) {
        p->distill = 1;
        if (!parse_float(v, 1e-6, 1e6, &p->temperature))
            *rc = qb_usage_error("qat", "--temperature '%s' is not a number > 0", v);
    } else if ((v = qb_arg_value("--act-observer", i, argc, argv))) {
        p->act_observer = v;
        if (strcmp(v, "ema") && strcmp(v, "lsq"))
            *rc = qb_usage_error("qat", "--act-observer '%s' is not ema or lsq", v);
    } else if ((v = qb_arg_value("--freeze-observers-after", i, argc, argv))) {
        *rc = qb_arg_int("qat", "--freeze-observers-after", v, 0, 1 << 30, &n) ? 0 : QB_EXIT_USAGE;
        p->freeze_observers_after = n;
    } else if ((v = qb_arg_value("--calib-batches", i, argc, argv)))
        *rc = qb_arg_int("qat", "--calib-batches", v, 1, 1 << 20, &p->calib_batches) ? 0 : QB_EXIT_USAGE;
    else return 0;
    return 1;
}

static int parse_option(int *i, int argc, char **argv, train_args *a) {
    qb_train_params *p = &a->p;
    const char *v, *cmd = p->qat ? "qat" : "train";
    int seed, rc = 0;
    if (p->qat && parse_qat_option(i, argc, argv, a, &rc)) return rc;
    if ((v = qb_arg_value("--data", i, argc, argv))) p->data = v;
    else if ((v = qb_arg_value("--eval", i, argc, argv))) p->eval_data = v;
    else if ((v = qb_arg_path("-o", i, argc, argv)) || (v = qb_arg_path("--out", i, argc, argv))) a->out = v;
    else if ((v = qb_arg_value("--task", i, argc, argv))) p->task = v;
    else if ((v = qb_arg_value("--epochs", i, argc, argv)))
        return qb_arg_int(cmd, "--epochs", v, 1, 1000, &p->epochs) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--batch", i, argc, argv)))
        return qb_arg_int(cmd, "--batch", v, 1, 4096, &p->batch) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--max-length", i, argc, argv)))
        return qb_arg_int(cmd, "--max-length", v, 3, 1 << 16, &p->max_length) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--threads", i, argc, argv)))
        return qb_arg_int(cmd, "--threads", v, 1, 1024, &p->n_threads) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--limit", i, argc, argv)))
        return qb_arg_int(cmd, "--limit", v, 1, 1 << 30, &p->limit) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--eval-limit", i, argc, argv)))
        return qb_arg_int(cmd, "--eval-limit", v, 1, 1 << 30, &p->eval_limit) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--seed", i, argc, argv))) {
        if (!qb_arg_int(cmd, "--seed", v, 0, 1 << 30, &seed)) return QB_EXIT_USAGE;
        p->seed = (uint64_t)seed;
    } else if ((v = qb_arg_value("--lr", i, argc, argv))) {
        if (!parse_float(v, 1e-12, 1e30, &p->lr)) return qb_usage_error(cmd, "--lr '%s' is not a positive number", v);
        a->lr_given = true;
    } else if ((v = qb_arg_value("--warmup", i, argc, argv))) {
        if (!parse_float(v, 0, 1, &p->warmup_ratio)) return qb_usage_error(cmd, "--warmup '%s' is not in [0, 1]", v);
    } else if ((v = qb_arg_value("--weight-decay", i, argc, argv))) {
        if (!parse_float(v, 0, 10, &p->weight_decay))
            return qb_usage_error(cmd, "--weight-decay '%s' is not in [0, 10]", v);
    } else if ((v = qb_arg_value("--clip", i, argc, argv))) {
        if (!parse_float(v, 0, 1e6, &p->max_grad_norm)) return qb_usage_error(cmd, "--clip '%s' is not >= 0", v);
    } else if ((v = qb_arg_value("--resume", i, argc, argv))) p->resume = v;
    else if ((v = qb_arg_path("--state", i, argc, argv))) p->state_path = v;
    else if ((v = qb_arg_value("--save-every", i, argc, argv)))
        return qb_arg_int(cmd, "--save-every", v, 0, 1 << 30, &p->save_every) ? 0 : QB_EXIT_USAGE;
    else if ((v = qb_arg_value("--mlm-probability", i, argc, argv))) {
        if (!parse_float(v, 1e-6, 1, &p->mlm_probability))
            return qb_usage_error(cmd, "--mlm-probability '%s' is not in (0, 1]", v);
        a->mlm_option = "--mlm-probability";
    } else if (!strcmp(argv[*i], "--whole-word-mask")) {
        p->whole_word_mask = 1;
        a->mlm_option = "--whole-word-mask";
    } else if (!strcmp(argv[*i], "--new-head")) p->new_head = 1;
    else if (!strcmp(argv[*i], "--force")) p->force = 1;
    else if (!strcmp(argv[*i], "--parents")) p->parents = 1;
    else return qb_usage_error(cmd, "unknown option '%s'", argv[*i]);
    return 0;
}

static int parse_args(int argc, char **argv, train_args *a) {
    const char *cmd = a->p.qat ? "qat" : "train";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(a->p.qat ? qat_help : train_help, stdout);
            exit(QB_EXIT_OK);
        }
        if (argv[i][0] == '-') {
            int rc = parse_option(&i, argc, argv, a);
            if (rc) return rc;
        } else if (!a->dir) a->dir = argv[i];
        else return qb_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (!a->dir) return qb_usage_error(cmd, "missing MODEL_DIR");
    if (!a->p.data) return qb_usage_error(cmd, "missing --data TRAIN");
    if (!a->p.eval_data) return qb_usage_error(cmd, "missing --eval DEV");
    if (!a->out) return qb_usage_error(cmd, "missing -o OUT_DIR");
    bool lowbit = a->p.qat_ternary || a->p.qat_bits <= 4;
    if ((a->p.qat_group_size || a->p.qat_weight_zero_point) && !lowbit)
        return qb_usage_error(cmd, "--group-size and --weight-zero-point apply to --bits 4, 3, 2 or ternary");
    if (a->p.qat_ternary && a->p.qat_weight_zero_point)
        return qb_usage_error(cmd, "ternary weights are symmetric: no --weight-zero-point");
    if (a->p.qat && lowbit && !a->lr_given) a->p.lr = 1e-4f;
    bool mlm = a->p.task && !strcmp(a->p.task, "mlm");
    if (a->mlm_option && !mlm) return qb_usage_error(cmd, "%s applies to --task mlm", a->mlm_option);
    if (mlm && a->p.qat)
        return qb_usage_error(cmd, "--task mlm pre-trains in FP32: run `qbert train --task mlm`, then qat on its output");
    return QB_EXIT_OK;
}

typedef struct {
    bool tty;
    double last_draw;
} bar_state;

static void draw_bar(bar_state *b, const qb_train_progress *p) {
    double t = qb_now();
    if (!b->tty || (t - b->last_draw < 0.1 && p->step < p->steps)) return;
    b->last_draw = t;
    bool eval = !strcmp(p->phase, "eval");
    double rate = p->seconds > 0 ? (eval ? p->step : p->examples) / p->seconds : 0;
    double left = eval ? p->steps - p->step : p->total_examples - p->examples;
    int width = 24, fill = p->steps ? (int)(width * p->step / p->steps) : width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\repoch %d/%d %s [%s] %ld/%ld  loss %.4f  %.1f ex/s  ETA %.0fs   ", p->epoch, p->epochs,
            eval ? "dev  " : "train", bar, p->step, p->steps, p->loss, rate, rate > 0 ? left / rate : 0);
    fflush(stderr);
}

/* The DEV score that picks the best epoch. */
static const char *metric_name(int token_task) {
    return token_task == QB_TRAIN_TOKEN_WORDS ? "word accuracy" : token_task ? "entity F1" : "accuracy";
}

static void on_progress(void *ctx, const qb_train_progress *p) {
    bar_state *b = ctx;
    if (!strcmp(p->phase, "baseline")) {
        printf("before training  dev MLM loss %.4f  perplexity %.2f\n", p->dev_metric, exp(p->dev_metric));
        fflush(stdout);
        return;
    }
    if (strcmp(p->phase, "epoch") != 0) {
        draw_bar(b, p);
        return;
    }
    if (b->tty) fputs("\r\033[K", stderr);
    if (p->mlm)
        printf("epoch %d/%d  train loss %.4f  dev MLM loss %.4f  perplexity %.2f%s\n", p->epoch, p->epochs, p->loss,
               p->dev_metric, exp(p->dev_metric), p->best ? "  (best, saved)" : "");
    else printf("epoch %d/%d  train loss %.4f  dev %s %.4f%s\n", p->epoch, p->epochs, p->loss,
           metric_name(p->token_task), p->dev_metric, p->best ? "  (best, saved)" : "");
    fflush(stdout);
}

static int run_training(int argc, char **argv, train_args *a) {
    int rc = parse_args(argc, argv, a);
    if (rc) return rc;
    const char *cmd = a->p.qat ? "qat" : "train";
    qb_cli_discard_on_interrupt(cmd, a->out, a->p.state_path ? a->p.state_path : a->p.resume);
    bar_state bar = {.tty = isatty(STDERR_FILENO)};
    a->p.progress = on_progress;
    a->p.progress_ctx = &bar;
    qb_train_report r;
    qb_error err = {0};
    if (a->p.resume) printf("resuming from %s\n", a->p.resume);
    if (qb_train(a->dir, &a->p, a->out, &r, &err)) return qb_report_error(cmd, &err);
    if (r.mlm && r.mlm_loss_before > 0)
        printf("best epoch %d: dev MLM loss %.4f (perplexity %.2f; before training %.4f, perplexity %.2f; %ld masked "
               "tokens), saved to %s (%s masked-LM head)\n", r.best_epoch, r.best_metric, exp(r.best_metric),
               r.mlm_loss_before, exp(r.mlm_loss_before), r.mlm_eval_tokens, a->out, r.new_head ? "new" : "kept");
    else if (r.mlm)
        printf("best epoch %d: dev MLM loss %.4f (perplexity %.2f), saved to %s\n", r.best_epoch, r.best_metric,
               exp(r.best_metric), a->out);
    else
        printf("best epoch %d: dev %s %.4f%s%s, saved to %s (%s head, %d labels)\n", r.best_epoch,
               metric_name(r.token_task), r.best_metric, a->p.qat ? " with the integer kernels" : "",
               r.token_task == QB_TRAIN_TOKEN_WORDS ? " (DEV has no entities: word accuracy picks the best epoch)" : "",
               a->out, r.new_head ? "new" : "kept", r.num_labels);
    printf("trained on %d examples, %ld steps, %.1f examples/s, %.1f s in all\n", r.n_train, r.steps,
           r.examples_per_s, r.seconds);
    printf("time per epoch: %.1f s training%s, %.1f s with conversion and DEV scoring\n", r.epoch_seconds,
           a->p.distill ? " (teacher included)" : "", r.epoch_total_seconds);
    return QB_EXIT_OK;
}

int qb_cmd_train(int argc, char **argv) {
    train_args a = {.p = qb_train_default_params()};
    return run_training(argc, argv, &a);
}

int qb_cmd_qat(int argc, char **argv) {
    train_args a = {.p = qb_train_default_params()};
    a.p.qat = 1;
    a.p.epochs = 1;
    a.p.lr = 2e-5f;
    return run_training(argc, argv, &a);
}
