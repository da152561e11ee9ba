"""``/layers``: GeoJSON of catalogue layers by bbox, and every bad input named in a 4xx.

The app is built with settings pointing at the session's test database (so ``/healthz`` and the
engine are real), and its connection dependency is overridden with the test's rolled-back
``connection``: rows inserted here are seen by the API and vanish after each test. Test rows
lie in the South Atlantic (around 20°W 40°S) where no imported area reaches.
"""

import re
import socket
from collections.abc import Iterator

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import Connection, text

from api.app import AppSettings, create_app
from api.deps import get_principal, get_read_connection
from api.schemas import FeatureCollection
from gis.settings import ApiSettings, DatabaseSettings
from layers import CATALOGUE

BOX = "-20.01,-40.01,-19.99,-39.99"


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(layer_limit_default=100, layer_limit_max=500),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


def add_building(connection: Connection, source_id: str, lon: float, lat: float) -> int:
    """Insert a 0.0002° square building with its south-west corner at lon, lat."""
    return int(
        connection.execute(
            text(
                "INSERT INTO building (source, source_id, name, use, levels, footprint, area_m2, "
                "tags) VALUES ('test', :sid, :name, 'residential', 6, ST_Multi(ST_MakeEnvelope("
                ':lon, :lat, :lon + 0.0002, :lat + 0.0002, 4326)), 380, \'{"phone": "1"}\') '
                "RETURNING id"
            ),
            {"sid": source_id, "name": f"{source_id}号楼", "lon": lon, "lat": lat},
        ).scalar_one()
    )


def add_grid(connection: Connection, code: str, *, retired: bool) -> int:
    worker = connection.execute(
        text("INSERT INTO grid_worker (name, phone) VALUES ('张三', '13800000000') RETURNING id")
    ).scalar_one()
    return int(
        connection.execute(
            text(
                "INSERT INTO grid (code, kind, worker_id, geom, valid_from, valid_to) VALUES "
                "(:code, 'unit', :worker, ST_Multi(ST_MakeEnvelope(-20.005, -40.005, -20.0, "
                "-40.0, 4326)), '2024-01-01', CASE WHEN :retired THEN "
                "'2025-01-01'::timestamptz END) RETURNING id"
            ),
            {"code": code, "worker": worker, "retired": retired},
        ).scalar_one()
    )


def get_collection(client: TestClient, url: str) -> FeatureCollection:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return FeatureCollection.model_validate(response.json())


def test_buildings_layer_returns_only_features_intersecting_bbox(
    client: TestClient, connection: Connection
) -> None:
    inside = add_building(connection, "in", -20.0, -40.0)
    add_building(connection, "out", -19.9, -40.0)
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}")
    assert [f.id for f in collection.features] == [inside]


def test_building_crossing_the_bbox_edge_is_returned(
    client: TestClient, connection: Connection
) -> None:
    crossing = add_building(connection, "edge", -19.9901, -40.0)
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}")
    assert [f.id for f in collection.features] == [crossing]


def test_feature_geometry_is_the_stored_footprint_in_lonlat(
    client: TestClient, connection: Connection
) -> None:
    add_building(connection, "geom", -20.0, -40.0)
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}")
    geometry = shape(collection.features[0].geometry.model_dump())
    assert geometry.geom_type == "MultiPolygon"
    assert geometry.bounds == pytest.approx((-20.0, -40.0, -19.9998, -39.9998), abs=1e-7)


def test_features_carry_exactly_the_catalogue_properties(
    client: TestClient, connection: Connection
) -> None:
    add_building(connection, "props", -20.0, -40.0)
    feature = get_collection(client, f"/layers/buildings?bbox={BOX}").features[0]
    assert set(feature.properties) == set(CATALOGUE["buildings"].source.properties)
    assert feature.properties["name"] == "props号楼"


def test_property_text_is_json_escaped(client: TestClient, connection: Connection) -> None:
    building = add_building(connection, "esc", -20.0, -40.0)
    tricky = 'A "quoted" \\ name\n第2幢'
    connection.execute(
        text("UPDATE building SET name = :name, levels = NULL WHERE id = :id"),
        {"name": tricky, "id": building},
    )
    feature = get_collection(client, f"/layers/buildings?bbox={BOX}").features[0]
    assert feature.properties["name"] == tricky
    assert feature.properties["levels"] is None


def test_response_is_geojson_media_type(client: TestClient) -> None:
    response = client.get(f"/layers/buildings?bbox={BOX}")
    assert response.headers["content-type"] == "application/geo+json"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_catalogue_layer_answers_a_feature_collection(client: TestClient, name: str) -> None:
    collection = get_collection(client, f"/layers/{name}?bbox={BOX}")
    assert collection.features == []
    assert collection.truncated is False


def test_stairwells_layer_shows_households_and_elderly_but_not_residents(
    client: TestClient, connection: Connection
) -> None:
    building = add_building(connection, "sw", -20.0, -40.0)
    connection.execute(
        text(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, "
            "elderly, estimated, source) VALUES (:b, 1, ST_Point(-19.9999, -39.9999, 4326), "
            "12, 31, 6, true, 'estimate')"
        ),
        {"b": building},
    )
    feature = get_collection(client, f"/layers/stairwells?bbox={BOX}").features[0]
    assert (feature.properties["households"], feature.properties["elderly"]) == (12, 6)
    assert "residents" not in feature.properties


def test_grids_layer_returns_current_grids_only(client: TestClient, connection: Connection) -> None:
    current = add_grid(connection, "110108001001001", retired=False)
    add_grid(connection, "110108001001002", retired=True)
    collection = get_collection(client, f"/layers/grids?bbox={BOX}")
    assert [f.id for f in collection.features] == [current]


def test_grids_layer_does_not_expose_the_worker(client: TestClient, connection: Connection) -> None:
    add_grid(connection, "110108001001003", retired=False)
    feature = get_collection(client, f"/layers/grids?bbox={BOX}").features[0]
    assert "worker_id" not in feature.properties
    assert "13800000000" not in str(feature.properties)


def test_response_says_truncated_when_more_features_match_than_limit(
    client: TestClient, connection: Connection
) -> None:
    ids = [add_building(connection, f"t{i}", -20.0 + i * 0.001, -40.0) for i in range(3)]
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}&limit=2")
    assert [f.id for f in collection.features] == ids[:2]
    assert collection.truncated is True
    assert collection.number_returned == 2


def test_response_is_not_truncated_when_all_features_fit(
    client: TestClient, connection: Connection
) -> None:
    for i in range(2):
        add_building(connection, f"f{i}", -20.0 + i * 0.001, -40.0)
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}&limit=2")
    assert collection.number_returned == 2
    assert collection.truncated is False


def test_default_limit_comes_from_settings(client: TestClient, connection: Connection) -> None:
    for i in range(101):
        add_building(connection, f"d{i}", -20.0 + (i % 10) * 0.0009, -40.0 + (i // 10) * 0.0009)
    collection = get_collection(client, f"/layers/buildings?bbox={BOX}")
    assert collection.number_returned == 100
    assert collection.truncated is True


def test_layer_without_bbox_returns_features_anywhere(
    client: TestClient, connection: Connection
) -> None:
    far = add_building(connection, "far", 170.0, 60.0)
    collection = get_collection(client, "/layers/buildings?limit=500")
    assert far in {f.id for f in collection.features}


def test_unknown_layer_is_404_naming_it_and_the_known_layers(client: TestClient) -> None:
    response = client.get(f"/layers/households?bbox={BOX}")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "'households'" in detail
    assert all(name in detail for name in CATALOGUE)


@pytest.mark.parametrize(
    "bbox",
    [
        pytest.param("1,2,3", id="three-numbers"),
        pytest.param("1,2,3,4,5", id="five-numbers"),
        pytest.param("", id="empty"),
        pytest.param("a,b,c,d", id="not-numbers"),
        pytest.param("116.3,39.9,116.4,", id="missing-value"),
        pytest.param("nan,39.9,116.4,40.0", id="nan"),
        pytest.param("116.3,39.9,inf,40.0", id="infinite"),
        pytest.param("116.4,39.9,116.3,40.0", id="minlon-above-maxlon"),
        pytest.param("116.3,40.0,116.4,39.9", id="minlat-above-maxlat"),
        pytest.param("-190,39.9,116.4,40.0", id="longitude-out-of-range"),
        pytest.param("116.3,-91,116.4,40.0", id="latitude-out-of-range"),
        pytest.param("39.9,116.3,40.0,116.4", id="lat-lon-swapped"),
    ],
)
def test_malformed_bbox_is_422_naming_bbox(client: TestClient, bbox: str) -> None:
    response = client.get("/layers/buildings", params={"bbox": bbox})
    assert response.status_code == 422
    assert response.json()["parameter"] == "bbox"


def test_swapped_bbox_error_says_lat_lon_order(client: TestClient) -> None:
    response = client.get("/layers/buildings?bbox=39.9,116.3,40.0,116.4")
    assert "lat,lon" in response.json()["detail"]


@pytest.mark.parametrize("limit", ["0", "-5", "501", "ten", "2.5"])
def test_limit_outside_range_is_422_naming_limit(client: TestClient, limit: str) -> None:
    response = client.get(f"/layers/buildings?bbox={BOX}&limit={limit}")
    assert response.status_code == 422
    assert response.json()["parameter"] == "limit"


def test_layers_index_lists_the_catalogue(client: TestClient) -> None:
    names = [layer["name"] for layer in client.get("/layers").json()]
    assert names == list(CATALOGUE)


def test_every_route_passes_through_get_principal(client: TestClient) -> None:
    def deny() -> None:
        raise HTTPException(status_code=401, detail="signed out")

    app = client.app
    assert hasattr(app, "dependency_overrides")
    app.dependency_overrides[get_principal] = deny
    # Every documented operation, plus the map page (kept out of the OpenAPI document).
    paths = client.get("/openapi.json").json()["paths"]
    operations = [(m.upper(), p) for p, ops in paths.items() for m in ops] + [("GET", "/")]
    assert {("GET", "/healthz"), ("GET", "/layers"), ("GET", "/layers/{name}")} <= set(operations)
    answers = {
        (method, path): client.request(
            method, re.sub(r"\{[^}]+\}", "1", path.replace("{name}", "buildings"))
        ).status_code
        for method, path in operations
    }
    assert answers == dict.fromkeys(operations, 401)


@pytest.mark.parametrize(
    ("url", "status"),
    [("/layers/nope", 404), ("/layers/buildings?bbox=1,2", 422), ("/layers/grids?limit=0", 422)],
)
def test_bad_input_is_rejected_before_a_connection_is_checked_out(url: str, status: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    database = DatabaseSettings(database_url=f"postgresql+psycopg://u@127.0.0.1:{closed}/x")
    with TestClient(create_app(AppSettings(database=database))) as offline:
        assert offline.get(url).status_code == status


def test_layers_are_read_through_the_app_engine(database_url: str) -> None:
    # No override: the app's own pooled, autocommit read connection against the test database.
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    with TestClient(app) as own:
        for _ in range(3):
            collection = get_collection(own, f"/layers/grids?bbox={BOX}")
            assert collection.truncated is False
