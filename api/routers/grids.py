"""``/grids``: cells by bbox and date, one cell in detail, who answers for it, validate, generate.

Routes validate request values and pass them to :mod:`gis.grids.queries`, which owns every
query. Nothing here shows a worker's phone: workers appear by name and role.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ApiSettingsDep, ReadConnectionDep
from api.routers.cases import WriteConnectionDep
from gis.cases.calendar import CalendarSettings
from gis.features import check_limit, parse_bbox
from gis.grids.queries import (
    cell_detail,
    check_kind,
    generation_report,
    grid_features,
    parse_as_of,
    responsible,
    validation_report,
)
from gis.settings import GridSettings

router = APIRouter(prefix="/grids", tags=["grids"])

GEOJSON = "application/geo+json"
_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad input; the body names the parameter."}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such cell, community or subdistrict; the detail names it."},
    **_BAD_INPUT,
}

Kind = Annotated[str | None, Query(description="unit or service; omitted: both.")]
AsOf = Annotated[
    str | None,
    Query(
        description="YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time unless an offset is given): "
        "the cells valid then; omitted: now.",
        examples=["2026-03-01"],
    ),
]
Code = Annotated[str, Path(description="15-digit grid code.")]


async def get_grid_settings(request: Request) -> GridSettings:
    """Return the grid settings of the app (read from ``WANGGE_GRID_*`` once per app)."""
    settings = getattr(request.app.state, "grid_settings", None)
    if not isinstance(settings, GridSettings):
        settings = GridSettings()
        request.app.state.grid_settings = settings
    return settings


async def get_timezone(request: Request) -> str:
    """Return the local zone in which dates without offset are read (``WANGGE_CALENDAR_*``)."""
    zone = getattr(request.app.state, "grid_timezone", None)
    if not isinstance(zone, str):
        zone = CalendarSettings().timezone
        request.app.state.grid_timezone = zone
    return zone


GridSettingsDep = Annotated[GridSettings, Depends(get_grid_settings)]
TimezoneDep = Annotated[str, Depends(get_timezone)]


class GenerateRequest(BaseModel):
    """What to generate: one community or a whole subdistrict, of one kind."""

    model_config = ConfigDict(extra="forbid")

    community: str | None = Field(default=None, description="12-digit community code.")
    subdistrict: str | None = Field(default=None, description="9-digit subdistrict code.")
    kind: str = Field(default="service", description="service or unit.")
    target_households: int | None = Field(
        default=None, ge=1, description="Households per service cell (default from settings)."
    )
    target_area: float | None = Field(
        default=None, gt=0, description="Area of a unit cell, m² (default 10,000)."
    )
    tolerance: float | None = Field(
        default=None, ge=0, lt=1, description="Relative size deviation accepted (default 0.25)."
    )
    dry_run: bool = Field(default=False, description="Compute and validate, store nothing.")


def _geojson(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=GEOJSON)


@router.get("", response_class=JSONResponse, responses=_BAD_INPUT)
def list_grids(
    connection: ReadConnectionDep,
    settings: ApiSettingsDep,
    zone: TimezoneDep,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in WGS84 degrees; omitted: everywhere.",
            examples=["116.30,39.98,116.31,39.99"],
        ),
    ] = None,
    kind: Kind = None,
    as_of: AsOf = None,
    limit: Annotated[int | None, Query(description="Maximum number of cells.")] = None,
) -> JSONResponse:
    """Cells valid at `as_of` intersecting `bbox`, as GeoJSON (EPSG:4326).

    Properties: code, kind, community code and name, valid_from/valid_to, area in m², worker
    name and role (never a phone).
    """
    box = parse_bbox(bbox) if bbox is not None else None
    check_kind(kind)
    moment = parse_as_of(as_of, timezone=zone)
    count = check_limit(
        limit, default=settings.layer_limit_default, maximum=settings.layer_limit_max
    )
    return _geojson(grid_features(connection, bbox=box, kind=kind, as_of=moment, limit=count))


@router.get("/validate", responses=_NOT_FOUND)
def validate(
    connection: WriteConnectionDep,
    settings: GridSettingsDep,
    zone: TimezoneDep,
    community: Annotated[
        str | None, Query(description="12-digit community code; omitted: every community.")
    ] = None,
    kind: Annotated[str, Query(description="unit or service.")] = "service",
    as_of: AsOf = None,
) -> dict[str, Any]:
    """Check the stored cells for every defect of a grid layer; `clean` is true when none.

    Overlaps, gaps, cells outside or straddling their community, buildings cut or in no
    cell, empty cells, invalid geometry, duplicate codes, household balance.
    """
    check_kind(kind)
    moment: datetime | None = parse_as_of(as_of, timezone=zone)
    return validation_report(
        connection, community=community, kind=kind, as_of=moment, tolerance_m2=settings.tolerance_m2
    )


@router.post("/generate", responses=_NOT_FOUND)
def generate(
    body: GenerateRequest, connection: WriteConnectionDep, settings: GridSettingsDep
) -> dict[str, Any]:
    """Generate cells along streets for a community or subdistrict and return the report.

    Unless `dry_run`, the new cells replace the current ones of that kind (old cells closed,
    never deleted; codes kept where a cell matches). The report lists each cell's households,
    area (m²) and compactness (4πA/P²) and the validation of the generated layer.
    """
    return generation_report(
        connection,
        community=body.community,
        subdistrict=body.subdistrict,
        kind=body.kind,
        target_households=body.target_households or settings.target_households,
        target_area_m2=body.target_area or settings.target_area_m2,
        tolerance=settings.size_tolerance if body.tolerance is None else body.tolerance,
        store=not body.dry_run,
        tolerance_m2=settings.tolerance_m2,
    )


@router.get("/{code}", response_class=JSONResponse, responses=_NOT_FOUND)
def get_grid(
    code: Code,
    connection: ReadConnectionDep,
    zone: TimezoneDep,
    kind: Kind = None,
    as_of: AsOf = None,
) -> JSONResponse:
    """One cell (GeoJSON Feature): community, worker (name, role) and counts.

    Counts: buildings, stairwells, households, residents, elderly, and open cases (not
    closed, voided or evaluated).
    """
    moment = parse_as_of(as_of, timezone=zone)
    return _geojson(cell_detail(connection, code, kind=kind, as_of=moment))


@router.get("/{code}/worker", responses=_NOT_FOUND)
def get_worker(
    code: Code, connection: ReadConnectionDep, zone: TimezoneDep, as_of: AsOf = None
) -> dict[str, Any]:
    """Who is responsible for a service cell: its worker (name, role), else its community."""
    moment = parse_as_of(as_of, timezone=zone)
    return responsible(connection, code, as_of=moment)
