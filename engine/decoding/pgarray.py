"""Parse the text form of one-dimensional PostgreSQL arrays.

PostgreSQL prints arrays as ``{a,b,c}``.  An element is double-quoted when it is empty,
contains a delimiter, brace, double quote, backslash or ASCII whitespace, or spells ``NULL``
in any case; inside quotes ``"`` and ``\\`` are backslash-escaped.  An unquoted ``NULL``
(case-insensitive) is a NULL element; a quoted ``"NULL"`` is the four-letter string.
A lower bound other than 1 is printed as a prefix, ``[0:2]={1,2,3}``: such a value is refused
(a list has no lower bound, so keeping only the elements would move each to another index).
Multi-dimensional values are rejected: they have no faithful one-level list form.

The parser also accepts what ``array_in`` accepts for one dimension (whitespace around
elements, backslash escapes in unquoted elements), so hand-written input behaves the same.
"""

from __future__ import annotations

import re

from engine.errors import ArrayLowerBoundError, ArrayParseError, MultiDimensionalArrayError

__all__ = ["parse_array"]

# array_in's notion of whitespace is ASCII only; str.strip() would also eat e.g. U+00A0,
# which PostgreSQL prints unquoted as part of the element.
_WS = " \t\n\r\v\f"

_BOUND = r"[ \t\n\r\v\f]*([+-]?\d+)[ \t\n\r\v\f]*"
_ONE_DIM = re.compile(rf"\[{_BOUND}(?::{_BOUND})?\]")
_DIMS = re.compile(rf"(?:\[{_BOUND}(?::{_BOUND})?\])+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_UNQUOTED = re.compile(r'(?:[^,{}"\\]|\\.)*', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def parse_array(text: str) -> list[str | None]:
    """Split one array literal into element texts (``None`` for NULL elements)."""
    body = text.strip(_WS)
    expected_len: int | None = None
    if body.startswith("["):
        expected_len, body = _strip_dimensions(body)
    if len(body) < 2 or body[0] != "{" or body[-1] != "}":
        raise ArrayParseError("array text must be enclosed in braces")
    inner = body[1:-1]

    items = _parse_escaped(inner) if '"' in inner or "\\" in inner else _parse_plain(inner)
    if expected_len is not None and expected_len != len(items):
        raise ArrayParseError(f"array dimensions promise {expected_len} elements but {len(items)} are present")
    return items


def _strip_dimensions(body: str) -> tuple[int | None, str]:
    eq = body.find("=")
    if eq < 0:
        raise ArrayParseError("array dimensions are not followed by '='")
    dims = body[:eq].strip(_WS)
    if not _DIMS.fullmatch(dims):
        raise ArrayParseError("malformed array dimensions")
    one = _ONE_DIM.fullmatch(dims)
    if one is None:
        raise MultiDimensionalArrayError()
    lower, upper = one.group(1), one.group(2)
    if upper is not None and int(lower) != 1:
        raise ArrayLowerBoundError(dims)
    length = int(upper or lower)  # '[n]' means '[1:n]'; either way the upper bound is the length
    return length, body[eq + 1 :].strip(_WS)


def _parse_plain(inner: str) -> list[str | None]:
    # Fast path: no quoting or escaping, so a split is exact.
    if "{" in inner or "}" in inner:
        if inner.lstrip(_WS).startswith("{"):
            raise MultiDimensionalArrayError()
        raise ArrayParseError("unexpected brace inside an array element")
    if not inner.strip(_WS):
        return []
    out: list[str | None] = []
    for raw in inner.split(","):
        item = raw.strip(_WS)
        if not item:
            raise ArrayParseError("empty unquoted array element")
        out.append(None if len(item) == 4 and item.upper() == "NULL" else item)
    return out


def _parse_escaped(inner: str) -> list[str | None]:
    out: list[str | None] = []
    pos = 0
    end = len(inner)
    if not inner.strip(_WS):
        return out
    while True:
        while pos < end and inner[pos] in _WS:
            pos += 1
        if pos < end and inner[pos] == '"':
            m = _QUOTED.match(inner, pos)
            if m is None:
                raise ArrayParseError("unterminated quoted array element")
            content = m.group(1)
            out.append(_ESCAPE.sub(r"\1", content) if "\\" in content else content)
            pos = m.end()
            while pos < end and inner[pos] in _WS:
                pos += 1
        elif pos < end and inner[pos] == "{":
            raise MultiDimensionalArrayError()
        else:
            m = _UNQUOTED.match(inner, pos)
            assert m is not None  # the pattern can match the empty string
            out.append(_unquoted_element(m.group(0)))
            pos = m.end()
        if pos == end:
            return out
        if inner[pos] != ",":
            raise ArrayParseError(f"unexpected character {inner[pos]!r} in array text")
        pos += 1


def _unquoted_element(raw: str) -> str | None:
    if "\\" not in raw:
        item = raw.strip(_WS)
        if not item:
            raise ArrayParseError("empty unquoted array element")
        if len(item) == 4 and item.upper() == "NULL":
            return None
        return item
    # Escaped characters are literal: they are neither trimmed nor part of a NULL marker.
    chars: list[str] = []
    keep = 0  # length of chars up to the last character that must survive trimming
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            chars.append(raw[i + 1])
            keep = len(chars)
            i += 2
            continue
        if c in _WS and not chars:
            i += 1
            continue
        chars.append(c)
        if c not in _WS:
            keep = len(chars)
        i += 1
    return "".join(chars[:keep])
