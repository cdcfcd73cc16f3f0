"""Keep passwords out of everything the engine shows: DSNs are displayed redacted."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "****"

# key=value connection strings: password='it''s' or password=plain
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.|'')*'|\S+)", re.IGNORECASE)
# password=... inside a URL query string
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:****@host/db``; same for
    ``redis://`` URLs and libpq ``key=value`` strings."""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return MASK
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostinfo = netloc.rpartition("@")
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{hostinfo}"
        query = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)


def scrub(text: str, secrets: list[str]) -> str:
    """Remove known secret values from a message (e.g. a driver error that echoes its input)."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text


# password=... in free text, but not inside a URL query (masked by _QUERY_PASSWORD)
_KV_PASSWORD_IN_TEXT = re.compile(r"(?<![?&])(\bpassword\s*=\s*)('(?:[^'\\]|\\.|'')*'|\S+)", re.IGNORECASE)
# a URL with a password in its user info, anywhere in a text: scheme://user:secret@host (the
# password may itself hold an unescaped @: everything up to the last @ of the URL goes)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s/]+)(@)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Mask passwords in free text that may quote a DSN or URL (log lines, driver errors)."""
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    return _KV_PASSWORD_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
