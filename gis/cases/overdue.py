"""Open cases past their deadline as a GeoJSON page, with time used and left on each clock.

Overdue means dispatched, not closed, voided or parked, and the (possibly extended) deadline
before ``now`` (as :func:`gis.cases.workflow.overdue_case_ids`). Cases come most overdue
first. Each feature carries ``time_used_s`` and ``time_left_s`` (negative: overdue) in seconds
of the case's clock (working hours count only office hours, working days only working days).
Reporter name and phone are never read here.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Connection, text

from gis.auth import Principal
from gis.cases.calendar import WorkingCalendar
from gis.cases.deadlines import time_used_left
from gis.cases.reporting import case_filters
from gis.errors import InputError
from gis.features import BBox

_OVERDUE = text(
    """
    SELECT k.id, ST_X(k.geom) AS lon, ST_Y(k.geom) AS lat, k.external_id, k.category_code,
           k.status, k.reported_at, g.code AS grid_code, c.code AS community_code, k.worker_id,
           k.department, k.description, k.dispatched_at, k.deadline, k.limit_value, k.limit_unit
    FROM cases k
    LEFT JOIN grid g ON g.id = k.grid_id
    LEFT JOIN community c ON c.id = k.community_id
    WHERE k.deadline < :now AND k.closed_at IS NULL AND k.dispatched_at IS NOT NULL
      AND k.status NOT IN ('voided', 'parked', 'closed', 'evaluated')
      AND (CAST(:minlon AS float8) IS NULL
           OR k.geom && ST_MakeEnvelope(:minlon, :minlat, :maxlon, :maxlat, 4326))
      AND (CAST(:grid AS text) IS NULL OR g.code = :grid)
      AND (CAST(:community AS text) IS NULL OR c.code = :community)
      AND (CAST(:category AS text) IS NULL OR k.category_code = :category)
      AND (CAST(:status AS text) IS NULL OR k.status = :status)
      AND (CAST(:since AS timestamptz) IS NULL OR k.reported_at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR k.reported_at < :until)
      -- A grid worker's scope: cases of the current grids they serve (gis.auth).
      AND (NOT CAST(:scoped AS boolean) OR k.grid_id IN (
          SELECT sg.id FROM grid sg
          WHERE sg.worker_id = :scope_worker_id AND sg.valid_to IS NULL))
    ORDER BY k.deadline, k.id
    LIMIT :limit_plus OFFSET :offset
    """
)


@lru_cache(maxsize=1)
def _default_calendar() -> WorkingCalendar:
    return WorkingCalendar.from_settings()


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def overdue_cases(
    connection: Connection,
    *,
    now: dt.datetime,
    calendar: WorkingCalendar | None = None,
    bbox: BBox | str | None = None,
    grid: str | None = None,
    community: str | None = None,
    category: str | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    max_limit: int = 10_000,
    principal: Principal | None = None,
) -> str:
    """Return the overdue cases at ``now`` as a GeoJSON FeatureCollection (a JSON string).

    Filters and the worker scope of ``principal`` are those of
    :func:`gis.cases.reporting.list_cases` (``since`` inclusive,
    ``until`` exclusive, on ``reported_at``); the collection carries ``numberReturned``,
    ``offset``, ``limit`` and ``truncated`` likewise, plus ``now``. ``calendar`` defaults to
    the configured working calendar.

    Raises
    ------
    InputError
        Naming ``now`` (naive), or a filter as :func:`gis.cases.reporting.case_filters` does
        (``since``/``until`` naive or since after until, ``bbox``, ``category``, ``status``,
        ``limit``/``offset``).
    """
    if now.tzinfo is None:
        raise InputError("now", "must carry a time zone (e.g. 2026-11-01T00:00:00+08:00)")
    params = case_filters(
        bbox=bbox,
        grid=grid,
        community=community,
        category=category,
        status=status,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        max_limit=max_limit,
        principal=principal,
    )
    rows = connection.execute(_OVERDUE, {**params, "now": now}).all()
    page = rows[:limit]
    used = left = np.empty(0, dtype=np.int64)
    if page:
        used, left = time_used_left(
            np.array([r.dispatched_at.timestamp() for r in page], dtype=np.int64),
            calendar or _default_calendar(),
            deadline_at=np.array([r.deadline.timestamp() for r in page], dtype=np.int64),
            units=[r.limit_unit for r in page],
            now=np.int64(now.timestamp()),
        )
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "id": r.id,
            "geometry": {"type": "Point", "coordinates": [round(r.lon, 7), round(r.lat, 7)]},
            "properties": {
                "external_id": r.external_id,
                "category": r.category_code,
                "status": r.status,
                "reported_at": _iso(r.reported_at),
                "grid_code": r.grid_code,
                "community_code": r.community_code,
                "worker_id": r.worker_id,
                "department": r.department,
                "description": r.description,
                "dispatched_at": _iso(r.dispatched_at),
                "deadline": _iso(r.deadline),
                "limit_value": r.limit_value,
                "limit_unit": r.limit_unit,
                "time_used_s": int(u),
                "time_left_s": int(lf),
            },
        }
        for r, u, lf in zip(page, used, left, strict=True)
    ]
    body = {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "truncated": len(rows) > limit,
        "offset": offset,
        "limit": limit,
        "now": now.isoformat(),
    }
    return json.dumps(body, ensure_ascii=False)
