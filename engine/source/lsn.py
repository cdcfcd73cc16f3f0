"""PostgreSQL log sequence numbers (LSNs).

An LSN is a 64-bit byte position in the WAL. PostgreSQL prints it as two
32-bit halves in uppercase hex without zero padding, e.g. ``16/B374D848``.
"""

from __future__ import annotations

import re
from typing import Final, TypeAlias

Lsn: TypeAlias = int

INVALID_LSN: Final[Lsn] = 0
MAX_LSN: Final[Lsn] = 0xFFFF_FFFF_FFFF_FFFF

# Same grammar as the server's pg_lsn input: 1-8 hex digits on each side, nothing else.
# int(x, 16) alone would also accept "0x", "_" and surrounding whitespace.
_LSN_RE: Final = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def format_lsn(lsn: Lsn) -> str:
    """Render ``lsn`` the way PostgreSQL does (``16/B374D848``)."""
    if not 0 <= lsn <= MAX_LSN:
        raise ValueError(f"LSN out of range: {lsn!r}")
    return f"{lsn >> 32:X}/{lsn & 0xFFFF_FFFF:X}"


def parse_lsn(text: str) -> Lsn:
    """Parse PostgreSQL's ``XXX/XXX`` LSN text; raises ValueError naming the bad text."""
    match = _LSN_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"malformed LSN: {text!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)
