"""Table names as operators write them and as SQL needs them.

Operators write PostgreSQL-style qualified names (``public.orders``, ``public."Order Items"``);
unquoted parts fold to lower case, quoted parts keep their case and may contain anything, with an
embedded ``"`` doubled. Every name that reaches SQL goes through :func:`quote_ident`, never string
formatting of raw input, so no name can inject SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import ConfigError

# PostgreSQL keeps identifiers up to NAMEDATALEN-1 bytes.
MAX_IDENTIFIER_BYTES = 63

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")

# Words display_ident quotes although they look plain (reserved in PostgreSQL or DuckDB). Only for
# messages: SQL goes through quote_ident, which quotes every name, so no keyword list decides it.
_RESERVED = frozenset(
    [
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
        "authorization",
        "binary",
        "collation",
        "concurrently",
        "cross",
        "current_schema",
        "freeze",
        "full",
        "ilike",
        "inner",
        "is",
        "isnull",
        "join",
        "left",
        "like",
        "natural",
        "notnull",
        "outer",
        "overlaps",
        "right",
        "similar",
        "tablesample",
        "verbose",
        "pivot",
        "unpivot",
        "qualify",
        "semi",
        "anti",
        "asof",
        "positional",
        "struct",
        "map",
    ]
)


def quote_ident(name: str) -> str:
    """Quote one identifier for PostgreSQL or DuckDB: always quoted, ``"`` doubled."""
    if "\x00" in name:
        raise ConfigError(f"identifier {name!r} contains a NUL byte", "rename the object")
    return '"' + name.replace('"', '""') + '"'


def needs_quoting(name: str) -> bool:
    return not _PLAIN.match(name) or name in _RESERVED


def display_ident(name: str) -> str:
    """An identifier as PostgreSQL would print it: quoted only when it must be."""
    return quote_ident(name) if needs_quoting(name) else name


@dataclass(frozen=True, slots=True, order=True)
class TableName:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{display_ident(self.schema)}.{display_ident(self.name)}"

    @property
    def sql(self) -> str:
        """Fully quoted, safe to splice into SQL."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def target_name(self) -> str:
        """The destination table name (ARCHITECTURE.md, "Contracts"): ``orders`` for ``public.orders``, else
        ``<schema>_<table>``."""
        return self.name if self.schema == "public" else f"{self.schema}_{self.name}"


def _split_parts(text: str) -> list[str]:
    """Split ``a."b.c"`` into identifier parts, honouring quotes and folding unquoted parts."""
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise ConfigError(
                f"table name {text!r} is incomplete", 'write it as schema.table, e.g. public."Order Items"'
            )
        if text[i] == '"':
            i += 1
            buf: list[str] = []
            while True:
                j = text.find('"', i)
                if j < 0:
                    raise ConfigError(f"table name {text!r} has an unclosed quote", 'close it: public."Order Items"')
                buf.append(text[i:j])
                if j + 1 < n and text[j + 1] == '"':
                    buf.append('"')
                    i = j + 2
                    continue
                i = j + 1
                break
            part = "".join(buf)
            if part == "":
                raise ConfigError(f"table name {text!r} has an empty quoted identifier", "remove the empty quotes")
        else:
            j = i
            while j < n and text[j] not in '."' and not text[j].isspace():
                j += 1
            part = text[i:j].lower()
            if not part:
                raise ConfigError(
                    f"table name {text!r} is malformed", 'write it as schema.table, e.g. public."Order Items"'
                )
            i = j
        if len(part.encode()) > MAX_IDENTIFIER_BYTES:
            raise ConfigError(
                f"identifier {part!r} in {text!r} is longer than {MAX_IDENTIFIER_BYTES} bytes",
                "PostgreSQL truncates longer names; use the name as it exists in the database",
            )
        parts.append(part)
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return parts
        if text[i] != ".":
            raise ConfigError(
                f"unexpected {text[i]!r} in table name {text!r}",
                'quote names with special characters: "My Table"',
            )
        i += 1


def parse_table_name(text: str, default_schema: str = "public") -> TableName:
    parts = _split_parts(text.strip())
    if len(parts) == 1:
        return TableName(default_schema, parts[0])
    if len(parts) == 2:
        return TableName(parts[0], parts[1])
    raise ConfigError(f"table name {text!r} has {len(parts)} parts", "use schema.table (no database prefix)")


def parse_table_list(text: str) -> list[TableName]:
    """Parse ``public.a, public."Order Items"``: commas inside quotes do not split."""
    items: list[str] = []
    buf: list[str] = []
    in_quotes = False
    for ch in text:
        if ch == '"':
            in_quotes = not in_quotes  # a doubled "" toggles twice and stays inside
        if ch == "," and not in_quotes:
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    items.append("".join(buf))
    tables = [parse_table_name(item) for item in items if item.strip()]
    if not tables:
        raise ConfigError("no tables given", "pass --tables public.a,public.b")
    seen: set[TableName] = set()
    for t in tables:
        if t in seen:
            raise ConfigError(f"table {t} is listed twice", "list each table once")
        seen.add(t)
    return tables
