"""Closed-loop indicators (考核指标) per grid, community, subdistrict, department, worker, category.

All figures are computed by one set-based SQL query over ``cases`` and ``case_transition`` for a
period ``[start, end)`` (aware datetimes). Definitions, numerator / denominator:

filed (立案数)
    cases with ``filed_at`` in the period.
due (应结案数)
    cases whose (possibly extended) ``deadline`` falls in the period, except cases voided or
    currently parked (挂账 takes a case out of evaluation until it is resumed).
closed (结案数)
    due cases with ``closed_at`` before the end of the period.
closed_on_time (按期结案数)
    due cases closed no later than their deadline.
closure_rate (结案率)
    closed / due.
on_time_rate (按期结案率)
    closed_on_time / due.
rework_rate (返工率)
    due cases with at least one ``rework`` step before the end of the period / due.
extension_rate (延期率)
    due cases with at least one approved extension before the end of the period / due.
correct_dispatch_rate (准确派遣率)
    (dispatches − returned dispatches) / dispatches, where dispatches are ``dispatch`` steps in
    the period and a dispatch is returned when the receiver sent the case back (``return``,
    "not ours") before the next dispatch. Grouped by department, a dispatch counts for the
    department it was sent to (its receiver), other figures for the case's current department.
incidents_per_1000_households (千户发案率)
    filed × 1000 / households, households being the sum of ``stairwell.households`` of the
    buildings in the group's grids. Only for groupings with a place (grid, community,
    subdistrict, or worker through the grids bound to the worker); None otherwise.

A rate is None when its denominator is zero. Reporters' personal data is never read here.
Cases are attributed to the grid (and so community and subdistrict), worker and department
recorded on the case, i.e. as they were when the case was filed and dispatched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from gis.errors import InputError

# Whitelisted group dimensions: the case column it needs, its expression over the per-group
# rows (r: rows aggregated by case columns, g: grid, cm: community, sd: subdistrict) and over
# the household rows (None: the dimension has no place).
_DIMENSIONS: dict[str, tuple[str, str, str | None]] = {
    "grid": ("grid_id", "g.code", "g.code"),
    "community": ("grid_id", "cm.code", "cm.code"),
    "subdistrict": ("grid_id", "sd.code", "sd.code"),
    "worker": ("worker_id", "r.worker_id::text", "g.worker_id::text"),
    "department": ("department", "r.department", None),
    "category": ("category_code", "r.category_code", None),
}
GROUPS = tuple(_DIMENSIONS)


@dataclass(frozen=True, slots=True)
class Indicators:
    """The indicators of one group for one period (see the module docstring)."""

    key: dict[str, str | None]
    filed: int
    due: int
    closed: int
    closed_on_time: int
    reworked: int
    extended: int
    dispatches: int
    returned_dispatches: int
    households: int | None
    closure_rate: float | None
    on_time_rate: float | None
    rework_rate: float | None
    extension_rate: float | None
    correct_dispatch_rate: float | None
    incidents_per_1000_households: float | None


def _ratio(numerator: int, denominator: int | None, scale: float = 1.0) -> float | None:
    return numerator * scale / denominator if denominator else None


def _query(group_by: Sequence[str]) -> str:
    # Identifiers and expressions come from the _DIMENSIONS whitelist only.
    base = sorted({_DIMENSIONS[d][0] for d in group_by})
    cols = "".join(f"c.{b}, " for b in base)
    dispatch_cols = "".join(
        "d.receiver AS department, " if b == "department" else f"c.{b}, " for b in base
    )
    base_group = ", ".join(f"{i + 1}" for i in range(len(base))) or "()"
    keys = ", ".join(f"{_DIMENSIONS[d][1]} AS k{i}" for i, d in enumerate(group_by))
    group = ", ".join(f"k{i}" for i in range(len(group_by))) or "()"
    order = ", ".join(f"k{i}" for i in range(len(group_by))) or "1"
    place = [d for d in group_by if _DIMENSIONS[d][2] is not None]
    households = "NULL::bigint"
    household_cte = ""
    if len(place) == 1:
        index = list(group_by).index(place[0])
        household_cte = f""",
        hh AS (
            SELECT {_DIMENSIONS[place[0]][2]} AS hk, sum(s.households) AS households
            FROM stairwell s
            JOIN building b ON b.id = s.building_id
            JOIN grid g ON g.id = b.grid_id
            LEFT JOIN community cm ON cm.id = g.community_id
            LEFT JOIN subdistrict sd ON sd.id = cm.subdistrict_id
            GROUP BY 1
        )"""  # noqa: S608 (whitelisted expression)
        households = f"(SELECT households FROM hh WHERE hh.hk = a.k{index})"  # noqa: S608
    joins = ""
    if "grid_id" in base:
        joins = (
            " LEFT JOIN grid g ON g.id = r.grid_id"
            " LEFT JOIN community cm ON cm.id = g.community_id"
            " LEFT JOIN subdistrict sd ON sd.id = cm.subdistrict_id"
        )
    # A case that was never returned has had at most one dispatch, at dispatched_at, to the
    # department on the case: counted from the case row. The few returned cases are counted
    # dispatch by dispatch from their history (receiver and return of each dispatch).
    return f"""
        WITH returned AS (
            SELECT DISTINCT case_id FROM case_transition WHERE action = 'return'
        ),
        flags AS (
            SELECT case_id,
                   bool_or(action = 'rework') AS reworked,
                   bool_or(action = 'approve_extension') AS extended
            FROM case_transition
            WHERE action IN ('rework', 'approve_extension') AND at < :end
            GROUP BY case_id
        ),
        per_case AS (
            SELECT {cols}
                   (c.filed_at >= :start AND c.filed_at < :end) AS filed,
                   (c.deadline >= :start AND c.deadline < :end
                    AND c.status NOT IN ('voided', 'parked')) AS due,
                   (c.closed_at < :end) AS closed,
                   (c.closed_at <= c.deadline) AS on_time,
                   (c.dispatched_at >= :start AND c.dispatched_at < :end
                    AND rt.case_id IS NULL) AS dispatched,
                   f.reworked, f.extended
            FROM cases c
            LEFT JOIN returned rt ON rt.case_id = c.id
            LEFT JOIN flags f ON f.case_id = c.id
            WHERE (c.filed_at >= :start AND c.filed_at < :end)
               OR (c.deadline >= :start AND c.deadline < :end)
               OR (c.dispatched_at >= :start AND c.dispatched_at < :end)
        ),
        rows AS (
            SELECT {cols.replace("c.", "")}
                   count(*) FILTER (WHERE filed) AS filed,
                   count(*) FILTER (WHERE due) AS due,
                   count(*) FILTER (WHERE due AND closed) AS closed,
                   count(*) FILTER (WHERE due AND closed AND on_time) AS closed_on_time,
                   count(*) FILTER (WHERE due AND reworked) AS reworked,
                   count(*) FILTER (WHERE due AND extended) AS extended,
                   count(*) FILTER (WHERE dispatched) AS dispatches,
                   0 AS returned
            FROM per_case c
            GROUP BY {base_group}
            UNION ALL
            SELECT {dispatch_cols}
                   0, 0, 0, 0, 0, 0, count(*), count(*) FILTER (WHERE d.next = 'return')
            FROM (
                SELECT t.case_id, t.receiver, t.action, t.at,
                       lead(t.action) OVER (PARTITION BY t.case_id ORDER BY t.seq) AS next
                FROM returned rt
                JOIN case_transition t ON t.case_id = rt.case_id
                WHERE t.action IN ('dispatch', 'return')
            ) d
            JOIN cases c ON c.id = d.case_id
            WHERE d.action = 'dispatch' AND d.at >= :start AND d.at < :end
            GROUP BY {base_group}
        ),
        a AS (
            SELECT {keys + "," if keys else ""}
                   sum(r.filed)::bigint AS filed, sum(r.due)::bigint AS due,
                   sum(r.closed)::bigint AS closed,
                   sum(r.closed_on_time)::bigint AS closed_on_time,
                   sum(r.reworked)::bigint AS reworked, sum(r.extended)::bigint AS extended,
                   sum(r.dispatches)::bigint AS dispatches, sum(r.returned)::bigint AS returned
            FROM rows r{joins}
            GROUP BY {group}
        ){household_cte}
        SELECT a.*, {households} AS households FROM a
        WHERE a.filed + a.due + a.dispatches > 0
        ORDER BY {order}
    """  # noqa: S608


def indicators(
    connection: Connection,
    *,
    start: dt.datetime,
    end: dt.datetime,
    group_by: Sequence[str] = ("grid",),
) -> list[Indicators]:
    """Compute the closed-loop indicators of every group for the period ``[start, end)``.

    Parameters
    ----------
    connection
        An open connection.
    start, end
        The period (aware datetimes; ``end`` excluded).
    group_by
        Dimensions from :data:`GROUPS` (``grid``, ``community``, ``subdistrict``, ``worker``,
        ``department``, ``category``), e.g. ``("community", "category")``; empty for one
        total row.

    Returns
    -------
    list of Indicators
        One per group that has any filed, due or dispatched case, ordered by key.

    Raises
    ------
    InputError
        Naming ``group_by`` for an unknown or repeated dimension, ``start``/``end`` for a naive
        datetime or an empty period.
    """
    dims = list(group_by)
    unknown = [d for d in dims if d not in _DIMENSIONS]
    if unknown or len(set(dims)) != len(dims):
        msg = f"{dims} must be distinct dimensions among {', '.join(GROUPS)}"
        raise InputError("group_by", msg)
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise InputError(name, "a time zone is required")
    if end <= start:
        raise InputError("end", "must be after start")
    rows = connection.execute(text(_query(dims)), {"start": start, "end": end}).mappings()
    out = []
    for row in rows:
        households = None if row["households"] is None else int(row["households"])
        filed, due = int(row["filed"]), int(row["due"])
        dispatches, returned = int(row["dispatches"]), int(row["returned"])
        out.append(
            Indicators(
                key={d: row[f"k{i}"] for i, d in enumerate(dims)},
                filed=filed,
                due=due,
                closed=int(row["closed"]),
                closed_on_time=int(row["closed_on_time"]),
                reworked=int(row["reworked"]),
                extended=int(row["extended"]),
                dispatches=dispatches,
                returned_dispatches=returned,
                households=households,
                closure_rate=_ratio(int(row["closed"]), due),
                on_time_rate=_ratio(int(row["closed_on_time"]), due),
                rework_rate=_ratio(int(row["reworked"]), due),
                extension_rate=_ratio(int(row["extended"]), due),
                correct_dispatch_rate=_ratio(dispatches - returned, dispatches),
                incidents_per_1000_households=_ratio(filed, households, 1000.0),
            )
        )
    return out
