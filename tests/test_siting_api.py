"""``POST /siting`` against the synthetic subdistrict (see tests/test_siting_db_inputs.py).

The app's connection dependency is overridden with the test's rolled-back connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from api.app import AppSettings, create_app
from api.deps import ANONYMOUS, get_principal, get_read_connection
from api.routers.siting import SitingAnswer
from gis.settings import ApiSettings, DatabaseSettings
from tests.principals import People, people
from tests.test_circles_store import CODE, insert_facility, lonlat
from tests.test_siting_db_inputs import make_town


@pytest.fixture
def town(connection: Connection) -> dict[str, Any]:
    return make_town(connection)


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_principal] = lambda: ANONYMOUS
    with TestClient(app) as test_client:
        yield test_client


def body(town: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "problem": "mclp",
        "facility_type": "elderly_day_care",
        "k": 2,
        "service_distance_m": 300,
        "candidates": {"node_spacing_m": 150},
        "area": {"bbox": list(town["area"].bounds)},
    }
    out.update(changes)
    return out


def post(client: TestClient, payload: dict[str, Any]) -> Any:
    return client.post("/siting", json=payload)


def stairwell_ids(connection: Connection) -> set[int]:
    rows = connection.execute(
        text(
            "SELECT s.id FROM stairwell s JOIN building b ON b.id = s.building_id "
            "WHERE b.source_id LIKE :p"
        ),
        {"p": f"{CODE}-%"},
    ).scalars()
    return set(rows)


def test_mclp_opens_k_sites_and_proves_them_optimal(
    client: TestClient, town: dict[str, Any]
) -> None:
    answer = post(client, body(town))
    assert answer.status_code == 200
    result = answer.json()
    SitingAnswer.model_validate(result)
    assert len(result["sites"]) == 2
    assert result["status"] == "optimal"
    assert result["gap"] == pytest.approx(0.0, abs=1e-6)
    assert result["method"] == "network"
    assert result["objective"] == pytest.approx(result["coverage"]["total"]["covered_after"])


def test_covered_before_and_after_per_grid_add_up_to_the_totals(
    client: TestClient, town: dict[str, Any]
) -> None:
    result = post(client, body(town)).json()
    total = result["coverage"]["total"]
    for key in ("by_grid", "by_community"):
        rows = result["coverage"][key]
        assert sum(r["demand"] for r in rows) == pytest.approx(total["demand"])
        assert sum(r["covered_before"] for r in rows) == pytest.approx(total["covered_before"])
        assert sum(r["covered_after"] for r in rows) == pytest.approx(total["covered_after"])


def test_existing_centre_is_fixed_and_counted_before(
    client: TestClient, connection: Connection, town: dict[str, Any]
) -> None:
    fid = insert_facility(connection, "elderly_day_care", 300, 300)
    result = post(client, body(town)).json()
    assert [s["site"] for s in result["existing"]] == [f"facility:{fid}"]
    assert result["coverage"]["total"]["covered_before"] > 0
    assert {f["properties"]["proposed"] for f in result["layer"]["features"]} == {True, False}


def test_capacitated_answer_never_exceeds_a_capacity(
    client: TestClient, town: dict[str, Any]
) -> None:
    result = post(client, body(town, problem="cmclp", capacity=40, k=3)).json()
    assert result["sites"]
    for site in result["sites"] + result["existing"]:
        assert site["served"] <= site["capacity"] + 1e-6
    assert result["coverage"]["total"]["covered_after"] <= 3 * 40 + 1e-6


def test_every_stairwell_gets_one_assignment_and_no_personal_field(
    client: TestClient, connection: Connection, town: dict[str, Any]
) -> None:
    result = post(client, body(town)).json()
    assignments = result["assignments"]
    assert {a["stairwell_id"] for a in assignments} == stairwell_ids(connection)
    assert {tuple(sorted(a)) for a in assignments} == {("distance_m", "site", "stairwell_id")}
    chosen = {s["site"] for s in result["sites"]}
    assert {a["site"] for a in assignments} - {None} <= chosen


def test_pmedian_assigns_each_stairwell_to_its_nearest_open_site(
    client: TestClient, town: dict[str, Any]
) -> None:
    result = post(client, body(town, problem="pmedian", k=3, service_distance_m=None)).json()
    assert len(result["sites"]) == 3
    assert result["coverage"] is None
    served = Counter(a["site"] for a in result["assignments"])
    assert set(served) == {s["site"] for s in result["sites"]}


def test_set_covering_with_minutes_covers_everyone(
    client: TestClient, town: dict[str, Any]
) -> None:
    payload = body(town, problem="lscp", k=None, service_distance_m=None, minutes=10)
    payload["group"] = "elderly"
    result = post(client, payload).json()
    total = result["coverage"]["total"]
    assert total["covered_after"] == pytest.approx(total["demand"])


def test_time_limit_returns_the_best_answer_found_with_its_proven_gap(
    client: TestClient, town: dict[str, Any]
) -> None:
    payload = body(town, k=4, time_limit_s=1e-4, service_distance_m=150)
    payload["candidates"] = {"node_spacing_m": 1e-3}
    result = post(client, payload).json()
    assert result["status"] == "time_limit"
    assert len(result["sites"]) == 4
    assert result["bound"] >= result["objective"] > 0
    assert result["gap"] == pytest.approx(
        (result["bound"] - result["objective"]) / result["objective"]
    )


def test_time_limit_without_any_answer_names_time_limit(
    client: TestClient, town: dict[str, Any]
) -> None:
    payload = body(town, problem="cmclp", capacity=25, k=4, time_limit_s=1e-6)
    payload["candidates"] = {"node_spacing_m": 1e-3}
    answer = post(client, payload)
    assert answer.status_code == 422
    assert answer.json()["parameter"] == "time_limit_s"


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"problem": "pcenter"}, "problem"),
        ({"facility_type": "casino"}, "facility_type"),
        ({"k": 500}, "k"),
        ({"problem": "cmclp", "capacity": -5}, "capacity"),
        ({"area": {"bbox": [10.0, 10.0, 10.01, 10.01]}}, "demand"),
        ({"demand": "pets"}, "demand"),
        ({"service_distance_m": None, "minutes": 5, "group": "runner"}, "group"),
        ({"candidates": {}}, "candidates"),
        ({"area": {}}, "area"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    client: TestClient, town: dict[str, Any], changes: dict[str, Any], parameter: str
) -> None:
    answer = post(client, body(town, **changes))
    assert answer.status_code == 422
    assert answer.json()["parameter"] == parameter


def test_infeasible_covering_names_the_stairwells_no_candidate_reaches(
    client: TestClient, connection: Connection, town: dict[str, Any]
) -> None:
    payload = body(town, problem="lscp", k=None, service_distance_m=120)
    payload["candidates"] = {"points": [list(lonlat(75, 75))]}
    answer = post(client, payload)
    assert answer.status_code == 422
    error = answer.json()
    assert error["parameter"] == "demand"
    named = {int(part) for part in error["detail"].split("(ids ")[1].split(",")[:3]}
    assert named <= stairwell_ids(connection)


def test_unknown_community_is_a_404(client: TestClient, town: dict[str, Any]) -> None:
    answer = post(client, body(town, area={"community": "110108999999"}))
    assert answer.status_code == 404


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[People]:
    with people(engine) as everyone:
        yield everyone


@pytest.fixture
def guarded(database_url: str, connection: Connection) -> Iterator[TestClient]:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


def test_a_planner_may_site(guarded: TestClient, users: People, town: dict[str, Any]) -> None:
    answer = guarded.post("/siting", json=body(town), headers=users.headers("planner"))
    assert answer.status_code == 200


def test_a_reporter_may_not_site(guarded: TestClient, users: People, town: dict[str, Any]) -> None:
    answer = guarded.post("/siting", json=body(town), headers=users.headers("reporter"))
    assert answer.status_code == 403


def test_siting_needs_a_token(guarded: TestClient, town: dict[str, Any]) -> None:
    assert guarded.post("/siting", json=body(town)).status_code == 401
