"""Report cases: one at a time with their assignment and possible duplicates, or in batches.

Assignment
----------
A case is assigned by :func:`gis.locate.locate` (one report) or by :class:`gis.assign.CellIndex`
(a batch): the current **service** cell that covers the point, ties to the lowest grid code, its
worker, community and subdistrict, the nearest stairwell (or the stairwell of the address), and
the flags ``near_grid_code``/``near_boundary_m`` (another cell within the confirmation distance)
and ``inside_managed_area``. A case outside every cell is stored all the same, with
``inside_managed_area = false`` and ``routed_to = 'subdistrict'``: never dropped.

Possible duplicates are open cases (not closed, evaluated or voided) of the same small class
within ``duplicate_radius_m`` metres (spheroid distance) reported within the
``duplicate_window_days`` before the new case.

Batches
-------
:func:`import_cases_batch` reads a CSV (``lon``/``lat`` with ``crs``, or ``address``) or a
GeoJSON file, validates every row and assigns it its cell in memory, then stores the valid rows
in chunks, each in its own transaction (a savepoint when the caller holds a transaction). A
chunk's near-boundary flags, places and nearest stairwells are computed just before it is
stored, while the previous chunks are being inserted. Where the row triggers may be skipped
(see ``_store_chunk``) a chunk goes by binary ``COPY`` straight into ``cases``; otherwise, or
when another writer stored one of its external ids meanwhile, it is copied into a temporary
table and inserted by one ``INSERT ... ON CONFLICT DO NOTHING``. A crash loses at most
the chunk under way; running the same file again stores what is missing and nothing twice,
because rows are keyed by their ``external_id`` (derived from the row's content when the file
has none). Rejected rows are reported with row number (header = row 1; GeoJSON: feature
number from 1), field and reason.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import queue
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from gis.addresses import AddressBook, AddressMatch, parse_address, resolve_address
from gis.assign import CellIndex
from gis.auth import Principal
from gis.cases.categories import default_categories
from gis.coords import CRS_NAMES, CoordinateSystem, parse_crs, to_wgs84, utm_epsg
from gis.errors import ConflictError, InputError, NotFoundError
from gis.features import BBox, parse_bbox
from gis.locate import locate
from gis.models import CASE_STATES
from gis.settings import CaseSettings

__all__ = [
    "BatchReport",
    "BatchTooLargeError",
    "CaseAssignment",
    "CaseReport",
    "Rejected",
    "ReportedCase",
    "import_cases_batch",
    "list_cases",
    "move_pin",
    "report_case",
]

CRS_LIST = ", ".join(CRS_NAMES)
OPEN_EXCLUDED = ("closed", "evaluated", "voided")
ProgressCallback = Callable[[str, int, int], None]


class BatchTooLargeError(InputError):
    """A batch exceeds the configured size limit (``limit`` rows or bytes, named in the text)."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__("batch", message)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class CaseReport:
    """One report as received: a location by coordinates (in ``crs``) or by address."""

    category: str
    lon: float | str | None = None
    lat: float | str | None = None
    crs: str = "wgs84"
    address: str | None = None
    description: str | None = None
    photo_urls: Sequence[str] = ()
    reporter_name: str | None = None
    reporter_phone: str | None = None
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class CaseAssignment:
    """A stored case and where it was assigned (no reporter contact: that stays with staff)."""

    id: int
    external_id: str | None
    category: str
    status: str
    lon: float
    lat: float
    reported_at: datetime
    grid_id: int | None
    grid_code: str | None
    worker_id: int | None
    worker_name: str | None
    community_code: str | None
    community_name: str | None
    subdistrict_code: str | None
    subdistrict_name: str | None
    stairwell_id: int | None
    inside_managed_area: bool
    near_grid_code: str | None
    near_boundary_m: float | None
    routed_to: str
    address: str | None


@dataclass(frozen=True, slots=True)
class ReportedCase:
    """Answer of :func:`report_case`: the case, whether it is new, and possible duplicates."""

    case: CaseAssignment
    created: bool
    possible_duplicates: list[CaseAssignment]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected batch row: row number (header = 1), field and reason."""

    row: int
    field: str
    reason: str


@dataclass
class BatchReport:
    """What a batch import did."""

    rows: int = 0
    stored: int = 0
    already_stored: int = 0
    chunks: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def _settings(settings: CaseSettings | None) -> CaseSettings:
    return settings if settings is not None else CaseSettings()


def _check_category(code: object) -> str:
    tree = default_categories()
    if not isinstance(code, str) or code.strip() not in tree:
        msg = f"unknown category {code!r}: expected a small-class code of the tree, e.g. E0103"
        raise InputError("category", msg)
    return code.strip()


_ASSIGNMENT = """
SELECT k.id, k.external_id, k.category_code, k.status, ST_X(k.geom) AS lon, ST_Y(k.geom) AS lat,
       k.reported_at, k.grid_id, g.code AS grid_code, k.worker_id, w.name AS worker_name,
       c.code AS community_code, c.name AS community_name,
       s.code AS subdistrict_code, s.name AS subdistrict_name, k.stairwell_id,
       k.inside_managed_area, k.near_grid_code, k.near_boundary_m, k.routed_to, k.address
FROM cases k
LEFT JOIN grid g ON g.id = k.grid_id
LEFT JOIN grid_worker w ON w.id = k.worker_id
LEFT JOIN community c ON c.id = k.community_id
LEFT JOIN subdistrict s ON s.id = k.subdistrict_id
"""


def _assignment(row: Any) -> CaseAssignment:
    return CaseAssignment(
        id=int(row.id),
        external_id=row.external_id,
        category=str(row.category_code),
        status=str(row.status),
        lon=float(row.lon),
        lat=float(row.lat),
        reported_at=row.reported_at,
        grid_id=row.grid_id,
        grid_code=row.grid_code,
        worker_id=row.worker_id,
        worker_name=row.worker_name,
        community_code=row.community_code,
        community_name=row.community_name,
        subdistrict_code=row.subdistrict_code,
        subdistrict_name=row.subdistrict_name,
        stairwell_id=row.stairwell_id,
        inside_managed_area=bool(row.inside_managed_area),
        near_grid_code=row.near_grid_code,
        near_boundary_m=None if row.near_boundary_m is None else float(row.near_boundary_m),
        routed_to=str(row.routed_to),
        address=row.address,
    )


def get_case(connection: Connection, case_id: int) -> CaseAssignment:
    """Return case ``case_id`` with its assignment.

    Raises
    ------
    gis.errors.NotFoundError
        When there is no such case.
    """
    row = connection.execute(text(_ASSIGNMENT + " WHERE k.id = :id"), {"id": case_id}).first()
    if row is None:
        msg = f"no case {case_id}"
        raise NotFoundError(msg)
    return _assignment(row)


def possible_duplicates(
    connection: Connection, case: CaseAssignment, *, radius_m: float, window_days: float
) -> list[CaseAssignment]:
    """Open cases of the same small class within ``radius_m`` metres and the window before it."""
    degrees = radius_m / (110_000.0 * max(math.cos(math.radians(min(abs(case.lat) + 1, 89))), 1e-3))
    rows = connection.execute(
        text(
            _ASSIGNMENT
            + """ WHERE k.id <> :id AND k.category_code = :cat
              AND NOT (k.status = ANY(:closed))
              AND k.reported_at >= CAST(:at AS timestamptz) - make_interval(secs => :window)
              AND k.reported_at <= CAST(:at AS timestamptz)
              AND k.geom && ST_Expand(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :deg)
              AND ST_DWithin(k.geom::geography,
                             ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :radius)
            ORDER BY ST_Distance(k.geom::geography,
                                 ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography), k.id
            """
        ),
        {
            "id": case.id,
            "cat": case.category,
            "closed": list(OPEN_EXCLUDED),
            "at": case.reported_at,
            "window": window_days * 86_400.0,
            "lon": case.lon,
            "lat": case.lat,
            "deg": degrees * 1.01,
            "radius": radius_m,
        },
    ).all()
    return [_assignment(r) for r in rows]


def _where_is(
    connection: Connection, report: CaseReport, settings: CaseSettings
) -> tuple[float, float, str, AddressMatch | None]:
    has_coords = report.lon not in (None, "") or report.lat not in (None, "")
    if has_coords:
        system = parse_crs(report.crs)
        lon, lat = to_wgs84(report.lon, report.lat, system)  # type: ignore[arg-type]
        return float(lon), float(lat), system.value, None
    if report.address is None:
        msg = "give lon/lat (with crs) or an address"
        raise InputError("location", msg)
    match = resolve_address(connection, report.address)
    return match.lon, match.lat, CoordinateSystem.WGS84.value, match


def report_case(
    connection: Connection,
    report: CaseReport,
    *,
    settings: CaseSettings | None = None,
) -> ReportedCase:
    """Store one reported case with its assignment; answer possible duplicates.

    Parameters
    ----------
    connection
        A connection inside a transaction (the caller commits).
    report
        Category (small-class code), location by ``lon``/``lat`` in ``crs`` (degrees) or by
        ``address``, description, photo URLs, reporter contact, optional ``external_id``.
    settings
        Confirmation distance, duplicate radius (metres) and window (days).

    Returns
    -------
    ReportedCase
        ``created`` is False when a case with the same ``external_id`` exists: that case is
        answered unchanged, nothing is stored.

    Raises
    ------
    gis.errors.InputError
        Field ``category`` (unknown code), ``lon``/``lat`` (non-numeric, NaN, out of range or
        swapped), ``crs``, ``address`` (empty, unknown: with suggestions, ambiguous: with
        candidates) or ``location`` (neither coordinates nor address).
    """
    config = _settings(settings)
    category = _check_category(report.category)
    external_id = (report.external_id or "").strip() or None
    if external_id is not None:
        existing = connection.execute(
            text("SELECT id FROM cases WHERE external_id = :e"), {"e": external_id}
        ).scalar()
        if existing is not None:
            return ReportedCase(get_case(connection, int(existing)), False, [])
    lon, lat, crs, match = _where_is(connection, report, config)
    where = locate(
        connection,
        lon,
        lat,
        near_boundary_m=config.near_boundary_m,
        search_m=config.stairwell_search_m,
    )
    stairwell = (
        match.stairwell_id
        if match is not None
        else (where.stairwell.id if where.stairwell is not None else None)
    )
    params = {
        "ext": external_id,
        "cat": category,
        "lon": where.lon,
        "lat": where.lat,
        "description": report.description,
        "grid": None if where.grid is None else where.grid.id,
        "worker": None if where.grid is None else where.grid.worker_id,
        "community": None if where.community is None else where.community.id,
        "subdistrict": None if where.subdistrict is None else where.subdistrict.id,
        "stairwell": stairwell,
        "inside": where.inside_managed_area,
        "near_code": None if where.near_boundary is None else where.near_boundary.code,
        "near_m": None if where.near_boundary is None else where.near_boundary.distance_m,
        "routed": "grid" if where.inside_managed_area else "subdistrict",
        "address": None if match is None else report.address,
        "crs": crs,
        "photos": json.dumps([str(u) for u in report.photo_urls]),
        "rname": report.reporter_name,
        "rphone": report.reporter_phone,
    }
    case_id = connection.execute(_INSERT_ONE, params).scalar()
    if case_id is None:
        # Another request stored the same external id meanwhile: answer that case.
        existing = connection.execute(
            text("SELECT id FROM cases WHERE external_id = :e"), {"e": external_id}
        ).scalar_one()
        return ReportedCase(get_case(connection, int(existing)), False, [])
    case = get_case(connection, int(case_id))
    duplicates = possible_duplicates(
        connection,
        case,
        radius_m=config.duplicate_radius_m,
        window_days=config.duplicate_window_days,
    )
    return ReportedCase(case, True, duplicates)


_INSERT_ONE = text(
    """
    INSERT INTO cases (external_id, category_code, geom, description, grid_id, worker_id,
                       community_id, subdistrict_id, stairwell_id, inside_managed_area,
                       near_grid_code, near_boundary_m, routed_to, address, input_crs,
                       photo_urls, reporter_name, reporter_phone)
    VALUES (:ext, :cat, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :description, :grid,
            :worker, :community, :subdistrict, :stairwell, :inside, :near_code, :near_m,
            :routed, :address, :crs, CAST(:photos AS jsonb), :rname, :rphone)
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id
    """
)


def move_pin(
    connection: Connection,
    case_id: int,
    lon: float | str,
    lat: float | str,
    *,
    reason: str,
    actor: str,
    crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    settings: CaseSettings | None = None,
) -> CaseAssignment:
    """Move a case's pin: re-assign it with the current grids and record who, when and why.

    Parameters
    ----------
    connection
        A connection inside a transaction (the caller commits).
    case_id
        The case.
    lon, lat
        The new point in ``crs`` (degrees).
    reason
        Why the pin moves (mandatory, kept in ``case_location_change``).
    actor
        Who moves it.

    Returns
    -------
    CaseAssignment
        The case with its new assignment.

    Raises
    ------
    gis.errors.InputError
        Field ``reason`` when empty, ``actor`` when empty, plus the coordinate errors of
        :func:`gis.locate.locate`.
    gis.errors.NotFoundError
        When the case does not exist.
    """
    if not isinstance(reason, str) or not reason.strip():
        msg = "a pin move needs a reason"
        raise InputError("reason", msg)
    if not actor or not actor.strip():
        msg = "a pin move needs the name of who moves it"
        raise InputError("actor", msg)
    config = _settings(settings)
    old = connection.execute(
        text("SELECT id, grid_id FROM cases WHERE id = :id FOR UPDATE"), {"id": case_id}
    ).first()
    if old is None:
        msg = f"no case {case_id}"
        raise NotFoundError(msg)
    where = locate(
        connection,
        lon,
        lat,
        crs=crs,
        near_boundary_m=config.near_boundary_m,
        search_m=config.stairwell_search_m,
    )
    params = {
        "id": case_id,
        "lon": where.lon,
        "lat": where.lat,
        "grid": None if where.grid is None else where.grid.id,
        "worker": None if where.grid is None else where.grid.worker_id,
        "community": None if where.community is None else where.community.id,
        "subdistrict": None if where.subdistrict is None else where.subdistrict.id,
        "stairwell": None if where.stairwell is None else where.stairwell.id,
        "inside": where.inside_managed_area,
        "near_code": None if where.near_boundary is None else where.near_boundary.code,
        "near_m": None if where.near_boundary is None else where.near_boundary.distance_m,
        "routed": "grid" if where.inside_managed_area else "subdistrict",
        "crs": parse_crs(crs).value,
        "actor": actor.strip(),
        "reason": reason.strip(),
    }
    connection.execute(
        text(
            """
            INSERT INTO case_location_change (case_id, actor, at, reason, old_geom, new_geom,
                                              old_grid_id, new_grid_id)
            SELECT k.id, :actor, clock_timestamp(), :reason, k.geom,
                   ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), k.grid_id, :grid
            FROM cases k WHERE k.id = :id
            """
        ),
        params,
    )
    connection.execute(
        text(
            """
            UPDATE cases SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), grid_id = :grid,
                   worker_id = :worker, community_id = :community, subdistrict_id = :subdistrict,
                   stairwell_id = :stairwell, inside_managed_area = :inside,
                   near_grid_code = :near_code, near_boundary_m = :near_m, routed_to = :routed,
                   input_crs = :crs, version = version + 1
            WHERE id = :id
            """
        ),
        params,
    )
    return get_case(connection, case_id)


# -- listing ---------------------------------------------------------------------------------


_LIST = text(
    """
    WITH page AS (
        SELECT k.*, g.code AS grid_code_, c.code AS community_code_
        FROM cases k
        LEFT JOIN grid g ON g.id = k.grid_id
        LEFT JOIN community c ON c.id = k.community_id
        WHERE (CAST(:minlon AS float8) IS NULL
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
        ORDER BY k.id
        LIMIT :limit_plus OFFSET :offset
    )
    SELECT json_build_object(
        'type', 'FeatureCollection',
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', k.id,
            'geometry', ST_AsGeoJSON(k.geom, 7)::json,
            'properties', json_build_object(
                'external_id', k.external_id, 'category', k.category_code, 'status', k.status,
                'reported_at', k.reported_at, 'grid_code', k.grid_code_,
                'community_code', k.community_code_,
                'worker_id', k.worker_id, 'stairwell_id', k.stairwell_id,
                'inside_managed_area', k.inside_managed_area, 'near_grid_code', k.near_grid_code,
                'near_boundary_m', k.near_boundary_m, 'routed_to', k.routed_to,
                'description', k.description, 'deadline', k.deadline
            )
        ) ORDER BY k.id) FILTER (WHERE k.rn <= :limit), '[]'::json),
        'numberReturned', count(*) FILTER (WHERE k.rn <= :limit),
        'truncated', count(*) > :limit,
        'offset', CAST(:offset AS integer),
        'limit', CAST(:limit AS integer)
    )::text
    FROM (SELECT p.*, row_number() OVER (ORDER BY p.id) AS rn FROM page p) k
    """
)


def _aware(value: datetime | None, field_name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        msg = "must carry a time zone (e.g. 2026-11-01T00:00:00+08:00)"
        raise InputError(field_name, msg)
    return value


def case_filters(
    *,
    bbox: BBox | str | None,
    grid: str | None,
    community: str | None,
    category: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
    max_limit: int,
    principal: Principal | None = None,
) -> dict[str, Any]:
    """Check the filters of a case listing; return them as the listing queries' parameters.

    A worker ``principal`` adds the scope of the current grids they serve (``scoped``,
    ``scope_worker_id``: the queries filter on them); other principals, or None, see all.

    Raises
    ------
    gis.errors.InputError
        Field ``bbox`` (malformed), ``category`` (unknown code), ``status`` (unknown state),
        ``since``/``until`` (naive or since after until), ``limit``/``offset`` (out of range).
    """
    box = parse_bbox(bbox) if isinstance(bbox, str) else bbox
    if category is not None:
        _check_category(category)
    if status is not None and status not in CASE_STATES:
        msg = f"unknown status {status!r}; expected one of {', '.join(CASE_STATES)}"
        raise InputError("status", msg)
    _aware(since, "since")
    _aware(until, "until")
    if since is not None and until is not None and since > until:
        raise InputError("until", "must not be before since")
    if not 1 <= limit <= max_limit:
        raise InputError("limit", f"must be between 1 and {max_limit}, got {limit}")
    if offset < 0:
        raise InputError("offset", f"must be >= 0, got {offset}")
    return {
        "minlon": None if box is None else box.minlon,
        "minlat": None if box is None else box.minlat,
        "maxlon": None if box is None else box.maxlon,
        "maxlat": None if box is None else box.maxlat,
        "grid": grid,
        "community": community,
        "category": category,
        "status": status,
        "since": since,
        "until": until,
        "limit": limit,
        "limit_plus": limit + 1,
        "offset": offset,
        "scoped": principal is not None and principal.scoped,
        "scope_worker_id": None if principal is None else principal.worker_id,
    }


def list_cases(
    connection: Connection,
    *,
    bbox: BBox | str | None = None,
    grid: str | None = None,
    community: str | None = None,
    category: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    max_limit: int = 10_000,
    principal: Principal | None = None,
) -> str:
    """Return cases as a GeoJSON FeatureCollection (a JSON string), ordered by id, paged.

    A worker ``principal`` sees only the cases of the current grids they serve (filtered in
    the query); other principals, or None, see every case.

    Reporter name and phone are never part of the output. ``since`` is inclusive, ``until``
    exclusive, both on ``reported_at``. The collection carries ``numberReturned``, ``offset``,
    ``limit`` and ``truncated`` (more cases match after this page).

    Raises
    ------
    gis.errors.InputError
        Field ``bbox`` (malformed), ``category`` (unknown code), ``status`` (unknown state),
        ``since``/``until`` (naive or since after until), ``limit``/``offset`` (out of range).
    """
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
    return str(connection.execute(_LIST, params).scalar_one())


# -- batch -----------------------------------------------------------------------------------

_COLUMNS = (
    "external_id",
    "category",
    "lon",
    "lat",
    "crs",
    "address",
    "description",
    "reported_at",
    "photo_urls",
    "reporter_name",
    "reporter_phone",
)
_STAGE_COLUMNS = (
    "row_no",
    "external_id",
    "category_code",
    "lon",
    "lat",
    "description",
    "reported_at",
    "grid_id",
    "worker_id",
    "community_id",
    "subdistrict_id",
    "stairwell_id",
    "near_grid_code",
    "near_boundary_m",
    "address",
    "input_crs",
    "photo_urls",
    "reporter_name",
    "reporter_phone",
)
_CREATE_STAGE = text(
    """
    CREATE TEMP TABLE IF NOT EXISTS case_stage (
        row_no integer, external_id text, category_code text, lon float8, lat float8,
        description text, reported_at timestamp, grid_id integer, worker_id integer,
        community_id integer, subdistrict_id integer, stairwell_id integer,
        near_grid_code text, near_boundary_m float8,
        address text, input_crs text, photo_urls jsonb, reporter_name text,
        reporter_phone text
    )
    """
)
_STORE_STAGE = text(
    """
    INSERT INTO cases (external_id, category_code, geom, description, reported_at, grid_id,
                       worker_id, community_id, subdistrict_id, stairwell_id,
                       inside_managed_area, near_grid_code, near_boundary_m, routed_to, address,
                       input_crs, photo_urls, reporter_name, reporter_phone)
    SELECT external_id, category_code, ST_SetSRID(ST_MakePoint(lon, lat), 4326), description,
           coalesce(reported_at AT TIME ZONE 'UTC', now()), grid_id, worker_id, community_id,
           subdistrict_id, stairwell_id, grid_id IS NOT NULL, near_grid_code, near_boundary_m,
           CASE WHEN grid_id IS NULL THEN 'subdistrict' ELSE 'grid' END,
           address, input_crs, coalesce(photo_urls, '[]'), reporter_name, reporter_phone
    FROM case_stage ORDER BY grid_id, row_no
    ON CONFLICT (external_id) DO NOTHING
    """
)


def _read_table(source: Path | bytes, fmt: str) -> tuple[pd.DataFrame, int]:
    """Read rows as strings; return the frame and the row number of its first row."""
    if fmt == "csv":
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        try:
            frame = pd.read_csv(
                handle,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                engine="c",
            )
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise InputError("file", f"not a readable UTF-8 CSV: {exc}") from None
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        if "category_code" in frame.columns and "category" not in frame.columns:
            frame = frame.rename(columns={"category_code": "category"})
        return frame, 2
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("file", f"not readable GeoJSON: {exc}") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise InputError("file", "expected a GeoJSON FeatureCollection")
    records: list[dict[str, str]] = []
    for feature in features:
        props = (feature or {}).get("properties") or {}
        geometry = (feature or {}).get("geometry") or {}
        record = {k: "" if props.get(k) is None else str(props.get(k)) for k in _COLUMNS}
        if not record["category"] and props.get("category_code") is not None:
            record["category"] = str(props["category_code"])
        coords = geometry.get("coordinates") if geometry.get("type") == "Point" else None
        if isinstance(coords, list) and len(coords) >= 2:
            record["lon"], record["lat"] = str(coords[0]), str(coords[1])
        elif geometry:
            record["lon"] = record["lat"] = "not a Point"
        if not record["crs"]:
            record["crs"] = str(document.get("crs_name", "") or "")
        records.append(record)
    return pd.DataFrame.from_records(records, columns=list(_COLUMNS)), 1


class _Rejector:
    """Collects the first reason each row is rejected."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.reasons: dict[int, tuple[str, str]] = {}

    def reject(
        self, mask: npt.NDArray[np.bool_], field_name: str, reason: Callable[[int], str]
    ) -> None:
        for i in np.flatnonzero(mask & ~self.bad):
            self.reasons[int(i)] = (field_name, reason(int(i)))
        self.bad |= mask


@dataclass
class _Cells:
    index: CellIndex | None
    grid_id: npt.NDArray[np.int64]
    worker_id: npt.NDArray[np.float64]
    community_id: npt.NDArray[np.float64]
    subdistrict_id: npt.NDArray[np.float64]
    codes: npt.NDArray[Any]


def _load_cells(connection: Connection, as_of: datetime | None) -> _Cells:
    rows = connection.execute(
        text(
            """
            SELECT g.id, g.code, ST_AsBinary(g.geom) AS wkb, g.worker_id, g.community_id,
                   c.subdistrict_id
            FROM grid g LEFT JOIN community c ON c.id = g.community_id
            WHERE g.kind = 'service'
              AND g.valid_from <= coalesce(CAST(:t AS timestamptz), now())
              AND (g.valid_to IS NULL OR g.valid_to > coalesce(CAST(:t AS timestamptz), now()))
            ORDER BY g.code, g.id
            """
        ),
        {"t": as_of},
    ).all()
    # Equal codes (a cell valid twice) cannot happen among current cells of one kind.
    geoms = shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else np.array([])

    def ids(values: list[Any]) -> npt.NDArray[np.float64]:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    return _Cells(
        index=CellIndex(geoms, [str(r.code) for r in rows]) if rows else None,
        grid_id=np.array([int(r.id) for r in rows], dtype=np.int64),
        worker_id=ids([r.worker_id for r in rows]),
        community_id=ids([r.community_id for r in rows]),
        subdistrict_id=ids([r.subdistrict_id for r in rows]),
        codes=np.array([str(r.code) for r in rows], dtype=object),
    )


def _places(
    connection: Connection, table: str
) -> tuple[CellIndex | None, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Index of the polygons of ``community`` or ``subdistrict`` (whitelisted names)."""
    statement = {
        "community": "SELECT id, code, subdistrict_id AS parent, ST_AsBinary(geom) AS wkb"
        " FROM community WHERE geom IS NOT NULL ORDER BY code",
        "subdistrict": "SELECT id, code, NULL AS parent, ST_AsBinary(geom) AS wkb"
        " FROM subdistrict WHERE geom IS NOT NULL ORDER BY code",
    }[table]
    rows = connection.execute(text(statement)).all()
    if not rows:
        return None, np.array([]), np.array([])
    index = CellIndex(shapely.from_wkb([bytes(r.wkb) for r in rows]), [str(r.code) for r in rows])
    return (
        index,
        np.array([float(r.id) for r in rows]),
        np.array([np.nan if r.parent is None else float(r.parent) for r in rows]),
    )


@dataclass(frozen=True)
class _StairwellIndex:
    """The stairwells around a batch's points, for nearest-stairwell queries in memory."""

    ids: npt.NDArray[np.float64]
    tree: cKDTree | None
    to_metres: Transformer | None
    search_m: float

    @classmethod
    def load(
        cls,
        connection: Connection,
        lon: npt.NDArray[np.float64],
        lat: npt.NDArray[np.float64],
        search_m: float,
    ) -> _StairwellIndex:
        """Read the stairwells within 0.02 degrees of the points' extent."""
        if lon.size == 0:
            return cls(np.array([np.nan]), None, None, search_m)
        rows = connection.execute(
            text(
                "SELECT id, ST_X(entrance) AS x, ST_Y(entrance) AS y FROM stairwell"
                " WHERE entrance && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
            ),
            {
                "x0": float(lon.min()) - 0.02,
                "y0": float(lat.min()) - 0.02,
                "x1": float(lon.max()) + 0.02,
                "y1": float(lat.max()) + 0.02,
            },
        ).all()
        if not rows:
            return cls(np.array([np.nan]), None, None, search_m)
        epsg = utm_epsg(float(np.median(lon)), float(np.median(lat)))
        to_metres = Transformer.from_crs(4326, epsg, always_xy=True)
        sx, sy = to_metres.transform(
            np.array([r.x for r in rows], dtype=np.float64), np.array([r.y for r in rows])
        )
        ids = np.array([float(r.id) for r in rows] + [np.nan])
        return cls(ids, cKDTree(np.column_stack([sx, sy])), to_metres, search_m)

    def nearest(
        self, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Id of the nearest stairwell within the search distance of each point (else NaN)."""
        result = np.full(lon.shape, np.nan)
        if lon.size == 0 or self.tree is None or self.to_metres is None:
            return result
        px, py = self.to_metres.transform(lon, lat)
        distance, which = self.tree.query(
            np.column_stack([px, py]), distance_upper_bound=self.search_m
        )
        found = np.isfinite(distance)
        result[found] = self.ids[which[found]]
        return result


def _external_ids(frame: pd.DataFrame) -> pd.Series:
    """Return the external ids; rows without one get a hash of their content (idempotent)."""
    ids = frame["external_id"].astype(str).str.strip().to_numpy(dtype=object)
    missing = np.flatnonzero(ids == "")
    if missing.size:
        part = frame.iloc[missing]
        columns = ["category", "lon", "lat", "crs", "address", "description", "reported_at"]
        content = part[columns[0]].astype(str)
        for column in columns[1:]:
            content = content + "\x1f" + part[column].astype(str)
        ids[missing] = [
            "row:" + hashlib.sha256(value.encode()).hexdigest() for value in content.tolist()
        ]
    return pd.Series(ids, index=frame.index, dtype=object)


def import_cases_batch(
    connection: Connection,
    source: Path | str | bytes,
    *,
    fmt: str | None = None,
    crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    settings: CaseSettings | None = None,
    errors_path: Path | str | None = None,
    progress: ProgressCallback | None = None,
    as_of: datetime | None = None,
) -> BatchReport:
    """Import many cases: validate and assign in memory, store in committed chunks.

    Parameters
    ----------
    connection
        A connection. Outside a transaction every chunk commits on its own; inside one (the
        caller's), every chunk is a savepoint of it.
    source
        A CSV or GeoJSON file path, or its bytes. CSV columns: ``category`` (or
        ``category_code``) and ``lon``, ``lat`` (degrees, optional ``crs`` per row) or
        ``address``; optional ``external_id``, ``description``, ``reported_at`` (ISO 8601; no
        offset means UTC), ``photo_urls`` (separated by ``|``), ``reporter_name``,
        ``reporter_phone``. GeoJSON: Point features with these properties.
    fmt
        ``"csv"`` or ``"geojson"``; default from the file suffix (bytes: sniffed).
    crs
        Coordinate system of rows without a ``crs`` value.
    settings
        Chunk size, limits (``batch_max_rows``, ``batch_max_bytes``), distances.
    errors_path
        Where to write the rejected rows (CSV: row, field, reason).
    progress
        Called as ``progress(stage, done, total)``.
    as_of
        Which grid cells apply (default now).

    Returns
    -------
    BatchReport
        Rows read, stored, already stored (same external id), rejected rows.

    Raises
    ------
    BatchTooLargeError
        Over ``batch_max_bytes`` or ``batch_max_rows`` (nothing stored).
    gis.errors.InputError
        Field ``file`` when it cannot be read, ``columns`` when ``category`` or a location
        column is missing, ``crs`` for an unknown default system.
    """
    # Decided before any query of ours begins a transaction implicitly.
    outer = connection.in_transaction()
    config = _settings(settings)
    default_crs = parse_crs(crs).value
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if size > config.batch_max_bytes:
        msg = f"{size:,} bytes exceed the batch limit of {config.batch_max_bytes:,} bytes"
        raise BatchTooLargeError(msg, config.batch_max_bytes)
    if fmt is None:
        if isinstance(source, bytes):
            fmt = "geojson" if source.lstrip()[:1] == b"{" else "csv"
        else:
            fmt = "geojson" if Path(source).suffix.lower() in (".geojson", ".json") else "csv"
    if fmt not in ("csv", "geojson"):
        raise InputError("format", f"unknown format {fmt!r}; expected csv or geojson")
    tell = progress or (lambda stage, done, total: None)
    frame, first_row = _read_table(source if isinstance(source, bytes) else Path(source), fmt)
    n = len(frame)
    if n > config.batch_max_rows:
        msg = f"{n:,} rows exceed the batch limit of {config.batch_max_rows:,} rows"
        raise BatchTooLargeError(msg, config.batch_max_rows)
    if "category" not in frame:
        raise InputError("columns", "missing category")
    if not ({"lon", "lat"} <= set(frame.columns) or "address" in frame):
        raise InputError("columns", "missing lon/lat or address")
    frame = frame.reindex(columns=list(_COLUMNS), fill_value="")
    tell("validating", 0, n)
    rows = np.arange(n) + first_row
    rej = _Rejector(n)
    strip = {c: _stripped(frame[c]) for c in _COLUMNS}

    # Category
    known = list(default_categories())
    bad_cat = ~strip["category"].isin(known).to_numpy()
    rej.reject(bad_cat, "category", lambda i: f"unknown category {strip['category'].iat[i]!r}")

    # Location: coordinates (in their crs) or an address
    has_lon = (strip["lon"] != "").to_numpy()
    has_lat = (strip["lat"] != "").to_numpy()
    has_address = (strip["address"] != "").to_numpy()
    coords = has_lon | has_lat
    rej.reject(~coords & ~has_address, "location", lambda i: "give lon/lat or an address")
    lon = pd.to_numeric(strip["lon"], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(strip["lat"], errors="coerce").to_numpy(dtype=np.float64)
    rej.reject(
        coords & ~np.isfinite(lon), "lon", lambda i: f"not a finite number: {strip['lon'].iat[i]!r}"
    )
    rej.reject(
        coords & ~np.isfinite(lat), "lat", lambda i: f"not a finite number: {strip['lat'].iat[i]!r}"
    )
    with np.errstate(invalid="ignore"):
        rej.reject(
            coords & (np.abs(lon) > 180), "lon", lambda i: "longitude must be within [-180, 180]"
        )
        rej.reject(
            coords & (np.abs(lat) > 90), "lat", lambda i: "latitude must be within [-90, 90]"
        )
    crs_text = strip["crs"].str.lower().where(strip["crs"] != "", default_crs)
    bad_crs = coords & ~crs_text.isin(CRS_NAMES).to_numpy()
    rej.reject(
        bad_crs,
        "crs",
        lambda i: f"unknown coordinate system {strip['crs'].iat[i]!r}; expected one of {CRS_LIST}",
    )
    wlon = np.full(n, np.nan)
    wlat = np.full(n, np.nan)
    crs_values = crs_text.to_numpy(dtype=object)
    for name in CRS_NAMES:
        sel = np.flatnonzero(coords & ~rej.bad & (crs_values == name))
        if sel.size:
            wlon[sel], wlat[sel] = to_wgs84(lon[sel], lat[sel], name)

    # Addresses (rows without coordinates)
    stairwell = np.full(n, np.nan)
    address_rows = np.flatnonzero(~coords & has_address & ~rej.bad)
    if address_rows.size:
        numbers = []
        for i in address_rows:
            with contextlib.suppress(InputError):
                numbers.append(parse_address(strip["address"].iat[int(i)]).building)
        book = AddressBook.load(connection, numbers=numbers)
        failed = np.zeros(n, dtype=bool)
        reasons: dict[int, str] = {}
        for i in address_rows:
            try:
                match = book.resolve(strip["address"].iat[int(i)])
            except InputError as exc:
                failed[i] = True
                reasons[int(i)] = exc.message
                continue
            wlon[i], wlat[i] = match.lon, match.lat
            if match.stairwell_id is not None:
                stairwell[i] = match.stairwell_id
        rej.reject(failed, "address", lambda i: reasons[i])
        crs_values[address_rows] = CoordinateSystem.WGS84.value

    # Reported at
    stamps = pd.to_datetime(
        strip["reported_at"].where(strip["reported_at"] != ""),
        format="ISO8601",
        errors="coerce",
        utc=True,
    )
    bad_time = (strip["reported_at"] != "").to_numpy() & stamps.isna().to_numpy()
    rej.reject(
        bad_time, "reported_at", lambda i: f"not an ISO 8601 time: {strip['reported_at'].iat[i]!r}"
    )

    # External ids: repeated ids inside the file are rejected after their first row.
    external = _external_ids(frame.assign(**{c: strip[c] for c in _COLUMNS}))
    repeated = external.duplicated(keep="first").to_numpy()
    first_of = dict(zip(external[~repeated].to_numpy(), rows[~repeated], strict=True))
    rej.reject(repeated, "external_id", lambda i: f"repeats row {first_of[external.iat[i]]}")

    # Assignment
    tell("assigning", 0, n)
    cells = _load_cells(connection, as_of)
    ok = np.flatnonzero(~rej.bad)
    cell = np.full(n, -1, dtype=np.int64)
    if cells.index is not None and ok.size:
        cell[ok] = cells.index.assign(wlon[ok], wlat[ok])
        # Swapped lon/lat: outside as given, inside when swapped (coordinate rows only).
        outside = ok[(cell[ok] < 0) & coords[ok] & (np.abs(lon[ok]) <= 90)]
        if outside.size:
            swapped = np.full(outside.size, -1, dtype=np.int64)
            for name in CRS_NAMES:
                sel = np.flatnonzero(crs_values[outside] == name)
                if sel.size:
                    sx, sy = to_wgs84(lat[outside[sel]], lon[outside[sel]], name)
                    swapped[sel] = cells.index.assign(sx, sy)
            mask = np.zeros(n, dtype=bool)
            mask[outside[swapped >= 0]] = True
            rej.reject(
                mask,
                "lat",
                lambda i: (
                    "outside every grid but inside one when swapped:"
                    " longitude and latitude look swapped"
                ),
            )
    report = BatchReport(rows=n)
    report.rejected = [Rejected(int(rows[i]), f, r) for i, (f, r) in sorted(rej.reasons.items())]
    if errors_path is not None:
        _write_errors(Path(errors_path), report.rejected)

    # Rows whose external id is stored already (a resumed or repeated import) are counted and
    # skipped; a race with another writer is still settled when storing (see _store_chunk).
    ok = np.flatnonzero(~rej.bad)
    stored_before = _already_stored(connection, external.to_numpy()[ok])
    report.already_stored = int(stored_before.sum())
    ok = ok[~stored_before]
    # What the rest of the assignment reads from the database, read now: it runs chunk by
    # chunk while earlier chunks are being stored.
    inside = cell >= 0
    # Each row's cell's ids (NaN outside every cell).
    of_cell = {
        name: np.full(n, np.nan)
        for name in ("grid_id", "worker_id", "community_id", "subdistrict_id")
    }
    for name, values in of_cell.items():
        values[inside] = getattr(cells, name)[cell[inside]]
    placeless = np.isnan(of_cell["community_id"][ok]) | np.isnan(of_cell["subdistrict_id"][ok])
    no_places: tuple[CellIndex | None, npt.NDArray[np.float64], npt.NDArray[np.float64]] = (
        None,
        np.array([]),
        np.array([]),
    )
    places = {
        table: _places(connection, table) if placeless.any() else no_places
        for table in ("community", "subdistrict")
    }
    need_stairwell = ok[np.isnan(stairwell[ok])]
    stairwells = _StairwellIndex.load(
        connection, wlon[need_stairwell], wlat[need_stairwell], config.stairwell_search_m
    )
    if connection.in_transaction() and not outer:
        connection.commit()  # end the reading transaction begun implicitly above

    def assigned(part: npt.NDArray[np.int64]) -> pd.DataFrame:
        """Finish the assignment of rows ``part`` (flags, places, stairwell); stage them."""
        near_code = np.full(part.size, None, dtype=object)
        near_m = np.full(part.size, np.nan)
        if cells.index is not None:
            near = cells.index.near_boundary(
                wlon[part], wlat[part], cell[part], threshold_m=config.near_boundary_m
            )
            flagged = near.other >= 0
            near_code[flagged] = cells.codes[near.other[flagged]]
            near_m[flagged] = near.distance_m[flagged]
        grid_id, worker_id, community_id, subdistrict_id = (
            of_cell[name][part].copy()
            for name in ("grid_id", "worker_id", "community_id", "subdistrict_id")
        )
        # Outside every cell (or a cell without community): the covering community (its
        # subdistrict where the cell gave none), then the covering subdistrict.
        for table, ids_of in (("community", community_id), ("subdistrict", subdistrict_id)):
            loose = np.flatnonzero(np.isnan(ids_of))
            index, ids, parents = places[table]
            if index is None or not loose.size:
                continue
            found = index.assign(wlon[part[loose]], wlat[part[loose]])
            placed = loose[found >= 0]
            ids_of[placed] = ids[found[found >= 0]]
            if table == "community":
                subdistrict_id[placed] = np.where(
                    np.isnan(subdistrict_id[placed]),
                    parents[found[found >= 0]],
                    subdistrict_id[placed],
                )
        stairwell_id = stairwell[part].copy()
        need = np.isnan(stairwell_id)
        stairwell_id[need] = stairwells.nearest(wlon[part[need]], wlat[part[need]])
        return pd.DataFrame(
            {
                "row_no": rows[part],
                "external_id": external.to_numpy()[part],
                "category_code": strip["category"].to_numpy()[part],
                "lon": wlon[part],
                "lat": wlat[part],
                "description": strip["description"].to_numpy()[part],
                # UTC without offset: the stage column is a timestamp read AT TIME ZONE 'UTC'.
                "reported_at": stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")[part],
                "grid_id": pd.array(grid_id, dtype="Int64"),
                "worker_id": pd.array(worker_id, dtype="Int64"),
                "community_id": pd.array(community_id, dtype="Int64"),
                "subdistrict_id": pd.array(subdistrict_id, dtype="Int64"),
                "stairwell_id": pd.array(stairwell_id, dtype="Int64"),
                "near_grid_code": near_code,
                "near_boundary_m": near_m,
                "address": np.where(coords[part], "", strip["address"].to_numpy()[part]),
                "input_crs": crs_values[part],
                "photo_urls": _photo_json(strip["photo_urls"].to_numpy()[part]),
                "reporter_name": strip["reporter_name"].to_numpy()[part],
                "reporter_phone": strip["reporter_phone"].to_numpy()[part],
            },
            columns=list(_STAGE_COLUMNS),
        )

    # Storage, chunk by chunk, each chunk assigned just before it is stored.
    chunk = config.batch_chunk_rows
    total = int(ok.size)
    parts = (assigned(ok[start : start + chunk]) for start in range(0, total, chunk))
    tell("storing", 0, total)
    if outer or total <= chunk:
        done = 0
        for part in parts:
            transaction = connection.begin_nested() if outer else connection.begin()
            with transaction:
                inserted = _store_chunk(connection, part)
            report.stored += inserted
            report.already_stored += len(part) - inserted
            report.chunks += 1
            done += len(part)
            tell("storing", done, total)
    else:
        _store_in_parallel(connection, parts, total, report, tell)
    return report


# Connections storing chunks at once when the caller holds no transaction: the server's index
# maintenance is most of the cost of a large batch, and one backend uses one core.
_STORE_CONNECTIONS = 2


def _store_in_parallel(
    connection: Connection,
    parts: Iterator[pd.DataFrame],
    total: int,
    report: BatchReport,
    tell: ProgressCallback,
) -> None:
    """Store chunks on the caller's connection and one more, each chunk its own transaction.

    The next chunk is assigned and its COPY values built while the server inserts the previous
    ones. Chunks hold distinct external ids (repeats were rejected), so the two writers never
    wait on each other. Progress counts rows of committed chunks; an exception (of a chunk or
    of the progress callback) lets the chunks under way finish, starts no more, and is raised.
    """
    idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
    idle.put(connection)
    extra = [connection.engine.connect() for _ in range(_STORE_CONNECTIONS - 1)]
    for other in extra:
        idle.put(other)

    def store(part: pd.DataFrame, values: _CaseValues) -> int:
        conn = idle.get()
        try:
            with conn.begin():
                return _store_chunk(conn, part, values)
        finally:
            idle.put(conn)

    done = 0
    running: dict[Future[int], int] = {}

    def settle(block: bool) -> None:
        nonlocal done
        finished, _ = (
            wait(list(running), return_when=FIRST_COMPLETED)
            if block
            else (
                [f for f in running if f.done()],
                None,
            )
        )
        for future in finished:
            rows = running.pop(future)
            inserted = future.result()
            report.stored += inserted
            report.already_stored += rows - inserted
            report.chunks += 1
            done += rows
            tell("storing", done, total)

    try:
        with ThreadPoolExecutor(_STORE_CONNECTIONS) as pool:
            try:
                for part in parts:
                    values = _case_values(part)
                    while len(running) >= _STORE_CONNECTIONS:
                        settle(block=True)
                    running[pool.submit(store, part, values)] = len(part)
                    settle(block=False)
                while running:
                    settle(block=True)
            finally:
                wait(list(running))
    finally:
        for other in extra:
            other.close()


def _already_stored(connection: Connection, ids: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Return, for each external id, whether a stored case already has it."""
    found: set[str] = set()
    for start in range(0, ids.size, 100_000):
        # One JSON text per 100,000 ids: psycopg's array adaptation costs about 1.6 us per id.
        chunk = json.dumps([str(i) for i in ids[start : start + 100_000]], ensure_ascii=False)
        found.update(
            connection.execute(
                text(
                    "SELECT external_id FROM cases WHERE external_id IN"
                    " (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))"
                ),
                {"ids": chunk},
            ).scalars()
        )
    if not found:
        return np.zeros(ids.size, dtype=bool)
    return np.fromiter((str(i) in found for i in ids), dtype=bool, count=ids.size)


def _photo_json(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.full(values.size, "", dtype=object)
    for i in np.flatnonzero(values != ""):
        urls = [u.strip() for u in str(values[i]).split("|") if u.strip()]
        out[i] = json.dumps(urls) if urls else ""
    return out


# The code points ``str.strip`` removes (none lies above U+3000).
_SPACE_CODES = np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)
# Characters the COPY text format needs escaped.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_NULL = "\\N"


def _stripped(column: pd.Series) -> pd.Series:
    """Return the column as strings without surrounding whitespace.

    Files rarely carry any: one vectorised look at the first and last character of every value
    (the values joined with NUL, which is not whitespace, as UTF-32 code points) decides whether
    the per-value strip, the costly part for a million rows, is needed at all.
    """
    values = column.astype(str)
    codes = np.frombuffer("\x00".join(values.tolist()).encode("utf-32-le"), dtype=np.uint32)
    if codes.size == 0:
        return values
    separators = np.flatnonzero(codes == 0)
    edges = np.concatenate(([0, codes.size - 1], separators - 1, separators + 1))
    edges = edges[(edges >= 0) & (edges < codes.size)]
    if not np.isin(codes[edges], _SPACE_CODES).any():
        return values
    return values.str.strip()


def _copy_field(series: pd.Series) -> list[str]:
    """Return a column in the COPY text format: NULL for missing values and empty strings."""
    if isinstance(series.dtype, pd.Int64Dtype):
        missing = series.isna().to_numpy()
        out = np.asarray(series.fillna(0).to_numpy(dtype=np.int64).astype(str), dtype=object)
    elif series.dtype.kind == "f":
        # repr gives the shortest text that reads back to the same double, 4x faster than numpy.
        floats = series.to_numpy(dtype=np.float64)
        missing = ~np.isfinite(floats)
        out = np.array(list(map(repr, floats.tolist())), dtype=object)
    elif series.dtype.kind in "iu":
        missing = np.zeros(len(series), dtype=bool)
        out = np.array(list(map(str, series.to_numpy(dtype=np.int64).tolist())), dtype=object)
    elif series.dtype.kind == "M":
        stamps = series.to_numpy(dtype="datetime64[us]")
        missing = np.isnat(stamps)
        out = stamps.astype(str).astype(object)
    else:
        text_values = series.astype(object)
        missing = (text_values.isna() | (text_values == "")).to_numpy()
        strings = text_values.where(~missing, "").astype(str)
        if _COPY_SPECIAL.search("".join(strings.tolist())) is not None:
            strings = (
                strings.str.replace("\\", "\\\\", regex=False)
                .str.replace("\t", "\\t", regex=False)
                .str.replace("\n", "\\n", regex=False)
                .str.replace("\r", "\\r", regex=False)
            )
        out = strings.to_numpy(dtype=object)
    out[missing] = _COPY_NULL
    return list(out)


def _copy_payload(part: pd.DataFrame) -> bytes:
    """Return the chunk as COPY text: tab-separated _STAGE_COLUMNS, a backslash-N for NULL."""
    fields = [_copy_field(part[c]) for c in _STAGE_COLUMNS]
    lines = "\n".join(map("\t".join, zip(*fields, strict=True)))
    return (lines + "\n").encode() if lines else b""


def _store_chunk(
    connection: Connection, part: pd.DataFrame, values: _CaseValues | None = None
) -> int:
    """Store one chunk of staged rows; return how many were inserted (new external ids).

    Where the row triggers may be skipped (see ``_CAN_BYPASS``), the rows go by binary COPY
    straight into ``cases`` (their external ids were found new just before). Should another
    writer have stored one of them meanwhile, the unique key refuses the COPY, its savepoint
    is rolled back and the chunk goes the staged way: COPY into a temporary table, then one
    ``INSERT ... ON CONFLICT DO NOTHING``.
    """
    if bool(connection.execute(_CAN_BYPASS).scalar()):
        try:
            with connection.begin_nested():
                return _copy_into_cases(connection, values or _case_values(part))
        except (IntegrityError, psycopg.errors.UniqueViolation) as exc:
            # The COPY runs on the driver's cursor: its error arrives unwrapped.
            cause = exc.orig if isinstance(exc, IntegrityError) else exc
            if getattr(cause, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
    return _store_staged(connection, _copy_payload(part))


def _store_staged(connection: Connection, payload: bytes) -> int:
    connection.execute(_CREATE_STAGE)
    connection.execute(text("TRUNCATE case_stage"))
    raw = connection.connection.driver_connection
    assert raw is not None
    columns = ", ".join(_STAGE_COLUMNS)  # fixed names, never from input
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY case_stage ({columns}) FROM STDIN") as copy,
    ):
        copy.write(payload)
    bypass = bool(connection.execute(_CAN_BYPASS).scalar())
    if bypass:
        # Check every reference of the chunk in one set-based query (locking the referenced
        # rows as the per-row foreign-key triggers would), then insert without those triggers:
        # per row they cost about as much as the insert itself.
        missing = connection.execute(_MISSING_REFERENCES).scalar_one()
        if missing:
            msg = f"{missing} staged case(s) reference rows that no longer exist; retry"
            raise ConflictError(msg)
        connection.execute(text("SET LOCAL session_replication_role = replica"))
    result = connection.execute(_STORE_STAGE)
    if bypass:
        connection.execute(text("SET LOCAL session_replication_role = origin"))
    return int(result.rowcount)


_UNIQUE_VIOLATION = "23505"
# Columns of ``cases`` a direct COPY fills, with the type each value is sent as. Points and
# times go as raw bytes in PostgreSQL's binary forms (EWKB; microseconds since 2000-01-01
# UTC, big-endian), photo URLs as binary jsonb; the server reads each with the column's own
# receive function.
_CASE_COLUMNS = (
    ("external_id", "text"),
    ("category_code", "text"),
    ("geom", "bytea"),
    ("description", "text"),
    ("reported_at", "bytea"),
    ("grid_id", "int4"),
    ("worker_id", "int4"),
    ("community_id", "int4"),
    ("subdistrict_id", "int4"),
    ("stairwell_id", "int4"),
    ("inside_managed_area", "bool"),
    ("near_grid_code", "text"),
    ("near_boundary_m", "float8"),
    ("routed_to", "text"),
    ("address", "text"),
    ("input_crs", "text"),
    ("photo_urls", "bytea"),
    ("reporter_name", "text"),
    ("reporter_phone", "text"),
)
# EWKB of a 2D point with SRID 4326: byte order, type 0x20000001, SRID, x, y (little endian).
_EWKB_POINT = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)
_POSTGRES_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since 1970


@dataclass(frozen=True)
class _CaseValues:
    """One chunk's values for a direct COPY: columns of ``_CASE_COLUMNS`` (None for NULL).

    ``reported_at`` is None where the file gave no time: those rows take the storing
    transaction's ``now()``, as the staged insert does. ``references`` holds the distinct ids
    the rows point at, by referenced table.
    """

    columns: dict[str, list[Any]]
    missing_time: npt.NDArray[np.bool_]
    references: dict[str, list[int]]


def _chopped(buffer: bytes, size: int) -> list[bytes]:
    return [buffer[i : i + size] for i in range(0, len(buffer), size)]


def _ints_or_none(values: pd.Series) -> list[int | None]:
    missing = values.isna().to_numpy()
    ints = values.fillna(0).to_numpy(dtype=np.int64).astype(object)
    ints[missing] = None
    return list(ints)


def _texts_or_none(values: npt.NDArray[Any]) -> list[str | None]:
    objects = np.asarray(values, dtype=object)
    empty = pd.isna(objects) | (objects == "")
    out = objects.copy()
    out[empty] = None
    return list(out)


def _case_values(part: pd.DataFrame) -> _CaseValues:
    """Build a chunk's COPY values, its rows ordered by grid (stored near each other)."""
    part = part.sort_values(["grid_id", "row_no"], kind="stable", na_position="last")
    n = len(part)
    points = np.zeros(n, dtype=_EWKB_POINT)
    points["order"], points["type"], points["srid"] = 1, 0x20000001, 4326
    points["x"], points["y"] = part["lon"].to_numpy(), part["lat"].to_numpy()
    stamps = part["reported_at"].to_numpy(dtype="datetime64[us]")
    missing_time = np.isnat(stamps)
    micros = np.where(missing_time, 0, stamps.astype(np.int64) - _POSTGRES_EPOCH_US)
    inside = part["grid_id"].notna().to_numpy()
    near_m = part["near_boundary_m"].to_numpy(dtype=np.float64)
    photos = part["photo_urls"].to_numpy(dtype=object)
    columns: dict[str, list[Any]] = {
        "external_id": part["external_id"].astype(str).tolist(),
        "category_code": part["category_code"].astype(str).tolist(),
        "geom": _chopped(points.tobytes(), _EWKB_POINT.itemsize),
        "description": _texts_or_none(part["description"].to_numpy()),
        "reported_at": _chopped(micros.astype(">i8").tobytes(), 8),
        "inside_managed_area": inside.tolist(),
        "near_grid_code": _texts_or_none(part["near_grid_code"].to_numpy()),
        "near_boundary_m": [None if math.isnan(v) else v for v in near_m.tolist()],
        "routed_to": np.where(inside, "grid", "subdistrict").tolist(),
        "address": _texts_or_none(part["address"].to_numpy()),
        "input_crs": part["input_crs"].astype(str).tolist(),
        "photo_urls": [b"\x01" + (p or "[]").encode() for p in photos.tolist()],
        "reporter_name": _texts_or_none(part["reporter_name"].to_numpy()),
        "reporter_phone": _texts_or_none(part["reporter_phone"].to_numpy()),
    }
    references: dict[str, list[int]] = {}
    for column, table in _REFERENCES.items():
        columns[column] = _ints_or_none(part[column])
        references[table] = sorted({int(v) for v in part[column].dropna().unique()})
    return _CaseValues(columns, missing_time, references)


# Reference columns of a stored case and the table each points at.
_REFERENCES = {
    "grid_id": "grid",
    "worker_id": "grid_worker",
    "community_id": "community",
    "subdistrict_id": "subdistrict",
    "stairwell_id": "stairwell",
}


def _copy_into_cases(connection: Connection, values: _CaseValues) -> int:
    """COPY a chunk straight into ``cases`` without row triggers; return the rows stored.

    The references are checked first in one query per referenced table, which also locks
    the referenced rows (``FOR KEY SHARE``, as the foreign-key triggers would) until the
    transaction ends; a reference to a row deleted meanwhile refuses the chunk.
    """
    for table, ids in values.references.items():
        if not ids:
            continue
        # Table names come from _REFERENCES, never from input.
        found = connection.execute(
            text(
                f"SELECT count(*) FROM (SELECT 1 FROM {table}"  # noqa: S608
                " WHERE id = ANY(CAST(:ids AS integer[])) FOR KEY SHARE) locked"
            ),
            {"ids": ids},
        ).scalar_one()
        if found != len(ids):
            msg = (
                f"{len(ids) - found} {table} row(s) referenced by the batch no longer exist; retry"
            )
            raise ConflictError(msg)
    columns = dict(values.columns)
    if values.missing_time.any():
        now = connection.execute(text("SELECT now()")).scalar_one()
        now_bytes = (int(now.timestamp() * 1_000_000) - _POSTGRES_EPOCH_US).to_bytes(
            8, "big", signed=True
        )
        columns["reported_at"] = [
            now_bytes if missing else stamp
            for stamp, missing in zip(
                columns["reported_at"], values.missing_time.tolist(), strict=True
            )
        ]
    raw = connection.connection.driver_connection
    assert raw is not None
    names = [name for name, _ in _CASE_COLUMNS]
    connection.execute(text("SET LOCAL session_replication_role = replica"))
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY cases ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([kind for _, kind in _CASE_COLUMNS])
            for row in zip(*(columns[name] for name in names), strict=True):
                copy.write_row(row)
        count = int(cursor.rowcount)
    connection.execute(text("SET LOCAL session_replication_role = origin"))
    return count


# The row triggers may be skipped only by a superuser and only when cases has no trigger of
# its own (the foreign-key triggers are internal): otherwise the plain insert runs.
_CAN_BYPASS = text(
    "SELECT r.rolsuper AND NOT EXISTS (SELECT 1 FROM pg_trigger t"
    " WHERE t.tgrelid = 'cases'::regclass AND NOT t.tgisinternal)"
    " FROM pg_roles r WHERE r.rolname = current_user"
)
_MISSING_REFERENCES = text(
    """
    WITH grid_locked AS (SELECT t.id FROM grid t
            WHERE t.id IN (SELECT DISTINCT s.grid_id FROM case_stage s) FOR KEY SHARE),
         grid_worker_locked AS (SELECT t.id FROM grid_worker t
            WHERE t.id IN (SELECT DISTINCT s.worker_id FROM case_stage s) FOR KEY SHARE),
         community_locked AS (SELECT t.id FROM community t
            WHERE t.id IN (SELECT DISTINCT s.community_id FROM case_stage s) FOR KEY SHARE),
         subdistrict_locked AS (SELECT t.id FROM subdistrict t
            WHERE t.id IN (SELECT DISTINCT s.subdistrict_id FROM case_stage s) FOR KEY SHARE),
         stairwell_locked AS (SELECT t.id FROM stairwell t
            WHERE t.id IN (SELECT DISTINCT s.stairwell_id FROM case_stage s) FOR KEY SHARE)
    SELECT count(*) FROM case_stage s
    WHERE (s.grid_id IS NOT NULL AND s.grid_id NOT IN (SELECT id FROM grid_locked))
       OR (s.worker_id IS NOT NULL AND s.worker_id NOT IN (SELECT id FROM grid_worker_locked))
       OR (s.community_id IS NOT NULL AND s.community_id NOT IN (SELECT id FROM community_locked))
       OR (s.subdistrict_id IS NOT NULL
           AND s.subdistrict_id NOT IN (SELECT id FROM subdistrict_locked))
       OR (s.stairwell_id IS NOT NULL AND s.stairwell_id NOT IN (SELECT id FROM stairwell_locked))
    """
)


def _write_errors(path: Path, rejected: list[Rejected]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "reason"])
        for item in rejected:
            writer.writerow([item.row, item.field, item.reason])
