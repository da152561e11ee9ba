"""``/healthz`` really queries PostGIS: 200 with versions, 503 with a reason when unreachable."""

import gc
import socket

from fastapi.testclient import TestClient

from api.app import AppSettings, create_app
from api.schemas import Health
from gis.settings import DatabaseSettings


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthz_reports_postgresql_and_postgis_versions(database_url: str) -> None:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    health = Health.model_validate(response.json())
    assert health.status == "ok"
    assert health.postgis is not None and health.postgis.startswith("3.")
    assert health.postgresql is not None


def test_healthz_is_503_with_reason_when_postgis_is_unreachable() -> None:
    url = f"postgresql+psycopg://wangge@127.0.0.1:{closed_port()}/wangge"
    app = create_app(AppSettings(database=DatabaseSettings(database_url=url)))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    health = Health.model_validate(response.json())
    assert health.status == "unavailable"
    assert health.reason and "refused" in health.reason.lower()


def test_layer_request_is_503_when_postgis_is_unreachable() -> None:
    url = f"postgresql+psycopg://wangge@127.0.0.1:{closed_port()}/wangge"
    app = create_app(AppSettings(database=DatabaseSettings(database_url=url)))
    with TestClient(app) as client:
        response = client.get("/layers/buildings?bbox=116.3,39.9,116.31,39.91")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_app_keeps_its_startup_objects_out_of_full_collections_while_serving(
    database_url: str,
) -> None:
    app = create_app(AppSettings(database=DatabaseSettings(database_url=database_url)))
    with TestClient(app) as client:
        assert gc.get_freeze_count() > 0
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() == 0
