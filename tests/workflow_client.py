"""A TestClient of the whole app on the test's rolled-back connection, acting as one principal.

Reads and writes (workflow and Open311 routes) go through the test's ``connection``, so rows
inserted by a test are seen by the API and vanish afterwards. The principal is replaced by a
fixed name and roles, as access control would hand it to the routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy import Connection

from api.app import AppSettings, create_app
from api.deps import get_principal, get_read_connection
from api.routers.workflow import get_workflow_connection
from gis.cases.open311 import Open311Settings
from gis.settings import DatabaseSettings

API_KEY = "test-key-0123456789"


@dataclass(frozen=True)
class Actor:
    """Who calls: a name and roles, as the principal of a request."""

    name: str
    roles: frozenset[str] = field(default_factory=frozenset)


@contextmanager
def client_as(database_url: str, connection: Connection, actor: Actor) -> Iterator[TestClient]:
    """Yield a TestClient whose requests come from ``actor`` and use ``connection``."""
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        open311=Open311Settings(api_keys=f"{API_KEY},second-key"),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_workflow_connection] = lambda: connection
    app.dependency_overrides[get_principal] = lambda: actor
    with TestClient(app) as test_client:
        yield test_client
