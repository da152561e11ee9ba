"""The map page at ``/``: offline Leaflet from ``/static``, every layer fetched from ``/layers``.

As in ``test_api_layers``, the app's connection is the test's rolled-back ``connection``.
"""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from gis.settings import DatabaseSettings
from layers import CATALOGUE


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def page(client: TestClient) -> str:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_map_page_references_no_other_host(page: str) -> None:
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+", page) == []


def test_map_page_loads_leaflet_from_static(page: str) -> None:
    assert '<script src="/static/leaflet/leaflet.js"></script>' in page
    assert 'href="/static/leaflet/leaflet.css"' in page


def test_map_page_credits_openstreetmap(page: str) -> None:
    assert "© OpenStreetMap contributors" in page


def test_map_page_fetches_every_catalogue_layer(page: str) -> None:
    for name in CATALOGUE:
        assert f'"/layers/{name}"' in page


def test_map_page_opens_on_the_data(client: TestClient, connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2) VALUES ('test', 'm1', "
            "ST_Multi(ST_MakeEnvelope(-20.0, -40.0, -19.9998, -39.9998, 4326)), 300)"
        )
    )
    page = client.get("/").text
    match = re.search(r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", page)
    assert match is not None
    south, west, north, east = map(float, match.groups())
    assert south <= -40.0 and west <= -20.0 and north >= -39.9998 and east >= -19.9998


def test_leaflet_is_served_from_static(client: TestClient) -> None:
    response = client.get("/static/leaflet/leaflet.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "1.9.4" in response.text


def test_leaflet_marker_images_are_served(client: TestClient) -> None:
    response = client.get("/static/leaflet/images/marker-icon.png")
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")
