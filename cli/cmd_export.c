/* qbert export: a model as ONNX, for ONNX Runtime and other engines. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: qbert export MODEL_DIR -o MODEL.onnx [--opset N]\n"
    "\n"
    "Writes the model as one ONNX file with inputs input_ids, attention_mask and\n"
    "token_type_ids (int64, [batch, sequence], both dynamic) and output logits\n"
    "([batch, labels]; [batch, sequence, labels] for token classification;\n"
    "[batch, sequence, vocab] for a masked-LM head); a bare encoder gives\n"
    "last_hidden_state and sentence_embedding (its pooling).  All three inputs are\n"
    "required, token_type_ids too where the model has one token type or none\n"
    "(RoBERTa, DistilBERT): feed zeros.  RoBERTa's positions are counted in the\n"
    "graph from input_ids and attention_mask, as qbert counts them.\n"
    "Each linear keeps its format:\n"
    "  fp32, fp16, bf16     MatMul on the weights as stored (halves cast to FP32, so\n"
    "                       activations stay FP32: where qbert runs bf16 weights on\n"
    "                       its AVX512-BF16 kernels, which round activations to bf16,\n"
    "                       its outputs differ from the export's by up to ~1e-3)\n"
    "  int8, dynamic        DynamicQuantizeLinear + MatMulInteger, ONNX Runtime's own\n"
    "                       dynamic form (inputs quantized per tensor)\n"
    "  int8, static         QuantizeLinear/DequantizeLinear pairs carrying the\n"
    "                       calibrated input scales (SmoothQuant factors as a Mul)\n"
    "  int4, int4-weight-only  com.microsoft MatMulNBits (groups of 16, 32, 64,\n"
    "                       128 or 256 inputs: ONNX Runtime takes no others)\n"
    "3- and 2-bit, ternary and k-means weights, and 4/2-bit embedding tables have no\n"
    "ONNX operator: the export stops naming the layer.  Static int8 attention\n"
    "(--int8-attention) is written in FP32.\n"
    "\n"
    "  -o, --output PATH  the file to write (through a temporary name and a rename;\n"
    "                     an existing PATH must be a regular file)\n"
    "  --opset N          ONNX opset, 17 (default) to 21\n";

int qb_cmd_export(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *v;
    qb_export_params p = qb_export_default_params();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return QB_EXIT_OK;
        } else if ((v = qb_arg_path("-o", &i, argc, argv)) || (v = qb_arg_path("--output", &i, argc, argv))) {
            out = v;
        } else if ((v = qb_arg_value("--opset", &i, argc, argv))) {
            if (!qb_arg_int("export", "--opset", v, 17, 21, &p.opset)) return QB_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            return qb_usage_error("export", "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return qb_usage_error("export", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir) return qb_usage_error("export", "missing MODEL_DIR");
    if (!out) return qb_usage_error("export", "missing -o MODEL.onnx");
    qb_cli_discard_on_interrupt("export", out, NULL);
    qb_model *m = qb_cli_load("export", dir, 0, NULL);
    if (!m) return QB_EXIT_FAIL;
    qb_error err = {0};
    int rc = qb_export_onnx(m, out, &p, &err) ? qb_report_error("export", &err) : QB_EXIT_OK;
    qb_model_free(m);
    return rc;
}
