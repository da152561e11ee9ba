"""Deadlines from dispatch, extensions, time used and time left, for one case or a million.

The clock starts at dispatch (派遣). Per unit of the time limit:

``urgent_hours``
    run continuously: deadline = start + value hours.
``calendar_days``
    run continuously: deadline = start + value × 24 hours.
``working_hours``
    count only inside office hours of working days: the deadline is the earliest instant at
    which ``value`` hours of office time have passed since the start. A start outside office
    hours waits for the next office interval; a deadline may fall exactly at the end of an
    interval (17:30, not the next morning).
``working_days``
    count whole working days (00:00-24:00 local) only: ``value`` × 24 hours of working-day time.
    Dispatched Friday 10:00 with 1 working day is due Monday 10:00; dispatched on a Saturday it
    is due at the end of Monday.

An approved extension moves the deadline: the extension's limit is counted, in its own unit,
from the current deadline. Time used and time left are measured on the case's clock (office
seconds for working hours, working-day seconds for working days, real seconds otherwise).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gis.cases.calendar import Seconds, WorkingCalendar, epoch_seconds
from gis.cases.categories import LIMIT_UNITS, TimeLimit
from gis.errors import InputError

HOUR = 3600
_UNIT_SECONDS = {"urgent_hours": HOUR, "working_hours": HOUR, "working_days": 86_400}
_UNIT_SECONDS["calendar_days"] = 86_400


def _as_seconds(values: npt.ArrayLike, field: str) -> Seconds:
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[s]").astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    raise InputError(field, "expected datetime64 (UTC) or int64 epoch seconds")


def _check_units(units: npt.NDArray[np.str_]) -> None:
    unknown = set(np.unique(units).tolist()) - set(LIMIT_UNITS)
    if unknown:
        msg = f"{sorted(unknown)[0]!r} is not one of {', '.join(LIMIT_UNITS)}"
        raise InputError("unit", msg)


def deadlines(
    starts: npt.ArrayLike,
    calendar: WorkingCalendar,
    *,
    values: npt.ArrayLike,
    units: npt.ArrayLike,
) -> npt.NDArray[np.datetime64]:
    """Deadlines of many cases at once.

    Parameters
    ----------
    starts
        Dispatch instants: ``datetime64`` in UTC or ``int64`` seconds since the epoch.
    calendar
        The working calendar (office hours, working days, time zone).
    values
        Positive integer time limits, one per start (or one for all).
    units
        Units from :data:`gis.cases.categories.LIMIT_UNITS`, one per start (or one for all).

    Returns
    -------
    numpy.ndarray
        ``datetime64[s]`` deadlines in UTC.

    Raises
    ------
    InputError
        Naming ``unit`` for an unknown unit, ``value`` for a non-positive limit,
        ``dispatched_at`` or ``deadline`` for instants outside the calendar's years.
    """
    start = _as_seconds(starts, "dispatched_at")
    value = np.broadcast_to(np.asarray(values, dtype=np.int64), start.shape)
    unit = np.broadcast_to(np.asarray(units, dtype=np.str_), start.shape)
    if value.size and value.min() <= 0:
        raise InputError("value", "time limits must be positive")
    _check_units(unit)
    out = np.empty(start.shape, dtype=np.int64)
    for name in LIMIT_UNITS:
        mask = unit == name
        if not mask.any():
            continue
        amount = value[mask] * _UNIT_SECONDS[name]
        if name in ("urgent_hours", "calendar_days"):
            out[mask] = start[mask] + amount
            continue
        clock = calendar.office if name == "working_hours" else calendar.whole_days
        day, sec = calendar.split(start[mask], field="dispatched_at")
        end_day, end_sec = clock.inverse(clock.forward(day, sec) + amount)
        out[mask] = calendar.join(end_day, end_sec)
    return out.astype("datetime64[s]")


def deadline(start: dt.datetime, limit: TimeLimit, calendar: WorkingCalendar) -> dt.datetime:
    """Deadline of one case dispatched at ``start`` (aware datetime) with ``limit``.

    Returns an aware datetime in the calendar's zone; raises like :func:`deadlines`.
    """
    instant = epoch_seconds(start, field="dispatched_at")
    result = deadlines(np.array([instant]), calendar, values=[limit.value], units=[limit.unit])
    return calendar.to_datetime(int(result.astype(np.int64)[0]))


def extend(current: dt.datetime, limit: TimeLimit, calendar: WorkingCalendar) -> dt.datetime:
    """Return the deadline moved by an approved extension ``limit`` counted from ``current``."""
    return deadline(current, limit, calendar)


def _clock_seconds(instants: Seconds, calendar: WorkingCalendar, unit: str, field: str) -> Seconds:
    if unit in ("urgent_hours", "calendar_days"):
        return instants
    clock = calendar.office if unit == "working_hours" else calendar.whole_days
    day, sec = calendar.split(instants, field=field)
    return clock.forward(day, sec)


def time_used_left(
    dispatched_at: npt.ArrayLike,
    calendar: WorkingCalendar,
    *,
    deadline_at: npt.ArrayLike,
    units: npt.ArrayLike,
    now: npt.ArrayLike,
) -> tuple[Seconds, Seconds]:
    """Time used since dispatch and time left until the deadline, on each case's clock.

    Parameters
    ----------
    dispatched_at, deadline_at, now
        ``datetime64`` (UTC) or epoch seconds; ``now`` is usually one instant (the close time
        for a closed case).
    calendar
        The working calendar.
    units
        The unit of each case's limit.

    Returns
    -------
    tuple of numpy.ndarray
        ``(used, left)`` in seconds of the unit's clock; ``left`` is negative when overdue.
    """
    start = _as_seconds(dispatched_at, "dispatched_at")
    due = np.broadcast_to(_as_seconds(deadline_at, "deadline"), start.shape)
    moment = np.broadcast_to(_as_seconds(now, "now"), start.shape)
    unit = np.broadcast_to(np.asarray(units, dtype=np.str_), start.shape)
    _check_units(unit)
    used = np.empty(start.shape, dtype=np.int64)
    left = np.empty(start.shape, dtype=np.int64)
    for name in LIMIT_UNITS:
        mask = unit == name
        if not mask.any():
            continue
        at_now = _clock_seconds(moment[mask], calendar, name, "now")
        used[mask] = at_now - _clock_seconds(start[mask], calendar, name, "dispatched_at")
        left[mask] = _clock_seconds(due[mask], calendar, name, "deadline") - at_now
    return used, left


@dataclass(frozen=True, slots=True)
class TimeStatus:
    """Time used and left of one case, in seconds of its clock, and whether it is overdue."""

    unit: str
    used_s: int
    left_s: int
    overdue: bool


def time_status(
    dispatched_at: dt.datetime,
    calendar: WorkingCalendar,
    *,
    deadline_at: dt.datetime,
    unit: str,
    now: dt.datetime,
) -> TimeStatus:
    """Time used and left of one case at ``now`` (aware datetimes); see :func:`time_used_left`."""
    used, left = time_used_left(
        np.array([epoch_seconds(dispatched_at, field="dispatched_at")]),
        calendar,
        deadline_at=np.array([epoch_seconds(deadline_at, field="deadline")]),
        units=[unit],
        now=np.array([epoch_seconds(now, field="now")]),
    )
    return TimeStatus(unit, int(used[0]), int(left[0]), bool(left[0] < 0))
