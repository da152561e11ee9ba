"""``/circles``: the 15-minute service circle (coverage reports, point queries, display shapes).

Routes validate and pass parameters to :mod:`gis.circles_store`, which owns every query.
Coverage figures are walking distances on the network stored by ``wangge circles compute``;
isochrone shapes are for display only.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import ReadConnectionDep
from gis.circles import CircleSettings
from gis.circles_store import (
    AreaCache,
    coverage_report,
    facility_point,
    isochrone_shapes,
    missing_report,
    reachable_at,
)
from gis.coords import to_wgs84
from gis.errors import InputError

router = APIRouter(prefix="/circles", tags=["circles"])

_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad input; the body names the parameter."}
}


async def get_circle_settings(request: Request) -> CircleSettings:
    """Return the circle settings of the app (read from ``WANGGE_CIRCLE_*`` once per app)."""
    settings = getattr(request.app.state, "circle_settings", None)
    if not isinstance(settings, CircleSettings):
        settings = CircleSettings()
        request.app.state.circle_settings = settings
    return settings


async def get_area_cache(request: Request) -> AreaCache:
    """Return the app's cache of loaded areas (networks are built once per stored area)."""
    cache = getattr(request.app.state, "circle_areas", None)
    if not isinstance(cache, AreaCache):
        cache = AreaCache()
        request.app.state.circle_areas = cache
    return cache


CircleSettingsDep = Annotated[CircleSettings, Depends(get_circle_settings)]
AreaCacheDep = Annotated[AreaCache, Depends(get_area_cache)]
Lon = Annotated[str | None, Query(description="Longitude in degrees, in `crs`.")]
Lat = Annotated[str | None, Query(description="Latitude in degrees, in `crs`.")]
Crs = Annotated[str, Query(description="wgs84 (default), gcj02 (Amap/WeChat) or bd09.")]
Group = Annotated[str, Query(description="Walking group: adult or elderly (configured).")]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.to_dict(orient="records")
    return [
        {str(k): None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]


@router.get("/coverage", responses=_BAD_INPUT)
def coverage(
    connection: ReadConnectionDep,
    settings: CircleSettingsDep,
    level: Annotated[int | None, Query(description="Level in minutes (5, 10, 15).")] = None,
    type: Annotated[str | None, Query(description="One facility type.")] = None,
    group: Annotated[
        str, Query(description="standard (GB 50180 radius) or a walking group.")
    ] = "standard",
    by: Annotated[str, Query(description="grid, community or subdistrict.")] = "grid",
    area_id: Annotated[int | None, Query(description="One computed area.")] = None,
    format: Annotated[str, Query(description="json or csv.")] = "json",
) -> Any:
    """Share of households, residents and elderly within each level of each required type.

    Without `type`: the types required at each level and `all_required` (every one of
    them). Household totals of each type add up to the stairwell table.
    """
    if format not in ("json", "csv"):
        raise InputError("format", f"unknown format {format!r}; json or csv")
    frame = coverage_report(
        connection, level=level, type=type, group=group, by=by, area_id=area_id, settings=settings
    )
    if format == "csv":
        return Response(
            frame.to_csv(index=False),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="coverage.csv"'},
        )
    return {"by": by, "group": group, "rows": _records(frame)}


@router.get("/missing", responses=_BAD_INPUT)
def missing(
    connection: ReadConnectionDep,
    settings: CircleSettingsDep,
    level: Annotated[int, Query(description="Level in minutes.")] = 15,
    group: Group = "standard",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 20,
    area_id: Annotated[int | None, Query(description="One computed area.")] = None,
) -> dict[str, Any]:
    """List the stairwells missing the most facility types required at `level`."""
    frame = missing_report(
        connection, level=level, group=group, limit=limit, area_id=area_id, settings=settings
    )
    return {"level": level, "group": group, "rows": _records(frame)}


@router.get("/at", responses=_BAD_INPUT)
def at(
    connection: ReadConnectionDep,
    settings: CircleSettingsDep,
    cache: AreaCacheDep,
    lon: Lon = None,
    lat: Lat = None,
    crs: Crs = "wgs84",
    group: Group = "adult",
) -> dict[str, Any]:
    """List the facilities within walking reach of a point, per level, nearest first."""
    x, y = _point(lon, lat, crs)
    inputs = cache.get(connection, x, y, settings=settings)
    return {"lon": x, "lat": y, **reachable_at(inputs, x, y, group=group)}


@router.get("/isochrone", responses=_BAD_INPUT)
def isochrone(
    connection: ReadConnectionDep,
    settings: CircleSettingsDep,
    cache: AreaCacheDep,
    facility_id: Annotated[int | None, Query(description="Draw around this facility.")] = None,
    lon: Lon = None,
    lat: Lat = None,
    crs: Crs = "wgs84",
    minutes: Annotated[list[int] | None, Query(description="Walking minutes, repeatable.")] = None,
    group: Group = "adult",
) -> JSONResponse:
    """Display-only shapes of the streets reached within each number of minutes (GeoJSON)."""
    if facility_id is not None:
        x, y = facility_point(connection, facility_id)
    elif lon is None and lat is None:
        raise InputError("facility_id", "give facility_id, or lon and lat")
    else:
        x, y = _point(lon, lat, crs)
    inputs = cache.get(connection, x, y, settings=settings)
    wanted = minutes or sorted(settings.standard_radius_m)
    body = isochrone_shapes(inputs, x, y, minutes=wanted, group=group)
    return JSONResponse(body, media_type="application/geo+json")


def _point(lon: str | None, lat: str | None, crs: str) -> tuple[float, float]:
    if lon is None:
        raise InputError("lon", "required")
    if lat is None:
        raise InputError("lat", "required")
    x, y = to_wgs84(lon, lat, crs)
    return float(x), float(y)
