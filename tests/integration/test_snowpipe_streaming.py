"""The Snowpipe Streaming loader against fakesnow, with a stand-in for the ingest service.

The SDK talks HTTPS to Snowflake only, so its place is taken by :class:`Ingest`: channels keyed
by name that outlive destination objects (as they do in Snowflake), and that "commit" appended
rows into the landing table through a real connection when their status is polled. Everything
else (landing tables, MERGE, checkpoint) runs on fakesnow through the real connector.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

fakesnow = pytest.importorskip("fakesnow")

from engine.destinations.snowflake import connection  # noqa: E402
from engine.destinations.snowflake import destination as destination_module  # noqa: E402
from engine.destinations.snowflake.connection import SnowflakeConfig  # noqa: E402
from engine.destinations.snowflake.naming import qualified, snowflake_ident  # noqa: E402
from engine.destinations.snowflake.streaming import (  # noqa: E402
    SnowpipeStreamingDestination,
    channel_name,
    client_properties,
    landing_rows,
    offset_token,
    parse_offset_token,
    sdk_client_factory,
)
from engine.errors import DestinationError, ErrorKind, RetryPolicy  # noqa: E402
from tests.integration.snowflake_orders import ORDERS, Changes, _initial_copy, rows  # noqa: E402
from tests.integration.targets import SNOWFLAKE_PASSWORD_ENV, emulator_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PASSWORD_ENV = SNOWFLAKE_PASSWORD_ENV
_SDK_TYPES = (type(None), bool, int, float, str, bytes, bytearray, Decimal, dt.date, dt.time, dt.datetime)
TS = "2024-05-02 10:00:00+00"
T1 = dt.datetime(2024, 5, 2, 10, 0, tzinfo=dt.UTC)


# ---- the stand-in ingest service -------------------------------------------------------------------
@dataclass
class Status:
    status_code: str
    latest_committed_offset_token: str | None
    rows_error_count: int
    last_error_offset_token_upper_bound: str | None
    last_error_message: str | None


@dataclass
class ChannelState:
    """What Snowflake keeps for a channel between sessions."""

    table: str
    committed: str | None = None
    status_code: str = "SUCCESS"
    rows_error_count: int = 0
    last_error_bound: str | None = None
    last_error_message: str | None = None
    opens: int = 0
    appends: list[tuple[str | None, str | None, int]] = field(default_factory=list)

    def status(self) -> Status:
        return Status(
            self.status_code, self.committed, self.rows_error_count, self.last_error_bound, self.last_error_message
        )


class Ingest:
    """Channels by name; ``commits`` off means nothing ever commits, ``delay`` is how many status
    polls an append waits before it commits, ``reject`` picks rows the service refuses."""

    def __init__(self, config: SnowflakeConfig) -> None:
        self.config = config
        self.channels: dict[str, ChannelState] = {}
        self.commits = True
        self.delay = 0
        self.reject: Callable[[dict[str, Any]], bool] = lambda _row: False
        self._conn = connection.connect(config)

    def client(self, config: SnowflakeConfig, table: str) -> Client:
        assert config == self.config
        return Client(self, table)

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        names = list(rows[0])
        target = qualified(self.config.database, self.config.landing_schema, table)
        sql = (
            f"INSERT INTO {target} ({', '.join(snowflake_ident(n) for n in names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )
        cur = self._conn.cursor()
        cur.executemany(sql, [tuple(r[n] for n in names) for r in rows])
        cur.close()

    def close(self) -> None:
        self._conn.close()


class Client:
    def __init__(self, ingest: Ingest, table: str) -> None:
        self.ingest = ingest
        self.table = table

    def open_channel(self, channel_name: str, offset_token: str | None = None) -> tuple[Channel, Status]:
        state = self.ingest.channels.setdefault(channel_name, ChannelState(self.table))
        assert state.table == self.table
        state.opens += 1
        return Channel(self.ingest, state), state.status()

    def close(self, wait_for_flush: bool = True, timeout_seconds: int | None = None) -> None:
        pass


class Channel:
    def __init__(self, ingest: Ingest, state: ChannelState) -> None:
        self.ingest = ingest
        self.state = state
        self.pending: list[list[Any]] = []  # [rows, end token, polls left]
        self.closed = False

    def append_rows(
        self, rows: list[dict[str, Any]], start_offset_token: str | None = None, end_offset_token: str | None = None
    ) -> None:
        assert not self.closed
        for row in rows:
            for value in row.values():
                assert isinstance(value, _SDK_TYPES), type(value)
                assert not (isinstance(value, float) and not math.isfinite(value))  # the SDK would send null
        self.state.appends.append((start_offset_token, end_offset_token, len(rows)))
        self.pending.append([rows, end_offset_token, self.ingest.delay])

    def get_channel_status(self) -> Status:
        while self.ingest.commits and self.pending and self.state.status_code == "SUCCESS":
            if self.pending[0][2] > 0:
                self.pending[0][2] -= 1
                break
            rows, end, _ = self.pending.pop(0)
            refused = [r for r in rows if self.ingest.reject(r)]
            self.ingest.insert(self.state.table, [r for r in rows if not self.ingest.reject(r)])
            if refused:
                self.state.rows_error_count += len(refused)
                self.state.last_error_bound = end
                self.state.last_error_message = "Numeric value 'x' is not recognized"
            self.state.committed = end
        return self.state.status()

    def get_latest_committed_offset_token(self) -> str | None:
        return self.state.committed

    def close(self, drop: bool = False, wait_for_flush: bool = True, timeout_seconds: int | None = None) -> None:
        self.closed = True
        self.pending.clear()  # a closed handle's appends never commit


# ---- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture
def sf_config(
    fakesnow_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> SnowflakeConfig:
    return emulator_config(fakesnow_server, f"ETL_SPS_{request.node.name.upper()}"[:100], monkeypatch)


@pytest.fixture
def ingest(sf_config: SnowflakeConfig) -> Iterator[Ingest]:
    service = Ingest(sf_config)
    yield service
    service.close()


@pytest.fixture
def open_dest(sf_config: SnowflakeConfig, ingest: Ingest) -> Iterator[Callable[..., SnowpipeStreamingDestination]]:
    opened: list[SnowpipeStreamingDestination] = []

    def make(**kw: Any) -> SnowpipeStreamingDestination:
        # fakesnow cannot run MERGE inside BEGIN/COMMIT, so the statements run one by one here.
        kw.setdefault("commit_timeout", 10.0)
        kw.setdefault("poll_interval", 0.01)
        d = SnowpipeStreamingDestination(sf_config, atomic=False, client_factory=ingest.client, **kw)
        opened.append(d)
        return d

    yield make
    for d in opened:
        d.close()


def landing_count(dest: SnowpipeStreamingDestination) -> int:
    with dest._cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {dest.landing_sql(ORDERS.table)}")
        row = cur.fetchone()
    assert isinstance(row, tuple)
    return int(row[0])


def the_channel(ingest: Ingest) -> ChannelState:
    assert len(ingest.channels) == 1
    return next(iter(ingest.channels.values()))


EXPECTED = [
    (1, "uno", Decimal("1.75"), None, T1, 100, 2),
    (3, "three", Decimal("3.25"), '{"k":"v"}', T1, 100, 1),
    (4, "FOUR", Decimal("44.00"), "[1]", T1, 120, 5),
]


def changes() -> Changes:
    return (
        Changes()
        .insert(ORDERS, 100, 3, "three", "3.25", '{"k": "v"}', TS)
        .update(ORDERS, 100, 1, "uno", "1.75", None, TS)
        .delete(ORDERS, 100, 2)
        .insert(ORDERS, 110, 4, "four", "4", None, TS)
        .update(ORDERS, 120, 4, "FOUR", "44", "[1]", TS)
    )


# ---- tests -------------------------------------------------------------------------------------------
def test_rows_land_through_the_channel_and_merge(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    dest = open_dest()
    _initial_copy(dest)
    dest.apply(7, changes().batch(130))
    assert rows(dest, ORDERS) == EXPECTED
    assert dest.checkpoint(7) == 130
    assert landing_count(dest) == 0
    state = the_channel(ingest)
    assert list(ingest.channels) == [channel_name(7, ORDERS.table)]
    assert state.appends == [(offset_token(100, 1), offset_token(120, 5), 5)]
    assert state.committed == offset_token(120, 5)


def test_tokens_are_positions_that_sort_as_text(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    positions = [(0, 0), (1, 9), (1, 10), (0xFF, 2), (0x100, 1), (0x1_0000_0000, 0), ((1 << 64) - 1, 10**10 - 1)]
    tokens = [offset_token(*p) for p in positions]
    assert tokens == sorted(tokens)
    assert [parse_offset_token(t) for t in tokens] == positions
    assert offset_token(0x16B3748, 7) == "00000000016B3748:0000000007"
    with pytest.raises(ValueError):
        offset_token(1 << 64, 0)

    dest = open_dest()
    _initial_copy(dest)
    dest.apply(1, Changes().insert(ORDERS, 0x200, 5, "a", "1", None, TS).batch(0x210))
    dest.apply(1, Changes().insert(ORDERS, 0x300, 6, "b", "1", None, TS).truncate(ORDERS, 0x310).batch(0x320))
    dest.apply(
        1,
        Changes()
        .insert(ORDERS, 0x400, 7, "c", "1", None, TS)
        .truncate(ORDERS, 0x410)
        .insert(ORDERS, 0x420, 8, "d", "1", None, TS)
        .batch(0x430),
    )
    appended = [(s, e) for s, e, _n in the_channel(ingest).appends]
    assert appended == [
        (offset_token(0x200, 1), offset_token(0x200, 1)),
        (offset_token(0x300, 1), offset_token(0x300, 1)),
        (offset_token(0x400, 1), offset_token(0x400, 1)),
        (offset_token(0x420, 3), offset_token(0x420, 3)),
    ]
    flat = [t for pair in appended for t in pair]
    assert flat == sorted(flat)
    assert [r[:2] for r in rows(dest, ORDERS)] == [(8, "d")]


def test_a_restart_resumes_without_loss_or_duplicates(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_dest()
    _initial_copy(first)
    batch = changes().batch(130)
    # The rows reach the landing table through the channel, then the MERGE fails (a crash there).
    with monkeypatch.context() as m:
        m.setattr(destination_module, "merge_sql", lambda *_a, **_k: "SELECT * FROM NO_SUCH_TABLE")
        with pytest.raises(DestinationError):
            first.apply(7, batch)
    assert first.checkpoint(7) is None
    state = the_channel(ingest)
    assert state.committed == offset_token(120, 5)
    first.close()

    # A new process: the channel reopens with its committed token already at the batch's end,
    # so only the landing table can say when the re-appended rows are in (commits lag 3 polls).
    ingest.delay = 3
    second = open_dest()
    second.prepare([ORDERS])
    second.apply(7, batch)
    assert state.opens == 2
    assert [a[:2] for a in state.appends] == [(offset_token(100, 1), offset_token(120, 5))] * 2
    assert rows(second, ORDERS) == EXPECTED
    assert second.checkpoint(7) == 130
    assert landing_count(second) == 0

    second.apply(7, batch)  # a replay of a merged batch changes nothing (I2)
    assert rows(second, ORDERS) == EXPECTED
    ingest.delay = 0
    second.apply(7, Changes().update(ORDERS, 140, 3, "THREE", "3", None, TS).batch(150))
    assert [r[:2] for r in rows(second, ORDERS)] == [(1, "uno"), (3, "THREE"), (4, "FOUR")]
    assert second.checkpoint(7) == 150


def test_a_channel_that_never_commits_times_out(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    dest = open_dest(commit_timeout=0.3)
    _initial_copy(dest)
    before = rows(dest, ORDERS)
    ingest.commits = False
    with pytest.raises(DestinationError) as info:
        dest.apply(7, changes().batch(130))
    error = info.value
    assert error.retry is RetryPolicy.TIMED
    assert "did not commit" in error.reason and "0/78 #5" in error.reason and "0.3 s" in error.reason
    assert "nothing was acknowledged" in error.hint
    assert dest.checkpoint(7) is None
    assert rows(dest, ORDERS) == before

    ingest.commits = True  # the retry reopens the channel and lands everything
    dest.apply(7, changes().batch(130))
    assert the_channel(ingest).opens == 2
    assert rows(dest, ORDERS) == EXPECTED


def test_a_recreated_landing_table_gets_its_channel_reopened(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    dest = open_dest()
    _initial_copy(dest)
    dest.apply(7, Changes().insert(ORDERS, 90, 5, "five", "5", None, TS).batch(95))
    _initial_copy(dest)  # a resync recreates the target and the landing table
    dest.apply(7, changes().batch(130))
    assert the_channel(ingest).opens == 2
    assert rows(dest, ORDERS) == EXPECTED


def test_a_broken_channel_is_a_clear_error(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    dest = open_dest()
    _initial_copy(dest)
    dest.apply(7, Changes().insert(ORDERS, 90, 5, "five", "5", None, TS).batch(95))
    state = the_channel(ingest)
    state.status_code = "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED"
    state.last_error_message = "the landing table was dropped"
    with pytest.raises(DestinationError) as info:
        dest.apply(7, changes().batch(130))
    assert "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED" in info.value.reason
    assert "the landing table was dropped" in info.value.reason
    assert channel_name(7, ORDERS.table) in info.value.reason
    assert dest.checkpoint(7) == 95
    assert len(state.appends) == 1  # refused before appending


def test_rows_the_service_rejects_stop_the_batch(
    open_dest: Callable[..., SnowpipeStreamingDestination], ingest: Ingest
) -> None:
    dest = open_dest()
    _initial_copy(dest)
    before = rows(dest, ORDERS)
    ingest.reject = lambda row: row["NOTE"] == "three"
    with pytest.raises(DestinationError) as info:
        dest.apply(7, changes().batch(130))
    assert info.value.retry is RetryPolicy.MANUAL
    assert "rejected 1 row(s)" in info.value.reason and "is not recognized" in info.value.reason
    assert dest.checkpoint(7) is None
    assert rows(dest, ORDERS) == before


# ---- pieces without a server ---------------------------------------------------------------------------
def test_landing_rows_use_the_sdk_value_types() -> None:
    file = pa.table(
        {
            "c0": pa.array([1, None], pa.int64()),
            "c1": pa.array([1.5, float("nan")]),
            "c2": pa.array([float("inf"), float("-inf")], pa.float32()),
            "c3": pa.array([Decimal("1.50"), None], pa.decimal128(12, 2)),
            "c4": pa.array([b"\x00\xff", None], pa.binary()),
            "c5": pa.array([dt.datetime(2024, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC), None], pa.timestamp("us", "UTC")),
            "c6": pa.array([dt.date(1, 1, 1), None], pa.date32()),
            "c7": pa.array([dt.time(23, 59, 59, 999999), None], pa.time64("us")),
            "c8": pa.array(['{"a": [1]}', None]),
        }
    )
    names = ["ID", "F", "G", "N", "B", "TS", "D", "T", "Order Items"]
    got = landing_rows(file, names)
    assert got[0] == {
        "ID": 1,
        "F": 1.5,
        "G": "inf",
        "N": Decimal("1.50"),
        "B": b"\x00\xff",
        "TS": dt.datetime(2024, 1, 1, 1, 2, 3, 4, tzinfo=dt.UTC),
        "D": dt.date(1, 1, 1),
        "T": dt.time(23, 59, 59, 999999),
        "Order Items": '{"a": [1]}',
    }
    assert got[1]["F"] == "NaN" and got[1]["G"] == "-inf"
    assert all(isinstance(v, _SDK_TYPES) for row in got for v in row.values())


def test_channel_names_are_stable_and_distinct() -> None:
    from engine.identifiers import TableName

    a = channel_name(3, TableName("public", "Order Items"))
    assert a == channel_name(3, TableName("public", "Order Items"))
    assert a.startswith("etl_3_landing_Order_Items_")
    assert a != channel_name(3, TableName("public", "Order_Items"))
    assert a != channel_name(4, TableName("public", "Order Items"))


def test_client_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_TEST_SPS_PASSPHRASE", "s3cret")
    config = SnowflakeConfig(
        account="acme-prod", user="loader", database="DB", schema="S", role="LOADER",
        private_key_file="/keys/rsa.p8", private_key_passphrase_env="ETL_TEST_SPS_PASSPHRASE",
    )  # fmt: skip
    assert client_properties(config) == {
        "account": "acme-prod",
        "user": "loader",
        "url": "https://acme-prod.snowflakecomputing.com",
        "private_key_file": "/keys/rsa.p8",
        "private_key_passphrase": "s3cret",
        "role": "LOADER",
    }
    local = SnowflakeConfig(
        account="acme", user="u", database="DB", schema="S", private_key_file="k.p8",
        host="127.0.0.1", port=8443, protocol="https",
    )  # fmt: skip
    assert client_properties(local)["url"] == "https://127.0.0.1:8443"
    assert "private_key_passphrase" not in client_properties(local)

    with pytest.raises(DestinationError) as info:
        client_properties(SnowflakeConfig(account="a", user="u", database="D", schema="S", password_env="X"))
    assert info.value.kind is ErrorKind.CONFIG and "key-pair" in info.value.reason
    monkeypatch.delenv("ETL_TEST_SPS_PASSPHRASE")
    with pytest.raises(DestinationError, match="ETL_TEST_SPS_PASSPHRASE"):
        client_properties(config)


def test_the_default_client_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SS_LOG_LEVEL", raising=False)
    monkeypatch.setitem(sys.modules, "snowflake.ingest.streaming", None)  # not installed
    config = SnowflakeConfig(account="a", user="u", database="D", schema="S", private_key_file="k.p8")
    with pytest.raises(DestinationError) as info:
        sdk_client_factory(config, "LANDING_ORDERS")
    assert "pip install 'etl-tui[snowpipe]'" in info.value.hint
    assert info.value.retry is RetryPolicy.MANUAL
    assert os.environ["SS_LOG_LEVEL"] == "error"  # set before the import is attempted


def test_the_default_client_is_built_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    class StreamingIngestClient:
        @classmethod
        def from_table(cls, *args: Any, **kwargs: Any) -> str:
            calls.append((*args, kwargs))
            return "client"

    sdk = types.ModuleType("snowflake.ingest.streaming")
    sdk.StreamingIngestClient = StreamingIngestClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snowflake.ingest.streaming", sdk)
    monkeypatch.setenv("SS_LOG_LEVEL", "warn")
    config = SnowflakeConfig(
        account="acme", user="loader", database="analytics", schema="S", landing_schema="etl_landing",
        private_key_file="k.p8",
    )  # fmt: skip
    assert sdk_client_factory(config, "LANDING_ORDERS") == "client"
    (call,) = calls
    assert call[1:4] == ("ANALYTICS", "ETL_LANDING", "LANDING_ORDERS")
    assert call[4]["properties"]["user"] == "loader"
    assert os.environ["SS_LOG_LEVEL"] == "warn"  # an operator's setting is kept
