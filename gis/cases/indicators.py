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
    due cases with at least one ``rework`` step / due.
extension_rate (延期率)
    due cases with at least one approved extension / due.
correct_dispatch_rate (准确派遣率)
    (dispatches − returned dispatches) / dispatches, where dispatches are ``dispatch`` steps in
    the period and a dispatch is returned when the receiver sent the case back (``return``,
    "not ours") before the next dispatch. Grouped by department, a dispatch counts for the
    department it was sent to (its receiver), other figures for the case's current department.
incidents_per_1000_households (千户发案率)
    filed × 1000 / households, households being the sum of ``stairwell.households`` of the
    buildings in the group's grids. Only for groupings with a place (grid, community,
    subdistrict, or worker through the grids bound to the worker); None otherwise.

Like ``due`` itself (which reads the current deadline and status), rework and extension are
read as recorded now: the counters the workflow keeps on the case row next to its history. A
rate is None when its denominator is zero. Reporters' personal data is never read here.
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
_WORK_MEM = "64MB"


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
    base_group = ", ".join(f"{i + 1}" for i in range(len(base))) or "()"
    keys = ", ".join(f"{_DIMENSIONS[d][1]} AS k{i}" for i, d in enumerate(group_by))
    group = ", ".join(f"k{i}" for i in range(len(group_by))) or "()"
    order = ", ".join(f"k{i}" for i in range(len(group_by))) or "1"
    place = [d for d in group_by if _DIMENSIONS[d][2] is not None]
    households = "NULL::bigint"
    household_cte = ""
    household_join = ""
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
        households = "hh.households"
        household_join = f" LEFT JOIN hh ON hh.hk = a.k{index}"
    joins = ""
    if "grid_id" in base:
        joins = (
            " LEFT JOIN grid g ON g.id = r.grid_id"
            " LEFT JOIN community cm ON cm.id = g.community_id"
            " LEFT JOIN subdistrict sd ON sd.id = cm.subdistrict_id"
        )
    # One scan of the case rows gives everything but the returned dispatches: a case's last
    # dispatch is on the row (dispatched_at, department), and every earlier dispatch was
    # returned (only a return brings a case back to be dispatched again). Each return step
    # names the dispatch it sends back, so the few returns add the earlier dispatches and the
    # returned count, attributed to the department that returned them. (A dispatch, its return
    # and a re-dispatch recorded at the very same instant would count the first dispatch once
    # as the case's last; the workflow records real times, so this does not arise in practice.)
    due = "c.deadline >= :start AND c.deadline < :end AND c.status NOT IN ('voided', 'parked')"
    in_period = "c.dispatched_at >= :start AND c.dispatched_at < :end"
    return_cols = "".join("r.department, " if b == "department" else f"c.{b}, " for b in base)
    return f"""
        WITH rows AS (
            SELECT {cols}
                   count(*) FILTER (WHERE c.filed_at >= :start AND c.filed_at < :end) AS filed,
                   count(*) FILTER (WHERE {due}) AS due,
                   count(*) FILTER (WHERE {due} AND c.closed_at < :end) AS closed,
                   count(*) FILTER (
                       WHERE {due} AND c.closed_at < :end AND c.closed_at <= c.deadline
                   ) AS closed_on_time,
                   count(*) FILTER (WHERE {due} AND c.rework_count > 0) AS reworked,
                   count(*) FILTER (WHERE {due} AND c.extension_count > 0) AS extended,
                   count(*) FILTER (WHERE {in_period}) AS dispatches,
                   0 AS returned
            FROM cases c
            WHERE (c.filed_at >= :start AND c.filed_at < :end)
               OR (c.deadline >= :start AND c.deadline < :end)
               OR ({in_period})
            GROUP BY {base_group}
            UNION ALL
            SELECT {return_cols}
                   0, 0, 0, 0, 0, 0,
                   count(*) FILTER (WHERE r.dispatched_at < c.dispatched_at),
                   count(*)
            FROM (
                SELECT case_id, (detail ->> 'dispatched_at')::timestamptz AS dispatched_at,
                       detail ->> 'department' AS department
                FROM case_transition
                WHERE action = 'return'
            ) r
            JOIN cases c ON c.id = r.case_id
            WHERE r.dispatched_at >= :start AND r.dispatched_at < :end
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
        SELECT a.*, {households} AS households FROM a{household_join}
        WHERE a.filed + a.due + a.dispatches > 0
        ORDER BY {order.replace("k", "a.k")}
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
    # An analytic query over the whole period: JIT compilation costs more than it saves here,
    # and sorts and hashes of a quarter fit in memory. Both settings are transaction-local and
    # put back afterwards; if the query fails, the rollback the caller must do discards them.
    saved = connection.execute(
        text("SELECT current_setting('jit'), current_setting('work_mem')")
    ).one()
    connection.execute(
        text("SELECT set_config('jit', 'off', true), set_config('work_mem', :mem, true)"),
        {"mem": _WORK_MEM},
    )
    rows = connection.execute(text(_query(dims)), {"start": start, "end": end}).mappings().all()
    connection.execute(
        text("SELECT set_config('jit', :jit, true), set_config('work_mem', :mem, true)"),
        {"jit": saved[0], "mem": saved[1]},
    )
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
