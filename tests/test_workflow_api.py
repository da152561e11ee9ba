"""``POST /cases/{id}/transitions``, ``GET /cases/{id}`` and ``GET /cases/overdue`` over HTTP.

Cases are reported with :func:`gis.cases.reporting.report_case` in the seeded town; every step
then goes through the API, on the test's rolled-back connection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from gis.auth import Principal
from gis.cases.calendar import WorkingCalendar
from gis.cases.categories import TimeLimit
from gis.cases.deadlines import deadline
from gis.cases.reporting import CaseReport, report_case
from gis.cases.workflow import apply_transition
from tests.case_town import X0, Y0, D, seed_town
from tests.workflow_client import client_as

STAFF = Principal("李主任", frozenset({"staff"}))
WORKER = Principal("王网格员", frozenset({"worker"}))
PLANNER = Principal("规划师", frozenset({"planner"}))
GARBAGE = "E0103"  # exposed garbage: 4 working hours


def _report(connection: Connection) -> int:
    seed_town(connection)
    report = CaseReport(
        category=GARBAGE,
        lon=X0 + 0.5 * D,
        lat=Y0 + 0.25 * D,
        description="路边垃圾",
        reporter_name="赵女士",
        reporter_phone="13900001111",
    )
    return report_case(connection, report).case.id


@pytest.fixture
def case_id(connection: Connection) -> int:
    return _report(connection)


@pytest.fixture
def staff(database_url: str, connection: Connection) -> Iterator[TestClient]:
    with client_as(database_url, connection, STAFF) as client:
        yield client


@pytest.fixture
def worker(database_url: str, connection: Connection) -> Iterator[TestClient]:
    with client_as(database_url, connection, WORKER) as client:
        yield client


def step(client: TestClient, case_id: int, to_state: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/cases/{case_id}/transitions", json={"to_state": to_state, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_filing_records_actor_role_and_states(staff: TestClient, case_id: int) -> None:
    answer = step(staff, case_id, "filed")
    assert answer["status"] == "filed"
    assert answer["version"] == 2
    [record] = answer["history"]
    assert (record["actor"], record["actor_role"]) == ("李主任", "staff")
    assert (record["from_state"], record["to_state"], record["action"]) == (
        "reported",
        "filed",
        "file",
    )


def test_dispatch_sets_the_deadline_of_the_time_limit(staff: TestClient, case_id: int) -> None:
    step(staff, case_id, "filed")
    answer = step(staff, case_id, "dispatched")
    dispatched = dt.datetime.fromisoformat(answer["dispatched_at"])
    expected = deadline(dispatched, TimeLimit(4, "working_hours"), WorkingCalendar.from_settings())
    assert dt.datetime.fromisoformat(answer["deadline"]) == expected
    assert answer["department"] == "环卫中心"
    assert answer["time_limit"] == {"value": 4, "unit": "working_hours"}


def test_case_shows_time_used_and_left(staff: TestClient, case_id: int) -> None:
    step(staff, case_id, "filed")
    step(staff, case_id, "dispatched")
    answer = staff.get(f"/cases/{case_id}").json()
    assert answer["time"]["unit"] == "working_hours"
    assert 0 <= answer["time"]["used_s"] <= 60
    assert answer["time"]["used_s"] + answer["time"]["left_s"] == 4 * 3600
    assert answer["time"]["overdue"] is False


def test_illegal_transition_answers_409_listing_the_allowed_steps(
    staff: TestClient, case_id: int
) -> None:
    response = staff.post(f"/cases/{case_id}/transitions", json={"to_state": "closed"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict"
    assert {(a["action"], a["to_state"]) for a in body["allowed"]} == {
        ("file", "filed"),
        ("void", "voided"),
    }


def test_return_without_a_reason_is_422_naming_reason(
    staff: TestClient, worker: TestClient, case_id: int
) -> None:
    step(staff, case_id, "filed")
    step(staff, case_id, "dispatched")
    response = worker.post(f"/cases/{case_id}/transitions", json={"to_state": "filed"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "reason"
    assert worker.get(f"/cases/{case_id}").json()["status"] == "dispatched"


def test_two_staff_on_the_same_version_one_wins_the_other_gets_409(
    staff: TestClient, case_id: int
) -> None:
    seen = staff.get(f"/cases/{case_id}").json()["version"]
    first = staff.post(
        f"/cases/{case_id}/transitions", json={"to_state": "filed", "expected_version": seen}
    )
    second = staff.post(
        f"/cases/{case_id}/transitions",
        json={"to_state": "voided", "reason": "重复", "expected_version": seen},
    )
    assert (first.status_code, second.status_code) == (200, 409)
    history = staff.get(f"/cases/{case_id}").json()["history"]
    assert [h["action"] for h in history] == ["file"]


def test_a_week_of_one_case_through_return_extension_rework_and_close(
    staff: TestClient, worker: TestClient, case_id: int
) -> None:
    step(staff, case_id, "filed")
    step(staff, case_id, "dispatched", receiver="城管执法队")
    step(worker, case_id, "filed", reason="非本单位职责")
    step(staff, case_id, "dispatched")
    step(worker, case_id, "handling")
    first_deadline = staff.get(f"/cases/{case_id}").json()["deadline"]
    step(
        worker,
        case_id,
        "extension_requested",
        reason="需协调物业",
        extension={"value": 1, "unit": "working_days"},
    )
    extended = step(staff, case_id, "handling", action="approve_extension")
    step(worker, case_id, "feedback")
    step(staff, case_id, "handling", reason="现场仍有垃圾")
    step(worker, case_id, "feedback")
    step(staff, case_id, "checking")
    closed = step(staff, case_id, "closed")
    assert extended["deadline"] > first_deadline
    assert closed["closed_at"] is not None
    assert [(h["action"], h["actor"]) for h in closed["history"]] == [
        ("file", "李主任"),
        ("dispatch", "李主任"),
        ("return", "王网格员"),
        ("dispatch", "李主任"),
        ("accept", "王网格员"),
        ("request_extension", "王网格员"),
        ("approve_extension", "李主任"),
        ("feedback", "王网格员"),
        ("rework", "李主任"),
        ("feedback", "王网格员"),
        ("check", "李主任"),
        ("close", "李主任"),
    ]
    assert closed["history"][2]["reason"] == "非本单位职责"
    assert closed["history"][1]["receiver"] == "城管执法队"


def test_reporter_contact_is_shown_to_staff(staff: TestClient, case_id: int) -> None:
    answer = staff.get(f"/cases/{case_id}").json()
    assert (answer["reporter_name"], answer["reporter_phone"]) == ("赵女士", "13900001111")


def test_reporter_contact_is_hidden_from_a_grid_worker(worker: TestClient, case_id: int) -> None:
    answer = worker.get(f"/cases/{case_id}").json()
    assert answer["reporter_name"] is None
    assert "13900001111" not in str(answer)


def test_principal_without_a_workflow_role_is_forbidden(
    database_url: str, connection: Connection, case_id: int
) -> None:
    with client_as(database_url, connection, PLANNER) as planner:
        response = planner.post(f"/cases/{case_id}/transitions", json={"to_state": "filed"})
    assert response.status_code == 403


def test_a_role_the_principal_does_not_hold_is_forbidden(worker: TestClient, case_id: int) -> None:
    response = worker.post(
        f"/cases/{case_id}/transitions", json={"to_state": "filed", "role": "staff"}
    )
    assert response.status_code == 403


def test_a_worker_may_not_file_a_case(worker: TestClient, case_id: int) -> None:
    response = worker.post(f"/cases/{case_id}/transitions", json={"to_state": "filed"})
    assert response.status_code == 409
    assert response.json()["allowed"] == []


def test_a_principal_with_several_roles_acts_in_the_one_the_step_allows(
    database_url: str, connection: Connection, case_id: int
) -> None:
    both = Principal("值班员", frozenset({"worker", "staff"}))
    with client_as(database_url, connection, both) as client:
        step(client, case_id, "filed")
        step(client, case_id, "dispatched")
        answer = step(client, case_id, "handling")
    assert [h["actor_role"] for h in answer["history"]] == ["staff", "staff", "worker"]


def test_case_lists_the_steps_the_principal_may_take(staff: TestClient, case_id: int) -> None:
    answer = staff.get(f"/cases/{case_id}").json()
    assert {a["action"] for a in answer["allowed"]} == {"file", "void"}


def test_unknown_case_is_404(staff: TestClient) -> None:
    assert staff.get("/cases/99999999").status_code == 404


def test_extension_request_without_a_limit_is_422_naming_extension(
    staff: TestClient, worker: TestClient, case_id: int
) -> None:
    step(staff, case_id, "filed")
    step(staff, case_id, "dispatched")
    step(worker, case_id, "handling")
    response = worker.post(
        f"/cases/{case_id}/transitions", json={"to_state": "extension_requested", "reason": "x"}
    )
    assert response.status_code == 422
    assert response.json()["parameter"] == "extension"


def test_overdue_lists_open_cases_past_their_deadline(
    staff: TestClient, connection: Connection, case_id: int
) -> None:
    fresh = report_case(
        connection, CaseReport(category=GARBAGE, lon=X0 + 0.5 * D, lat=Y0 + 0.3 * D)
    ).case.id
    long_ago = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    for to_state, minutes in (("filed", 0), ("dispatched", 10)):
        apply_transition(
            connection,
            case_id,
            to_state,
            actor="s",
            role="staff",
            at=long_ago + dt.timedelta(minutes=minutes),
        )
    step(staff, fresh, "filed")
    step(staff, fresh, "dispatched")
    answer = staff.get("/cases/overdue").json()
    ids = [c["id"] for c in answer["cases"]]
    assert case_id in ids
    assert fresh not in ids
    late = next(c for c in answer["cases"] if c["id"] == case_id)
    assert late["time"]["overdue"] is True
    assert late["time"]["left_s"] < 0


def _dispatch_at(connection: Connection, case_id: int, at: dt.datetime) -> None:
    apply_transition(connection, case_id, "filed", actor="s", role="staff", at=at)
    apply_transition(
        connection, case_id, "dispatched", actor="s", role="staff", at=at + dt.timedelta(minutes=5)
    )


def test_case_list_overdue_filter_gives_late_cases_most_overdue_first(
    staff: TestClient, connection: Connection, case_id: int
) -> None:
    later = report_case(
        connection, CaseReport(category=GARBAGE, lon=X0 + 0.5 * D, lat=Y0 + 0.3 * D)
    ).case.id
    fresh = report_case(
        connection, CaseReport(category=GARBAGE, lon=X0 + 0.5 * D, lat=Y0 + 0.35 * D)
    ).case.id
    _dispatch_at(connection, later, dt.datetime(2026, 5, 6, 9, 0, tzinfo=dt.UTC))
    _dispatch_at(connection, case_id, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    step(staff, fresh, "filed")
    step(staff, fresh, "dispatched")
    response = staff.get("/cases", params={"overdue": "true"})
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert [f["id"] for f in features] == [case_id, later]
    assert all(f["properties"]["time_left_s"] < 0 for f in features)
    assert all(f["properties"]["time_used_s"] > 4 * 3600 for f in features)


def test_case_list_overdue_filter_combines_with_category(
    staff: TestClient, connection: Connection, case_id: int
) -> None:
    _dispatch_at(connection, case_id, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    other = staff.get("/cases", params={"overdue": "true", "category": "E0201"}).json()
    same = staff.get("/cases", params={"overdue": "true", "category": GARBAGE}).json()
    assert (other["numberReturned"], same["numberReturned"]) == (0, 1)


def test_case_list_overdue_filter_shows_no_reporter_contact(
    staff: TestClient, connection: Connection, case_id: int
) -> None:
    _dispatch_at(connection, case_id, dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    response = staff.get("/cases", params={"overdue": "true"})
    assert response.json()["numberReturned"] == 1
    assert "13900001111" not in response.text
    assert "赵女士" not in response.text


def test_transition_of_an_unknown_case_is_404(staff: TestClient) -> None:
    response = staff.post("/cases/99999999/transitions", json={"to_state": "filed"})
    assert response.status_code == 404


def test_unknown_target_state_is_422_naming_to_state(staff: TestClient, case_id: int) -> None:
    response = staff.post(f"/cases/{case_id}/transitions", json={"to_state": "finished"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "to_state"


@pytest.mark.parametrize("overdue", ["false", "true"])
def test_case_list_filters_are_checked_alike_with_and_without_overdue(
    staff: TestClient, overdue: str
) -> None:
    for params, field in (
        ({"since": "2026-06-01T00:00:00Z", "until": "2026-05-01T00:00:00Z"}, "until"),
        ({"status": "lost"}, "status"),
        ({"category": "E9999"}, "category"),
        ({"limit": "0"}, "limit"),
    ):
        response = staff.get("/cases", params={**params, "overdue": overdue})
        assert response.status_code == 422, (params, response.text)
        assert field in response.text
