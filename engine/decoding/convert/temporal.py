"""Dates, times and timestamps, exactly, at Arrow's speed for the common text.

Arrow's ISO 8601 cast handles the common ``YYYY-MM-DD HH:MM:SS.ffffff[+hh[:mm]]`` text at full
speed and rejects what it cannot read (`` BC``, 5-digit years, ``infinity``, offsets with
seconds) instead of misreading it.  Only when a batch contains such a value are the odd rows
parsed in Python, exactly, and merged back.

* Dates and timestamps BC or after year 9999 are converted exactly (proleptic Gregorian, as in
  PostgreSQL).  ``infinity``/``-infinity`` are rejected: Arrow has no such value, and DuckDB's
  reading of the extreme 64-bit values as infinity is not portable to Parquet.  Timestamps after
  294247-01-10 (beyond Arrow's 64-bit microseconds since 1970) and ``time '24:00:00'`` (outside
  Arrow's ``time64`` day) are rejected too.
* ``timetz`` is not converted here: it is kept as its text (e.g. ``12:00:00+05:30``), since Arrow
  has no time-with-offset type and turning it into a UTC time would drop the offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.convert.site import Site, first_failing
from engine.errors import VALUE_HINT

__all__ = ["convert_date", "convert_time", "convert_timestamp", "convert_timestamptz"]


class _Reject(Exception):
    """A single value cannot be converted; carries the reason for the user."""

    def __init__(self, reason: str, hint: str = VALUE_HINT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_HINT_INFINITY = (
    "Arrow has no infinite dates/timestamps; replace them in PostgreSQL (e.g. with NULL) or exclude the table"
)

_DATE_RE = re.compile(r"(\d{4,})-(\d\d)-(\d\d)( BC)?", re.ASCII)
_TIME_RE = re.compile(r"(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?", re.ASCII)
_TS_RE = re.compile(
    r"(\d{4,})-(\d\d)-(\d\d)(?: (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?"
    r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?",
    re.ASCII,
)
_REGULAR_DATE = r"^\d{4}-\d\d-\d\d$"
_REGULAR_TIME = r"^([01]\d|2[0-3]):\d\d:\d\d(\.\d{1,6})?$"
_REGULAR_TS = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$"
_REGULAR_TSTZ = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d(:\d\d)?$"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (astronomical years)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _check_date(year: int, month: int, day: int) -> None:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= mdays[month - 1]:
        raise _Reject("not a valid calendar date")


def _year(digits: str, bc: str | None) -> int:
    # PostgreSQL has no year 0: 1 BC is astronomical year 0.
    return 1 - int(digits) if bc else int(digits)


def _parse_date_days(value: str) -> int:
    if value in ("infinity", "-infinity"):
        raise _Reject(f"date '{value}' has no Arrow equivalent", _HINT_INFINITY)
    m = _DATE_RE.fullmatch(value)
    if m is None:
        raise _Reject("not a PostgreSQL ISO date (DateStyle must be ISO)")
    year, month, day = _year(m.group(1), m.group(4)), int(m.group(2)), int(m.group(3))
    _check_date(year, month, day)
    days = _days_from_civil(year, month, day)
    if not -_INT32_MAX < days < _INT32_MAX:  # ±INT32_MAX are DuckDB's ±infinity
        raise _Reject("outside the range of Arrow date32")
    return days


def _parse_time_us(value: str) -> int:
    m = _TIME_RE.fullmatch(value)
    if m is None:
        raise _Reject("not a PostgreSQL time (HH:MM:SS[.ffffff])")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if h == 24 and mi == 0 and s == 0 and not (m.group(4) or "").strip("0"):
        raise _Reject("24:00:00 is outside Arrow's time64 range [00:00:00, 24:00:00)")
    if h > 23 or mi > 59 or s > 59:
        raise _Reject("not a valid time of day")
    return ((h * 60 + mi) * 60 + s) * 1_000_000 + int((m.group(4) or "").ljust(6, "0"))


def _timestamp_parser(with_tz: bool) -> Callable[[str], int]:
    kind = "timestamptz" if with_tz else "timestamp"

    def parse(value: str) -> int:
        if value in ("infinity", "-infinity"):
            raise _Reject(f"{kind} '{value}' has no Arrow equivalent", _HINT_INFINITY)
        m = _TS_RE.fullmatch(value)
        if m is None:
            raise _Reject(f"not a PostgreSQL ISO {kind} (DateStyle must be ISO)")
        (y, mo, d, hh, mi, ss, frac, sign, oh, om, os_, bc) = m.groups()
        if (sign is not None) != with_tz:
            raise _Reject("unexpected zone offset" if sign else "missing zone offset")
        year, month, day = _year(y, bc), int(mo), int(d)
        _check_date(year, month, day)
        h, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
        if h > 23 or minute > 59 or sec > 59:
            raise _Reject("not a valid time of day")
        us = (((_days_from_civil(year, month, day) * 24 + h) * 60 + minute) * 60 + sec) * 1_000_000
        us += int((frac or "").ljust(6, "0"))
        if sign is not None:
            offset = (int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)) * 1_000_000
            us -= offset if sign == "+" else -offset  # local time minus offset = UTC
        if not -_INT64_MAX < us < _INT64_MAX:  # ±INT64_MAX are DuckDB's ±infinity
            raise _Reject("outside Arrow's timestamp range (64-bit microseconds since 1970, up to 294247 AD)")
        return us

    return parse


def _time_fast(text: pa.StringArray) -> pa.Array:
    # Arrow has no string→time cast; read it as a time on 1970-01-01 and keep the time of day.
    stamped = pc.binary_join_element_wise(pa.scalar("1970-01-01 "), text, "")
    return pc.cast(pc.cast(stamped, pa.timestamp("us")), pa.time64("us"))


def _temporal(
    text: pa.StringArray,
    site: Site,
    fast: Callable[[pa.StringArray], pa.Array],
    regular: str,
    slow: Callable[[str], int],
    storage: pa.DataType,
) -> pa.Array:
    target = site.ctype.arrow
    try:
        return fast(text)
    except pa.ArrowInvalid:
        pass

    def reason_for(value: str) -> _Reject:
        try:
            slow(value)
        except _Reject as rej:
            return rej
        return _Reject(f"not a valid {site.ctype.pg_display} value")

    is_regular = pc.fill_null(pc.match_substring_regex(text, regular), True)
    regular_text = pc.if_else(is_regular, text, pa.scalar(None, pa.string()))
    try:
        fast_out = fast(regular_text)
    except pa.ArrowInvalid:
        idx = first_failing(regular_text, fast)
        value = text[idx].as_py()
        rej = reason_for(value)
        raise site.error(value, rej.reason, rej.hint, index=idx) from None

    odd_mask = pc.invert(is_regular)
    odd_idx = pc.indices_nonzero(odd_mask).to_pylist()
    slow_values: list[int] = []
    for i in odd_idx:
        value = text[i].as_py()
        try:
            slow_values.append(slow(value))
        except _Reject as rej:
            raise site.error(value, rej.reason, rej.hint, index=i) from None
    merged = pc.replace_with_mask(fast_out.cast(storage), odd_mask, pa.array(slow_values, storage))
    return merged.cast(target)


def convert_date(text: pa.StringArray, site: Site) -> pa.Array:
    return _temporal(text, site, lambda a: pc.cast(a, pa.date32()), _REGULAR_DATE, _parse_date_days, pa.int32())


def convert_time(text: pa.StringArray, site: Site) -> pa.Array:
    return _temporal(text, site, _time_fast, _REGULAR_TIME, _parse_time_us, pa.int64())


def convert_timestamp(text: pa.StringArray, site: Site) -> pa.Array:
    target = pa.timestamp("us")
    return _temporal(text, site, lambda a: pc.cast(a, target), _REGULAR_TS, _timestamp_parser(False), pa.int64())


def convert_timestamptz(text: pa.StringArray, site: Site) -> pa.Array:
    target = pa.timestamp("us", tz="UTC")
    return _temporal(text, site, lambda a: pc.cast(a, target), _REGULAR_TSTZ, _timestamp_parser(True), pa.int64())
