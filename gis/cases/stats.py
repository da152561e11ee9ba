"""Indicator tables for people: the period asked for, flat records, CSV.

The figures and their definitions are those of :mod:`gis.cases.indicators`; this module only
reads the period (ISO 8601 dates or date-times, local to the command centre), flattens each
group into one record (group keys first, then :data:`FIELDS`) and writes CSV with the same
columns and values as the JSON records, so both formats read alike.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from gis.cases.indicators import GROUPS, Indicators, indicators
from gis.cases.open311 import parse_datetime
from gis.errors import InputError

#: Columns of every record after the group keys, in order.
FIELDS = (
    "filed",
    "due",
    "closed",
    "closed_on_time",
    "reworked",
    "extended",
    "dispatches",
    "returned_dispatches",
    "households",
    "closure_rate",
    "on_time_rate",
    "rework_rate",
    "extension_rate",
    "correct_dispatch_rate",
    "incidents_per_1000_households",
)


def parse_group_by(value: str | Sequence[str]) -> tuple[str, ...]:
    """Read ``"community,category"`` (or a sequence) as dimensions of :data:`GROUPS`.

    An empty value means one total row. Raises :class:`InputError` naming ``by`` for an
    unknown or repeated dimension.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    dims = tuple(p.strip() for p in parts if p.strip())
    unknown = [d for d in dims if d not in GROUPS]
    if unknown:
        msg = f"{', '.join(unknown)} is not one of {', '.join(GROUPS)}"
        raise InputError("by", msg)
    if len(set(dims)) != len(dims):
        raise InputError("by", "a dimension is repeated")
    return dims


def _is_date(value: str) -> bool:
    return len(value.strip()) == 10


def parse_period(
    since: str | None,
    until: str | None,
    *,
    now: dt.datetime | None = None,
    default_days: int = 30,
    timezone: str = "Asia/Shanghai",
) -> tuple[dt.datetime, dt.datetime]:
    """Return the period ``[start, end)`` described by ISO 8601 ``since`` and ``until``.

    A date means local midnight in ``timezone``; a date given for ``until`` includes that whole
    day. Without ``until`` the period ends ``now``; without ``since`` it starts
    ``default_days`` before its end.

    Raises
    ------
    InputError
        Naming ``since`` or ``until`` when not ISO 8601, ``until`` when not after ``since``.
    """
    if until:
        end = parse_datetime(until, "until", timezone=timezone)
        if _is_date(until):
            end += dt.timedelta(days=1)
    else:
        end = now or dt.datetime.now(dt.UTC)
    if since:
        start = parse_datetime(since, "since", timezone=timezone)
    else:
        start = end - dt.timedelta(days=default_days)
    if end <= start:
        raise InputError("until", "must be after since")
    return start, end


def records(rows: Sequence[Indicators], group_by: Sequence[str]) -> list[dict[str, Any]]:
    """Flatten indicator rows: one dict per group, keys first, then :data:`FIELDS`."""
    out = []
    for row in rows:
        record: dict[str, Any] = {d: row.key.get(d) for d in group_by}
        record.update({name: getattr(row, name) for name in FIELDS})
        out.append(record)
    return out


def to_csv(rows: Sequence[dict[str, Any]], group_by: Sequence[str]) -> str:
    """Write records as CSV (header row; None as an empty cell; rates as full floats)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [*group_by, *FIELDS]
    writer.writerow(columns)
    for record in rows:
        writer.writerow(["" if record[c] is None else record[c] for c in columns])
    return buffer.getvalue()


def indicator_table(
    connection: Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    group_by: Sequence[str] = ("grid",),
) -> list[dict[str, Any]]:
    """Compute the indicators of ``[start, end)`` per group as flat records.

    Raises :class:`InputError` as :func:`gis.cases.indicators.indicators` does.
    """
    return records(indicators(connection, start=start, end=end, group_by=group_by), group_by)
