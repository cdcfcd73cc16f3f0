"""Collect decoded changes per table and cut them into Arrow batches.

A batch is bounded by rows, bytes and fill time, whichever comes first, so a transaction larger
than a batch is flushed in pieces and memory stays bounded. The batch remembers the end LSN of
the last transaction it holds *completely*: only that LSN may be acknowledged once the batch is
durable (I1). TRUNCATE is a barrier inside a table's sequence of changes, kept in order.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.batching.limits import BatchLimits
from engine.decoding.convert import convert
from engine.decoding.tuples import parse_tuple_columns
from engine.errors import ValueConversionError
from engine.identifiers import TableName
from engine.source.catalog import TableSchema

OP_COLUMN = "_etl_op"
LSN_COLUMN = "_etl_commit_lsn"
ORDINAL_COLUMN = "_etl_ordinal"
UNCHANGED_COLUMN = "_etl_unchanged"  # indexes of columns whose value is an unchanged TOAST value


class Op(StrEnum):
    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"


_OP_CODE = {op: ord(op.value) for op in Op}


@dataclass(frozen=True)
class RowsStep:
    schema: TableSchema
    batch: pa.RecordBatch
    has_unchanged: bool
    counts: dict[Op, int]


@dataclass(frozen=True)
class TruncateStep:
    schema: TableSchema
    commit_lsn: int
    ordinal: int


Step = RowsStep | TruncateStep


@dataclass(frozen=True)
class FailedTable:
    table: TableName
    error: ValueConversionError


@dataclass(frozen=True)
class Batch:
    steps: tuple[Step, ...]
    failed: tuple[FailedTable, ...]
    checkpoint: int | None  # end LSN of the last complete transaction in the batch
    rows: int


@dataclass
class _Segment:
    schema: TableSchema
    # each row is a raw pgoutput message and the offset of its TupleData, parsed in bulk later
    # (flat arrays, not a tuple per row: the hot path then allocates nothing the cyclic GC tracks)
    payloads: list[bytes] = field(default_factory=list)
    offsets: array[int] = field(default_factory=lambda: array("q"))
    ops: bytearray = field(default_factory=bytearray)  # the Op's letter, as a byte
    lsns: array[int] = field(default_factory=lambda: array("q"))  # commit LSN
    ordinals: array[int] = field(default_factory=lambda: array("q"))


@dataclass(frozen=True)
class PendingBatch:
    """Decoded rows cut from the stream, not yet converted: conversion happens off the stream's
    thread (see :meth:`build`)."""

    parts: tuple[_Segment | TruncateStep, ...]
    checkpoint: int | None
    rows: int

    def build(self, skip: frozenset[TableName] = frozenset()) -> Batch:
        """Convert to Arrow. A table whose values cannot be converted is reported in ``failed``
        and dropped from the batch, as are the tables in ``skip``; the others go on."""
        steps: list[Step] = []
        failed: dict[TableName, FailedTable] = {}
        for part in self.parts:
            table = part.schema.table
            if table in failed or table in skip:
                continue
            if isinstance(part, TruncateStep):
                steps.append(part)
                continue
            try:
                steps.append(_build(part))
            except ValueConversionError as exc:
                failed[table] = FailedTable(table, exc)
        steps = [s for s in steps if s.schema.table not in failed]
        return Batch(tuple(steps), tuple(failed.values()), self.checkpoint, self.rows)


class Batcher:
    def __init__(self, limits: BatchLimits | None = None) -> None:
        self.limits = limits or BatchLimits()
        self._open: dict[TableName, _Segment] = {}
        self._closed: list[_Segment | TruncateStep] = []
        self.rows = 0
        self._bytes = 0
        self._first_at: float | None = None
        self._checkpoint: int | None = None
        # the segment the last row went to: consecutive rows of one table skip the dict lookup
        self._last_schema: TableSchema | None = None
        self._last_seg: _Segment | None = None

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the changes pending (as received from the source)."""
        return self._bytes

    @property
    def empty(self) -> bool:
        return not self._open and not self._closed

    def _segment(self, schema: TableSchema) -> _Segment:
        seg = self._open.get(schema.table)
        if seg is None or seg.schema is not schema:
            if seg is not None:  # the table's shape changed mid-batch: keep the old rows with their schema
                self._closed.append(seg)
            seg = self._open[schema.table] = _Segment(schema)
            if self._first_at is None:
                self._first_at = time.monotonic()
        self._last_schema, self._last_seg = schema, seg
        return seg

    def add(self, schema: TableSchema, op: Op, commit_lsn: int, ordinal: int, payload: bytes, tuple_at: int) -> None:
        """Add one row: the message ``payload`` whose TupleData starts at ``tuple_at``. For a
        DELETE only the key columns of that tuple are used."""
        seg = self._last_seg if schema is self._last_schema else self._segment(schema)
        assert seg is not None
        seg.payloads.append(payload)
        seg.offsets.append(tuple_at)
        seg.ops.append(_OP_CODE[op])
        seg.lsns.append(commit_lsn)
        seg.ordinals.append(ordinal)
        self.rows += 1
        self._bytes += len(payload)

    def truncate(self, schema: TableSchema, commit_lsn: int, ordinal: int) -> None:
        self._last_schema, self._last_seg = None, None
        seg = self._open.pop(schema.table, None)
        if seg is not None:
            self._closed.append(seg)
        self._closed.append(TruncateStep(schema, commit_lsn, ordinal))
        if self._first_at is None:
            self._first_at = time.monotonic()

    def commit(self, end_lsn: int) -> None:
        """Everything added so far belongs to transactions that committed up to ``end_lsn``."""
        if not self.empty:
            self._checkpoint = end_lsn

    def should_flush(self, now: float | None = None) -> bool:
        if self.empty:
            return False
        if self.rows >= self.limits.max_rows or self._bytes >= self.limits.max_bytes:
            return True
        assert self._first_at is not None
        return (now if now is not None else time.monotonic()) - self._first_at >= self.limits.max_fill_seconds

    def take(self) -> PendingBatch:
        """Hand over what is pending (still as decoded rows) and reset."""
        batch = PendingBatch((*self._closed, *self._open.values()), self._checkpoint, self.rows)
        self._open = {}
        self._closed = []
        self.rows = 0
        self._bytes = 0
        self._first_at = None
        self._checkpoint = None
        self._last_schema, self._last_seg = None, None
        return batch


def changes_since(pending: PendingBatch, lsn: int, schema: TableSchema) -> PendingBatch:
    """Only the changes of ``pending`` committed at or after ``lsn``, with no checkpoint, read
    with ``schema`` (its columns are theirs; their types may have been chosen since): what a
    table's changes held during its copy add to the copy made at the snapshot ``lsn``."""
    parts: list[_Segment | TruncateStep] = []
    rows = 0
    for part in pending.parts:
        if isinstance(part, TruncateStep):
            if part.commit_lsn >= lsn:
                parts.append(TruncateStep(schema, part.commit_lsn, part.ordinal))
            continue
        if part.schema.column_names != schema.column_names:
            raise ValueError(f"held changes of {part.schema.table} have another shape than {schema.table}")
        keep = [i for i, at in enumerate(part.lsns) if at >= lsn]
        if not keep:
            continue
        if len(keep) < len(part.lsns) or part.schema is not schema:
            seg = _Segment(schema)
            seg.payloads = [part.payloads[i] for i in keep]
            seg.offsets = array("q", (part.offsets[i] for i in keep))
            seg.ops = bytearray(part.ops[i] for i in keep)
            seg.lsns = array("q", (part.lsns[i] for i in keep))
            seg.ordinals = array("q", (part.ordinals[i] for i in keep))
            part = seg
        parts.append(part)
        rows += len(part.lsns)
    return PendingBatch(tuple(parts), None, rows)


def _build(seg: _Segment) -> RowsStep:
    schema = seg.schema
    n = len(seg.payloads)
    parsed = parse_tuple_columns(seg.payloads, seg.offsets, len(schema.columns))
    codes = np.frombuffer(seg.ops, dtype=np.uint8)
    is_update, is_delete = codes == _OP_CODE[Op.UPDATE], codes == _OP_CODE[Op.DELETE]
    counts = {
        Op.INSERT: n - int(is_update.sum()) - int(is_delete.sum()),
        Op.UPDATE: int(is_update.sum()),
        Op.DELETE: int(is_delete.sum()),
    }
    # letters from codes, vectorised: index into ["I", "U", "D"]
    op_index = pa.array(is_update.astype(np.int8) + 2 * is_delete.astype(np.int8))
    op_array = pa.DictionaryArray.from_arrays(op_index, pa.array(["I", "U", "D"])).dictionary_decode()
    deleted = pa.array(is_delete) if counts[Op.DELETE] else None
    deleted_np = is_delete if counts[Op.DELETE] else None
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    marks: list[tuple[int, np.ndarray]] = []
    for i, col in enumerate(schema.columns):
        raw = parsed.values[i]
        if deleted is not None and not col.is_key:
            raw = pc.if_else(deleted, pa.scalar(None, pa.binary()), raw)  # a delete carries only its key
        mask = parsed.unchanged[i]
        if mask is not None:
            if deleted_np is not None:
                mask = mask & ~deleted_np
            if mask.any():
                marks.append((i, mask))
        arrays.append(convert(raw, col.ctype, str(schema.table), col.name))
        fields.append(pa.field(col.name, col.ctype.arrow))
    arrays.append(op_array)
    fields.append(pa.field(OP_COLUMN, pa.string()))
    arrays.append(pa.array(np.frombuffer(seg.lsns, dtype=np.int64)))
    fields.append(pa.field(LSN_COLUMN, pa.int64()))
    arrays.append(pa.array(np.frombuffer(seg.ordinals, dtype=np.int64)))
    fields.append(pa.field(ORDINAL_COLUMN, pa.int64()))
    if marks:
        # per row, the indexes of its columns that arrived as unchanged TOAST values (rare rows)
        per_row: list[list[int] | None] = [None] * n
        for i, mask in marks:
            for r in np.flatnonzero(mask).tolist():
                row = per_row[r]
                if row is None:
                    per_row[r] = [i]
                else:
                    row.append(i)
        arrays.append(pa.array(per_row, type=pa.list_(pa.int32())))
        fields.append(pa.field(UNCHANGED_COLUMN, pa.list_(pa.int32())))
    return RowsStep(
        schema=schema,
        batch=pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)),
        has_unchanged=bool(marks),
        counts={op: c for op, c in counts.items() if c},
    )
