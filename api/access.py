"""Who may call which route, and how the service fails: one table, middleware, handlers.

:data:`ACCESS` maps every route (method, path template) to the roles allowed to call it; a
route missing from the table is open to ``admin`` only (fail closed) and the access-matrix test
fails until the table names it. ``None`` marks a public route (no token needed).

:class:`BodySizeLimit` answers 413 naming the limit before a large body reaches a route;
:class:`AuditWrites` records every successful write (who, when, what) in ``audit_log``;
the handlers map authentication errors to 401/403 and any lost database connection to 503.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import (  # the matched route's full path: see route_template
    APIRoute,
    _get_scope_effective_route_context,
    _iter_routes_with_context,
)
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from gis.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Principal,
    audit,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

ALL = frozenset({"admin", "staff", "worker", "department", "planner", "reporter"})
OFFICE = frozenset({"admin", "staff"})
FIELD = frozenset({"admin", "staff", "worker"})
WORKFLOW = frozenset({"admin", "staff", "worker", "department", "reporter"})
ADMIN_ONLY = frozenset({"admin"})

# (method, path template) -> roles allowed; None: public. Finer rules (a worker's grids, the
# household layer, the workflow step a role may take) are applied inside the routes.
ACCESS: dict[tuple[str, str], frozenset[str] | None] = {
    ("GET", "/healthz"): None,
    # The map page shells: public; what they fetch is checked by the route it comes from.
    ("GET", "/"): None,
    ("GET", "/maps/grids/{code}"): None,
    ("GET", "/maps/planner"): None,
    ("GET", "/maps/cases"): None,
    ("GET", "/layers"): None,
    # Non-personal layers are public (the offline map draws them without a token); a token,
    # when sent, is still read (OPTIONAL_TOKEN) so the route can admit household layers.
    ("GET", "/layers/{name}"): None,
    ("GET", "/locate"): ALL,
    ("GET", "/addresses/resolve"): ALL,
    ("POST", "/cases"): ALL - {"planner"},
    ("POST", "/cases/{case_id}/location"): FIELD,
    ("POST", "/cases/batch"): OFFICE,
    # Workers see the cases of their own grids (filtered in SQL); reporters' own cases are not
    # told apart yet, so reporters are refused.
    ("GET", "/cases"): FIELD,
    ("GET", "/cases/overdue"): OFFICE,
    ("GET", "/cases/{case_id}"): OFFICE | {"department"},
    ("POST", "/cases/{case_id}/transitions"): WORKFLOW,
    # Aggregates: no person in them.
    ("GET", "/stats/indicators"): OFFICE | {"planner"},
    # Siting answers aggregates and stairwell ids only: planners and the office.
    ("POST", "/siting"): OFFICE | {"planner"},
    # Open311 GeoReport v2: discovery, services and requests are public reads (no personal
    # data); posting needs a reporter token as api_key.
    ("GET", "/open311/v2/discovery.json"): None,
    ("GET", "/open311/v2/services.json"): None,
    ("GET", "/open311/v2/services/{service_code}.json"): None,
    ("GET", "/open311/v2/requests.json"): None,
    ("GET", "/open311/v2/requests/{service_request_id}.json"): None,
    ("POST", "/open311/v2/requests.json"): frozenset({"reporter", "staff", "admin"}),
    # Grid cells, their counts and who answers for them: worker names, never phones.
    ("GET", "/grids"): ALL,
    ("GET", "/grids/{code}"): ALL,
    ("GET", "/grids/{code}/worker"): ALL,
    # Validation reports name buildings; generating replaces the current cells.
    ("GET", "/grids/validate"): OFFICE | {"planner"},
    ("POST", "/grids/generate"): OFFICE,
    # Walking-circle coverage: shares per place and facilities near a point (no person).
    ("GET", "/circles/coverage"): ALL,
    ("GET", "/circles/at"): ALL,
    ("GET", "/circles/isochrone"): ALL,
    # Stairwell-level ranking (no household counts): the office, workers and planners.
    ("GET", "/circles/missing"): FIELD | {"planner"},
}


# Public routes that still authenticate a token when one is sent (the route decides).
OPTIONAL_TOKEN = frozenset({("GET", "/layers/{name}")})


def route_template(scope: Scope) -> str | None:
    """Return the full path template of the route a request matched (prefix included).

    FastAPI keeps routers included lazily: ``scope["route"]`` is the router's own route, whose
    ``path`` lacks the prefix of ``include_router``; the matched context holds the full one.
    """
    context = _get_scope_effective_route_context(scope)
    path = getattr(context, "path", None)
    if isinstance(path, str) and path:
        return path
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Return (method, full path template) of every API route of ``app``, HEAD left out."""
    found: list[tuple[str, str]] = []
    for route, context in _iter_routes_with_context(app.routes):
        if not isinstance(route, APIRoute):
            continue
        path = context.path if context is not None else route.path
        found += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def route_rule(method: str, path: str) -> frozenset[str] | None:
    """Return the roles allowed on a route (None: public); unknown routes are admin-only."""
    return ACCESS.get((method, path), ADMIN_ONLY)


class BodySizeLimit:
    """Pure ASGI middleware: refuse request bodies larger than ``limit`` bytes with a 413.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a chunked
    body is counted as it streams and refused once it passes the limit. Paths in ``exempt``
    (batch imports with their own, larger cap) pass through.
    """

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    def _response(self) -> JSONResponse:
        body = {
            "error": "body_too_large",
            "detail": f"the request body exceeds the limit of {self.limit:,} bytes",
            "limit": self.limit,
        }
        return JSONResponse(body, status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 413 when its body is over the limit."""
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
                if declared.isdigit() and int(declared) > self.limit:
                    await self._response()(scope, receive, send)
                    return
        received = 0
        started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit and not started:
                    # Answer now; the route sees a client that went away and its own
                    # answer (if any) is dropped below.
                    refused = True
                    await self._response()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise


_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditWrites:
    """Pure ASGI middleware: after a successful write, record who, when and what.

    The record names the route template, the path parameters and the status, never the body
    (it may hold personal data). Writing it must not turn an accepted write into an error: a
    failure to record is logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; record it afterwards when it was a successful write."""
        if scope["type"] != "http" or scope.get("method") not in _WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, recording_send)
        if not 200 <= status < 300:
            return
        principal = scope.get("state", {}).get("principal")
        route = scope.get("route")
        engine = getattr(scope["app"].state, "engine", None)
        if not isinstance(principal, Principal) or route is None or engine is None:
            return
        resource = f"{scope['method']} {getattr(route, 'path', scope.get('path'))}"
        detail = {"path_params": scope.get("path_params", {}), "status": status}
        await anyio.to_thread.run_sync(_record, engine, principal, resource, detail)


def _record(engine: Engine, principal: Principal, resource: str, detail: dict[str, Any]) -> None:
    try:
        with engine.begin() as connection:
            audit(connection, principal, "write", resource, detail)
    except DBAPIError:
        log.exception("audit record of %s by %s could not be written", resource, principal.name)


async def _auth_handler(request: Request, exc: Exception) -> JSONResponse:
    if request.url.path.startswith("/open311/"):
        # GeoReport v2 clients read errors as a list of {code, description}.
        code = 403 if isinstance(exc, PermissionDeniedError) else 401
        return JSONResponse([{"code": code, "description": str(exc)}], status_code=code)
    if isinstance(exc, PermissionDeniedError):
        return JSONResponse({"error": "forbidden", "detail": str(exc)}, status_code=403)
    return JSONResponse(
        {"error": "unauthorized", "detail": str(exc)},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="wangge"'},
    )


async def _database_handler(request: Request, exc: Exception) -> JSONResponse:
    # Routes translate driver errors at their connection; this catches any that slip past.
    assert isinstance(exc, DBAPIError)
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        body = {"error": "database_unavailable", "detail": "PostGIS cannot be reached"}
        return JSONResponse(body, status_code=503)
    log.error("database error", exc_info=exc)
    return JSONResponse({"error": "error", "detail": "internal database error"}, status_code=500)


def install(app: FastAPI, *, max_body_bytes: int, exempt: tuple[str, ...] = ()) -> None:
    """Add the error handlers and middleware of access control and failure behaviour."""
    app.add_exception_handler(AuthenticationError, _auth_handler)
    app.add_exception_handler(PermissionDeniedError, _auth_handler)
    app.add_exception_handler(DBAPIError, _database_handler)
    app.add_middleware(AuditWrites)
    app.add_middleware(BodySizeLimit, limit=max_body_bytes, exempt=exempt)
