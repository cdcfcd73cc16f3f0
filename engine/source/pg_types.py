"""Resolve a column's type from the catalog: domains down to their base type, arrays to their
element, as the type map (:func:`engine.decoding.types.map_type`) takes it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row

from engine.decoding.types import PgTypeInfo, TypeCategory

__all__ = ["TYPE_INFO_SQL", "load_type_info", "type_info_from_row"]

_TYPTYPE_CATEGORY = {
    "b": TypeCategory.BASE,
    "e": TypeCategory.ENUM,
    "c": TypeCategory.COMPOSITE,
    "r": TypeCategory.RANGE,
    "m": TypeCategory.MULTIRANGE,
    "p": TypeCategory.PSEUDO,
}

# Parameters: %(oid)s, %(typmod)s (a column's atttypid / atttypmod).  One row:
#   base_oid, base_name, base_typtype, base_typcategory, base_typmod, base_is_array, base_domains,
#   elem_oid, elem_name, elem_typtype, elem_typcategory, elem_typmod, elem_domains
# A domain's typmod applies to its base type; a domain cannot take a typmod itself, so the
# first domain in a stack that declares one wins.  An array's typmod applies to its element.
# True arrays are told apart from fixed-length types with a typelem (name, point) and from
# int2vector/oidvector by the element pointing back at them through typarray.
TYPE_INFO_SQL = """
WITH RECURSIVE
chain AS (
    SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype, t.typtypmod,
           %(typmod)s::int4 AS eff_typmod, ARRAY[]::name[] AS domains, 0 AS depth
    FROM pg_catalog.pg_type t
    WHERE t.oid = %(oid)s::oid
  UNION ALL
    SELECT b.oid, b.typname, b.typtype, b.typcategory, b.typelem, b.typbasetype, b.typtypmod,
           CASE WHEN c.typtypmod <> -1 THEN c.typtypmod ELSE c.eff_typmod END,
           c.domains || c.typname, c.depth + 1
    FROM chain c
    JOIN pg_catalog.pg_type b ON b.oid = c.typbasetype
    WHERE c.typtype = 'd' AND c.depth < 64
),
base AS (
    SELECT c.*,
           EXISTS (SELECT 1 FROM pg_catalog.pg_type e
                   WHERE e.oid = c.typelem AND e.typarray = c.oid) AS is_array
    FROM chain c
    WHERE c.typtype <> 'd'
),
elem_chain AS (
    SELECT e.oid, e.typname, e.typtype, e.typcategory, e.typbasetype, e.typtypmod,
           b.eff_typmod AS eff_typmod, ARRAY[]::name[] AS domains, 0 AS depth
    FROM base b
    JOIN pg_catalog.pg_type e ON e.oid = b.typelem
    WHERE b.is_array
  UNION ALL
    SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typbasetype, t.typtypmod,
           CASE WHEN c.typtypmod <> -1 THEN c.typtypmod ELSE c.eff_typmod END,
           c.domains || c.typname, c.depth + 1
    FROM elem_chain c
    JOIN pg_catalog.pg_type t ON t.oid = c.typbasetype
    WHERE c.typtype = 'd' AND c.depth < 64
),
elem AS (
    SELECT * FROM elem_chain WHERE typtype <> 'd'
)
SELECT b.oid::int8, b.typname::text, b.typtype::text, b.typcategory::text, b.eff_typmod,
       b.is_array, b.domains::text[],
       e.oid::int8, e.typname::text, e.typtype::text, e.typcategory::text, e.eff_typmod,
       e.domains::text[]
FROM base b
LEFT JOIN elem e ON true
"""


def load_type_info(conn: psycopg.Connection[Any], oid: int, typmod: int) -> PgTypeInfo:
    """Resolve a column type (``atttypid``, ``atttypmod``) with a psycopg 3 connection.

    A type dropped meanwhile raises :class:`LookupError`: callers say what it means for them
    (a check to run again, a table to resync).
    """
    # A tuple row factory regardless of how the caller configured the connection.
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(TYPE_INFO_SQL, {"oid": oid, "typmod": typmod})
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"type oid {oid} not found in pg_type (dropped concurrently?)")
    return type_info_from_row(row)


def type_info_from_row(row: tuple[Any, ...]) -> PgTypeInfo:
    """Build a :class:`PgTypeInfo` from one :data:`TYPE_INFO_SQL` result row."""
    (b_oid, b_name, b_typtype, _b_cat, b_typmod, b_is_array, b_domains,
     e_oid, e_name, e_typtype, _e_cat, e_typmod, e_domains) = row  # fmt: skip
    domain = b_domains[0] if b_domains else None
    if b_is_array:
        if e_oid is None:
            raise LookupError(f"element type of array type {b_name} (oid {b_oid}) not found")
        element = PgTypeInfo(
            oid=int(e_oid),
            name=str(e_name),
            typmod=int(e_typmod),
            category=_TYPTYPE_CATEGORY.get(str(e_typtype), TypeCategory.PSEUDO),
            domain=e_domains[0] if e_domains else None,
        )
        return PgTypeInfo(
            oid=int(b_oid),
            name=str(b_name),
            typmod=int(b_typmod),
            category=TypeCategory.ARRAY,
            element=element,
            domain=domain,
        )
    return PgTypeInfo(
        oid=int(b_oid),
        name=str(b_name),
        typmod=int(b_typmod),
        category=_TYPTYPE_CATEGORY.get(str(b_typtype), TypeCategory.PSEUDO),
        domain=domain,
    )
