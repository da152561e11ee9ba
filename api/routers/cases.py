"""Case reporting: report, move the pin, import in batches, list as GeoJSON.

``POST /cases``, ``POST /cases/{id}/location``, ``POST /cases/batch``, ``GET /cases``.

Routes validate and pass on; :mod:`gis.cases.reporting` owns every query. Reporter contact is
accepted here and never leaves through ``GET /cases``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from api.deps import ApiSettingsDep, EngineDep, PrincipalDep, ReadConnectionDep
from api.errors import error_body
from api.routers.locate import CaseSettingsDep, address_error_response
from gis.addresses import AmbiguousAddressError, UnknownAddressError
from gis.cases.overdue import overdue_cases
from gis.cases.reporting import (
    BatchReport,
    BatchTooLargeError,
    CaseAssignment,
    CaseReport,
    import_cases_batch,
    list_cases,
    move_pin,
    report_case,
)
from gis.db import translate_errors
from gis.errors import InputError

router = APIRouter(tags=["cases"])

GEOJSON = "application/geo+json"


def get_write_connection(engine: EngineDep) -> Iterator[Connection]:
    """Yield a connection in a transaction committed when the route succeeds."""
    with translate_errors(), engine.begin() as connection:
        yield connection


def get_batch_connection(engine: EngineDep) -> Iterator[Connection]:
    """Yield a connection outside any transaction: a batch commits chunk by chunk."""
    with translate_errors(), engine.connect() as connection:
        yield connection


# scope="function": the transaction commits before the response is sent, so a case is never
# answered 201 and then lost to a failed commit.
WriteConnectionDep = Annotated[Connection, Depends(get_write_connection, scope="function")]
BatchConnectionDep = Annotated[Connection, Depends(get_batch_connection)]


class Reporter(BaseModel):
    """Who reported (personal data: seen by staff handling the case only)."""

    name: str | None = None
    phone: str | None = None


class CaseIn(BaseModel):
    """A reported case: a location by ``lon``/``lat`` (+ ``crs``) or by ``address``."""

    category: str = Field(description="Small-class code of the category tree, e.g. E0103.")
    lon: float | str | None = Field(default=None, description="Degrees, in `crs`.")
    lat: float | str | None = Field(default=None, description="Degrees, in `crs`.")
    crs: str = Field(default="wgs84", description="wgs84, gcj02 (Amap/WeChat) or bd09.")
    address: str | None = Field(default=None, description="e.g. 八角北路社区 12号楼3单元")
    description: str | None = None
    photo_urls: list[str] = Field(default_factory=list)
    reporter: Reporter | None = None
    external_id: str | None = Field(default=None, description="Id in the sending system.")


class ReportOut(BaseModel):
    """The stored case with its assignment and the open cases it may duplicate."""

    case: CaseAssignment
    created: bool
    possible_duplicates: list[CaseAssignment]


class PinMove(BaseModel):
    """A new point for a case and why it moves."""

    lon: float | str
    lat: float | str
    crs: str = "wgs84"
    reason: str = Field(description="Mandatory: why the pin moves.")


_ADDRESS_ERRORS = (AmbiguousAddressError, UnknownAddressError)


@router.post(
    "/cases",
    response_model=ReportOut,
    status_code=201,
    responses={
        200: {"model": ReportOut, "description": "A case with this external_id exists."},
        422: {"description": "Bad input; the body names the parameter (and address matches)."},
    },
)
def post_case(
    body: CaseIn,
    connection: WriteConnectionDep,
    settings: CaseSettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=200,
            description="Retries with the same key answer the first case (used when the body "
            "has no external_id; keys are per user).",
        ),
    ] = None,
) -> ReportOut | JSONResponse:
    """Report a case: stored with its grid, worker, stairwell and flags (201).

    A case outside every grid is stored, flagged and routed to the subdistrict. The same
    ``external_id`` (or ``Idempotency-Key`` header) again answers the existing case with 200
    and stores nothing.
    """
    external_id = body.external_id
    if external_id is None and idempotency_key:
        external_id = f"idempotency:{principal.name}:{idempotency_key}"
    report = CaseReport(
        category=body.category,
        lon=body.lon,
        lat=body.lat,
        crs=body.crs,
        address=body.address,
        description=body.description,
        photo_urls=tuple(body.photo_urls),
        reporter_name=None if body.reporter is None else body.reporter.name,
        reporter_phone=None if body.reporter is None else body.reporter.phone,
        external_id=external_id,
    )
    try:
        answer = report_case(connection, report, settings=settings)
    except _ADDRESS_ERRORS as exc:
        return address_error_response(exc)
    out = ReportOut(
        case=answer.case, created=answer.created, possible_duplicates=answer.possible_duplicates
    )
    if not answer.created:
        return JSONResponse(out.model_dump(mode="json"), status_code=200)
    return out


@router.post(
    "/cases/{case_id}/location",
    response_model=CaseAssignment,
    responses={404: {"description": "No such case."}, 422: {"description": "Bad input."}},
)
def post_location(
    case_id: Annotated[int, Path(ge=1)],
    body: PinMove,
    connection: WriteConnectionDep,
    principal: PrincipalDep,
    settings: CaseSettingsDep,
) -> CaseAssignment:
    """Move a case's pin: re-assign it and record who moved it, when and why."""
    return move_pin(
        connection,
        case_id,
        body.lon,
        body.lat,
        crs=body.crs,
        reason=body.reason,
        actor=principal.name,
        settings=settings,
    )


def _batch_body(report: BatchReport) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "stored": report.stored,
        "already_stored": report.already_stored,
        "chunks": report.chunks,
        "rejected": [asdict(r) for r in report.rejected],
    }


_FORMATS = {"text/csv": "csv", "application/geo+json": "geojson", "application/json": "geojson"}


async def read_batch_body(
    request: Request, settings: CaseSettingsDep
) -> bytes | BatchTooLargeError:
    """Read the request body, stopping as soon as it exceeds ``batch_max_bytes``."""
    limit = settings.batch_max_bytes
    too_large = BatchTooLargeError(f"the body exceeds the batch limit of {limit:,} bytes", limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            return too_large
        pieces.append(piece)
    return b"".join(pieces)


@router.post(
    "/cases/batch",
    responses={
        200: {"description": "Rows stored, already stored and rejected (row, field, reason)."},
        413: {"description": "The batch exceeds the configured limit (named in the body)."},
        422: {"description": "Unreadable file or missing columns."},
    },
)
def post_batch(
    body: Annotated[bytes | BatchTooLargeError, Depends(read_batch_body)],
    request: Request,
    connection: BatchConnectionDep,
    settings: CaseSettingsDep,
    crs: Annotated[str, Query(description="System of rows without a crs value.")] = "wgs84",
) -> JSONResponse:
    """Import a CSV (``text/csv``) or GeoJSON (``application/geo+json``) body of cases.

    Idempotent on ``external_id``: posting the same batch again stores nothing twice. Rows are
    stored in chunks, each committed on its own; rejected rows come back with row number,
    field and reason.
    """
    if isinstance(body, BatchTooLargeError):
        return _too_large(body)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        report = import_cases_batch(
            connection, body, fmt=_FORMATS.get(content_type), crs=crs, settings=settings
        )
    except BatchTooLargeError as exc:
        return _too_large(exc)
    return JSONResponse(_batch_body(report))


def _too_large(exc: BatchTooLargeError) -> JSONResponse:
    return JSONResponse({**error_body(exc), "limit": exc.limit}, status_code=413)


@router.get(
    "/cases",
    response_class=Response,
    responses={
        200: {"content": {GEOJSON: {}}, "description": "A page of cases (no reporter contact)."},
        422: {"description": "Bad filter; the body names the parameter."},
    },
)
def get_cases(
    connection: ReadConnectionDep,
    api: ApiSettingsDep,
    principal: PrincipalDep,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84).")] = None,
    grid: Annotated[str | None, Query(description="15-digit grid code.")] = None,
    community: Annotated[str | None, Query(description="12-digit community code.")] = None,
    category: Annotated[str | None, Query(description="Small-class code.")] = None,
    status: Annotated[str | None, Query(description="Case state.")] = None,
    since: Annotated[
        datetime | None, Query(description="Reported at or after (with zone).")
    ] = None,
    until: Annotated[datetime | None, Query(description="Reported before (with zone).")] = None,
    limit: Annotated[int, Query(description="Page size.")] = 100,
    offset: Annotated[int, Query(description="Cases skipped (ordered by id).")] = 0,
    overdue: Annotated[
        bool, Query(description="Only open cases past their deadline, most overdue first.")
    ] = False,
) -> Response:
    """Return cases as GeoJSON, ordered by id, one page at a time.

    With ``overdue=true``: the open cases past their deadline now, most overdue first, each
    with its deadline and time used and left (``gis.cases.overdue``).
    """
    if bbox is not None and not bbox.strip():
        raise InputError("bbox", "must not be empty: give minlon,minlat,maxlon,maxlat")
    if overdue:
        late = overdue_cases(
            connection,
            now=datetime.now(UTC),
            bbox=bbox,
            grid=grid or None,
            community=community or None,
            category=category or None,
            status=status or None,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            max_limit=api.layer_limit_max,
            principal=principal,
        )
        return Response(content=late, media_type=GEOJSON)
    body = list_cases(
        connection,
        bbox=bbox,
        grid=grid or None,
        community=community or None,
        category=category or None,
        status=status or None,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        max_limit=api.layer_limit_max,
        principal=principal,
    )
    return Response(content=body, media_type=GEOJSON)
