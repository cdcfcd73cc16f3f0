"""Integers, floats, decimals and booleans: Arrow's casts, which refuse what they cannot hold
exactly, with the refused value explained."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.convert.site import Converter, Site, cast_exact, first_failing
from engine.errors import VALUE_HINT

__all__ = [
    "convert_bool",
    "convert_decimal",
    "convert_float",
    "convert_int16",
    "convert_int32",
    "convert_int64",
    "convert_oid",
]

_INTEGER_TEXT = re.compile(r"-?\d+", re.ASCII)


def _explain_int(target: pa.DataType) -> Callable[[str], str]:
    def explain(value: str) -> str:
        if _INTEGER_TEXT.fullmatch(value):
            return f"out of range for {target}"
        return "not an integer"

    return explain


def convert_int16(text: pa.StringArray, site: Site) -> pa.Array:
    return cast_exact(text, pa.int16(), site, _explain_int(pa.int16()))


def convert_int32(text: pa.StringArray, site: Site) -> pa.Array:
    return cast_exact(text, pa.int32(), site, _explain_int(pa.int32()))


def convert_int64(text: pa.StringArray, site: Site) -> pa.Array:
    return cast_exact(text, pa.int64(), site, _explain_int(pa.int64()))


def convert_oid(text: pa.StringArray, site: Site) -> pa.Array:
    # Parsed as uint32 for the range check, stored as int64 (BIGINT has no unsigned surprises).
    return cast_exact(text, pa.uint32(), site, _explain_int(pa.uint32())).cast(pa.int64())


_INFINITIES = pa.array(["Infinity", "-Infinity"])


def convert_float(target: pa.DataType) -> Converter:
    """The converter to ``target`` (float32 or float64)."""

    def conv(text: pa.StringArray, site: Site) -> pa.Array:
        out = cast_exact(text, target, site, lambda _v: "not a floating-point number")
        # Arrow saturates out-of-range text to ±inf; PostgreSQL never prints such values, but a
        # silent infinity would be a changed value, so check whenever one appears.
        inf = pc.is_inf(out)
        if pc.any(inf).as_py():
            bad = pc.and_(inf, pc.invert(pc.is_in(text, value_set=_INFINITIES)))
            if pc.any(bad).as_py():
                idx = pc.index(bad, True).as_py()
                raise site.error(text[idx].as_py(), f"out of range for {target}", index=idx)
        return out

    return conv


_BOOL_TEXT = pa.array(["t", "f"])


def convert_bool(text: pa.StringArray, site: Site) -> pa.Array:
    bad = pc.and_(text.is_valid(), pc.invert(pc.is_in(text, value_set=_BOOL_TEXT)))
    if pc.any(bad).as_py():
        idx = pc.index(bad, True).as_py()
        raise site.error(text[idx].as_py(), "a boolean must be 't' or 'f'", index=idx)
    return pc.equal(text, "t")


_DECIMAL_TEXT = re.compile(r"-?(\d*)(?:\.(\d*))?", re.ASCII)


def convert_decimal(text: pa.StringArray, site: Site) -> pa.Array:
    target = site.ctype.arrow
    assert isinstance(target, pa.Decimal128Type)

    def explain(value: str) -> str:
        if value in ("NaN", "Infinity", "-Infinity"):
            return f"{value} cannot be stored in DECIMAL({target.precision},{target.scale})"
        m = _DECIMAL_TEXT.fullmatch(value)
        if m is None:
            return "not a decimal number"
        whole, frac = m.group(1).lstrip("0"), (m.group(2) or "").rstrip("0")
        if len(frac) > target.scale:
            return (
                f"it has {len(frac)} fractional digits but DECIMAL({target.precision},{target.scale}) "
                f"keeps {target.scale}; it would have to be rounded"
            )
        room = target.precision - target.scale
        if len(whole) > room:
            return (
                f"it has {len(whole)} integer digits but DECIMAL({target.precision},{target.scale}) "
                f"holds at most {room}"
            )
        return f"not representable as DECIMAL({target.precision},{target.scale})"

    # Arrow's string→decimal cast refuses both precision overflow and lossy rescaling
    # ("Rescaling Decimal value would cause data loss"), so no value is rounded here.
    try:
        return pc.cast(text, target)
    except pa.ArrowInvalid:
        idx = first_failing(text, lambda a: pc.cast(a, target))
        value = text[idx].as_py()
        # an unbounded numeric's type was chosen: its hint says how to choose another
        raise site.error(value, explain(value), site.ctype.misfit_hint or VALUE_HINT, index=idx) from None
