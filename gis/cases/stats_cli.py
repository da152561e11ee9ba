"""Command ``wangge stats``: closed-loop indicators as CSV or JSON.

Registered on the main app by :mod:`gis.cli`. Definitions are those of
:mod:`gis.cases.indicators`; the records are those of ``GET /stats/indicators``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from gis.cases.stats import indicator_table, parse_group_by, parse_period, to_csv
from gis.db import make_engine
from gis.errors import InputError, WanggeError

console = Console(stderr=True)
FORMATS = ("csv", "json")


def stats_command(
    by: Annotated[
        str,
        typer.Option(
            help="Comma-separated: grid, community, subdistrict, department, worker, category "
            "(empty: one total row)."
        ),
    ] = "grid",
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 start (default: 30 days before until).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601 end, excluded; a date includes that day.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of standard output.")
    ] = None,
) -> None:
    """Print filed, due, closed, on-time, rework, extension, dispatch and incident figures.

    Exit 2 for bad options (the option is named) or when the database fails.
    """
    from gis.cli import ready_url

    try:
        if fmt not in FORMATS:
            raise InputError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        dims = parse_group_by(by)
        start, end = parse_period(since, until)
        engine = make_engine(ready_url(), pool_size=1)
        try:
            with engine.begin() as connection:
                rows = indicator_table(connection, start=start, end=end, group_by=dims)
        finally:
            engine.dispose()
    except (WanggeError, SQLAlchemyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if fmt == "csv":
        text = to_csv(rows, dims)
    else:
        body = {"since": start.isoformat(), "until": end.isoformat(), "groups": rows}
        text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"{len(rows)} group(s) written to {output}")
