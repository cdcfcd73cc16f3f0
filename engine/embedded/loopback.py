"""The loopback address the throwaway servers listen on, a free port there, and the tail of a
server's log (what a failed start reports)."""

from __future__ import annotations

import socket
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, start: int = 0, lines: int = 30) -> str:
    """The last ``lines`` lines written to ``path`` from byte ``start`` on ('' when unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
