"""``GET /locate`` (grid, worker, places, nearest stairwell of a point) and address resolution."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.deps import ReadConnectionDep
from api.errors import error_body
from gis.addresses import (
    AddressMatch,
    AmbiguousAddressError,
    UnknownAddressError,
    resolve_address,
)
from gis.errors import InputError
from gis.locate import Location, locate
from gis.settings import CaseSettings

router = APIRouter(tags=["locate"])


async def get_case_settings(request: Request) -> CaseSettings:
    """Return the case settings of the app (read from ``WANGGE_CASES_*`` once per app)."""
    settings = getattr(request.app.state, "case_settings", None)
    if not isinstance(settings, CaseSettings):
        settings = CaseSettings()
        request.app.state.case_settings = settings
    return settings


CaseSettingsDep = Annotated[CaseSettings, Depends(get_case_settings)]

_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad input; the body names the parameter."}
}


def address_error_response(exc: InputError) -> JSONResponse:
    """Answer 422 for a bad address, with the candidates or suggestions when there are any."""
    body: dict[str, Any] = error_body(exc)
    if isinstance(exc, AmbiguousAddressError):
        body["candidates"] = [{**_match_dict(c), "label": c.label} for c in exc.candidates]
    if isinstance(exc, UnknownAddressError):
        body["suggestions"] = exc.suggestions
    return JSONResponse(body, status_code=422)


def _match_dict(match: AddressMatch) -> dict[str, Any]:
    return {
        "community_id": match.community_id,
        "community_name": match.community_name,
        "building_id": match.building_id,
        "building_number": match.building_number,
        "unit_no": match.unit_no,
        "stairwell_id": match.stairwell_id,
        "lon": match.lon,
        "lat": match.lat,
    }


@router.get("/locate", response_model=Location, responses=_BAD_INPUT)
def locate_point(
    connection: ReadConnectionDep,
    settings: CaseSettingsDep,
    lon: Annotated[str, Query(description="Longitude in degrees, in `crs`.")],
    lat: Annotated[str, Query(description="Latitude in degrees, in `crs`.")],
    crs: Annotated[str, Query(description="wgs84 (default), gcj02 (Amap/WeChat) or bd09.")] = (
        "wgs84"
    ),
) -> Location:
    """Locate a point: grid, worker, places, nearest building/stairwell, boundary flags.

    The grid cell is the lowest code among those covering the point (shared boundary); the
    nearest building and stairwell come with straight distances in metres; ``near_boundary``
    names another cell within the confirmation distance; ``inside_managed_area`` is false
    outside every cell.

    422 names ``lon``/``lat`` (non-numeric, NaN, out of range, or swapped: the given order lies
    outside every grid and the swapped order inside one) or ``crs``.
    """
    return locate(connection, lon, lat, crs=crs, near_boundary_m=settings.near_boundary_m)


@router.get(
    "/addresses/resolve",
    responses={
        422: {
            "description": "Empty, unknown (with `suggestions`) or ambiguous (with"
            " `candidates`) address."
        }
    },
)
def resolve(
    connection: ReadConnectionDep,
    q: Annotated[str, Query(description="Address such as 八角北路社区 12号楼3单元.")],
) -> Any:
    """Resolve an address text to its community, building, stairwell and WGS84 point."""
    try:
        match = resolve_address(connection, q)
    except InputError as exc:
        return address_error_response(exc)
    return {**_match_dict(match), "label": match.label}
