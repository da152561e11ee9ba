"""Open311 GeoReport v2 under ``/open311/v2/``, read by the independent ``georeport`` client.

``georeport`` (PyPI, a read-only GeoReport v2 client) builds the URLs and parses the answers;
its HTTP calls are routed to the app's TestClient so that it runs offline. Every answer is
also checked against the specification's field lists (wiki.open311.org/GeoReport_v2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import georeport.georeport
import pytest
from fastapi.testclient import TestClient
from georeport import GeoReport
from sqlalchemy import Connection, Engine, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from api.routers.workflow import get_workflow_connection
from gis.auth import Principal
from gis.cases.workflow import apply_transition
from gis.settings import ApiSettings, DatabaseSettings
from tests.case_town import X0, Y0, D, Town, seed_town
from tests.principals import People, people
from tests.workflow_client import client_as

ROOT = "http://testserver/open311/v2"
GARBAGE = "E0103"
# In cell 110108011001004 of 八角北路社区 (the seeded town).
LAT, LONG = Y0 + 0.25 * D, X0 + 0.5 * D

SERVICE_FIELDS = {
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
}
ATTRIBUTE_FIELDS = {
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
}
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}
DATETIME_FIELDS = ("requested_datetime", "updated_datetime", "expected_datetime")


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[People]:
    """Committed users with tokens: the reporter's token is the api_key of a reporting app."""
    with people(engine) as everyone:
        yield everyone


@pytest.fixture
def api_key(users: People) -> str:
    return users.tokens["reporter"]


@pytest.fixture
def town(connection: Connection) -> Town:
    return seed_town(connection)


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    # Open311 callers carry no user role: the api_key is the only credential.
    with client_as(database_url, connection, Principal("public")) as test_client:
        yield test_client


@pytest.fixture
def georeport_client(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> GeoReport:
    # The client calls requests.get(url, params=...): hand those calls to the TestClient.
    monkeypatch.setattr(georeport.georeport, "requests", SimpleNamespace(get=client.get))
    return GeoReport(ROOT, jurisdiction="wangge")


Post = Callable[..., Any]
Create = Callable[..., str]


@pytest.fixture
def post(client: TestClient, api_key: str) -> Post:
    def send(**form: str) -> Any:
        return client.post("/open311/v2/requests.json", data={"api_key": api_key, **form})

    return send


@pytest.fixture
def create(post: Post) -> Create:
    def send(**form: str) -> str:
        fields = {"service_code": GARBAGE, "lat": str(LAT), "long": str(LONG), **form}
        response = post(**fields)
        assert response.status_code == 201, response.text
        return str(response.json()[0]["service_request_id"])

    return send


def assert_request_fields(request: dict[str, Any]) -> None:
    assert set(request) == REQUEST_FIELDS
    assert request["status"] in ("open", "closed")
    for name in DATETIME_FIELDS:
        if request[name] is not None:
            assert dt.datetime.fromisoformat(request[name]).tzinfo is not None


def assert_open311_error(response: Any, status_code: int) -> None:
    assert response.status_code == status_code
    body = response.json()
    assert isinstance(body, list)
    assert [set(e) for e in body] == [{"code", "description"}]
    assert body[0]["code"] == status_code


def test_discovery_names_the_georeport_v2_endpoint(client: TestClient) -> None:
    body = client.get("/open311/v2/discovery.json").json()
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == ROOT
    assert "application/json" in endpoint["formats"]


def test_service_list_has_one_service_per_small_class(georeport_client: GeoReport) -> None:
    services = georeport_client.get_service_list()
    assert all(set(s) == SERVICE_FIELDS for s in services)
    garbage = next(s for s in services if s["service_code"] == GARBAGE)
    assert (garbage["service_name"], garbage["group"]) == ("暴露垃圾", "市容环境")
    assert garbage["metadata"] is True
    assert garbage["type"] == "realtime"


def test_service_definition_carries_the_filing_standard(georeport_client: GeoReport) -> None:
    definition = georeport_client.get_service_definition(GARBAGE)
    assert definition["service_code"] == GARBAGE
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert all(set(a) == ATTRIBUTE_FIELDS for a in attributes.values())
    assert all(a["variable"] is False for a in attributes.values())
    assert "道路、广场、绿地内暴露垃圾" in attributes["filing_condition"]["description"]
    assert "4 working hours" in attributes["time_limit"]["description"]
    assert "垃圾已清运，现场整洁" in attributes["closing_condition"]["description"]
    assert "环卫中心" in attributes["department"]["description"]


def test_unknown_service_is_404_in_open311_format(client: TestClient) -> None:
    assert_open311_error(client.get("/open311/v2/services/X9999.json"), 404)


def test_post_without_api_key_is_401_in_open311_format(client: TestClient, town: Town) -> None:
    response = client.post(
        "/open311/v2/requests.json",
        data={"service_code": GARBAGE, "lat": str(LAT), "long": str(LONG)},
    )
    assert_open311_error(response, 401)


def test_post_with_a_wrong_api_key_is_403_in_open311_format(client: TestClient, town: Town) -> None:
    response = client.post(
        "/open311/v2/requests.json",
        data={"api_key": "guess", "service_code": GARBAGE, "lat": str(LAT), "long": str(LONG)},
    )
    assert_open311_error(response, 403)


def test_post_with_the_token_of_a_planner_is_403(
    client: TestClient, town: Town, users: People
) -> None:
    response = client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": users.tokens["planner"],
            "service_code": GARBAGE,
            "lat": str(LAT),
            "long": str(LONG),
        },
    )
    assert_open311_error(response, 403)


@pytest.fixture
def guarded(database_url: str, connection: Connection) -> Iterator[TestClient]:
    """The app with access control on: the api_key is authenticated before the route."""
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True),
    )
    app = create_app(settings)
    app.dependency_overrides[get_read_connection] = lambda: connection
    app.dependency_overrides[get_workflow_connection] = lambda: connection
    with TestClient(app) as test_client:
        yield test_client


def test_with_access_control_a_reporter_token_posts(
    guarded: TestClient, town: Town, api_key: str
) -> None:
    response = guarded.post(
        "/open311/v2/requests.json",
        data={"api_key": api_key, "service_code": GARBAGE, "lat": str(LAT), "long": str(LONG)},
    )
    assert response.status_code == 201, response.text


def test_with_access_control_a_missing_api_key_is_401_in_open311_format(
    guarded: TestClient, town: Town
) -> None:
    response = guarded.post(
        "/open311/v2/requests.json",
        data={"service_code": GARBAGE, "lat": str(LAT), "long": str(LONG)},
    )
    assert_open311_error(response, 401)


def test_with_access_control_a_planner_token_is_403_in_open311_format(
    guarded: TestClient, town: Town, users: People
) -> None:
    response = guarded.post(
        "/open311/v2/requests.json",
        data={
            "api_key": users.tokens["planner"],
            "service_code": GARBAGE,
            "lat": str(LAT),
            "long": str(LONG),
        },
    )
    assert_open311_error(response, 403)


def test_with_access_control_reads_need_no_key(guarded: TestClient) -> None:
    assert guarded.get("/open311/v2/services.json").status_code == 200
    assert guarded.get("/open311/v2/requests.json").status_code == 200


def test_posted_lat_long_case_lands_in_its_grid(
    client: TestClient, connection: Connection, town: Town, create: Create
) -> None:
    request_id = create(description="路边垃圾")
    grid = connection.execute(
        text("SELECT g.code FROM cases k JOIN grid g ON g.id = k.grid_id WHERE k.id = :id"),
        {"id": int(request_id)},
    ).scalar_one()
    assert grid == "110108011001004"


def test_post_answers_the_request_id_and_the_time_limit(
    client: TestClient, town: Town, post: Post
) -> None:
    response = post(service_code=GARBAGE, lat=str(LAT), long=str(LONG))
    (answer,) = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    assert "4 working hours" in answer["service_notice"]


def test_posted_address_string_is_resolved_to_its_stairwell(
    client: TestClient, connection: Connection, town: Town, create: Create
) -> None:
    request_id = create(lat="", long="", address_string="八角南路社区 12号楼1单元")
    stairwell = connection.execute(
        text("SELECT stairwell_id FROM cases WHERE id = :id"), {"id": int(request_id)}
    ).scalar_one()
    assert stairwell == town.stairwells["south-12-1"]


def test_post_without_a_location_is_400_in_open311_format(
    client: TestClient, town: Town, post: Post
) -> None:
    assert_open311_error(post(service_code=GARBAGE), 400)


def test_post_with_an_unknown_service_code_is_400(
    client: TestClient, town: Town, post: Post
) -> None:
    response = post(service_code="X9999", lat=str(LAT), long=str(LONG))
    assert_open311_error(response, 400)
    assert "service_code" in response.json()[0]["description"]


def test_post_with_latitude_out_of_range_is_400_naming_lat(
    client: TestClient, town: Town, post: Post
) -> None:
    response = post(service_code=GARBAGE, lat="95", long=str(LONG))
    assert_open311_error(response, 400)
    assert response.json()[0]["description"].startswith("lat")


def test_new_request_is_open_with_the_fine_state_in_the_notes(
    georeport_client: GeoReport, client: TestClient, town: Town, create: Create
) -> None:
    request = georeport_client.get_service_request(create())
    assert_request_fields(request)
    assert request["status"] == "open"
    assert request["status_notes"].startswith("reported")
    assert request["agency_responsible"] == "环卫中心"
    assert request["expected_datetime"] is None
    assert (request["lat"], request["long"]) == pytest.approx((LAT, LONG))


def test_dispatched_request_expects_its_deadline_from_its_department(
    georeport_client: GeoReport,
    client: TestClient,
    connection: Connection,
    town: Town,
    create: Create,
) -> None:
    request_id = create()
    apply_transition(connection, int(request_id), "filed", actor="s", role="staff")
    view = apply_transition(
        connection, int(request_id), "dispatched", actor="s", role="staff", receiver="物业公司"
    )
    request = georeport_client.get_service_request(request_id)
    assert view.deadline is not None
    assert dt.datetime.fromisoformat(request["expected_datetime"]) == view.deadline
    assert request["agency_responsible"] == "物业公司"
    assert request["status_notes"].startswith("dispatched")


def test_voided_request_is_closed_with_the_fine_state_in_the_notes(
    georeport_client: GeoReport,
    client: TestClient,
    connection: Connection,
    town: Town,
    create: Create,
) -> None:
    request_id = create()
    apply_transition(
        connection, int(request_id), "voided", actor="s", role="staff", reason="重复上报"
    )
    request = georeport_client.get_service_request(request_id)
    assert request["status"] == "closed"
    assert request["status_notes"].startswith("voided")


def test_requests_filter_by_status(
    georeport_client: GeoReport,
    client: TestClient,
    connection: Connection,
    town: Town,
    create: Create,
) -> None:
    kept, voided = create(), create()
    apply_transition(connection, int(voided), "voided", actor="s", role="staff", reason="重复")
    open_ids = {
        r["service_request_id"] for r in georeport_client.get_service_requests(status="open")
    }
    closed = georeport_client.get_service_requests(status="closed")
    assert kept in open_ids and voided not in open_ids
    assert [r["service_request_id"] for r in closed] == [voided]


def test_requests_filter_by_service_code(
    georeport_client: GeoReport, client: TestClient, town: Town, create: Create
) -> None:
    garbage, ads = create(), create(service_code="E0201")
    found = georeport_client.get_service_requests(service_code="E0201")
    assert [r["service_request_id"] for r in found] == [ads]
    assert garbage not in {r["service_request_id"] for r in found}


def test_requests_by_ids_ignore_the_other_filters(
    georeport_client: GeoReport, client: TestClient, town: Town, create: Create
) -> None:
    first, second = create(), create()
    found = georeport_client.get_service_requests(
        service_request_id=f"{first},{second}", service_code="E0201"
    )
    assert sorted(r["service_request_id"] for r in found) == sorted([first, second])
    assert all(set(r) == REQUEST_FIELDS for r in found)


def _insert_reported(connection: Connection, days_ago: float, count: int = 1) -> list[str]:
    rows = connection.execute(
        text(
            "INSERT INTO cases (category_code, geom, reported_at) SELECT 'E0103',"
            " ST_Point(:lon, :lat, 4326), now() - make_interval(secs => :s)"
            " FROM generate_series(1, :n) RETURNING id"
        ),
        {"lon": LONG, "lat": LAT, "s": days_ago * 86_400, "n": count},
    )
    return [str(r[0]) for r in rows]


def test_requests_default_to_the_last_90_days(
    georeport_client: GeoReport, connection: Connection
) -> None:
    (recent,) = _insert_reported(connection, 89)
    (old,) = _insert_reported(connection, 91)
    ids = {r["service_request_id"] for r in georeport_client.get_service_requests()}
    assert recent in ids and old not in ids


def test_requests_between_dates_reach_further_back(
    georeport_client: GeoReport, connection: Connection
) -> None:
    (old,) = _insert_reported(connection, 120)
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=130)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (dt.datetime.now(dt.UTC) - dt.timedelta(days=110)).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = georeport_client.get_service_requests(start_date=start, end_date=end)
    assert [r["service_request_id"] for r in found] == [old]


def test_requests_answer_at_most_the_first_1000(
    georeport_client: GeoReport, connection: Connection
) -> None:
    _insert_reported(connection, 1, count=1001)
    assert len(georeport_client.get_service_requests()) == 1000


def test_a_date_that_is_not_iso_8601_is_400_in_open311_format(client: TestClient) -> None:
    response = client.get("/open311/v2/requests.json", params={"start_date": "22/11/2026"})
    assert_open311_error(response, 400)
    assert "start_date" in response.json()[0]["description"]


def test_unknown_request_is_404_in_open311_format(client: TestClient) -> None:
    assert_open311_error(client.get("/open311/v2/requests/99999999.json"), 404)


def test_reporter_contact_never_appears_in_get_answers(
    client: TestClient, town: Town, create: Create
) -> None:
    request_id = create(first_name="小明", last_name="张", phone="13811112222")
    answers = [
        client.get("/open311/v2/requests.json").text,
        client.get(f"/open311/v2/requests/{request_id}.json").text,
    ]
    for answer in answers:
        assert request_id in answer
        assert "13811112222" not in answer
        assert "小明" not in answer


def test_reporter_contact_is_kept_for_staff(
    client: TestClient, connection: Connection, town: Town, create: Create
) -> None:
    request_id = create(first_name="小明", last_name="张", phone="13811112222")
    row = connection.execute(
        text("SELECT reporter_name, reporter_phone FROM cases WHERE id = :id"),
        {"id": int(request_id)},
    ).one()
    assert tuple(row) == ("张小明", "13811112222")
