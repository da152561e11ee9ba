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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

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
    system = parse_crs(crs)
    _check_options(near_boundary_m, search_m, kind, as_of)
    wlon, wlat = to_wgs84(lon, lat, system)
    if as_of is None:
        as_of = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    point = {"lon": wlon, "lat": wlat, "as_of": as_of, "kind": kind}

    grid = _covering_grid(connection, point)
    if grid is None:
        _refuse_swapped(connection, lon, lat, system, point)
    community, subdistrict = _places(connection, point, grid)
    near = _near_boundary(connection, point, grid, near_boundary_m)
    building = _nearest_building(connection, point, search_m)
    stairwell = _nearest_stairwell(connection, point, search_m)
    return Location(
        lon=wlon,
        lat=wlat,
        inside_managed_area=grid is not None,
        grid=grid[0] if grid else None,
        community=community,
        subdistrict=subdistrict,
        near_boundary=near,
        building=building,
        stairwell=stairwell,
    )


def _covering_grid(
    connection: Connection, point: dict[str, Any]
) -> tuple[GridAnswer, int | None] | None:
    row = connection.execute(
        text(
            "SELECT g.id, g.code, g.kind, w.id, w.name, g.community_id FROM grid g"
            " LEFT JOIN grid_worker w ON w.id = g.worker_id"
            " WHERE g.kind = :kind"
            " AND g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
            " AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
            " ORDER BY g.code, g.id LIMIT 1"
        ),
        point,
    ).first()
    if row is None:
        return None
    answer = GridAnswer(
        id=int(row[0]),
        code=str(row[1]),
        kind=str(row[2]),
        worker_id=None if row[3] is None else int(row[3]),
        worker_name=row[4],
    )
    return answer, None if row[5] is None else int(row[5])


def _refuse_swapped(
    connection: Connection,
    lon: float | str,
    lat: float | str,
    system: CoordinateSystem,
    point: dict[str, Any],
) -> None:
    """Raise when the swapped order of an outside point falls inside a current cell."""
    try:
        x, y = validate_lonlat(lat, lon)
        slon, slat = to_wgs84(float(x), float(y), system)
    except InputError:
        return
    swapped = {**point, "lon": slon, "lat": slat}
    if _covering_grid(connection, swapped) is not None:
        msg = (
            f"({lon}, {lat}) is outside every grid cell but ({lat}, {lon}) is inside one:"
            " longitude and latitude look swapped"
        )
        raise InputError("lat", msg)


def _place(row: Any, offset: int) -> Place | None:
    if row is None or row[offset] is None:
        return None
    return Place(id=int(row[offset]), code=str(row[offset + 1]), name=str(row[offset + 2]))


def _places(
    connection: Connection, point: dict[str, Any], grid: tuple[GridAnswer, int | None] | None
) -> tuple[Place | None, Place | None]:
    community_id = grid[1] if grid else None
    if community_id is not None:
        row = connection.execute(
            text(
                "SELECT c.id, c.code, c.name, s.id, s.code, s.name FROM community c"
                " LEFT JOIN subdistrict s ON s.id = c.subdistrict_id WHERE c.id = :id"
            ),
            {"id": community_id},
        ).first()
    else:
        row = connection.execute(
            text(
                "SELECT c.id, c.code, c.name, s.id, s.code, s.name FROM community c"
                " LEFT JOIN subdistrict s ON s.id = c.subdistrict_id"
                " WHERE ST_Covers(c.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
                " ORDER BY c.code LIMIT 1"
            ),
            point,
        ).first()
    community = _place(row, 0)
    subdistrict = _place(row, 3)
    if subdistrict is None:
        row = connection.execute(
            text(
                "SELECT s.id, s.code, s.name FROM subdistrict s"
                " WHERE ST_Covers(s.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
                " ORDER BY s.code LIMIT 1"
            ),
            point,
        ).first()
        subdistrict = _place(row, 0)
    return community, subdistrict


def _near_boundary(
    connection: Connection,
    point: dict[str, Any],
    grid: tuple[GridAnswer, int | None] | None,
    metres: float,
) -> NearBoundary | None:
    row = connection.execute(
        text(
            "SELECT g.code, ST_Distance(g.geom::geography, pt::geography) AS d"
            " FROM grid g, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p"
            " WHERE g.kind = :kind AND g.id <> :own"
            " AND g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
            " AND g.geom && ST_Expand(pt, :deg)"
            " AND ST_DWithin(g.geom::geography, pt::geography, :metres)"
            " ORDER BY d, g.code LIMIT 1"
        ),
        {
            **point,
            "own": grid[0].id if grid else -1,
            "deg": _degrees_for(metres, point["lat"]),
            "metres": metres,
        },
    ).first()
    return None if row is None else NearBoundary(code=str(row[0]), distance_m=float(row[1]))


def _nearest(
    connection: Connection, sql: str, point: dict[str, Any], search_m: float
) -> Any | None:
    """Nearest row in metres: index pre-filter by a degree box, exact spheroid ordering."""
    return connection.execute(
        text(sql),
        {**point, "deg": _degrees_for(search_m, point["lat"]), "metres": search_m},
    ).first()


def _nearest_building(
    connection: Connection, point: dict[str, Any], search_m: float
) -> NearestBuilding | None:
    row = _nearest(
        connection,
        "SELECT b.id, b.name, b.number, ST_Distance(b.footprint::geography, pt::geography) AS d"
        " FROM building b, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p"
        " WHERE b.footprint && ST_Expand(pt, :deg)"
        " AND ST_DWithin(b.footprint::geography, pt::geography, :metres)"
        " ORDER BY d, b.id LIMIT 1",
        point,
        search_m,
    )
    if row is None:
        return None
    return NearestBuilding(id=int(row[0]), name=row[1], number=row[2], distance_m=float(row[3]))


def _nearest_stairwell(
    connection: Connection, point: dict[str, Any], search_m: float
) -> NearestStairwell | None:
    row = _nearest(
        connection,
        "SELECT s.id, s.building_id, s.unit_no, ST_X(s.entrance), ST_Y(s.entrance),"
        " ST_Distance(s.entrance::geography, pt::geography) AS d"
        " FROM stairwell s, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p"
        " WHERE s.entrance && ST_Expand(pt, :deg)"
        " AND ST_DWithin(s.entrance::geography, pt::geography, :metres)"
        " ORDER BY d, s.id LIMIT 1",
        point,
        search_m,
    )
    if row is None:
        return None
    return NearestStairwell(
        id=int(row[0]),
        building_id=int(row[1]),
        unit_no=int(row[2]),
        lon=float(row[3]),
        lat=float(row[4]),
        distance_m=float(row[5]),
    )
