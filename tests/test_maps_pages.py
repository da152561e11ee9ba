"""The three map pages (grid, planner, cases): inline data, 404 pages, offline, languages.

The app's connection is the test's rolled-back ``connection`` (as in ``test_api_layers``);
test rows lie around 20°W 40°S where no imported area reaches.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from gis.settings import DatabaseSettings
from layers.maps import grid_map
from layers.webmap import page_html

GRID = "320106001001001"
OTHER = "320106001001002"


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


def add_grid(connection: Connection, code: str, west: float) -> int:
    """A 0.005° square current service grid whose west edge is ``west`` (south edge 40°S)."""
    return int(
        connection.execute(
            text(
                "INSERT INTO grid (code, kind, geom) VALUES (:code, 'service', ST_Multi("
                "ST_MakeEnvelope(:w, -40.0, :w + 0.005, -39.995, 4326))) RETURNING id"
            ),
            {"code": code, "w": west},
        ).scalar_one()
    )


def add_facility(connection: Connection, name: str, lon: float, lat: float) -> None:
    connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, name, geom) VALUES "
            "('test', :name, 'primary_school', :name, ST_Point(:lon, :lat, 4326))"
        ),
        {"name": name, "lon": lon, "lat": lat},
    )


def add_case(connection: Connection, grid_id: int, status: str, reported: str) -> None:
    connection.execute(
        text(
            "INSERT INTO cases (category_code, geom, status, reported_at, grid_id) VALUES "
            "('E0101', ST_Point(-19.998, -39.998, 4326), :s, :r, :g)"
        ),
        {"s": status, "r": reported, "g": grid_id},
    )


def specs(page: str) -> dict[str, dict[str, Any]]:
    """The layer specs written into a page, by layer name."""
    match = re.search(r"var specs = (\[.*?\]);\n", page)
    assert match is not None
    return {spec["name"]: spec for spec in json.loads(match.group(1))}


def inline_names(page: str, layer: str) -> list[str]:
    data = specs(page)[layer]["data"]
    return sorted(
        str(f["properties"].get("name") or f["properties"].get("code")) for f in data["features"]
    )


def test_grid_page_draws_its_boundary_inline(client: TestClient, connection: Connection) -> None:
    add_grid(connection, GRID, -20.0)
    add_grid(connection, OTHER, -19.99)
    page = client.get(f"/maps/grids/{GRID}").text
    assert inline_names(page, "grids") == [GRID]


def test_grid_page_shows_facilities_within_its_15_minute_circle(
    client: TestClient, connection: Connection
) -> None:
    add_grid(connection, GRID, -20.0)
    # 1,000 m standard radius: about 0.0117° of longitude at 40°S.
    add_facility(connection, "near", -20.008, -39.997)
    add_facility(connection, "far", -20.02, -39.997)
    page = client.get(f"/maps/grids/{GRID}").text
    assert inline_names(page, "facilities") == ["near"]


def test_grid_page_keeps_only_the_grids_open_cases(
    client: TestClient, connection: Connection
) -> None:
    grid_id = add_grid(connection, GRID, -20.0)
    spec = specs(client.get(f"/maps/grids/{GRID}").text)["cases"]
    assert spec["url"] == "/layers/cases" and spec["personal"] is True
    assert spec["keep"]["grid_id"] == [str(grid_id)]
    assert "closed" not in spec["keep"]["status"] and "reported" in spec["keep"]["status"]


def test_unknown_grid_answers_a_404_page_naming_it(client: TestClient) -> None:
    response = client.get("/maps/grids/999999999999999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "unknown grid '999999999999999'" in response.text


def test_unknown_facility_type_answers_a_404_page_naming_it(client: TestClient) -> None:
    response = client.get("/maps/planner", params={"type": "spaceport"})
    assert response.status_code == 404
    assert "unknown facility type 'spaceport'" in response.text


def test_planner_page_draws_the_service_radius_of_the_type(
    client: TestClient, connection: Connection
) -> None:
    add_grid(connection, GRID, -20.0)
    add_facility(connection, "school", -19.998, -39.998)
    page = client.get("/maps/planner", params={"type": "primary_school"}).text
    radius = specs(page)["isochrones"]["data"]["features"]
    assert [f["properties"]["minutes"] for f in radius] == [10]
    assert inline_names(page, "facilities") == ["school"]


def test_planner_page_greys_grids_without_stored_coverage(
    client: TestClient, connection: Connection
) -> None:
    add_grid(connection, GRID, -20.0)
    coverage = specs(client.get("/maps/planner").text)["coverage"]
    assert [f["properties"]["share"] for f in coverage["data"]["features"]] == [None]


def test_cases_page_counts_cases_per_grid_with_the_filters(
    client: TestClient, connection: Connection
) -> None:
    grid_id = add_grid(connection, GRID, -20.0)
    add_case(connection, grid_id, "reported", "2026-03-01T08:00:00+08:00")
    add_case(connection, grid_id, "reported", "2026-03-09T08:00:00+08:00")
    add_case(connection, grid_id, "closed", "2026-03-09T08:00:00+08:00")
    params = {"status": "reported", "since": "2026-03-05T00:00:00+08:00"}
    incidents = specs(client.get("/maps/cases", params=params).text)["incidents"]
    counts = {
        f["properties"]["code"]: f["properties"]["cases"] for f in incidents["data"]["features"]
    }
    assert counts == {GRID: 1}


def test_cases_page_filters_drawn_cases_by_status_and_since(client: TestClient) -> None:
    params = {"status": "filed", "since": "2026-03-05T00:00:00+08:00"}
    spec = specs(client.get("/maps/cases", params=params).text)["cases"]
    assert spec["keep"] == {"status": ["filed"]}
    assert spec["since"] == "2026-03-05T00:00:00+08:00"


def test_cases_page_rejects_an_unknown_status_naming_it(client: TestClient) -> None:
    response = client.get("/maps/cases", params={"status": "lost"})
    assert response.status_code == 422
    assert "status" in response.text


def test_cases_page_clusters_with_the_vendored_plugin(client: TestClient) -> None:
    page = client.get("/maps/cases").text
    assert '<script src="/static/leaflet.markercluster/leaflet.markercluster.js">' in page
    assert specs(page)["cases"]["render"] == "cluster"


def test_cases_page_heatmap_uses_the_vendored_plugin(client: TestClient) -> None:
    page = client.get("/maps/cases", params={"view": "heat"}).text
    assert '<script src="/static/leaflet.heat/leaflet-heat.js">' in page
    assert specs(page)["cases"]["render"] == "heat"


@pytest.mark.parametrize(
    "path",
    [
        "/leaflet.markercluster/leaflet.markercluster.js",
        "/leaflet.markercluster/MarkerCluster.css",
        "/leaflet.markercluster/MIT-LICENCE.txt",
        "/leaflet.heat/leaflet-heat.js",
        "/leaflet.heat/LICENSE",
    ],
)
def test_plugins_and_their_licences_are_served(client: TestClient, path: str) -> None:
    assert client.get(f"/static{path}").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        f"/maps/grids/{GRID}",
        "/maps/planner?type=primary_school",
        "/maps/planner",
        "/maps/cases",
        "/maps/cases?view=heat",
        "/",
    ],
)
def test_map_pages_reference_no_other_host(
    client: TestClient, connection: Connection, url: str
) -> None:
    add_grid(connection, GRID, -20.0)
    page = client.get(url).text
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+", page) == []


def test_pages_speak_english_when_asked(client: TestClient, connection: Connection) -> None:
    add_grid(connection, GRID, -20.0)
    page = client.get(f"/maps/grids/{GRID}", params={"lang": "en"}).text
    titles = {name: spec["title"] for name, spec in specs(page).items()}
    assert titles["buildings"] == "Buildings" and titles["cases"] == "Open cases"
    assert ["households", "households"] in specs(page)["stairwells"]["popup"]


def test_pages_speak_chinese_by_default(client: TestClient, connection: Connection) -> None:
    add_grid(connection, GRID, -20.0)
    page = client.get(f"/maps/grids/{GRID}").text
    assert specs(page)["buildings"]["title"] == "建筑"
    assert ["households", "户数"] in specs(page)["stairwells"]["popup"]


def test_detailed_layers_wait_for_their_zoom(client: TestClient, connection: Connection) -> None:
    add_grid(connection, GRID, -20.0)
    layers = specs(client.get(f"/maps/grids/{GRID}").text)
    assert layers["buildings"]["min_zoom"] == 15 and layers["stairwells"]["min_zoom"] == 16
    assert layers["buildings"]["inline"] is False


def test_embedded_grid_map_carries_leaflet_and_its_buildings(connection: Connection) -> None:
    add_grid(connection, GRID, -20.0)
    connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2) VALUES ('test', 'e1', "
            "ST_Multi(ST_MakeEnvelope(-19.998, -39.998, -19.9978, -39.9978, 4326)), 300)"
        )
    )
    page = page_html(grid_map(connection, GRID, embed=True))
    assert "/static/" not in page
    assert 'version="1.9.4"' in page  # Leaflet itself, written into the page
    assert len(specs(page)["buildings"]["data"]["features"]) == 1


def test_proposing_sites_needs_a_facility_type(client: TestClient) -> None:
    response = client.get("/maps/planner", params={"sites": 2})
    assert response.status_code == 422
    assert "sites" in response.text
