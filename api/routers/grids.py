"""``/grids``: cells by bbox and date, one cell in detail, who answers for it, validate, generate.

Routes validate request values and pass them to :mod:`gis.grids.queries`, which owns every
query. Nothing here shows a worker's phone: workers appear by name and role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import ApiSettingsDep, ReadConnectionDep
from api.routers.cases import WriteConnectionDep
from gis.cases.calendar import CalendarSettings
from gis.errors import InputError
from gis.features import BBox, check_limit, parse_bbox
from gis.grids.codes import COMMUNITY_PATTERN, parse_code
from gis.grids.queries import (
    cell_detail,
    check_kind,
    check_place,
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


# Parameter checks are dependencies declared before the connection in every route, so bad
# input is answered without checking a connection out (or needing the database at all).


async def as_of_param(zone: TimezoneDep, as_of: AsOf = None) -> datetime | None:
    """Return ``as_of`` as an aware datetime (None: now); 422 naming ``as_of`` when malformed."""
    return parse_as_of(as_of, timezone=zone)


async def kind_param(kind: Kind = None) -> str | None:
    """Return the optional grid kind; 422 naming ``kind`` when unknown."""
    return check_kind(kind)


async def code_param(code: Code) -> str:
    """Return the grid code; 422 naming ``code`` when it is not 15 digits."""
    parse_code(code)
    return code


AsOfDep = Annotated[datetime | None, Depends(as_of_param)]
KindDep = Annotated[str | None, Depends(kind_param)]
CodeDep = Annotated[str, Depends(code_param)]


@dataclass(frozen=True, slots=True)
class CellsQuery:
    """Validated parameters of ``GET /grids``."""

    bbox: BBox | None
    limit: int


async def cells_query(
    settings: ApiSettingsDep,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in WGS84 degrees; omitted: everywhere.",
            examples=["116.30,39.98,116.31,39.99"],
        ),
    ] = None,
    limit: Annotated[int | None, Query(description="Maximum number of cells.")] = None,
) -> CellsQuery:
    """Check ``bbox`` and ``limit`` (422 naming the parameter)."""
    return CellsQuery(
        bbox=parse_bbox(bbox) if bbox is not None else None,
        limit=check_limit(
            limit, default=settings.layer_limit_default, maximum=settings.layer_limit_max
        ),
    )


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
    query: Annotated[CellsQuery, Depends(cells_query)],
    kind: KindDep,
    as_of: AsOfDep,
    connection: ReadConnectionDep,
) -> JSONResponse:
    """Cells valid at `as_of` intersecting `bbox`, as GeoJSON (EPSG:4326).

    Properties: code, kind, community code and name, valid_from/valid_to, area in m², worker
    name and role (never a phone).
    """
    body = grid_features(connection, bbox=query.bbox, kind=kind, as_of=as_of, limit=query.limit)
    return _geojson(body)


async def validate_kind(
    kind: Annotated[str, Query(description="unit or service.")] = "service",
) -> str:
    """Return the kind to validate; 422 naming ``kind`` when unknown."""
    check_kind(kind)
    return kind


async def community_param(
    community: Annotated[
        str | None, Query(description="12-digit community code; omitted: every community.")
    ] = None,
) -> str | None:
    """Return the optional community code; 422 naming ``community`` unless 12 digits."""
    if community is not None and not COMMUNITY_PATTERN.fullmatch(community):
        raise InputError("community", f"community code must be 12 digits, got {community!r}")
    return community


@router.get("/validate", responses=_NOT_FOUND)
def validate(
    as_of: AsOfDep,
    kind: Annotated[str, Depends(validate_kind)],
    community: Annotated[str | None, Depends(community_param)],
    settings: GridSettingsDep,
    connection: WriteConnectionDep,
) -> dict[str, Any]:
    """Check the stored cells for every defect of a grid layer; `clean` is true when none.

    Overlaps, gaps, cells outside or straddling their community, buildings cut or in no
    cell, empty cells, invalid geometry, duplicate codes, household balance.
    """
    return validation_report(
        connection, community=community, kind=kind, as_of=as_of, tolerance_m2=settings.tolerance_m2
    )


async def generate_request(request: Request) -> GenerateRequest:
    """Parse and check the body of ``POST /grids/generate`` (422 naming the field).

    Done here rather than by FastAPI's body parameter so that bad input is answered before
    the route's connection is checked out.
    """
    try:
        raw = await request.json()
    except ValueError as exc:
        raise InputError("body", "expected a JSON object") from exc
    try:
        body = GenerateRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = [str(part) for part in first.get("loc", ())]
        raise InputError(location[-1] if location else "body", first["msg"]) from exc
    check_kind(body.kind)
    check_place(community=body.community, subdistrict=body.subdistrict)
    return body


_GENERATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": GenerateRequest.model_json_schema()}},
    }
}


@router.post("/generate", responses=_NOT_FOUND, openapi_extra=_GENERATE_BODY)
def generate(
    body: Annotated[GenerateRequest, Depends(generate_request)],
    settings: GridSettingsDep,
    connection: WriteConnectionDep,
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
    code: CodeDep, kind: KindDep, as_of: AsOfDep, connection: ReadConnectionDep
) -> JSONResponse:
    """One cell (GeoJSON Feature): community, worker (name, role) and counts.

    Counts: buildings, stairwells, households, residents, elderly, and open cases (not
    closed, voided or evaluated).
    """
    return _geojson(cell_detail(connection, code, kind=kind, as_of=as_of))


@router.get("/{code}/worker", responses=_NOT_FOUND)
def get_worker(code: CodeDep, as_of: AsOfDep, connection: ReadConnectionDep) -> dict[str, Any]:
    """Who is responsible for a service cell: its worker (name, role), else its community."""
    return responsible(connection, code, as_of=as_of)
