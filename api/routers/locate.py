"""``GET /locate`` (grid, worker, places, nearest stairwell of a point) and address resolution."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine

from api.deps import ReadConnectionDep, get_read_connection
from api.errors import error_body
from gis.addresses import (
    AddressMatch,
    AmbiguousAddressError,
    UnknownAddressError,
    resolve_address,
)
from gis.errors import DatabaseUnavailableError, InputError
from gis.locate import Location, locate, locate_json_async
from gis.settings import CaseSettings

router = APIRouter(tags=["locate"])


def case_settings(request: Request) -> CaseSettings:
    """Return the case settings of the app (read from ``WANGGE_CASES_*`` once per app)."""
    settings = getattr(request.app.state, "case_settings", None)
    if not isinstance(settings, CaseSettings):
        settings = CaseSettings()
        request.app.state.case_settings = settings
    return settings


async def get_case_settings(request: Request) -> CaseSettings:
    """Dependency: the case settings of the app (see :func:`case_settings`)."""
    return case_settings(request)


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


class LocatePool:
    """Async psycopg connections (autocommit) for ``GET /locate``, opened on demand.

    One per app and event loop (so one per uvicorn worker). ``/locate`` is the hottest read of
    the service: served on the event loop over these connections, a request skips the thread
    pool hops, the pool's liveness ping and SQLAlchemy's per-statement work, and its statement
    is prepared once per connection. At most ``size`` connections are open; a request waits up
    to ``timeout`` seconds for one (then 503), and a connection that failed is dropped.
    """

    def __init__(self, dsn: str, *, size: int, timeout: float = 30.0) -> None:
        self.dsn = dsn
        self.size = size
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        self._opened = 0

    async def acquire(self) -> psycopg.AsyncConnection[Any]:
        """Return an idle connection, a new one while fewer than ``size`` are open, or wait."""
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            if self._opened < self.size:
                self._opened += 1
                try:
                    return await psycopg.AsyncConnection.connect(
                        self.dsn, autocommit=True, connect_timeout=int(self.timeout)
                    )
                except BaseException:
                    self._opened -= 1
                    raise
            async with asyncio.timeout(self.timeout):
                return await self._idle.get()
        except (psycopg.OperationalError, TimeoutError) as exc:
            msg = f"no database connection for /locate: {exc or 'timed out'}"
            raise DatabaseUnavailableError(msg) from exc

    async def release(self, connection: psycopg.AsyncConnection[Any], *, broken: bool) -> None:
        """Give ``connection`` back, or close and forget it when it failed."""
        if (
            broken
            or connection.closed
            or connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ):
            self._opened -= 1
            await connection.close()
        else:
            self._idle.put_nowait(connection)


def _locate_pool(request: Request) -> LocatePool:
    pool = getattr(request.app.state, "locate_pool", None)
    if not isinstance(pool, LocatePool) or pool.loop is not asyncio.get_running_loop():
        engine: Engine = request.app.state.engine
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        # As many connections as the app's engine pool keeps (WANGGE_POOL_SIZE).
        pool = LocatePool(dsn, size=request.app.state.settings.database.pool_size)
        request.app.state.locate_pool = pool
    return pool


def _override_connection(request: Request) -> Connection | None:
    """Return the replacement of the read connection (``dependency_overrides``), if any."""
    override = request.app.dependency_overrides.get(get_read_connection)
    if override is None:
        return None
    value: Any = override()
    connection = value if isinstance(value, Connection) else next(iter(value))
    if not isinstance(connection, Connection):
        msg = f"the read connection override gave {type(connection).__name__}, not a Connection"
        raise TypeError(msg)
    return connection


@router.get("/locate", response_model=Location, responses=_BAD_INPUT)
async def locate_point(
    request: Request,
    lon: Annotated[str, Query(description="Longitude in degrees, in `crs`.")],
    lat: Annotated[str, Query(description="Latitude in degrees, in `crs`.")],
    crs: Annotated[str, Query(description="wgs84 (default), gcj02 (Amap/WeChat) or bd09.")] = (
        "wgs84"
    ),
) -> Response:
    """Locate a point: grid, worker, places, nearest building/stairwell, boundary flags.

    The grid cell is the lowest code among those covering the point (shared boundary); the
    nearest building and stairwell come with straight distances in metres; ``near_boundary``
    names another cell within the confirmation distance; ``inside_managed_area`` is false
    outside every cell.

    422 names ``lon``/``lat`` (non-numeric, NaN, out of range, or swapped: the given order lies
    outside every grid and the swapped order inside one) or ``crs``.
    """
    # Read here rather than as a dependency: each dependency costs the hottest route time.
    near_m = case_settings(request).near_boundary_m
    replaced = _override_connection(request)
    if replaced is not None:
        location = await run_in_threadpool(
            lambda: locate(replaced, lon, lat, crs=crs, near_boundary_m=near_m)
        )
        body = json.dumps(dataclasses.asdict(location), ensure_ascii=False, allow_nan=False)
        return Response(body, media_type="application/json")
    pool = _locate_pool(request)
    connection = await pool.acquire()
    broken = True
    try:
        # The JSON text PostgreSQL wrote: the answer is neither rebuilt nor validated again.
        body = await locate_json_async(connection, lon, lat, crs=crs, near_boundary_m=near_m)
        broken = False
    except InputError:
        broken = False
        raise
    except psycopg.OperationalError as exc:
        msg = f"database connection lost: {exc}"
        raise DatabaseUnavailableError(msg) from exc
    finally:
        await pool.release(connection, broken=broken)
    return Response(body, media_type="application/json")


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
