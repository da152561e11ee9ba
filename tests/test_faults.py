"""Failure behaviour: the database going away, oversize bodies, backups.

The outage test runs its own PostGIS cluster (not the session's): it is stopped and started
again while cases are posted, and every case answered 201 must be stored exactly once.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from api.app import AppSettings, create_app
from gis.cli import app as cli
from gis.cluster import EmbeddedCluster
from gis.db import migrate
from gis.settings import ApiSettings, DatabaseSettings
from tests.scratch import scratch_database

POSTS = 2_000
STOP_AFTER = 600
CATEGORY = "E0103"


def _case(external_id: str) -> dict[str, object]:
    # Outside every grid: stored, flagged and routed to the subdistrict.
    return {"category": CATEGORY, "lon": -20.5, "lat": -40.5, "external_id": external_id}


@dataclass
class Outage:
    """What the client saw while the cluster bounced, and what the database holds after."""

    statuses: list[tuple[str, int]]
    stopped_at: int
    restarted: bool
    stored: dict[str, int]
    retried: dict[str, int]
    stored_after_retry: dict[str, int]


def _stored(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT external_id, count(*) FROM cases GROUP BY external_id")
            )
            return {str(r[0]): int(r[1]) for r in rows}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    home = Path(tempfile.mkdtemp(prefix="wangge-fault-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    cluster.start()
    try:
        migrate(cluster.url())
        settings = AppSettings(database=DatabaseSettings(database_url=cluster.url(), pool_size=4))
        bounced = threading.Event()

        def bounce() -> None:
            cluster.stop()
            time.sleep(1.0)
            cluster.start()
            bounced.set()

        restarter = threading.Thread(target=bounce)
        statuses: list[tuple[str, int]] = []
        with TestClient(create_app(settings)) as client:
            for i in range(POSTS):
                if i == STOP_AFTER:
                    restarter.start()
                external_id = f"fault-{i}"
                status = client.post("/cases", json=_case(external_id)).status_code
                statuses.append((external_id, status))
                if status != 201:
                    # Refused requests are fast: pace them so the outage spans few posts.
                    time.sleep(0.01)
            restarter.join(timeout=60)
            stored = _stored(cluster.url())
            # A client retries what was refused, with the same external id.
            retried = {
                eid: client.post("/cases", json=_case(eid)).status_code
                for eid, status in statuses
                if status != 201
            }
        yield Outage(
            statuses=statuses,
            stopped_at=STOP_AFTER,
            restarted=bounced.is_set(),
            stored=stored,
            retried=retried,
            stored_after_retry=_stored(cluster.url()),
        )
    finally:
        cluster.destroy()


def test_an_outage_answers_503_never_500(outage: Outage) -> None:
    codes = {status for _, status in outage.statuses}
    assert 503 in codes
    assert codes <= {201, 503}


def test_the_service_recovers_by_itself_after_the_restart(outage: Outage) -> None:
    assert outage.restarted
    last_refused = max(i for i, (_, s) in enumerate(outage.statuses) if s == 503)
    after = [s for _, s in outage.statuses[last_refused + 1 :]]
    assert after
    assert set(after) == {201}


def test_every_case_answered_201_is_stored(outage: Outage) -> None:
    accepted = {eid for eid, status in outage.statuses if status == 201}
    assert accepted <= set(outage.stored)


def test_no_case_is_stored_twice(outage: Outage) -> None:
    assert set(outage.stored.values()) == {1}


def test_retrying_refused_cases_stores_each_once(outage: Outage) -> None:
    assert set(outage.retried.values()) <= {200, 201}
    assert len(outage.stored_after_retry) == POSTS
    assert set(outage.stored_after_retry.values()) == {1}


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://u@127.0.0.1:{port}/x"


@pytest.mark.parametrize("auth_required", [False, True])
def test_a_write_without_database_answers_503(auth_required: bool) -> None:
    settings = AppSettings(
        database=DatabaseSettings(database_url=_closed_port_url()),
        api=ApiSettings(auth_required=auth_required),
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/cases", json=_case("offline"), headers={"Authorization": "Bearer some-token"}
        )
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


@pytest.fixture
def small_bodies(database_url: str) -> Iterator[TestClient]:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(max_body_bytes=1_000),
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_an_oversize_body_answers_413_naming_the_limit(small_bodies: TestClient) -> None:
    body = {**_case("big"), "description": "x" * 2_000}
    response = small_bodies.post("/cases", json=body)
    assert response.status_code == 413
    assert response.json()["limit"] == 1_000
    assert "1,000 bytes" in response.json()["detail"]


def test_an_oversize_streamed_body_answers_413(small_bodies: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"category": "E0103", "description": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}'

    response = small_bodies.post(
        "/cases", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.fixture
def two_databases(database_url: str) -> Iterator[tuple[str, str]]:
    """A migrated database holding one user, and an empty one, on the session's server."""
    with (
        scratch_database(database_url, "backup") as source,
        scratch_database(database_url, "backup", migrated=False) as target,
    ):
        engine = create_engine(source)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO app_user (name, role) VALUES ('kept', 'staff')"))
        engine.dispose()
        yield source, target


def test_a_dump_restores_into_an_empty_database(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    source, target = two_databases
    dump = tmp_path / "wangge.dump"
    runner = CliRunner()
    dumped = runner.invoke(cli, ["db", "dump", str(dump)], env={"WANGGE_DATABASE_URL": source})
    assert dumped.exit_code == 0, dumped.output
    restored = runner.invoke(cli, ["db", "restore", str(dump)], env={"WANGGE_DATABASE_URL": target})
    assert restored.exit_code == 0, restored.output
    engine = create_engine(target)
    with engine.connect() as connection:
        users = connection.execute(text("SELECT name, role FROM app_user")).all()
    engine.dispose()
    assert [tuple(u) for u in users] == [("kept", "staff")]


@pytest.fixture
def scratch_client(database_url: str) -> Iterator[tuple[TestClient, str]]:
    """An app on a scratch database: its POSTs commit without touching the session database."""
    with scratch_database(database_url, "scratch") as url:
        settings = AppSettings(database=DatabaseSettings(database_url=url, pool_size=2))
        with TestClient(create_app(settings)) as client:
            yield client, url


def test_a_retry_with_the_same_idempotency_key_answers_the_first_case(
    scratch_client: tuple[TestClient, str],
) -> None:
    client, url = scratch_client
    body = {"category": CATEGORY, "lon": -20.5, "lat": -40.5}
    headers = {"Idempotency-Key": "retry-42"}
    first = client.post("/cases", json=body, headers=headers)
    again = client.post("/cases", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["case"]["id"] == first.json()["case"]["id"]
    assert sum(_stored(url).values()) == 1


def test_a_case_whose_commit_fails_is_never_answered_201(
    scratch_client: tuple[TestClient, str],
) -> None:
    client, url = scratch_client
    engine = create_engine(url)
    with engine.begin() as connection:
        # A check deferred to COMMIT: the insert succeeds, the commit fails.
        connection.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$; "
                "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON cases "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    engine.dispose()
    response = client.post("/cases", json=_case("refused"))
    assert response.status_code != 201
    assert _stored(url) == {}
