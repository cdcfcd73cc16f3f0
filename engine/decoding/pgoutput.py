"""Decoder for PostgreSQL's ``pgoutput`` logical replication messages.

One module, longer than most, on purpose: it is one wire protocol, and each message's type, byte
layout and parser sit together in the order of the protocol docs, with the hot path's raw
accessors beside the layouts they read.

One payload is one message: the body of an XLogData frame from a walsender, or
one ``data`` value of ``pg_logical_slot_{get,peek}_binary_changes``. The layout
follows "Logical Replication Message Formats" in the PostgreSQL protocol docs,
protocol versions 1 to 4:

* 1: transactions, DML, Relation/Type, Origin, logical decoding messages
* 2: streaming of in-progress transactions (Stream Start/Stop/Commit/Abort);
  between Stream Start and Stream Stop, Relation/Type/Insert/Update/Delete/
  Truncate/Message carry the xid of the (sub)transaction after the type byte
* 3: two-phase commit (Begin Prepare, Prepare, Commit/Rollback Prepared,
  Stream Prepare)
* 4: Stream Abort may carry the abort LSN and timestamp (only when the
  subscriber asked for ``streaming = parallel``; detected from the length)

Column values (:data:`TupleData`) stay raw so they can be converted in bulk
later: text-format ``bytes`` exactly as the server's output function printed
them, ``None`` for SQL NULL, :data:`UNCHANGED_TOAST` for a TOASTed value the
server did not resend because it did not change, or :class:`BinaryValue` (a
``bytes`` subclass holding the type's send-function output) when the
subscription requested binary transfer. Names (schemas, tables, columns,
prefixes, GIDs) are decoded as UTF-8, so the connection must use
``client_encoding = UTF8``.

Timestamps stay ``int`` microseconds since 2000-01-01 UTC, the server's own
representation; see :func:`pg_timestamp_to_datetime`.

Use :class:`Decoder` on a replication stream: it tracks stream blocks and the
negotiated protocol version. :func:`decode_message` is the stateless variant
for non-streaming input. Any malformed, truncated or out-of-place payload
raises :class:`PgOutputError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Final, Literal, TypeAlias, TypeVar

from engine.errors import PgOutputError  # raised here; one of the engine's errors

__all__ = [
    "BEGIN_FINAL_LSN",
    "BEGIN_SIZE",
    "COMMIT_END_LSN",
    "COMMIT_SIZE",
    "COMMIT_TIMESTAMP",
    "DML_RELID",
    "MAX_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "PG_EPOCH",
    "UNCHANGED_TOAST",
    "Begin",
    "BeginPrepare",
    "BinaryValue",
    "ColumnValue",
    "Commit",
    "CommitPrepared",
    "Decoder",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Message",
    "OldTupleKind",
    "Origin",
    "PgOutputError",
    "Prepare",
    "Relation",
    "RelationColumn",
    "ReplicaIdentity",
    "RollbackPrepared",
    "StreamAbort",
    "StreamCommit",
    "StreamPrepare",
    "StreamStart",
    "StreamStop",
    "Truncate",
    "TupleData",
    "TypeMessage",
    "UnchangedToast",
    "Update",
    "commit_unix_time",
    "decode_message",
    "pg_timestamp_to_datetime",
]

MIN_PROTOCOL_VERSION: Final = 1
MAX_PROTOCOL_VERSION: Final = 4
STREAMING_PROTOCOL_VERSION: Final = 2
TWO_PHASE_PROTOCOL_VERSION: Final = 3
PARALLEL_STREAMING_PROTOCOL_VERSION: Final = 4

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


def pg_timestamp_to_datetime(us: int) -> datetime:
    """Convert a TimestampTz (microseconds since 2000-01-01 UTC) to an aware UTC datetime."""
    return PG_EPOCH + timedelta(microseconds=us)


# --------------------------------------------------------------------------- values


class UnchangedToast(Enum):
    """Type of the :data:`UNCHANGED_TOAST` sentinel (an enum so type checkers can narrow on it)."""

    UNCHANGED_TOAST = "u"

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST: Final = UnchangedToast.UNCHANGED_TOAST
"""Column kind 'u': an unchanged TOASTed value whose content the server did not send."""


class BinaryValue(bytes):
    """Column kind 'b': the type's binary send-function output rather than its text output.

    Only produced when the subscription option ``binary`` is on. It is returned
    rather than rejected so a binary-mode stream still decodes; being a distinct
    subclass lets the conversion step tell it apart from text-format ``bytes``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"BinaryValue({bytes(self)!r})"


ColumnValue: TypeAlias = bytes | Literal[UnchangedToast.UNCHANGED_TOAST] | None
TupleData: TypeAlias = tuple[ColumnValue, ...]


class ReplicaIdentity(StrEnum):
    """``pg_class.relreplident`` as sent in Relation messages."""

    DEFAULT = "d"
    NOTHING = "n"
    FULL = "f"
    INDEX = "i"


class OldTupleKind(StrEnum):
    """Which old row image an Update/Delete carries."""

    KEY = "K"  # replica identity columns only (DEFAULT / INDEX); other columns are None
    OLD = "O"  # the whole old row (REPLICA IDENTITY FULL)


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_ts: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    namespace: str  # "pg_catalog" when the server sent the empty string
    name: str
    replica_identity: ReplicaIdentity
    columns: tuple[RelationColumn, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class TypeMessage:
    type_oid: int
    namespace: str  # "pg_catalog" when the server sent the empty string
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    relid: int
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    relid: int
    old: TupleData | None  # None unless the key changed (K) or replica identity is FULL (O)
    old_kind: OldTupleKind | None
    new: TupleData
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    relid: int
    old: TupleData
    old_kind: OldTupleKind
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    xid: int
    subxid: int  # equals xid when the whole transaction aborted
    abort_lsn: int | None = None  # only with protocol 4 and streaming = parallel
    abort_ts: int | None = None


@dataclass(frozen=True, slots=True)
class BeginPrepare:
    prepare_lsn: int
    end_lsn: int
    prepare_ts: int
    xid: int
    gid: str


@dataclass(frozen=True, slots=True)
class Prepare:
    flags: int
    prepare_lsn: int
    end_lsn: int
    prepare_ts: int
    xid: int
    gid: str


@dataclass(frozen=True, slots=True)
class CommitPrepared:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int
    xid: int
    gid: str


@dataclass(frozen=True, slots=True)
class RollbackPrepared:
    flags: int
    prepare_end_lsn: int
    rollback_end_lsn: int
    prepare_ts: int
    rollback_ts: int
    xid: int
    gid: str


@dataclass(frozen=True, slots=True)
class StreamPrepare:
    flags: int
    prepare_lsn: int
    end_lsn: int
    prepare_ts: int
    xid: int
    gid: str


Message: TypeAlias = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeMessage
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
    | BeginPrepare
    | Prepare
    | CommitPrepared
    | RollbackPrepared
    | StreamPrepare
)


def _slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """Slot setters of a slotted dataclass, in field order.

    A frozen dataclass's generated __init__ pays an object.__setattr__ call per
    field; storing into the slots directly makes the per-row messages about a
    third cheaper to build. Only for fixed-shape values created here.
    """
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


_new_object: Final = object.__new__
_insert_relid, _insert_new, _insert_xid = _slot_setters(Insert)
_update_relid, _update_old, _update_old_kind, _update_new, _update_xid = _slot_setters(Update)
_delete_relid, _delete_old, _delete_old_kind, _delete_xid = _slot_setters(Delete)

# --------------------------------------------------------------------------- wire layout

_BEGIN: Final = struct.Struct(">QqI")  # final lsn, commit ts, xid
_COMMIT: Final = struct.Struct(">BQQq")  # flags, commit lsn, end lsn, commit ts
_STREAM_START: Final = struct.Struct(">IB")  # xid, first segment
_STREAM_COMMIT: Final = struct.Struct(">IBQQq")  # xid, flags, commit lsn, end lsn, commit ts
_STREAM_ABORT: Final = struct.Struct(">II")  # xid, subxid
_STREAM_ABORT_INFO: Final = struct.Struct(">IIQq")  # ... abort lsn, abort ts
_BEGIN_PREPARE: Final = struct.Struct(">QQqI")  # prepare lsn, end lsn, prepare ts, xid
_PREPARE: Final = struct.Struct(">BQQqI")  # flags, lsn, end lsn, ts, xid (also Commit/Stream Prepare)
_ROLLBACK_PREPARED: Final = struct.Struct(">BQQqqI")  # flags, 2 lsns, 2 ts, xid

# Bound unpackers: one attribute lookup fewer per call on the hot path.
_u16: Final = struct.Struct(">H").unpack_from
_u32: Final = struct.Struct(">I").unpack_from
_u64: Final = struct.Struct(">Q").unpack_from
_dml_head: Final = struct.Struct(">IBH").unpack_from  # relid, tuple marker, column count
_marker_count: Final = struct.Struct(">BH").unpack_from  # tuple marker, column count
_type_and_mod: Final = struct.Struct(">Ii").unpack_from  # type oid, typmod
_truncate_head: Final = struct.Struct(">IB").unpack_from  # relation count, flags
_message_head: Final = struct.Struct(">BQ").unpack_from  # flags, lsn

# Fields read in place. The replication loop reads a few fixed-offset fields straight from a
# payload instead of decoding it (once per change or per transaction: its hot path). Each layout
# skips the bytes before its field, so ``LAYOUT.unpack_from(payload)[0]`` is the field; it checks
# only that the payload is long enough (struct.error otherwise). Offsets count the type byte.
DML_RELID: Final = struct.Struct(">xI")  # Insert/Update/Delete (not streamed): relation id at 1
BEGIN_FINAL_LSN: Final = struct.Struct(">xQ")  # Begin: final LSN at 1
COMMIT_END_LSN: Final = struct.Struct(">10xQ")  # Commit: end LSN at 10 (after flags, commit LSN)
COMMIT_TIMESTAMP: Final = struct.Struct(">18xq")  # Commit: commit time at 18, pg microseconds
BEGIN_SIZE: Final = 1 + _BEGIN.size  # a Begin of any other length is left to the decoder
COMMIT_SIZE: Final = 1 + _COMMIT.size
_PG_EPOCH_UNIX: Final = int(PG_EPOCH.timestamp())  # 946_684_800


def commit_unix_time(payload: bytes) -> float:
    """A Commit message's commit time in Unix seconds, read in place (``payload`` is COMMIT_SIZE long)."""
    return COMMIT_TIMESTAMP.unpack_from(payload)[0] / 1_000_000 + _PG_EPOCH_UNIX


_MARK_NEW: Final = 0x4E  # 'N'
_OLD_KINDS: Final = {0x4B: OldTupleKind.KEY, 0x4F: OldTupleKind.OLD}
_REPLICA_IDENTITIES: Final = {ord(m.value): m for m in ReplicaIdentity}

_NAMES: Final[dict[int, str]] = {
    ord("B"): "Begin",
    ord("C"): "Commit",
    ord("O"): "Origin",
    ord("R"): "Relation",
    ord("Y"): "Type",
    ord("I"): "Insert",
    ord("U"): "Update",
    ord("D"): "Delete",
    ord("T"): "Truncate",
    ord("M"): "Message",
    ord("S"): "Stream Start",
    ord("E"): "Stream Stop",
    ord("c"): "Stream Commit",
    ord("A"): "Stream Abort",
    ord("b"): "Begin Prepare",
    ord("P"): "Prepare",
    ord("K"): "Commit Prepared",
    ord("r"): "Rollback Prepared",
    ord("p"): "Stream Prepare",
}
_SINCE_VERSION: Final[dict[int, int]] = {
    **{ord(k): STREAMING_PROTOCOL_VERSION for k in "SEcA"},
    **{ord(k): TWO_PHASE_PROTOCOL_VERSION for k in "bPKrp"},
}

# --------------------------------------------------------------------------- errors


def _message_name(buf: bytes) -> str:
    if not buf:
        return "empty"
    kind = buf[0]
    name = _NAMES.get(kind)
    return name if name is not None else f"unknown ({chr(kind)!r}, 0x{kind:02x})"


def _error(buf: bytes, offset: int, reason: str) -> PgOutputError:
    return PgOutputError(_message_name(buf), offset, reason)


def _truncated(buf: bytes, offset: int) -> PgOutputError:
    return _error(buf, offset, f"truncated, payload is only {len(buf)} bytes")


def _bad_end(buf: bytes, pos: int) -> PgOutputError:
    """Error for a parse that did not end exactly at the end of the payload."""
    if pos > len(buf):
        return _truncated(buf, len(buf))
    return _error(buf, pos, f"{len(buf) - pos} unexpected trailing bytes")


def _fixed(buf: bytes, layout: struct.Struct) -> tuple[int, ...]:
    """Unpack a message that is only fixed-width fields after the type byte."""
    if len(buf) != 1 + layout.size:
        raise _error(buf, min(len(buf), 1 + layout.size), f"expected {1 + layout.size} bytes, got {len(buf)}")
    return layout.unpack_from(buf, 1)


# --------------------------------------------------------------------------- field readers


def _cstring(buf: bytes, pos: int) -> tuple[str, int]:
    """Read a NUL-terminated UTF-8 string; returns it and the offset after the NUL."""
    end = buf.find(0, pos)
    if end < 0:
        raise _error(buf, pos, "unterminated string")
    try:
        return buf[pos:end].decode(), end + 1
    except UnicodeDecodeError as exc:
        raise _error(buf, pos + exc.start, "string is not valid UTF-8") from None


def _read_tuple(buf: bytes, pos: int, natts: int) -> tuple[TupleData, int]:
    """Read the ``natts`` columns of TupleData starting at ``pos`` (just past the count).

    Returns the values and the offset just past them. Callers read the column
    count together with the fields before it (one unpack instead of two), and
    must check the returned offset against the payload length: a length field
    pointing past the end is only caught there (slicing clamps), which keeps a
    bounds check out of the per-column loop.
    """
    values: list[ColumnValue] = [None] * natts  # so 'n' columns need no store
    try:
        for i in range(natts):
            kind = buf[pos]
            if kind == 116:  # 't'
                start = pos + 5
                pos = start + _u32(buf, pos + 1)[0]
                values[i] = buf[start:pos]
            elif kind == 110:  # 'n'
                pos += 1
            elif kind == 117:  # 'u'
                values[i] = UNCHANGED_TOAST
                pos += 1
            elif kind == 98:  # 'b'
                start = pos + 5
                pos = start + _u32(buf, pos + 1)[0]
                values[i] = BinaryValue(buf[start:pos])
            else:
                raise _error(buf, pos, f"unknown column kind {chr(kind)!r} in tuple data")
    except (IndexError, struct.error):
        raise _truncated(buf, min(pos, len(buf))) from None
    return tuple(values), pos


# --------------------------------------------------------------------------- parsers
# Parsers of messages that may appear inside a stream block take the offset of
# the body and the xid read before it, so one function serves both layouts.


def _begin(buf: bytes) -> Begin:
    final_lsn, commit_ts, xid = _fixed(buf, _BEGIN)
    return Begin(final_lsn, commit_ts, xid)


def _commit(buf: bytes) -> Commit:
    flags, commit_lsn, end_lsn, commit_ts = _fixed(buf, _COMMIT)
    return Commit(flags, commit_lsn, end_lsn, commit_ts)


def _origin(buf: bytes) -> Origin:
    try:
        commit_lsn = _u64(buf, 1)[0]
    except struct.error:
        raise _truncated(buf, 1) from None
    name, pos = _cstring(buf, 9)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    return Origin(commit_lsn, name)


def _relation(buf: bytes, pos: int = 1, xid: int | None = None) -> Relation:
    try:
        relid = _u32(buf, pos)[0]
        namespace, pos = _cstring(buf, pos + 4)
        name, pos = _cstring(buf, pos)
        identity = _REPLICA_IDENTITIES.get(buf[pos])
        if identity is None:
            raise _error(buf, pos, f"unknown replica identity {chr(buf[pos])!r}")
        natts = _u16(buf, pos + 1)[0]
        pos += 3
        columns = []
        for _ in range(natts):
            flags = buf[pos]
            column, pos = _cstring(buf, pos + 1)
            type_oid, type_modifier = _type_and_mod(buf, pos)
            pos += 8
            columns.append(RelationColumn(column, type_oid, type_modifier, bool(flags & 1)))
    except (IndexError, struct.error):
        raise _truncated(buf, min(pos, len(buf))) from None
    if pos != len(buf):
        raise _bad_end(buf, pos)
    return Relation(relid, namespace or "pg_catalog", name, identity, tuple(columns), xid)


def _type(buf: bytes, pos: int = 1, xid: int | None = None) -> TypeMessage:
    try:
        type_oid = _u32(buf, pos)[0]
    except struct.error:
        raise _truncated(buf, pos) from None
    namespace, pos = _cstring(buf, pos + 4)
    name, pos = _cstring(buf, pos)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    return TypeMessage(type_oid, namespace or "pg_catalog", name, xid)


def _insert(buf: bytes, pos: int = 1, xid: int | None = None) -> Insert:
    try:
        relid, marker, natts = _dml_head(buf, pos)
    except struct.error:
        raise _truncated(buf, pos) from None
    if marker != _MARK_NEW:
        raise _error(buf, pos + 4, f"expected 'N' tuple marker, got {chr(marker)!r}")
    new, pos = _read_tuple(buf, pos + 7, natts)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    message = _new_object(Insert)
    _insert_relid(message, relid)
    _insert_new(message, new)
    _insert_xid(message, xid)
    return message


def _update(buf: bytes, pos: int = 1, xid: int | None = None) -> Update:
    try:
        relid, marker, natts = _dml_head(buf, pos)
    except struct.error:
        raise _truncated(buf, pos) from None
    pos += 4
    old: TupleData | None = None
    old_kind = None
    if marker != _MARK_NEW:
        old_kind = _OLD_KINDS.get(marker)
        if old_kind is None:
            raise _error(buf, pos, f"expected 'K', 'O' or 'N' tuple marker, got {chr(marker)!r}")
        old, pos = _read_tuple(buf, pos + 3, natts)
        try:
            marker, natts = _marker_count(buf, pos)
        except struct.error:
            raise _truncated(buf, min(pos, len(buf))) from None
        if marker != _MARK_NEW:
            raise _error(buf, pos, f"expected 'N' tuple marker, got {chr(marker)!r}")
    new, pos = _read_tuple(buf, pos + 3, natts)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    message = _new_object(Update)
    _update_relid(message, relid)
    _update_old(message, old)
    _update_old_kind(message, old_kind)
    _update_new(message, new)
    _update_xid(message, xid)
    return message


def _delete(buf: bytes, pos: int = 1, xid: int | None = None) -> Delete:
    try:
        relid, marker, natts = _dml_head(buf, pos)
    except struct.error:
        raise _truncated(buf, pos) from None
    old_kind = _OLD_KINDS.get(marker)
    if old_kind is None:
        raise _error(buf, pos + 4, f"expected 'K' or 'O' tuple marker, got {chr(marker)!r}")
    old, pos = _read_tuple(buf, pos + 7, natts)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    message = _new_object(Delete)
    _delete_relid(message, relid)
    _delete_old(message, old)
    _delete_old_kind(message, old_kind)
    _delete_xid(message, xid)
    return message


def _truncate(buf: bytes, pos: int = 1, xid: int | None = None) -> Truncate:
    try:
        count, flags = _truncate_head(buf, pos)
    except struct.error:
        raise _truncated(buf, pos) from None
    pos += 5
    if len(buf) != pos + 4 * count:
        raise _bad_end(buf, pos + 4 * count)
    relids = struct.unpack_from(f">{count}I", buf, pos)
    return Truncate(relids, bool(flags & 1), bool(flags & 2), xid)


def _logical_message(buf: bytes, pos: int = 1, xid: int | None = None) -> LogicalMessage:
    try:
        flags, lsn = _message_head(buf, pos)
        prefix, pos = _cstring(buf, pos + 9)
        size = _u32(buf, pos)[0]
    except struct.error:
        raise _truncated(buf, pos) from None
    pos += 4
    if pos + size != len(buf):
        raise _bad_end(buf, pos + size)
    return LogicalMessage(bool(flags & 1), lsn, prefix, buf[pos:], xid)


def _stream_start(buf: bytes) -> StreamStart:
    xid, first_segment = _fixed(buf, _STREAM_START)
    return StreamStart(xid, first_segment == 1)


def _stream_stop(buf: bytes) -> StreamStop:
    if len(buf) != 1:
        raise _bad_end(buf, 1)
    return StreamStop()


def _stream_commit(buf: bytes) -> StreamCommit:
    xid, flags, commit_lsn, end_lsn, commit_ts = _fixed(buf, _STREAM_COMMIT)
    return StreamCommit(xid, flags, commit_lsn, end_lsn, commit_ts)


def _stream_abort(buf: bytes) -> StreamAbort:
    # The abort LSN/timestamp are present only under protocol 4 with
    # streaming = parallel, which the payload length tells us reliably.
    if len(buf) == 1 + _STREAM_ABORT_INFO.size:
        xid, subxid, abort_lsn, abort_ts = _STREAM_ABORT_INFO.unpack_from(buf, 1)
        return StreamAbort(xid, subxid, abort_lsn, abort_ts)
    xid, subxid = _fixed(buf, _STREAM_ABORT)
    return StreamAbort(xid, subxid)


def _stream_abort_without_info(buf: bytes) -> StreamAbort:
    xid, subxid = _fixed(buf, _STREAM_ABORT)
    return StreamAbort(xid, subxid)


def _with_gid(buf: bytes, layout: struct.Struct) -> tuple[tuple[int, ...], str]:
    try:
        values = layout.unpack_from(buf, 1)
    except struct.error:
        raise _truncated(buf, 1) from None
    gid, pos = _cstring(buf, 1 + layout.size)
    if pos != len(buf):
        raise _bad_end(buf, pos)
    return values, gid


def _begin_prepare(buf: bytes) -> BeginPrepare:
    (prepare_lsn, end_lsn, prepare_ts, xid), gid = _with_gid(buf, _BEGIN_PREPARE)
    return BeginPrepare(prepare_lsn, end_lsn, prepare_ts, xid, gid)


def _prepare(buf: bytes) -> Prepare:
    (flags, prepare_lsn, end_lsn, prepare_ts, xid), gid = _with_gid(buf, _PREPARE)
    return Prepare(flags, prepare_lsn, end_lsn, prepare_ts, xid, gid)


def _commit_prepared(buf: bytes) -> CommitPrepared:
    (flags, commit_lsn, end_lsn, commit_ts, xid), gid = _with_gid(buf, _PREPARE)
    return CommitPrepared(flags, commit_lsn, end_lsn, commit_ts, xid, gid)


def _rollback_prepared(buf: bytes) -> RollbackPrepared:
    (flags, prepare_end_lsn, rollback_end_lsn, prepare_ts, rollback_ts, xid), gid = _with_gid(buf, _ROLLBACK_PREPARED)
    return RollbackPrepared(flags, prepare_end_lsn, rollback_end_lsn, prepare_ts, rollback_ts, xid, gid)


def _stream_prepare(buf: bytes) -> StreamPrepare:
    (flags, prepare_lsn, end_lsn, prepare_ts, xid), gid = _with_gid(buf, _PREPARE)
    return StreamPrepare(flags, prepare_lsn, end_lsn, prepare_ts, xid, gid)


# --------------------------------------------------------------------------- dispatch

_Parser: TypeAlias = Callable[[bytes], Message]
_M = TypeVar("_M", Relation, TypeMessage, Insert, Update, Delete, Truncate, LogicalMessage)


def _streamed(parse: Callable[[bytes, int, int | None], _M]) -> Callable[[bytes], _M]:
    """Adapt a body parser to the in-stream layout: type byte, xid, body."""

    def parse_streamed(buf: bytes) -> _M:
        try:
            xid = _u32(buf, 1)[0]
        except struct.error:
            raise _truncated(buf, 1) from None
        return parse(buf, 5, xid)

    return parse_streamed


# Everything outside a stream block except Stream Start/Stop, which need state.
_OUTSIDE_STREAM: Final[dict[int, _Parser]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _logical_message,
    ord("c"): _stream_commit,
    ord("A"): _stream_abort,
    ord("b"): _begin_prepare,
    ord("P"): _prepare,
    ord("K"): _commit_prepared,
    ord("r"): _rollback_prepared,
    ord("p"): _stream_prepare,
}

# Inside a stream block (minus Stream Stop). Origin may follow Stream Start
# (with commit_lsn 0) and has no xid field.
_INSIDE_STREAM: Final[dict[int, _Parser]] = {
    ord("O"): _origin,
    ord("R"): _streamed(_relation),
    ord("Y"): _streamed(_type),
    ord("I"): _streamed(_insert),
    ord("U"): _streamed(_update),
    ord("D"): _streamed(_delete),
    ord("T"): _streamed(_truncate),
    ord("M"): _streamed(_logical_message),
}


def decode_message(payload: bytes | memoryview) -> Message:
    """Decode one message outside any stream block, without protocol-version checks.

    Fast path for connections without ``streaming``: Stream Start/Stop are
    rejected because what follows them can only be decoded by a :class:`Decoder`.
    """
    # One copy up front is cheaper than copying each column slice of a memoryview.
    buf = payload if type(payload) is bytes else bytes(payload)
    try:
        parse = _OUTSIDE_STREAM[buf[0]]
    except (IndexError, KeyError):
        if buf and buf[0] in (ord("S"), ord("E")):
            raise _error(buf, 0, "stream blocks need a stateful Decoder") from None
        raise _error(buf, 0, "unknown message type" if buf else "empty payload") from None
    return parse(buf)


class Decoder:
    """Decodes the messages of one replication connection, in order.

    ``protocol_version`` is the ``proto_version`` the connection negotiated;
    messages introduced by later versions are rejected. The decoder follows
    Stream Start/Stream Stop so that it knows when DML, Relation, Type,
    Truncate and Message payloads carry an xid; call :meth:`reset` after
    reconnecting mid-stream.
    """

    __slots__ = ("_inside", "_outside", "_stream_xid", "_table", "protocol_version")

    def __init__(self, protocol_version: int) -> None:
        if not MIN_PROTOCOL_VERSION <= protocol_version <= MAX_PROTOCOL_VERSION:
            raise ValueError(
                f"unsupported pgoutput protocol version {protocol_version!r} "
                f"(supported: {MIN_PROTOCOL_VERSION}-{MAX_PROTOCOL_VERSION})"
            )
        self.protocol_version = protocol_version
        outside = {
            kind: parse
            for kind, parse in _OUTSIDE_STREAM.items()
            if _SINCE_VERSION.get(kind, MIN_PROTOCOL_VERSION) <= protocol_version
        }
        inside: dict[int, _Parser] = {}
        if protocol_version >= STREAMING_PROTOCOL_VERSION:
            outside[ord("S")] = self._enter_stream
            inside.update(_INSIDE_STREAM)
            inside[ord("E")] = self._leave_stream
        if protocol_version < PARALLEL_STREAMING_PROTOCOL_VERSION and ord("A") in outside:
            outside[ord("A")] = _stream_abort_without_info
        self._outside: dict[int, _Parser] = outside
        self._inside: dict[int, _Parser] = inside
        self._table: dict[int, _Parser] = outside
        self._stream_xid: int | None = None

    @property
    def in_stream(self) -> bool:
        """True between Stream Start and Stream Stop."""
        return self._stream_xid is not None

    @property
    def stream_xid(self) -> int | None:
        """Top-level xid of the open stream block, if any."""
        return self._stream_xid

    def reset(self) -> None:
        """Forget any open stream block (e.g. after a reconnect)."""
        self._stream_xid = None
        self._table = self._outside

    def decode(self, payload: bytes | memoryview) -> Message:
        """Decode one message; raises PgOutputError if it is malformed or out of place."""
        buf = payload if type(payload) is bytes else bytes(payload)
        try:
            parse = self._table[buf[0]]
        except (IndexError, KeyError):
            raise self._rejection(buf) from None
        return parse(buf)

    def _enter_stream(self, buf: bytes) -> StreamStart:
        message = _stream_start(buf)
        self._stream_xid = message.xid
        self._table = self._inside
        return message

    def _leave_stream(self, buf: bytes) -> StreamStop:
        message = _stream_stop(buf)
        self.reset()
        return message

    def _rejection(self, buf: bytes) -> PgOutputError:
        if not buf:
            return _error(buf, 0, "empty payload")
        kind = buf[0]
        if kind not in _NAMES:
            return _error(buf, 0, "unknown message type")
        since = _SINCE_VERSION.get(kind, MIN_PROTOCOL_VERSION)
        if since > self.protocol_version:
            return _error(buf, 0, f"needs protocol version {since}, decoder uses {self.protocol_version}")
        if self._stream_xid is not None:
            return _error(buf, 0, f"not allowed inside the stream block of xid {self._stream_xid}")
        return _error(buf, 0, "not allowed outside a stream block")
