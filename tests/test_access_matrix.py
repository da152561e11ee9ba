"""Role × endpoint matrix over every route of the app: each role gets exactly what it may.

:data:`EXPECTED` states, for every route, a URL to call and the roles admitted (``PUBLIC``:
no token needed). It is written out here, independently of the app's own table in
``api/access.py``, and must name every route the app registers: a new route fails
``test_every_route_has_an_expectation`` until its line is added. An admitted role may still
get 404 or 422 (ids and parameters are samples); it must never get 401, 403 or a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.access import app_routes
from api.app import AppSettings, create_app
from gis.auth import ROLES
from gis.settings import ApiSettings, DatabaseSettings
from layers import CATALOGUE
from tests.principals import People, people

PUBLIC = None
EVERYONE = frozenset(ROLES)
OFFICE = frozenset({"admin", "staff"})
FIELD = OFFICE | {"worker"}
HOUSEHOLD = FIELD

GRID = "110108001001001"
# (method, path template) -> (URL called, roles admitted or PUBLIC).
EXPECTED: dict[tuple[str, str], tuple[str, frozenset[str] | None]] = {
    ("GET", "/healthz"): ("/healthz", PUBLIC),
    ("GET", "/"): ("/", PUBLIC),
    ("GET", "/maps/grids/{code}"): (f"/maps/grids/{GRID}", PUBLIC),
    ("GET", "/maps/planner"): ("/maps/planner", PUBLIC),
    ("GET", "/maps/cases"): ("/maps/cases", PUBLIC),
    ("GET", "/layers"): ("/layers", PUBLIC),
    ("GET", "/layers/{name}"): ("/layers/buildings?bbox=-20.01,-40.01,-19.99,-39.99", PUBLIC),
    ("GET", "/locate"): ("/locate?lon=-20&lat=-40", EVERYONE),
    ("GET", "/addresses/resolve"): ("/addresses/resolve?q=12号楼", EVERYONE),
    ("POST", "/cases"): ("/cases", EVERYONE - {"planner"}),
    ("POST", "/cases/{case_id}/location"): ("/cases/999999999/location", FIELD),
    ("POST", "/cases/batch"): ("/cases/batch", OFFICE),
    ("GET", "/cases"): ("/cases?limit=1", FIELD),
    ("GET", "/cases/overdue"): ("/cases/overdue", OFFICE),
    ("GET", "/cases/{case_id}"): ("/cases/999999999", OFFICE | {"department"}),
    ("POST", "/cases/{case_id}/transitions"): (
        "/cases/999999999/transitions",
        EVERYONE - {"planner"},
    ),
    ("GET", "/stats/indicators"): ("/stats/indicators", OFFICE | {"planner"}),
    ("POST", "/siting"): ("/siting", OFFICE | {"planner"}),
    ("GET", "/open311/v2/discovery.json"): ("/open311/v2/discovery.json", PUBLIC),
    ("GET", "/open311/v2/services.json"): ("/open311/v2/services.json", PUBLIC),
    ("GET", "/open311/v2/services/{service_code}.json"): (
        "/open311/v2/services/E0103.json",
        PUBLIC,
    ),
    ("GET", "/open311/v2/requests.json"): ("/open311/v2/requests.json", PUBLIC),
    ("GET", "/open311/v2/requests/{service_request_id}.json"): (
        "/open311/v2/requests/999999999.json",
        PUBLIC,
    ),
    ("POST", "/open311/v2/requests.json"): (
        "/open311/v2/requests.json",
        frozenset({"reporter", "staff", "admin"}),
    ),
    ("GET", "/grids"): ("/grids?limit=1", EVERYONE),
    ("GET", "/grids/{code}"): (f"/grids/{GRID}", EVERYONE),
    ("GET", "/grids/{code}/worker"): (f"/grids/{GRID}/worker", EVERYONE),
    ("GET", "/grids/validate"): ("/grids/validate", OFFICE | {"planner"}),
    ("POST", "/grids/generate"): ("/grids/generate", OFFICE),
    ("GET", "/circles/coverage"): ("/circles/coverage", EVERYONE),
    ("GET", "/circles/missing"): ("/circles/missing", HOUSEHOLD | {"planner"}),
    ("GET", "/circles/at"): ("/circles/at?lon=-20&lat=-40", EVERYONE),
    ("GET", "/circles/isochrone"): ("/circles/isochrone?lon=-20&lat=-40", EVERYONE),
}

# Layers whose rows are personal: a token of a household role is needed whatever the route says.
PERSONAL_LAYERS = sorted(name for name, layer in CATALOGUE.items() if layer.personal)
CALLERS = [*ROLES, None]


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[People]:
    with people(engine) as everyone:
        yield everyone


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _call(client: TestClient, users: People, method: str, url: str, role: str | None) -> int:
    headers = _headers(users, role)
    if method == "GET":
        return int(client.get(url, headers=headers).status_code)
    # Bodies without the required fields: admitted callers get a 4xx, nothing is written.
    if url.startswith("/open311/"):
        # GeoReport v2 posts carry the token as the api_key form field.
        form = {} if role is None else {"api_key": users.tokens[role]}
        return int(client.post(url, data=form).status_code)
    return int(client.post(url, json={}, headers=headers).status_code)


def _headers(users: People, role: str | None) -> dict[str, str]:
    return {} if role is None else users.headers(role)


def test_every_route_has_an_expectation() -> None:
    routes = set(app_routes(create_app(AppSettings())))
    missing = sorted(routes - set(EXPECTED))
    assert not missing, f"add these routes to EXPECTED in {__file__}: {missing}"


def test_every_expectation_is_a_route() -> None:
    routes = set(app_routes(create_app(AppSettings())))
    assert sorted(set(EXPECTED) - routes) == []


def _expected_status(allowed: frozenset[str] | None, role: str | None) -> str:
    if allowed is None:
        return "admitted"
    if role is None:
        return "401"
    return "admitted" if role in allowed else "403"


@pytest.mark.parametrize("role", CALLERS, ids=[r or "no-token" for r in CALLERS])
@pytest.mark.parametrize("route", sorted(EXPECTED), ids=[f"{m} {p}" for m, p in sorted(EXPECTED)])
def test_each_role_gets_exactly_what_it_may(
    client: TestClient, users: People, route: tuple[str, str], role: str | None
) -> None:
    url, allowed = EXPECTED[route]
    status = _call(client, users, route[0], url, role)
    expected = _expected_status(allowed, role)
    if expected == "admitted":
        assert status not in (401, 403) and status < 500, status
    else:
        assert status == int(expected)


@pytest.mark.parametrize("role", CALLERS, ids=[r or "no-token" for r in CALLERS])
@pytest.mark.parametrize("layer", PERSONAL_LAYERS)
def test_personal_layers_need_a_household_role(
    client: TestClient, users: People, layer: str, role: str | None
) -> None:
    url = f"/layers/{layer}?bbox=-20.01,-40.01,-19.99,-39.99"
    status = client.get(url, headers=_headers(users, role)).status_code
    expected = _expected_status(HOUSEHOLD, role)
    if expected == "admitted":
        assert status == 200
    else:
        assert status == int(expected)
