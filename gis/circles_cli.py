"""``wangge circles ...``: compute and report the 15-minute service circle."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection

from gis.circles_store import (
    area_geometry,
    area_summary,
    compute_area,
    coverage_report,
    missing_report,
    set_gate_closed,
)
from gis.db import database_url, make_engine, migrate, translate_errors
from gis.errors import InputError
from gis.settings import DatabaseSettings

circles_app = typer.Typer(
    no_args_is_help=True, help="The 15-minute service circle: walking coverage of stairwells."
)
console = Console(stderr=True)


@contextmanager
def _transaction() -> Iterator[Connection]:
    url = database_url(DatabaseSettings())
    migrate(url)
    engine = make_engine(url, pool_size=1)
    try:
        with translate_errors(), engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def _bbox(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError as exc:
        raise InputError("--bbox", "expected min lon,min lat,max lon,max lat") from exc


@circles_app.command("compute")
def compute(
    bbox: Annotated[
        str | None, typer.Option(help="WGS84 box: min lon,min lat,max lon,max lat.")
    ] = None,
    community: Annotated[str | None, typer.Option(help="Community code (12 digits).")] = None,
    subdistrict: Annotated[str | None, typer.Option(help="Subdistrict code (9 digits).")] = None,
) -> None:
    """Compute and store the coverage of every stairwell of an area for every facility type.

    The network (streets, open gates, walls) and facilities are taken from the area widened
    by the largest level distance. Prints a JSON summary on stdout.
    """
    with _transaction() as conn:
        name, area = area_geometry(
            conn, bbox=_bbox(bbox), community=community, subdistrict=subdistrict
        )
        area_id = compute_area(conn, area, name=name)
        summary = area_summary(conn, area_id)
    sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    if summary["stairwells_far_from_network"]:
        console.print(
            f"[yellow]{summary['stairwells_far_from_network']} stairwell(s) lie farther than "
            "the snapping limit from any walkable way[/yellow]"
        )
    if summary["network_pieces"] > 1:
        pieces = summary["network_pieces_largest_first"]
        total = sum(p["length_m"] for p in pieces)
        console.print(
            f"[yellow]the walking network falls into {summary['network_pieces']} disconnected "
            f"pieces; the largest holds {pieces[0]['length_m']:.0f} m of "
            f"{total:.0f} m (of the ten largest): places on small pieces reach few "
            "facilities[/yellow]"
        )
    if "euclidean_fallback" in summary["methods"]:
        console.print(
            "[yellow]no walking network here: distances are straight lines x the detour "
            "factor (method euclidean_fallback)[/yellow]"
        )


@circles_app.command("report")
def report(
    level: Annotated[int | None, typer.Option(help="Level in minutes (5, 10, 15).")] = None,
    type: Annotated[str | None, typer.Option("--type", help="One facility type.")] = None,
    group: Annotated[str, typer.Option(help="standard, adult or elderly.")] = "standard",
    by: Annotated[str, typer.Option(help="grid, community or subdistrict.")] = "grid",
    area_id: Annotated[int | None, typer.Option(help="One computed area.")] = None,
    missing: Annotated[
        int, typer.Option(help="Also list this many stairwells missing most types (0: none).")
    ] = 0,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout instead of a table.")] = False,
) -> None:
    """Report the share of households, residents and elderly within each level."""
    with _transaction() as conn:
        frame = coverage_report(conn, level=level, type=type, group=group, by=by, area_id=area_id)
        lacking = (
            missing_report(conn, level=level or 15, group=group, limit=missing, area_id=area_id)
            if missing
            else None
        )
    if csv:
        frame.to_csv(sys.stdout, index=False)
        if lacking is not None:
            sys.stdout.write("\n")
            lacking.to_csv(sys.stdout, index=False)
        return
    out = Console()
    out.print(
        _table(
            frame,
            [
                by,
                "type",
                "group",
                "minutes",
                "households",
                "share_households",
                "share_residents",
                "share_elderly",
                "method",
            ],
        )
    )
    if lacking is not None:
        out.print(_table(lacking, list(lacking.columns)))


def _table(frame: pd.DataFrame, columns: list[str]) -> Table:
    table = Table(*columns)
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return str(value)


@circles_app.command("gate")
def gate(
    gate_id: Annotated[int, typer.Argument(help="walk_gate id.")],
    closed: Annotated[
        bool, typer.Option("--closed/--open", help="Close (e.g. at night) or reopen.")
    ] = True,
) -> None:
    """Close or reopen a stored gate; run ``circles compute`` again to see the effect."""
    with _transaction() as conn:
        set_gate_closed(conn, gate_id, closed=closed)
    console.print(f"gate {gate_id} {'closed' if closed else 'open'}")
