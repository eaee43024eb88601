"""`qbert predict --json` lines, byte for byte, from the binding's results.

The CLI writes through jansson: ", " and ": " separators, UTF-8 kept,
control characters as \\uXXXX (upper-case hex), reals as %.9g with ".0"
added to a whole number and the exponent's "+" and leading zeros dropped,
NaN and infinities as null.  Input fields other than the text(s) come
first, as read; an output field of the same name replaces its value in
place."""
import json
import math
import re

_ESCAPE_HEX = re.compile(r"\\(\\|u00[0-9a-f]{2})")


def _upper(m):
    return m.group(0) if m.group(1) == "\\" else m.group(0).upper().replace("\\U", "\\u")


def string(s):
    return _ESCAPE_HEX.sub(_upper, json.dumps(s, ensure_ascii=False))


def real(x):
    if math.isnan(x) or math.isinf(x):
        return "null"
    s = "%.9g" % x
    if "e" in s:
        mant, exp = s.split("e")
        s = mant + "e" + ("-" if exp[0] == "-" else "") + (exp.lstrip("+-").lstrip("0") or "0")
    elif "." not in s:
        s += ".0"
    return s


def value(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return real(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, dict):
        return "{" + ", ".join(string(k) + ": " + value(x) for k, x in v.items()) + "}"
    return "[" + ", ".join(value(x) for x in v) + "]"


class Raw(str):
    """Already formatted (float32 lists with their own writer)."""


def reals(xs):
    return Raw("[" + ", ".join(real(x) for x in xs) + "]")


def line(fields):
    return "{" + ", ".join(string(k) + ": " + (v if isinstance(v, Raw) else value(v))
                           for k, v in fields.items()) + "}\n"


def parse_object(text):
    """A JSONL line as jansson reads it: no NaN/Infinity literals, integers
    within 64 bits."""
    def bad_constant(c):
        raise ValueError("invalid JSON: %s" % c)

    def bounded(s):
        v = int(s)
        if not -2 ** 63 <= v < 2 ** 63:
            raise ValueError("invalid JSON: too big integer %s" % s)
        return v
    return json.loads(text, parse_constant=bad_constant, parse_int=bounded)
