"""The planner map on a computed walking network: isochrones, their fallback, coverage gaps.

The town is the synthetic subdistrict of tests/test_circles_store.py (a 600 m square of 150 m
street blocks near Beijing, one stairwell per building) with its service circle computed; a
primary school (level 10 minutes, standard radius 500 m) stands at a street crossing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from pyproj import Transformer
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from gis.circles_store import ALL_REQUIRED, area_geometry, compute_area, coverage_report
from gis.grids.generate import generate_grids
from gis.grids.synthetic import synthetic_subdistrict
from gis.settings import DatabaseSettings
from tests.test_circles_store import CODE, insert_facility, node_streets

TO_UTM = Transformer.from_crs(4326, 32650, always_xy=True)
SCHOOL = "primary_school"
# Fields of household-level rows (the stairwells layer, cases): never on the planner page.
PERSONAL = {"stairwell_id", "unit_no", "estimated", "building_id", "reporter", "contact", "phone"}


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def town(connection: Connection) -> int:
    """The computed town with a school at the crossing (300 m, 300 m); returns the area id."""
    made = synthetic_subdistrict(connection, code=CODE, buildings=80, communities=(2, 2), seed=7)
    generate_grids(connection, community_ids=made.community_ids, target_households=400)
    node_streets(connection)
    insert_facility(connection, SCHOOL, 300.0, 300.0)
    _, area = area_geometry(connection, subdistrict=CODE)
    return compute_area(connection, area, name="town")


def add_far_school(connection: Connection) -> None:
    """A school near 20°W 40°S, where no area was computed."""
    connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, name, geom) VALUES "
            "('test', 'far', :type, 'far', ST_Point(-19.998, -39.998, 4326))"
        ),
        {"type": SCHOOL},
    )


def page_var(page: str, name: str) -> Any:
    match = re.search(rf"var {name} = (.*?);\n", page)
    assert match is not None
    return json.loads(match.group(1))


def layer(page: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {spec["name"]: spec for spec in page_var(page, "specs")}[name]
    return found


def legend_labels(page: str, title_part: str) -> list[str]:
    entries = [e for e in page_var(page, "legend") if title_part in e["title"]]
    assert len(entries) == 1
    return [label for _, label in entries[0]["items"]]


def utm_area(geometry: dict[str, Any]) -> float:
    """Area in square metres (UTM 50N) of a WGS84 GeoJSON geometry."""
    shape = shapely.from_geojson(json.dumps(geometry))
    return float(shapely.area(shapely.transform(shape, _to_utm)))


def _to_utm(xy: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.column_stack(TO_UTM.transform(xy[:, 0], xy[:, 1]))


def by_name(features: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(f["properties"]["name"]): f for f in features}


def test_isochrone_walks_the_network_where_it_was_computed(
    client: TestClient, connection: Connection, town: int
) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL, "lang": "en"}).text
    (feature,) = layer(page, "isochrones")["data"]["features"]
    assert feature["properties"]["shape"] == "walk"
    assert feature["properties"]["distance_m"] == 500.0
    # Streets reached within 500 m on a 150 m block grid: far less than the 500 m disc.
    assert 0.1 * math.pi * 500**2 < utm_area(feature["geometry"]) < 0.7 * math.pi * 500**2


def test_isochrone_legend_says_display_only(client: TestClient, town: int) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL, "lang": "en"}).text
    labels = legend_labels(page, "isochrones")
    assert labels == ["walking isochrone (display only; coverage uses network distances)"]
    assert "display only" in layer(page, "isochrones")["title"]


def test_isochrone_legend_says_display_only_in_chinese(client: TestClient, town: int) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL}).text
    assert "仅供显示" in legend_labels(page, "等时圈")[0]


def test_facility_outside_every_computed_area_gets_a_labelled_standard_circle(
    client: TestClient, connection: Connection, town: int
) -> None:
    add_far_school(connection)
    page = client.get("/maps/planner", params={"type": SCHOOL, "lang": "en"}).text
    far = by_name(layer(page, "isochrones")["data"]["features"])["far"]
    assert far["properties"]["shape"] == "circle"
    ring = shapely.from_geojson(json.dumps(far["geometry"]))
    centre = shapely.Point(-19.998, -39.998)
    # A 500 m circle: 4.5 millidegrees of latitude at 40°S.
    assert ring.contains(centre) and 0.0040 < ring.bounds[3] - centre.y < 0.0050
    assert "standard-radius circle (no walking network computed here)" in legend_labels(
        page, "isochrones"
    )


def test_level_picks_the_isochrone_distance(client: TestClient, town: int) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL, "level": 15}).text
    (feature,) = layer(page, "isochrones")["data"]["features"]
    assert (feature["properties"]["minutes"], feature["properties"]["distance_m"]) == (15, 1000.0)


def test_walking_group_sets_the_distance_by_its_speed(client: TestClient, town: int) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL, "group": "elderly"}).text
    (feature,) = layer(page, "isochrones")["data"]["features"]
    assert feature["properties"]["distance_m"] == 650.0  # 10 min x 3.9 km/h


def test_unconfigured_level_is_refused_naming_it(client: TestClient, town: int) -> None:
    response = client.get("/maps/planner", params={"type": SCHOOL, "level": 7})
    assert response.status_code == 422
    assert "level" in response.text


@pytest.mark.parametrize("kind", [SCHOOL, None])
def test_grid_shares_equal_the_coverage_report(
    client: TestClient, connection: Connection, town: int, kind: str | None
) -> None:
    report = coverage_report(connection, type=kind, level=15 if kind is None else 10, by="grid")
    if kind is None:
        report = report.loc[report["type"] == ALL_REQUIRED]
    expected = dict(zip(report["grid"], report["share_households"], strict=True))
    page = client.get("/maps/planner", params={"type": kind} if kind else {}).text
    drawn = {
        f["properties"]["code"]: f["properties"]["share"]
        for f in layer(page, "coverage")["data"]["features"]
    }
    assert len(expected) > 1
    assert {code: drawn[code] for code in expected} == pytest.approx(expected)
    assert all(drawn[code] is None for code in set(drawn) - set(expected))


def test_grid_shares_differ_between_grids_near_and_far_from_the_school(
    client: TestClient, town: int
) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL}).text
    shares = [f["properties"]["share"] for f in layer(page, "coverage")["data"]["features"]]
    known = [share for share in shares if share is not None]
    assert len(known) > 1 and min(known) < max(known) and max(known) > 0


def test_gaps_count_the_uncovered_households_per_building(
    client: TestClient, connection: Connection, town: int
) -> None:
    expected = connection.execute(
        text(
            "SELECT count(DISTINCT s.building_id), sum(s.households), sum(s.elderly) "
            "FROM stairwell s JOIN circle_coverage c ON c.stairwell_id = s.id "
            "WHERE c.facility_type = :t AND c.basis = 'standard' AND c.minutes = 10 "
            "AND c.count = 0"
        ),
        {"t": SCHOOL},
    ).one()
    assert expected[0] > 0
    features = layer(client.get("/maps/planner", params={"type": SCHOOL}).text, "gaps")["data"][
        "features"
    ]
    props = [f["properties"] for f in features]
    assert len(features) == expected[0]
    assert sum(p["uncovered_households"] for p in props) == expected[1]
    assert sum(p["uncovered_elderly"] for p in props) == expected[2]


def test_gap_markers_are_sized_by_uncovered_households(client: TestClient, town: int) -> None:
    gaps = layer(client.get("/maps/planner", params={"type": SCHOOL}).text, "gaps")
    assert gaps["size_by"] == "uncovered_households"
    assert {f["geometry"]["type"] for f in gaps["data"]["features"]} == {"Point"}


def test_planner_page_carries_no_personal_fields(
    client: TestClient, connection: Connection, town: int
) -> None:
    connection.execute(text("UPDATE stairwell SET elderly = 2"))  # demand for the siting run
    page = client.get("/maps/planner", params={"type": SCHOOL, "sites": 1}).text
    specs = page_var(page, "specs")
    inline = [spec for spec in specs if spec["data"] is not None]
    keys = {k for spec in inline for f in spec["data"]["features"] for k in f["properties"]}
    assert {"uncovered_households", "shape", "proposed"} <= keys
    assert keys.isdisjoint(PERSONAL)
    assert not [spec["name"] for spec in inline if spec["personal"]]
    assert "stairwells" not in {spec["name"] for spec in specs}


def test_planner_page_on_a_computed_network_references_no_other_host(
    client: TestClient, town: int
) -> None:
    page = client.get("/maps/planner", params={"type": SCHOOL}).text
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+", page) == []
