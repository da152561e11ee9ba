"""``/grids``: cells by bbox, kind and date; one cell with counts; who answers; validate; generate.

The app's connection dependencies are overridden with the test's rolled-back connection, so rows
inserted here are seen by the API and vanish after each test. The hand-made place lies in
metres east/north of :data:`gis.grids.synthetic.ORIGIN` (Haidian, Beijing): one community of
200 m x 100 m split into two service cells, plus one unit cell; its worker's phone must never
appear in any answer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyproj import Transformer
from sqlalchemy import Connection, Engine, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from api.routers.cases import get_write_connection
from gis.grids.synthetic import (
    METRIC_EPSG,
    ORIGIN,
    box,
    insert_building,
    insert_cell,
    insert_community,
    synthetic_subdistrict,
)
from gis.grids.workers import assign_grids, create_worker
from gis.settings import ApiSettings, DatabaseSettings
from tests.principals import people

COMMUNITY = "110108977001"
WEST = COMMUNITY + "001"
EAST = COMMUNITY + "002"
UNIT = COMMUNITY + "003"
PHONE = "13912345678"
SUBDISTRICT = "110108966"
TO_WGS84 = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True)


def lonlat(x: float, y: float) -> tuple[float, float]:
    """WGS84 of a point ``x``, ``y`` metres east/north of ORIGIN."""
    lon, lat = TO_WGS84.transform(ORIGIN[0] + x, ORIGIN[1] + y)
    return float(lon), float(lat)


def bbox(x0: float, y0: float, x1: float, y1: float) -> str:
    (w, s), (e, n) = lonlat(x0, y0), lonlat(x1, y1)
    return f"{w},{s},{e},{n}"


def _app(database_url: str, connection: Connection, api: ApiSettings) -> Any:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url), api=api))
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_write_connection] = lambda: connection
    return app


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    api = ApiSettings(auth_required=False, layer_limit_default=100, layer_limit_max=500)
    with TestClient(_app(database_url, connection, api)) as test_client:
        yield test_client


@pytest.fixture
def place(connection: Connection) -> dict[str, int]:
    """Community, two current service cells (west has a worker), a unit cell, an old version."""
    cid = insert_community(connection, COMMUNITY, box(0, 0, 200, 100), name="八角北路社区")
    west = insert_cell(connection, WEST, cid, box(0, 0, 100, 100))
    east = insert_cell(connection, EAST, cid, box(100, 0, 200, 100))
    unit = insert_cell(connection, UNIT, cid, box(0, 0, 200, 100), kind="unit")
    # The west cell's earlier version: the whole community, 2025.
    connection.execute(
        text(
            "INSERT INTO grid (code, kind, community_id, geom, valid_from, valid_to) SELECT"
            " :code, 'service', :cid, geom, '2025-01-01T00:00+08', '2026-01-01T00:00+08'"
            " FROM grid WHERE id = :unit"
        ),
        {"code": WEST, "cid": cid, "unit": unit},
    )
    connection.execute(
        text("UPDATE grid SET valid_from = '2026-01-01T00:00+08' WHERE id = ANY(:ids)"),
        {"ids": [west, east, unit]},
    )
    first = insert_building(connection, box(10, 10, 40, 22), households=10)
    insert_building(connection, box(50, 50, 90, 62), households=20)
    insert_building(connection, box(120, 10, 160, 22), households=7)
    connection.execute(
        text("UPDATE stairwell SET elderly = 3 WHERE building_id = :b"), {"b": first}
    )
    worker = create_worker(connection, name="王芳", phone=PHONE, role="grid_leader")
    assign_grids(connection, worker.id, [WEST])
    lon, lat = lonlat(20, 20)
    for status in ("reported", "dispatched", "closed", "voided", "evaluated"):
        connection.execute(
            text(
                "INSERT INTO cases (category_code, geom, status, grid_id)"
                " VALUES ('E0103', ST_Point(:lon, :lat, 4326), :s, :g)"
            ),
            {"lon": lon, "lat": lat, "s": status, "g": west},
        )
    return {"community": cid, "west": west, "east": east, "unit": unit, "worker": worker.id}


def codes(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [f["properties"]["code"] for f in answer.json()["features"]]


def assert_names(answer: Any, parameter: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.json()["parameter"] == parameter


# GET /grids


def test_list_returns_current_cells_of_both_kinds(
    client: TestClient, place: dict[str, int]
) -> None:
    answer = client.get("/grids", params={"bbox": bbox(-10, -10, 210, 110)})
    assert sorted(codes(answer)) == sorted([WEST, EAST, UNIT])
    assert answer.headers["content-type"].startswith("application/geo+json")


def test_list_shows_worker_name_and_community(client: TestClient, place: dict[str, int]) -> None:
    answer = client.get("/grids", params={"kind": "service"})
    props = {f["properties"]["code"]: f["properties"] for f in answer.json()["features"]}
    assert (props[WEST]["worker"], props[WEST]["worker_role"]) == ("王芳", "grid_leader")
    assert props[EAST]["worker"] is None
    assert props[WEST]["community"] == COMMUNITY


def test_list_never_shows_the_worker_phone(client: TestClient, place: dict[str, int]) -> None:
    assert PHONE not in client.get("/grids").text


def test_list_filters_by_kind(client: TestClient, place: dict[str, int]) -> None:
    assert codes(client.get("/grids", params={"kind": "unit"})) == [UNIT]


def test_list_returns_only_cells_intersecting_bbox(
    client: TestClient, place: dict[str, int]
) -> None:
    answer = client.get("/grids", params={"bbox": bbox(150, 40, 160, 60), "kind": "service"})
    assert codes(answer) == [EAST]


def test_list_as_of_returns_the_version_valid_then(
    client: TestClient, place: dict[str, int]
) -> None:
    answer = client.get("/grids", params={"as_of": "2025-06-01"})
    features = answer.json()["features"]
    assert codes(answer) == [WEST]
    assert features[0]["properties"]["valid_to"].startswith("2025-12-31T16:00")


def test_list_as_of_with_time_reads_local_time(client: TestClient, place: dict[str, int]) -> None:
    # 2026-01-01T00:30 in Beijing is still 2025 in UTC; the new cells are valid from local midnight.
    answer = client.get("/grids", params={"as_of": "2026-01-01T00:30", "kind": "service"})
    assert sorted(codes(answer)) == [WEST, EAST]


def test_list_limit_truncates(client: TestClient, place: dict[str, int]) -> None:
    body = client.get("/grids", params={"limit": 1}).json()
    assert (body["numberReturned"], body["truncated"]) == (1, True)


@pytest.mark.parametrize("value", ["1,2,3", "a,b,c,d", "116.3,39.9,116.2,40.0", "", "200,0,201,1"])
def test_list_bad_bbox_names_bbox(client: TestClient, value: str) -> None:
    assert_names(client.get("/grids", params={"bbox": value}), "bbox")


def test_list_bad_kind_names_kind(client: TestClient) -> None:
    assert_names(client.get("/grids", params={"kind": "street"}), "kind")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "", "2026-03-01T25:00"])
def test_list_bad_as_of_names_as_of(client: TestClient, value: str) -> None:
    assert_names(client.get("/grids", params={"as_of": value}), "as_of")


def test_list_limit_over_the_maximum_names_limit(client: TestClient) -> None:
    assert_names(client.get("/grids", params={"limit": 501}), "limit")


# GET /grids/{code}


def test_cell_counts_buildings_households_and_open_cases(
    client: TestClient, place: dict[str, int]
) -> None:
    counts = client.get(f"/grids/{WEST}").json()["properties"]["counts"]
    assert counts == {
        "buildings": 2,
        "stairwells": 2,
        "households": 30,
        "residents": 60,
        "elderly": 3,
        "open_cases": 2,
    }


def test_unit_cell_counts_the_open_cases_lying_in_it(
    client: TestClient, place: dict[str, int]
) -> None:
    props = client.get(f"/grids/{UNIT}", params={"kind": "unit"}).json()["properties"]
    assert props["counts"]["open_cases"] == 2


def test_cell_names_community_and_worker_without_phone(
    client: TestClient, place: dict[str, int]
) -> None:
    answer = client.get(f"/grids/{WEST}")
    props = answer.json()["properties"]
    assert props["community"] == {"code": COMMUNITY, "name": "八角北路社区"}
    assert props["worker"] == {"name": "王芳", "role": "grid_leader"}
    assert PHONE not in answer.text


def test_cell_as_of_returns_the_earlier_version(client: TestClient, place: dict[str, int]) -> None:
    props = client.get(f"/grids/{WEST}", params={"as_of": "2025-06-01"}).json()["properties"]
    assert props["valid_to"] is not None
    assert props["counts"]["buildings"] == 3


def test_cell_kind_unit_returns_the_unit_cell(client: TestClient, place: dict[str, int]) -> None:
    props = client.get(f"/grids/{UNIT}", params={"kind": "unit"}).json()["properties"]
    assert (props["kind"], props["counts"]["households"]) == ("unit", 37)


def test_unknown_cell_is_404_naming_the_code(client: TestClient, place: dict[str, int]) -> None:
    answer = client.get(f"/grids/{COMMUNITY}999")
    assert answer.status_code == 404
    assert f"{COMMUNITY}999" in answer.json()["detail"]


def test_cell_unknown_before_it_existed_is_404(client: TestClient, place: dict[str, int]) -> None:
    assert client.get(f"/grids/{EAST}", params={"as_of": "2025-06-01"}).status_code == 404


def test_malformed_cell_code_names_code(client: TestClient) -> None:
    assert_names(client.get("/grids/1101089770010"), "code")


def test_cell_bad_as_of_names_as_of(client: TestClient, place: dict[str, int]) -> None:
    assert_names(client.get(f"/grids/{WEST}", params={"as_of": "soon"}), "as_of")


def test_cell_bad_kind_names_kind(client: TestClient, place: dict[str, int]) -> None:
    assert_names(client.get(f"/grids/{WEST}", params={"kind": "block"}), "kind")


# GET /grids/{code}/worker


def test_worker_of_a_cell_is_named_without_phone(client: TestClient, place: dict[str, int]) -> None:
    answer = client.get(f"/grids/{WEST}/worker")
    body = answer.json()
    assert body["responsible"] == "worker"
    assert body["worker"] == {
        "name": "王芳",
        "role": "grid_leader",
        "active": True,
        "grids": [WEST],
    }
    assert PHONE not in answer.text


def test_cell_without_worker_answers_with_its_community(
    client: TestClient, place: dict[str, int]
) -> None:
    body = client.get(f"/grids/{EAST}/worker").json()
    assert (body["responsible"], body["worker"], body["community"]["code"]) == (
        "community",
        None,
        COMMUNITY,
    )


def test_worker_of_unknown_cell_is_404_naming_it(client: TestClient, place: dict[str, int]) -> None:
    answer = client.get(f"/grids/{COMMUNITY}998/worker")
    assert answer.status_code == 404
    assert f"{COMMUNITY}998" in answer.json()["detail"]


def test_worker_of_malformed_code_names_code(client: TestClient) -> None:
    assert_names(client.get("/grids/abc/worker"), "code")


def test_worker_bad_as_of_names_as_of(client: TestClient, place: dict[str, int]) -> None:
    assert_names(client.get(f"/grids/{WEST}/worker", params={"as_of": "2026-02-30"}), "as_of")


# GET /grids/validate


def test_validate_reports_a_tiling_layer_clean(client: TestClient, place: dict[str, int]) -> None:
    body = client.get("/grids/validate", params={"community": COMMUNITY}).json()
    assert (body["clean"], body["cells"], body["buildings"]) == (True, 2, 3)


def test_validate_reports_an_overlap_with_its_pair(
    client: TestClient, connection: Connection, place: dict[str, int]
) -> None:
    connection.execute(
        text(
            "UPDATE grid SET geom = ST_Multi(ST_Transform(ST_GeomFromText(:w, :e), 4326))"
            " WHERE id = :id"
        ),
        {"w": box(0, 0, 120, 100), "e": METRIC_EPSG, "id": place["west"]},
    )
    body = client.get("/grids/validate", params={"community": COMMUNITY}).json()
    overlaps = [d for d in body["defects"] if d["kind"] == "overlap"]
    assert [sorted(d["codes"]) for d in overlaps] == [[WEST, EAST]]
    assert overlaps[0]["area_m2"] == pytest.approx(2_000, rel=0.01)


def test_validate_as_of_checks_the_cells_valid_then(
    client: TestClient, place: dict[str, int]
) -> None:
    body = client.get("/grids/validate", params={"as_of": "2025-06-01"}).json()
    assert (body["clean"], body["cells"]) == (True, 1)


def test_validate_unknown_community_is_404(client: TestClient) -> None:
    answer = client.get("/grids/validate", params={"community": "110108977099"})
    assert answer.status_code == 404
    assert "110108977099" in answer.json()["detail"]


def test_validate_malformed_community_names_community(client: TestClient) -> None:
    assert_names(client.get("/grids/validate", params={"community": "11010897"}), "community")


def test_validate_bad_kind_names_kind(client: TestClient) -> None:
    assert_names(client.get("/grids/validate", params={"kind": "both"}), "kind")


def test_validate_bad_as_of_names_as_of(client: TestClient) -> None:
    assert_names(client.get("/grids/validate", params={"as_of": "1 March"}), "as_of")


# POST /grids/generate


@pytest.fixture
def town(connection: Connection) -> list[int]:
    return synthetic_subdistrict(
        connection, code=SUBDISTRICT, buildings=80, communities=(2, 1), seed=3
    ).community_ids


def households_of(connection: Connection, community_id: int) -> int:
    return int(
        connection.execute(
            text(
                "SELECT sum(s.households) FROM stairwell s JOIN building b ON b.id = s.building_id"
                " JOIN community c ON c.id = :c"
                " AND ST_Intersects(c.geom, ST_PointOnSurface(b.footprint))"
            ),
            {"c": community_id},
        ).scalar_one()
    )


def test_generate_stores_cells_holding_every_household(
    client: TestClient, connection: Connection, town: list[int]
) -> None:
    community = f"{SUBDISTRICT}001"
    answer = client.post("/grids/generate", json={"community": community, "target_households": 300})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["stored"], body["validation"]["clean"]) == (True, True)
    assert sum(c["households"] for c in body["cells"]) == households_of(connection, town[0])
    listed = codes(client.get("/grids", params={"kind": "service"}))
    assert sorted(listed) == sorted(c["code"] for c in body["cells"])


def test_generate_reports_compactness_of_each_cell(client: TestClient, town: list[int]) -> None:
    body = client.post(
        "/grids/generate",
        json={"community": f"{SUBDISTRICT}001", "kind": "unit", "target_area": 10_000},
    ).json()
    assert body["cells"]
    assert all(0 < c["compactness"] <= 1 for c in body["cells"])


def test_generate_reports_cell_areas_adding_up_to_the_community(
    client: TestClient, connection: Connection, town: list[int]
) -> None:
    body = client.post(
        "/grids/generate",
        json={"community": f"{SUBDISTRICT}001", "kind": "unit", "target_area": 10_000},
    ).json()
    area = connection.execute(
        text("SELECT ST_Area(ST_Transform(geom, :e)) FROM community WHERE id = :c"),
        {"e": METRIC_EPSG, "c": town[0]},
    ).scalar_one()
    assert sum(c["area_m2"] for c in body["cells"]) == pytest.approx(area, rel=1e-3)


def test_generate_dry_run_stores_nothing(
    client: TestClient, connection: Connection, town: list[int]
) -> None:
    body = client.post(
        "/grids/generate", json={"community": f"{SUBDISTRICT}002", "dry_run": True}
    ).json()
    assert body["stored"] is False and body["cells"]
    assert connection.execute(text("SELECT count(*) FROM grid")).scalar_one() == 0


def test_generate_subdistrict_covers_each_community(client: TestClient, town: list[int]) -> None:
    body = client.post(
        "/grids/generate", json={"subdistrict": SUBDISTRICT, "kind": "unit", "dry_run": True}
    ).json()
    assert {c["community"] for c in body["cells"]} == {f"{SUBDISTRICT}001", f"{SUBDISTRICT}002"}
    assert body["validation"]["clean"] is True


@pytest.mark.parametrize(
    ("payload", "parameter"),
    [
        ({}, "community"),
        ({"community": f"{SUBDISTRICT}001", "subdistrict": SUBDISTRICT}, "community"),
        ({"community": "1101"}, "community"),
        ({"subdistrict": "11010896x"}, "subdistrict"),
        ({"community": f"{SUBDISTRICT}001", "kind": "block"}, "kind"),
        ({"community": f"{SUBDISTRICT}001", "tolerance": 1.5}, "tolerance"),
        ({"community": f"{SUBDISTRICT}001", "target_households": 0}, "target_households"),
        ({"community": f"{SUBDISTRICT}001", "target_area": -5}, "target_area"),
        ({"community": f"{SUBDISTRICT}001", "colour": "red"}, "colour"),
    ],
)
def test_generate_bad_input_names_the_parameter(
    client: TestClient, payload: dict[str, Any], parameter: str
) -> None:
    assert_names(client.post("/grids/generate", json=payload), parameter)


def test_generate_unknown_community_is_404(client: TestClient) -> None:
    answer = client.post("/grids/generate", json={"community": "110108966099"})
    assert answer.status_code == 404
    assert "110108966099" in answer.json()["detail"]


def test_generate_unknown_subdistrict_is_404(client: TestClient) -> None:
    answer = client.post("/grids/generate", json={"subdistrict": "110108955"})
    assert answer.status_code == 404
    assert "110108955" in answer.json()["detail"]


# Access control


@pytest.fixture
def guarded(database_url: str, connection: Connection) -> Iterator[TestClient]:
    with TestClient(_app(database_url, connection, ApiSettings(auth_required=True))) as c:
        yield c


@pytest.mark.parametrize("role", ["reporter", "worker", "planner", "department"])
def test_generate_refuses_roles_outside_the_office(
    guarded: TestClient, engine: Engine, role: str
) -> None:
    with people(engine) as users:
        answer = guarded.post(
            "/grids/generate", json={"subdistrict": SUBDISTRICT}, headers=users.headers(role)
        )
    assert answer.status_code == 403


def test_generate_admits_staff(guarded: TestClient, engine: Engine, town: list[int]) -> None:
    with people(engine) as users:
        answer = guarded.post(
            "/grids/generate",
            json={"community": f"{SUBDISTRICT}001", "dry_run": True},
            headers=users.headers("staff"),
        )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(("role", "status"), [("planner", 200), ("reporter", 403)])
def test_validate_admits_planners_not_reporters(
    guarded: TestClient, engine: Engine, place: dict[str, int], role: str, status: int
) -> None:
    with people(engine) as users:
        answer = guarded.get("/grids/validate", headers=users.headers(role))
    assert answer.status_code == status


def test_cell_needs_a_token(guarded: TestClient, place: dict[str, int]) -> None:
    assert guarded.get(f"/grids/{WEST}").status_code == 401


def test_reporter_reads_the_cell_without_phone(
    guarded: TestClient, engine: Engine, place: dict[str, int]
) -> None:
    with people(engine) as users:
        answer = guarded.get(f"/grids/{WEST}", headers=users.headers("reporter"))
    assert answer.status_code == 200
    assert PHONE not in answer.text


# Bad input never needs the database


@pytest.fixture
def offline() -> Iterator[TestClient]:
    """The app against a port where nothing listens: any connection attempt would be a 503."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    database = DatabaseSettings(database_url=f"postgresql+psycopg://u@127.0.0.1:{closed}/x")
    app = create_app(AppSettings(database=database, api=ApiSettings(auth_required=False)))
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "url", "payload", "parameter"),
    [
        ("GET", "/grids?bbox=1,2", None, "bbox"),
        ("GET", "/grids?kind=x", None, "kind"),
        ("GET", "/grids?as_of=x", None, "as_of"),
        ("GET", "/grids/123", None, "code"),
        ("GET", f"/grids/{WEST}?as_of=x", None, "as_of"),
        ("GET", "/grids/12/worker", None, "code"),
        ("GET", "/grids/validate?community=1", None, "community"),
        ("GET", "/grids/validate?kind=x", None, "kind"),
        ("POST", "/grids/generate", {"community": "1"}, "community"),
        ("POST", "/grids/generate", {"subdistrict": SUBDISTRICT, "tolerance": 2}, "tolerance"),
        ("POST", "/grids/generate", [1], "body"),
    ],
)
def test_bad_input_is_answered_without_the_database(
    offline: TestClient, method: str, url: str, payload: Any, parameter: str
) -> None:
    assert_names(offline.request(method, url, json=payload), parameter)


def test_generate_without_the_database_answers_503(offline: TestClient) -> None:
    answer = offline.post("/grids/generate", json={"subdistrict": SUBDISTRICT})
    assert answer.status_code == 503
