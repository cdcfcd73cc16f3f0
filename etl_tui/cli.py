"""The ``etl-tui`` command line (DESIGN §4).

Headless commands import only the engine; the console (a later addition) is imported only when
it is asked for, so ``etl-tui --no-ui`` never loads Textual.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.config.destination_options import destination_config, unset_env_vars
from engine.config.models import DestinationType, PipelineStatus, parse_column_type
from engine.config.repository import ConfigRepository, validate_object_name
from engine.errors import ConfigError, EtlError
from engine.identifiers import TableName, parse_table_list
from engine.settings import Settings, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _setup_logging(level: str, fmt: str = "text", path: Path | None = None) -> None:
    from engine.logs import configure_logging

    configure_logging(fmt, level, path=path)


def _repo(settings: Settings) -> ConfigRepository:
    return ConfigRepository(settings.config_db_url)


def _print_rows(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ---- commands ------------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from engine.config.migrations import apply_migrations
    from engine.config.repository import connect_config_db

    with connect_config_db(settings.config_db_url) as conn:
        applied = apply_migrations(conn)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(m.name for m in applied) if applied else ""))
    return EXIT_OK


def cmd_source(args: argparse.Namespace, settings: Settings) -> int:
    with _repo(settings) as repo:
        if args.action == "add":
            src = repo.add_source(args.name, args.dsn)
            print(f"source {src.name} added ({src.dsn_redacted})")
        elif args.action == "list":
            _print_rows(["NAME", "DSN"], [[s.name, s.dsn_redacted] for s in repo.list_sources()])
        elif args.action == "remove":
            repo.remove_source(args.name)
            print(f"source {args.name} removed")
    return EXIT_OK


def _destination_options(args: argparse.Namespace) -> dict[str, object]:
    """What was given on the command line, by config key (None: not given)."""
    if args.password is not None or args.private_key_passphrase is not None:
        secret = "--password" if args.password is not None else "--private-key-passphrase"
        raise ConfigError(
            f"{secret} is not accepted: secrets never go on the command line (shell history, ps)",
            "put it in an environment variable and give its name: "
            + ("--password-env VAR" if args.password is not None else "--private-key-passphrase-env VAR"),
        )
    return {
        "path": args.path,
        "schema": args.schema,
        "landing_schema": args.landing_schema,
        "account": args.account,
        "user": args.user,
        "database": args.database,
        "warehouse": args.warehouse,
        "role": args.role,
        "private_key_file": args.private_key_file,
        "private_key_passphrase_env": args.private_key_passphrase_env,
        "password_env": args.password_env,
        "host": args.host,
        "port": args.port,
        "protocol": args.protocol,
        "loader": args.loader,
        "soft_deletes": True if args.soft_deletes else None,
        "transactions": False if args.no_transactions else None,
    }


def cmd_destination(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "add":
        # checked before connecting, so a typo is reported even when the config DB is down
        type_ = DestinationType(args.type)
        validate_object_name("destination", args.name)
        config = destination_config(type_, _destination_options(args), name=args.name)
    with _repo(settings) as repo:
        if args.action == "add":
            dest = repo.add_destination(args.name, type_, config)
            print(f"destination {dest.name} added ({dest.describe()})")
            for var in unset_env_vars(dest.config):
                print(f"warning: ${var} is not set here; the engine reads it when it connects", file=sys.stderr)
        elif args.action == "list":
            _print_rows(
                ["NAME", "TYPE", "TARGET"],
                [[d.name, str(d.type), d.describe()] for d in repo.list_destinations()],
            )
        elif args.action == "remove":
            repo.remove_destination(args.name)
            print(f"destination {args.name} removed")
    return EXIT_OK


def cmd_pipeline(args: argparse.Namespace, settings: Settings) -> int:
    from engine.runtime import admin

    with _repo(settings) as repo:
        if args.action == "add":
            tables = parse_table_list(args.tables)
            status = PipelineStatus.PAUSE if args.paused else PipelineStatus.START
            column_types = [parse_column_type(c) for c in args.column_type]
            p = repo.add_pipeline(args.name, args.source, args.destination, tables, status, column_types)
            print(f"pipeline {p.name} added with {len(p.tables)} table(s), status {p.status}")
            for o in p.column_types:
                print(f"  column type {o}")
        elif args.action == "edit":
            _edit_pipeline(repo, args)
        elif args.action == "show":
            p = repo.get_pipeline(args.name)
            sources = {s.id: s.name for s in repo.list_sources()}
            dests = {d.id: d.name for d in repo.list_destinations()}
            print(f"pipeline     {p.name}")
            print(f"source       {sources[p.source_id]}")
            print(f"destination  {dests[p.destination_id]}")
            print(f"status       {p.status}")
            print(f"publication  {p.publication_name}")
            print(f"slot         {p.slot_name}")
            print(f"tables       {', '.join(map(str, p.tables))}")
            print(f"column types {', '.join(map(str, p.column_types)) or 'none (the engine chooses)'}")
        elif args.action == "list":
            sources = {s.id: s.name for s in repo.list_sources()}
            dests = {d.id: d.name for d in repo.list_destinations()}
            _print_rows(
                ["NAME", "SOURCE", "DESTINATION", "STATUS", "TABLES", "COLUMN TYPES"],
                [
                    [
                        p.name,
                        sources[p.source_id],
                        dests[p.destination_id],
                        str(p.status),
                        ", ".join(map(str, p.tables)),
                        ", ".join(map(str, p.column_types)),
                    ]
                    for p in repo.list_pipelines()
                ],
            )
        elif args.action in ("start", "pause"):
            p = repo.set_pipeline_status(args.name, PipelineStatus(args.action))
            print(f"pipeline {p.name}: status {p.status} (a running engine applies it at once)")
        elif args.action == "remove":
            report = admin.remove_pipeline(repo, settings, args.name, keep_slot=args.keep_slot)
            print(report)
        elif args.action == "resync":
            only = parse_table_list(args.table) if args.table else None
            print(admin.resync_pipeline(repo, settings, args.name, only))
    return EXIT_OK


def _edit_pipeline(repo: ConfigRepository, args: argparse.Namespace) -> None:
    """``pipeline edit``: its tables and/or column types, all checked before anything is written."""
    name = args.name
    if args.tables is None and not args.column_type:
        raise ConfigError(
            f"pipeline edit {name}: nothing to change",
            f"e.g. etl-tui pipeline edit {name} --tables 'public.orders,public.customers' "
            "or --column-type 'public.orders.amount=text'",
        )
    tables = _edit_tables(name, args.tables) if args.tables is not None else None
    changes = [parse_column_type(c) for c in args.column_type]
    old = repo.get_pipeline(name)
    if tables is not None:
        # refused before the tables are written (without --tables, the repository checks)
        for table, column, _ in changes:
            if table not in tables:
                raise ConfigError(
                    f"--column-type {table}.{column}: pipeline {name} would not replicate table {table}",
                    f"name one of the tables in --tables ({', '.join(map(str, tables))}), or add it there",
                )
    p = old
    if tables is not None:
        # first, so a --column-type may name a table added in the same call
        p = repo.set_pipeline_tables(name, tables)
    if changes:
        p = repo.set_column_types(name, changes)
    added = sorted(set(p.tables) - set(old.tables))
    removed = sorted(set(old.tables) - set(p.tables))
    print(f"pipeline {p.name} edited")
    if tables is not None:
        print(f"  tables: {', '.join(map(str, p.tables))}")
        if added and not removed and p.column_types == old.column_types:
            # the manager adopts added tables into the running session (engine/runtime/manager.py)
            print(f"  a running engine copies {', '.join(map(str, added))} beside the stream; the other tables go on")
        elif added or removed:
            gone = f" without {', '.join(map(str, removed))}" if removed else ""
            print(f"  a running engine restarts the pipeline{gone}; tables not yet copied are copied first")
    if changes:
        print(f"  column types: {', '.join(map(str, p.column_types)) or 'none (the engine chooses)'}")
        if p.column_types != old.column_types:
            print("  a running engine restarts the pipeline with them")
        print(
            "  a table takes a new column type when it is copied again: "
            f"etl-tui pipeline resync {p.name} --table '<schema.table>'"
        )


def _edit_tables(name: str, text: str) -> list[TableName]:
    """``--tables`` of ``pipeline edit``: every table the pipeline is to replicate."""
    if not text.replace(",", "").strip():
        raise ConfigError(
            f"--tables of pipeline {name} names no table",
            f"give every table it is to replicate, e.g. --tables 'public.orders,public.customers'; "
            f"to stop replicating: etl-tui pipeline pause {name}",
        )
    try:
        return parse_table_list(text)
    except ConfigError as exc:
        raise ConfigError(f"--tables {text!r} of pipeline {name}: {exc.reason}", exc.hint) from None


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from engine.errors import StateStoreError
    from engine.state.store import connect_redis
    from engine.status.report import board_json, collect_status, status_lines

    client = None
    redis_error = None
    try:
        client = connect_redis(settings.redis_url)
    except StateStoreError as exc:
        redis_error = str(exc)
    with _repo(settings) as repo:
        board = collect_status(repo, client, redis_error=redis_error)
    if args.json:
        print(json.dumps(board_json(board), indent=2))
    else:
        for line in status_lines(board):
            print(line)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from engine.preflight import run_preflight
    from engine.preflight.text_report import render_text

    with _repo(settings) as repo:
        if args.pipeline:
            repo.get_pipeline(args.pipeline)  # an unknown name is a usage error (exit 2)
        specs = [s for s in repo.load_specs() if args.pipeline in (None, s.name)]
    report = run_preflight(specs)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render_text(report, width=max(60, min(shutil.get_terminal_size().columns, 120))))
    return EXIT_FAILED if report.has_blockers else EXIT_OK


def run_console(
    settings: Settings, *, readonly: bool, log_path: Path = Path("etl-tui.log"), log_format: str = "text"
) -> None:
    """Open the console hosting the engine (Textual is imported only here)."""
    from engine.runtime.operations import Operations
    from etl_tui.app import EtlApp

    # while the console owns the terminal, log lines go to a file (the Events screen shows events)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _setup_logging(logging.getLevelName(logging.getLogger().level), log_format, log_path)

    ops = Operations(settings, readonly=readonly)
    ops.start()
    try:
        EtlApp(ops).run()
    finally:
        ops.stop()  # drains in-flight batches like SIGTERM does headless


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    if not args.no_ui:
        run_console(settings, readonly=args.readonly, log_format=args.log_format)
        return EXIT_OK
    from engine.runtime.service import install_stop_signals, run_headless

    stop = threading.Event()
    install_stop_signals(stop)
    run_headless(settings, stop)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    if not args.no_ui:
        from engine.demo.run import demo_environment

        with demo_environment(args.dir, rate=args.rate) as env:
            log_path = env.duck_path.parent / "etl-tui.log"
            run_console(env.settings, readonly=args.readonly, log_path=log_path, log_format=args.log_format)
        return EXIT_OK
    from engine.demo.run import run_demo
    from engine.runtime.service import install_stop_signals

    stop = threading.Event()
    install_stop_signals(stop)
    run_demo(stop, workdir=args.dir, duration=args.duration, rate=args.rate, print_every=args.print_every)
    return EXIT_OK


# ---- parser ---------------------------------------------------------------------------------------
_COLUMN_TYPE = (
    "repeatable: the destination type of a numeric column, text or decimal(p,s) (auto: the engine "
    "chooses, from the values copied), e.g. 'public.orders.amount=decimal(38,12)'; a table takes it "
    "when it is (re)copied"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etl-tui",
        description="Replicate PostgreSQL tables into an analytical destination through logical replication.",
    )
    parser.add_argument("--no-ui", action="store_true", help="run the engine headless (SIGTERM drains and exits)")
    parser.add_argument("--readonly", action="store_true", help="console: refuse every action that changes anything")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="one line per event, as text or as a JSON object (default text)",
    )
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("migrate", help="apply pending config DB migrations")

    src = sub.add_parser("source", help="manage sources").add_subparsers(dest="action", required=True)
    p = src.add_parser("add", help="add a source PostgreSQL")
    p.add_argument("name")
    p.add_argument("--dsn", required=True, help="libpq URL or key=value string (shown redacted)")
    src.add_parser("list")
    p = src.add_parser("remove")
    p.add_argument("name")

    dst = sub.add_parser("destination", help="manage destinations").add_subparsers(dest="action", required=True)
    p = dst.add_parser(
        "add",
        help="add a destination",
        description="Secrets are never given here: a private key file, and names of environment variables.",
        allow_abbrev=False,  # else --password would be taken as --password-env
    )
    p.add_argument("name")
    p.add_argument("--type", required=True, choices=[t.value for t in DestinationType])
    p.add_argument("--schema", help="schema of the target tables (duckdb: default main; snowflake: required)")
    p.add_argument(
        "--landing-schema", help="schema of the landing tables (default etl_landing; snowflake: ETL_LANDING)"
    )
    p.add_argument(
        "--soft-deletes", action="store_true", help="keep deleted rows, flagged _etl_deleted, instead of removing them"
    )
    g = p.add_argument_group("duckdb")
    g.add_argument("--path", help="the database file")
    g = p.add_argument_group("snowflake")
    g.add_argument("--account", help="account identifier, e.g. myorg-myaccount")
    g.add_argument("--user")
    g.add_argument("--database")
    g.add_argument("--warehouse")
    g.add_argument("--role")
    g.add_argument("--private-key-file", help="PEM private key of the user (key-pair authentication)")
    g.add_argument("--private-key-passphrase-env", metavar="VAR", help="environment variable holding its passphrase")
    g.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    g.add_argument("--host", help="another endpoint than <account>.snowflakecomputing.com (an emulator, a proxy)")
    g.add_argument("--port", help="port of --host")
    g.add_argument("--protocol", help="https (default) or http, with --host")
    g.add_argument("--loader", help="copy (PUT + COPY INTO, default) or streaming (Snowpipe Streaming)")
    g.add_argument(
        "--no-transactions",
        action="store_true",
        help="MERGE outside a transaction: only for emulators such as fakesnow that cannot MERGE inside one",
    )
    # refused with a hint rather than an "unrecognized argument"
    p.add_argument("--password", help=argparse.SUPPRESS)
    p.add_argument("--private-key-passphrase", help=argparse.SUPPRESS)
    dst.add_parser("list")
    p = dst.add_parser("remove")
    p.add_argument("name")

    pl = sub.add_parser("pipeline", help="manage pipelines").add_subparsers(dest="action", required=True)
    p = pl.add_parser("add", help="add a pipeline")
    p.add_argument("name")
    p.add_argument("--source", required=True)
    p.add_argument("--destination", required=True)
    p.add_argument("--tables", required=True, help='comma-separated, e.g. public.orders,public."Order Items"')
    p.add_argument("--paused", action="store_true", help="add it paused")
    p.add_argument("--column-type", action="append", default=[], metavar="SCHEMA.TABLE.COLUMN=TYPE", help=_COLUMN_TYPE)
    p = pl.add_parser("edit", help="change a pipeline's tables and/or column types")
    p.add_argument("name")
    p.add_argument(
        "--tables",
        help="every table it is to replicate, comma-separated (added tables are copied beside the stream)",
    )
    p.add_argument("--column-type", action="append", default=[], metavar="SCHEMA.TABLE.COLUMN=TYPE", help=_COLUMN_TYPE)
    p = pl.add_parser("show", help="one pipeline's definition, column types included")
    p.add_argument("name")
    pl.add_parser("list")
    for action in ("start", "pause"):
        p = pl.add_parser(action)
        p.add_argument("name")
    p = pl.add_parser("remove", help="remove a pipeline, its slot and publication, and its state")
    p.add_argument("name")
    p.add_argument("--keep-slot", action="store_true", help="leave the replication slot and publication on the source")
    p = pl.add_parser("resync", help="copy tables again from scratch (drops and recreates the slot for a full resync)")
    p.add_argument("name")
    p.add_argument("--table", help="only these tables (comma-separated); the slot is kept")

    p = sub.add_parser("status", help="per pipeline: desired and actual state, tables, slot lag, last error")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "check",
        help="pre-flight: what would stop each pipeline, each finding with a hint (exit 1 on a blocker)",
        description="Checks each pipeline's source (connection, wal_level, slots, WAL senders, role, tables, keys, "
        "privileges, row security, publication, types, TOAST, copy size) and its destination's configuration. "
        "Read-only: nothing is created or changed.",
    )
    p.add_argument("pipeline", nargs="?", help="only this pipeline (default: every pipeline)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("demo", help="everything embedded: a throwaway Postgres + Redis, a shop database, a pipeline")
    p.add_argument("--no-ui", action="store_true", help="print progress instead of opening the console")
    p.add_argument("--readonly", action="store_true", help="console: refuse every action that changes anything")
    p.add_argument("--dir", default=".etl-tui-demo", help="working folder (default .etl-tui-demo)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--rate", type=float, default=200.0, help="write transactions per second of the workload")
    p.add_argument("--print-every", type=float, default=2.0, help="seconds between progress lines")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "migrate": cmd_migrate,
    "source": cmd_source,
    "destination": cmd_destination,
    "pipeline": cmd_pipeline,
    "status": cmd_status,
    "check": cmd_check,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    try:
        if args.command == "demo":
            return cmd_demo(args, None)
        settings = load_settings()
        if args.command is None:
            return cmd_run(args, settings)
        return COMMANDS[args.command](args, settings)
    except EtlError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
