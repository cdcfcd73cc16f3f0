"""Strings (text, json, uuid, and every type kept as its text) and bytea.

Strings are kept exactly as PostgreSQL printed them (json is not reformatted, ``char(n)`` keeps
its padding). bytea arrives as hex text (``bytea_output=hex``) and is decoded in one pass over the
whole column's bytes.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.convert.site import Site

__all__ = ["convert_bytea", "convert_string"]

_INT32_MAX = 2**31 - 1


def convert_string(text: pa.StringArray, site: Site) -> pa.Array:
    return text


def convert_bytea(text: pa.StringArray, site: Site) -> pa.Array:
    valid = text.is_valid()
    ok = pc.and_(pc.starts_with(text, "\\x"), pc.equal(pc.bit_wise_and(pc.binary_length(text), 1), 0))
    bad = pc.and_(valid, pc.invert(ok))
    if pc.any(bad).as_py():
        idx = pc.index(bad, True).as_py()
        raise site.error(text[idx].as_py(), "bytea text must be hex ('\\x...'); set bytea_output=hex", index=idx)
    # An explicit stop: pyarrow 26's binary_slice without one fails ("Negative buffer resize").
    digits = pc.binary_slice(text.cast(pa.binary()), 2, _INT32_MAX)
    offsets = pa.Array.from_buffers(pa.int32(), len(digits) + 1, [None, digits.buffers()[1]], offset=digits.offset)
    start, stop = offsets[0].as_py(), offsets[-1].as_py()
    hex_text = digits.buffers()[2].to_pybytes()[start:stop] if stop > start else b""
    try:
        data = bytes.fromhex(hex_text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        data = None
    # bytes.fromhex skips whitespace between bytes, which would shift every later value; a
    # length check catches it along with any invalid digit.
    if data is None or 2 * len(data) != len(hex_text):
        for i, v in enumerate(text.to_pylist()):
            if v is None:
                continue
            try:
                if 2 * len(bytes.fromhex(v[2:])) == len(v) - 2:
                    continue
            except ValueError:
                pass
            raise site.error(v, "not valid hex bytea text", index=i)
        raise AssertionError("unreachable: bytea batch failed but no value did")
    half = pc.divide(pc.subtract(offsets, offsets[0]), 2).cast(pa.int32())
    out = pa.Array.from_buffers(pa.binary(), len(text), [None, half.buffers()[1], pa.py_buffer(data)])
    if text.null_count:
        out = pc.if_else(valid, out, pa.scalar(None, pa.binary()))
    return out
