"""``wangge grids ...``: validate, import, generate, version and staff grid cells."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, text

from gis.db import database_url, make_engine, migrate, translate_errors
from gis.errors import InputError, NotFoundError
from gis.settings import DatabaseSettings, GridSettings

grids_app = typer.Typer(no_args_is_help=True, help="Grid cells: validate, import, generate, staff.")
console = Console(stderr=True)

KindOption = Annotated[str, typer.Option("--kind", help="Grid kind: service or unit.")]
AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="ISO date or time: the cells valid then.")
]


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


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError("--as-of", f"not an ISO date or time: {value!r}") from exc


def _community_id(conn: Connection, code: str | None) -> int | None:
    if code is None:
        return None
    cid = conn.execute(text("SELECT id FROM community WHERE code = :c"), {"c": code}).scalar()
    if cid is None:
        raise NotFoundError(f"no community {code}")
    return int(cid)


def _print_report(report: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{report.kind} cells: {report.cells}, buildings: {report.buildings}")
    for column in ("defect", "cells", "m²", "detail"):
        table.add_column(column)
    for d in report.defects:
        area = "" if d.area_m2 is None else f"{d.area_m2:.1f}"
        table.add_row(d.kind, " ".join(d.codes), area, d.detail)
    Console().print(table)
    h = report.households
    print(f"households per cell: min {h.min}, median {h.median}, max {h.max}")
    print("clean" if report.clean else f"{len(report.defects)} defect(s)")


@grids_app.command("validate")
def validate(
    kind: KindOption = "service",
    community: Annotated[str | None, typer.Option(help="12-digit community code.")] = None,
    as_of: AsOfOption = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Area noise threshold, m² (WANGGE_GRID_TOLERANCE_M2).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the grid layer; exit code 0 only when it is clean."""
    from gis.grids.validate import validate_grids

    with _transaction() as conn:
        report = validate_grids(
            conn,
            kind=kind,
            community_id=_community_id(conn, community),
            as_of=_as_of(as_of),
            tolerance_m2=GridSettings().tolerance_m2 if tolerance is None else tolerance,
        )
    _print_report(report, as_json=as_json)
    raise typer.Exit(0 if report.clean else 1)


@grids_app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, help="GeoJSON, GeoPackage or Shapefile.")],
    kind: KindOption = "unit",
    layer: Annotated[str | None, typer.Option(help="Layer of a multi-layer file.")] = None,
    code_field: Annotated[str, typer.Option(help="Attribute with the grid code.")] = "code",
    accept_defects: Annotated[
        bool, typer.Option("--accept-defects", help="Store a defective layer, defects recorded.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import an official grid layer, replacing the current cells of its communities."""
    from gis.grids.io import DefectiveLayerError, GridFileError, import_grids

    try:
        with _transaction() as conn:
            result = import_grids(
                conn,
                path,
                kind=kind,
                layer=layer,
                code_field=code_field,
                accept_defects=accept_defects,
            )
    except DefectiveLayerError as refused:
        _print_report(refused.report, as_json=as_json)
        console.print("[red]refused:[/red] fix the layer or pass --accept-defects; nothing stored")
        raise typer.Exit(1) from None
    except GridFileError as bad:
        for p in bad.problems:
            console.print(f"feature {p.feature} {p.field}: {p.problem}")
        console.print("[red]refused:[/red] nothing stored")
        raise typer.Exit(1) from None
    _print_report(result.report, as_json=as_json)
    console.print(
        f"stored {result.cells} cells ({result.closed} closed), "
        f"{result.defects_accepted} defect(s) accepted, import run {result.run_id}"
    )


@grids_app.command("generate")
def generate(
    kind: KindOption = "service",
    target_households: Annotated[
        int | None,
        typer.Option(min=1, help="Service cells (default 400; WANGGE_GRID_TARGET_HOUSEHOLDS)."),
    ] = None,
    target_area: Annotated[
        float | None, typer.Option(min=1, help="Unit cells, m² (default 10,000).")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Relative size tolerance (default 0.25).")
    ] = None,
    community: Annotated[str | None, typer.Option(help="12-digit community code.")] = None,
    subdistrict: Annotated[str | None, typer.Option(help="9-digit subdistrict code.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute, store nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the cells as JSON.")] = False,
) -> None:
    """Generate cells along streets and replace the current ones (codes kept where they match)."""
    from gis.grids.generate import communities_of, generate_grids

    cfg = GridSettings()
    with _transaction() as conn:
        cid = _community_id(conn, community)
        ids = [cid] if cid is not None else communities_of(conn, subdistrict_code=subdistrict)
        result = generate_grids(
            conn,
            community_ids=ids,
            kind=kind,
            target_households=target_households or cfg.target_households,
            target_area_m2=target_area or cfg.target_area_m2,
            tolerance=cfg.size_tolerance if tolerance is None else tolerance,
            store=not dry_run,
        )
    rows = [
        {
            "code": c.code,
            "households": c.households,
            "buildings": c.buildings,
            "area_m2": round(c.area_m2, 1),
            "compactness": round(c.compactness, 3),
        }
        for c in result.cells
    ]
    if as_json:
        print(json.dumps({"summary": result.summary(), "cells": rows}, indent=1))
        return
    table = Table(title=f"{len(rows)} {kind} cells" + (" (dry run)" if dry_run else ""))
    for column in rows[0] if rows else ():
        table.add_column(column)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console().print(table)
    print(json.dumps(result.summary()))


@grids_app.command("communities")
def communities(
    path: Annotated[Path, typer.Argument(exists=True, help="Boundaries with admin codes.")],
    level: Annotated[str, typer.Option(help="subdistrict or community.")] = "community",
    code_field: Annotated[str, typer.Option(help="Attribute with the code.")] = "code",
    name_field: Annotated[str, typer.Option(help="Attribute with the name.")] = "name",
) -> None:
    """Import subdistrict or community boundaries."""
    from gis.grids.communities import import_boundaries

    with _transaction() as conn:
        result = import_boundaries(
            conn, path, level=level, code_field=code_field, name_field=name_field
        )
    console.print(f"{result.inserted} new, {result.updated} updated {level} boundaries")


@grids_app.command("derive-communities")
def derive(
    study_area: Annotated[Path, typer.Argument(exists=True, help="Polygon file of the area.")],
    subdistrict_code: Annotated[str, typer.Option(help="9-digit code to give the area.")],
    min_area: Annotated[
        float | None, typer.Option(help="Smallest community, m² (default 100,000).")
    ] = None,
    keep_existing: Annotated[
        bool, typer.Option(help="Leave a subdistrict that already has communities as it is.")
    ] = False,
) -> None:
    """Cut a study area into derived communities along major roads."""
    from gis.grids.communities import derive_communities, read_study_area

    with _transaction() as conn:
        existing = conn.execute(
            text(
                "SELECT count(*) FROM community c JOIN subdistrict s ON s.id = c.subdistrict_id"
                " WHERE s.code = :code"
            ),
            {"code": subdistrict_code},
        ).scalar_one()
        if keep_existing and existing:
            console.print(f"subdistrict {subdistrict_code} keeps its {existing} communities")
            return
        ids = derive_communities(
            conn,
            read_study_area(study_area),
            subdistrict_code=subdistrict_code,
            min_area_m2=GridSettings().min_community_m2 if min_area is None else min_area,
        )
    console.print(f"{len(ids)} derived communities in subdistrict {subdistrict_code}")


@grids_app.command("show")
def show(
    code: Annotated[str, typer.Argument(help="15-digit grid code.")],
    kind: Annotated[str | None, typer.Option(help="service or unit.")] = None,
    as_of: AsOfOption = None,
) -> None:
    """Print a cell: community, worker (no phone), counts."""
    from gis.grids.versions import cell_by_code

    with _transaction() as conn:
        cell = cell_by_code(conn, code, kind=kind, as_of=_as_of(as_of))
    out = dataclasses.asdict(cell)
    out.pop("geometry")
    print(json.dumps(out, ensure_ascii=False, default=str, indent=1))


@grids_app.command("defects")
def defects(
    community: Annotated[str | None, typer.Option(help="12-digit community code.")] = None,
) -> None:
    """List the defects accepted at import for current cells."""
    from gis.grids.io import accepted_defects

    with _transaction() as conn:
        found = accepted_defects(conn, community_id=_community_id(conn, community))
    for f in found:
        p = f["properties"]
        print(f"{p['kind']}\t{' '.join(p['codes'])}\t{p['detail']}")


@grids_app.command("add-worker")
def add_worker(
    name: Annotated[str, typer.Option(help="Worker's name.")],
    phone: Annotated[str | None, typer.Option(help="Phone (kept private).")] = None,
    role: Annotated[str, typer.Option(help="grid_worker, grid_leader, ...")] = "grid_worker",
) -> None:
    """Create a grid worker and print its id."""
    from gis.grids.workers import create_worker

    with _transaction() as conn:
        worker = create_worker(conn, name=name, phone=phone, role=role)
    print(worker.id)


@grids_app.command("assign")
def assign(
    worker_id: Annotated[int, typer.Argument(help="Worker id.")],
    codes: Annotated[list[str], typer.Argument(help="Service cell codes.")],
) -> None:
    """Make a worker responsible for service cells."""
    from gis.grids.workers import assign_grids

    with _transaction() as conn:
        worker = assign_grids(conn, worker_id, codes)
    console.print(f"{worker.name} holds {', '.join(worker.grids)}")


@grids_app.command("who")
def who(
    code: Annotated[str, typer.Argument(help="15-digit service cell code.")],
    as_of: AsOfOption = None,
) -> None:
    """Say who is responsible for a service cell (no phone)."""
    from gis.grids.workers import responsible_for

    with _transaction() as conn:
        answer = responsible_for(conn, code, as_of=_as_of(as_of))
    print(json.dumps(dataclasses.asdict(answer), ensure_ascii=False, indent=1))
