"""``/circles``: coverage reports (JSON, CSV), point queries, display shapes, bad input.

The app's connection dependency is overridden with the test's rolled-back connection, on
which a synthetic subdistrict (gis.grids.synthetic) has been computed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import ANONYMOUS, get_principal, get_read_connection
from gis.circles import CircleSettings
from gis.circles_store import area_geometry, compute_area
from gis.coords import wgs84_to_gcj02
from gis.grids.generate import generate_grids
from gis.grids.synthetic import synthetic_subdistrict
from gis.settings import DatabaseSettings
from tests.test_circles_store import CODE, insert_facility, lonlat, node_streets

FACILITIES = [
    ("kindergarten", 150, 150),
    ("kindergarten", 450, 450),
    ("convenience_shop", 300, 150),
    ("primary_school", 300, 450),
]


@pytest.fixture
def town(connection: Connection) -> dict[str, Any]:
    made = synthetic_subdistrict(connection, code=CODE, buildings=80, communities=(2, 2), seed=7)
    generate_grids(connection, community_ids=made.community_ids, target_households=400)
    node_streets(connection)
    ids = [insert_facility(connection, kind, x, y) for kind, x, y in FACILITIES]
    _, area = area_geometry(connection, subdistrict=CODE)
    area_id = compute_area(connection, area, name="town")
    return {"area_id": area_id, "facilities": ids}


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_principal] = lambda: ANONYMOUS
    with TestClient(app) as test_client:
        yield test_client


def households(connection: Connection) -> int:
    return int(
        connection.execute(
            text(
                "SELECT sum(s.households) FROM stairwell s JOIN building b ON b.id = s.building_id"
                " WHERE b.source_id LIKE :p"
            ),
            {"p": f"{CODE}-%"},
        ).scalar_one()
    )


def test_coverage_json_household_totals_add_up_per_type(
    client: TestClient, connection: Connection, town: dict[str, Any]
) -> None:
    answer = client.get("/circles/coverage", params={"level": 5, "by": "community"})
    assert answer.status_code == 200
    rows = pd.DataFrame(answer.json()["rows"])
    assert set(rows.groupby("type")["households"].sum()) == {households(connection)}


def test_coverage_csv_holds_the_same_rows_as_json(client: TestClient, town: dict[str, Any]) -> None:
    params = {"level": 10, "by": "grid", "group": "elderly"}
    as_json = pd.DataFrame(client.get("/circles/coverage", params=params).json()["rows"])
    answer = client.get("/circles/coverage", params={**params, "format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    as_csv = pd.read_csv(io.StringIO(answer.text), dtype={"grid": str})
    assert as_csv["grid"].tolist() == as_json["grid"].tolist()
    assert as_csv["households_covered"].tolist() == as_json["households_covered"].tolist()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"type": "casino"}, "type"),
        ({"group": "runner"}, "group"),
        ({"level": 20}, "level"),
        ({"by": "street"}, "by"),
        ({"format": "xml"}, "format"),
    ],
)
def test_coverage_bad_input_is_a_422_naming_the_parameter(
    client: TestClient, params: dict[str, Any], parameter: str
) -> None:
    answer = client.get("/circles/coverage", params=params)
    assert answer.status_code == 422
    assert answer.json()["parameter"] == parameter


def test_point_query_lists_facilities_per_level_nearest_first(
    client: TestClient, town: dict[str, Any]
) -> None:
    lon, lat = lonlat(150, 160)
    answer = client.get("/circles/at", params={"lon": lon, "lat": lat, "group": "elderly"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["method"] == "network"
    speed = CircleSettings().speeds_kmh["elderly"] * 1000 / 60
    for level in body["levels"]:
        distances = [f["distance_m"] for f in level["facilities"]]
        assert distances == sorted(distances)
        assert all(d <= level["distance_m"] for d in distances)
        for f in level["facilities"]:
            assert f["minutes"] == pytest.approx(f["distance_m"] / speed, abs=0.11)
    first = body["levels"][-1]["facilities"][0]
    assert first["id"] == town["facilities"][0]


def test_point_query_distance_equals_the_stored_coverage_of_a_stairwell(
    client: TestClient, connection: Connection, town: dict[str, Any]
) -> None:
    _sid, lon, lat, nearest = connection.execute(
        text(
            "SELECT c.stairwell_id, ST_X(s.entrance), ST_Y(s.entrance), c.nearest_m "
            "FROM circle_coverage c JOIN stairwell s ON s.id = c.stairwell_id "
            "WHERE c.facility_type = 'kindergarten' AND c.basis = 'standard' AND c.minutes = 15 "
            "AND c.nearest_m IS NOT NULL ORDER BY c.stairwell_id LIMIT 1"
        )
    ).one()
    body = client.get("/circles/at", params={"lon": lon, "lat": lat}).json()
    found = [f for f in body["levels"][-1]["facilities"] if f["type"] == "kindergarten"]
    assert found[0]["distance_m"] == pytest.approx(nearest, abs=0.1)


def test_point_query_reads_gcj02_coordinates(client: TestClient, town: dict[str, Any]) -> None:
    lon, lat = lonlat(300, 280)
    glon, glat = wgs84_to_gcj02(lon, lat)
    plain = client.get("/circles/at", params={"lon": lon, "lat": lat}).json()
    shifted = client.get("/circles/at", params={"lon": glon, "lat": glat, "crs": "gcj02"}).json()
    assert shifted["lon"] == pytest.approx(lon, abs=1e-5)
    assert [f["id"] for f in shifted["levels"][-1]["facilities"]] == [
        f["id"] for f in plain["levels"][-1]["facilities"]
    ]


def test_point_outside_every_computed_area_is_a_422_naming_lon(
    client: TestClient, town: dict[str, Any]
) -> None:
    lon, lat = lonlat(30_000, 30_000)
    answer = client.get("/circles/at", params={"lon": lon, "lat": lat})
    assert answer.status_code == 422
    assert answer.json()["parameter"] == "lon"


def test_point_query_with_an_unknown_group_names_the_group(
    client: TestClient, town: dict[str, Any]
) -> None:
    lon, lat = lonlat(300, 300)
    answer = client.get("/circles/at", params={"lon": lon, "lat": lat, "group": "runner"})
    assert answer.status_code == 422
    assert answer.json()["parameter"] == "group"


def test_isochrone_of_a_facility_is_labelled_display_only(
    client: TestClient, town: dict[str, Any]
) -> None:
    answer = client.get(
        "/circles/isochrone", params={"facility_id": town["facilities"][0], "minutes": 5}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/geo+json")
    body = answer.json()
    assert body["display_only"] is True
    assert [f["properties"]["display_only"] for f in body["features"]] == [True]
    assert body["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_isochrone_of_a_point_grows_with_the_minutes(
    client: TestClient, town: dict[str, Any]
) -> None:
    lon, lat = lonlat(300, 300)
    body = client.get(
        "/circles/isochrone", params={"lon": lon, "lat": lat, "minutes": [2, 5]}
    ).json()
    reached = [f["properties"]["reached_m"] for f in body["features"]]
    assert [f["properties"]["minutes"] for f in body["features"]] == [2, 5]
    assert reached[0] < reached[1]


def test_isochrone_without_a_place_names_facility_id(client: TestClient) -> None:
    answer = client.get("/circles/isochrone", params={"minutes": 5})
    assert answer.status_code == 422
    assert answer.json()["parameter"] == "facility_id"


def test_isochrone_of_an_unknown_facility_is_a_404(client: TestClient) -> None:
    assert client.get("/circles/isochrone", params={"facility_id": -1}).status_code == 404


def test_missing_lists_stairwells_most_missing_first(
    client: TestClient, town: dict[str, Any]
) -> None:
    answer = client.get("/circles/missing", params={"level": 5, "limit": 3})
    rows = answer.json()["rows"]
    assert len(rows) == 3
    assert [r["missing"] for r in rows] == sorted((r["missing"] for r in rows), reverse=True)
