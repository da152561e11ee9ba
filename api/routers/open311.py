"""Open311 GeoReport v2 (JSON) under ``/open311/v2/``.

``discovery.json``, ``services.json``, ``services/{code}.json``, ``POST requests.json``
(form-encoded, ``api_key`` required), ``GET requests.json``, ``GET requests/{id}.json``.

Errors answer in GeoReport's format, a JSON list of ``{"code", "description"}``: 400 for bad
input (including dates that are not ISO 8601), 401 for a missing ``api_key``, 403 for a wrong
one, 404 for an unknown service or request. Reporter contact is never part of an answer.
:mod:`gis.cases.open311` owns the mapping and the queries.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from api.deps import PrincipalDep, ReadConnectionDep
from api.routers.workflow import WorkflowConnectionDep
from gis.auth import AuthenticationError, Principal, authenticate_token
from gis.cases.open311 import (
    MAX_ID,
    POSTING_ROLES,
    SPECIFICATION,
    Open311Settings,
    get_request,
    list_requests,
    parse_request_query,
    service_definition,
    service_list,
    submit_request,
)
from gis.errors import InputError, NotFoundError

PREFIX = "/open311/v2"
router = APIRouter(prefix=PREFIX, tags=["open311"])


async def get_open311_settings(request: Request) -> Open311Settings:
    """Return the GeoReport settings the app was created with."""
    settings: Open311Settings = request.app.state.settings.open311
    return settings


Open311SettingsDep = Annotated[Open311Settings, Depends(get_open311_settings)]


def open311_error(status_code: int, description: str) -> JSONResponse:
    """Return a GeoReport error answer: a list with one ``{code, description}``."""
    return JSONResponse([{"code": status_code, "description": description}], status_code)


def _bad_input(exc: InputError) -> JSONResponse:
    return open311_error(400, f"{exc.field}: {exc.message}")


@router.get("/discovery.json")
def get_discovery(request: Request, settings: Open311SettingsDep) -> dict[str, Any]:
    """Service discovery: where this GeoReport v2 endpoint lives and what it speaks."""
    base = str(request.url_for("get_services")).rsplit("/", 1)[0]
    return {
        "changeset": "2026-11-22T00:00:00+08:00",
        "contact": settings.contact,
        "key_service": "api_key issued by the command centre on request",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": base,
                "changeset": "2026-11-22T00:00:00+08:00",
                "type": "production",
                "formats": ["application/json"],
            }
        ],
    }


@router.get("/services.json", name="get_services")
def get_services() -> list[dict[str, Any]]:
    """Service list: one service per small class, its big class as ``group``."""
    return service_list()


@router.get("/services/{service_code}.json", response_model=None)
def get_service(service_code: str) -> dict[str, Any] | JSONResponse:
    """Service definition: the filing standard as informational attributes."""
    try:
        return service_definition(service_code)
    except NotFoundError as exc:
        return open311_error(404, str(exc))


def _authorise(
    connection: Connection, form: dict[str, str], principal: Principal, request: Request
) -> JSONResponse | None:
    """Admit a poster by its ``api_key``: a token of a user whose role may report."""
    key = form.get("api_key", "").strip()
    if not key:
        return open311_error(401, "api_key is required to post a service request")
    if principal.authenticated:
        # Access control already authenticated this request's api_key (and its role).
        poster = principal
    else:
        try:
            poster = authenticate_token(connection, key)
        except AuthenticationError:
            return open311_error(403, "api_key is not valid")
    if not poster.has_any(POSTING_ROLES):
        return open311_error(403, f"role {poster.role} may not post service requests")
    # The audit of writes records who posted.
    request.state.principal = poster
    return None


async def read_form(request: Request) -> dict[str, str] | JSONResponse:
    """Read a form-encoded body (query parameters fill fields the body lacks)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = (await request.body()).decode("utf-8", errors="replace")
    if raw and content_type != "application/x-www-form-urlencoded":
        return open311_error(400, "send the request as application/x-www-form-urlencoded")
    form = dict(parse_qsl(raw, keep_blank_values=True))
    for name, value in request.query_params.items():
        form.setdefault(name, value)
    return form


@router.post(
    "/requests.json",
    status_code=201,
    response_model=None,
    responses={
        400: {"description": "Bad input: [{code, description}]."},
        401: {"description": "No api_key."},
        403: {"description": "Wrong api_key."},
    },
)
def post_request(
    request: Request,
    form: Annotated[dict[str, str] | JSONResponse, Depends(read_form)],
    connection: WorkflowConnectionDep,
    principal: PrincipalDep,
) -> list[dict[str, Any]] | JSONResponse:
    """Create a service request from a form-encoded body (``api_key`` required).

    The ``api_key`` is a token of a user whose role may report (reporter, staff, admin).

    Location: ``lat``/``long`` in WGS84 degrees, or ``address_string``. Answers 201 with
    ``[{service_request_id, service_notice, account_id}]``.
    """
    if isinstance(form, JSONResponse):
        return form
    refused = _authorise(connection, form, principal, request)
    if refused is not None:
        return refused
    try:
        with connection.begin_nested():
            return submit_request(connection, form)
    except InputError as exc:
        return _bad_input(exc)


@router.get("/requests.json", response_model=None)
def get_requests(
    connection: ReadConnectionDep,
    settings: Open311SettingsDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,
) -> list[dict[str, Any]] | JSONResponse:
    """Service requests, most recent first: by ids, or filtered (default: last 90 days).

    ``service_request_id``, ``service_code`` and ``status`` (open, closed) take
    comma-separated lists; dates are ISO 8601; at most the first 1,000 answer.
    """
    try:
        query = parse_request_query(
            service_request_id=service_request_id,
            service_code=service_code,
            start_date=start_date,
            end_date=end_date,
            status=status,
            timezone=settings.timezone,
        )
    except InputError as exc:
        return _bad_input(exc)
    return list_requests(
        connection,
        query,
        default_days=settings.default_days,
        limit=settings.max_requests,
        timezone=settings.timezone,
    )


@router.get("/requests/{service_request_id}.json", response_model=None)
def get_one_request(
    service_request_id: str, connection: ReadConnectionDep, settings: Open311SettingsDep
) -> list[dict[str, Any]] | JSONResponse:
    """One service request (as a list of one, as the specification answers)."""
    if not service_request_id.isdigit() or int(service_request_id) > MAX_ID:
        return open311_error(404, f"no service request {service_request_id!r}")
    try:
        return [get_request(connection, int(service_request_id), timezone=settings.timezone)]
    except NotFoundError as exc:
        return open311_error(404, str(exc))
