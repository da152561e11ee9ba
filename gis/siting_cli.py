"""``wangge site``: where new facilities should go (the summary of ``POST /siting``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gis.db import database_url, make_engine, migrate, translate_errors
from gis.errors import InputError
from gis.settings import DatabaseSettings
from gis.siting import SolverError
from gis.siting_inputs import CandidateSpec, SitingRequest, solve_siting

console = Console(stderr=True)
out = Console()


def _floats(value: str | None, option: str, size: int | None = None) -> list[float] | None:
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError as exc:
        raise InputError(option, f"expected comma-separated numbers, got {value!r}") from exc
    if size is not None and len(numbers) != size:
        raise InputError(option, f"expected {size} numbers, got {len(numbers)}")
    return numbers


def _points(value: str | None) -> list[tuple[float, float]] | None:
    if value is None:
        return None
    pairs = [_floats(p, "--points", 2) for p in value.split(";") if p.strip()]
    return [(p[0], p[1]) for p in pairs if p is not None]


def _list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def site_command(
    problem: Annotated[str, typer.Option(help="mclp, lscp, pmedian or cmclp.")] = "mclp",
    facility_type: Annotated[
        str, typer.Option("--type", help="Facility type, e.g. elderly_day_care.")
    ] = "elderly_day_care",
    k: Annotated[int | None, typer.Option(help="New sites to open (not for lscp).")] = None,
    distance: Annotated[float | None, typer.Option(help="Walking limit in metres.")] = None,
    minutes: Annotated[float | None, typer.Option(help="Walking limit in minutes...")] = None,
    group: Annotated[str | None, typer.Option(help="...at this group's speed.")] = None,
    capacity: Annotated[float | None, typer.Option(help="Demand one site serves.")] = None,
    single_source: Annotated[bool, typer.Option(help="cmclp: one site per stairwell.")] = False,
    target: Annotated[float, typer.Option(help="lscp: share of demand to cover.")] = 1.0,
    points: Annotated[
        str | None, typer.Option(help="Candidate points: 'lon,lat;lon,lat' (WGS84).")
    ] = None,
    buildings: Annotated[str | None, typer.Option(help="Candidate building ids: '1,2'.")] = None,
    uses: Annotated[str | None, typer.Option(help="Candidate building uses: 'public'.")] = None,
    node_spacing: Annotated[
        float | None, typer.Option(help="Network nodes thinned to this spacing (m).")
    ] = None,
    demand: Annotated[str, typer.Option(help="elderly, residents or households.")] = "elderly",
    time_limit: Annotated[float | None, typer.Option(help="Solver seconds.")] = None,
    bbox: Annotated[
        str | None, typer.Option(help="WGS84 box: min lon,min lat,max lon,max lat.")
    ] = None,
    community: Annotated[str | None, typer.Option(help="Community code (12 digits).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full answer as JSON.")] = False,
) -> None:
    """Choose sites for new facilities and print the gain over today.

    Exit status 0 with an answer, 2 on bad input (the option is named).
    """
    url = database_url(DatabaseSettings())
    migrate(url)
    engine = make_engine(url, pool_size=1)
    try:
        question = SitingRequest(
            problem=problem,
            facility_type=facility_type,
            candidates=CandidateSpec(
                points=_points(points),
                building_ids=[int(b) for b in _floats(buildings, "--buildings") or []] or None,
                building_uses=_list(uses),
                node_spacing_m=node_spacing,
            ),
            k=k,
            service_distance_m=distance,
            minutes=minutes,
            group=group,
            capacity=capacity,
            single_source=single_source,
            target=target,
            measure=demand,
            time_limit_s=time_limit,
            bbox=_floats(bbox, "--bbox", 4),
            community=community,
        )
        with translate_errors(), engine.connect() as connection:
            answer = solve_siting(connection, question)
    except (InputError, SolverError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False))
        return
    _print(answer)


def _print(answer: dict[str, Any]) -> None:
    gap = answer["gap"]
    out.print(
        f"{answer['problem']} {answer['facility_type']} ({answer['measure']}): "
        f"status {answer['status']}, objective {answer['objective']:.6g}, "
        f"gap {'-' if gap is None else f'{gap:.2%}'}, {answer['runtime_s']:.2f} s"
    )
    out.print(f"distances: {answer['method']} ({answer['distance']})")
    sites = Table("site", "lon", "lat", "served", "capacity", title="new sites")
    for s in answer["sites"]:
        cap = "-" if s["capacity"] is None else f"{s['capacity']:g}"
        sites.add_row(s["site"], f"{s['lon']:.6f}", f"{s['lat']:.6f}", f"{s['served']:g}", cap)
    out.print(sites)
    coverage = answer["coverage"]
    if coverage is None:
        return
    total = coverage["total"]
    out.print(
        f"covered: before {total['covered_before']:g} ({total['share_before']:.1%}), "
        f"after {total['covered_after']:g} ({total['share_after']:.1%}) "
        f"of {total['demand']:g}"
    )
    grids = Table("grid", "demand", "before", "after", "gain", title="per grid")
    for row in coverage["by_grid"]:
        grids.add_row(
            str(row["grid"]),
            f"{row['demand']:g}",
            f"{row['covered_before']:g}",
            f"{row['covered_after']:g}",
            f"{row['gain']:g}",
        )
    out.print(grids)
