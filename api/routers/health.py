"""``GET /healthz``: whether PostGIS answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import EngineDep
from api.schemas import Health
from gis.db import check_database
from gis.errors import DatabaseUnavailableError

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "PostGIS cannot be reached."}},
)
def healthz(engine: EngineDep) -> Health | JSONResponse:
    """Query PostGIS; 200 with its versions, or 503 with the reason it cannot answer."""
    try:
        versions = check_database(engine)
    except DatabaseUnavailableError as exc:
        body = Health(status="unavailable", reason=str(exc))
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return Health(status="ok", **versions)
