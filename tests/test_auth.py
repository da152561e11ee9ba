"""Users, tokens and scopes: who is let in, what a worker sees, what is recorded.

Users and tokens are committed through the session engine (the app authenticates on its own
connection); map rows are inserted in the test's rolled-back connection, which the app reads
through the overridden read connection. Test rows lie in the South Atlantic (around 20°W 40°S).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from api.app import AppSettings, create_app
from api.deps import get_read_connection
from gis.auth import (
    AuthenticationError,
    Principal,
    add_user,
    authenticate_token,
    grid_scope_sql,
    issue_token,
    revoke_tokens,
)
from gis.errors import InputError
from gis.settings import ApiSettings, DatabaseSettings
from tests.principals import People, people

WEST = "-20.02,-40.01,-19.98,-39.99"  # covers both test grids
OTHER_ONLY = "-19.999,-40.01,-19.98,-39.99"  # covers only the other worker's grid


@pytest.fixture(scope="module")
def users(engine: Engine) -> Iterator[People]:
    with people(engine) as everyone:
        yield everyone


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


def _grid(connection: Connection, code: str, worker_id: int, west: float) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO grid (code, kind, worker_id, geom) VALUES (:code, 'service', :w, "
                "ST_Multi(ST_MakeEnvelope(:west, -40.01, :west + 0.01, -39.99, 4326))) RETURNING id"
            ),
            {"code": code, "w": worker_id, "west": west},
        ).scalar_one()
    )


def _stairwell(connection: Connection, source_id: str, lon: float) -> int:
    building = connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2) VALUES ('authtest', :s, "
            "ST_Multi(ST_MakeEnvelope(:lon, -40.0, :lon + 0.0002, -39.9998, 4326)), 300) "
            "RETURNING id"
        ),
        {"s": source_id, "lon": lon},
    ).scalar_one()
    return int(
        connection.execute(
            text(
                "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, "
                "elderly, estimated, source) VALUES (:b, 1, ST_Point(:lon, -40.0, 4326), 12, 30, "
                "5, false, 'authtest') RETURNING id"
            ),
            {"b": building, "lon": lon + 0.0001},
        ).scalar_one()
    )


@pytest.fixture
def two_grids(connection: Connection, users: People) -> dict[str, int]:
    """The worker's grid (west half) and another worker's grid (east half), a stairwell in each."""
    other = connection.execute(
        text("INSERT INTO grid_worker (name, phone) VALUES ('李四', '13700000000') RETURNING id")
    ).scalar_one()
    _grid(connection, "990000000000001", users.worker_id, -20.01)
    _grid(connection, "990000000000002", int(other), -20.0)
    return {
        "mine": _stairwell(connection, "mine", -20.005),
        "other": _stairwell(connection, "other", -19.995),
    }


def _ids(response_json: dict[str, object]) -> set[int]:
    features = response_json["features"]
    assert isinstance(features, list)
    return {int(f["id"]) for f in features}


def test_only_the_hash_of_a_token_is_stored(connection: Connection) -> None:
    add_user(connection, "hash-probe", role="staff")
    token = issue_token(connection, "hash-probe", days=1)
    stored = connection.execute(
        text(
            "SELECT t.token_hash FROM api_token t JOIN app_user u ON u.id = t.user_id "
            "WHERE u.name = 'hash-probe'"
        )
    ).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


def test_a_token_authenticates_as_its_user_and_role(connection: Connection) -> None:
    add_user(connection, "role-probe", role="planner")
    principal = authenticate_token(connection, issue_token(connection, "role-probe", days=1))
    assert (principal.name, principal.roles, principal.authenticated) == (
        "role-probe",
        frozenset({"planner"}),
        True,
    )


def test_an_expired_token_is_refused(connection: Connection) -> None:
    add_user(connection, "expiry-probe", role="staff")
    token = issue_token(connection, "expiry-probe", days=1)
    connection.execute(text("UPDATE api_token SET expires_at = now() - interval '1 second'"))
    with pytest.raises(AuthenticationError):
        authenticate_token(connection, token)


def test_a_revoked_token_is_refused(connection: Connection) -> None:
    add_user(connection, "revoke-probe", role="staff")
    token = issue_token(connection, "revoke-probe", days=1)
    assert revoke_tokens(connection, "revoke-probe", token=token) == 1
    with pytest.raises(AuthenticationError):
        authenticate_token(connection, token)


def test_revoking_one_token_keeps_the_users_others(connection: Connection) -> None:
    add_user(connection, "keep-probe", role="staff")
    first = issue_token(connection, "keep-probe", days=1)
    second = issue_token(connection, "keep-probe", days=1)
    revoke_tokens(connection, "keep-probe", token=first)
    assert authenticate_token(connection, second).name == "keep-probe"


def test_a_worker_user_needs_its_grid_worker(connection: Connection) -> None:
    with pytest.raises(InputError) as caught:
        add_user(connection, "no-worker", role="worker")
    assert caught.value.field == "worker_id"


def test_an_unknown_role_is_refused_by_name(connection: Connection) -> None:
    with pytest.raises(InputError) as caught:
        add_user(connection, "bad-role", role="root")
    assert caught.value.field == "role"


def test_scope_helper_refuses_a_non_identifier_column() -> None:
    worker = Principal("w", roles=frozenset({"worker"}), authenticated=True, worker_id=1)
    with pytest.raises(ValueError, match="identifier"):
        grid_scope_sql(worker, grid_column="grid_id; DROP TABLE cases")


def test_unscoped_roles_get_no_condition() -> None:
    staff = Principal("s", roles=frozenset({"staff"}), authenticated=True)
    assert grid_scope_sql(staff, grid_column="cases.grid_id") == ("TRUE", {})


def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/locate", params={"lon": "-20", "lat": "-40"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_forged_token_gets_401(client: TestClient) -> None:
    response = client.get("/cases", headers={"Authorization": "Bearer forged-token-abc"})
    assert response.status_code == 401


def test_an_expired_token_gets_401(client: TestClient, engine: Engine) -> None:
    with people(engine) as short:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE api_token SET expires_at = now() - interval '1 second' "
                    "WHERE user_id = (SELECT id FROM app_user WHERE name = :n)"
                ),
                {"n": short.names["staff"]},
            )
        assert client.get("/cases", headers=short.headers("staff")).status_code == 401


def test_a_revoked_token_gets_401(client: TestClient, engine: Engine) -> None:
    with people(engine) as revoked:
        with engine.begin() as connection:
            revoke_tokens(connection, revoked.names["staff"])
        assert client.get("/cases", headers=revoked.headers("staff")).status_code == 401


def test_a_token_of_the_wrong_role_gets_403(client: TestClient, users: People) -> None:
    assert client.get("/cases", headers=users.headers("planner")).status_code == 403


def test_an_api_key_query_parameter_is_a_token(client: TestClient, users: People) -> None:
    params = {"lon": "-20", "lat": "-40", "api_key": users.tokens["reporter"]}
    assert client.get("/locate", params=params).status_code == 200


def test_public_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/layers").status_code == 200


def test_a_worker_sees_only_their_grids_stairwells(
    client: TestClient, users: People, two_grids: dict[str, int]
) -> None:
    response = client.get(
        "/layers/stairwells", params={"bbox": WEST}, headers=users.headers("worker")
    )
    assert _ids(response.json()) == {two_grids["mine"]}


def test_a_worker_asking_for_another_grid_by_bbox_gets_nothing(
    client: TestClient, users: People, two_grids: dict[str, int]
) -> None:
    response = client.get(
        "/layers/stairwells", params={"bbox": OTHER_ONLY}, headers=users.headers("worker")
    )
    assert response.json()["features"] == []


def test_staff_see_every_stairwell(
    client: TestClient, users: People, two_grids: dict[str, int]
) -> None:
    response = client.get(
        "/layers/stairwells", params={"bbox": WEST}, headers=users.headers("staff")
    )
    assert _ids(response.json()) == set(two_grids.values())


@pytest.mark.parametrize("role", ["planner", "reporter"])
def test_household_rows_are_refused_to_aggregate_and_reporting_roles(
    client: TestClient, users: People, role: str
) -> None:
    response = client.get("/layers/stairwells", params={"bbox": WEST}, headers=users.headers(role))
    assert response.status_code == 403


def test_non_household_layers_answer_a_planner(client: TestClient, users: People) -> None:
    response = client.get(
        "/layers/buildings", params={"bbox": WEST}, headers=users.headers("planner")
    )
    assert response.status_code == 200


def test_a_household_layer_read_is_audited(
    client: TestClient, connection: Connection, users: People, two_grids: dict[str, int]
) -> None:
    client.get("/layers/stairwells", params={"bbox": WEST}, headers=users.headers("worker"))
    row = connection.execute(
        text(
            "SELECT action, resource, detail->>'layer' FROM audit_log WHERE actor = :n "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"n": users.names["worker"]},
    ).one()
    assert tuple(row) == ("read", "stairwell", "stairwells")


def test_a_successful_write_is_audited_with_its_author(
    client: TestClient, engine: Engine, users: People
) -> None:
    body = {
        "category": "E0103",
        "lon": -20.5,
        "lat": -40.5,
        "external_id": f"audit-{users.names['reporter']}",
    }
    try:
        response = client.post("/cases", json=body, headers=users.headers("reporter"))
        assert response.status_code == 201
        with engine.connect() as connection:
            resource = connection.execute(
                text("SELECT resource FROM audit_log WHERE actor = :n AND action = 'write'"),
                {"n": users.names["reporter"]},
            ).scalar_one()
        assert resource == "POST /cases"
    finally:
        # The route commits on its own connection: leave no case behind for other tests.
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM cases WHERE external_id = :e"), {"e": body["external_id"]}
            )


def test_without_the_cache_a_token_revoked_after_use_is_refused_at_once(
    database_url: str, engine: Engine
) -> None:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True, auth_cache_seconds=0),
    )
    with people(engine) as later, TestClient(create_app(settings)) as uncached:
        assert uncached.get("/cases?limit=1", headers=later.headers("staff")).status_code == 200
        with engine.begin() as connection:
            revoke_tokens(connection, later.names["staff"])
        assert uncached.get("/cases?limit=1", headers=later.headers("staff")).status_code == 401


def test_a_checked_token_is_trusted_for_the_cache_period(database_url: str, engine: Engine) -> None:
    settings = AppSettings(
        database=DatabaseSettings(database_url=database_url),
        api=ApiSettings(auth_required=True, auth_cache_seconds=3600),
    )
    with people(engine) as later, TestClient(create_app(settings)) as cached:
        assert cached.get("/cases?limit=1", headers=later.headers("staff")).status_code == 200
        with engine.begin() as connection:
            revoke_tokens(connection, later.names["staff"])
        assert cached.get("/cases?limit=1", headers=later.headers("staff")).status_code == 200


def test_a_worker_lists_only_the_cases_of_their_grids(
    client: TestClient, connection: Connection, users: People, two_grids: dict[str, int]
) -> None:
    from gis.cases.reporting import CaseReport, report_case

    mine = report_case(connection, CaseReport(category="E0103", lon=-20.005, lat=-40.0)).case
    report_case(connection, CaseReport(category="E0103", lon=-19.995, lat=-40.0))
    response = client.get("/cases", params={"bbox": WEST}, headers=users.headers("worker"))
    assert _ids(response.json()) == {mine.id}


def test_a_worker_lists_only_the_overdue_cases_of_their_grids(
    client: TestClient, connection: Connection, users: People, two_grids: dict[str, int]
) -> None:
    import datetime as dt

    from gis.cases.reporting import CaseReport, report_case
    from gis.cases.workflow import apply_transition

    long_ago = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    ids = []
    for lon in (-20.005, -19.995):  # the worker's grid, then the other one
        case = report_case(connection, CaseReport(category="E0103", lon=lon, lat=-40.0)).case
        for to_state, minutes in (("filed", 0), ("dispatched", 10)):
            apply_transition(
                connection,
                case.id,
                to_state,
                actor="s",
                role="staff",
                at=long_ago + dt.timedelta(minutes=minutes),
            )
        ids.append(case.id)
    params = {"bbox": WEST, "overdue": "true"}
    worker = client.get("/cases", params=params, headers=users.headers("worker"))
    staff = client.get("/cases", params=params, headers=users.headers("staff"))
    assert _ids(worker.json()) == {ids[0]}
    assert _ids(staff.json()) == set(ids)


def test_staff_list_every_case(
    client: TestClient, connection: Connection, users: People, two_grids: dict[str, int]
) -> None:
    from gis.cases.reporting import CaseReport, report_case

    ids = {
        report_case(connection, CaseReport(category="E0103", lon=lon, lat=-40.0)).case.id
        for lon in (-20.005, -19.995)
    }
    response = client.get("/cases", params={"bbox": WEST}, headers=users.headers("staff"))
    assert _ids(response.json()) == ids


def test_a_read_of_reporter_contact_is_audited(
    client: TestClient, connection: Connection, users: People
) -> None:
    from gis.cases.reporting import CaseReport, report_case

    report = CaseReport(
        category="E0103", lon=-20.5, lat=-40.5, reporter_name="王女士", reporter_phone="1390000"
    )
    case_id = report_case(connection, report).case.id
    response = client.get(f"/cases/{case_id}", headers=users.headers("staff"))
    assert response.status_code == 200
    row = connection.execute(
        text("SELECT resource, detail->>'case_id' FROM audit_log WHERE actor = :n"),
        {"n": users.names["staff"]},
    ).one()
    assert tuple(row) == ("cases.reporter", str(case_id))
