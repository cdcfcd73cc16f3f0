"""The column a conversion is for, and how a refused value is found and named.

Converters work on whole Arrow arrays; only once a whole-array attempt fails is the first failing
value looked for (by bisection), so the error can name it, its row, its column and its table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from engine.decoding.types import ColumnType
from engine.errors import VALUE_HINT, ValueConversionError, shorten_value

__all__ = ["Converter", "Site", "cast_exact", "first_failing"]


@dataclass(frozen=True)
class Site:
    """Where values are being converted: table, column, its type, and whether they are the
    elements of an array column (then errors name the element)."""

    table: str
    column: str
    ctype: ColumnType
    in_array: bool = False

    def error(self, value: str, detail: str, hint: str = VALUE_HINT, index: int | None = None) -> ValueConversionError:
        if self.in_array:
            detail = f"array element {shorten_value(value, 40)!r}: {detail}"
        return ValueConversionError(
            self.table, self.column, value, detail, hint, type_name=self.ctype.pg_display, index=index
        )


# One column's text (a string array) to its Arrow type; raises ValueConversionError.
Converter = Callable[[pa.StringArray, Site], pa.Array]


def first_failing(arr: pa.Array, attempt: Callable[[pa.Array], object]) -> int:
    """Index of the first element for which ``attempt`` fails, found by bisection.

    Only used once a whole-array attempt failed, so the error can name the value.
    """
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            attempt(arr.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            hi = mid
        else:
            lo = mid
    return lo


def cast_exact(text: pa.StringArray, target: pa.DataType, site: Site, explain: Callable[[str], str]) -> pa.Array:
    """Arrow's cast of the whole array; on failure, the first value it refuses, explained."""
    try:
        return pc.cast(text, target)
    except pa.ArrowInvalid:
        idx = first_failing(text, lambda a: pc.cast(a, target))
        value = text[idx].as_py()
        raise site.error(value, explain(value), index=idx) from None
