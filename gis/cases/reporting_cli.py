"""Commands ``wangge locate``, ``wangge cases import`` and ``wangge import addresses``.

Registered on the main app by :mod:`gis.cli`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from gis.db import make_engine
from gis.errors import WanggeError
from gis.settings import CaseSettings

cases_app = typer.Typer(no_args_is_help=True, help="Reported cases (案件).")
console = Console(stderr=True)


def _url() -> str:
    from gis.cli import ready_url

    return ready_url()


def locate_command(
    lon: Annotated[str, typer.Argument(help="Longitude in degrees (in --crs).")],
    lat: Annotated[str, typer.Argument(help="Latitude in degrees (in --crs).")],
    crs: Annotated[str, typer.Option(help="wgs84, gcj02 (Amap/WeChat) or bd09 (Baidu).")] = (
        "wgs84"
    ),
) -> None:
    """Print the grid, worker, community, subdistrict and nearest stairwell of a point (JSON).

    Exit 2 on bad input (non-numeric, out of range, swapped, unknown crs).
    """
    from gis.locate import locate

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.connect() as connection:
            found = locate(
                connection, lon, lat, crs=crs, near_boundary_m=CaseSettings().near_boundary_m
            )
    except WanggeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    print(json.dumps(asdict(found), ensure_ascii=False, indent=2))


@cases_app.command("import")
def import_cases(
    path: Annotated[Path, typer.Argument(help="CSV (lon/lat/crs or address) or GeoJSON file.")],
    errors: Annotated[
        Path | None, typer.Option(help="Errors CSV (default: FILE.errors.csv next to FILE).")
    ] = None,
    crs: Annotated[str, typer.Option(help="System of rows without a crs value.")] = "wgs84",
) -> None:
    """Import cases: assign every row, store valid rows in committed chunks, report the rest.

    Idempotent on ``external_id``: an interrupted import is resumed by running it again.
    Exit 0 when every row was stored (or already was), 1 when rows were rejected (listed in
    the errors file), 2 when the file could not be imported.
    """
    from gis.cases.reporting import import_cases_batch

    errors_path = errors or path.with_name(path.name + ".errors.csv")
    engine = make_engine(_url(), pool_size=1)
    try:
        with (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,}"),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
            engine.connect() as connection,
        ):
            tasks: dict[str, TaskID] = {}

            def tick(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=max(total, 1))
                progress.update(tasks[stage], completed=done)

            report = import_cases_batch(
                connection, path, crs=crs, errors_path=errors_path, progress=tick
            )
    except (WanggeError, SQLAlchemyError, OSError) as exc:
        console.print(f"[red]import failed:[/red] {exc}")
        console.print("chunks committed before the failure stay; run again to resume")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    console.print(
        f"{path}: {report.rows:,} row(s), {report.stored:,} stored, "
        f"{report.already_stored:,} already stored, {len(report.rejected):,} rejected"
    )
    if report.rejected:
        for item in report.rejected[:10]:
            console.print(f"  row {item.row}, {item.field}: {item.reason}")
        console.print(f"[yellow]rejected rows written to {errors_path}[/yellow]")
        raise typer.Exit(1)


def import_addresses(
    path: Annotated[
        Path, typer.Argument(help="CSV: community, building_number, building (id or source id).")
    ],
) -> None:
    """Load the address table (building numbers per community) used to resolve addresses.

    Exit 0 when every row was stored, 1 when rows were rejected, 2 when nothing was stored.
    """
    from gis.addresses import import_address_table

    engine = make_engine(_url(), pool_size=1)
    try:
        with engine.begin() as connection:
            stored, rejected = import_address_table(connection, path)
    except (WanggeError, SQLAlchemyError, OSError) as exc:
        console.print(f"[red]import failed, database unchanged:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for problem in rejected:
        console.print(f"  rejected {problem}")
    console.print(f"{path}: {stored} address(es) stored")
    if rejected:
        raise typer.Exit(1)
