"""One-dimensional arrays: each value split into its elements (:mod:`engine.decoding.pgarray`),
all elements of the batch converted at once as their element type, and the lists rebuilt.

Arrays with a lower bound other than 1 (``[0:2]={1,2,3}``) and multi-dimensional array values are
refused (their table stops): a one-level list cannot hold them faithfully.
"""

from __future__ import annotations

import bisect

import pyarrow as pa

from engine.decoding.convert.site import Converter, Site
from engine.decoding.pgarray import parse_array
from engine.errors import ArrayParseError, ValueConversionError

__all__ = ["convert_array"]


def convert_array(text: pa.StringArray, site: Site, convert_elements: Converter) -> pa.Array:
    """Convert array texts; ``convert_elements`` converts the flattened elements (any kind)."""
    elem = site.ctype.element
    assert elem is not None
    offsets: list[int] = [0]
    nulls: list[bool] = []
    flat: list[str | None] = []
    for i, v in enumerate(text.to_pylist()):
        if v is None:
            nulls.append(True)
        else:
            try:
                flat.extend(parse_array(v))
            except ArrayParseError as exc:
                # the parser knows the text only: the error names the column and row here
                raise site.error(v, exc.reason, exc.hint, index=i) from None
            nulls.append(False)
        offsets.append(len(flat))
    elem_site = Site(site.table, site.column, elem, in_array=True)
    try:
        values = convert_elements(pa.array(flat, pa.string()), elem_site)
    except ValueConversionError as exc:
        if exc.index is None:
            raise
        # Report the row, not the position in the flattened elements.
        row = bisect.bisect_right(offsets, exc.index) - 1
        raise ValueConversionError(
            exc.table, exc.column, exc.value, exc.detail, exc.hint, site.ctype.pg_display, index=row
        ) from None
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        values,
        type=site.ctype.arrow,
        mask=pa.array(nulls, pa.bool_()) if text.null_count else None,
    )
