/* A trainer's weights written back out as a Hugging Face checkpoint
 * directory that the engine (and transformers) loads unchanged. */
#ifndef QB_TRAIN_CHECKPOINT_H
#define QB_TRAIN_CHECKPOINT_H

#include "train/trainer.h"

/* Fills dir (which exists and is empty) with model.safetensors (every
 * trained tensor under its checkpoint name), config.json (the source
 * model's, with the trained head's class, id2label and label2id) and the
 * tokenizer files. */
qb_status qb_checkpoint_write(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                              qb_error *err);

/* QAT: fills dir with the static int8 model the trainer's fake
 * quantization describes (docs/quantized-format.md), the same files
 * `qbert quantize --method static` writes. */
qb_status qb_checkpoint_write_int8(const qb_trainer *t, const char *const *labels, int n_labels, const char *dir,
                                   qb_error *err);

#endif
