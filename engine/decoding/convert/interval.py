"""Intervals: PostgreSQL ``interval`` text (``IntervalStyle=iso_8601``) parsed exactly into Arrow.

PostgreSQL keeps an interval as three independent fields (months, days, microseconds) and
prints them as ``P[nY][nM][nD][T[nH][nM][n.fS]]`` where every part carries its own sign,
e.g. ``P1Y2M3DT4H5M6.5S``, ``PT-1M``, ``P-1Y-2M``, ``P-1DT2H3M4.000001S``, ``PT0S``.
The result maps one-to-one onto Arrow's ``month_day_nano_interval``; nothing is normalised
(a day is not folded into hours, nor 12 months into a year beyond what PostgreSQL did).
The time part is limited to Arrow's 64-bit nanoseconds (about ±2562047 hours; PostgreSQL allows
1000 times more).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.convert.site import Site
from engine.errors import IntervalParseError

__all__ = ["MonthDayNano", "convert_interval", "parse_iso_interval"]

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_NANOS_PER_SECOND = 1_000_000_000
_NANOS_PER_MINUTE = 60 * _NANOS_PER_SECOND
_NANOS_PER_HOUR = 60 * _NANOS_PER_MINUTE

# Seconds may carry a sign of their own ('PT-0.5S'); a fraction beyond nanoseconds cannot be
# represented and is rejected below rather than rounded.
_ISO_INTERVAL = re.compile(
    r"P(?:(?P<y>[+-]?\d+)Y)?(?:(?P<mo>[+-]?\d+)M)?(?:(?P<d>[+-]?\d+)D)?"
    r"(?:T(?:(?P<h>[+-]?\d+)H)?(?:(?P<mi>[+-]?\d+)M)?"
    r"(?:(?P<ss>[+-])?(?P<s>\d+)(?:\.(?P<f>\d+))?S)?)?",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class MonthDayNano:
    """An interval exactly as Arrow's ``month_day_nano_interval`` stores it."""

    months: int
    days: int
    nanoseconds: int


def parse_iso_interval(text: str) -> MonthDayNano:
    """Parse one ISO 8601 interval as printed by PostgreSQL, exactly or not at all."""
    if text in ("infinity", "-infinity"):
        # PostgreSQL 17+ has infinite intervals; Arrow has no such value.
        raise IntervalParseError("infinite intervals have no Arrow/DuckDB equivalent")
    m = _ISO_INTERVAL.fullmatch(text)
    if m is None or text == "P" or text.endswith("T"):
        raise IntervalParseError("not an ISO 8601 interval (IntervalStyle must be iso_8601)")
    g = m.groupdict()

    months = int(g["y"] or 0) * 12 + int(g["mo"] or 0)
    days = int(g["d"] or 0)

    fraction = g["f"] or ""
    if len(fraction) > 9:
        raise IntervalParseError("fractional seconds finer than a nanosecond cannot be represented")
    second_nanos = int(g["s"] or 0) * _NANOS_PER_SECOND + int(fraction.ljust(9, "0") or 0)
    if g["ss"] == "-":
        second_nanos = -second_nanos
    nanos = int(g["h"] or 0) * _NANOS_PER_HOUR + int(g["mi"] or 0) * _NANOS_PER_MINUTE + second_nanos

    if not _INT32_MIN <= months <= _INT32_MAX:
        raise IntervalParseError("the month count does not fit in 32 bits")
    if not _INT32_MIN <= days <= _INT32_MAX:
        raise IntervalParseError("the day count does not fit in 32 bits")
    if not _INT64_MIN <= nanos <= _INT64_MAX:
        # PostgreSQL keeps microseconds in 64 bits; Arrow keeps nanoseconds in 64 bits, so the
        # time part is limited to about ±2,562,047 hours (±106,751 days).
        raise IntervalParseError(
            "the time part exceeds Arrow's interval range of about ±2562047 hours (64-bit nanoseconds)"
        )
    return MonthDayNano(months, days, nanos)


_MONTH_DAY_NANO = struct.Struct("<iiq")  # Arrow's month_day_nano_interval value layout


def convert_interval(text: pa.StringArray, site: Site) -> pa.Array:
    # Parsing is per value in Python, so parse each distinct text once: interval columns
    # usually repeat a handful of values ('P1M', 'PT1H').
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary.to_pylist()
    data = bytearray(_MONTH_DAY_NANO.size * len(distinct))
    for j, v in enumerate(distinct):
        try:
            iv = parse_iso_interval(v)
        except IntervalParseError as exc:
            # the parser knows the text only: the error names the column and row here
            raise site.error(v, exc.reason, exc.hint, index=pc.index(text, v).as_py()) from None
        _MONTH_DAY_NANO.pack_into(data, _MONTH_DAY_NANO.size * j, iv.months, iv.days, iv.nanoseconds)
    values = pa.Array.from_buffers(pa.month_day_nano_interval(), len(distinct), [None, pa.py_buffer(data)])
    return pc.take(values, encoded.indices)
