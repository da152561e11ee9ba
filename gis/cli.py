"""The ``wangge`` command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console

from gis.db import check_database, database_url, embedded_cluster, make_engine, migrate
from gis.errors import WanggeError
from gis.settings import ApiSettings, DatabaseSettings

app = typer.Typer(no_args_is_help=True, help="wangge: grid management for city subdistricts.")
db_app = typer.Typer(no_args_is_help=True, help="The PostGIS database.")
app.add_typer(db_app, name="db")
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


def main() -> None:
    """Entry point of the ``wangge`` script: domain errors become one-line messages."""
    try:
        app()
    except WanggeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
