"""With access control on, the maps draw public layers without a token; personal ones need one.

Users and tokens are committed (authentication reads them through the app's own engine), see
``tests/principals.py``; layer rows live in the test's rolled-back ``connection``.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from gis.settings import ApiSettings, DatabaseSettings
from tests.principals import People, people

BOX = "-20.01,-40.01,-19.99,-39.99"


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[People]:
    with people(engine) as created:
        yield created


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize("name", ["buildings", "streets", "facilities", "grids", "communities"])
def test_public_layers_answer_without_a_token(client: TestClient, name: str) -> None:
    response = client.get(f"/layers/{name}", params={"bbox": BOX})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["stairwells", "cases"])
def test_personal_layers_answer_401_without_a_token(client: TestClient, name: str) -> None:
    response = client.get(f"/layers/{name}", params={"bbox": BOX})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_personal_layer_answers_staff_with_a_token(client: TestClient, users: People) -> None:
    response = client.get(
        "/layers/stairwells", params={"bbox": BOX}, headers=users.headers("staff")
    )
    assert response.status_code == 200


def test_personal_layer_refuses_a_planner_token(client: TestClient, users: People) -> None:
    response = client.get("/layers/cases", params={"bbox": BOX}, headers=users.headers("planner"))
    assert response.status_code == 403


def test_a_forged_token_on_a_public_layer_gets_401(client: TestClient) -> None:
    response = client.get(
        "/layers/buildings", params={"bbox": BOX}, headers={"Authorization": "Bearer forged"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("url", ["/maps/planner", "/maps/cases", "/maps/grids/000000000000000"])
def test_map_pages_open_without_a_token(client: TestClient, url: str) -> None:
    assert client.get(url).status_code in {200, 404}
    assert client.get(url).headers["content-type"].startswith("text/html")
