"""Unbounded numeric, end to end on DuckDB and Snowflake (fakesnow): the copy measures each
column and chooses DECIMAL(38,s) or exact text, the stream (also after a restart) converts with
the same choice, ``--column-type`` overrides it, and a later value that does not fit stops only
its table with the command that fixes it, which does."""

from __future__ import annotations

import shlex
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis

from engine.config.models import DestinationType
from engine.config.repository import ConfigRepository
from engine.identifiers import parse_table_list
from engine.preflight import Check, Severity, run_preflight
from engine.settings import Settings
from engine.state.store import PipelineState
from engine.state.table_state import TablePhase, TableState
from etl_tui.cli import main
from tests.integration.harness import EngineThread, run_sql, source_rows, wait_caught_up, wait_until
from tests.integration.targets import Target, make_target

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(params=["duckdb", "snowflake"])
def target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    return make_target(request.param, tmp_path, request, monkeypatch)


def _state(settings: Settings, pipeline_id: int, table: str) -> TableState | None:
    store = PipelineState(redis.Redis.from_url(settings.redis_url), pipeline_id)
    return store.load().get(parse_table_list(table)[0])


def _wait_phase(settings: Settings, pipeline_id: int, table: str, phase: TablePhase, timeout: float = 90) -> TableState:
    def reached() -> TableState | None:
        st = _state(settings, pipeline_id, table)
        return st if st is not None and st.phase is phase else None

    return wait_until(reached, timeout, what=f"{table} {phase}")  # type: ignore[no-any-return]


def _digits(n: int, start: int = 1) -> str:
    return "".join(str((start + i) % 9 + 1) for i in range(n))  # no zero: every digit counts


# 0 to 30 fractional digits, and 30 integer digits (with and without a fraction)
FRACTIONS = ["7"] + [f"{'-' if k % 3 == 0 else ''}0.{_digits(k)}" for k in range(1, 31)] + ["1.50"]
BIG = ["1" + _digits(29), "-" + "9" * 30, "0", "42"]


def _numbers(values: list[str]) -> list[Decimal]:
    return [Decimal(v) for v in values]


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *argv: str) -> None:
    monkeypatch.setenv("CONFIG_DB_URL", settings.config_db_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    assert main(list(argv)) == 0, argv


def _insert(dsn: str, table: str, start: int, *columns: list[str]) -> int:
    """Rows (id, values…) from ``start``, one per position of the value lists; returns the next id."""
    rows = list(zip(*columns, strict=True))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, values in enumerate(rows):
            marks = ", ".join(["%s"] * (len(values) + 1))
            conn.execute(f"INSERT INTO {table} VALUES ({marks})", (start + i, *values))  # type: ignore[arg-type]
    return start + len(rows)


def _text_equal(target: Target, dsn: str, table: str, column: str) -> bool:
    src = source_rows(dsn, f"SELECT id, {column}::text FROM {table} ORDER BY 1")
    return target.rows(table, ["id", column]) == src


def _decimal_equal(target: Target, dsn: str, table: str, columns: list[str]) -> bool:
    src = source_rows(dsn, f"SELECT id, {', '.join(columns)} FROM {table} ORDER BY 1")
    got = target.rows(table, ["id", *columns])
    return [tuple(Decimal(str(v)) if v is not None else None for v in r) for r in got] == [
        tuple(Decimal(str(v)) if v is not None else None for v in r) for r in src
    ]


def test_defaults_keep_every_digit_through_copy_stream_and_restart(
    settings: Settings, source_dsn: str, target: Target
) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE together (id int PRIMARY KEY, v numeric)",
        "CREATE TABLE apart (id int PRIMARY KEY, frac numeric, big numeric)",
        "CREATE TABLE plain (id int PRIMARY KEY, v numeric)",
        "INSERT INTO plain VALUES (1, 12.5), (2, -0.25)",
    )
    mixed = FRACTIONS + BIG
    nxt_together = _insert(source_dsn, "together", 1, mixed)
    nxt_apart = _insert(source_dsn, "apart", 1, FRACTIONS, (BIG * 9)[: len(FRACTIONS)])
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("dst", target.type, target.config())
        pid = repo.add_pipeline("p1", "src", "dst", parse_table_list("public.together,public.apart,public.plain")).id

    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        for table in ("public.together", "public.apart", "public.plain"):
            _wait_phase(settings, pid, table, TablePhase.READY)
        # 30 fractional and 30 integer digits in one column: no DECIMAL holds both, so exact text;
        # apart, each gets a DECIMAL(38,s) with headroom; small values keep the DECIMAL(38,10) of old
        assert _state(settings, pid, "public.together").column_types == {"v": "text"}  # type: ignore[union-attr]
        assert _state(settings, pid, "public.apart").column_types == {  # type: ignore[union-attr]
            "frac": "decimal(38,32)",
            "big": "decimal(38,4)",
        }
        assert _state(settings, pid, "public.plain").column_types == {"v": "decimal(38,10)"}  # type: ignore[union-attr]
        assert _text_equal(target, source_dsn, "together", "v")
        assert _decimal_equal(target, source_dsn, "apart", ["frac", "big"])

        # the stream converts with the same choice
        nxt_together = _insert(source_dsn, "together", nxt_together, ["NaN", "1" + _digits(59), "-0." + _digits(45)])
        nxt_apart = _insert(source_dsn, "apart", nxt_apart, ["0." + _digits(32)], ["-" + _digits(34)])
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        wait_until(lambda: _text_equal(target, source_dsn, "together", "v"), 60, what="together equal")
        wait_until(lambda: _decimal_equal(target, source_dsn, "apart", ["frac", "big"]), 60, what="apart equal")

    # changes made while the engine is down stream with the recorded choice after the restart:
    # 31 fractional digits would not fit the DECIMAL(38,10) a fresh guess would give
    _insert(source_dsn, "together", nxt_together, ["Infinity", "0." + _digits(30)])
    _insert(source_dsn, "apart", nxt_apart, ["-12345.0" + _digits(30)], ["9" * 33])
    run_sql(source_dsn, "UPDATE apart SET frac = 0.5 WHERE id = 1", "DELETE FROM together WHERE id = 2")
    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        wait_until(lambda: runner.state == "streaming", 60, what="streaming again")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        wait_until(lambda: _text_equal(target, source_dsn, "together", "v"), 60, what="together equal")
        wait_until(lambda: _decimal_equal(target, source_dsn, "apart", ["frac", "big"]), 60, what="apart equal")
        for table in ("public.together", "public.apart", "public.plain"):
            assert _state(settings, pid, table).phase is TablePhase.READY  # type: ignore[union-attr]


def test_overrides_win_and_a_misfit_stops_only_its_table_with_the_command_that_fixes_it(
    settings: Settings, source_dsn: str, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sql(
        source_dsn,
        "CREATE TABLE prices (id int PRIMARY KEY, a numeric, b numeric)",
        "INSERT INTO prices VALUES (1, 1.5, 2.25)",
        "CREATE TABLE amounts (id int PRIMARY KEY, v numeric)",
        "INSERT INTO amounts VALUES (1, 1.5), (2, -3)",
    )
    _cli(settings, monkeypatch, "source", "add", "src", "--dsn", source_dsn)
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_destination("dst", target.type, target.config())
    _cli(
        settings,
        monkeypatch,
        *("pipeline", "add", "p1", "--source", "src", "--destination", "dst"),
        *("--tables", "public.prices,public.amounts"),
        *("--column-type", "public.prices.a=text", "--column-type", "public.prices.b=decimal(38,12)"),
    )
    with ConfigRepository(settings.config_db_url) as repo:
        pid = repo.get_pipeline("p1").id

    with EngineThread(settings) as engine:
        runner = engine.runner("p1")
        _wait_phase(settings, pid, "public.prices", TablePhase.READY)
        _wait_phase(settings, pid, "public.amounts", TablePhase.READY)
        assert _state(settings, pid, "public.prices").column_types == {  # type: ignore[union-attr]
            "a": "text",
            "b": "decimal(38,12)",
        }
        assert _state(settings, pid, "public.amounts").column_types == {"v": "decimal(38,10)"}  # type: ignore[union-attr]
        _insert(source_dsn, "prices", 2, ["0.1234567890123456789012345"], ["-1.123456789012"])

        # 12 fractional digits do not fit amounts' DECIMAL(38,10): only amounts stops
        with psycopg.connect(source_dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("INSERT INTO amounts VALUES (3, 0.123456789012)")
            conn.execute("INSERT INTO prices VALUES (3, 'NaN', 7)")
        errored = _wait_phase(settings, pid, "public.amounts", TablePhase.ERRORED, 60)
        assert "0.123456789012" in errored.reason and "rounded" in errored.reason, errored.reason
        fix = (
            "etl-tui pipeline edit p1 --column-type 'public.amounts.v=text'"
            " && etl-tui pipeline resync p1 --table 'public.amounts'"
        )
        assert errored.hint == fix
        _insert(source_dsn, "prices", 4, ["4"], ["4.000000000001"])
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        wait_until(lambda: _text_equal(target, source_dsn, "prices", "a"), 60, what="prices.a equal")
        assert _decimal_equal(target, source_dsn, "prices", ["b"])
        assert _state(settings, pid, "public.prices").phase is TablePhase.READY  # type: ignore[union-attr]

        # the hint, run as written, brings the table back with every digit
        for command in fix.split(" && "):
            argv = shlex.split(command)
            assert argv[0] == "etl-tui"
            _cli(settings, monkeypatch, *argv[1:])
        st = _wait_phase(settings, pid, "public.amounts", TablePhase.READY, 120)
        assert st.column_types == {"v": "text"}
        _insert(source_dsn, "amounts", 4, ["-0." + _digits(40)])
        runner = engine.runner("p1")
        wait_until(lambda: runner.state == "streaming", 60, what="streaming again")
        wait_caught_up(source_dsn, runner.spec.pipeline.slot_name)
        wait_until(lambda: _text_equal(target, source_dsn, "amounts", "v"), 60, what="amounts equal")
        assert _text_equal(target, source_dsn, "prices", "a")


def test_column_type_validation_names_what_is_wrong(
    settings: Settings, source_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cli(settings, monkeypatch, "source", "add", "src", "--dsn", source_dsn)
    _cli(settings, monkeypatch, "destination", "add", "d", "--type", "duckdb", "--path", "/tmp/x.duckdb")
    base = ["pipeline", "add", "p", "--source", "src", "--destination", "d", "--tables", "public.a"]
    capsys.readouterr()
    assert main([*base, "--column-type", "public.b.c=text"]) == 2
    err = capsys.readouterr().err
    assert "does not replicate table public.b" in err and "public.a" in err, err
    assert main([*base, "--column-type", "public.a.c=float"]) == 2
    err = capsys.readouterr().err
    assert "unknown column type 'float'" in err and "public.a.c=float" in err and "decimal(p,s)" in err, err
    assert main([*base, "--column-type", "public.a.c=decimal(40,2)"]) == 2
    assert main([*base, "--column-type", "public.a.c"]) == 2
    assert main([*base, "--column-type", 'public.a."Net Amount"=numeric(38,12)']) == 0
    capsys.readouterr()
    assert main(["pipeline", "show", "p"]) == 0
    assert 'public.a."Net Amount"=decimal(38,12)' in capsys.readouterr().out
    assert main(["pipeline", "edit", "p", "--column-type", "public.a.c=text"]) == 0
    assert main(["pipeline", "edit", "p", "--column-type", 'public.a."Net Amount"=auto']) == 0
    assert main(["pipeline", "edit", "p", "--column-type", "public.zz.c=text"]) == 2
    capsys.readouterr()
    assert main(["pipeline", "list"]) == 0
    out = capsys.readouterr().out
    assert "public.a.c=text" in out and "Net Amount" not in out, out


def test_check_reports_unbounded_numeric_before_anything_is_copied(
    settings: Settings, source_dsn: str, tmp_path: Path
) -> None:
    run_sql(
        source_dsn,
        'CREATE TABLE ledger (id int PRIMARY KEY, "Net Amount" numeric, fee numeric(12,2), rate numeric)',
        "CREATE TABLE fixed (id int PRIMARY KEY, fee numeric(12,2))",
    )
    with ConfigRepository(settings.config_db_url) as repo:
        repo.add_source("src", source_dsn)
        repo.add_destination("d", DestinationType.DUCKDB, {"path": str(tmp_path / "o.duckdb")})
        repo.add_pipeline("p1", "src", "d", parse_table_list("public.ledger,public.fixed"))
        specs = repo.load_specs()
    report = run_preflight(specs)
    numeric = [
        r.finding
        for r in report.rows()
        if r.finding.check is Check.COLUMN_TYPES and r.finding.subject == "public.ledger"
    ]
    assert len(numeric) == 1, numeric
    f = numeric[0]
    assert f.severity is Severity.INFO
    assert '"Net Amount", rate are unbounded numeric' in f.found and "fee" not in f.found, f.found
    assert "measures" in f.found and "exact text" in f.found
    assert "etl-tui pipeline edit p1 --column-type 'public.ledger.\"Net Amount\"=text'" in f.hint, f.hint
    assert not [
        r for r in report.rows() if r.finding.check is Check.COLUMN_TYPES and r.finding.subject == "public.fixed"
    ]
    assert not report.has_blockers
