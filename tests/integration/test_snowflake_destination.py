"""The Snowflake destination against fakesnow in server mode, through the real connector.

Batches are built the way the runner builds them: raw pgoutput Insert/Update/Delete payloads
fed to :class:`Batcher`. Known emulator gaps (not the destination's): a NULL TIMESTAMP_TZ loaded
from Parquet comes back as 1970-01-01, so the tests keep timestamps non-NULL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

fakesnow = pytest.importorskip("fakesnow")

from engine.decoding.pgoutput import UNCHANGED_TOAST  # noqa: E402
from engine.destinations.snowflake.connection import SnowflakeConfig  # noqa: E402
from engine.destinations.snowflake.destination import SnowflakeDestination  # noqa: E402
from engine.errors import DestinationError, ValueConversionError  # noqa: E402
from tests.integration.snowflake_orders import ORDERS, T0, Changes, _initial_copy, col, rows, table  # noqa: E402
from tests.integration.targets import SNOWFLAKE_PASSWORD_ENV, emulator_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PASSWORD_ENV = SNOWFLAKE_PASSWORD_ENV


@pytest.fixture
def dest(
    fakesnow_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[SnowflakeDestination]:
    database = f"ETL_TEST_{request.node.name.upper().replace('[', '_').replace(']', '_')}"[:100]
    config = emulator_config(fakesnow_server, database, monkeypatch)
    # fakesnow cannot run MERGE inside BEGIN/COMMIT (its MERGE writes a temporary table in
    # another DuckDB database), so the statements run one by one here.
    d = SnowflakeDestination(config, atomic=False)
    yield d
    d.close()


def test_copy_then_changes_then_replay(dest: SnowflakeDestination) -> None:
    _initial_copy(dest)
    assert rows(dest, ORDERS) == [
        (1, "one", Decimal("1.50"), '{"a":[1,2]}', T0, 0, 0),
        (2, None, Decimal("2.00"), None, T0, 0, 0),
    ]
    ts = "2024-05-02 10:00:00+00"
    batch = (
        Changes()
        .insert(ORDERS, 100, 3, "three", "3.25", '{"k": "v"}', ts)
        .update(ORDERS, 100, 1, "uno", "1.75", None, ts)
        .delete(ORDERS, 100, 2)
        .insert(ORDERS, 110, 4, "four", "4", None, ts)
        .update(ORDERS, 120, 4, "FOUR", "44", "[1]", ts)
        .batch(130)
    )
    dest.apply(7, batch)
    t1 = dt.datetime(2024, 5, 2, 10, 0, tzinfo=dt.UTC)
    expected = [
        (1, "uno", Decimal("1.75"), None, t1, 100, 2),
        (3, "three", Decimal("3.25"), '{"k":"v"}', t1, 100, 1),
        (4, "FOUR", Decimal("44.00"), "[1]", t1, 120, 5),
    ]
    assert rows(dest, ORDERS) == expected
    assert dest.checkpoint(7) == 130
    assert dest.checkpoint(8) is None

    dest.apply(7, batch)  # a replayed batch changes nothing (I2)
    assert rows(dest, ORDERS) == expected
    assert dest.checkpoint(7) == 130

    dest.forget(7)
    assert dest.checkpoint(7) is None


def test_an_older_change_never_overwrites_a_newer_one(dest: SnowflakeDestination) -> None:
    _initial_copy(dest)
    ts = "2024-05-02 10:00:00+00"
    dest.apply(1, Changes().update(ORDERS, 200, 1, "new", "9", None, ts).batch(210))
    dest.apply(1, Changes().update(ORDERS, 150, 1, "old", "8", None, ts).delete(ORDERS, 150, 1).batch(160))
    got = rows(dest, ORDERS)
    assert got[0][:3] == (1, "new", Decimal("9.00"))
    assert got[0][-2:] == (200, 1)
    assert len(got) == 2


def test_truncate_keeps_later_changes(dest: SnowflakeDestination) -> None:
    _initial_copy(dest)
    ts = "2024-05-02 10:00:00+00"
    batch = (
        Changes()
        .insert(ORDERS, 100, 5, "before", "5", None, ts)
        .truncate(ORDERS, 110)
        .insert(ORDERS, 120, 6, "after", "6", None, ts)
        .batch(130)
    )
    dest.apply(3, batch)
    assert [r[:2] for r in rows(dest, ORDERS)] == [(6, "after")]
    dest.apply(3, batch)
    assert [r[:2] for r in rows(dest, ORDERS)] == [(6, "after")]
    assert dest.checkpoint(3) == 130


def test_unchanged_toast_keeps_the_value(dest: SnowflakeDestination) -> None:
    _initial_copy(dest)
    ts = "2024-05-02 10:00:00+00"
    batch = (
        Changes()
        .update(ORDERS, 100, 1, UNCHANGED_TOAST, "7", UNCHANGED_TOAST, ts)  # keeps the target's values
        .insert(ORDERS, 100, 9, "nine", "9", '{"x": 1}', ts)
        .update(ORDERS, 110, 9, "NINE", "9", UNCHANGED_TOAST, ts)  # takes the batch's earlier value
        .batch(120)
    )
    dest.apply(2, batch)
    got = {r[0]: r for r in rows(dest, ORDERS)}
    assert got[1][:4] == (1, "one", Decimal("7.00"), '{"a":[1,2]}')
    assert got[9][:4] == (9, "NINE", Decimal("9.00"), '{"x":1}')


def test_a_bc_date_is_refused_naming_table_and_column(dest: SnowflakeDestination) -> None:
    events = table("events", col("id", "int8", key=True), col("day", "date"))
    dest.copy_table(events, [], lambda _n: None)
    dest.prepare([events])
    batch = Changes().insert(events, 100, 1, "2024-01-01").insert(events, 100, 2, "0044-03-15 BC").batch(110)
    with pytest.raises(ValueConversionError) as info:
        dest.apply(1, batch)
    assert info.value.column == "day" and "events" in info.value.table
    assert "BC" in str(info.value)
    assert dest.checkpoint(1) is None
    assert rows(dest, events) == []


def test_hostile_column_names(dest: SnowflakeDestination) -> None:
    weird = table("Order Items", col("select", "int4", key=True), col("Order Items", "text"), col('a"b', "jsonb"))
    progress: list[int] = []
    first = pa.record_batch(
        [pa.array([1], pa.int32()), pa.array(["x"]), pa.array(['{"q": 1}'])], names=list(weird.column_names)
    )
    assert dest.copy_table(weird, [first], progress.append) == 1
    dest.prepare([weird])
    dest.apply(
        5,
        Changes().insert(weird, 100, 2, "two", '"s"').update(weird, 100, 1, "uno", None).batch(110),
    )
    assert rows(dest, weird) == [(1, "uno", None, 100, 2), (2, "two", '"s"', 100, 1)]
    with dest._cursor() as cur:
        cur.execute(
            f"SELECT COLUMN_NAME FROM {dest.config.database}.INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_NAME = 'Order Items' ORDER BY ORDINAL_POSITION"
        )
        assert [r[0] for r in cur.fetchall()] == ["SELECT", "Order Items", 'a"b', "_ETL_COMMIT_LSN", "_ETL_ORDINAL"]


def test_prepare_reports_a_missing_target(dest: SnowflakeDestination) -> None:
    _initial_copy(dest)
    nowhere = table("nowhere", col("id", "int4", key=True))
    failed = dest.prepare([nowhere, ORDERS])  # only the missing one fails; the other is prepared
    assert list(failed) == [nowhere.table] and "missing" in failed[nowhere.table].reason


def test_config_repr_and_errors_never_show_secrets(
    fakesnow_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from engine.destinations.snowflake import connection
    from engine.destinations.snowflake.connection import connect

    monkeypatch.setattr(connection, "LOGIN_TIMEOUT_SECONDS", 5)
    monkeypatch.setenv("ETL_TEST_PASSPHRASE", "s3cret-passphrase")
    key = tmp_path / "key.p8"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nnot a key\n-----END ENCRYPTED PRIVATE KEY-----\n")
    config = SnowflakeConfig(
        account="acme",
        user="loader",
        database="DB",
        schema="S",
        private_key_file=str(key),
        private_key_passphrase_env="ETL_TEST_PASSPHRASE",
    )
    assert "s3cret" not in repr(config)
    with pytest.raises(DestinationError) as info:
        connect(config)
    text = f"{info.value} {info.value.hint}"
    assert "s3cret" not in text and "loader" in text and "passphrase" in info.value.hint

    unreachable = SnowflakeConfig(
        account="acme", user="loader", database="DB", schema="S", password_env="ETL_TEST_PASSPHRASE",
        host="127.0.0.1", port=9, protocol="http",
    )  # fmt: skip
    with pytest.raises(DestinationError) as info:
        connect(unreachable)
    assert "s3cret" not in str(info.value) and "network" in info.value.hint


def test_key_pair_login_with_an_encrypted_key(
    fakesnow_server: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from engine.destinations.snowflake.connection import connect

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"k3y-passphrase"),
    )
    (tmp_path / "rsa_key.p8").write_bytes(pem)
    monkeypatch.setenv("ETL_TEST_KEY_PASSPHRASE", "k3y-passphrase")
    config = SnowflakeConfig(
        account=fakesnow_server["account"],
        user=fakesnow_server["user"],
        database="ETL_TEST_KEYPAIR",
        schema="PUBLIC",
        private_key_file=str(tmp_path / "rsa_key.p8"),
        private_key_passphrase_env="ETL_TEST_KEY_PASSPHRASE",
        host=fakesnow_server["host"],
        port=fakesnow_server["port"],
        protocol=fakesnow_server["protocol"],
    )
    assert "k3y" not in repr(config)
    conn = connect(config)
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()

    monkeypatch.setenv("ETL_TEST_KEY_PASSPHRASE", "wrong-passphrase")
    with pytest.raises(DestinationError) as info:
        connect(config)
    assert "wrong-passphrase" not in f"{info.value} {info.value.hint}" and "passphrase" in info.value.hint
