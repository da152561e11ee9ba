"""Test fixtures: one throwaway PostGIS per test session, each test in a rolled-back transaction.

With ``WANGGE_TEST_DATABASE_URL`` set (a server where we may create databases), a throwaway
database is created there; otherwise a private cluster is started in a temporary directory with
the same mechanism as ``wangge db start``. No database test is ever skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, make_url
from sqlalchemy.orm import Session

from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate

# Apps built by tests run without access control unless a test asks for it
# (ApiSettings(auth_required=True): tests/test_auth.py, tests/test_access_matrix.py).
os.environ["WANGGE_AUTH_REQUIRED"] = "false"

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def _throwaway_database(server_url: str) -> Iterator[str]:
    url = make_url(server_url)
    name = f"wangge_test_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a fresh, migrated PostGIS database that lives for the test session."""
    server = os.environ.get("WANGGE_TEST_DATABASE_URL")
    if server:
        databases = _throwaway_database(server)
        url = next(databases)
        migrate(url)
        yield url
        databases.close()
        return
    home = Path(tempfile.mkdtemp(prefix="wangge-test-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    cluster.start()
    try:
        migrate(cluster.url())
        yield cluster.url()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=4)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """An ORM session whose commits become savepoints of the rolled-back test transaction."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A skipped test is an untested behaviour: fail the run rather than report green.
    if _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped)} test(s) skipped; wangge runs every test", red=True
        )
