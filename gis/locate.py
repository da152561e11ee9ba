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

Everything comes back in one round trip (one SQL statement of LATERAL joins). Candidates are
ranked in a local metric frame: degrees scaled by the spheroid's metres per degree of longitude
and latitude at the point (a plane tangent at the point; within 1 km it differs from the spheroid
distance by less than 0.02 %). Only the winner's distance is then computed on the spheroid, so a
request pays one ``geography`` distance per answer instead of one per candidate. The nearest
building and stairwell are searched in growing rings (50 m, 250 m, then ``search_m``): a hit in
a ring is the nearest overall, so the wide search runs only for points far from any.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, TextClause, text

from gis.coords import CoordinateSystem, parse_crs, to_wgs84
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
    "locate_json_async",
    "metres_per_degree",
]

KINDS = ("service", "unit")
# WGS84 ellipsoid: semi-major axis (m) and first eccentricity squared.
_A = 6_378_137.0
_E2 = 0.006_694_379_990_14
# Widening of the index boxes around a ring: the local scale changes across the ring (by less
# than 0.02 % within 1 km below 85 degrees of latitude).
_BOX_SLACK = 1.001


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


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Return the spheroid's metres per degree of longitude and of latitude at ``lat``.

    The radii of curvature of the WGS84 ellipsoid along the parallel (N cos lat) and along the
    meridian (M); near the poles the longitude scale is kept above 1 m per degree.
    """
    phi = math.radians(lat)
    w2 = 1.0 - _E2 * math.sin(phi) ** 2
    per_radian_lon = _A / math.sqrt(w2) * math.cos(phi)
    per_radian_lat = _A * (1.0 - _E2) / (w2 * math.sqrt(w2))
    return max(math.radians(per_radian_lon), 1.0), math.radians(per_radian_lat)


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
    system, params = _query_params(lon, lat, crs, near_boundary_m, as_of, kind, search_m)
    as_of_used, inside, complete, answer = connection.execute(_LOCATE_QUICK, params).one()
    if not complete:
        as_of_used, inside, _, answer = connection.execute(
            _LOCATE, {**params, "as_of": as_of_used}
        ).one()
    swapped = None if inside else _swapped_params(lon, lat, system, params, as_of_used)
    if swapped is not None and connection.execute(_COVERING, swapped).first() is not None:
        raise _swapped_error(lon, lat)
    return _location(json.loads(answer))


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

    The same SQL statements (the quick one, then the exhaustive one when needed), sent as
    server-side prepared statements, so a busy server neither parses nor plans them again;
    options, answer, units and errors are those of :func:`locate`.

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
    answer = await locate_json_async(
        connection,
        lon,
        lat,
        crs=crs,
        near_boundary_m=near_boundary_m,
        as_of=as_of,
        kind=kind,
        search_m=search_m,
    )
    return _location(json.loads(answer))


async def locate_json_async(
    connection: psycopg.AsyncConnection[Any],
    lon: float | str,
    lat: float | str,
    *,
    crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    near_boundary_m: float = 10.0,
    as_of: datetime | None = None,
    kind: str = "service",
    search_m: float = 1_000.0,
) -> str:
    """Return :func:`locate_async`'s answer as the JSON text of a :class:`Location`.

    PostgreSQL writes the JSON (``json_build_object``), so a server passes it on as the response
    body without building or encoding objects per request. Parameters and errors are those of
    :func:`locate_async`.
    """
    system, params = _query_params(lon, lat, crs, near_boundary_m, as_of, kind, search_m)
    cursor = psycopg.AsyncRawCursor(connection)
    await cursor.execute(_QUICK_PSYCOPG, [params[name] for name in _QUICK_NAMES], prepare=True)
    row = await cursor.fetchone()
    if row is not None and not row[2]:
        params["as_of"] = row[0]
        await cursor.execute(
            _LOCATE_PSYCOPG, [params[name] for name in _LOCATE_NAMES], prepare=True
        )
        row = await cursor.fetchone()
    if row is None:  # the statements always return one row
        msg = "the locate query returned no row"
        raise RuntimeError(msg)
    as_of_used, inside, _, answer = row
    swapped = None if inside else _swapped_params(lon, lat, system, params, as_of_used)
    if swapped is not None:
        values = [swapped[name] for name in _COVERING_NAMES]
        await cursor.execute(_COVERING_PSYCOPG, values, prepare=True)
        if await cursor.fetchone() is not None:
            raise _swapped_error(lon, lat)
    return str(answer)


def _query_params(
    lon: float | str,
    lat: float | str,
    crs: CoordinateSystem | str,
    near_boundary_m: float,
    as_of: datetime | None,
    kind: str,
    search_m: float,
) -> tuple[CoordinateSystem, dict[str, Any]]:
    system = parse_crs(crs)
    _check_options(near_boundary_m, search_m, kind, as_of)
    wlon, wlat = to_wgs84(lon, lat, system)
    kx, ky = metres_per_degree(wlat)
    params: dict[str, Any] = {
        "lon": wlon,
        "lat": wlat,
        "as_of": as_of,
        "kind": kind,
        "kx": kx,
        "ky": ky,
        "near_m": near_boundary_m,
        "near_dx": near_boundary_m / kx * _BOX_SLACK,
        "near_dy": near_boundary_m / ky * _BOX_SLACK,
    }
    for k, ring in enumerate((*(min(r, search_m) for r in RINGS_M), search_m)):
        params[f"m{k}"] = ring
        params[f"dx{k}"] = ring / kx * _BOX_SLACK
        params[f"dy{k}"] = ring / ky * _BOX_SLACK
    return system, params


def _location(answer: Mapping[str, Any]) -> Location:
    """Build the :class:`Location` of the statement's JSON answer (parsed)."""

    def place(value: Mapping[str, Any] | None) -> Place | None:
        return None if value is None else Place(**value)

    grid, near = answer["grid"], answer["near_boundary"]
    building, stairwell = answer["building"], answer["stairwell"]
    return Location(
        lon=float(answer["lon"]),
        lat=float(answer["lat"]),
        inside_managed_area=bool(answer["inside_managed_area"]),
        grid=None if grid is None else GridAnswer(**grid),
        community=place(answer["community"]),
        subdistrict=place(answer["subdistrict"]),
        near_boundary=None
        if near is None
        else NearBoundary(code=near["code"], distance_m=float(near["distance_m"])),
        building=None
        if building is None
        else NearestBuilding(**{**building, "distance_m": float(building["distance_m"])}),
        stairwell=None
        if stairwell is None
        else NearestStairwell(**{**stairwell, "distance_m": float(stairwell["distance_m"])}),
    )


# The statement, in parts. Candidates are ranked by their distance in the local metric frame
# (``spt``: the point scaled by ``kx``/``ky``; candidates scaled alike) and only the winner's
# distance is taken on the spheroid. The nearest building and stairwell are searched in growing
# rings of box tests on the GiST indexes (50 m, 250 m, then the search distance): a hit within a
# ring is the nearest overall. Two variants answer alike:
#
# - the quick one (one round trip for a point inside a cell of a community, with a building and
#   a stairwell within the first ring): places joined by the cell's ids, the first ring only. It
#   tells whether its answer is complete;
# - the exhaustive one, run when the quick one is not complete: places by id, else those
#   covering the point; every ring.
_POINT = """
WITH p AS (
    SELECT lon, lat, pt, ST_Scale(pt, :kx, :ky) AS spt,
           coalesce(CAST(:as_of AS timestamptz), clock_timestamp()) AS t
    FROM (SELECT CAST(:lon AS float8) AS lon, CAST(:lat AS float8) AS lat,
                 ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) q
)
SELECT p.t AS as_of, g.id IS NOT NULL AS inside, {complete} AS complete, json_build_object(
    'lon', p.lon, 'lat', p.lat, 'inside_managed_area', g.id IS NOT NULL,
    'grid', CASE WHEN g.id IS NOT NULL THEN json_build_object(
        'id', g.id, 'code', g.code, 'kind', g.kind,
        'worker_id', g.worker_id, 'worker_name', g.worker_name) END,
    'community', CASE WHEN c.id IS NOT NULL THEN json_build_object(
        'id', c.id, 'code', c.code, 'name', c.name) END,
    'subdistrict', CASE WHEN s.id IS NOT NULL THEN json_build_object(
        'id', s.id, 'code', s.code, 'name', s.name) END,
    'near_boundary', CASE WHEN nb.code IS NOT NULL THEN json_build_object(
        'code', nb.code, 'distance_m', ST_Distance(nb.geom::geography, p.pt::geography)) END,
    'building', {building},
    'stairwell', {stairwell}
)::text AS answer
FROM p
LEFT JOIN LATERAL (
    SELECT g.id, g.code, g.kind, g.community_id, w.id AS worker_id, w.name AS worker_name
    FROM grid g LEFT JOIN grid_worker w ON w.id = g.worker_id
    WHERE g.kind = :kind AND g.valid_from <= p.t AND (g.valid_to IS NULL OR g.valid_to > p.t)
      AND ST_Covers(g.geom, p.pt)
    ORDER BY g.code, g.id LIMIT 1
) g ON true
LEFT JOIN LATERAL (
    SELECT o.code, o.geom FROM (
        SELECT o.code, o.geom, ST_Distance(ST_Scale(o.geom, :kx, :ky), p.spt) AS d
        FROM grid o
        WHERE o.kind = :kind AND o.id IS DISTINCT FROM g.id
          AND o.valid_from <= p.t AND (o.valid_to IS NULL OR o.valid_to > p.t)
          AND o.geom && ST_Expand(p.pt, :near_dx, :near_dy)
        ORDER BY d, o.code LIMIT 1
    ) o WHERE o.d <= :near_m
) nb ON true"""
_PLACES_BY_ID = """
LEFT JOIN community c ON c.id = g.community_id
LEFT JOIN subdistrict s ON s.id = c.subdistrict_id"""
_PLACES_COVERING = """
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
) s ON true"""
# Per kind of nearest thing: table, geometry column, the other columns and the JSON answer.
_NEAREST = {
    "bd": (
        "building",
        "footprint",
        "id, name, number",
        "'id', {a}.id, 'name', {a}.name, 'number', {a}.number,"
        " 'distance_m', ST_Distance({a}.footprint::geography, p.pt::geography)",
    ),
    "sw": (
        "stairwell",
        "entrance",
        "id, building_id, unit_no",
        "'id', {a}.id, 'building_id', {a}.building_id, 'unit_no', {a}.unit_no,"
        " 'lon', ST_X({a}.entrance), 'lat', ST_Y({a}.entrance),"
        " 'distance_m', ST_Distance({a}.entrance::geography, p.pt::geography)",
    ),
}
_NEAREST_RING = """
LEFT JOIN LATERAL (
    SELECT n.id, json_build_object({answer}) AS answer FROM (
        SELECT {columns}, {geom}, ST_Distance(ST_Scale({geom}, :kx, :ky), p.spt) AS d
        FROM {table}
        WHERE {outer_empty}{geom} && ST_Expand(p.pt, :dx{ring}, :dy{ring})
        ORDER BY d, id LIMIT 1
    ) n WHERE n.d <= :m{ring}
) {alias}{ring} ON true"""
RINGS_M = (50.0, 250.0)
_RING_COUNT = len(RINGS_M) + 1  # the last ring is the caller's search distance


def _statement(*, quick: bool) -> str:
    """Return the quick or the exhaustive locate statement (see above)."""
    answers: dict[str, str] = {}
    laterals: list[str] = []
    rings = 1 if quick else _RING_COUNT
    for alias, (table, geom, columns, answer) in _NEAREST.items():
        for ring in range(rings):
            inner = " AND ".join(f"{alias}{i}.id IS NULL" for i in range(ring))
            laterals.append(
                _NEAREST_RING.format(
                    answer=answer.format(a="n"),
                    columns=columns,
                    geom=geom,
                    table=table,
                    outer_empty=f"{inner} AND " if inner else "",
                    ring=ring,
                    alias=alias,
                )
            )
        answers[alias] = "coalesce(" + ", ".join(f"{alias}{k}.answer" for k in range(rings)) + ")"
    complete = (
        "c.id IS NOT NULL AND s.id IS NOT NULL AND bd0.id IS NOT NULL AND sw0.id IS NOT NULL"
        if quick
        else "true"
    )
    head = _POINT.format(complete=complete, building=answers["bd"], stairwell=answers["sw"])
    places = _PLACES_BY_ID if quick else _PLACES_COVERING
    return head + places + "".join(laterals) + "\n"


_LOCATE_QUICK = text(_statement(quick=True))
_LOCATE = text(_statement(quick=False))


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


_QUICK_PSYCOPG, _QUICK_NAMES = _server_placeholders(_LOCATE_QUICK)
_LOCATE_PSYCOPG, _LOCATE_NAMES = _server_placeholders(_LOCATE)
_COVERING_PSYCOPG, _COVERING_NAMES = _server_placeholders(_COVERING)


def _swapped_error(lon: float | str, lat: float | str) -> InputError:
    msg = (
        f"({lon}, {lat}) is outside every grid cell but ({lat}, {lon}) is inside one:"
        " longitude and latitude look swapped"
    )
    return InputError("lat", msg)


def _swapped_params(
    lon: float | str,
    lat: float | str,
    system: CoordinateSystem,
    params: dict[str, Any],
    as_of: datetime,
) -> dict[str, Any] | None:
    """Return the statement parameters of the point read the other way round, at ``as_of``.

    None when ``(lat, lon)`` is no valid coordinate: then the order cannot be swapped.
    """
    try:
        slon, slat = to_wgs84(lat, lon, system)
    except InputError:
        return None
    return {**params, "as_of": as_of, "lon": slon, "lat": slat}
