import datetime as dt
from pathlib import Path

import holidays
import numpy as np
import pytest

from gis.cases.calendar import (
    DEFAULT_OVERRIDES,
    WorkingCalendar,
    load_override,
    parse_office_hours,
)
from gis.cases.categories import TimeLimit
from gis.cases.deadlines import deadline, deadlines, extend, time_status
from gis.errors import InputError


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(2025, 2027)


def at(text: str, calendar: WorkingCalendar) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=calendar.zone)


def due(start: str, value: int, unit: str, calendar: WorkingCalendar) -> str:
    result = deadline(at(start, calendar), TimeLimit(value, unit), calendar)
    return result.strftime("%Y-%m-%d %H:%M")


def test_spring_festival_weekdays_are_not_workdays(calendar: WorkingCalendar) -> None:
    assert not calendar.is_workday(dt.date(2026, 2, 20))
    assert not calendar.is_workday(dt.date(2026, 2, 23))


def test_make_up_saturday_is_a_workday(calendar: WorkingCalendar) -> None:
    assert calendar.is_workday(dt.date(2026, 2, 14))


def test_plain_weekend_is_not_a_workday(calendar: WorkingCalendar) -> None:
    assert not calendar.is_workday(dt.date(2026, 3, 7))


def test_2026_override_agrees_with_the_holidays_package() -> None:
    override = load_override(DEFAULT_OVERRIDES / "2026.toml")
    cn = holidays.country_holidays("CN", years=2026)
    weekday_off = {d for d in cn if d.weekday() < 5}
    assert override.off == weekday_off
    assert override.work == {d for d in cn.weekend_workdays if d.year == 2026}


def test_override_forces_a_workday(tmp_path: Path) -> None:
    (tmp_path / "2027.toml").write_text("year = 2027\nwork = [2027-02-20]\n", encoding="utf-8")
    calendar = WorkingCalendar(2027, 2027, overrides=tmp_path)
    assert calendar.is_workday(dt.date(2027, 2, 20))


def test_override_with_a_date_of_another_year_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "2027.toml"
    path.write_text("year = 2027\noff = [2026-05-01]\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"2027\.toml: off"):
        load_override(path)


def test_malformed_office_hours_are_rejected() -> None:
    with pytest.raises(InputError, match="office_hours"):
        parse_office_hours("08:30-12:00,11:00-17:30")


def test_urgent_hours_run_through_the_night(calendar: WorkingCalendar) -> None:
    assert due("2026-02-13 23:00", 2, "urgent_hours", calendar) == "2026-02-14 01:00"


def test_calendar_days_run_through_holidays(calendar: WorkingCalendar) -> None:
    assert due("2026-02-13 10:00", 3, "calendar_days", calendar) == "2026-02-16 10:00"


def test_working_hours_continue_on_the_make_up_saturday(calendar: WorkingCalendar) -> None:
    # Friday 16:00-17:30 gives 1.5 h, the rest runs from Saturday (调休) 08:30
    assert due("2026-02-13 16:00", 4, "working_hours", calendar) == "2026-02-14 11:00"


def test_working_hours_skip_the_lunch_break(calendar: WorkingCalendar) -> None:
    assert due("2026-03-02 11:00", 2, "working_hours", calendar) == "2026-03-02 14:30"


def test_working_hours_may_end_exactly_at_closing_time(calendar: WorkingCalendar) -> None:
    assert due("2026-03-02 13:30", 4, "working_hours", calendar) == "2026-03-02 17:30"


def test_working_hours_started_at_night_wait_for_the_morning(calendar: WorkingCalendar) -> None:
    assert due("2026-03-02 20:00", 1, "working_hours", calendar) == "2026-03-03 09:30"


def test_working_hours_skip_the_whole_spring_festival(calendar: WorkingCalendar) -> None:
    # Saturday 14 Feb (调休) 17:00: half an hour left, then nothing until Tuesday 24 Feb
    assert due("2026-02-14 17:00", 2, "working_hours", calendar) == "2026-02-24 10:00"


def test_working_days_skip_holidays(calendar: WorkingCalendar) -> None:
    assert due("2026-02-14 10:00", 1, "working_days", calendar) == "2026-02-24 10:00"


def test_working_days_count_the_make_up_saturday(calendar: WorkingCalendar) -> None:
    assert due("2026-02-13 10:00", 1, "working_days", calendar) == "2026-02-14 10:00"


def test_working_days_from_a_weekend_end_at_the_end_of_a_workday(
    calendar: WorkingCalendar,
) -> None:
    assert due("2026-03-07 10:00", 1, "working_days", calendar) == "2026-03-10 00:00"


def test_twenty_working_days_over_the_national_day(calendar: WorkingCalendar) -> None:
    # 28-30 Sep, 8-9 Oct, Sat 10 Oct (调休), 12-16, 19-23, 26-29 Oct = 20 working days
    assert due("2026-09-28 09:00", 20, "working_days", calendar) == "2026-10-30 09:00"


def test_vectorised_deadlines_match_one_by_one(calendar: WorkingCalendar) -> None:
    rng = np.random.default_rng(7)
    starts = np.datetime64("2026-01-01T00:00:00") + rng.integers(0, 300 * 86_400, 200).astype(
        "timedelta64[s]"
    )
    units = rng.choice(["urgent_hours", "working_hours", "working_days", "calendar_days"], 200)
    values = rng.integers(1, 25, 200)
    bulk = deadlines(starts, calendar, values=values, units=units)
    for start, value, unit, result in zip(starts, values, units, bulk, strict=True):
        one = deadline(
            dt.datetime.fromtimestamp(int(start.astype(np.int64)), tz=dt.UTC),
            TimeLimit(int(value), str(unit)),
            calendar,
        )
        assert int(one.timestamp()) == int(result.astype(np.int64))


def test_extension_counts_from_the_current_deadline(calendar: WorkingCalendar) -> None:
    # Friday 13 Feb 17:00 + 2 working days: Saturday 14 Feb (调休) 17:00, then Tuesday 24 Feb
    current = at("2026-02-13 17:00", calendar)
    moved = extend(current, TimeLimit(2, "working_days"), calendar)
    assert moved == at("2026-02-24 17:00", calendar)


def test_time_left_is_measured_in_office_time(calendar: WorkingCalendar) -> None:
    status = time_status(
        at("2026-03-02 11:00", calendar),
        calendar,
        deadline_at=at("2026-03-02 14:30", calendar),
        unit="working_hours",
        now=at("2026-03-02 13:00", calendar),
    )
    assert (status.used_s, status.left_s, status.overdue) == (3600, 3600, False)


def test_time_left_is_negative_when_overdue(calendar: WorkingCalendar) -> None:
    status = time_status(
        at("2026-03-02 08:00", calendar),
        calendar,
        deadline_at=at("2026-03-02 10:00", calendar),
        unit="urgent_hours",
        now=at("2026-03-02 10:30", calendar),
    )
    assert status.overdue and status.left_s == -1800


def test_unknown_unit_is_rejected(calendar: WorkingCalendar) -> None:
    with pytest.raises(InputError, match="unit"):
        deadlines(np.array([0]), calendar, values=[1], units=["fortnights"])


def test_start_outside_the_calendar_years_is_rejected(calendar: WorkingCalendar) -> None:
    start = dt.datetime(2031, 1, 5, 10, tzinfo=dt.UTC)
    with pytest.raises(InputError, match="dispatched_at"):
        deadline(start, TimeLimit(1, "working_days"), calendar)


def test_naive_datetime_is_rejected(calendar: WorkingCalendar) -> None:
    with pytest.raises(InputError, match="dispatched_at"):
        deadline(dt.datetime(2026, 3, 2, 10), TimeLimit(1, "working_days"), calendar)
