"""Queries behind the grid API: cells by bbox and date, one cell in detail, generation reports.

Every function takes validated or raw request values and raises domain errors naming the
offending parameter (:class:`~gis.errors.InputError`) or the missing thing
(:class:`~gis.errors.NotFoundError`). Outputs carry no personal data: a worker appears by name
and role, never by phone (:mod:`gis.grids.workers`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from gis.errors import InputError, NotFoundError
from gis.features import BBox
from gis.grids.codes import COMMUNITY_PATTERN, parse_code
from gis.grids.generate import communities_of, generate_grids
from gis.grids.io import StagedCell, stage_cells
from gis.grids.validate import KINDS, STAGING_TABLE, validate_grids
from gis.grids.versions import cell_by_code
from gis.grids.workers import responsible_for

# Case states after which nothing more is done on the case (gis/cases/workflow.py).
FINISHED_CASE_STATES = ("closed", "voided", "evaluated")
SUBDISTRICT_PATTERN = re.compile(r"^[0-9]{9}$")


def check_kind(kind: str | None, *, field: str = "kind") -> str | None:
    """Return ``kind`` when it is None or a known grid kind.

    Raises
    ------
    InputError
        Naming ``field`` when the kind is not ``unit`` or ``service``.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(field, f"unknown grid kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def parse_as_of(
    value: str | None, *, timezone: str = "Asia/Shanghai", field: str = "as_of"
) -> datetime | None:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS][±HH:MM]`` into an aware datetime.

    Parameters
    ----------
    value : str or None
        The date or time; None means "now" to the queries.
    timezone : str
        IANA zone of a date or time written without offset (the city's local time).
    field : str
        Name of the parameter in the error.

    Returns
    -------
    datetime or None
        Timezone-aware; a bare date is midnight local time.

    Raises
    ------
    InputError
        Naming ``field`` when the value is empty or not an ISO 8601 date or time.
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        msg = f"expected an ISO date or time such as 2026-03-01 or 2026-03-01T08:30, got {value!r}"
        raise InputError(field, msg) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment


def check_place(*, community: str | None, subdistrict: str | None) -> None:
    """Check that exactly one of a 12-digit community or a 9-digit subdistrict code is given.

    Raises
    ------
    InputError
        Naming ``community`` (neither or both given, or malformed) or ``subdistrict``.
    """
    if (community is None) == (subdistrict is None):
        raise InputError("community", "give exactly one of community or subdistrict")
    if community is not None and not COMMUNITY_PATTERN.fullmatch(community):
        raise InputError("community", f"community code must be 12 digits, got {community!r}")
    if subdistrict is not None and not SUBDISTRICT_PATTERN.fullmatch(subdistrict):
        raise InputError("subdistrict", f"subdistrict code must be 9 digits, got {subdistrict!r}")


def community_id_of(connection: Connection, code: str, *, field: str = "community") -> int:
    """Return the id of the community with this 12-digit code.

    Raises
    ------
    InputError
        Naming ``field`` when the code is not 12 digits.
    NotFoundError
        When no community has that code.
    """
    if not COMMUNITY_PATTERN.fullmatch(code):
        raise InputError(field, f"community code must be 12 digits, got {code!r}")
    cid = connection.execute(
        text("SELECT id FROM community WHERE code = :code"), {"code": code}
    ).scalar_one_or_none()
    if cid is None:
        raise NotFoundError(f"no community {code}")
    return int(cid)


def grid_features(
    connection: Connection,
    *,
    bbox: BBox | None = None,
    kind: str | None = None,
    as_of: datetime | None = None,
    limit: int = 2_000,
) -> dict[str, Any]:
    """Return the cells valid at ``as_of`` (default now) as a GeoJSON FeatureCollection.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    bbox : BBox, optional
        WGS84 degrees; cells whose geometry intersects it.
    kind : {"unit", "service"}, optional
        Only cells of this kind.
    as_of : datetime, optional
        The moment at which the cells were valid.
    limit : int
        At most this many features; ``truncated`` says when more matched.

    Returns
    -------
    dict
        FeatureCollection (EPSG:4326), ordered by kind and code. Properties: code, kind,
        community (code), community_name, valid_from, valid_to (ISO 8601), area_m2 (geodesic,
        m²), worker (name) and worker_role. No phone.

    Raises
    ------
    InputError
        If the kind is unknown.
    """
    check_kind(kind)
    west, south, east, north = bbox if bbox is not None else (None, None, None, None)
    rows = connection.execute(
        text(
            "SELECT g.code, g.kind, c.code, c.name, g.valid_from, g.valid_to,"
            " ST_Area(g.geom::geography), ST_AsGeoJSON(g.geom, 7), w.name, w.role"
            " FROM grid g LEFT JOIN community c ON c.id = g.community_id"
            " LEFT JOIN grid_worker w ON w.id = g.worker_id"
            " WHERE g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
            " AND (CAST(:kind AS text) IS NULL OR g.kind = :kind)"
            " AND (CAST(:w AS float8) IS NULL OR (g.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)"
            "  AND ST_Intersects(g.geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))))"
            " ORDER BY g.kind, g.code, g.id LIMIT :limit"
        ),
        {
            "as_of": as_of or _now(connection),
            "kind": kind,
            "w": west,
            "s": south,
            "e": east,
            "n": north,
            "limit": limit + 1,
        },
    ).all()
    features = [
        {
            "type": "Feature",
            "id": r[0],
            "geometry": json.loads(r[7]),
            "properties": {
                "code": r[0],
                "kind": r[1],
                "community": r[2],
                "community_name": r[3],
                "valid_from": r[4].isoformat(),
                "valid_to": r[5].isoformat() if r[5] else None,
                "area_m2": round(float(r[6]), 1),
                "worker": r[8],
                "worker_role": r[9],
            },
        }
        for r in rows[:limit]
    ]
    return {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "truncated": len(rows) > limit,
    }


def open_cases(connection: Connection, cell_id: int) -> int:
    """Count the cases of a cell not yet closed, voided or evaluated.

    Cases are assigned to service cells and keep the version they were assigned to: a service
    cell counts the open cases assigned to any version of its code (staff speak of the cell by
    its code). A unit cell counts the open cases lying inside it.
    """
    return int(
        connection.execute(
            text(
                "SELECT CASE c.kind WHEN 'service' THEN"
                " (SELECT count(*) FROM cases k JOIN grid g ON g.id = k.grid_id"
                "  WHERE g.code = c.code AND g.kind = c.kind AND k.status <> ALL(:finished))"
                " ELSE (SELECT count(*) FROM cases k WHERE k.geom && c.geom"
                "  AND ST_Intersects(c.geom, k.geom) AND k.status <> ALL(:finished)) END"
                " FROM grid c WHERE c.id = :id"
            ),
            {"id": cell_id, "finished": list(FINISHED_CASE_STATES)},
        ).scalar_one()
    )


def cell_detail(
    connection: Connection, code: str, *, kind: str | None = None, as_of: datetime | None = None
) -> dict[str, Any]:
    """Return one cell with its community, worker and counts, as a GeoJSON Feature.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    code : str
        15-digit grid code; a service cell wins over a unit cell of the same code unless
        ``kind`` is given.
    kind : {"unit", "service"}, optional
    as_of : datetime, optional
        The cell version valid then (default now).

    Returns
    -------
    dict
        Feature (EPSG:4326) whose properties hold code, kind, valid_from/valid_to, area_m2,
        community {code, name}, worker {name, role} or None, and counts of buildings,
        stairwells, households, residents, elderly and open cases (:func:`open_cases`).
        No phone.

    Raises
    ------
    InputError
        If the code is not 15 digits or the kind is unknown.
    NotFoundError
        If no cell had that code at that moment.
    """
    parse_code(code)
    check_kind(kind)
    cell = cell_by_code(connection, code, kind=kind, as_of=as_of)
    counts = asdict(cell.counts)
    counts["open_cases"] = open_cases(connection, cell.id)
    worker = (
        {"name": cell.worker_name, "role": cell.worker_role}
        if cell.worker_name is not None
        else None
    )
    return {
        "type": "Feature",
        "id": cell.code,
        "geometry": cell.geometry,
        "properties": {
            "code": cell.code,
            "kind": cell.kind,
            "valid_from": cell.valid_from.isoformat(),
            "valid_to": cell.valid_to.isoformat() if cell.valid_to else None,
            "area_m2": round(cell.area_m2, 1),
            "community": {"code": cell.community_code, "name": cell.community_name},
            "worker": worker,
            "counts": counts,
        },
    }


def responsible(
    connection: Connection, code: str, *, as_of: datetime | None = None
) -> dict[str, Any]:
    """Answer "who is responsible here" for a service cell: its worker, else its community.

    Returns
    -------
    dict
        ``code``, ``community`` {code, name}, ``worker`` {name, role, active, grids} or None
        (the community answers then: DOMAIN §3, the territory rule). No phone.

    Raises
    ------
    InputError
        If the code is not 15 digits.
    NotFoundError
        If no service cell had that code at that moment.
    """
    answer = responsible_for(connection, code, as_of=as_of)
    worker = answer.worker
    return {
        "code": answer.code,
        "community": {"code": answer.community_code, "name": answer.community_name},
        "worker": None
        if worker is None
        else {
            "name": worker.name,
            "role": worker.role,
            "active": worker.active,
            "grids": worker.grids,
        },
        "responsible": "worker" if worker is not None else "community",
    }


def validation_report(
    connection: Connection,
    *,
    community: str | None = None,
    kind: str = "service",
    as_of: datetime | None = None,
    tolerance_m2: float = 1.0,
) -> dict[str, Any]:
    """Validate the stored grid layer (one community or all) and return the report as JSON.

    The connection must be inside a transaction (validation uses temporary tables).

    Raises
    ------
    InputError
        If the kind is unknown or the community code malformed.
    NotFoundError
        If the community does not exist.
    """
    check_kind(kind)
    cid = community_id_of(connection, community) if community is not None else None
    report = validate_grids(
        connection, community_id=cid, kind=kind, as_of=as_of, tolerance_m2=tolerance_m2
    )
    return report.to_dict()


def generation_report(
    connection: Connection,
    *,
    community: str | None = None,
    subdistrict: str | None = None,
    kind: str = "service",
    target_households: int = 400,
    target_area_m2: float = 10_000.0,
    tolerance: float = 0.25,
    store: bool = True,
    tolerance_m2: float = 1.0,
) -> dict[str, Any]:
    """Generate the cells of a community or a subdistrict, validate them, return the report.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Inside a transaction: with ``store`` the new cells replace the current ones in it.
    community, subdistrict : str, optional
        Exactly one: a 12-digit community code or a 9-digit subdistrict code.
    kind : {"service", "unit"}
    target_households : int
        Households per service cell.
    target_area_m2 : float
        Area of a unit cell, m².
    tolerance : float
        Relative size deviation accepted before splitting or merging, in [0, 1).
    store : bool
        False computes and validates without storing anything.
    tolerance_m2 : float
        Validation noise threshold, m².

    Returns
    -------
    dict
        ``kind``, ``stored``, ``summary`` (counts and ranges), ``cells`` (code, community,
        households, buildings, area_m2, compactness 4πA/P²) and ``validation`` (the report of
        :func:`gis.grids.validate.validate_grids` over the generated cells).

    Raises
    ------
    InputError
        Naming the parameter: neither or both places given, malformed codes, unknown kind,
        targets or tolerance out of range.
    NotFoundError
        If the community or subdistrict does not exist (or has no community with a boundary).
    """
    check_kind(kind)
    check_place(community=community, subdistrict=subdistrict)
    if community is not None:
        ids = [community_id_of(connection, community)]
    else:
        ids = communities_of(connection, subdistrict_code=subdistrict)
        if not ids:
            raise NotFoundError(f"no subdistrict {subdistrict} with community boundaries")
    result = generate_grids(
        connection,
        community_ids=ids,
        kind=kind,
        target_households=target_households,
        target_area_m2=target_area_m2,
        tolerance=tolerance,
        store=store,
    )
    rows = connection.execute(
        text("SELECT id, code FROM community WHERE id = ANY(:ids)"), {"ids": ids}
    ).all()
    codes = {int(r[0]): str(r[1]) for r in rows}
    # The generated cells, staged afresh, are what is validated (stored or not).
    stage_cells(
        connection,
        [StagedCell(i, c.code, c.community_id, c.geometry) for i, c in enumerate(result.cells)],
        kind=kind,
    )
    report = validate_grids(connection, kind=kind, layer=STAGING_TABLE, tolerance_m2=tolerance_m2)
    return {
        "kind": kind,
        "stored": result.replaced is not None,
        "valid_from": result.replaced.valid_from.isoformat() if result.replaced else None,
        "summary": result.summary(),
        "cells": [
            {
                "code": c.code,
                "community": codes[c.community_id],
                "households": c.households,
                "buildings": c.buildings,
                "area_m2": round(c.area_m2, 1),
                "compactness": round(c.compactness, 3),
            }
            for c in result.cells
        ],
        "validation": report.to_dict(),
    }


def _now(connection: Connection) -> datetime:
    value: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    return value
