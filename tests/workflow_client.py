"""A TestClient of the whole app on the test's rolled-back connection, acting as one principal.

Reads and writes (workflow and Open311 routes) go through the test's ``connection``, so rows
inserted by a test are seen by the API and vanish afterwards. The principal is replaced by a
fixed name and roles (``gis.auth.Principal``), as access control would hand it to the
routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import Connection

from api.app import AppSettings, create_app
from api.deps import get_principal, get_read_connection
from api.routers.workflow import get_workflow_connection
from gis.auth import Principal
from gis.settings import DatabaseSettings


@contextmanager
def client_as(database_url: str, connection: Connection, actor: Principal) -> Iterator[TestClient]:
    """Yield a TestClient whose requests come from ``actor`` and use ``connection``."""
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_workflow_connection] = lambda: connection
    app.dependency_overrides[get_principal] = lambda: actor
    with TestClient(app) as test_client:
        yield test_client
