"""Locate one point in PostGIS: grid, worker, community, subdistrict, nearest building/stairwell.

The answer uses the grid cells valid at ``as_of`` (default: now) and the same rule as
:mod:`gis.assign`: a cell **covers** the point (boundary included, so a point on the outer
boundary of the managed area is inside); among several covering cells (shared edge or vertex)
the **lowest grid code** wins. ``near_boundary`` names the nearest *other* current cell of the
same kind within ``near_boundary_m`` metres (0 m for a point on a shared boundary), so staff can
confirm the assignment. A point no cell covers is ``inside_managed_area = False``; its community
and subdistrict still come from the polygons covering it, when any.

Distances are straight-line distances in metres on the WGS84 spheroid (PostGIS ``geography``).
The grid worker's phone is personal data and is never part of the answer.

Everything comes back in one round trip (one SQL statement of LATERAL joins). The nearest
building and stairwell are searched in growing rings (50 m, 250 m, then ``search_m``): a hit in
a ring is the nearest overall, so the wide, costly search runs only for points far from any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Connection, TextClause, text

from gis.coords import CoordinateSystem, parse_crs, to_wgs84, validate_lonlat
from gis.errors import InputError

__all__ = [
    "GridAnswer",
    "Location",
    "NearBoundary",
    "NearestBuilding",
    "NearestStairwell",
    "Place",
    "locate",
    "locate_async",
]

KINDS = ("service", "unit")
# Conservative metres per degree for the index pre-filters (spheroid minimum is ~110,574 m).
_METRES_PER_DEGREE = 110_000.0


@dataclass(frozen=True, slots=True)
class Place:
    """A subdistrict or community: database id, code and name."""

    id: int
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class GridAnswer:
    """The grid cell holding the point and its worker (id and name only, never the phone)."""

    id: int
    code: str
    kind: str
    worker_id: int | None
    worker_name: str | None


@dataclass(frozen=True, slots=True)
class NearBoundary:
    """Another current cell within the confirmation distance."""

    code: str
    distance_m: float


@dataclass(frozen=True, slots=True)
class NearestBuilding:
    """The building whose footprint is nearest (0 m when the point is inside it)."""

    id: int
    name: str | None
    number: str | None
    distance_m: float


@dataclass(frozen=True, slots=True)
class NearestStairwell:
    """The stairwell entrance nearest to the point."""

    id: int
    building_id: int
    unit_no: int
    lon: float
    lat: float
    distance_m: float


@dataclass(frozen=True, slots=True)
class Location:
    """Everything :func:`locate` answers for one point (WGS84 ``lon``/``lat`` in degrees)."""

    lon: float
    lat: float
    inside_managed_area: bool
    grid: GridAnswer | None
    community: Place | None
    subdistrict: Place | None
    near_boundary: NearBoundary | None
    building: NearestBuilding | None
    stairwell: NearestStairwell | None


def _degrees_for(metres: float, lat: float) -> float:
    """Return a lon/lat box half-width that surely holds everything within ``metres``."""
    cos = max(math.cos(math.radians(min(abs(lat) + 1.0, 89.0))), 1e-3)
    return metres / (_METRES_PER_DEGREE * cos) * 1.01


def _check_options(near_boundary_m: float, search_m: float, kind: str, as_of: Any) -> None:
    for field, value in (("near_boundary_m", near_boundary_m), ("search_m", search_m)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            msg = f"must be a finite distance >= 0 in metres, got {value!r}"
            raise InputError(field, msg)
    if kind not in KINDS:
        msg = f"unknown grid kind {kind!r}; expected one of {', '.join(KINDS)}"
        raise InputError("kind", msg)
    if as_of is not None and (not isinstance(as_of, datetime) or as_of.tzinfo is None):
        msg = "must be a datetime with a time zone"
        raise InputError("as_of", msg)


def locate(
    connection: Connection,
    lon: float | str,
    lat: float | str,
    *,
    crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    near_boundary_m: float = 10.0,
    as_of: datetime | None = None,
    kind: str = "service",
    search_m: float = 1_000.0,
) -> Location:
    """Locate a point: its grid cell, worker, community, subdistrict, nearest building/stairwell.

    Parameters
    ----------
    connection
        An open SQLAlchemy connection to the wangge PostGIS database (read only here).
    lon, lat
        The point, degrees, in ``crs``.
    crs
        ``"wgs84"`` (default), ``"gcj02"`` (Amap, Tencent, WeChat) or ``"bd09"`` (Baidu).
    near_boundary_m
        Confirmation distance in metres: another cell closer than this is reported.
    as_of
        The moment whose grid cells apply (time-zone aware), default now.
    kind
        Which grid layer answers: ``"service"`` (default: cells with a worker) or ``"unit"``.
    search_m
        Nearest building and stairwell are searched within this many metres.

    Returns
    -------
    Location
        With WGS84 coordinates of the point and distances in metres (spheroid).

    Raises
    ------
    gis.errors.InputError
        Field ``lon``/``lat`` for non-numeric, NaN, infinite or out-of-range coordinates, or when
        they look swapped (the given order lies outside every cell and the swapped order inside
        one); ``crs`` for an unknown system; ``near_boundary_m``/``search_m`` for a negative
        distance; ``kind`` for an unknown kind; ``as_of`` for a naive datetime.
    """
    system, wlon, wlat, params = _query_params(
        lon, lat, crs, near_boundary_m, as_of, kind, search_m
    )
    row = connection.execute(_LOCATE, params).one()
    mapping = row._mapping
    if mapping["grid_id"] is None:
        _refuse_swapped(connection, lon, lat, system, {**params, "as_of": mapping["as_of"]})
    return _location(mapping, wlon, wlat)


async def locate_async(
    connection: psycopg.AsyncConnection[Any],
    lon: float | str,
    lat: float | str,
    *,
    crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    near_boundary_m: float = 10.0,
    as_of: datetime | None = None,
    kind: str = "service",
    search_m: float = 1_000.0,
) -> Location:
    """Locate a point like :func:`locate`, over an async psycopg connection (for servers).

    The same SQL statement, sent as a server-side prepared statement, so a busy server neither
    parses nor plans it again; options, answer, units and errors are those of :func:`locate`.

    Parameters
    ----------
    connection
        An open ``psycopg.AsyncConnection`` to the wangge database, in autocommit mode.
    lon, lat, crs, near_boundary_m, as_of, kind, search_m
        As for :func:`locate`.

    Returns
    -------
    Location
        As :func:`locate` returns it.

    Raises
    ------
    gis.errors.InputError
        As :func:`locate` raises it.
    """
    system, wlon, wlat, params = _query_params(
        lon, lat, crs, near_boundary_m, as_of, kind, search_m
    )
    cursor = psycopg.AsyncRawCursor(connection, row_factory=dict_row)
    values = [params[name] for name in _LOCATE_NAMES]
    await cursor.execute(_LOCATE_PSYCOPG, values, prepare=True)
    mapping = await cursor.fetchone()
    if mapping is None:  # the statement always returns one row
        msg = "the locate query returned no row"
        raise RuntimeError(msg)
    if mapping["grid_id"] is None:
        try:
            x, y = validate_lonlat(lat, lon)
            slon, slat = to_wgs84(float(x), float(y), system)
        except InputError:
            return _location(mapping, wlon, wlat)
        swapped = {**params, "as_of": mapping["as_of"], "lon": slon, "lat": slat}
        values = [swapped[name] for name in _COVERING_NAMES]
        await cursor.execute(_COVERING_PSYCOPG, values, prepare=True)
        if await cursor.fetchone() is not None:
            raise _swapped_error(lon, lat)
    return _location(mapping, wlon, wlat)


def _query_params(
    lon: float | str,
    lat: float | str,
    crs: CoordinateSystem | str,
    near_boundary_m: float,
    as_of: datetime | None,
    kind: str,
    search_m: float,
) -> tuple[CoordinateSystem, float, float, dict[str, Any]]:
    system = parse_crs(crs)
    _check_options(near_boundary_m, search_m, kind, as_of)
    wlon, wlat = to_wgs84(lon, lat, system)
    params: dict[str, Any] = {
        "lon": wlon,
        "lat": wlat,
        "as_of": as_of,
        "kind": kind,
        "near_m": near_boundary_m,
        "near_deg": _degrees_for(near_boundary_m, wlat),
    }
    for k, ring in enumerate((*(min(r, search_m) for r in RINGS_M), search_m)):
        params[f"m{k}"] = ring
        params[f"deg{k}"] = _degrees_for(ring, wlat)
    return system, wlon, wlat, params


def _location(row: Mapping[Any, Any], wlon: float, wlat: float) -> Location:
    grid = None
    if row["grid_id"] is not None:
        grid = GridAnswer(
            id=int(row["grid_id"]),
            code=str(row["grid_code"]),
            kind=str(row["grid_kind"]),
            worker_id=None if row["worker_id"] is None else int(row["worker_id"]),
            worker_name=row["worker_name"],
        )
    community = (
        None
        if row["community_id"] is None
        else Place(int(row["community_id"]), str(row["community_code"]), str(row["community_name"]))
    )
    subdistrict = (
        None
        if row["subdistrict_id"] is None
        else Place(
            int(row["subdistrict_id"]), str(row["subdistrict_code"]), str(row["subdistrict_name"])
        )
    )
    near = (
        None
        if row["near_code"] is None
        else NearBoundary(code=str(row["near_code"]), distance_m=float(row["near_m"]))
    )
    building = None
    stairwell = None
    for k in range(_RING_COUNT):
        if building is None and row[f"b{k}_id"] is not None:
            building = NearestBuilding(
                id=int(row[f"b{k}_id"]),
                name=row[f"b{k}_name"],
                number=row[f"b{k}_number"],
                distance_m=float(row[f"b{k}_d"]),
            )
        if stairwell is None and row[f"s{k}_id"] is not None:
            stairwell = NearestStairwell(
                id=int(row[f"s{k}_id"]),
                building_id=int(row[f"s{k}_building_id"]),
                unit_no=int(row[f"s{k}_unit_no"]),
                lon=float(row[f"s{k}_lon"]),
                lat=float(row[f"s{k}_lat"]),
                distance_m=float(row[f"s{k}_d"]),
            )
    return Location(
        lon=wlon,
        lat=wlat,
        inside_managed_area=grid is not None,
        grid=grid,
        community=community,
        subdistrict=subdistrict,
        near_boundary=near,
        building=building,
        stairwell=stairwell,
    )


# One round trip. Laterals: the covering cell (lowest code), its community (else the covering
# community), the subdistrict (of the community, else the covering one), the nearest other cell
# within the confirmation distance, the nearest building and stairwell within the search
# distance. Each metric filter is preceded by a degree-box test on the indexed geometry.
_LOCATE_TEMPLATE = """
WITH p AS (
    SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt,
           coalesce(CAST(:as_of AS timestamptz), clock_timestamp()) AS t
)
SELECT p.t AS as_of,
       g.id AS grid_id, g.code AS grid_code, g.kind AS grid_kind,
       g.worker_id, g.worker_name,
       c.id AS community_id, c.code AS community_code, c.name AS community_name,
       s.id AS subdistrict_id, s.code AS subdistrict_code, s.name AS subdistrict_name,
       nb.code AS near_code, nb.d AS near_m{nearest_columns}
FROM p
LEFT JOIN LATERAL (
    SELECT g.id, g.code, g.kind, g.community_id, w.id AS worker_id, w.name AS worker_name
    FROM grid g LEFT JOIN grid_worker w ON w.id = g.worker_id
    WHERE g.kind = :kind AND g.valid_from <= p.t AND (g.valid_to IS NULL OR g.valid_to > p.t)
      AND ST_Covers(g.geom, p.pt)
    ORDER BY g.code, g.id LIMIT 1
) g ON true
LEFT JOIN LATERAL (
    SELECT c.id, c.code, c.name, c.subdistrict_id FROM (
        (SELECT c.*, 0 AS pick FROM community c WHERE c.id = g.community_id)
        UNION ALL
        (SELECT c.*, 1 AS pick FROM community c
         WHERE g.community_id IS NULL AND ST_Covers(c.geom, p.pt) ORDER BY c.code LIMIT 1)
    ) c ORDER BY c.pick LIMIT 1
) c ON true
LEFT JOIN LATERAL (
    SELECT s.id, s.code, s.name FROM (
        (SELECT s.*, 0 AS pick FROM subdistrict s WHERE s.id = c.subdistrict_id)
        UNION ALL
        (SELECT s.*, 1 AS pick FROM subdistrict s
         WHERE c.subdistrict_id IS NULL AND ST_Covers(s.geom, p.pt) ORDER BY s.code LIMIT 1)
    ) s ORDER BY s.pick LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT o.code, ST_Distance(o.geom::geography, p.pt::geography) AS d
    FROM grid o
    WHERE o.kind = :kind AND o.id IS DISTINCT FROM g.id
      AND o.valid_from <= p.t AND (o.valid_to IS NULL OR o.valid_to > p.t)
      AND o.geom && ST_Expand(p.pt, :near_deg)
      AND ST_DWithin(o.geom::geography, p.pt::geography, :near_m)
    ORDER BY d, o.code LIMIT 1
) nb ON true{nearest_laterals}
"""
# Nearest building/stairwell in growing rings: a hit within a ring is the nearest overall (all
# rows within that distance were ranked), so wider rings run only when the inner ones are empty.
RINGS_M = (50.0, 250.0)
_NEAREST = {
    "b": (
        "b{k}.id AS b{k}_id, b{k}.name AS b{k}_name, b{k}.number AS b{k}_number, b{k}.d AS b{k}_d",
        """
LEFT JOIN LATERAL (
    SELECT b.id, b.name, b.number, ST_Distance(b.footprint::geography, p.pt::geography) AS d
    FROM building b
    WHERE {outer_empty}b.footprint && ST_Expand(p.pt, :deg{k})
      AND ST_DWithin(b.footprint::geography, p.pt::geography, :m{k})
    ORDER BY d, b.id LIMIT 1
) b{k} ON true""",
    ),
    "s": (
        "s{k}.id AS s{k}_id, s{k}.building_id AS s{k}_building_id, s{k}.unit_no AS s{k}_unit_no,"
        " s{k}.lon AS s{k}_lon, s{k}.lat AS s{k}_lat, s{k}.d AS s{k}_d",
        """
LEFT JOIN LATERAL (
    SELECT st.id, st.building_id, st.unit_no, ST_X(st.entrance) AS lon, ST_Y(st.entrance) AS lat,
           ST_Distance(st.entrance::geography, p.pt::geography) AS d
    FROM stairwell st
    WHERE {outer_empty}st.entrance && ST_Expand(p.pt, :deg{k})
      AND ST_DWithin(st.entrance::geography, p.pt::geography, :m{k})
    ORDER BY d, st.id LIMIT 1
) s{k} ON true""",
    ),
}
_RING_COUNT = len(RINGS_M) + 1  # the last ring is the caller's search distance


def _nearest_sql() -> tuple[str, str]:
    columns: list[str] = []
    laterals: list[str] = []
    for prefix, (column, lateral) in _NEAREST.items():
        for k in range(_RING_COUNT):
            inner = " AND ".join(f"{prefix}{i}.id IS NULL" for i in range(k))
            columns.append(column.format(k=k))
            laterals.append(lateral.format(k=k, outer_empty=f"{inner} AND " if inner else ""))
    return ",\n       " + ",\n       ".join(columns), "".join(laterals)


_COLUMNS, _LATERALS = _nearest_sql()
_LOCATE = text(_LOCATE_TEMPLATE.format(nearest_columns=_COLUMNS, nearest_laterals=_LATERALS))


_COVERING = text(
    "SELECT g.code FROM grid g WHERE g.kind = :kind"
    " AND g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
    " AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
    " ORDER BY g.code, g.id LIMIT 1"
)


def _server_placeholders(statement: TextClause) -> tuple[str, tuple[str, ...]]:
    """Return ``statement`` with PostgreSQL's ``$n`` placeholders and the parameter names in order.

    locate_async sends it through a raw cursor: psycopg passes the text as is, rather than
    parsing a long query's named placeholders on every call.
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r":(\w+)\b", number, re.sub(r"::", "\x00", statement.text))
    return sql.replace("\x00", "::"), tuple(names)


_LOCATE_PSYCOPG, _LOCATE_NAMES = _server_placeholders(_LOCATE)
_COVERING_PSYCOPG, _COVERING_NAMES = _server_placeholders(_COVERING)


def _covering_code(connection: Connection, params: dict[str, Any]) -> str | None:
    code = connection.execute(_COVERING, params).scalar()
    return None if code is None else str(code)


def _swapped_error(lon: float | str, lat: float | str) -> InputError:
    msg = (
        f"({lon}, {lat}) is outside every grid cell but ({lat}, {lon}) is inside one:"
        " longitude and latitude look swapped"
    )
    return InputError("lat", msg)


def _refuse_swapped(
    connection: Connection,
    lon: float | str,
    lat: float | str,
    system: CoordinateSystem,
    params: dict[str, Any],
) -> None:
    """Raise when the swapped order of an outside point falls inside a current cell."""
    try:
        x, y = validate_lonlat(lat, lon)
        slon, slat = to_wgs84(float(x), float(y), system)
    except InputError:
        return
    if _covering_code(connection, {**params, "lon": slon, "lat": slat}) is not None:
        raise _swapped_error(lon, lat)
