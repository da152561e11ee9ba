"""``/locate``, ``/addresses/resolve`` and the case routes over HTTP, against PostGIS.

The app's connection dependencies are overridden with the test's rolled-back ``connection``
(batch chunks become savepoints of it), so everything written vanishes after each test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from api.routers.cases import ReportOut, get_batch_connection, get_write_connection
from gis.coords import wgs84_to_gcj02
from gis.locate import Location
from gis.settings import CaseSettings, DatabaseSettings
from tests.case_town import X0, Y0, D, Town, seed_town

P004 = (X0 + 0.5 * D, Y0 + 0.25 * D)
P002 = (X0 + 1.5 * D, Y0 + 0.5 * D)


@pytest.fixture
def town(connection: Connection) -> Town:
    return seed_town(connection)


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    for dependency in (get_read_connection, get_write_connection, get_batch_connection):
        app.dependency_overrides[dependency] = lambda: connection
    app.state.case_settings = CaseSettings(batch_max_bytes=10_000, batch_max_rows=50)
    with TestClient(app) as test_client:
        yield test_client


def test_locate_answers_grid_worker_and_stairwell(client: TestClient, town: Town) -> None:
    response = client.get("/locate", params={"lon": P002[0], "lat": P002[1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["grid"]["code"] == "110108011001002"
    assert body["grid"]["worker_name"] == "张三"
    assert body["inside_managed_area"] is True


def test_locate_answer_matches_the_response_model(client: TestClient, town: Town) -> None:
    body = client.get("/locate", params={"lon": P004[0], "lat": P004[1]}).json()
    location = TypeAdapter(Location).validate_python(body)
    assert location.stairwell is not None
    assert location.stairwell.id == town.stairwells["north-12-2"]


def test_locate_converts_gcj02(client: TestClient, town: Town) -> None:
    lon, lat = wgs84_to_gcj02(*P004)
    body = client.get("/locate", params={"lon": lon, "lat": lat, "crs": "gcj02"}).json()
    assert body["grid"]["code"] == "110108011001004"


def test_locate_never_shows_the_workers_phone(client: TestClient, town: Town) -> None:
    response = client.get("/locate", params={"lon": P002[0], "lat": P002[1]})
    assert "13800000000" not in response.text


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"lon": "abc", "lat": "39.9"}, "lon"),
        ({"lon": "NaN", "lat": "39.9"}, "lon"),
        ({"lon": "116.3", "lat": "95"}, "lat"),
        ({"lon": "116.3", "lat": "39.9", "crs": "mars"}, "crs"),
        ({"lat": "39.9"}, "lon"),
    ],
)
def test_locate_bad_input_is_422_naming_the_parameter(
    client: TestClient, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/locate", params=params)
    assert response.status_code == 422
    assert response.json()["parameter"] == parameter


def test_locate_swapped_coordinates_is_422_saying_so(client: TestClient, town: Town) -> None:
    response = client.get("/locate", params={"lon": P002[1], "lat": P002[0]})
    assert response.status_code == 422
    assert "swapped" in response.json()["detail"]


def test_address_resolves_over_http(client: TestClient, town: Town) -> None:
    response = client.get("/addresses/resolve", params={"q": "八角北路社区 １２号楼3单元"})
    assert response.status_code == 200
    assert response.json()["stairwell_id"] == town.stairwells["north-12-3"]


def test_ambiguous_address_is_422_with_candidates(client: TestClient, town: Town) -> None:
    response = client.get("/addresses/resolve", params={"q": "12号楼1单元"})
    assert response.status_code == 422
    assert {c["community_name"] for c in response.json()["candidates"]} == {
        "八角北路社区",
        "八角南路社区",
    }


def test_unknown_address_is_422_with_suggestions(client: TestClient, town: Town) -> None:
    response = client.get("/addresses/resolve", params={"q": "八角北路社区 13号楼1单元"})
    assert response.status_code == 422
    assert "八角北路社区 12号楼" in response.json()["suggestions"]


def post_case(client: TestClient, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {"category": "E0103", "lon": P002[0], "lat": P002[1]}
    body.update(fields)
    response = client.post("/cases", json=body)
    return {"status": response.status_code, "body": response.json()}


def test_post_case_is_201_with_assignment(client: TestClient, town: Town) -> None:
    answer = post_case(client, reporter={"name": "王五", "phone": "13912345678"})
    assert answer["status"] == 201
    out = ReportOut.model_validate(answer["body"])
    assert out.created and out.case.grid_id == town.grids["110108011001002"]


def test_post_case_answer_lists_possible_duplicates(client: TestClient, town: Town) -> None:
    first = post_case(client)
    second = post_case(client)
    ids = [c["id"] for c in second["body"]["possible_duplicates"]]  # type: ignore[index]
    assert ids == [first["body"]["case"]["id"]]  # type: ignore[index]


def test_post_case_same_external_id_is_200_with_the_same_case(
    client: TestClient, town: Town, connection: Connection
) -> None:
    first = post_case(client, external_id="wx-9")
    again = post_case(client, external_id="wx-9")
    assert again["status"] == 200
    assert again["body"]["case"]["id"] == first["body"]["case"]["id"]  # type: ignore[index]
    stored = connection.execute(text("SELECT count(*) FROM cases WHERE external_id = 'wx-9'"))
    assert stored.scalar_one() == 1


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"category": "E9999"}, "category"),
        ({"lon": "abc"}, "lon"),
        ({"crs": "mars"}, "crs"),
        ({"lon": None, "lat": None, "address": ""}, "address"),
        ({"lon": None, "lat": None}, "location"),
    ],
)
def test_post_case_bad_input_is_422_naming_the_parameter(
    client: TestClient, town: Town, fields: dict[str, object], parameter: str
) -> None:
    answer = post_case(client, **fields)
    assert answer["status"] == 422
    assert answer["body"]["parameter"] == parameter  # type: ignore[index]


def test_post_case_with_ambiguous_address_lists_candidates(client: TestClient, town: Town) -> None:
    answer = post_case(client, lon=None, lat=None, address="12号楼2单元")
    assert answer["status"] == 422
    assert len(answer["body"]["candidates"]) == 2  # type: ignore[index]


def test_post_case_outside_every_grid_is_stored_and_routed_to_the_subdistrict(
    client: TestClient, town: Town
) -> None:
    answer = post_case(client, lon=X0 - 5 * D, lat=Y0)
    assert answer["status"] == 201
    case = answer["body"]["case"]  # type: ignore[index]
    assert (case["inside_managed_area"], case["routed_to"]) == (False, "subdistrict")


def test_moving_the_pin_over_http_reassigns_and_records_the_reason(
    client: TestClient, town: Town, connection: Connection
) -> None:
    case_id = post_case(client, lon=P004[0], lat=P004[1])["body"]["case"]["id"]  # type: ignore[index]
    response = client.post(
        f"/cases/{case_id}/location", json={"lon": P002[0], "lat": P002[1], "reason": "定位偏差"}
    )
    assert response.status_code == 200
    assert response.json()["grid_code"] == "110108011001002"
    reason = connection.execute(
        text("SELECT reason FROM case_location_change WHERE case_id = :i"), {"i": case_id}
    )
    assert reason.scalar_one() == "定位偏差"


def test_moving_the_pin_without_reason_is_422(client: TestClient, town: Town) -> None:
    case_id = post_case(client)["body"]["case"]["id"]  # type: ignore[index]
    response = client.post(f"/cases/{case_id}/location", json={"lon": P004[0], "lat": P004[1]})
    assert response.status_code == 422
    assert response.json()["parameter"] == "reason"


def test_moving_the_pin_of_a_missing_case_is_404(client: TestClient, town: Town) -> None:
    response = client.post(
        "/cases/987654321/location", json={"lon": P004[0], "lat": P004[1], "reason": "x"}
    )
    assert response.status_code == 404


def test_get_cases_is_geojson_without_reporter_contact(client: TestClient, town: Town) -> None:
    post_case(client, reporter={"name": "王五", "phone": "13912345678"})
    response = client.get("/cases", params={"grid": "110108011001002"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    assert len(response.json()["features"]) == 1
    assert "13912345678" not in response.text and "王五" not in response.text


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "lost"}, "status"),
        ({"bbox": ""}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"limit": "x"}, "limit"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
    ],
)
def test_get_cases_bad_filter_is_422_naming_it(
    client: TestClient, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/cases", params=params)
    assert response.status_code == 422
    assert response.json()["parameter"] == parameter


def batch(rows: list[str]) -> bytes:
    return ("external_id,category,lon,lat\n" + "".join(f"{r}\n" for r in rows)).encode()


def test_batch_stores_valid_rows_and_reports_rejected_ones(client: TestClient, town: Town) -> None:
    body = batch([f"k-1,E0103,{P002[0]},{P002[1]}", "k-2,E0103,abc,39.9"])
    response = client.post("/cases/batch", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200
    out = response.json()
    assert out["stored"] == 1
    assert out["rejected"] == [{"row": 3, "field": "lon", "reason": "not a finite number: 'abc'"}]


def test_batch_posted_twice_stores_once(client: TestClient, town: Town) -> None:
    body = batch([f"k-1,E0103,{P002[0]},{P002[1]}"])
    client.post("/cases/batch", content=body, headers={"content-type": "text/csv"})
    again = client.post("/cases/batch", content=body, headers={"content-type": "text/csv"})
    assert (again.json()["stored"], again.json()["already_stored"]) == (0, 1)


def test_oversize_batch_is_413_naming_the_limit(client: TestClient, town: Town) -> None:
    body = batch([f"k-{i},E0103,{P002[0]},{P002[1]}" for i in range(400)])
    response = client.post("/cases/batch", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 413
    assert response.json()["limit"] == 10_000
    assert "10,000 bytes" in response.json()["detail"]


def test_batch_over_the_row_limit_is_413(client: TestClient, town: Town) -> None:
    body = batch([f"{i},E0103,1,2" for i in range(60)])
    response = client.post("/cases/batch", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 413
    assert "50 rows" in response.json()["detail"]


def test_batch_geojson_body_is_imported(client: TestClient, town: Town) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": list(P004)},
                "properties": {"external_id": "gj-1", "category": "E0103"},
            }
        ],
    }
    response = client.post(
        "/cases/batch",
        content=json.dumps(document),
        headers={"content-type": "application/geo+json"},
    )
    assert response.json()["stored"] == 1
