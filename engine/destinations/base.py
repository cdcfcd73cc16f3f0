"""The destination seam: what a pipeline runner needs from any destination."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import pyarrow as pa

from engine.batching.batcher import Batch
from engine.errors import DestinationError, RetryPolicy
from engine.source.catalog import TableSchema

# Metadata columns every target table carries (DESIGN §4: they start with _etl_).
TARGET_LSN_COLUMN = "_etl_commit_lsn"
TARGET_ORDINAL_COLUMN = "_etl_ordinal"


def check_target_columns(
    target: str, where: str, schema: TableSchema, found: list[str] | None, expected: list[str]
) -> None:
    """A streaming table's target must exist with exactly the expected columns; else the table
    needs a resync, and the error says so."""
    if found is None:
        raise DestinationError(
            f"target table {target} is missing in {where}",
            f"resync the table to copy it again: etl-tui pipeline resync <pipeline> --table '{schema.table}'",
            retry=RetryPolicy.MANUAL,
        )
    if found != expected:
        raise DestinationError(
            f"target table {target} has columns {found}, expected {expected}",
            "the source table changed shape; resync the table",
            retry=RetryPolicy.MANUAL,
        )


class Destination(Protocol):
    def describe(self) -> str: ...

    def checkpoint(self, pipeline_id: int) -> int | None:
        """The end LSN of the last transaction durably applied for ``pipeline_id`` (authoritative)."""
        ...

    def forget(self, pipeline_id: int) -> None:
        """Drop the checkpoint of ``pipeline_id`` (its slot was created anew)."""
        ...

    def prepare(self, schemas: Iterable[TableSchema]) -> None:
        """Make sure landing and target tables exist with the right columns."""
        ...

    def copy_table(
        self, schema: TableSchema, batches: Iterable[pa.RecordBatch], on_progress: Callable[[int], None]
    ) -> int:
        """Replace the target's contents with ``batches`` atomically; return rows written."""
        ...

    def apply(self, pipeline_id: int, batch: Batch) -> None:
        """Land, merge and record the checkpoint of ``batch``, all in one transaction."""
        ...

    def close(self) -> None: ...
