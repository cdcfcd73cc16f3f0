"""Snowflake identifiers: always quoted, upper-cased when that round-trips.

Snowflake folds unquoted identifiers to upper case and stores quoted ones as written.  A
PostgreSQL name such as ``orders`` therefore lands as ``ORDERS`` (so it is easy to query
unquoted), while ``Order Items`` or ``MixedCase`` keep their exact spelling.  The SQL text is
always the quoted stored spelling (``"ORDERS"``, ``"Order Items"``), never bare: a quoted
identifier is never read as a keyword, while a keyword list is never complete (``AT`` is not on
Snowflake's reserved list, yet a column named ``at`` written bare fails on the emulator, whose
SQL is DuckDB's).  Every name that reaches Snowflake SQL goes through :func:`snowflake_ident`; a
name can never end a quoted identifier early because embedded ``"`` are doubled, so no name can
inject SQL.

This assumes the account keeps ``QUOTED_IDENTIFIERS_IGNORE_CASE = FALSE`` (the default).
"""

from __future__ import annotations

import re

from engine.errors import ConfigError

__all__ = ["SNOWFLAKE_RESERVED", "qualified", "snowflake_column_name", "snowflake_ident"]

# Snowflake's documented limit on identifier length (characters).
MAX_IDENTIFIER_CHARS = 255

# Only plain ASCII names fold: str.upper() maps some non-ASCII letters to ASCII ones
# ('ı' → 'I', 'ſ' → 'S'), which would silently rename the column.
_PLAIN_ANY_CASE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z", re.ASCII)

# Snowflake's documented reserved and limited keywords (ANSI and Snowflake-specific). Quoting
# does not depend on it (every identifier is quoted); it names the words that most need it.
SNOWFLAKE_RESERVED = frozenset(
    [
        "ACCOUNT",
        "ALL",
        "ALTER",
        "AND",
        "ANY",
        "AS",
        "BETWEEN",
        "BY",
        "CASE",
        "CAST",
        "CHECK",
        "COLUMN",
        "CONNECT",
        "CONNECTION",
        "CONSTRAINT",
        "CREATE",
        "CROSS",
        "CURRENT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DATABASE",
        "DELETE",
        "DISTINCT",
        "DROP",
        "ELSE",
        "EXISTS",
        "FALSE",
        "FOLLOWING",
        "FOR",
        "FROM",
        "FULL",
        "GRANT",
        "GROUP",
        "GSCLUSTER",
        "HAVING",
        "ILIKE",
        "IN",
        "INCREMENT",
        "INNER",
        "INSERT",
        "INTERSECT",
        "INTO",
        "IS",
        "ISSUE",
        "JOIN",
        "LATERAL",
        "LEFT",
        "LIKE",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "MINUS",
        "NATURAL",
        "NOT",
        "NULL",
        "OF",
        "ON",
        "OR",
        "ORDER",
        "ORGANIZATION",
        "QUALIFY",
        "REGEXP",
        "REVOKE",
        "RIGHT",
        "RLIKE",
        "ROW",
        "ROWS",
        "SAMPLE",
        "SCHEMA",
        "SELECT",
        "SET",
        "SOME",
        "START",
        "TABLE",
        "TABLESAMPLE",
        "THEN",
        "TO",
        "TRIGGER",
        "TRUE",
        "TRY_CAST",
        "UNION",
        "UNIQUE",
        "UPDATE",
        "USING",
        "VALUES",
        "VIEW",
        "WHEN",
        "WHENEVER",
        "WHERE",
        "WITH",
    ]
)


def _validate(name: str) -> None:
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL byte", "rename the object")
    if not name:
        raise ConfigError("an identifier is empty", "Snowflake does not allow empty identifiers; rename the object")
    if len(name) > MAX_IDENTIFIER_CHARS:
        raise ConfigError(
            f"identifier {name[:40]!r}… is {len(name)} characters long",
            f"Snowflake identifiers hold at most {MAX_IDENTIFIER_CHARS} characters; rename the object or map it",
        )


def _folds(name: str) -> bool:
    """True when the name is single-case, so writing it upper-case loses nothing."""
    return name == name.upper() or name == name.lower()


def snowflake_column_name(name: str) -> str:
    """The name as Snowflake stores it (and reports it in INFORMATION_SCHEMA).

    ``orders`` → ``ORDERS``, ``select`` → ``SELECT``, ``Order Items`` → ``Order Items``.
    """
    _validate(name)
    # Reserved words fold like any other name (``select`` → ``SELECT``): the SQL text is quoted
    # anyway, so the stored spelling never depends on a keyword list.
    if _folds(name) and _PLAIN_ANY_CASE.match(name):
        return name.upper()
    return name


def snowflake_ident(name: str) -> str:
    """The SQL text for one identifier: ``"ORDERS"``, ``"SELECT"``, ``"AT"``, ``"Order Items"``, ``"a""b"``."""
    return '"' + snowflake_column_name(name).replace('"', '""') + '"'


def qualified(*parts: str) -> str:
    """Dotted SQL name, e.g. ``qualified("db", "public", "orders")`` → ``"DB"."PUBLIC"."ORDERS"``."""
    if not parts:
        raise ValueError("qualified() needs at least one name part")
    return ".".join(snowflake_ident(p) for p in parts)
