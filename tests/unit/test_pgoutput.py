"""pgoutput decoding from hand-built payloads (layouts per the PostgreSQL protocol docs)."""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import struct
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from engine.decoding.pgoutput import (
    BEGIN_FINAL_LSN,
    BEGIN_SIZE,
    COMMIT_END_LSN,
    COMMIT_SIZE,
    COMMIT_TIMESTAMP,
    DML_RELID,
    UNCHANGED_TOAST,
    Begin,
    BeginPrepare,
    BinaryValue,
    ColumnValue,
    Commit,
    CommitPrepared,
    Decoder,
    Delete,
    Insert,
    LogicalMessage,
    Message,
    OldTupleKind,
    Origin,
    PgOutputError,
    Prepare,
    Relation,
    RelationColumn,
    ReplicaIdentity,
    RollbackPrepared,
    StreamAbort,
    StreamCommit,
    StreamPrepare,
    StreamStart,
    StreamStop,
    Truncate,
    TypeMessage,
    Update,
    commit_unix_time,
    decode_message,
    pg_timestamp_to_datetime,
)
from engine.errors import ErrorKind, EtlError, RetryPolicy

# --------------------------------------------------------------------------- payload builders

LSN = 0x16_B374D848
END_LSN = LSN + 0x38
TS = 757_382_400_123_456  # 2024-01-01 00:00:00.123456 UTC
TS2 = TS + 1_000_000
XID = 748
SUBXID = 751
RELID = 16_385


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(values: Sequence[ColumnValue]) -> bytes:
    out = struct.pack(">H", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED_TOAST:
            out += b"u"
        elif isinstance(value, BinaryValue):
            out += b"b" + struct.pack(">I", len(value)) + value
        else:
            assert isinstance(value, bytes)
            out += b"t" + struct.pack(">I", len(value)) + value
    return out


def streamed(kind: bytes, xid: int | None) -> bytes:
    return kind if xid is None else kind + struct.pack(">I", xid)


def begin() -> bytes:
    return b"B" + struct.pack(">QqI", LSN, TS, XID)


def commit(flags: int = 0) -> bytes:
    return b"C" + struct.pack(">BQQq", flags, LSN, END_LSN, TS)


def origin(name: str = "node_a") -> bytes:
    return b"O" + struct.pack(">Q", LSN) + cstr(name)


def relation(
    *,
    xid: int | None = None,
    namespace: str = "public",
    name: str = "orders",
    identity: bytes = b"d",
    columns: Sequence[tuple[int, str, int, int]] = ((1, "id", 23, -1), (0, "note", 1043, 68)),
) -> bytes:
    out = streamed(b"R", xid) + struct.pack(">I", RELID) + cstr(namespace) + cstr(name) + identity
    out += struct.pack(">H", len(columns))
    for flags, column, type_oid, typmod in columns:
        out += bytes([flags]) + cstr(column) + struct.pack(">Ii", type_oid, typmod)
    return out


def type_message(*, xid: int | None = None, namespace: str = "public", name: str = "mood") -> bytes:
    return streamed(b"Y", xid) + struct.pack(">I", 16_400) + cstr(namespace) + cstr(name)


def insert(values: Sequence[ColumnValue], *, xid: int | None = None) -> bytes:
    return streamed(b"I", xid) + struct.pack(">I", RELID) + b"N" + tuple_data(values)


def update(
    new: Sequence[ColumnValue],
    old: Sequence[ColumnValue] | None = None,
    kind: bytes = b"K",
    *,
    xid: int | None = None,
) -> bytes:
    out = streamed(b"U", xid) + struct.pack(">I", RELID)
    if old is not None:
        out += kind + tuple_data(old)
    return out + b"N" + tuple_data(new)


def delete(old: Sequence[ColumnValue], kind: bytes = b"K", *, xid: int | None = None) -> bytes:
    return streamed(b"D", xid) + struct.pack(">I", RELID) + kind + tuple_data(old)


def truncate(relids: Sequence[int], flags: int = 0, *, xid: int | None = None) -> bytes:
    return streamed(b"T", xid) + struct.pack(">IB", len(relids), flags) + b"".join(struct.pack(">I", r) for r in relids)


def message(content: bytes, *, flags: int = 1, prefix: str = "etl", xid: int | None = None) -> bytes:
    return (
        streamed(b"M", xid) + struct.pack(">BQ", flags, LSN) + cstr(prefix) + struct.pack(">I", len(content)) + content
    )


def stream_start(xid: int = XID, first: int = 1) -> bytes:
    return b"S" + struct.pack(">IB", xid, first)


def stream_stop() -> bytes:
    return b"E"


def stream_commit() -> bytes:
    return b"c" + struct.pack(">IBQQq", XID, 0, LSN, END_LSN, TS)


def stream_abort(*, with_info: bool = False) -> bytes:
    out = b"A" + struct.pack(">II", XID, SUBXID)
    return out + struct.pack(">Qq", LSN, TS) if with_info else out


def begin_prepare() -> bytes:
    return b"b" + struct.pack(">QQqI", LSN, END_LSN, TS, XID) + cstr("gid-1")


def prepare(kind: bytes = b"P") -> bytes:
    return kind + struct.pack(">BQQqI", 0, LSN, END_LSN, TS, XID) + cstr("gid-1")


def rollback_prepared() -> bytes:
    return b"r" + struct.pack(">BQQqqI", 0, LSN, END_LSN, TS, TS2, XID) + cstr("gid-1")


ROW: tuple[ColumnValue, ...] = (b"1", b"hello", None, b"", UNCHANGED_TOAST)

# Every message kind with a representative payload, for the generic malformed-input tests.
SAMPLES: dict[str, bytes] = {
    "begin": begin(),
    "commit": commit(),
    "origin": origin(),
    "relation": relation(),
    "type": type_message(),
    "insert": insert(ROW),
    "update": update(ROW),
    "update_key": update(ROW, old=(b"1", None, None, None, None)),
    "update_old": update(ROW, old=ROW, kind=b"O"),
    "delete": delete((b"1", None, None, None, None)),
    "truncate": truncate([RELID, RELID + 1], 3),
    "message": message(b"payload"),
    "stream_commit": stream_commit(),
    "stream_abort": stream_abort(),
    "begin_prepare": begin_prepare(),
    "prepare": prepare(),
    "commit_prepared": prepare(b"K"),
    "rollback_prepared": rollback_prepared(),
    "stream_prepare": prepare(b"p"),
}

SAMPLE_NAMES: dict[str, str] = {
    "begin": "Begin",
    "commit": "Commit",
    "origin": "Origin",
    "relation": "Relation",
    "type": "Type",
    "insert": "Insert",
    "update": "Update",
    "update_key": "Update",
    "update_old": "Update",
    "delete": "Delete",
    "truncate": "Truncate",
    "message": "Message",
    "stream_commit": "Stream Commit",
    "stream_abort": "Stream Abort",
    "begin_prepare": "Begin Prepare",
    "prepare": "Prepare",
    "commit_prepared": "Commit Prepared",
    "rollback_prepared": "Rollback Prepared",
    "stream_prepare": "Stream Prepare",
}


# --------------------------------------------------------------------------- transaction framing


def test_begin() -> None:
    assert decode_message(begin()) == Begin(final_lsn=LSN, commit_ts=TS, xid=XID)


def test_commit() -> None:
    assert decode_message(commit()) == Commit(flags=0, commit_lsn=LSN, end_lsn=END_LSN, commit_ts=TS)


def test_fields_read_in_place_match_the_decoder() -> None:
    """The replication loop reads these without decoding: they must agree with the decoder."""
    b, c = begin(), commit()
    assert len(b) == BEGIN_SIZE and len(c) == COMMIT_SIZE
    assert BEGIN_FINAL_LSN.unpack_from(b)[0] == decode_message(b).final_lsn  # type: ignore[union-attr]
    decoded = decode_message(c)
    assert isinstance(decoded, Commit)
    assert COMMIT_END_LSN.unpack_from(c)[0] == decoded.end_lsn == END_LSN
    assert COMMIT_TIMESTAMP.unpack_from(c)[0] == decoded.commit_ts == TS
    assert commit_unix_time(c) == pg_timestamp_to_datetime(TS).timestamp()
    for change in (insert([b"1"]), update([b"1"]), delete([b"1"])):
        assert DML_RELID.unpack_from(change)[0] == decode_message(change).relid == RELID  # type: ignore[union-attr]


def test_origin() -> None:
    assert decode_message(origin("node_ä")) == Origin(commit_lsn=LSN, name="node_ä")


def test_pg_timestamp_to_datetime() -> None:
    assert pg_timestamp_to_datetime(0) == datetime(2000, 1, 1, tzinfo=UTC)
    assert pg_timestamp_to_datetime(TS) == datetime(2024, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)
    assert pg_timestamp_to_datetime(-1) == datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def test_accepts_memoryview_and_bytearray() -> None:
    payload = insert(ROW)
    expected = decode_message(payload)
    assert decode_message(memoryview(payload)) == expected
    assert Decoder(1).decode(memoryview(bytearray(payload))) == expected
    decoded = decode_message(memoryview(payload))
    assert isinstance(decoded, Insert)
    assert all(type(v) is bytes for v in decoded.new if isinstance(v, bytes))


# --------------------------------------------------------------------------- schema messages


def test_relation() -> None:
    assert decode_message(relation()) == Relation(
        relid=RELID,
        namespace="public",
        name="orders",
        replica_identity=ReplicaIdentity.DEFAULT,
        columns=(
            RelationColumn(name="id", type_oid=23, type_modifier=-1, is_key=True),
            RelationColumn(name="note", type_oid=1043, type_modifier=68, is_key=False),
        ),
        xid=None,
    )


@pytest.mark.parametrize(
    ("byte", "identity"),
    [(b"d", ReplicaIdentity.DEFAULT), (b"n", ReplicaIdentity.NOTHING), (b"f", ReplicaIdentity.FULL),
     (b"i", ReplicaIdentity.INDEX)],
)  # fmt: skip
def test_relation_replica_identity(byte: bytes, identity: ReplicaIdentity) -> None:
    decoded = decode_message(relation(identity=byte))
    assert isinstance(decoded, Relation)
    assert decoded.replica_identity is identity
    assert decoded.replica_identity == byte.decode()  # a StrEnum compares equal to the raw letter


def test_relation_empty_namespace_means_pg_catalog_and_no_columns() -> None:
    decoded = decode_message(relation(namespace="", columns=()))
    assert isinstance(decoded, Relation)
    assert decoded.namespace == "pg_catalog"
    assert decoded.columns == ()


def test_relation_unknown_replica_identity() -> None:
    with pytest.raises(PgOutputError, match=r"Relation message: unknown replica identity 'x'"):
        decode_message(relation(identity=b"x"))


def test_type_message() -> None:
    assert decode_message(type_message()) == TypeMessage(type_oid=16_400, namespace="public", name="mood")
    decoded = decode_message(type_message(namespace=""))
    assert isinstance(decoded, TypeMessage)
    assert decoded.namespace == "pg_catalog"


# --------------------------------------------------------------------------- DML and tuple data


def test_insert_values_null_unchanged_and_empty() -> None:
    decoded = decode_message(insert(ROW))
    assert decoded == Insert(relid=RELID, new=ROW, xid=None)
    assert isinstance(decoded, Insert)
    assert decoded.new[2] is None
    assert decoded.new[3] == b""
    assert decoded.new[4] is UNCHANGED_TOAST


def test_insert_zero_columns() -> None:
    assert decode_message(insert(())) == Insert(RELID, ())


def test_insert_keeps_raw_bytes() -> None:
    raw = "naïve €".encode() + b"\x00\xff"  # not decoded, not validated
    decoded = decode_message(insert((raw,)))
    assert isinstance(decoded, Insert)
    assert decoded.new == (raw,)
    assert type(decoded.new[0]) is bytes


def test_insert_binary_column() -> None:
    decoded = decode_message(insert((BinaryValue(b"\x00\x00\x00\x2a"), b"42")))
    assert isinstance(decoded, Insert)
    first, second = decoded.new
    assert isinstance(first, BinaryValue)
    assert first == b"\x00\x00\x00\x2a"
    assert not isinstance(second, BinaryValue)
    assert repr(first) == "BinaryValue(b'\\x00\\x00\\x00*')"


def test_insert_is_an_ordinary_frozen_dataclass() -> None:
    decoded = decode_message(insert(ROW))
    built = Insert(RELID, ROW)
    assert decoded == built
    assert hash(decoded) == hash(built)
    assert repr(decoded) == repr(built)
    assert pickle.loads(pickle.dumps(decoded)) == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.relid = 1  # type: ignore[misc]


def test_unchanged_toast_sentinel() -> None:
    assert repr(UNCHANGED_TOAST) == "UNCHANGED_TOAST"
    assert pickle.loads(pickle.dumps(UNCHANGED_TOAST)) is UNCHANGED_TOAST
    assert UNCHANGED_TOAST != b"u"
    assert UNCHANGED_TOAST not in (b"u", None, b"")


def test_update_without_old_tuple() -> None:
    decoded = decode_message(update(ROW))
    assert decoded == Update(relid=RELID, old=None, old_kind=None, new=ROW)


def test_update_with_old_key() -> None:
    old = (b"7", None, None, None, None)
    decoded = decode_message(update(ROW, old=old, kind=b"K"))
    assert decoded == Update(relid=RELID, old=old, old_kind=OldTupleKind.KEY, new=ROW)
    assert isinstance(decoded, Update)
    assert decoded.old_kind == "K"


def test_update_with_full_old_row() -> None:
    old = (b"1", b"before", None, b"", b"x" * 300)
    decoded = decode_message(update(ROW, old=old, kind=b"O"))
    assert decoded == Update(relid=RELID, old=old, old_kind=OldTupleKind.OLD, new=ROW)
    assert isinstance(decoded, Update)
    assert decoded.old_kind == "O"


@pytest.mark.parametrize(("byte", "kind"), [(b"K", OldTupleKind.KEY), (b"O", OldTupleKind.OLD)])
def test_delete(byte: bytes, kind: OldTupleKind) -> None:
    old = (b"1", None, None, None, None) if kind is OldTupleKind.KEY else ROW
    assert decode_message(delete(old, byte)) == Delete(relid=RELID, old=old, old_kind=kind)


@pytest.mark.parametrize(
    ("flags", "cascade", "restart"), [(0, False, False), (1, True, False), (2, False, True), (3, True, True)]
)
def test_truncate_flags(flags: int, cascade: bool, restart: bool) -> None:
    decoded = decode_message(truncate([RELID, RELID + 1, 4_000_000_000], flags))
    assert decoded == Truncate(relids=(RELID, RELID + 1, 4_000_000_000), cascade=cascade, restart_identity=restart)


def test_truncate_relid_count_must_match_length() -> None:
    payload = b"T" + struct.pack(">IB", 3, 0) + struct.pack(">II", 1, 2)
    with pytest.raises(PgOutputError, match="Truncate message: truncated"):
        decode_message(payload)


@pytest.mark.parametrize(("flags", "transactional"), [(0, False), (1, True)])
def test_logical_message(flags: int, transactional: bool) -> None:
    content = b"\x00binary\xffcontent"
    assert decode_message(message(content, flags=flags, prefix="etl/ctl")) == LogicalMessage(
        transactional=transactional, lsn=LSN, prefix="etl/ctl", content=content
    )


def test_logical_message_empty_content_and_prefix() -> None:
    assert decode_message(message(b"", prefix="")) == LogicalMessage(True, LSN, "", b"")


# --------------------------------------------------------------------------- streaming (protocol 2+)


def test_stream_block_messages_carry_xid() -> None:
    decoder = Decoder(2)
    assert not decoder.in_stream
    assert decoder.decode(stream_start(XID, 1)) == StreamStart(xid=XID, first_segment=True)
    assert decoder.in_stream
    assert decoder.stream_xid == XID
    assert decoder.decode(origin()) == Origin(LSN, "node_a")  # may follow Stream Start, never has an xid
    rel = decoder.decode(relation(xid=XID))
    assert isinstance(rel, Relation)
    assert rel.xid == XID
    assert rel.name == "orders"
    assert decoder.decode(type_message(xid=XID)) == TypeMessage(16_400, "public", "mood", xid=XID)
    # Changes of a subtransaction carry the subxact's xid, not the stream's.
    assert decoder.decode(insert(ROW, xid=SUBXID)) == Insert(RELID, ROW, xid=SUBXID)
    assert decoder.decode(update(ROW, old=ROW, kind=b"O", xid=XID)) == Update(
        RELID, ROW, OldTupleKind.OLD, ROW, xid=XID
    )
    assert decoder.decode(update(ROW, xid=XID)) == Update(RELID, None, None, ROW, xid=XID)
    assert decoder.decode(delete(ROW, b"K", xid=XID)) == Delete(RELID, ROW, OldTupleKind.KEY, xid=XID)
    assert decoder.decode(truncate([RELID], 1, xid=XID)) == Truncate((RELID,), True, False, xid=XID)
    assert decoder.decode(message(b"m", xid=XID)) == LogicalMessage(True, LSN, "etl", b"m", xid=XID)
    assert decoder.decode(stream_stop()) == StreamStop()
    assert not decoder.in_stream
    assert decoder.stream_xid is None
    # Outside the block the same messages have no xid again.
    assert decoder.decode(insert(ROW)) == Insert(RELID, ROW)
    assert decoder.decode(stream_start(XID, 0)) == StreamStart(XID, first_segment=False)
    assert decoder.decode(stream_stop()) == StreamStop()
    assert decoder.decode(stream_commit()) == StreamCommit(
        xid=XID, flags=0, commit_lsn=LSN, end_lsn=END_LSN, commit_ts=TS
    )


def test_stream_xid_is_not_mistaken_for_data_outside_a_block() -> None:
    # An in-stream Insert decoded without the block context must fail, not misparse.
    with pytest.raises(PgOutputError, match="Insert message"):
        Decoder(2).decode(insert(ROW, xid=XID))


def test_stream_abort() -> None:
    assert Decoder(2).decode(stream_abort()) == StreamAbort(xid=XID, subxid=SUBXID)
    assert Decoder(4).decode(stream_abort()) == StreamAbort(XID, SUBXID, None, None)


def test_stream_abort_with_parallel_info_needs_protocol_4() -> None:
    expected = StreamAbort(xid=XID, subxid=SUBXID, abort_lsn=LSN, abort_ts=TS)
    assert Decoder(4).decode(stream_abort(with_info=True)) == expected
    assert decode_message(stream_abort(with_info=True)) == expected
    with pytest.raises(PgOutputError, match="Stream Abort message: expected 9 bytes, got 25"):
        Decoder(3).decode(stream_abort(with_info=True))


def test_nested_stream_start_is_rejected() -> None:
    decoder = Decoder(2)
    decoder.decode(stream_start())
    expected = f"Stream Start message: not allowed inside the stream block of xid {XID}"
    with pytest.raises(PgOutputError, match=expected):
        decoder.decode(stream_start())


def test_stream_stop_outside_block_is_rejected() -> None:
    with pytest.raises(PgOutputError, match="Stream Stop message: not allowed outside a stream block"):
        Decoder(2).decode(stream_stop())


@pytest.mark.parametrize("payload", [begin(), commit(), stream_commit(), stream_abort(), prepare()])
def test_transaction_messages_are_rejected_inside_a_block(payload: bytes) -> None:
    decoder = Decoder(3)
    decoder.decode(stream_start())
    with pytest.raises(PgOutputError, match="not allowed inside the stream block"):
        decoder.decode(payload)
    assert decoder.in_stream


def test_reset_leaves_the_stream_block() -> None:
    decoder = Decoder(2)
    decoder.decode(stream_start())
    decoder.reset()
    assert not decoder.in_stream
    assert decoder.decode(insert(ROW)) == Insert(RELID, ROW)


def test_in_stream_truncated_xid() -> None:
    decoder = Decoder(2)
    decoder.decode(stream_start())
    with pytest.raises(PgOutputError) as info:
        decoder.decode(b"I\x00\x00")
    assert info.value.reason == "Insert message: truncated, payload is only 3 bytes (at offset 1)"


@pytest.mark.parametrize("payload", [stream_start(), stream_stop()])
def test_decode_message_refuses_stream_blocks(payload: bytes) -> None:
    with pytest.raises(PgOutputError, match="stream blocks need a stateful Decoder"):
        decode_message(payload)


# --------------------------------------------------------------------------- two-phase (protocol 3+)


def test_two_phase_messages() -> None:
    decoder = Decoder(3)
    assert decoder.decode(begin_prepare()) == BeginPrepare(
        prepare_lsn=LSN, end_lsn=END_LSN, prepare_ts=TS, xid=XID, gid="gid-1"
    )
    assert decoder.decode(prepare()) == Prepare(
        flags=0, prepare_lsn=LSN, end_lsn=END_LSN, prepare_ts=TS, xid=XID, gid="gid-1"
    )
    assert decoder.decode(prepare(b"K")) == CommitPrepared(
        flags=0, commit_lsn=LSN, end_lsn=END_LSN, commit_ts=TS, xid=XID, gid="gid-1"
    )
    assert decoder.decode(rollback_prepared()) == RollbackPrepared(
        flags=0,
        prepare_end_lsn=LSN,
        rollback_end_lsn=END_LSN,
        prepare_ts=TS,
        rollback_ts=TS2,
        xid=XID,
        gid="gid-1",
    )
    assert decoder.decode(prepare(b"p")) == StreamPrepare(
        flags=0, prepare_lsn=LSN, end_lsn=END_LSN, prepare_ts=TS, xid=XID, gid="gid-1"
    )


# --------------------------------------------------------------------------- protocol versions


@pytest.mark.parametrize(
    ("version", "payload", "needed"),
    [
        (1, stream_start(), 2),
        (1, stream_stop(), 2),
        (1, stream_commit(), 2),
        (1, stream_abort(), 2),
        (2, begin_prepare(), 3),
        (2, prepare(), 3),
        (2, prepare(b"K"), 3),
        (2, rollback_prepared(), 3),
        (2, prepare(b"p"), 3),
    ],
)
def test_messages_of_later_protocol_versions_are_rejected(version: int, payload: bytes, needed: int) -> None:
    with pytest.raises(PgOutputError, match=f"needs protocol version {needed}, decoder uses {version}"):
        Decoder(version).decode(payload)


@pytest.mark.parametrize("version", [0, 5, -1])
def test_unsupported_protocol_version(version: int) -> None:
    with pytest.raises(ValueError, match="unsupported pgoutput protocol version"):
        Decoder(version)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
@pytest.mark.parametrize("name", ["begin", "commit", "origin", "relation", "type", "insert", "update_key",
                                  "delete", "truncate", "message"])  # fmt: skip
def test_version_1_messages_decode_under_every_version(version: int, name: str) -> None:
    assert Decoder(version).decode(SAMPLES[name]) == decode_message(SAMPLES[name])


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize("decode", [decode_message, Decoder(4).decode], ids=["function", "decoder"])
def test_empty_payload(decode: object) -> None:
    assert callable(decode)
    with pytest.raises(PgOutputError, match=r"empty message: empty payload \(at offset 0\)"):
        decode(b"")


def test_unknown_message_type() -> None:
    with pytest.raises(PgOutputError, match=r"unknown \('Z', 0x5a\) message: unknown message type"):
        decode_message(b"Z\x00\x00")
    with pytest.raises(PgOutputError, match="unknown message type"):
        Decoder(4).decode(b"\xff")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation_raises_pgoutput_error(name: str) -> None:
    payload = SAMPLES[name]
    decoder = Decoder(4)
    for cut in range(1, len(payload)):
        with pytest.raises(PgOutputError) as info:
            decoder.decode(payload[:cut])
        assert info.value.message_type == SAMPLE_NAMES[name]
        assert 0 <= info.value.offset <= cut


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_trailing_bytes_raise_pgoutput_error(name: str) -> None:
    with pytest.raises(PgOutputError) as info:
        Decoder(4).decode(SAMPLES[name] + b"\x00")
    assert info.value.offset <= len(SAMPLES[name]) + 1


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_errors_are_only_pgoutput_errors_for_corrupted_bytes(name: str) -> None:
    # Flip every byte in turn: decoding may succeed or fail, but never with another exception.
    payload = bytearray(SAMPLES[name])
    decoder = Decoder(4)
    for i in range(1, len(payload)):
        for value in (0x00, 0xFF, 0x7F):
            corrupted = bytearray(payload)
            corrupted[i] = value
            with contextlib.suppress(PgOutputError):
                decoder.decode(bytes(corrupted))
            decoder.reset()


def test_truncation_error_names_type_and_offset() -> None:
    payload = insert((b"abcdef",))[:-2]  # the column declares 6 bytes, 4 are left
    with pytest.raises(PgOutputError) as info:
        decode_message(payload)
    assert info.value.reason == "Insert message: truncated, payload is only 17 bytes (at offset 17)"
    assert str(info.value) == f"{info.value.reason} (hint: {info.value.hint})"
    assert info.value.message_type == "Insert"
    assert info.value.offset == 17
    assert info.value.detail == "truncated, payload is only 17 bytes"
    with pytest.raises(PgOutputError, match=r"truncated, payload is only 3 bytes \(at offset 1\)"):
        decode_message(payload[:3])
    # one of the engine's errors: the session retries it with backoff, naming the message
    assert isinstance(info.value, EtlError)
    assert (info.value.kind, info.value.retry) == (ErrorKind.PROTOCOL, RetryPolicy.TIMED)
    assert "report it with the log" in info.value.hint


def test_error_pickles() -> None:
    error = PgOutputError("Insert", 7, "truncated")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error)
    assert (clone.message_type, clone.offset, clone.detail) == ("Insert", 7, "truncated")
    assert (clone.reason, clone.hint, clone.kind) == (error.reason, error.hint, error.kind)


def test_unknown_column_kind() -> None:
    payload = b"I" + struct.pack(">IBH", RELID, ord("N"), 1) + b"x"
    with pytest.raises(PgOutputError) as info:
        decode_message(payload)
    assert info.value.reason == "Insert message: unknown column kind 'x' in tuple data (at offset 8)"


def test_column_length_past_end() -> None:
    payload = b"I" + struct.pack(">IBH", RELID, ord("N"), 1) + b"t" + struct.pack(">I", 1000) + b"short"
    with pytest.raises(PgOutputError, match="Insert message: truncated"):
        decode_message(payload)


def test_update_old_tuple_length_past_end() -> None:
    payload = b"U" + struct.pack(">IBH", RELID, ord("K"), 1) + b"t" + struct.pack(">I", 1000) + b"xN"
    with pytest.raises(PgOutputError, match="Update message: truncated"):
        decode_message(payload)


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        (
            b"I" + struct.pack(">I", RELID) + b"K" + tuple_data(ROW),
            r"Insert message: expected 'N' tuple marker, got 'K' \(at offset 5\)",
        ),
        (
            b"U" + struct.pack(">I", RELID) + b"X" + tuple_data(ROW),
            r"Update message: expected 'K', 'O' or 'N' tuple marker, got 'X' \(at offset 5\)",
        ),
        (
            b"U" + struct.pack(">I", RELID) + b"K" + tuple_data(ROW) + b"K" + tuple_data(ROW),
            "Update message: expected 'N' tuple marker, got 'K'",
        ),
        (b"D" + struct.pack(">I", RELID) + b"N" + tuple_data(ROW), "Delete message: expected 'K' or 'O'"),
    ],
)
def test_bad_tuple_markers(payload: bytes, pattern: str) -> None:
    with pytest.raises(PgOutputError, match=pattern):
        decode_message(payload)


def test_unterminated_string() -> None:
    with pytest.raises(PgOutputError, match=r"Origin message: unterminated string \(at offset 9\)"):
        decode_message(b"O" + struct.pack(">Q", LSN) + b"no-nul")


def test_invalid_utf8_name() -> None:
    payload = b"Y" + struct.pack(">I", 1) + b"ok\0bad\xff\0"
    with pytest.raises(PgOutputError, match=r"Type message: string is not valid UTF-8 \(at offset 11\)"):
        decode_message(payload)


def _all_message_classes() -> Sequence[type[Message]]:
    return [Begin, Commit, Origin, Relation, TypeMessage, Insert, Update, Delete, Truncate, LogicalMessage,
            StreamStart, StreamStop, StreamCommit, StreamAbort, BeginPrepare, Prepare, CommitPrepared,
            RollbackPrepared, StreamPrepare]  # fmt: skip


@pytest.mark.parametrize("cls", _all_message_classes())
def test_message_classes_are_frozen_slotted_dataclasses(cls: type[Message]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[union-attr]
    assert "__slots__" in cls.__dict__
