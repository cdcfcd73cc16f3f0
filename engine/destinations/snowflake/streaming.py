"""Snowpipe Streaming loader: landing rows travel through a channel per landing table instead of
Parquet files, PUT and COPY (optional extra ``etl-tui[snowpipe]``).

Everything after the landing load is :class:`SnowflakeDestination`'s own: one MERGE per table
restricted to each step's (commit LSN, ordinal) span, the landing cleanup and the checkpoint, in
one transaction. Only the landing load differs:

* Each landing table has one channel (table mode: the table's default ``<TABLE>-STREAMING``
  pipe), named after the pipeline and the table, so a restart reopens the same channel; a reopen
  also fences appends still in flight from an earlier handle.
* A step's rows are one ``append_rows`` call whose offset tokens are the step's first and last
  (commit LSN, ordinal), fixed-width (``000000000100A2F8:0000000007``) so they sort as text.
* The load then waits until the channel's committed token reaches the last token *and* every
  (commit LSN, ordinal) of the batch is in the landing table, with a timeout; only then do the
  MERGEs run and the checkpoint move (I1).

Replayed rows are appended again, never skipped as "at or below the committed token": that token
says rows once reached the landing table, not that they are still there. ``apply`` empties the
landing tables before loading (leftovers of an attempt that never committed), a resync or a
schema change recreates them, and the cleanup after the MERGE deletes a table's landing rows
even past the batch when a restart cut the batches differently. Skipping would lose such rows.
Appending again costs at most one batch per table after a restart, and duplicates are harmless:
the MERGE takes one row per key by (commit LSN, ordinal) and identical rows tie; it is the same
replay argument as for the PUT + COPY path (I2).

A replay can find the committed token already at or past its last token, so the token alone
cannot prove the replayed rows are in; hence the check of the landing table. It also catches
rows the server rejected, which the token moves past (they show in ``rows_error_count``).

Values are the ones the Parquet path writes (:func:`to_parquet_array`, checked by
:func:`check_values`), as Python objects the SDK serialises: VARIANT columns travel as JSON
text, non-finite floats as ``'NaN'``/``'inf'``/``'-inf'`` (the SDK's JSON encoder would turn
them into null).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import pyarrow as pa
from snowflake.connector import SnowflakeConnection
from snowflake.connector.cursor import SnowflakeCursor

from engine.batching.batcher import LSN_COLUMN, ORDINAL_COLUMN, Batch, RowsStep
from engine.destinations.base import landing_name
from engine.destinations.snowflake.connection import SnowflakeConfig, env_secret
from engine.destinations.snowflake.destination import SnowflakeDestination
from engine.destinations.snowflake.naming import snowflake_column_name, snowflake_ident
from engine.destinations.snowflake.sql import LANDING_META
from engine.errors import DestinationError, ErrorKind, RetryPolicy
from engine.identifiers import TableName
from engine.source.catalog import TableSchema
from engine.source.lsn import format_lsn

__all__ = [
    "ChannelStatus",
    "ClientFactory",
    "SnowpipeStreamingDestination",
    "StreamingChannel",
    "StreamingClient",
    "client_properties",
    "landing_rows",
    "offset_token",
    "parse_offset_token",
    "sdk_client_factory",
]

log = logging.getLogger("etl.snowpipe")

INSTALL_HINT = "pip install 'etl-tui[snowpipe]' (and never snowflake-ingest next to it: both ship snowflake/ingest)"
_OK = "SUCCESS"
_TOKEN = re.compile(r"([0-9A-F]{16}):([0-9]{10})\Z")


# ---- the SDK's surface, as far as it is used ------------------------------------------------------
class ChannelStatus(Protocol):
    @property
    def status_code(self) -> str: ...
    @property
    def latest_committed_offset_token(self) -> str | None: ...
    @property
    def rows_error_count(self) -> int: ...
    @property
    def last_error_offset_token_upper_bound(self) -> str | None: ...
    @property
    def last_error_message(self) -> str | None: ...


class StreamingChannel(Protocol):
    def append_rows(
        self,
        rows: list[dict[str, Any]],
        start_offset_token: str | None = None,
        end_offset_token: str | None = None,
    ) -> None: ...

    def get_latest_committed_offset_token(self) -> str | None: ...

    def get_channel_status(self) -> ChannelStatus: ...

    def close(self, drop: bool = False, wait_for_flush: bool = True, timeout_seconds: int | None = None) -> None: ...


class StreamingClient(Protocol):
    def open_channel(
        self, channel_name: str, offset_token: str | None = None
    ) -> tuple[StreamingChannel, ChannelStatus]: ...

    def close(self, wait_for_flush: bool = True, timeout_seconds: int | None = None) -> None: ...


# (config, landing table name as Snowflake stores it) -> a client bound to that table
ClientFactory = Callable[[SnowflakeConfig, str], StreamingClient]


# ---- offset tokens ---------------------------------------------------------------------------------
def offset_token(commit_lsn: int, ordinal: int) -> str:
    """``(commit LSN, ordinal)`` as a token whose text order is the position order."""
    if not (0 <= commit_lsn < 1 << 64 and 0 <= ordinal < 10**10):
        raise ValueError(f"position ({commit_lsn}, {ordinal}) does not fit an offset token")
    return f"{commit_lsn:016X}:{ordinal:010d}"


def parse_offset_token(token: str) -> tuple[int, int]:
    match = _TOKEN.match(token)
    if match is None:
        raise ValueError(f"{token!r} is not an offset token written by etl-tui")
    return int(match.group(1), 16), int(match.group(2))


def _position_text(token: str | None) -> str:
    if token is None:
        return "nothing"
    try:
        lsn, ordinal = parse_offset_token(token)
    except ValueError:
        return repr(token)
    return f"{format_lsn(lsn)} #{ordinal}"


# ---- values ----------------------------------------------------------------------------------------
def _float_value(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def landing_rows(file: pa.Table, names: list[str]) -> list[dict[str, Any]]:
    """The rows of a landing file (columns ``c0..cN`` in landing order) as dicts keyed by
    ``names``, with values of the types the SDK accepts (None, bool, int, float, str, bytes,
    Decimal, date, time, datetime)."""
    columns: list[list[Any]] = []
    for column in file.columns:
        values = column.to_pylist()
        if pa.types.is_floating(column.type):
            values = [_float_value(v) for v in values]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


# ---- the default client ------------------------------------------------------------------------------
def client_properties(config: SnowflakeConfig) -> dict[str, str]:
    """SDK properties from the destination config; the passphrase is read from its variable now."""
    if not config.private_key_file:
        raise DestinationError(
            f"Snowpipe Streaming for {config.who} needs key-pair authentication",
            "set a private key file (and private_key_passphrase_env for an encrypted key)",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        )
    if config.host:
        port = f":{config.port}" if config.port else ""
        url = f"{config.protocol}://{config.host}{port}"
    else:
        url = f"https://{config.account}.snowflakecomputing.com"
    props = {
        "account": config.account,
        "user": config.user,
        "url": url,
        "private_key_file": str(Path(config.private_key_file).expanduser()),
    }
    if config.private_key_passphrase_env:
        props["private_key_passphrase"] = env_secret(
            config, config.private_key_passphrase_env, "the private key passphrase"
        )
    if config.role:
        props["role"] = config.role
    return props


def sdk_client_factory(config: SnowflakeConfig, table: str) -> StreamingClient:
    """A ``snowpipe-streaming`` client for one landing table (table mode: its default pipe)."""
    # The SDK's Rust logger prints INFO lines to stdout on import, which would corrupt the console.
    os.environ.setdefault("SS_LOG_LEVEL", "error")
    try:
        from snowflake.ingest.streaming import StreamingIngestClient
    except (ImportError, RuntimeError) as exc:
        raise DestinationError(
            f"the Snowpipe Streaming SDK cannot be loaded ({type(exc).__name__}: {exc})",
            INSTALL_HINT,
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        ) from None
    props = client_properties(config)
    try:
        client = StreamingIngestClient.from_table(
            f"etl-tui-{uuid.uuid4().hex[:12]}",
            snowflake_column_name(config.database),
            snowflake_column_name(config.landing_schema),
            table,
            properties=props,
        )
    except Exception as exc:
        detail = str(exc).replace(props.get("private_key_passphrase") or "\x00", "***")
        raise _sdk_error(config, f"cannot start a Snowpipe Streaming client for {table}", detail, exc) from None
    return cast(StreamingClient, client)


_AUTH_CODES = frozenset({"AuthTokenError", "SfApiAuthError"})
_CONFIG_CODES = frozenset({"ConfigError", "InvalidArgument", "SfApiNotFoundError"})


def _sdk_error(config: SnowflakeConfig, what: str, detail: str, exc: BaseException) -> DestinationError:
    code = getattr(getattr(exc, "error_code", None), "value", None)
    if code in _AUTH_CODES:
        return DestinationError(
            f"{what}: Snowflake refused {config.who}: {detail}",
            "check the user, its role and the registered public key",
            retry=RetryPolicy.MANUAL,
        )
    if code in _CONFIG_CODES:
        return DestinationError(
            f"{what}: {detail}",
            "check the account URL, database, landing schema and the role's privileges on the landing table",
            kind=ErrorKind.CONFIG,
            retry=RetryPolicy.MANUAL,
        )
    return DestinationError(f"{what}: {detail}", "retrying; nothing was acknowledged")


# ---- the destination ---------------------------------------------------------------------------------
def channel_name(pipeline_id: int, table: TableName) -> str:
    """Stable per pipeline and landing table; a digest keeps names that differ only in characters
    outside ``[A-Za-z0-9_]`` (or in case) apart."""
    stored = snowflake_column_name(landing_name(table))
    digest = hashlib.sha256(stored.encode()).hexdigest()[:8]
    return f"etl_{int(pipeline_id)}_{re.sub(r'[^A-Za-z0-9_]', '_', stored)[:120]}_{digest}"


@dataclass(frozen=True)
class _Lane:
    """An open channel of one landing table."""

    name: str
    client: StreamingClient
    channel: StreamingChannel


@dataclass(frozen=True)
class _Wait:
    """What one landing table must hold before the MERGEs may run."""

    table: TableName
    lane: _Lane
    first: tuple[int, int]
    last: tuple[int, int]
    rows: int  # distinct positions appended
    errors_before: int

    @property
    def last_token(self) -> str:
        return offset_token(*self.last)


class SnowpipeStreamingDestination(SnowflakeDestination):
    def __init__(
        self,
        config: SnowflakeConfig,
        connector: Callable[[SnowflakeConfig], SnowflakeConnection] | None = None,
        *,
        atomic: bool = True,
        soft_deletes: bool = False,
        client_factory: ClientFactory | None = None,
        commit_timeout: float = 120.0,
        poll_interval: float = 0.5,
    ) -> None:
        """``commit_timeout`` bounds the wait for a batch's rows to be committed to the landing
        tables; ``poll_interval`` is the pause between two looks at the channels."""
        self._client_factory = client_factory or sdk_client_factory
        self.commit_timeout = commit_timeout
        self.poll_interval = poll_interval
        self._lanes: dict[tuple[int, TableName], _Lane] = {}
        self._pipeline_id: int | None = None
        super().__init__(config, connector, atomic=atomic, soft_deletes=soft_deletes)

    def describe(self) -> str:
        return "snowpipe-streaming+" + super().describe()

    # ---- channels ------------------------------------------------------------------------------
    def _lane(self, pipeline_id: int, table: TableName) -> _Lane:
        lane = self._lanes.get((pipeline_id, table))
        if lane is not None:
            return lane
        name = channel_name(pipeline_id, table)
        client = self._client_factory(self.config, snowflake_column_name(landing_name(table)))
        try:
            channel, status = client.open_channel(name)
        except Exception as exc:
            _quietly_close(client)
            raise _sdk_error(self.config, f"cannot open Snowpipe Streaming channel {name}", str(exc), exc) from None
        lane = _Lane(name, client, channel)
        self._lanes[(pipeline_id, table)] = lane
        log.info(
            "channel %s open, committed up to %s",
            name,
            _position_text(status.latest_committed_offset_token),
        )
        return lane

    def _status(self, table: TableName, lane: _Lane) -> ChannelStatus:
        try:
            status = lane.channel.get_channel_status()
        except Exception as exc:
            self._drop_lane(lane)
            raise _sdk_error(self.config, f"channel {lane.name} status unavailable", str(exc), exc) from None
        if status.status_code != _OK:
            self._drop_lane(lane)
            message = status.last_error_message or "no message"
            raise DestinationError(
                f"Snowpipe Streaming channel {lane.name} of {self.landing_sql(table)} is {status.status_code}: "
                f"{message}",
                "retrying with the channel reopened; nothing was acknowledged. If it persists, check the "
                "landing table and its default pipe in Snowflake (SHOW CHANNELS)",
            )
        return status

    def _drop_lane(self, lane: _Lane) -> None:
        """Forget a channel; the next use reopens it, which fences whatever it still had in flight."""
        for key, held in list(self._lanes.items()):
            if held is lane:
                del self._lanes[key]
        _quietly_close(lane.channel, lane.client)

    def _drop_lanes(self, tables: Iterable[TableName]) -> None:
        wanted = set(tables)
        for (_pid, table), lane in list(self._lanes.items()):
            if table in wanted:
                self._drop_lane(lane)

    def close(self) -> None:
        for lane in list(self._lanes.values()):
            self._drop_lane(lane)
        super().close()

    # ---- tables --------------------------------------------------------------------------------
    def _landing_ddl(self, schema: TableSchema) -> str:
        # Every (re)creation of a landing table is built here; a channel on the old table is
        # useless afterwards, so the next load opens it again.
        self._drop_lanes([schema.table])
        return super()._landing_ddl(schema)

    def drop_table(self, table: TableName) -> None:
        self._drop_lanes([table])
        super().drop_table(table)

    # ---- apply -----------------------------------------------------------------------------------
    def apply(self, pipeline_id: int, batch: Batch) -> None:
        # The landing hook gets no pipeline id; channels are named per pipeline.
        self._pipeline_id = pipeline_id
        try:
            super().apply(pipeline_id, batch)
        finally:
            self._pipeline_id = None

    def _load_landing(self, cur: SnowflakeCursor, batch: Batch, files: list[pa.Table | None], run: str) -> None:
        """Append each step's rows to its table's channel, then wait until they are all committed."""
        assert self._pipeline_id is not None, "_load_landing runs inside apply()"
        waits: dict[TableName, _Wait] = {}
        for step, file in zip(batch.steps, files, strict=True):
            if file is None or file.num_rows == 0:
                continue
            assert isinstance(step, RowsStep)
            table = step.schema.table
            lane = self._lane(self._pipeline_id, table)
            previous = waits.get(table)
            # The first look also refuses a channel that is already broken, before anything is appended.
            errors_before = previous.errors_before if previous else self._status(table, lane).rows_error_count
            n = len(step.schema.columns)
            positions = sorted(zip(file.column(n + 1).to_pylist(), file.column(n + 2).to_pylist(), strict=True))
            first, last = positions[0], positions[-1]
            names = [snowflake_column_name(c) for c in (*step.schema.column_names, *LANDING_META)]
            rows, start, end = landing_rows(file, names), offset_token(*first), offset_token(*last)
            try:
                lane.channel.append_rows(rows, start, end)
            except Exception as exc:
                self._drop_lane(lane)
                raise _sdk_error(self.config, f"append to channel {lane.name} failed", str(exc), exc) from None
            if previous is None:
                waits[table] = _Wait(table, lane, first, last, len(set(positions)), errors_before)
            else:
                # a table's steps in one batch never overlap and come in order
                waits[table] = _Wait(
                    table, lane, previous.first, last, previous.rows + len(set(positions)), errors_before
                )
        self._await(cur, list(waits.values()))

    def _await(self, cur: SnowflakeCursor, waits: list[_Wait]) -> None:
        deadline = time.monotonic() + self.commit_timeout
        pending = waits
        while pending:
            behind: list[tuple[_Wait, str | None, int]] = []
            for wait in pending:
                status = self._status(wait.table, wait.lane)
                committed = status.latest_committed_offset_token
                self._check_rejected(wait, status)
                landed = -1  # not counted: the channel has not got that far yet
                if committed is not None and committed >= wait.last_token:
                    landed = self._landed(cur, wait)
                    if landed >= wait.rows:
                        continue
                behind.append((wait, committed, landed))
            if not behind:
                return
            if time.monotonic() >= deadline:
                self._timed_out(*behind[0])
            time.sleep(self.poll_interval)
            pending = [w for w, _c, _n in behind]

    def _landed(self, cur: SnowflakeCursor, wait: _Wait) -> int:
        lsn, ordn = snowflake_ident(LSN_COLUMN), snowflake_ident(ORDINAL_COLUMN)
        (first_lsn, first_ord), (last_lsn, last_ord) = wait.first, wait.last
        cur.execute(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT {lsn}, {ordn} FROM {self.landing_sql(wait.table)}"
            f" WHERE ({lsn} > {int(first_lsn)} OR ({lsn} = {int(first_lsn)} AND {ordn} >= {int(first_ord)}))"
            f" AND ({lsn} < {int(last_lsn)} OR ({lsn} = {int(last_lsn)} AND {ordn} <= {int(last_ord)})))"
        )
        row = cur.fetchone()
        return int(row[0]) if isinstance(row, tuple | list) and row[0] is not None else 0

    def _check_rejected(self, wait: _Wait, status: ChannelStatus) -> None:
        if status.rows_error_count <= wait.errors_before:
            return
        bound = status.last_error_offset_token_upper_bound
        if bound is not None and bound < offset_token(*wait.first):
            return  # an error of an earlier append, already reported then
        self._drop_lane(wait.lane)
        raise DestinationError(
            f"Snowflake rejected {status.rows_error_count - wait.errors_before} row(s) appended to "
            f"{self.landing_sql(wait.table)} through channel {wait.lane.name}: "
            f"{status.last_error_message or 'no message'}",
            "nothing was acknowledged; check that the landing table's columns match the source "
            "(restarting the pipeline recreates it), then retry the pipeline",
            retry=RetryPolicy.MANUAL,
        )

    def _timed_out(self, wait: _Wait, committed: str | None, landed: int) -> None:
        self._drop_lane(wait.lane)
        where = f"{self.landing_sql(wait.table)} (channel {wait.lane.name})"
        if landed < 0:
            reason = (
                f"Snowpipe Streaming did not commit rows up to {_position_text(wait.last_token)} into {where} "
                f"within {self.commit_timeout:g} s; committed up to {_position_text(committed)}"
            )
        else:
            reason = (
                f"{where} holds {landed} of the batch's {wait.rows} rows {self.commit_timeout:g} s after the "
                f"channel committed up to {_position_text(committed)}"
            )
        raise DestinationError(
            reason,
            "nothing was acknowledged; retrying with the channel reopened. If it persists, check the "
            "channel and the landing table's default pipe in Snowflake (SHOW CHANNELS)",
            retry=RetryPolicy.TIMED,
        )


def _quietly_close(*handles: StreamingChannel | StreamingClient) -> None:
    # Closing must not wait for a flush: whatever is still in flight is re-appended on retry.
    for handle in handles:
        try:
            handle.close(wait_for_flush=False, timeout_seconds=0)
        except Exception as exc:
            log.debug("closing a Snowpipe Streaming handle failed: %s", exc)
