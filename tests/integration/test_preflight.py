"""`etl-tui check`: every planted problem is found with the right severity and a hint; a clean
source passes. Sources are real PostgreSQL clusters; slot and sender arithmetic is also checked
against a fake catalog."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest

from engine.config.models import Destination, DestinationType, PipelineSpec, Source
from engine.config.repository import ConfigRepository
from engine.embedded.loopback import free_port
from engine.embedded.postgres import PASSWORD_ROLE, EmbeddedPostgres
from engine.identifiers import TableName, parse_table_list
from engine.preflight import Check, CheckReport, Finding, Severity, run_preflight
from engine.preflight.destination_rules import destination_findings
from engine.preflight.facts import PublicationFacts, ServerFacts, SlotFacts, SourceCatalog, TableFacts
from engine.runtime.operations import Operations
from engine.settings import Settings
from etl_tui.cli import main
from tests.integration.harness import run_sql
from tests.integration.scenarios import configure


# ---- helpers -----------------------------------------------------------------------------------------
def check(settings: Settings, pipeline: str | None = None) -> CheckReport:
    with ConfigRepository(settings.config_db_url) as repo:
        specs = [s for s in repo.load_specs() if pipeline in (None, s.name)]
    return run_preflight(specs)


def found(report: CheckReport, check: Check, subject: str | None = None) -> list[Finding]:
    return [
        r.finding
        for r in report.rows()
        if r.finding.check is check and (subject is None or r.finding.subject == subject)
    ]


def one(report: CheckReport, check: Check, subject: str | None = None) -> Finding:
    matches = found(report, check, subject)
    assert len(matches) == 1, (check, subject, matches)
    return matches[0]


def publication_of(settings: Settings, pipeline: str = "p1") -> str:
    with ConfigRepository(settings.config_db_url) as repo:
        return repo.get_pipeline(pipeline).publication_name


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    return settings


@pytest.fixture
def role(pg: EmbeddedPostgres, pg_db: str) -> Iterator[str]:
    """A LOGIN role of its own (no REPLICATION, no privileges), removed afterwards."""
    name = f"r_{uuid.uuid4().hex[:10]}"
    pg.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    pg.execute(f"DROP OWNED BY {name}", pg_db)
    pg.execute(f"DROP ROLE {name}")


# ---- a clean source ----------------------------------------------------------------------------------
def test_a_clean_source_passes_with_exit_code_0(
    cli_env: Settings, source_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)",
        "INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 20000) g",
        "ANALYZE items",
    )
    configure(cli_env, source_dsn, tmp_path / "o.duckdb", "public.items")

    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "no blockers" in out and "pipeline p1 → duck" in out and "· ready" in out

    assert main(["check", "p1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["blocker"] == 0 and data["summary"]["warning"] == 0
    pipeline = data["sources"][0]["pipelines"][0]
    assert pipeline["ready"] is True
    checks = {f["check"]: f for f in data["sources"][0]["findings"] + pipeline["findings"]}
    for name in ("connection", "wal_level", "replication_role", "replication_slots", "wal_senders", "table"):
        assert checks[name]["severity"] == "ok", checks[name]
    assert checks["slot"]["severity"] == "info" and "does not exist yet" in checks["slot"]["found"]
    assert checks["publication"]["severity"] == "info"
    estimate = checks["copy_estimate"]
    assert estimate["severity"] == "info" and "~20,000 rows" in estimate["found"]
    assert "estimate" in estimate["hint"] and "360k rows/s" in estimate["found"]
    assert checks["destination"]["severity"] == "ok"


def test_an_unknown_pipeline_is_a_usage_error(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "nope"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- tables ------------------------------------------------------------------------------------------
def test_table_problems_are_blockers_with_hints(
    cli_env: Settings, source_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE good (id int PRIMARY KEY, v int)",
        "CREATE TABLE nokey (a int, b int)",
        "CREATE TABLE nothing (id int PRIMARY KEY)",
        "ALTER TABLE nothing REPLICA IDENTITY NOTHING",
        "CREATE TABLE fullnokey (a int)",
        "ALTER TABLE fullnokey REPLICA IDENTITY FULL",
        "CREATE TABLE byindex (a int NOT NULL, b int)",
        "CREATE UNIQUE INDEX byindex_a ON byindex (a)",
        "ALTER TABLE byindex REPLICA IDENTITY USING INDEX byindex_a",
        "CREATE TABLE geo (id int PRIMARY KEY, loc point, area circle)",
        "CREATE VIEW aview AS SELECT 1 AS x",
    )
    tables = (
        "public.good,public.nokey,public.nothing,public.fullnokey,public.byindex,public.geo,public.aview,public.nope"
    )
    configure(cli_env, source_dsn, tmp_path / "o.duckdb", tables)
    report = check(cli_env)

    nokey = one(report, Check.REPLICA_IDENTITY, "public.nokey")
    assert nokey.severity is Severity.BLOCKER and "no primary key" in nokey.found
    assert "ADD PRIMARY KEY" in nokey.hint and "REPLICA IDENTITY USING INDEX" in nokey.hint
    nothing = one(report, Check.REPLICA_IDENTITY, "public.nothing")
    assert nothing.severity is Severity.BLOCKER and "REPLICA IDENTITY NOTHING" in nothing.found
    assert nothing.hint == "ALTER TABLE public.nothing REPLICA IDENTITY DEFAULT;"
    # the engine matches rows by a key: FULL without one is refused just like no key
    full = one(report, Check.REPLICA_IDENTITY, "public.fullnokey")
    assert full.severity is Severity.BLOCKER and "FULL" in full.found
    missing = one(report, Check.TABLE, "public.nope")
    assert missing.severity is Severity.BLOCKER and "does not exist" in missing.found and missing.hint
    view = one(report, Check.TABLE, "public.aview")
    assert view.severity is Severity.BLOCKER and "a view" in view.found
    types = one(report, Check.COLUMN_TYPES, "public.geo")
    assert types.severity is Severity.BLOCKER and "loc (point)" in types.found and "area (circle)" in types.found
    assert "ALTER COLUMN" in types.hint

    for ok in ("public.good", "public.byindex"):
        assert one(report, Check.TABLE, ok).severity is Severity.OK
    assert "replica identity index" in one(report, Check.TABLE, "public.byindex").found
    # the publication would hold only the tables that can replicate
    estimate = one(report, Check.COPY_ESTIMATE)
    assert estimate.found.startswith("2 table(s)")

    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "blocked" in out and "hint: ALTER TABLE public.nothing REPLICA IDENTITY DEFAULT;" in out


def test_unchanged_toast_columns_are_explained(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE docs (id int PRIMARY KEY, title varchar(80), body text, meta jsonb, n int)",
        "CREATE TABLE plain (id int PRIMARY KEY, body text)",
        "ALTER TABLE plain ALTER COLUMN body SET STORAGE MAIN",
        "CREATE TABLE fulldocs (id int PRIMARY KEY, body text)",
        "ALTER TABLE fulldocs REPLICA IDENTITY FULL",
    )
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.docs,public.plain,public.fulldocs")
    report = check(settings)
    toast = one(report, Check.UNCHANGED_TOAST, "public.docs")
    assert toast.severity is Severity.INFO
    assert "body (text)" in toast.found and "meta (jsonb)" in toast.found and "title" in toast.found
    assert "n (integer)" not in toast.found and "id (" not in toast.found  # fixed width; the key
    assert "'unchanged'" in toast.found and "keeps its value" in toast.found
    assert "reads the value from the source" in toast.found and "REPLICA IDENTITY FULL" in toast.hint
    assert found(report, Check.UNCHANGED_TOAST, "public.plain") == []  # never stored out of line
    assert found(report, Check.UNCHANGED_TOAST, "public.fulldocs") == []  # FULL sends the whole old row


# ---- privileges --------------------------------------------------------------------------------------
def test_a_role_without_replication_or_select(
    pg: EmbeddedPostgres, pg_db: str, role: str, settings: Settings, tmp_path: Path
) -> None:
    dsn = pg.dsn(pg_db)
    run_sql(
        dsn,
        "CREATE TABLE readable (id int PRIMARY KEY)",
        "CREATE TABLE hidden (id int PRIMARY KEY)",
        "CREATE SCHEMA closed",
        "CREATE TABLE closed.t (id int PRIMARY KEY)",
        f"GRANT SELECT ON readable, closed.t TO {role}",
    )
    configure(settings, pg.dsn(pg_db, user=role), tmp_path / "o.duckdb", "public.readable,public.hidden,closed.t")
    report = check(settings)

    repl = one(report, Check.REPLICATION_ROLE)
    assert repl.severity is Severity.BLOCKER and "lacks the REPLICATION attribute" in repl.found
    assert repl.hint.startswith(f"ALTER ROLE {role} WITH REPLICATION;")
    select = one(report, Check.SELECT_PRIVILEGE, "public.hidden")
    assert select.severity is Severity.BLOCKER and select.hint == f"GRANT SELECT ON public.hidden TO {role};"
    usage = one(report, Check.SELECT_PRIVILEGE, "closed.t")
    assert usage.severity is Severity.BLOCKER and usage.hint == f"GRANT USAGE ON SCHEMA closed TO {role};"
    assert one(report, Check.TABLE, "public.readable").severity is Severity.OK
    # not its tables, no CREATE on the database: it cannot make the publication either
    pub = one(report, Check.PUBLICATION)
    assert pub.severity is Severity.BLOCKER and "does not own public.readable" in pub.found
    assert "CREATE PUBLICATION" in pub.hint


def test_row_security_the_role_does_not_bypass_is_a_blocker(
    pg: EmbeddedPostgres, pg_db: str, role: str, settings: Settings, tmp_path: Path
) -> None:
    dsn = pg.dsn(pg_db)
    run_sql(
        dsn,
        f"ALTER ROLE {role} REPLICATION",
        "CREATE TABLE guarded (id int PRIMARY KEY, tenant int)",
        "ALTER TABLE guarded ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY mine ON guarded USING (tenant = 1)",
        f"GRANT SELECT ON guarded TO {role}",
        # owned by the role: exempt, unless FORCE ROW LEVEL SECURITY
        "CREATE TABLE owned (id int PRIMARY KEY)",
        "ALTER TABLE owned ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE owned OWNER TO {role}",
        "CREATE TABLE forced (id int PRIMARY KEY)",
        "ALTER TABLE forced ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE forced FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE forced OWNER TO {role}",
    )
    configure(settings, pg.dsn(pg_db, user=role), tmp_path / "o.duckdb", "public.guarded,public.owned,public.forced")
    report = check(settings)
    rls = one(report, Check.ROW_SECURITY, "public.guarded")
    assert rls.severity is Severity.BLOCKER and "would be refused" in rls.found
    assert f"ALTER ROLE {role} BYPASSRLS;" in rls.hint
    assert found(report, Check.ROW_SECURITY, "public.owned") == []
    assert "bypassed by the owner" in one(report, Check.TABLE, "public.owned").found
    forced = one(report, Check.ROW_SECURITY, "public.forced")
    assert forced.severity is Severity.BLOCKER and "FORCE ROW LEVEL SECURITY" in forced.found

    # BYPASSRLS (or a superuser) reads every row
    pg.execute(f"ALTER ROLE {role} BYPASSRLS")
    assert found(check(settings), Check.ROW_SECURITY) == []


# ---- publication -------------------------------------------------------------------------------------
def test_a_publication_with_an_extra_and_a_missing_table(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE a (id int PRIMARY KEY)",
        "CREATE TABLE b (id int PRIMARY KEY)",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.a,public.b")
    pub = publication_of(settings)
    run_sql(source_dsn, f"CREATE PUBLICATION {pub} FOR TABLE a, other")
    report = check(settings)
    findings = {f.found: f for f in found(report, Check.PUBLICATION)}
    lacks = findings[f"{pub} lacks public.b"]
    assert lacks.severity is Severity.WARNING
    assert lacks.hint == f"the engine fixes it when the pipeline starts: ALTER PUBLICATION {pub} ADD TABLE public.b;"
    extra = findings[f"{pub} also publishes public.other, which the pipeline does not replicate"]
    assert extra.severity is Severity.WARNING and f"ALTER PUBLICATION {pub} DROP TABLE public.other;" in extra.hint

    run_sql(source_dsn, f"ALTER PUBLICATION {pub} SET TABLE a, b", f"ALTER PUBLICATION {pub} SET (publish = 'insert')")
    blocker = one(check(settings), Check.PUBLICATION)
    assert blocker.severity is Severity.BLOCKER and "does not publish update, delete" in blocker.found
    assert "SET (publish = 'insert, update, delete, truncate')" in blocker.hint
    run_sql(source_dsn, f"ALTER PUBLICATION {pub} SET (publish = 'insert, update, delete')")
    truncate = one(check(settings), Check.PUBLICATION)
    assert truncate.severity is Severity.WARNING and "truncate" in truncate.found
    run_sql(source_dsn, f"ALTER PUBLICATION {pub} SET (publish = 'insert, update, delete, truncate')")
    assert one(check(settings), Check.PUBLICATION).severity is Severity.OK


# ---- server settings and capacity --------------------------------------------------------------------
@pytest.fixture
def replica_level_pg() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(settings={"wal_level": "replica"}) as server:
        yield server


def test_wal_level_replica_is_a_blocker(replica_level_pg: EmbeddedPostgres, settings: Settings, tmp_path: Path) -> None:
    replica_level_pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    configure(settings, replica_level_pg.dsn(), tmp_path / "o.duckdb", "public.items")
    wal = one(check(settings), Check.WAL_LEVEL)
    assert wal.severity is Severity.BLOCKER and "wal_level = replica" in wal.found
    assert "ALTER SYSTEM SET wal_level = logical" in wal.hint and "restart" in wal.hint


@pytest.fixture
def small_pg() -> Iterator[EmbeddedPostgres]:
    """Room for two slots and two WAL senders only."""
    with EmbeddedPostgres(settings={"max_replication_slots": "2", "max_wal_senders": "2"}) as server:
        yield server


def test_exhausted_replication_slots_and_wal_senders(
    small_pg: EmbeddedPostgres, settings: Settings, tmp_path: Path
) -> None:
    small_pg.execute("CREATE TABLE items (id int PRIMARY KEY)")
    configure(settings, small_pg.dsn(), tmp_path / "o.duckdb", "public.items")
    with ConfigRepository(settings.config_db_url) as repo:
        own_slot = repo.get_pipeline("p1").slot_name
    small_pg.execute("SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')")

    # one slot free, two needed (the pipeline's own and a temporary one for its copy)
    slots = one(check(settings), Check.REPLICATION_SLOTS)
    assert slots.severity is Severity.BLOCKER and "1 in use, 1 free; 2 needed" in slots.found
    assert "pg_drop_replication_slot" in slots.hint and "max_replication_slots" in slots.hint

    # with its own slot in place nothing more is needed now, but a later resync would find none
    small_pg.execute(f"SELECT pg_create_logical_replication_slot('{own_slot}', 'pgoutput')")
    slots = one(check(settings), Check.REPLICATION_SLOTS)
    assert (
        slots.severity is Severity.WARNING and "0 free" in slots.found and "every pipeline's slot exists" in slots.found
    )
    assert one(check(settings), Check.SLOT).severity is Severity.OK

    # every WAL sender busy: the pipeline (not streaming) cannot get one
    held = [
        psycopg2.connect(small_pg.dsn(), connection_factory=psycopg2.extras.LogicalReplicationConnection)
        for _ in range(2)
    ]
    try:
        senders = one(check(settings), Check.WAL_SENDERS)
        assert senders.severity is Severity.BLOCKER and "2 in use, 0 free; 1 needed (p1)" in senders.found
        assert "max_wal_senders" in senders.hint and "pg_stat_replication" in senders.hint
    finally:
        for conn in held:
            conn.close()


# ---- connection --------------------------------------------------------------------------------------
def test_wrong_password_and_unreachable_host_are_blockers_not_crashes(
    pg: EmbeddedPostgres, pg_db: str, cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg.execute(
        f"DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN REPLICATION; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    pg.execute(f"ALTER ROLE {PASSWORD_ROLE} PASSWORD 'right-horse-42'")
    wrong = "wrong-battery-17"
    with ConfigRepository(cli_env.config_db_url) as repo:
        repo.add_source("locked", f"postgresql://{PASSWORD_ROLE}:{wrong}@127.0.0.1:{pg.port}/{pg_db}")
        repo.add_source("gone", f"host=127.0.0.1 port={free_port()} dbname=x user=u password={wrong} connect_timeout=3")
        repo.add_destination("duck", DestinationType.DUCKDB, {"path": str(tmp_path / "o.duckdb")})
        repo.add_pipeline("p_locked", "locked", "duck", parse_table_list("public.items"))
        repo.add_pipeline("p_gone", "gone", "duck", parse_table_list("public.items"))

    report = check(cli_env)
    auth = one(report, Check.CONNECTION, "source locked")
    assert auth.severity is Severity.BLOCKER and "authentication failed" in auth.found and "password" in auth.hint
    gone = one(report, Check.CONNECTION, "source gone")
    assert gone.severity is Severity.BLOCKER and "cannot connect" in gone.found and "reachable" in gone.hint
    assert "retrying" not in gone.hint  # a check does not retry
    # the destination is still looked at
    assert len(found(report, Check.DESTINATION)) == 2

    assert main(["check"]) == 1
    assert main(["check", "--json"]) == 1
    out = capsys.readouterr()
    assert wrong not in out.out + out.err
    assert f"{PASSWORD_ROLE}:****@" in out.out and "password=****" in out.out


# ---- destinations (no connection) --------------------------------------------------------------------
def test_destination_configuration_is_checked_without_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dest(type_: DestinationType, **config: object) -> list[Finding]:
        return destination_findings(Destination(1, "d", type_, config))

    [missing] = dest(DestinationType.DUCKDB, path=str(tmp_path / "no" / "such" / "o.duckdb"))
    assert missing.severity is Severity.BLOCKER and missing.hint.startswith("mkdir -p")
    [fine] = dest(DestinationType.DUCKDB, path=str(tmp_path / "o.duckdb"))
    assert fine.severity is Severity.OK

    sf = {"account": "myorg-acct", "user": "LOADER", "database": "DB", "schema": "PUBLIC"}
    [no_key] = dest(DestinationType.SNOWFLAKE, **sf, private_key_file=str(tmp_path / "nope.p8"))
    assert no_key.severity is Severity.BLOCKER and "does not exist" in no_key.found

    key = tmp_path / "key.p8"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF…\n-----END ENCRYPTED PRIVATE KEY-----\n")
    [encrypted] = dest(DestinationType.SNOWFLAKE, **sf, private_key_file=str(key))
    assert encrypted.severity is Severity.BLOCKER and "encrypted" in encrypted.found
    assert "--private-key-passphrase-env" in encrypted.hint

    monkeypatch.delenv("ETL_TEST_PASSPHRASE", raising=False)
    unset = dest(
        DestinationType.SNOWFLAKE, **sf, private_key_file=str(key), private_key_passphrase_env="ETL_TEST_PASSPHRASE"
    )
    assert [f.severity for f in unset] == [Severity.BLOCKER]
    assert "$ETL_TEST_PASSPHRASE is not set" in unset[0].found and "MIIF" not in unset[0].found

    monkeypatch.setenv("ETL_TEST_PASSPHRASE", "s3cret-passphrase")
    ready = dest(
        DestinationType.SNOWFLAKE, **sf, private_key_file=str(key), private_key_passphrase_env="ETL_TEST_PASSPHRASE"
    )
    assert [f.severity for f in ready] == [Severity.OK] and "configuration complete" in ready[0].found
    assert "s3cret" not in ready[0].found

    [streaming] = [
        f
        for f in dest(DestinationType.SNOWFLAKE, **sf, password_env="ETL_TEST_PASSPHRASE", loader="streaming")
        if "key-pair" in f.found
    ]
    assert streaming.severity is Severity.BLOCKER


def test_the_console_runs_the_same_checks(settings: Settings, source_dsn: str, tmp_path: Path) -> None:
    run_sql(source_dsn, "CREATE TABLE items (id int PRIMARY KEY)", "CREATE TABLE nokey (a int)")
    configure(settings, source_dsn, tmp_path / "o.duckdb", "public.items,public.nokey")
    ops = Operations(settings, readonly=True)  # checks only read: a read-only console may run them
    try:
        report = ops.run_checks()
    finally:
        ops.stop()
    assert one(report, Check.REPLICA_IDENTITY, "public.nokey").severity is Severity.BLOCKER
    assert one(report, Check.TABLE, "public.items").severity is Severity.OK


# ---- slot and sender arithmetic, on a fake catalog ---------------------------------------------------
class FakeCatalog:
    def __init__(self, server: ServerFacts, slots: dict[str, SlotFacts]) -> None:
        self._server = server
        self._slots = slots

    def server(self) -> ServerFacts:
        return self._server

    def slot(self, name: str) -> SlotFacts:
        return self._slots.get(name, SlotFacts(name, exists=False))

    def table(self, table: TableName) -> TableFacts:
        return TableFacts(table, relkind="r", key_columns=("id",), has_primary_key=True, row_estimate=0)

    def publication(self, name: str) -> PublicationFacts:
        return PublicationFacts(name, exists=False)


def _server(**changes: object) -> ServerFacts:
    base: dict[str, object] = {
        "version": "16.4",
        "database": "shop",
        "role": "etl",
        "superuser": False,
        "replication": True,
        "bypass_rls": False,
        "create_on_database": True,
        "wal_level": "logical",
        "max_replication_slots": 10,
        "slots_in_use": 0,
        "max_wal_senders": 10,
        "wal_senders_in_use": 0,
    }
    return ServerFacts(**{**base, **changes})  # type: ignore[arg-type]


def _specs(tmp_path: Path, *names: str) -> list[PipelineSpec]:
    from engine.config.models import Pipeline, PipelineStatus

    source = Source(1, "shop", "host=db dbname=shop user=etl")
    dest = Destination(1, "duck", DestinationType.DUCKDB, {"path": str(tmp_path / "o.duckdb")})
    return [
        PipelineSpec(
            Pipeline(i, n, 1, 1, PipelineStatus.START, f"pub_{n}", f"slot_{n}", (TableName("public", "t"),)),
            source,
            dest,
        )
        for i, n in enumerate(names, 1)
    ]


def _capacity(tmp_path: Path, server: ServerFacts, slots: dict[str, SlotFacts], *names: str) -> CheckReport:
    def opener(_: Source) -> AbstractContextManager[SourceCatalog]:
        return nullcontext(FakeCatalog(server, slots))

    return run_preflight(_specs(tmp_path, *names), open_catalog=opener)


@pytest.mark.parametrize(
    ("limit", "used", "existing", "expected"),
    [
        (10, 6, {}, Severity.OK),  # 4 free, 2 new pipelines need 4 (own + temporary copy slot each)
        (10, 7, {}, Severity.BLOCKER),  # 3 free, 4 needed
        (10, 8, {"slot_a": SlotFacts("slot_a", exists=True)}, Severity.OK),  # 2 free, only b is new
        (10, 9, {"slot_a": SlotFacts("slot_a", exists=True)}, Severity.BLOCKER),
        (2, 2, {n: SlotFacts(n, exists=True) for n in ("slot_a", "slot_b")}, Severity.WARNING),  # none left to resync
        (0, 0, {}, Severity.BLOCKER),
    ],
)
def test_slot_arithmetic_counts_the_slots_that_already_exist(
    tmp_path: Path, limit: int, used: int, existing: dict[str, SlotFacts], expected: Severity
) -> None:
    report = _capacity(tmp_path, _server(max_replication_slots=limit, slots_in_use=used), existing, "a", "b")
    assert one(report, Check.REPLICATION_SLOTS).severity is expected


@pytest.mark.parametrize(
    ("limit", "used", "active", "expected"),
    [
        (10, 8, (), Severity.OK),  # 2 free, 2 needed
        (10, 9, (), Severity.BLOCKER),
        (10, 10, ("slot_a", "slot_b"), Severity.OK),  # both stream already: they hold their senders
        (10, 10, ("slot_a",), Severity.BLOCKER),
        (0, 0, ("slot_a", "slot_b"), Severity.BLOCKER),  # replication disabled
    ],
)
def test_wal_sender_arithmetic_counts_pipelines_already_streaming(
    tmp_path: Path, limit: int, used: int, active: tuple[str, ...], expected: Severity
) -> None:
    slots = {n: SlotFacts(n, exists=True, active=True, plugin="pgoutput", database="shop") for n in active}
    report = _capacity(tmp_path, _server(max_wal_senders=limit, wal_senders_in_use=used), slots, "a", "b")
    assert one(report, Check.WAL_SENDERS).severity is expected
