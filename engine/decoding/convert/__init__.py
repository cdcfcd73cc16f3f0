"""Convert PostgreSQL text output to Arrow, exactly, one whole column at a time.

Values arrive as PostgreSQL text output (pgoutput tuples and ``COPY ... (FORMAT csv)``), produced
under the session settings ``DateStyle=ISO, MDY``, ``IntervalStyle=iso_8601``, ``TimeZone=UTC``,
``extra_float_digits=3`` and ``bytea_output=hex`` (``engine/source/connection.py``).  Both the
copy and the stream go through :func:`convert`, so a value means the same whichever path it took.
Every conversion is exact: a value that the column's Arrow type cannot hold raises
:class:`~engine.errors.ValueConversionError` naming it, never a rounded or shifted value.

One module per family: :mod:`.numeric` (integers, floats, decimals, booleans), :mod:`.text`
(strings, json, uuid, bytea), :mod:`.temporal` (dates, times, timestamps), :mod:`.interval`,
:mod:`.arrays`.  Each is vectorised over the column; per-value Python runs only for arrays,
distinct interval texts and the rare dates/timestamps Arrow's parser cannot read.
"""

from __future__ import annotations

import pyarrow as pa

from engine.decoding.convert.arrays import convert_array
from engine.decoding.convert.interval import convert_interval
from engine.decoding.convert.numeric import (
    convert_bool,
    convert_decimal,
    convert_float,
    convert_int16,
    convert_int32,
    convert_int64,
    convert_oid,
)
from engine.decoding.convert.site import Converter, Site, first_failing
from engine.decoding.convert.temporal import convert_date, convert_time, convert_timestamp, convert_timestamptz
from engine.decoding.convert.text import convert_bytea, convert_string
from engine.decoding.types import ColumnType, ConvKind

__all__ = ["convert"]


def convert(values: pa.Array, ctype: ColumnType, table: str, column: str) -> pa.Array:
    """Convert PostgreSQL text output (binary/string, nulls allowed) to ``ctype.arrow``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    site = Site(table, column, ctype)
    return _convert_text(_as_text(values, site), site)


def _convert_text(text: pa.StringArray, site: Site) -> pa.Array:
    if text.null_count == len(text):
        return pa.nulls(len(text), site.ctype.arrow)
    return _CONVERTERS[site.ctype.kind](text, site)


def _as_text(values: pa.Array, site: Site) -> pa.StringArray:
    t = values.type
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        values = values.cast(pa.binary())
        t = values.type
    elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
        values = values.cast(pa.string())
        t = values.type
    if pa.types.is_string(t):
        return values
    if pa.types.is_binary(t):
        try:
            return values.cast(pa.string())
        except pa.ArrowInvalid:
            idx = first_failing(values, lambda a: a.cast(pa.string()))
            raw = values[idx].as_py()
            raise site.error(
                raw.decode("utf-8", "backslashreplace"),
                "the text is not valid UTF-8",
                "the source database must use UTF8 encoding (client_encoding UTF8)",
                index=idx,
            ) from None
    raise TypeError(f"expected a binary or string array of PostgreSQL text output, got {t}")


def _convert_array(text: pa.StringArray, site: Site) -> pa.Array:
    return convert_array(text, site, _convert_text)


_CONVERTERS: dict[ConvKind, Converter] = {
    ConvKind.INT16: convert_int16,
    ConvKind.INT32: convert_int32,
    ConvKind.INT64: convert_int64,
    ConvKind.OID: convert_oid,
    ConvKind.DECIMAL: convert_decimal,
    ConvKind.FLOAT32: convert_float(pa.float32()),
    ConvKind.FLOAT64: convert_float(pa.float64()),
    ConvKind.BOOL: convert_bool,
    ConvKind.STRING: convert_string,
    ConvKind.JSON: convert_string,  # kept as printed: not reformatted
    ConvKind.UUID: convert_string,
    ConvKind.DATE: convert_date,
    ConvKind.TIME: convert_time,
    ConvKind.TIMESTAMP: convert_timestamp,
    ConvKind.TIMESTAMPTZ: convert_timestamptz,
    ConvKind.INTERVAL: convert_interval,
    ConvKind.BYTEA: convert_bytea,
    ConvKind.ARRAY: _convert_array,
}
