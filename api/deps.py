"""Request dependencies: settings, database connection, and the principal of every request.

``Principal`` and the scope helpers live in :mod:`gis.auth` (re-exported here): a route asks
``principal.grid_ids`` or :func:`gis.auth.grid_scope_sql` to filter in SQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine

from api.access import OPTIONAL_TOKEN, route_rule, route_template
from gis.auth import (
    HOUSEHOLD_ROLES,
    UNRESTRICTED,
    AuthenticationError,
    authenticate_token,
    hash_token,
    require_roles,
)
from gis.auth import (
    Principal as Principal,
)
from gis.db import translate_errors
from gis.settings import ApiSettings

# Callers of public routes (health, map page shell, catalogue): no roles, nothing personal.
PUBLIC = Principal("public")
# Kept for importers of the earlier name.
ANONYMOUS = PUBLIC


_FORM = "application/x-www-form-urlencoded"


async def _credentials(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    # Open311 GeoReport v2 clients send a reporter token as ``api_key``, in the query or as a
    # form field of POST requests (the parsed form is cached on the request for the route).
    key = request.query_params.get("api_key")
    if not key and request.headers.get("content-type", "").startswith(_FORM):
        # body() caches the bytes, so the route reads the same body afterwards.
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        key = form.get("api_key", [""])[0]
    return key or None


def _authenticate(engine: Engine, token: str) -> Principal:
    with translate_errors(), engine.connect() as connection:
        return authenticate_token(connection, token)


async def _cached_authentication(request: Request, token: str, ttl: float) -> Principal:
    # Process-local and short-lived: spares the pool checkout and thread hop of repeated
    # requests (most of authentication's cost); a revoked or expired token is refused once
    # its entry is older than ``ttl`` seconds. Only successes are cached.
    cache: dict[str, tuple[float, Principal]] | None = getattr(
        request.app.state, "auth_cache", None
    )
    if cache is None:
        cache = {}
        request.app.state.auth_cache = cache
    key = hash_token(token)
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    engine: Engine = request.app.state.engine
    principal = await run_in_threadpool(_authenticate, engine, token)
    if ttl > 0:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = (now, principal)
    return principal


_CACHE_MAX = 10_000


async def get_principal(request: Request) -> Principal:
    """Return the principal of ``request``, enforcing the route's rule of :data:`ACCESS`.

    Applied to every route of the app (``FastAPI(dependencies=...)``), so access is decided in
    one place. With ``auth_required`` off every request is the unrestricted anonymous
    principal. Otherwise a public route needs nothing; any other needs a valid bearer token
    (401 when missing, forged, expired or revoked) of an allowed role (403 otherwise).

    The token lookup is one indexed query on a pooled connection, run in the thread pool; a
    database that is away answers 503.
    """
    settings: ApiSettings = request.app.state.settings.api
    if not settings.auth_required:
        principal = UNRESTRICTED
    else:
        path = route_template(request.scope) or request.url.path
        rule = route_rule(request.method, path)
        token = await _credentials(request)
        if rule is None and (token is None or (request.method, path) not in OPTIONAL_TOKEN):
            return PUBLIC
        if token is None:
            msg = "authentication required: send Authorization: Bearer <token>"
            raise AuthenticationError(msg)
        principal = await _cached_authentication(request, token, settings.auth_cache_seconds)
        if rule is not None:
            require_roles(principal, rule)
    request.state.principal = principal
    return principal


def require(*roles: str) -> Any:
    """Return a dependency admitting only principals holding one of ``roles`` (else 403).

    For routes whose rule depends on a parameter (the household layer): the route-level rule
    of :data:`ACCESS` has already admitted the caller, this narrows it.
    """
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        require_roles(principal, allowed)
        return principal

    return Depends(dependency)


async def get_api_settings(request: Request) -> ApiSettings:
    """Return the API settings the app was created with."""
    settings: ApiSettings = request.app.state.settings.api
    return settings


async def get_engine(request: Request) -> Engine:
    """Return the engine opened by the app's lifespan."""
    engine: Engine = request.app.state.engine
    return engine


def get_read_connection(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Connection]:
    """Yield a pooled connection for reading; errors meaning 'no database' become a 503.

    The connection is in autocommit mode: a read needs no transaction, and this spares the
    ``BEGIN`` and ``ROLLBACK`` round trips of every request. Routes that write get their own
    transactional dependency.

    Synchronous (FastAPI runs it in the thread pool): checking a connection out may block.
    The dependencies above are ``async`` because they never block, which spares each request
    thread hops.
    """
    with translate_errors(), engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


PrincipalDep = Annotated[Principal, Depends(get_principal)]
HouseholdPrincipalDep = Annotated[Principal, require(*HOUSEHOLD_ROLES)]
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ReadConnectionDep = Annotated[Connection, Depends(get_read_connection)]
