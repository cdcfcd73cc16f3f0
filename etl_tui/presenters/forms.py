"""What the config forms check and send: required fields, a source's DSN with its password
(the form never holds the stored one), and a pipeline's column type overrides."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

from engine.config.models import parse_column_type
from engine.errors import ConfigError
from engine.redaction import MASK


class FormError(ValueError):
    """A form value the operator must correct (shown inside the form)."""


def source_dsn_for_save(typed: str, password: str, *, original_redacted: str | None) -> str | None:
    """The DSN to send when a source form is saved; None keeps the stored one.

    The form never holds the stored password: editing shows the redacted DSN. Leaving it as shown
    (or empty) keeps the stored DSN; a password typed in the masked field goes into the DSN.
    """
    typed = typed.strip()
    editing = original_redacted is not None
    if editing and typed in ("", original_redacted) and not password:
        return None
    if not typed:
        if editing:
            typed = original_redacted or ""
        else:
            raise FormError("a DSN is required, e.g. postgresql://replicator@db:5432/shop")
    if password:
        return with_password(typed, password)
    if MASK in typed:
        raise FormError(f"the DSN still holds the mask {MASK}: type the password in the password field")
    return typed


def with_password(dsn: str, password: str) -> str:
    """Put ``password`` into a libpq URL or key=value DSN (replacing a masked one)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        userinfo, at, hostinfo = parts.netloc.rpartition("@")
        if not at or not userinfo:
            raise FormError("the DSN names no user to give the password to: add user@ before the host")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{quote(password, safe='')}@{hostinfo}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    escaped = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if re.search(rf"\bpassword\s*=\s*{re.escape(MASK)}", dsn, re.IGNORECASE):
        return re.sub(
            rf"(\bpassword\s*=\s*){re.escape(MASK)}", lambda m: m.group(1) + escaped, dsn, flags=re.IGNORECASE
        )
    if re.search(r"\bpassword\s*=", dsn, re.IGNORECASE):
        raise FormError("the DSN already has a password: leave the password field empty or remove it from the DSN")
    return f"{dsn} password={escaped}"


def required(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise FormError(f"{what} is required")
    return value


def column_type_entries(text: str) -> tuple[str, ...]:
    """The overrides typed in a pipeline form, one per line or comma-separated
    (``public.orders.amount=decimal(38,12)``), each checked as ``--column-type`` checks it."""
    entries = tuple(e for e in (part.strip() for part in _split_entries(text)) if e)
    seen: dict[tuple[object, str], str] = {}
    for entry in entries:
        try:
            table, column, _ = parse_column_type(entry)
        except ConfigError as exc:
            raise FormError(str(exc)) from None
        if (table, column) in seen:
            raise FormError(f"column types {seen[(table, column)]!r} and {entry!r} name the same column: keep one")
        seen[(table, column)] = entry
    return entries


def _split_entries(text: str) -> list[str]:
    """Split at newlines, and at commas outside quotes and parentheses: decimal(38,12) and
    public."a,b".c stay whole."""
    parts: list[str] = []
    for line in text.splitlines():
        buf: list[str] = []
        in_quotes, depth = False, 0
        for ch in line:
            if ch == '"':
                in_quotes = not in_quotes  # a doubled "" toggles twice and stays inside
            elif not in_quotes and ch in "()":
                depth = depth + 1 if ch == "(" else max(depth - 1, 0)
            elif ch == "," and not in_quotes and depth == 0:
                parts.append("".join(buf))
                buf = []
                continue
            buf.append(ch)
        parts.append("".join(buf))
    return parts
