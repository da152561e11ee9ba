"""Test fixtures: one throwaway PostGIS per test session, each test in a rolled-back transaction.

With ``WANGGE_TEST_DATABASE_URL`` set (a server where we may create databases), a throwaway
database is created there; otherwise a private cluster is started in a temporary directory with
the same mechanism as ``wangge db start``. No database test is ever skipped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate
from tests.scratch import scratch_database

# Apps built by tests run without access control unless a test asks for it
# (ApiSettings(auth_required=True): tests/test_auth.py, tests/test_access_matrix.py).
os.environ["WANGGE_AUTH_REQUIRED"] = "false"

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a fresh, migrated PostGIS database that lives for the test session."""
    server = os.environ.get("WANGGE_TEST_DATABASE_URL")
    if server:
        with scratch_database(server, "test") as url:
            yield url
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
