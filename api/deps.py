"""Request dependencies: settings, database connection, and the principal of every request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine

from gis.db import translate_errors
from gis.settings import ApiSettings


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user name and roles. Until sign-in exists everyone is anonymous."""

    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = False


ANONYMOUS = Principal("anonymous")


async def get_principal(request: Request) -> Principal:
    """Return the principal of ``request``.

    Applied to every route of the app (``FastAPI(dependencies=...)``): access control is added
    here, in one place, when sign-in exists.
    """
    return ANONYMOUS


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
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ReadConnectionDep = Annotated[Connection, Depends(get_read_connection)]
