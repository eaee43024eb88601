/* A trainer's weights written back out as a Hugging Face checkpoint
 * directory that the engine (and transformers) loads unchanged. */
#ifndef QB_TRAIN_CHECKPOINT_H
#define QB_TRAIN_CHECKPOINT_H

#include "train/trainer.h"

/* Fills dir (which exists and is empty) with model.safetensors (every
 * trained tensor under its checkpoint name), config.json (the source
 * model's, with the trained head's class, id2label and label2id; a masked
 * LM: *ForMaskedLM without labels, its decoder tied to the word
 * embeddings) and the tokenizer files. */
qb_status qb_checkpoint_write(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                              qb_error *err);

/* QAT: fills dir with the static model the trainer's fake quantization
 * describes (docs/quantized-format.md), the same files `qbert quantize
 * --method static` writes: int8 weights for 5..8-bit grids, the packed
 * int4/int3/int2/ternary format for 4 bits and fewer.  Converted in
 * memory: the quantizer reads the trainer's parameters through its view of
 * the model, the same tensors a written FP32 checkpoint would hold. */
qb_status qb_checkpoint_write_qat(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                                   qb_error *err);

#endif
