"""A scripted week of cases around the 2026 Mid-Autumn holiday and a make-up workday.

Sun 20 Sep 2026 is a make-up workday (调休), Fri 25 Sep is the Mid-Autumn Festival, 26-27 Sep
is a weekend, 1-7 Oct the National Day holiday, Sat 10 Oct another make-up workday. Office
hours 08:30-12:00 and 13:30-17:30, Asia/Shanghai. Every expected figure is worked out by hand
in the comments.
"""

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Connection, text

from gis.cases.calendar import WorkingCalendar
from gis.cases.categories import TimeLimit
from gis.cases.indicators import indicators
from gis.cases.workflow import apply_transition, get_case, overdue_case_ids
from gis.errors import InputError

TZ = dt.timezone(dt.timedelta(hours=8))
WEEK = {"start": dt.datetime(2026, 9, 20, tzinfo=TZ), "end": dt.datetime(2026, 9, 29, tzinfo=TZ)}


def t(day: int, hhmm: str, month: int = 9) -> dt.datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return dt.datetime(2026, month, day, hour, minute, tzinfo=TZ)


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(2025, 2027)


def _place(connection: Connection) -> dict[str, int]:
    """One community, two grids (200 and 300 households), each with its grid worker."""
    q = connection.execute
    sd = q(text("INSERT INTO subdistrict (code, name) VALUES ('110108001', '八角') RETURNING id"))
    sd_id = sd.scalar_one()
    cm_id = q(
        text(
            "INSERT INTO community (code, name, subdistrict_id) VALUES ('110108001001', '八角北路',"
            " :sd) RETURNING id"
        ),
        {"sd": sd_id},
    ).scalar_one()
    ids: dict[str, int] = {}
    for n, (x, households) in enumerate([(0.0, (120, 80)), (0.01, (300,))], start=1):
        worker = q(
            text("INSERT INTO grid_worker (name) VALUES (:n) RETURNING id"), {"n": f"网格员{n}"}
        ).scalar_one()
        grid = q(
            text(
                "INSERT INTO grid (code, kind, community_id, worker_id, geom) VALUES (:code,"
                " 'service', :cm, :w, ST_Multi(ST_MakeEnvelope(:x, 0, :x + 0.01, 0.01, 4326)))"
                " RETURNING id"
            ),
            {"code": f"11010800100100{n}", "cm": cm_id, "w": worker, "x": x},
        ).scalar_one()
        building = q(
            text(
                "INSERT INTO building (source, source_id, footprint, area_m2, grid_id) VALUES"
                " ('test', :s, ST_Multi(ST_MakeEnvelope(:x, 0, :x + 0.001, 0.001, 4326)), 100, :g)"
                " RETURNING id"
            ),
            {"s": str(n), "x": x, "g": grid},
        ).scalar_one()
        for unit, count in enumerate(households, start=1):
            q(
                text(
                    "INSERT INTO stairwell (building_id, unit_no, entrance, households,"
                    " residents, elderly, estimated, source) VALUES (:b, :u, ST_Point(:x, 0, 4326),"
                    " :h, :h, 0, false, 'test')"
                ),
                {"b": building, "u": unit, "x": x, "h": count},
            )
        ids[f"grid{n}"], ids[f"worker{n}"] = grid, worker
    return ids


# (case, category, grid, steps); a step is (to_state, role, time, options)
SCRIPT: list[tuple[str, str, int, list[tuple[str, str, dt.datetime, dict[str, Any]]]]] = [
    # A: manhole cover, 2 urgent hours from Sun 22:00 -> Mon 00:00; closed 23:30, on time
    (
        "A",
        "C0101",
        1,
        [
            ("filed", "staff", t(20, "21:50"), {}),
            ("dispatched", "staff", t(20, "22:00"), {}),
            ("handling", "department", t(20, "22:10"), {}),
            ("feedback", "department", t(20, "23:00"), {}),
            ("checking", "staff", t(20, "23:10"), {}),
            ("closed", "staff", t(20, "23:30"), {}),
        ],
    ),
    # B: exposed garbage, 4 working hours from the make-up Sunday 16:00: 1.5 h that day,
    # 2.5 h from Monday 08:30 -> Mon 11:00; closed 11:30, late
    (
        "B",
        "E0103",
        1,
        [
            ("filed", "staff", t(20, "15:50"), {}),
            ("dispatched", "staff", t(20, "16:00"), {}),
            ("handling", "department", t(20, "16:30"), {}),
            ("feedback", "department", t(21, "11:00"), {}),
            ("checking", "staff", t(21, "11:10"), {}),
            ("closed", "staff", t(21, "11:30"), {}),
        ],
    ),
    # C: small ads, 1 working day from Thu 10:00; Fri is Mid-Autumn, then a weekend
    # -> Mon 28 10:00; reworked once, closed Mon 09:00, on time
    (
        "C",
        "E0201",
        1,
        [
            ("filed", "staff", t(24, "09:50"), {}),
            ("dispatched", "staff", t(24, "10:00"), {}),
            ("handling", "department", t(24, "10:30"), {}),
            ("feedback", "department", t(24, "15:00"), {}),
            ("checking", "staff", t(24, "15:10"), {}),
            ("handling", "worker", t(24, "16:00"), {"reason": "仍有残留"}),
            ("feedback", "department", t(28, "08:40"), {}),
            ("checking", "staff", t(28, "08:50"), {}),
            ("closed", "staff", t(28, "09:00"), {}),
        ],
    ),
    # D: demolish an illegal building, 20 working days from Mon 21 09:00: 22, 23, 24, 28,
    # 29, 30 Sep, 8, 9, 10 (make-up Sat), 12-16, 19-23, 26 Oct -> Mon 26 Oct 09:00
    (
        "D",
        "E0102",
        1,
        [
            ("filed", "staff", t(21, "08:50"), {}),
            ("dispatched", "staff", t(21, "09:00"), {}),
        ],
    ),
    # E: uncivil dog keeping, 2 working days; first dispatch returned as not ours, second
    # dispatch Mon 14:00 -> Wed 23 14:00; extension of 1 working day -> Thu 24 14:00;
    # closed Thu 15:00, late
    (
        "E",
        "E0601",
        1,
        [
            ("filed", "staff", t(21, "09:50"), {}),
            ("dispatched", "staff", t(21, "10:00"), {"receiver": "城管执法队"}),
            ("filed", "department", t(21, "11:00"), {"reason": "非本单位职责"}),
            ("dispatched", "staff", t(21, "14:00"), {}),
            ("handling", "department", t(21, "15:00"), {}),
            (
                "extension_requested",
                "department",
                t(22, "10:00"),
                {"reason": "犬主外出", "extension": TimeLimit(1, "working_days")},
            ),
            ("handling", "staff", t(22, "11:00"), {"action": "approve_extension"}),
            ("feedback", "department", t(24, "14:30"), {}),
            ("checking", "staff", t(24, "14:40"), {}),
            ("closed", "staff", t(24, "15:00"), {}),
        ],
    ),
    # F: gas leak on the holiday, 1 urgent hour from Fri 25 10:00 -> 11:00; closed 10:45
    (
        "F",
        "E0503",
        2,
        [
            ("filed", "staff", t(25, "09:55"), {}),
            ("dispatched", "staff", t(25, "10:00"), {}),
            ("handling", "department", t(25, "10:05"), {}),
            ("feedback", "department", t(25, "10:30"), {}),
            ("checking", "staff", t(25, "10:40"), {}),
            ("closed", "staff", t(25, "10:45"), {}),
        ],
    ),
    # G: street lamp, 2 working days from Wed 23 17:00: Thu 24 17:00, then Mon 28 17:00;
    # still open at the end of the week
    (
        "G",
        "C0107",
        2,
        [
            ("filed", "staff", t(23, "16:50"), {}),
            ("dispatched", "staff", t(23, "17:00"), {}),
            ("handling", "department", t(24, "09:00"), {}),
        ],
    ),
    # H: filed, then voided as a duplicate: filed, never due
    (
        "H",
        "E0103",
        2,
        [
            ("filed", "staff", t(22, "09:00"), {}),
            ("voided", "staff", t(22, "09:30"), {"reason": "重复上报"}),
        ],
    ),
    # I: manhole cover dispatched Tue 09:00 (due 11:00) but parked: not due
    (
        "I",
        "C0101",
        2,
        [
            ("filed", "staff", t(22, "08:50"), {}),
            ("dispatched", "staff", t(22, "09:00"), {}),
            ("handling", "department", t(22, "09:10"), {}),
            ("parked", "staff", t(22, "10:00"), {"reason": "需专项资金"}),
        ],
    ),
    # J: accumulated garbage, 1 working day from Wed 09:00 -> Thu 24 09:00; closed Wed 15:00
    (
        "J",
        "E0104",
        2,
        [
            ("filed", "staff", t(23, "08:50"), {}),
            ("dispatched", "staff", t(23, "09:00"), {}),
            ("handling", "department", t(23, "10:00"), {}),
            ("feedback", "department", t(23, "14:00"), {}),
            ("checking", "staff", t(23, "14:30"), {}),
            ("closed", "staff", t(23, "15:00"), {}),
        ],
    ),
]


@pytest.fixture
def week(connection: Connection, calendar: WorkingCalendar) -> dict[str, int]:
    place = _place(connection)
    ids = dict(place)
    for name, category, grid, steps in SCRIPT:
        case_id = connection.execute(
            text(
                "INSERT INTO cases (category_code, geom, reported_at, grid_id) VALUES"
                " (:c, ST_Point(116.3, 39.9, 4326), :r, :g) RETURNING id"
            ),
            {"c": category, "r": steps[0][2] - dt.timedelta(minutes=5), "g": place[f"grid{grid}"]},
        ).scalar_one()
        for to_state, role, when, options in steps:
            apply_transition(
                connection,
                case_id,
                to_state,
                actor=role,
                role=role,
                at=when,
                calendar=calendar,
                **options,
            )
        ids[name] = case_id
    return ids


def test_deadlines_of_the_week_for_each_unit(
    connection: Connection, week: dict[str, int], calendar: WorkingCalendar
) -> None:
    deadlines = {
        name: get_case(connection, week[name], calendar=calendar).deadline for name in "ABCDEFGIJ"
    }
    assert deadlines == {
        "A": t(21, "00:00"),  # urgent hours through the night
        "B": t(21, "11:00"),  # working hours from the make-up Sunday
        "C": t(28, "10:00"),  # working day over the holiday and weekend
        "D": t(26, "09:00", month=10),  # 20 working days over the National Day
        "E": t(24, "14:00"),  # re-dispatched, then extended by one working day
        "F": t(25, "11:00"),  # urgent hour on the holiday
        "G": t(28, "17:00"),
        "I": t(22, "11:00"),
        "J": t(24, "09:00"),
    }


def test_voided_case_never_gets_a_deadline(
    connection: Connection, week: dict[str, int], calendar: WorkingCalendar
) -> None:
    case = get_case(connection, week["H"], calendar=calendar)
    assert (case.status, case.deadline) == ("voided", None)


def test_time_used_and_left_of_an_open_case(
    connection: Connection, week: dict[str, int], calendar: WorkingCalendar
) -> None:
    # G dispatched Wed 17:00 with 2 working days; at Mon 28 12:00 it has used Wed 7 h,
    # Thu 24 h, Mon 12 h of working-day time = 43 h, and has 5 h left
    case = get_case(connection, week["G"], now=t(28, "12:00"), calendar=calendar)
    assert case.time is not None
    assert (case.time.used_s, case.time.left_s, case.time.overdue) == (43 * 3600, 5 * 3600, False)


def test_week_totals_count_filed_due_and_closed(
    connection: Connection, week: dict[str, int]
) -> None:
    (total,) = indicators(connection, group_by=(), **WEEK)
    # all ten filed; due: A B C E F G J (D due in October, H voided, I parked);
    # closed: all due but G; on time: A C F J (B and E late)
    assert (total.filed, total.due, total.closed, total.closed_on_time) == (10, 7, 6, 4)


def test_week_closure_and_on_time_rates(connection: Connection, week: dict[str, int]) -> None:
    (total,) = indicators(connection, group_by=(), **WEEK)
    assert total.closure_rate == pytest.approx(6 / 7)
    assert total.on_time_rate == pytest.approx(4 / 7)


def test_week_rework_and_extension_rates(connection: Connection, week: dict[str, int]) -> None:
    (total,) = indicators(connection, group_by=(), **WEEK)
    assert (total.reworked, total.extended) == (1, 1)  # C reworked, E extended
    assert total.rework_rate == pytest.approx(1 / 7)
    assert total.extension_rate == pytest.approx(1 / 7)


def test_week_correct_dispatch_rate(connection: Connection, week: dict[str, int]) -> None:
    (total,) = indicators(connection, group_by=(), **WEEK)
    # ten dispatches (E twice), E's first returned as not ours
    assert (total.dispatches, total.returned_dispatches) == (10, 1)
    assert total.correct_dispatch_rate == pytest.approx(0.9)


def test_incidents_per_1000_households_by_grid(
    connection: Connection, week: dict[str, int]
) -> None:
    rows = indicators(connection, group_by=("grid",), **WEEK)
    by_grid = {
        r.key["grid"]: (r.filed, r.households, r.incidents_per_1000_households) for r in rows
    }
    assert by_grid == {
        "110108001001001": (5, 200, pytest.approx(25.0)),
        "110108001001002": (5, 300, pytest.approx(5000 / 300)),
    }


def test_community_sums_its_grids(connection: Connection, week: dict[str, int]) -> None:
    (row,) = indicators(connection, group_by=("community",), **WEEK)
    assert (row.filed, row.due, row.households) == (10, 7, 500)


def test_grouping_by_worker_follows_the_grid_worker(
    connection: Connection, week: dict[str, int]
) -> None:
    rows = indicators(connection, group_by=("worker",), **WEEK)
    assert {r.key["worker"]: (r.filed, r.due) for r in rows} == {
        str(week["worker1"]): (5, 4),  # A B C E due; D not yet
        str(week["worker2"]): (5, 3),  # F G J due; H voided, I parked
    }


def test_grouping_by_department_and_category(connection: Connection, week: dict[str, int]) -> None:
    rows = indicators(connection, group_by=("department", "category"), **WEEK)
    dogs = {
        r.key["department"]: (r.dispatches, r.returned_dispatches, r.due, r.households)
        for r in rows
        if r.key["category"] == "E0601"
    }
    # E went first to the enforcement team, which returned it, then to the police
    assert dogs == {"城管执法队": (1, 1, 0, None), "派出所": (1, 0, 1, None)}


def test_a_later_period_sees_the_demolition_due(
    connection: Connection, week: dict[str, int]
) -> None:
    (total,) = indicators(
        connection,
        group_by=(),
        start=dt.datetime(2026, 10, 1, tzinfo=TZ),
        end=dt.datetime(2026, 11, 1, tzinfo=TZ),
    )
    assert (total.filed, total.due, total.closed, total.closure_rate) == (0, 1, 0, 0.0)


def test_unknown_group_dimension_is_rejected(connection: Connection) -> None:
    with pytest.raises(InputError, match="group_by"):
        indicators(connection, group_by=("street; DROP TABLE cases",), **WEEK)


def test_overdue_cases_at_the_end_of_monday(connection: Connection, week: dict[str, int]) -> None:
    # Mon 28 18:00: G (due 17:00) is the only open case past its deadline; I is parked
    assert overdue_case_ids(connection, now=t(28, "18:00")) == [week["G"]]


def test_indicators_leave_session_settings_as_they_were(connection: Connection) -> None:
    before = connection.execute(text("SELECT current_setting('work_mem')")).scalar_one()
    indicators(connection, group_by=("category",), **WEEK)
    after = connection.execute(text("SELECT current_setting('work_mem')")).scalar_one()
    assert after == before
