"""What the config forms check and send: required fields, and a source's DSN with its password
(the form never holds the stored one)."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

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
