"""ctypes mirror of include/qbert.h: the structs the binding passes and the
function signatures.  ctypes.CDLL releases the GIL around every call."""
import ctypes
import os
from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_longlong, c_size_t, c_uint, c_void_p)

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """QBERT_LIB, then a copy bundled in the package, then the source
    tree's build/ (the binding used in place), then the system's."""
    env = os.environ.get("QBERT_LIB")
    if env:
        return [env]
    return [os.path.join(_HERE, "libqbert.so"),
            os.path.join(_HERE, "..", "..", "build", "libqbert.so"),
            "libqbert.so.0"]


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("qbert: libqbert.so not found; set QBERT_LIB or build it (make build). Tried: "
                      + ", ".join(tried))


class Error(Structure):
    _fields_ = [("code", c_int), ("msg", c_char * 512)]


class LoadParams(Structure):
    _fields_ = [("isa", c_char_p), ("allow_nonfinite", c_int), ("check_cache", c_char_p), ("n_threads", c_int)]


class ModelInfo(Structure):
    _fields_ = [("arch", c_int), ("task", c_int), ("model_type", c_char_p), ("class_name", c_char_p),
                ("hidden_act", c_char_p), ("tokenizer", c_char_p), ("isa", c_char_p)] + \
        [(n, c_int) for n in ("vocab_size", "hidden_size", "embedding_size", "num_layers", "num_heads",
                              "intermediate_size", "max_position", "type_vocab_size", "num_hidden_groups",
                              "inner_group_num", "num_labels", "mask_token_id", "head_function")] + \
        [("layer_norm_eps", c_float), ("n_params", c_int64), ("file_bytes", c_int64), ("n_tensors", c_int)]


class Encoding(Structure):
    _fields_ = [("input_ids", POINTER(c_int32)), ("token_type_ids", POINTER(c_int32)),
                ("word_ids", POINTER(c_int32)), ("n", c_int), ("n_truncated", c_int), ("cap", c_int),
                ("work", c_void_p)]


class TokenOffset(Structure):
    _fields_ = [("start", c_size_t), ("end", c_size_t), ("segment", c_int), ("special", c_int)]


class Words(Structure):
    _fields_ = [("words", POINTER(c_char_p)), ("lens", POINTER(c_size_t)), ("n", c_int)]


class WordSpan(Structure):
    _fields_ = [("start", c_size_t), ("end", c_size_t), ("tok_start", c_size_t), ("tok_end", c_size_t)]


class Entity(Structure):
    _fields_ = [("label", c_int), ("type_offset", c_int), ("segment", c_int), ("start", c_size_t), ("end", c_size_t),
                ("score", c_double)]


class SessionParams(Structure):
    _fields_ = [("max_batch", c_int), ("max_seq", c_int), ("n_threads", c_int)]


class EmbedParams(Structure):
    _fields_ = [("pooling", c_uint), ("normalize", c_int), ("max_length", c_int)]


PROGRESS_FN = ctypes.CFUNCTYPE(None, c_void_p, c_char_p, ctypes.c_long, ctypes.c_long)


class EvalParams(Structure):
    _fields_ = [("data", c_char_p), ("task", c_char_p)] + \
        [(n, c_int) for n in ("text_col", "pair_col", "label_col", "header", "limit", "max_length", "batch",
                              "n_threads")] + \
        [("reference", c_void_p), ("progress", PROGRESS_FN), ("progress_ctx", c_void_p)]


class EntityScore(Structure):
    _fields_ = [("type", c_char * 24), ("f1", c_double), ("precision", c_double), ("recall", c_double),
                ("gold", c_longlong), ("pred", c_longlong), ("tp", c_longlong)]


class EvalResult(Structure):
    _fields_ = [("task", c_char * 16), ("n", c_int), ("token_task", c_int), ("accuracy", c_double),
                ("macro_f1", c_double), ("correct", c_longlong), ("total", c_longlong),
                ("entity_f1", c_double), ("entity_precision", c_double), ("entity_recall", c_double),
                ("entity_gold", c_longlong), ("entity_pred", c_longlong), ("entity_tp", c_longlong),
                ("n_entity_types", c_int), ("entity_types", EntityScore * 32),
                ("words_unscored", c_int), ("words_tokenless", c_int), ("max_length", c_int), ("n_truncated", c_int),
                ("agreement", c_double), ("agreement_n", c_longlong), ("sqnr_db", c_double), ("kl", c_double),
                ("cosine", c_double), ("n_classes", c_int), ("precision", POINTER(c_double)),
                ("recall", POINTER(c_double)), ("f1", POINTER(c_double)), ("support", POINTER(c_longlong)),
                ("seconds", c_double)]


class QuantParams(Structure):
    _fields_ = [(n, c_int) for n in ("method", "per_channel", "act_per_token", "act_symmetric", "reduce_range",
                                     "bits", "ternary", "kmeans", "group_size", "weight_zero_point",
                                     "quantize_embeddings", "embedding_bits", "quantize_head")] + \
        [("keep", POINTER(c_char_p)), ("n_keep", c_int), ("precision_map", c_char_p), ("calib_file", c_char_p),
         ("calib_stats", c_char_p), ("calib_n", c_int), ("observer", c_char_p), ("int8_attention", c_int),
         ("smoothquant", c_int), ("smooth_alpha", c_float), ("gptq", c_int), ("gptq_damp", c_double),
         ("gptq_act_order", c_int), ("gptq_memory_mb", c_int), ("bias_correction", c_int), ("max_length", c_int),
         ("n_threads", c_int), ("force", c_int), ("parents", c_int), ("progress", PROGRESS_FN),
         ("progress_ctx", c_void_p)]


class QuantReport(Structure):
    _fields_ = [(n, c_int) for n in ("n_linears", "n_int8", "n_fp16", "n_bf16", "n_fp32", "n_lowbit",
                                     "calib_used")] + \
        [("in_bytes", c_int64), ("out_bytes", c_int64), ("weight_sqnr_db", c_double),
         ("codebook_sqnr_db", c_double), ("grid_sqnr_db", c_double), ("min_margin_db", c_double),
         ("n_below_grid", c_int), ("n_gptq_fallbacks", c_int), ("seconds", c_double), ("warning", c_char * 256)]


_P = c_void_p
_E = POINTER(Error)
_SIGNATURES = {
    "qb_model_load": (c_int, [c_char_p, POINTER(LoadParams), POINTER(_P), _E]),
    "qb_load_default_params": (LoadParams, []),
    "qb_model_free": (None, [_P]),
    "qb_model_warning": (c_char_p, [_P]),
    "qb_model_get_info": (None, [_P, POINTER(ModelInfo)]),
    "qb_model_label": (c_char_p, [_P, c_int]),
    "qb_model_max_length": (c_int, [_P, c_int]),
    "qb_model_quant_summary": (c_char_p, [_P]),
    "qb_encoding_free": (None, [POINTER(Encoding)]),
    "qb_tokenize": (c_int, [_P, c_char_p, c_size_t, c_char_p, c_size_t, c_int, POINTER(Encoding), _E]),
    "qb_split_words": (c_int, [_P, c_char_p, c_size_t, POINTER(WordSpan), POINTER(c_int), _E]),
    "qb_tokenize_word_pair": (c_int, [_P, POINTER(Words), POINTER(Words), c_int, POINTER(Encoding), _E]),
    "qb_token_text": (c_char_p, [_P, c_int32]),
    "qb_token_offsets": (c_int, [_P, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(Encoding), POINTER(TokenOffset),
                                 _E]),
    "qb_detokenize": (c_int, [_P, POINTER(c_int32), c_int, c_int, c_char_p, c_size_t, POINTER(c_size_t), _E]),
    "qb_session_create": (c_int, [_P, POINTER(SessionParams), POINTER(_P), _E]),
    "qb_session_free": (None, [_P]),
    "qb_session_run_encodings": (c_int, [_P, POINTER(POINTER(Encoding)), c_int, _E]),
    "qb_session_logits": (POINTER(c_float), [_P, c_int]),
    "qb_session_seq": (c_int, [_P]),
    "qb_model_embed_params": (EmbedParams, [_P]),
    "qb_pooling_parse": (c_uint, [c_char_p]),
    "qb_embed_dim": (c_int, [_P, c_uint]),
    "qb_model_prompt": (c_int, [_P, c_char_p, POINTER(c_char_p), _E]),
    "qb_session_set_pooling": (c_int, [_P, POINTER(EmbedParams), _E]),
    "qb_session_embedding": (POINTER(c_float), [_P, c_int]),
    "qb_eval_default_params": (EvalParams, []),
    "qb_evaluate": (c_int, [_P, POINTER(EvalParams), POINTER(EvalResult), _E]),
    "qb_eval_result_free": (None, [POINTER(EvalResult)]),
    "qb_quant_default_params": (QuantParams, [c_int]),
    "qb_quant_method_parse": (c_int, [c_char_p, POINTER(c_int)]),
    "qb_quantize": (c_int, [_P, POINTER(QuantParams), c_char_p, POINTER(QuantReport), _E]),
    "qb_status_name": (c_char_p, [c_int]),
    "qb_softmax": (None, [POINTER(c_float), c_int, POINTER(c_float)]),
    "qb_sigmoid": (None, [POINTER(c_float), c_int, POINTER(c_float)]),
    "qb_head_scores": (None, [_P, POINTER(c_float), c_int, POINTER(c_float)]),
    "qb_head_function_name": (c_char_p, [c_int]),
    "qb_entities_simple": (c_int, [_P, POINTER(Encoding), POINTER(c_float), POINTER(WordSpan), c_int, c_int,
                                   POINTER(Entity)]),
}

lib = _load()
for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype, _f.argtypes = _res, _args
