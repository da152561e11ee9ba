"""Two staff acting on the same case at once, over HTTP, with real committed transactions.

The app runs on its own engine (no connection override), so each request commits or rolls
back on its own, as in production. The case lives in a throwaway database created for this
module, because committed history cannot be deleted (the transition log is append-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import AppSettings, create_app
from api.deps import get_principal
from gis.auth import Principal
from gis.db import make_engine
from gis.settings import DatabaseSettings
from tests.scratch import scratch_database

ROUNDS = 5


@pytest.fixture(scope="module")
def race_url(database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "race") as url:
        yield url


@pytest.fixture(scope="module")
def client(race_url: str) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=race_url)))
    app.dependency_overrides[get_principal] = lambda: Principal("值班员", frozenset({"staff"}))
    with TestClient(app) as test_client:
        yield test_client


def _new_case(race_url: str) -> int:
    engine = make_engine(race_url, pool_size=1)
    try:
        with engine.begin() as connection:
            return int(
                connection.execute(
                    text(
                        "INSERT INTO cases (category_code, geom) VALUES"
                        " ('E0103', ST_Point(116.3, 39.9, 4326)) RETURNING id"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_one_of_two_simultaneous_steps_wins_the_other_gets_409(
    client: TestClient, race_url: str, round_no: int
) -> None:
    case_id = _new_case(race_url)
    start = Barrier(2)
    bodies = [
        {"to_state": "filed", "expected_version": 1},
        {"to_state": "voided", "reason": "重复上报", "expected_version": 1},
    ]

    def act(body: dict[str, object]) -> int:
        start.wait()
        return int(client.post(f"/cases/{case_id}/transitions", json=body).status_code)

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(act, bodies))
    case = client.get(f"/cases/{case_id}").json()
    assert statuses == [200, 409]
    assert case["version"] == 2
    assert len(case["history"]) == 1
    assert case["history"][0]["to_state"] == case["status"]
