"""The binding's ctypes mirrors of qbert.h's structs against the C compiler:
every field's offset and every struct's size.  A field added to qbert.h and
not to python/qbert/_lib.py shifts the rest, and the library then reads the
caller's values into the wrong fields without any error.
    test_layout.py INCLUDE_DIR WORK_DIR    (cc from the environment's CC)"""
import ctypes
import os
import subprocess
import sys

from qbert import _lib

C_NAMES = {
    "Error": "qb_error", "LoadParams": "qb_load_params", "ModelInfo": "qb_model_info",
    "Encoding": "qb_encoding", "Words": "qb_words", "WordSpan": "qb_word_span", "Entity": "qb_entity",
    "SessionParams": "qb_session_params", "EmbedParams": "qb_embed_params", "EvalParams": "qb_eval_params",
    "EntityScore": "struct qb_entity_score", "EvalResult": "qb_eval_result", "QuantParams": "qb_quant_params",
    "QuantReport": "qb_quant_report", "TokenOffset": "qb_token_offset",
}


def mirrors():
    found = {n: c for n, c in vars(_lib).items()
             if isinstance(c, type) and issubclass(c, ctypes.Structure) and c is not ctypes.Structure}
    unnamed = sorted(set(found) - set(C_NAMES))
    if unnamed:
        sys.exit(f"test_layout.py: no C name for {', '.join(unnamed)}: add it to C_NAMES")
    return found


def c_layout(include, work, structs):
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "qbert.h"', "int main(void) {"]
    for name, cls in structs.items():
        c = C_NAMES[name]
        lines.append(f'    printf("{name} sizeof %zu\\n", sizeof({c}));')
        for field, _ in cls._fields_:
            lines.append(f'    printf("{name} {field} %zu\\n", offsetof({c}, {field}));')
    lines += ["    return 0;", "}"]
    src, exe = os.path.join(work, "layout.c"), os.path.join(work, "layout")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run([os.environ.get("CC", "cc"), "-I", include, src, "-o", exe], check=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return {tuple(l.split()[:2]): int(l.split()[2]) for l in out.splitlines()}


def main():
    include, work = sys.argv[1], sys.argv[2]
    structs = mirrors()
    want = c_layout(include, work, structs)
    bad = []
    for name, cls in structs.items():
        got = {"sizeof": ctypes.sizeof(cls), **{f: getattr(cls, f).offset for f, _ in cls._fields_}}
        bad += [f"{name}.{key}: ctypes {value}, C {want[(name, key)]}"
                for key, value in got.items() if want[(name, key)] != value]
    for b in bad:
        print("FAIL:", b, file=sys.stderr)
    print(f"{len(structs)} structs, {len(want)} offsets and sizes compared, {len(bad)} differ")
    sys.exit(1 if bad else 0)


main()
