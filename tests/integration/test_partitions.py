"""Partitioned tables replicate under their parent: the initial copy reads every partition, the
stream carries every partition's changes under the parent (also of partitions created or attached
while streaming, and of a row an UPDATE moves to another partition), a restart keeps the
publication, a partition named beside its parent is refused alone, and `etl-tui check` says so."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.embedded.postgres import EmbeddedPostgres
from engine.errors import ErrorKind
from engine.identifiers import TableName, parse_table_list, quote_ident
from engine.pipeline.activity import RunnerState
from engine.preflight import Check, CheckReport, Finding, Severity, run_preflight
from engine.settings import Settings
from engine.source.catalog import describe_table, partition_info, publication_tables
from engine.source.copy import estimate_rows
from engine.state.table_state import TablePhase
from etl_tui.cli import main
from tests.integration.harness import (
    EngineThread,
    add_pipeline,
    duck_rows,
    run_sql,
    source_rows,
    table_phase,
    wait_caught_up,
    wait_until,
)
from tests.integration.targets import DuckTarget, Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PAYMENT = ["id", "paid_at", "amount", "note"]
ACCOUNT = ["id", "region", "name"]
ITEMS = ["id", "name"]

# payment: by range of date, its 2025 partition again by hash of id (three leaves);
# account: by list of region (two leaves). Keys include the partition keys, as PostgreSQL requires.
SCHEMA = [
    "CREATE TABLE payment (id bigint, paid_at date, amount numeric(10,2), note text, PRIMARY KEY (id, paid_at)) "
    "PARTITION BY RANGE (paid_at)",
    "CREATE TABLE payment_2024 PARTITION OF payment FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
    "CREATE TABLE payment_2025 PARTITION OF payment FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') "
    "PARTITION BY HASH (id)",
    "CREATE TABLE payment_2025_h0 PARTITION OF payment_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
    "CREATE TABLE payment_2025_h1 PARTITION OF payment_2025 FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
    "INSERT INTO payment SELECT g, date '2024-06-01' + (g % 500), g * 1.5, 'pay ' || g FROM generate_series(1, 3000) g",
    "CREATE TABLE account (id int, region text, name text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)",
    "CREATE TABLE account_eu PARTITION OF account FOR VALUES IN ('eu')",
    "CREATE TABLE account_us PARTITION OF account FOR VALUES IN ('us')",
    "INSERT INTO account SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'acct ' || g "
    "FROM generate_series(1, 400) g",
    "CREATE TABLE items (id int PRIMARY KEY, name text)",
    "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g",
    "ANALYZE payment, account, items",
]


def source_content(dsn: str, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    return sorted(source_rows(dsn, f"SELECT {', '.join(columns)} FROM {table}"))


def target_content(target: Target, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    return sorted(target.rows(table, columns))


def assert_equal(target: Target, dsn: str, table: str, columns: list[str]) -> None:
    got = target_content(target, table, columns)
    keys = [r[:2] for r in got]
    assert len(set(keys)) == len(keys), f"duplicate keys in the target's {table}"
    assert got == source_content(dsn, table, columns)


def ready(settings: Settings, pipeline_id: int, *tables: str) -> bool:
    return all(table_phase(settings, pipeline_id, t) == TablePhase.READY for t in tables)


# ---- copy and stream, both destinations ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["duckdb", "snowflake"])
def test_partitioned_tables_copy_and_stream_under_their_parent(
    settings: Settings,
    source_dsn: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    run_sql(source_dsn, *SCHEMA)
    target = make_target(kind, tmp_path, request, monkeypatch)
    add_pipeline(settings, source_dsn, target, "public.payment,public.account")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        slot = runner.spec.pipeline.slot_name
        wait_until(lambda: ready(settings, runner.spec.id, "public.payment", "public.account"), 90, what="ready")
        # the copy read every partition, into one target table per parent
        assert any("copied 3000 rows" in e.message and "public.payment" in e.message for e in engine.events)
        assert_equal(target, source_dsn, "payment", PAYMENT)
        assert_equal(target, source_dsn, "account", ACCOUNT)

        run_sql(
            source_dsn,
            # inserts into every leaf of both trees
            "INSERT INTO payment VALUES (5001, '2024-02-02', 1, 'new 2024'), (5002, '2025-03-03', 2, 'new h?'), "
            "(5003, '2025-04-04', 3, 'new h?'), (5004, '2025-05-05', 4, 'new h?')",
            "INSERT INTO account VALUES (1001, 'eu', 'new eu'), (1002, 'us', 'new us')",
            "UPDATE payment SET amount = amount + 100, note = 'updated' WHERE id % 7 = 0",
            "UPDATE account SET name = 'renamed' WHERE id % 5 = 0",
            "DELETE FROM payment WHERE id % 11 = 0",
            "DELETE FROM account WHERE id % 13 = 0",
            # key changes that move rows to another partition (another range, another list value,
            # another hash bucket): each must end under its new key only
            "UPDATE payment SET paid_at = '2025-07-07' WHERE id IN (1, 2, 3)",
            "UPDATE payment SET id = id + 100000 WHERE id IN (5002, 5003)",
            "UPDATE account SET region = 'us' WHERE id IN (2, 4, 6)",
            "BEGIN",
            "INSERT INTO account VALUES (-1, 'eu', 'short-lived')",
            "UPDATE account SET region = 'us' WHERE id = -1",
            "UPDATE account SET name = 'moved twice', region = 'eu' WHERE id = -1",
            "COMMIT",
        )
        wait_caught_up(source_dsn, slot, timeout=90)
        assert_equal(target, source_dsn, "payment", PAYMENT)
        assert_equal(target, source_dsn, "account", ACCOUNT)
        moved = target_content(target, "payment", PAYMENT)
        assert [r[:2] for r in moved if r[0] in (1, 2, 3)] == [(i, dt.date(2025, 7, 7)) for i in (1, 2, 3)]
        assert {r[1] for r in target_content(target, "account", ACCOUNT) if r[0] in (2, 4, 6)} == {"us"}
        assert [r[1:] for r in target_content(target, "account", ACCOUNT) if r[0] == -1] == [("eu", "moved twice")]

        # a partition created while streaming, and one attached with rows of its own
        run_sql(
            source_dsn,
            "CREATE TABLE payment_2026 PARTITION OF payment FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
            "INSERT INTO payment VALUES (6001, '2026-01-10', 10, 'in a new partition'), (6002, '2026-02-10', 11, 'x')",
            "UPDATE payment SET note = 'changed in a new partition' WHERE id = 6002",
            "CREATE TABLE account_as (id int, region text, name text, PRIMARY KEY (id, region))",
            "INSERT INTO account_as VALUES (2001, 'as', 'before attach'), (2002, 'as', 'before attach, then updated')",
            "ALTER TABLE account ATTACH PARTITION account_as FOR VALUES IN ('as')",
            "INSERT INTO account VALUES (2003, 'as', 'after attach')",
            "UPDATE account SET name = 'updated after attach' WHERE id = 2002",
            "UPDATE account SET region = 'as' WHERE id = 1001",  # moves into the attached partition
        )
        wait_caught_up(source_dsn, slot, timeout=90)
        assert_equal(target, source_dsn, "payment", PAYMENT)
        # the row the attached table held before (and that nothing changed since) is not in the
        # WAL: PostgreSQL never sends it, so the engine sees the attach and copies account again
        # beside the stream; the partition created empty needs no copy
        wait_until(
            lambda: target_content(target, "account", ACCOUNT) == source_content(source_dsn, "account", ACCOUNT),
            60,
            what="account copied again after the attach",
        )
        again = [e.message for e in engine.events if "copying it again" in e.message]
        assert any("public.account" in m and "attached with rows" in m for m in again), again
        assert not any("public.payment" in m for m in again), again
        assert runner.state is RunnerState.STREAMING and runner.last_error is None

        # a detached partition's rows would stay at the destination: account is copied again
        run_sql(source_dsn, "ALTER TABLE account DETACH PARTITION account_as")
        wait_until(
            lambda: target_content(target, "account", ACCOUNT) == source_content(source_dsn, "account", ACCOUNT),
            60,
            what="account copied again after the detach",
        )
        assert not [r for r in target_content(target, "account", ACCOUNT) if r[1] == "as"]
        run_sql(source_dsn, "ALTER TABLE account ATTACH PARTITION account_as FOR VALUES IN ('as')")

        # a column added to the parent reaches every partition, and the target follows it
        run_sql(
            source_dsn,
            "ALTER TABLE payment ADD COLUMN ref text",
            "INSERT INTO payment VALUES (8001, '2024-08-08', 8, 'with ref', 'r-2024'), "
            "(8002, '2025-08-08', 9, 'with ref', 'r-2025'), (8003, '2026-08-08', 10, 'with ref', 'r-2026')",
            "UPDATE payment SET ref = 'set later' WHERE id = 6001",
        )
        wait_caught_up(source_dsn, slot, timeout=90)
        assert_equal(target, source_dsn, "payment", [*PAYMENT, "ref"])

    with ConfigRepository(settings.config_db_url) as repo:
        repo_spec = repo.get_pipeline("p1")
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert main(["pipeline", "resync", "p1", "--table", "public.account"]) == 0
    with EngineThread(settings) as engine:
        wait_until(lambda: ready(settings, repo_spec.id, "public.account"), 90, what="account copied again")
        wait_caught_up(source_dsn, repo_spec.slot_name, timeout=90)
        assert_equal(target, source_dsn, "account", ACCOUNT)
        assert_equal(target, source_dsn, "payment", [*PAYMENT, "ref"])


# ---- restart with an existing publication -------------------------------------------------------------
def test_a_restart_keeps_the_publication_of_a_partitioned_parent(
    settings: Settings, source_dsn: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(source_dsn, *SCHEMA)
    target = make_target("duckdb", tmp_path, request, monkeypatch)
    add_pipeline(settings, source_dsn, target, "public.payment,public.account")
    with ConfigRepository(settings.config_db_url) as repo:
        p = repo.get_pipeline("p1")
    # made by hand (or by an older engine) without publish_via_partition_root: its
    # pg_publication_tables lists the leaves, and changes would arrive under their names
    run_sql(source_dsn, f"CREATE PUBLICATION {p.publication_name} FOR TABLE payment")
    assert {t.name for t in _published_leaves(source_dsn, p.publication_name)} >= {"payment_2024"}

    events = []
    for round_ in range(3):  # start, stop, start again (twice)
        with EngineThread(settings) as engine:
            runner = engine.runner("p1")
            wait_until(lambda: ready(settings, p.id, "public.payment", "public.account"), 90, what="ready")
            run_sql(
                source_dsn,
                f"INSERT INTO payment VALUES ({7000 + round_}, '2024-03-0{round_ + 1}', 1, 'round {round_}')",
                f"INSERT INTO account VALUES ({7000 + round_}, 'eu', 'round {round_}')",
                f"UPDATE payment SET note = 'touched in round {round_}' WHERE id = {round_ + 10}",
            )
            wait_caught_up(source_dsn, p.slot_name, timeout=90)
            assert runner.state is RunnerState.STREAMING and runner.last_error is None, runner.last_error
            assert_equal(target, source_dsn, "payment", PAYMENT)
            assert_equal(target, source_dsn, "account", ACCOUNT)
            events += engine.events
    assert not [e for e in events if e.kind in ("error", "retry")], events
    via_root = source_rows(source_dsn, f"SELECT pubviaroot FROM pg_publication WHERE pubname = '{p.publication_name}'")
    assert via_root == [(True,)]
    with psycopg.connect(source_dsn) as conn:
        named = publication_tables(conn, p.publication_name)
    assert named == {TableName("public", "payment"), TableName("public", "account")}
    assert _published_leaves(source_dsn, p.publication_name) == named  # published as the parents


def _published_leaves(dsn: str, publication: str) -> set[TableName]:
    rows = source_rows(dsn, f"SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = '{publication}'")
    return {TableName(s, t) for s, t in rows}


def test_a_publication_the_role_may_not_alter_is_a_clear_error(
    pg: EmbeddedPostgres, pg_db: str, settings: Settings, tmp_path: Path
) -> None:
    """The operator made the publication without publish_via_partition_root: the engine may not
    change it, and says how, rather than stream the partitions' changes under names it drops."""
    role = f"r_{uuid.uuid4().hex[:10]}"
    dsn = pg.dsn(pg_db)
    pg.execute(f"CREATE ROLE {role} LOGIN REPLICATION")
    try:
        run_sql(dsn, *SCHEMA, f"GRANT SELECT ON payment, items TO {role}")
        target = DuckTarget(tmp_path / "o.duckdb")
        add_pipeline(settings, pg.dsn(pg_db, user=role), target, "public.payment,public.items")
        with ConfigRepository(settings.config_db_url) as repo:
            p = repo.get_pipeline("p1")
        run_sql(dsn, f"CREATE PUBLICATION {p.publication_name} FOR TABLE payment, items")  # owned by its maker
        with EngineThread(settings) as engine:
            runner = engine.runner("p1")
            err = wait_until(lambda: runner.last_error, 60, what="the pipeline's error")
            assert err.kind is ErrorKind.SOURCE_PRIVILEGE
            assert f"publication {p.publication_name} does not publish via the partition root" in err.reason
            assert "public.payment" in err.reason
            assert err.hint == (
                f"as the owner of the publication: ALTER PUBLICATION {quote_ident(p.publication_name)} "
                "SET (publish_via_partition_root = true);"
            )
        # the fix in the hint, and the pipeline runs
        run_sql(dsn, f"ALTER PUBLICATION {p.publication_name} SET (publish_via_partition_root = true)")
        with EngineThread(settings) as engine:
            wait_until(lambda: ready(settings, p.id, "public.payment", "public.items"), 90, what="ready")
            run_sql(dsn, "INSERT INTO payment VALUES (9001, '2025-09-09', 1, 'after the fix')")
            wait_caught_up(dsn, p.slot_name, timeout=90)
            assert_equal(target, dsn, "payment", PAYMENT)
    finally:
        pg.execute(f"DROP OWNED BY {role}", pg_db)
        pg.execute(f"DROP ROLE {role}")


# ---- a partition beside its parent --------------------------------------------------------------------
def test_a_partition_beside_its_parent_is_refused_and_the_others_go_on(
    settings: Settings, source_dsn: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(source_dsn, *SCHEMA)
    target = make_target("duckdb", tmp_path, request, monkeypatch)
    # a leaf two levels below payment, a leaf of account, and the parents
    add_pipeline(
        settings,
        source_dsn,
        target,
        "public.payment,public.payment_2025_h0,public.account_eu,public.account,public.items",
    )
    alone = DuckTarget(tmp_path / "alone.duckdb")
    add_pipeline(settings, source_dsn, alone, "public.account_us", name="p2")  # a leaf without its parent
    with ConfigRepository(settings.config_db_url) as repo:
        p1, p2 = repo.get_pipeline("p1"), repo.get_pipeline("p2")
    with EngineThread(settings) as engine:
        wait_until(lambda: ready(settings, p1.id, "public.payment", "public.account", "public.items"), 90, what="p1")
        wait_until(lambda: ready(settings, p2.id, "public.account_us"), 90, what="p2")
        for leaf, parent in (("payment_2025_h0", "payment"), ("account_eu", "account")):
            assert table_phase(settings, p1.id, f"public.{leaf}") is TablePhase.ERRORED
            err = next(e for e in engine.events if e.kind == "error" and f"public.{leaf}" in e.message)
            assert f"public.{leaf} is a partition of public.{parent}" in err.message
        run_sql(
            source_dsn,
            "INSERT INTO account VALUES (3001, 'eu', 'eu row'), (3002, 'us', 'us row')",
            "UPDATE account SET name = 'us renamed' WHERE id = 1",
            "INSERT INTO payment VALUES (3001, '2025-01-02', 5, 'h')",
            "INSERT INTO items VALUES (51, 'item 51')",
        )
        wait_caught_up(source_dsn, p1.slot_name, timeout=90)
        wait_caught_up(source_dsn, p2.slot_name, timeout=90)
        assert_equal(target, source_dsn, "payment", PAYMENT)
        assert_equal(target, source_dsn, "account", ACCOUNT)  # once: not again through account_eu
        assert target_content(target, "items", ITEMS) == source_content(source_dsn, "items", ITEMS)
        assert "account_eu" not in _duck_tables(target) and "payment_2025_h0" not in _duck_tables(target)
        # the leaf alone replicates as a table of its own, under its own name
        assert_equal(alone, source_dsn, "account_us", ACCOUNT)
    with psycopg.connect(source_dsn) as conn:
        assert publication_tables(conn, p1.publication_name) == {
            TableName("public", "payment"),
            TableName("public", "account"),
            TableName("public", "items"),
        }
        assert publication_tables(conn, p2.publication_name) == {TableName("public", "account_us")}


def _duck_tables(target: Target) -> set[str]:
    assert isinstance(target, DuckTarget)
    rows = duck_rows(target.path, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")
    return {r[0] for r in rows}


# ---- the catalog: the copy's estimate and the partition tree ------------------------------------------
def test_the_catalog_sums_the_leaves_and_knows_the_tree(source_dsn: str) -> None:
    run_sql(source_dsn, *SCHEMA)
    with psycopg.connect(source_dsn) as conn:
        payment = describe_table(conn, TableName("public", "payment"))
        assert [c.name for c in payment.key_columns] == ["id", "paid_at"]
        assert estimate_rows(conn, payment) == 3000  # reltuples of the parent itself is -1
        assert estimate_rows(conn, describe_table(conn, TableName("public", "account"))) == 400
        assert estimate_rows(conn, describe_table(conn, TableName("public", "items"))) == 50
        tree = partition_info(conn, TableName("public", "payment"))
        assert tree.partitioned and tree.leaves == 3 and tree.ancestors == ()
        leaf = partition_info(conn, TableName("public", "payment_2025_h1"))
        assert not leaf.partitioned and leaf.leaves == 0
        assert leaf.ancestors == (TableName("public", "payment_2025"), TableName("public", "payment"))


# ---- etl-tui check ------------------------------------------------------------------------------------
def _findings(report: CheckReport, check: Check, subject: str) -> list[Finding]:
    return [r.finding for r in report.rows() if r.finding.check is check and r.finding.subject == subject]


def test_check_reports_the_partitioning(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    run_sql(source_dsn, *SCHEMA)
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("duck", DestinationType.DUCKDB, {"path": str(tmp_path / "o.duckdb")})
        repo.add_pipeline("p1", "src", "duck", parse_table_list("public.payment,public.payment_2025_h0,public.items"))
        repo.add_pipeline("p2", "src", "duck", parse_table_list("public.account_us"))
        report = run_preflight(repo.load_specs())

    [parent] = _findings(report, Check.PARTITIONS, "public.payment")
    assert parent.severity is Severity.INFO
    assert "replicated under its parent, 3 partition(s)" in parent.found
    assert "resync" in parent.hint and "TRUNCATE" in parent.hint

    [leaf] = _findings(report, Check.PARTITIONS, "public.payment_2025_h0")
    assert leaf.severity is Severity.BLOCKER
    assert "public.payment_2025_h0 is a partition of public.payment" in leaf.found
    assert "remove public.payment_2025_h0 from the pipeline's tables" in leaf.hint
    # not reported as a table that would replicate, nor counted in the publication or the copy
    assert not [f for f in _findings(report, Check.TABLE, "public.payment_2025_h0") if f.severity is Severity.OK]
    [pub] = [r.finding for r in report.rows() if r.pipeline == "p1" and r.finding.check is Check.PUBLICATION]
    assert "for its 2 table(s)" in pub.found
    [estimate] = [r.finding for r in report.rows() if r.pipeline == "p1" and r.finding.check is Check.COPY_ESTIMATE]
    assert "2 table(s), ~3,050 rows" in estimate.found

    [alone] = _findings(report, Check.PARTITIONS, "public.account_us")
    assert alone.severity is Severity.INFO and "replicated alone" in alone.found
    assert not _findings(report, Check.PARTITIONS, "public.items")
    p2 = next(p for s in report.sources for p in s.pipelines if p.pipeline == "p2")
    p1 = next(p for s in report.sources for p in s.pipelines if p.pipeline == "p1")
    assert not report.sources[0].blocked(p2) and report.sources[0].blocked(p1)
