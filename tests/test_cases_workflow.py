import datetime as dt
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from gis.cases.calendar import WorkingCalendar
from gis.cases.categories import TimeLimit
from gis.cases.workflow import (
    TRANSITIONS,
    IllegalTransitionError,
    allowed_transitions,
    apply_transition,
    get_case,
    plan_transition,
)
from gis.errors import ConflictError, InputError, NotFoundError

TZ = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(2025, 2027)


def t(text_: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_).replace(tzinfo=TZ)


def new_case(connection: Connection, category: str = "C0101", **extra: str) -> int:
    columns = ", ".join(["category_code", "geom", "reported_at", *extra])
    values = ", ".join([":c", "ST_Point(116.3, 39.9, 4326)", ":r", *(f":{k}" for k in extra)])
    return int(
        connection.execute(
            text(f"INSERT INTO cases ({columns}) VALUES ({values}) RETURNING id"),
            {"c": category, "r": t("2026-03-02 08:00"), **extra},
        ).scalar_one()
    )


def run(connection: Connection, case_id: int, calendar: WorkingCalendar, *steps: tuple) -> None:
    for to_state, role, when, *rest in steps:
        kwargs = rest[0] if rest else {}
        apply_transition(
            connection,
            case_id,
            to_state,
            actor=role,
            role=role,
            at=t(when),
            calendar=calendar,
            **kwargs,
        )


def dispatched(connection: Connection, calendar: WorkingCalendar, category: str = "C0101") -> int:
    case_id = new_case(connection, category)
    run(
        connection,
        case_id,
        calendar,
        ("filed", "staff", "2026-03-02 09:00"),
        ("dispatched", "staff", "2026-03-02 09:10"),
    )
    return case_id


def test_every_state_of_the_loop_is_reachable_in_the_table() -> None:
    chain = ["reported", "filed", "dispatched", "handling", "feedback", "checking", "closed"]
    for a, b in zip(chain, [*chain[1:], "evaluated"], strict=True):
        assert any(x.from_state == a and x.to_state == b for x in TRANSITIONS)


def test_dispatch_sets_deadline_department_and_limit(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case = get_case(connection, dispatched(connection, calendar), calendar=calendar)
    assert case.deadline == t("2026-03-02 11:10")  # manhole cover: 2 urgent hours
    assert case.department == "自来水公司"
    assert case.time_limit == TimeLimit(2, "urgent_hours")


def test_dispatch_receiver_overrides_the_default_department(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = new_case(connection, "E0103")
    run(
        connection,
        case_id,
        calendar,
        ("filed", "staff", "2026-03-02 09:00"),
        ("dispatched", "staff", "2026-03-02 16:30", {"receiver": "物业公司"}),
    )
    case = get_case(connection, case_id, calendar=calendar)
    assert case.department == "物业公司"
    assert case.deadline == t("2026-03-03 11:30")  # 1 h on Monday, 3 h on Tuesday


def test_each_step_is_recorded_in_order(connection: Connection, calendar: WorkingCalendar) -> None:
    case = get_case(connection, dispatched(connection, calendar), calendar=calendar)
    assert [(h.seq, h.action, h.from_state, h.to_state) for h in case.history] == [
        (1, "file", "reported", "filed"),
        (2, "dispatch", "filed", "dispatched"),
    ]
    assert case.history[1].receiver == "自来水公司"
    assert case.version == 3


def test_illegal_transition_lists_the_allowed_ones(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = new_case(connection)
    with pytest.raises(IllegalTransitionError) as err:
        apply_transition(connection, case_id, "closed", actor="a", role="staff", calendar=calendar)
    assert {(x.action, x.to_state) for x in err.value.allowed} == {
        ("file", "filed"),
        ("void", "voided"),
    }
    assert "file → filed" in str(err.value)


def test_role_not_allowed_is_an_illegal_transition(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = new_case(connection)
    with pytest.raises(IllegalTransitionError):
        apply_transition(connection, case_id, "filed", actor="w", role="worker", calendar=calendar)


def test_return_without_reason_is_refused() -> None:
    with pytest.raises(InputError) as err:
        plan_transition("dispatched", "filed", role="department", reason="  ")
    assert err.value.field == "reason"


def test_return_goes_back_to_the_centre_with_its_reason(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(
        connection,
        case_id,
        calendar,
        ("filed", "department", "2026-03-02 09:30", {"reason": "非本单位职责"}),
    )
    case = get_case(connection, case_id, calendar=calendar)
    assert case.status == "filed"
    assert case.history[-1].action == "return"
    assert case.history[-1].reason == "非本单位职责"


def test_return_names_the_dispatch_it_sends_back(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(
        connection,
        case_id,
        calendar,
        ("filed", "department", "2026-03-02 09:30", {"reason": "非本单位职责"}),
    )
    detail = get_case(connection, case_id, calendar=calendar).history[-1].detail
    assert detail["dispatch_seq"] == 2
    assert detail["department"] == "自来水公司"
    assert dt.datetime.fromisoformat(detail["dispatched_at"]) == t("2026-03-02 09:10")


def test_rework_is_counted_on_the_case_row(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(
        connection,
        case_id,
        calendar,
        ("handling", "department", "2026-03-02 09:20"),
        ("feedback", "department", "2026-03-02 10:00"),
        ("handling", "staff", "2026-03-02 10:10", {"reason": "未处理完"}),
    )
    count = connection.execute(
        text("SELECT rework_count FROM cases WHERE id = :id"), {"id": case_id}
    ).scalar_one()
    assert count == 1


def test_unknown_role_is_refused() -> None:
    with pytest.raises(InputError, match="role"):
        plan_transition("reported", "filed", role="mayor")


def test_extension_request_needs_a_time_limit(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(connection, case_id, calendar, ("handling", "department", "2026-03-02 09:20"))
    with pytest.raises(InputError, match="extension"):
        run(
            connection,
            case_id,
            calendar,
            ("extension_requested", "department", "2026-03-02 10:00", {"reason": "需采购井盖"}),
        )


def test_approved_extension_moves_the_deadline(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(
        connection,
        case_id,
        calendar,
        ("handling", "department", "2026-03-02 09:20"),
        (
            "extension_requested",
            "department",
            "2026-03-02 10:00",
            {"reason": "需采购井盖", "extension": TimeLimit(1, "working_days")},
        ),
        ("handling", "staff", "2026-03-02 10:30", {"action": "approve_extension"}),
    )
    assert get_case(connection, case_id, calendar=calendar).deadline == t("2026-03-03 11:10")


def test_rejected_extension_keeps_the_deadline(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    run(
        connection,
        case_id,
        calendar,
        ("handling", "department", "2026-03-02 09:20"),
        (
            "extension_requested",
            "department",
            "2026-03-02 10:00",
            {"reason": "需采购井盖", "extension": TimeLimit(1, "working_days")},
        ),
        (
            "handling",
            "staff",
            "2026-03-02 10:30",
            {"action": "reject_extension", "reason": "库存有货"},
        ),
    )
    assert get_case(connection, case_id, calendar=calendar).deadline == t("2026-03-02 11:10")


def test_extension_decision_without_action_is_ambiguous() -> None:
    with pytest.raises(InputError, match="action"):
        plan_transition("extension_requested", "handling", role="staff", reason="x")


def test_failed_check_sends_the_case_back_to_handling() -> None:
    step = plan_transition("checking", "handling", role="worker", reason="井盖仍松动")
    assert step.action == "rework"


def test_parked_case_can_only_be_resumed() -> None:
    assert [(x.action, x.to_state) for x in allowed_transitions("parked")] == [
        ("resume", "handling")
    ]


def test_stale_version_is_a_conflict(connection: Connection, calendar: WorkingCalendar) -> None:
    case_id = new_case(connection)
    with pytest.raises(ConflictError):
        apply_transition(
            connection,
            case_id,
            "filed",
            actor="a",
            role="staff",
            expected_version=7,
            calendar=calendar,
        )


def test_step_before_the_last_one_is_refused(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = dispatched(connection, calendar)
    with pytest.raises(InputError, match="at"):
        run(connection, case_id, calendar, ("handling", "department", "2026-03-02 09:00"))


def test_transition_log_refuses_updates(connection: Connection, calendar: WorkingCalendar) -> None:
    case_id = dispatched(connection, calendar)
    with pytest.raises(DBAPIError, match="append-only"):
        connection.execute(
            text("UPDATE case_transition SET reason = 'rewritten' WHERE case_id = :id"),
            {"id": case_id},
        )


def test_reporter_contact_is_hidden_unless_asked_for(
    connection: Connection, calendar: WorkingCalendar
) -> None:
    case_id = new_case(connection, reporter_name="张三", reporter_phone="13800000000")
    assert get_case(connection, case_id, calendar=calendar).reporter_phone is None
    staff_view = get_case(connection, case_id, calendar=calendar, include_reporter=True)
    assert staff_view.reporter_phone == "13800000000"


def test_unknown_case_is_not_found(connection: Connection) -> None:
    with pytest.raises(NotFoundError):
        apply_transition(connection, -1, "filed", actor="a", role="staff")


@pytest.fixture
def committed_case(engine: Engine) -> Iterator[int]:
    with engine.begin() as conn:
        case_id = new_case(conn)
    yield case_id
    with engine.begin() as conn:
        # the log refuses DELETE; lift the guard inside this one transaction only
        conn.execute(
            text("ALTER TABLE case_transition DISABLE TRIGGER case_transition_append_only")
        )
        conn.execute(text("DELETE FROM case_transition WHERE case_id = :id"), {"id": case_id})
        conn.execute(text("ALTER TABLE case_transition ENABLE TRIGGER case_transition_append_only"))
        conn.execute(text("DELETE FROM cases WHERE id = :id"), {"id": case_id})


def _waits_on_a_lock(engine: Engine, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    with engine.connect() as probe:
        while time.monotonic() < deadline:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'UPDATE cases SET status%'"
                )
            ).scalar_one()
            probe.rollback()
            if waiting:
                return True
            time.sleep(0.05)
    return False


def test_concurrent_actors_one_wins_the_other_conflicts(
    engine: Engine, committed_case: int, calendar: WorkingCalendar
) -> None:
    outcome: list[BaseException | None] = []
    with engine.connect() as first:
        apply_transition(first, committed_case, "filed", actor="a", role="staff", calendar=calendar)

        def second_actor() -> None:
            with engine.connect() as second:
                try:
                    # reads version 1 (first has not committed), then waits on the row lock
                    apply_transition(
                        second,
                        committed_case,
                        "voided",
                        actor="b",
                        role="staff",
                        reason="重复",
                        calendar=calendar,
                    )
                    second.commit()
                    outcome.append(None)
                except ConflictError as exc:
                    outcome.append(exc)

        thread = threading.Thread(target=second_actor)
        thread.start()
        assert _waits_on_a_lock(engine)  # blocked behind the row lock
        first.commit()
        thread.join(timeout=10)
    assert isinstance(outcome[0], ConflictError)
    with engine.connect() as conn:
        case = get_case(conn, committed_case, calendar=calendar)
    assert (case.status, [h.actor for h in case.history]) == ("filed", ["a"])
