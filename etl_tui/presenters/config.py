"""The config screen: sources, destinations and pipelines as stored in the config DB, and whether
the running engine applies what is stored."""

from __future__ import annotations

from engine.status.board import ConfigView
from etl_tui.presenters.cells import Cell, Row, Tone
from etl_tui.presenters.failure import Failure
from etl_tui.presenters.units import truncate


def source_rows(config: ConfigView) -> list[Row]:
    return [Row(s.name, (Cell(s.name), Cell(s.dsn_redacted))) for s in config.sources]


# Options a destination's TARGET column already shows (duckdb:PATH, snowflake:ACCOUNT/DATABASE.SCHEMA).
_IN_TARGET = {"duckdb": ("path",), "snowflake": ("account", "database", "schema")}


def destination_rows(config: ConfigView) -> list[Row]:
    return [
        Row(
            d.name,
            (
                Cell(d.name),
                Cell(d.type),
                Cell(d.target),
                Cell(
                    ", ".join(f"{k}={v}" for k, v in d.options if k not in _IN_TARGET.get(d.type, ("path",))),
                    Tone.MUTED,
                ),
            ),
        )
        for d in config.destinations
    ]


def pipeline_config_rows(config: ConfigView) -> list[Row]:
    return [
        Row(
            p.name,
            (
                Cell(p.name),
                Cell(p.source),
                Cell(p.destination),
                Cell(p.status, Tone.MUTED if p.status == "pause" else Tone.NORMAL),
                Cell(truncate(", ".join(p.tables), 64)),
                Cell("applied", Tone.OK) if p.applied else Cell("pending", Tone.WARN),
            ),
        )
        for p in config.pipelines
    ]


def config_status_cell(config: ConfigView | None, failure: Failure | None, *, readonly: bool) -> Cell:
    if failure is not None:
        return Cell(f"✖ cannot read the config DB: {failure.reason}", Tone.ERROR, sub=failure.hint)
    if config is None:
        return Cell("loading…", Tone.MUTED)
    pending = sum(not p.applied for p in config.pipelines)
    return Cell(
        "Saved changes are applied by the running engine; "
        + (f"{pending} pipeline(s) pending." if pending else "everything stored is applied."),
        Tone.WARN if pending else Tone.MUTED,
        sub="a add · e edit · d delete (on the focused list) · ctrl+r reload"
        if not readonly
        else "read-only console: changes are off",
    )
