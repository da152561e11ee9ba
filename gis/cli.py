"""The ``wangge`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from gis.auth_cli import db_dump, db_restore, users_app
from gis.cases.reporting_cli import cases_app, import_addresses, locate_command
from gis.cases.stats_cli import stats_command
from gis.circles_cli import circles_app
from gis.db import check_database, database_url, embedded_cluster, make_engine, migrate
from gis.errors import WanggeError
from gis.grids.cli import grids_app
from gis.settings import ApiSettings, DatabaseSettings
from gis.siting_cli import site_command

app = typer.Typer(no_args_is_help=True, help="wangge: grid management for city subdistricts.")
db_app = typer.Typer(no_args_is_help=True, help="The PostGIS database.")
app.add_typer(db_app, name="db")
import_app = typer.Typer(no_args_is_help=True, help="Import real data into the database.")
app.add_typer(import_app, name="import")
app.add_typer(grids_app, name="grids")
app.add_typer(circles_app, name="circles")
app.add_typer(users_app, name="users")
db_app.command("dump")(db_dump)
db_app.command("restore")(db_restore)
app.add_typer(cases_app, name="cases")
app.command("locate")(locate_command)
app.command("stats")(stats_command)
app.command("site")(site_command)
import_app.command("addresses")(import_addresses)
console = Console(stderr=True)


def ready_url() -> str:
    """Return the database URL, starting the embedded cluster and migrating as needed."""
    url = database_url(DatabaseSettings())
    migrate(url)
    return url


@db_app.command("start")
def db_start() -> None:
    """Start the embedded cluster (initialising it first) and bring the schema up to date."""
    settings = DatabaseSettings()
    if settings.database_url:
        console.print("WANGGE_DATABASE_URL is set: using that server, nothing to start.")
    url = ready_url()
    console.print(f"PostGIS ready at {url}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    embedded_cluster(DatabaseSettings()).stop()
    console.print("stopped")


@db_app.command("status")
def db_status() -> None:
    """Say whether the database answers, and its versions."""
    settings = DatabaseSettings()
    if not settings.database_url:
        cluster = embedded_cluster(settings)
        if not cluster.running():
            console.print(f"embedded cluster in {cluster.data_dir}: not running")
            raise typer.Exit(1)
    url = database_url(settings, start=False)
    engine = make_engine(url, pool_size=1)
    versions = check_database(engine)
    engine.dispose()
    print(json.dumps({"url": url, **versions}))


@db_app.command("url")
def db_url() -> None:
    """Print the database URL wangge uses (the embedded cluster's unless overridden)."""
    print(database_url(DatabaseSettings(), start=False))


@db_app.command("migrate")
def db_migrate() -> None:
    """Bring the schema up to date (Alembic ``upgrade head``)."""
    ready_url()
    console.print("schema up to date")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the map API and print the URL of the map page."""
    import os

    import uvicorn

    api = ApiSettings()
    bind_host = host or api.host
    bind_port = port or api.port
    # The app factory reads the URL from the environment in every worker process.
    os.environ["WANGGE_DATABASE_URL"] = ready_url()
    console.print(f"wangge map: http://{bind_host}:{bind_port}/")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level="info",
    )


@import_app.command("osm")
def import_osm(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files: .osm.pbf, .osm, .geojson, .gpkg (imported together)."),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(help="TOML mapping of OSM tags to facility types (default: shipped)."),
    ] = None,
    source: Annotated[str, typer.Option(help="Source name stored with every row.")] = "osm",
) -> None:
    """Import buildings, walkable streets and facilities; re-importing updates in place.

    All files are read first, then stored in one transaction: a file that cannot be read
    leaves the database unchanged (exit 2). Exit 1 when some features were rejected (the
    valid ones are stored), 0 when none were.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from gis.circles_store import store_gates_and_barriers
    from gis.loader import store_layers
    from gis.osm import OsmLayers, load_facility_mapping, read_source
    from gis.stairwells import building_ids_for, estimate_stairwells

    try:
        facility_mapping = load_facility_mapping(mapping)
        read: list[OsmLayers] = []
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            for path in paths:
                task = progress.add_task(f"reading {path}")

                def tick(objects: int, task: Any = task, path: Path = path) -> None:
                    progress.update(task, description=f"reading {path}: {objects:,} objects")

                read.append(read_source(path, mapping=facility_mapping, progress=tick))
                progress.update(task, description=f"read {path}")
            engine = make_engine(ready_url(), pool_size=1)
            try:
                with engine.begin() as connection:
                    summaries = []
                    for layers in read:
                        task = progress.add_task(f"storing {layers.path}")
                        summaries.append(store_layers(connection, layers, source=source))
                        # Gates and walls of gated compounds, for the walking network.
                        store_gates_and_barriers(connection, layers, source=source)
                        progress.update(task, description=f"stored {layers.path}")
                    progress.add_task("estimating stairwells")
                    imported = [i for layers in read for i in layers.buildings["source_id"]]
                    estimate = estimate_stairwells(
                        connection, building_ids=building_ids_for(connection, source, imported)
                    )
            finally:
                engine.dispose()
    except (WanggeError, SQLAlchemyError) as exc:
        console.print(f"[red]import failed, database unchanged:[/red] {exc}")
        raise typer.Exit(2) from exc
    rejected = 0
    for layers, summary in zip(read, summaries, strict=True):
        stored = ", ".join(
            f"{table} {sum(summary[table].values()):,} ({summary[table]['inserted']:,} new, "
            f"{summary[table]['updated']:,} updated)"
            for table in ("buildings", "streets", "facilities")
        )
        console.print(f"{layers.path}: {stored}; {len(layers.rejected):,} rejected")
        for item in layers.rejected:
            console.print(f"  rejected {item['layer']} {item['source_id']}: {item['reason']}")
        rejected += len(layers.rejected)
    console.print(
        f"stairwells estimated for {estimate.estimated_buildings} residential buildings: "
        f"{estimate.stairwells} stairwells, {estimate.households} households"
    )
    if rejected:
        console.print(f"[yellow]{rejected} feature(s) rejected[/yellow]; the others are stored")
        raise typer.Exit(1)


@import_app.command("stairwells")
def import_stairwells(
    path: Annotated[
        Path,
        typer.Argument(help="CSV: building, unit, households, residents, elderly[, lon, lat]."),
    ],
    strict: Annotated[
        bool, typer.Option("--strict", help="Store nothing if any row is rejected.")
    ] = False,
    crs: Annotated[
        str, typer.Option(help="Coordinate system of lon/lat: wgs84, gcj02 (Amap) or bd09.")
    ] = "wgs84",
) -> None:
    """Load real per-stairwell counts; they replace the estimated stairwells of their buildings.

    Rejected rows are listed with row number (header = 1), column and reason. Exit 0 when every
    row was stored, 1 when some rows were rejected, 2 when the import failed (nothing stored).
    """
    from gis.stairwells import import_stairwell_counts

    try:
        engine = make_engine(ready_url(), pool_size=1)
        try:
            with engine.begin() as connection:
                report = import_stairwell_counts(connection, path, strict=strict, crs=crs)
        finally:
            engine.dispose()
    except (WanggeError, SQLAlchemyError) as exc:
        console.print(f"[red]import failed, database unchanged:[/red] {exc}")
        raise typer.Exit(2) from exc
    for problem in report.rejected:
        console.print(f"  rejected {problem}")
    console.print(
        f"{path}: {report.rows} row(s) read, {report.stored} stairwell(s) stored for "
        f"{report.buildings} building(s), {report.replaced_estimates} estimate(s) replaced"
    )
    if report.rejected:
        kept = "nothing stored (--strict)" if strict else "the valid rows are stored"
        console.print(f"[yellow]{len(report.rejected)} problem(s)[/yellow]; {kept}")
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``wangge`` script: domain errors become one-line messages."""
    try:
        app()
    except WanggeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
