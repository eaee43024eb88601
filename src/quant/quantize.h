/* Quantization with input scales that were trained rather than calibrated
 * (QAT): the library-internal entry behind qb_quantize's writer. */
#ifndef QB_QUANT_QUANTIZE_H
#define QB_QUANT_QUANTIZE_H

#include "core/json.h"
#include "model/model.h"
#include "rounding/affine.h"

/* Writes m, quantized as p says (static, per-tensor inputs), into dir, an
 * existing empty directory; linear l's input is quantized with inputs[l->id].
 * p->bits 5..8 give int8 weights on that grid; 4, 3, 2 or p->ternary the
 * packed low-bit formats (p->group_size, p->weight_zero_point as for
 * qb_quantize).  observer_label is what quantization_config names as the
 * observer.  config is the config.json to extend (NULL: m->dir's); the
 * weights are read from m->st, which a model built in memory may fill. */
qb_status qb_quantize_into(const qb_model *m, const json_t *config, const qb_quant_params *p,
                           const qb_qparams *inputs, const char *observer_label, const char *dir,
                           qb_quant_report *rep, qb_error *err);

#endif
