/* qbert quantize / qbert calibrate: write a quantized model directory, or
 * save calibration statistics for later static quantization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help_quantize[] =
    "usage: qbert quantize MODEL_DIR -o OUT_DIR --method dynamic|static|weight-only|fp16|bf16 [options]\n"
    "\n"
    "Writes OUT_DIR, a model directory that info, predict, eval and bench accept like\n"
    "the FP32 one.  It is built under a temporary name and renamed when complete.\n"
    "\n"
    "  --method M            dynamic: integer weights, activations quantized per call\n"
    "                        static:  integer weights, activation scales from calibration\n"
    "                        weight-only: low-bit weights, FP32 activations\n"
    "                        fp16, bf16: half-precision weights\n"
    "  --granularity G       weights per-channel (default) or per-tensor\n"
    "  --activations A       dynamic: per-token (default) or per-tensor\n"
    "  --symmetric | --asymmetric\n"
    "                        activation scheme (default asymmetric u8; int8 weights\n"
    "                        are always symmetric)\n"
    "  --reduce-range        7-bit ranges (weights in [-64, 63]); AVX2 CPUs without\n"
    "                        VNNI run such int8 weights faster (vpmaddubsw), exactly\n"
    "  --bits N              weights: 8 (default, int8), or 4, 3, 2 packed (two INT4 or\n"
    "                        four INT2 to a byte, INT3 in 3 bits) with an FP16 scale\n"
    "                        per group; dynamic/static run them on u8 inputs (W4A8)\n"
    "  --bits ternary        weights {-a, 0, a}, five to a byte (1.6 bits), a per group\n"
    "  --group-size G        low-bit grids: input columns per scale, 32, 64, 128\n"
    "                        (default) or any positive number; 'channel': one per row\n"
    "                        (--granularity per-tensor: one scale for the matrix)\n"
    "  --weight-zero-point   low-bit grids: asymmetric, a zero point per group\n"
    "  --codebook kmeans     weight sharing: 2^bits FP16 centroids per row found by\n"
    "                        k-means (to nearest, never worse than the row's grid);\n"
    "                        runs weight-only\n"
    "  --keep PATTERN        keep matching linears in FP32 (glob over names such as\n"
    "                        'bert.encoder.layer.0.*'; repeatable), whatever\n"
    "                        --precision-map says of them\n"
    "  --precision-map FILE  JSON {\"<linear name or glob>\": \"FORMAT\"}, later keys\n"
    "                        winning; FORMAT: fp32, fp16, bf16, int8, int4, int3, int2,\n"
    "                        ternary (the method's inputs; add -dynamic or -static to\n"
    "                        choose, -weight-only for FP32 inputs), kmeans4..kmeans2;\n"
    "                        u8 inputs need --method dynamic or static; -dynamic\n"
    "                        inputs in a static model take one scale per call (its\n"
    "                        per-tensor grid), so their outputs vary with the batch\n"
    "  --quantize-embeddings word embeddings with a scale per row: int8, or the low\n"
    "                        weights' bits (4; 2 for INT2 and ternary); fp16/bf16:\n"
    "                        every embedding table in half precision\n"
    "  --embedding-bits B    8, 4 or 2 for --quantize-embeddings\n"
    "  --quantize-head       also the final classifier (the integer and low-bit\n"
    "                        methods keep it FP32 by default; fp16/bf16 convert it)\n"
    "  --calib FILE          calibration texts (any dataset eval reads): static input\n"
    "                        ranges, and the error compensation below\n"
    "  --calib-n N           calibration texts to use (default 512)\n"
    "  --calib-stats FILE    static: statistics 'qbert calibrate' saved for this model\n"
    "                        (the sha256 of its weights must match), instead; not\n"
    "                        with --calib, --calib-n (unless --rounding gptq or\n"
    "                        --bias-correction runs them) or --smoothquant, and\n"
    "                        --max-length, if given, must be the one it recorded\n"
    "  --observer O          static: percentile:99.99 (default), minmax, mse, entropy\n"
    "  --int8-attention      static: also Q.K^T and P.V in int8 (Q, K, V scales from\n"
    "                        calibration, probabilities on a u8 grid per row)\n"
    "\n"
    "Error compensation (each runs the --calib texts through the model):\n"
    "  --rounding R          nearest (default) or gptq: low-bit grids rounded column\n"
    "                        by column against each linear's input Hessian, the error\n"
    "                        of each column fed back onto the next (Frantar et al.);\n"
    "                        linears in graph order, each seeing the inputs of the\n"
    "                        already-quantized ones before it\n"
    "  --gptq-damp F         GPTQ: fraction of the mean Hessian diagonal added to it\n"
    "                        (default 0.01; raised 10x while the Hessian won't factor)\n"
    "  --gptq-act-order      GPTQ: columns by decreasing Hessian diagonal\n"
    "  --gptq-memory MB      GPTQ: memory for the calibration texts' inputs to the\n"
    "                        block being quantized, kept so that each pass starts\n"
    "                        there (default: a quarter of RAM); beyond it every pass\n"
    "                        starts at the embeddings, slower, same result\n"
    "  --bias-correction     each bias absorbs the mean output shift rounding caused\n"
    "                        on the calibration texts, E[(W - Wq) x]\n"
    "  --smoothquant ALPHA   static: per input channel, move range from the inputs\n"
    "                        into the weights, s = max|x|^A / max|w|^(1-A), A in\n"
    "                        [0, 1] (0.5 is the paper's); x/s is applied as the\n"
    "                        input is quantized (BERT's LayerNorm output is also\n"
    "                        the residual, so 1/s cannot be folded into it)\n"
    "\n"
    "  --max-length L        calibration truncation (default: the model's positions,\n"
    "                        at most 512, as in every command; with --calib-stats,\n"
    "                        the length the statistics were taken at)\n"
    "  --threads N           compute threads (default: all cores)\n"
    "  --force               replace an existing OUT_DIR (a directory or a file)\n"
    "  --parents             create OUT_DIR's missing parent directories\n";

static const char help_calibrate[] =
    "usage: qbert calibrate MODEL_DIR --calib FILE -o STATS.json [--calib-n N] [--max-length L]\n"
    "\n"
    "Runs calibration texts through the FP32 model and saves a histogram of every\n"
    "linear layer's input and of the attention's Q, K and V.  'qbert quantize\n"
    "--method static --calib-stats STATS.json --observer O' then reuses them with any\n"
    "observer (and with --int8-attention), without running the model again.  The\n"
    "file holds the sha256 of MODEL_DIR/model.safetensors: quantize refuses it for\n"
    "any other model, and a file an older qbert wrote (run calibrate again).\n";

typedef struct {
    const char *dir, *out;
    bool has_method;
    bool calib_n_given;
    qb_quant_params p;
    const char **keep;
} quant_args;

static int parse_common(const char *cmd, int argc, char **argv, int *i, quant_args *a) {
    const char *v;
    qb_quant_params *p = &a->p;
    if ((v = qb_arg_path("-o", i, argc, argv)) || (v = qb_arg_path("--output", i, argc, argv))) a->out = v;
    else if ((v = qb_arg_value("--calib", i, argc, argv))) p->calib_file = v;
    else if ((v = qb_arg_value("--calib-n", i, argc, argv))) {
        if (!qb_arg_int(cmd, "--calib-n", v, 1, 1 << 24, &p->calib_n)) return QB_EXIT_USAGE;
        a->calib_n_given = true;
    } else if ((v = qb_arg_value("--max-length", i, argc, argv))) {
        if (!qb_arg_int(cmd, "--max-length", v, 3, 1 << 20, &p->max_length)) return QB_EXIT_USAGE;
    } else if ((v = qb_arg_value("--threads", i, argc, argv))) {
        if (!qb_arg_int(cmd, "--threads", v, 1, 1024, &p->n_threads)) return QB_EXIT_USAGE;
    } else if (argv[*i][0] == '-') return qb_usage_error(cmd, "unknown option '%s'", argv[*i]);
    else if (!a->dir) a->dir = argv[*i];
    else return qb_usage_error(cmd, "unexpected argument '%s'", argv[*i]);
    return QB_EXIT_OK;
}

static int parse_bits(const char *v, qb_quant_params *p) {
    if (!strcmp(v, "ternary")) {
        p->ternary = 1;
        return QB_EXIT_OK;
    }
    if (!qb_arg_bits("quantize", v, 0x11c, true, &p->bits)) return QB_EXIT_USAGE;
    p->ternary = 0;
    return QB_EXIT_OK;
}

static int parse_group(const char *v, qb_quant_params *p) {
    if (!strcmp(v, "channel")) {
        p->group_size = -1;
        return QB_EXIT_OK;
    }
    return qb_arg_int("quantize", "--group-size", v, 1, 1 << 20, &p->group_size) ? QB_EXIT_OK : QB_EXIT_USAGE;
}

/* --rounding, --gptq-*, --bias-correction, --smoothquant: true if argv[*i]
 * was one (*rc set on a bad value). */
static bool parse_compensation(int *i, int argc, char **argv, qb_quant_params *p, int *rc) {
    const char *v;
    double x;
    if ((v = qb_arg_value("--rounding", i, argc, argv))) {
        if (strcmp(v, "gptq") && strcmp(v, "nearest"))
            *rc = qb_usage_error("quantize", "--rounding is nearest or gptq, not '%s'", v);
        p->gptq = !strcmp(v, "gptq");
    } else if ((v = qb_arg_value("--gptq-damp", i, argc, argv))) {
        if (!qb_arg_double("quantize", "--gptq-damp", v, 1e-6, 1, &p->gptq_damp)) *rc = QB_EXIT_USAGE;
    } else if ((v = qb_arg_value("--gptq-memory", i, argc, argv))) {
        if (!qb_arg_int("quantize", "--gptq-memory", v, 1, 1 << 30, &p->gptq_memory_mb)) *rc = QB_EXIT_USAGE;
    } else if ((v = qb_arg_value("--smoothquant", i, argc, argv))) {
        p->smoothquant = 1;
        if (!qb_arg_double("quantize", "--smoothquant", v, 0, 1, &x)) *rc = QB_EXIT_USAGE;
        p->smooth_alpha = (float)x;
    } else if (!strcmp(argv[*i], "--gptq-act-order")) p->gptq_act_order = 1;
    else if (!strcmp(argv[*i], "--bias-correction")) p->bias_correction = 1;
    else return false;
    return true;
}

static int parse_quantize(int argc, char **argv, quant_args *a) {
    const char *v;
    qb_quant_params *p = &a->p;
    bool act_given = false, observer_given = false;
    for (int i = 1; i < argc; i++) {
        int rc = QB_EXIT_OK;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help_quantize, stdout);
            exit(QB_EXIT_OK);
        } else if ((v = qb_arg_value("--method", &i, argc, argv))) {
            qb_quant_method m;
            if (!qb_quant_method_parse(v, &m))
                return qb_usage_error("quantize", "unknown --method '%s' (dynamic, static, weight-only, fp16, bf16)",
                                      v);
            qb_quant_params fresh = qb_quant_default_params(m);
            p->method = m;
            if (!act_given) p->act_per_token = fresh.act_per_token;
            a->has_method = true;
        } else if ((v = qb_arg_value("--granularity", &i, argc, argv))) {
            if (strcmp(v, "per-channel") && strcmp(v, "per-tensor"))
                return qb_usage_error("quantize", "--granularity is per-channel or per-tensor, not '%s'", v);
            p->per_channel = !strcmp(v, "per-channel");
        } else if ((v = qb_arg_value("--activations", &i, argc, argv))) {
            if (strcmp(v, "per-token") && strcmp(v, "per-tensor"))
                return qb_usage_error("quantize", "--activations is per-token or per-tensor, not '%s'", v);
            p->act_per_token = !strcmp(v, "per-token");
            act_given = true;
        } else if (!strcmp(argv[i], "--symmetric")) p->act_symmetric = 1;
        else if (!strcmp(argv[i], "--asymmetric")) p->act_symmetric = 0;
        else if (!strcmp(argv[i], "--reduce-range")) p->reduce_range = 1;
        else if ((v = qb_arg_value("--bits", &i, argc, argv))) rc = parse_bits(v, p);
        else if ((v = qb_arg_value("--group-size", &i, argc, argv))) rc = parse_group(v, p);
        else if ((v = qb_arg_value("--codebook", &i, argc, argv))) {
            if (strcmp(v, "kmeans")) return qb_usage_error("quantize", "--codebook is kmeans, not '%s'", v);
            p->kmeans = 1;
        } else if ((v = qb_arg_value("--embedding-bits", &i, argc, argv))) {
            if (!qb_arg_int("quantize", "--embedding-bits", v, 2, 8, &p->embedding_bits)) return QB_EXIT_USAGE;
            if (p->embedding_bits != 8 && p->embedding_bits != 4 && p->embedding_bits != 2)
                return qb_usage_error("quantize", "--embedding-bits is 8, 4 or 2, not %s", v);
        } else if (!strcmp(argv[i], "--weight-zero-point")) p->weight_zero_point = 1;
        else if (!strcmp(argv[i], "--quantize-embeddings")) p->quantize_embeddings = 1;
        else if (!strcmp(argv[i], "--quantize-head")) p->quantize_head = 1;
        else if (!strcmp(argv[i], "--int8-attention")) p->int8_attention = 1;
        else if (!strcmp(argv[i], "--force")) p->force = 1;
        else if (!strcmp(argv[i], "--parents")) p->parents = 1;
        else if ((v = qb_arg_value("--keep", &i, argc, argv))) a->keep[p->n_keep++] = v;
        else if ((v = qb_arg_value("--precision-map", &i, argc, argv))) p->precision_map = v;
        else if ((v = qb_arg_value("--calib-stats", &i, argc, argv))) p->calib_stats = v;
        else if ((v = qb_arg_value("--observer", &i, argc, argv))) p->observer = v, observer_given = true;
        else if (!parse_compensation(&i, argc, argv, p, &rc)) rc = parse_common("quantize", argc, argv, &i, a);
        if (rc) return rc;
    }
    p->keep = a->keep;
    if (!a->dir) return qb_usage_error("quantize", "missing MODEL_DIR");
    if (!a->out) return qb_usage_error("quantize", "missing -o OUT_DIR");
    if (!a->has_method)
        return qb_usage_error("quantize", "missing --method (dynamic, static, weight-only, fp16, bf16)");
    if (p->method == QB_QUANT_STATIC && act_given && p->act_per_token)
        return qb_usage_error("quantize", "static quantization uses per-tensor activation scales");
    if (p->int8_attention && p->method != QB_QUANT_STATIC)
        return qb_usage_error("quantize", "--int8-attention needs --method static");
    if (p->method == QB_QUANT_STATIC && !p->calib_file && !p->calib_stats)
        return qb_usage_error("quantize", "--method static needs --calib FILE or --calib-stats FILE");
    const char *comp = p->gptq ? "--rounding gptq" : p->bias_correction ? "--bias-correction"
                     : p->smoothquant ? "--smoothquant" : NULL;
    if (comp && !p->calib_file)
        return qb_usage_error("quantize", "%s needs --calib FILE (it runs the texts; --calib-stats hold only ranges)",
                              comp);
    /* saved statistics are a finished calibration: texts given beside them
     * would be read only by error compensation */
    if (p->calib_stats && p->smoothquant)
        return qb_usage_error("quantize", "--smoothquant calibrates on the smoothed inputs: use --calib, not "
                              "--calib-stats");
    if (p->calib_stats && !p->gptq && !p->bias_correction && (p->calib_file || a->calib_n_given))
        return qb_usage_error("quantize", "--calib-stats is a finished calibration: --calib and --calib-n would not "
                              "be read (they go with it only for --rounding gptq or --bias-correction)");
    if ((p->gptq_act_order || p->gptq_damp != 0.01 || p->gptq_memory_mb) && !p->gptq)
        return qb_usage_error("quantize", "--gptq-damp, --gptq-act-order and --gptq-memory go with --rounding gptq");
    /* a precision map may make some inputs static */
    bool statics = p->method == QB_QUANT_STATIC || p->precision_map;
    if ((observer_given || p->calib_stats) && !statics)
        return qb_usage_error("quantize", "--observer and --calib-stats choose static input ranges: they go with "
                              "--method static");
    if (p->calib_file && !statics && !comp)
        fprintf(stderr, "qbert quantize: warning: --calib is not read: %s needs no calibration (only static inputs "
                "and error compensation run the texts)\n", qb_quant_method_name(p->method));
    return QB_EXIT_OK;
}

static void print_report(const quant_args *a, const qb_quant_report *r) {
    if (r->warning[0]) fprintf(stderr, "qbert quantize: warning: %s\n", r->warning);
    printf("wrote        %s\n", a->out);
    printf("linears      %d: ", r->n_linears);
    if (r->n_lowbit) printf("%d low-bit, ", r->n_lowbit);
    printf("%d int8, %d fp16, %d bf16, %d fp32\n", r->n_int8, r->n_fp16, r->n_bf16, r->n_fp32);
    if (r->weight_sqnr_db > 0) printf("weights      SQNR %.2f dB against FP32\n", r->weight_sqnr_db);
    if (r->grid_sqnr_db > 0 && a->p.gptq) /* its codebooks give up weight error for output error */
        printf("codebooks    %.2f dB of weight SQNR after GPTQ, which lowers the output error instead; the rows' "
               "uniform grids rounded to nearest: %.2f dB\n", r->codebook_sqnr_db, r->grid_sqnr_db);
    else if (r->grid_sqnr_db > 0)
        printf("codebooks    %.2f dB; their rows' uniform grids %.2f dB; %d linear(s) below the grid, "
               "smallest margin %+.2f dB\n", r->codebook_sqnr_db, r->grid_sqnr_db, r->n_below_grid, r->min_margin_db);
    if (r->calib_used) printf("calibration  %d texts\n", r->calib_used);
    if (r->n_gptq_fallbacks)
        fprintf(stderr, "qbert quantize: warning: %d linear(s) had a Hessian GPTQ could not factor even with 10x "
                "more damping: rounded to nearest\n", r->n_gptq_fallbacks);
    printf("size         %.2f MB -> %.2f MB (%.1f%% of the input, %.2fx smaller)\n", r->in_bytes / 1e6,
           r->out_bytes / 1e6, 100.0 * r->out_bytes / r->in_bytes, (double)r->in_bytes / r->out_bytes);
    printf("time         %.2f s\n", r->seconds);
}

int qb_cmd_quantize(int argc, char **argv) {
    quant_args a = {.p = qb_quant_default_params(QB_QUANT_DYNAMIC)};
    a.keep = calloc((size_t)argc, sizeof *a.keep);
    int rc = a.keep ? parse_quantize(argc, argv, &a) : QB_EXIT_FAIL;
    if (!rc) qb_cli_discard_on_interrupt("quantize", a.out, NULL);
    qb_model *m = rc ? NULL : qb_cli_load("quantize", a.dir, a.p.n_threads, NULL);
    if (!rc && !m) rc = QB_EXIT_FAIL;
    qb_progress pr = {0};
    a.p.progress = qb_progress_callback;
    a.p.progress_ctx = &pr;
    qb_quant_report rep;
    qb_error err = {0};
    if (!rc && qb_quantize(m, &a.p, a.out, &rep, &err)) rc = qb_report_error("quantize", &err);
    if (!rc) print_report(&a, &rep);
    qb_model_free(m);
    free(a.keep);
    return rc;
}

int qb_cmd_calibrate(int argc, char **argv) {
    quant_args a = {.p = qb_quant_default_params(QB_QUANT_STATIC)};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help_calibrate, stdout);
            return QB_EXIT_OK;
        }
        int rc = parse_common("calibrate", argc, argv, &i, &a);
        if (rc) return rc;
    }
    if (!a.dir) return qb_usage_error("calibrate", "missing MODEL_DIR");
    if (!a.p.calib_file) return qb_usage_error("calibrate", "missing --calib FILE");
    if (!a.out) return qb_usage_error("calibrate", "missing -o STATS.json");
    qb_cli_discard_on_interrupt("calibrate", a.out, NULL);
    qb_model *m = qb_cli_load("calibrate", a.dir, a.p.n_threads, NULL);
    if (!m) return QB_EXIT_FAIL;
    qb_progress pr = {0};
    a.p.progress = qb_progress_callback;
    a.p.progress_ctx = &pr;
    qb_quant_report rep = {0};
    qb_error err = {0};
    int rc = QB_EXIT_OK;
    if (qb_calibrate(m, &a.p, a.out, &rep, &err)) rc = qb_report_error("calibrate", &err);
    else {
        if (rep.warning[0]) fprintf(stderr, "qbert calibrate: warning: %s\n", rep.warning);
        printf("wrote %s: statistics of %d linear inputs over %d texts\n", a.out, qb_model_linear_count(m),
               rep.calib_used);
    }
    qb_model_free(m);
    return rc;
}
