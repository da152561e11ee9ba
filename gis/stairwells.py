"""Stairwells (楼门/单元) and their households: a seeded estimate, and real counts from CSV.

OpenStreetMap maps buildings, rarely their entrances and never who lives there. For residential
buildings without real counts, :func:`estimate_stairwells` places unit entrances along the long
side of the footprint and derives households, residents and elderly residents from the number of
floors and census ratios (the method, its parameters and its limits are in
``docs/estimation.md``). :func:`import_stairwell_counts` loads real per-stairwell counts from a
CSV file; they replace the estimate of their building and are never overwritten by it.

Both functions work on a :class:`sqlalchemy.Connection` and leave committing to the caller.
Entrances are stored in WGS84 (EPSG:4326); geometry is computed in the local UTM zone (metres).
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import shapely
from scipy.stats import binom
from sqlalchemy import Connection, text

from gis.coords import CoordinateSystem, parse_crs, to_wgs84
from gis.crs import WGS84, project_geometries, utm_zones
from gis.errors import InputError
from gis.settings import EstimateSettings

# Values of OSM ``building=*`` (our ``building.use``) that are homes.
RESIDENTIAL_USES = frozenset(
    {
        "residential",
        "apartments",
        "dormitory",
        "house",
        "detached",
        "terrace",
        "semidetached_house",
    }
)
# Single-family types: one household behind each entrance, whatever the floors.
HOUSE_USES = frozenset({"house", "detached", "terrace", "semidetached_house"})
# Uses that say nothing; the building's name then decides.
UNSPECIFIED_USES = frozenset({"yes", "building"})

_NUMERAL = r"[0-9０-９一二三四五六七八九十百]+"
# "10号楼", "3栋", "2幢", "5单元", "8号院": the way homes are numbered in a compound.
_NUMBERED_HOME = re.compile(rf"{_NUMERAL}\s*(号楼|栋|幢|单元|号院)")
# Words that make a name residential on their own ("学生公寓", "职工宿舍", "家属院").
_HOME_WORD = re.compile(r"小区|公寓|宿舍|住宅|家属|新村|新寓|居民楼")
# Words that make a numbered building something else ("清华大学3号楼" is a teaching block).
_NOT_HOME_WORD = re.compile(
    r"商场|商厦|商城|商业|大厦|写字楼|办公|酒店|宾馆|饭店|医院|卫生|学校|学院|大学|中学|小学"
    r"|幼儿园|教学|实验|科研|研究|银行|超市|市场|体育|图书馆|博物馆|中心|工厂|厂房|仓库|车库"
    r"|食堂|派出所|政府|委员会|法院|寺|教堂|车站|地铁"
)

# Tag keys that give a building another use than homes (a shop, an office, a clinic…).
OTHER_USE_KEYS = frozenset(
    {
        "amenity",
        "shop",
        "office",
        "craft",
        "tourism",
        "healthcare",
        "leisure",
        "industrial",
        "man_made",
        "public_transport",
        "railway",
        "aeroway",
        "power",
        "military",
        "emergency",
        "religion",
    }
)
# Derived tag set by the OSM reader (gis.osm.mark_residential_landuse).
LANDUSE_RESIDENTIAL_TAG = "landuse_residential"

_SIDE_TIE_M = 0.01
STAIRWELL_COLUMNS = ("building", "unit", "households", "residents", "elderly")


def is_residential(
    use: str | None, name: str | None, tags: Mapping[str, Any] | None = None
) -> bool:
    """Say whether a building counts as homes for the estimate.

    A building is residential when its use (OSM ``building=*``) is one of
    :data:`RESIDENTIAL_USES`; or when the use is unspecified (``yes`` or missing) and
    its name contains a residential word (小区, 公寓, 宿舍, 住宅, 家属, 新村, 新寓,
    居民楼), or is numbered the way compound blocks are ("10号楼", "3栋", "2幢",
    "5单元", "8号院") without a word naming another use (大学, 大厦, 医院, 办公,
    中心, …); or when the use is unspecified, the building is unnamed, it lies mostly
    inside a residential compound (tag ``landuse_residential=yes``, set by the OSM reader
    for footprints at least half inside ``landuse=residential``, ``place=neighbourhood``
    or ``residential=*`` areas) and no tag gives it another use (a key of
    :data:`OTHER_USE_KEYS` such as ``amenity``, ``shop``, ``office``, or a
    ``building:use`` that is not residential). Any other use (``commercial``,
    ``school``, ``garage``…) is not residential, whatever the name or place.

    Parameters
    ----------
    use : str or None
        The building's use, as stored in ``building.use``.
    name : str or None
        The building's name.
    tags : mapping, optional
        The building's OSM tags (``building.tags``), with the derived
        ``landuse_residential`` tag; None or empty when unknown.

    Returns
    -------
    bool
    """
    kind = (use or "").strip().lower()
    if kind in RESIDENTIAL_USES:
        return True
    if kind and kind not in UNSPECIFIED_USES:
        return False
    if not name:
        return _in_compound_without_other_use(tags or {})
    if _HOME_WORD.search(name):
        return True
    return bool(_NUMBERED_HOME.search(name)) and not _NOT_HOME_WORD.search(name)


def _in_compound_without_other_use(tags: Mapping[str, Any]) -> bool:
    if tags.get(LANDUSE_RESIDENTIAL_TAG) != "yes":
        return False
    if any(key in tags for key in OTHER_USE_KEYS):
        return False
    building_use = str(tags.get("building:use", "residential")).strip().lower()
    return building_use in RESIDENTIAL_USES


@dataclass(frozen=True)
class EstimateReport:
    """What :func:`estimate_stairwells` did.

    Attributes
    ----------
    buildings
        Buildings examined (all, or those of ``building_ids``).
    residential
        Of those, buildings that count as homes (:func:`is_residential`).
    estimated_buildings
        Residential buildings that received estimated stairwells.
    skipped_small
        Residential buildings under ``min_footprint_m2`` (sheds, kiosks, garages).
    skipped_real
        Residential buildings left alone because they hold real counts.
    stairwells, households, residents, elderly
        Estimated stairwells written and the sums of their counts.
    removed
        Estimated stairwells deleted because their building or unit no longer qualifies.
    """

    buildings: int
    residential: int
    estimated_buildings: int
    skipped_small: int
    skipped_real: int
    stairwells: int
    households: int
    residents: int
    elderly: int
    removed: int


@dataclass(frozen=True)
class _Layout:
    """Entrance sides of footprints, in metres of one UTM zone."""

    start: npt.NDArray[np.float64]  # (n, 2) first end of the entrance side
    end: npt.NDArray[np.float64]  # (n, 2) second end, units are numbered from start to end
    across: npt.NDArray[np.float64]  # (n, 2) from the entrance side to the opposite side
    footprint: npt.NDArray[Any]  # (n,) the projected footprints
    outline: npt.NDArray[Any]  # (n,) exterior rings, the fallback entrances snap onto

    @property
    def length(self) -> npt.NDArray[np.float64]:
        """Length of the entrance side (the long side) in metres."""
        return np.asarray(np.hypot(*(self.end - self.start).T), dtype=np.float64)


def _layout(footprints: npt.NDArray[Any]) -> _Layout:
    """Entrance side of each projected footprint: the northern long side of its minimum rectangle.

    Chinese slab blocks (板楼) turn their living rooms and balconies south and open their
    stairwell doors to the north, hence the northern side; when the long sides face east and
    west, the eastern one. Units run west to east (north to south on a north-south side), the
    order in which grid codes are numbered.
    """
    rects = shapely.minimum_rotated_rectangle(footprints)
    if (shapely.get_num_coordinates(rects) != 5).any():
        msg = "footprint without area: its minimum rectangle is not a polygon"
        raise ValueError(msg)
    corners = shapely.get_coordinates(rects).reshape(-1, 5, 2)
    first = np.hypot(*(corners[:, 1] - corners[:, 0]).T)
    second = np.hypot(*(corners[:, 2] - corners[:, 1]).T)
    long_first = (first >= second)[:, None]
    # The two long sides: (c0, c1) and (c2, c3), or (c1, c2) and (c3, c0).
    a0 = np.where(long_first, corners[:, 0], corners[:, 1])
    a1 = np.where(long_first, corners[:, 1], corners[:, 2])
    b0 = np.where(long_first, corners[:, 2], corners[:, 3])
    b1 = np.where(long_first, corners[:, 3], corners[:, 0])
    mid_a = (a0 + a1) / 2
    mid_b = (b0 + b1) / 2
    dy = mid_a[:, 1] - mid_b[:, 1]
    dx = mid_a[:, 0] - mid_b[:, 0]
    take_a = ((dy > _SIDE_TIE_M) | ((np.abs(dy) <= _SIDE_TIE_M) & (dx > 0)))[:, None]
    start = np.where(take_a, a0, b0)
    end = np.where(take_a, a1, b1)
    across = np.where(take_a, b1 - a0, a1 - b0)
    # Orient west → east; a side running north-south goes north → south.
    d = end - start
    flip = ((d[:, 0] < -_SIDE_TIE_M) | ((np.abs(d[:, 0]) <= _SIDE_TIE_M) & (d[:, 1] > 0)))[:, None]
    start, end = np.where(flip, end, start), np.where(flip, start, end)
    parts, owner = shapely.get_parts(footprints, return_index=True)
    outline = shapely.multilinestrings(shapely.get_exterior_ring(parts), indices=owner)
    return _Layout(
        start=start,
        end=end,
        across=across,
        footprint=footprints,
        outline=np.asarray(outline, dtype=object),
    )


def _unit_points(
    layout: _Layout,
    owner: npt.NDArray[np.intp],
    unit_no: npt.NDArray[np.int64],
    n_units: npt.NDArray[np.int64],
) -> npt.NDArray[Any]:
    """Entrance points (metres) of unit ``unit_no`` of ``n_units`` of footprint ``owner``.

    Unit k of n sits at the centre of the k-th of n equal stretches of the entrance side, then
    goes straight across the rectangle to the first wall it meets: the wall facing the entrance
    side at that place, also where the building is L-, T- or U-shaped. When that line misses
    the footprint (a gap between two parts), the point goes to the nearest boundary point.
    """
    t = ((unit_no - 0.5) / n_units)[:, None]
    on_side = layout.start[owner] + t * (layout.end[owner] - layout.start[owner])
    points = np.asarray(shapely.points(on_side), dtype=object)
    # Most blocks are rectangles: their points are on a wall already (within 1 mm).
    off = np.flatnonzero(~shapely.dwithin(points, layout.outline[owner], 0.001))
    if not len(off):
        return points
    start, building = on_side[off], owner[off]
    # With the overshoot the line always spans the rectangle's full depth.
    across = layout.across[building] * 1.0001
    across_lines = shapely.linestrings(np.stack([start, start + across], axis=1))
    hits = shapely.intersection(across_lines, layout.footprint[building])
    targets = np.where(shapely.is_empty(hits), layout.outline[building], hits)
    points[off] = shapely.get_point(shapely.shortest_line(targets, points[off]), 0)
    return points


def _in_utm(
    footprints: npt.NDArray[Any],
) -> Iterable[tuple[int, npt.NDArray[np.intp], npt.NDArray[Any]]]:
    """Yield (EPSG code, positions, valid footprints projected to it) for each UTM zone."""
    # The centre of the bounds, not the centroid, which a self-intersecting ring can throw far.
    bounds = shapely.bounds(footprints)
    zones = utm_zones((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2)
    for zone in np.unique(zones):
        where = np.flatnonzero(zones == zone)
        projected = project_geometries(footprints[where], source=WGS84, target=zone)
        # Self-intersecting rings would make GEOS overlay operations fail; buffer(0) rebuilds
        # them as valid polygons (the OSM loader repairs footprints already; this guards
        # footprints written by other means).
        invalid = ~shapely.is_valid(projected)
        if invalid.any():
            projected[invalid] = shapely.buffer(projected[invalid], 0)
        yield int(zone), where, projected


def _building_key(source: str, source_id: str) -> int:
    """Stable 64-bit key of a building: the same across re-imports, processes and machines."""
    digest = hashlib.blake2b(f"{source}\x1f{source_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _uniforms(seed: int, keys: Sequence[int], owner: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
    """Two uniforms in [0, 1) per row, from one generator per building.

    Row j of building i gets the j-th pair drawn from ``default_rng([seed, keys[i]])``, rows
    of a building taken in their order in ``owner``: a building's draws depend on nothing else.
    """
    order = np.argsort(owner, kind="stable")
    grouped = owner[order]
    firsts = np.flatnonzero(np.diff(grouped, prepend=-1))
    sizes = np.diff(np.append(firsts, len(owner)))
    drawn = [
        np.random.default_rng([seed, keys[int(i)]]).random((int(n), 2))
        for i, n in zip(grouped[firsts], sizes, strict=True)
    ]
    uniforms = np.empty((len(owner), 2))
    if drawn:
        uniforms[order] = np.concatenate(drawn)
    return uniforms


def _draw_counts(
    households: npt.NDArray[np.int64],
    uniforms: npt.NDArray[Any],
    settings: EstimateSettings,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Residents and elderly of each stairwell, by inverse transform of its two uniforms.

    Residents are households × persons per household rounded stochastically (up with the
    probability of the fractional part, so the expected value is exact); elderly are
    Binomial(residents, elderly share), drawn by its inverse distribution function.
    """
    mean = households * settings.persons_per_household
    base = np.floor(mean)
    residents = (base + (uniforms[:, 0] < mean - base)).astype(np.int64)
    elderly = binom.ppf(uniforms[:, 1], residents, settings.elderly_share)
    # ppf(0) is -1 by convention; clipping keeps 0 ≤ elderly ≤ residents.
    return residents, np.clip(elderly, 0, residents).astype(np.int64)


def building_ids_for(connection: Connection, source: str, source_ids: Iterable[str]) -> list[int]:
    """Return the ids of the buildings of ``source`` with these source ids (one query).

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Connection to the wangge database.
    source : str
        Source name, such as ``osm``.
    source_ids : iterable of str
        Source ids (``w123``, ``r45``); unknown ones are ignored.

    Returns
    -------
    list of int
        Building ids, ascending.
    """
    result = connection.execute(
        text(
            "SELECT id FROM building WHERE source = :source"
            " AND source_id = ANY(CAST(:ids AS text[])) ORDER BY id"
        ),
        {"source": source, "ids": sorted({str(i) for i in source_ids})},
    )
    return [int(i) for i in result.scalars()]


def _array_literal(values: npt.NDArray[Any]) -> str:
    """Return a PostgreSQL array literal of finite numbers, bound as one text value.

    Binding a Python list makes the driver adapt every element (seconds for 10⁵ rows); the
    literal is built in a fraction of that and cast server-side (``CAST(:p AS integer[])``).
    ``repr`` of a float round-trips exactly.
    """
    return "{" + ",".join(map(repr, values.tolist())) + "}"


_SELECT_BUILDINGS = """
SELECT b.id, b.source, b.source_id, b.name, coalesce(b.use, b.tags->>'building') AS use,
       b.levels, ST_AsBinary(b.footprint) AS wkb, b.tags,
       EXISTS (SELECT 1 FROM stairwell s WHERE s.building_id = b.id AND NOT s.estimated) AS real
FROM building b
"""

_DELETE_STALE_ESTIMATES = """
DELETE FROM stairwell s
WHERE s.estimated AND s.building_id = ANY(CAST(:scope AS integer[]))
  AND NOT EXISTS (
    SELECT 1 FROM unnest(CAST(:b AS integer[]), CAST(:u AS integer[])) AS n(b, u)
    WHERE n.b = s.building_id AND n.u = s.unit_no)
"""

_UPSERT_ESTIMATES = """
INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, elderly,
                       estimated, source)
SELECT n.b, n.u, ST_Point(n.x, n.y, 4326), n.h, n.r, n.e, true, 'estimate'
FROM unnest(CAST(:b AS integer[]), CAST(:u AS integer[]), CAST(:x AS float8[]),
            CAST(:y AS float8[]), CAST(:h AS integer[]), CAST(:r AS integer[]),
            CAST(:e AS integer[])) AS n(b, u, x, y, h, r, e)
ON CONFLICT (building_id, unit_no) DO UPDATE
SET entrance = excluded.entrance, households = excluded.households,
    residents = excluded.residents, elderly = excluded.elderly, source = excluded.source
WHERE stairwell.estimated
  AND ((stairwell.households, stairwell.residents, stairwell.elderly, stairwell.source)
           IS DISTINCT FROM (excluded.households, excluded.residents, excluded.elderly,
                             excluded.source)
       OR NOT ST_OrderingEquals(stairwell.entrance, excluded.entrance))
"""


def estimate_stairwells(
    connection: Connection,
    *,
    building_ids: Sequence[int] | None = None,
    settings: EstimateSettings | None = None,
) -> EstimateReport:
    """Estimate entrances and household counts of residential buildings without real counts.

    For each residential building (:func:`is_residential`) whose footprint covers at least
    ``settings.min_footprint_m2`` and that holds no real counts (``estimated = false``):
    the footprint is projected to its UTM zone; the number of entrances is
    ``max(1, round(long side / unit_width_m))`` of its minimum rotated rectangle; entrances sit
    at the unit centres along the northern long side, moved across to the first wall;
    each entrance has ``floors × households_per_floor`` households (one for houses), floors
    being ``building.levels`` or ``default_levels``; residents and elderly are drawn from a
    generator seeded by ``settings.seed`` and the building's source and source id, so results
    do not depend on processing order, building ids or re-imports. Details in
    ``docs/estimation.md``.

    Re-running replaces the estimated rows of the examined buildings with the same values
    (idempotent) and removes estimated rows of buildings that no longer qualify. Rows with
    real counts are never touched. Writes are set-based; nothing is committed.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Connection to the wangge database, inside the caller's transaction.
    building_ids : sequence of int, optional
        Buildings to examine; all buildings by default.
    settings : EstimateSettings, optional
        Parameters of the estimate; ``EstimateSettings()`` (environment) by default.

    Returns
    -------
    EstimateReport
        Counts of what was examined, skipped and written.

    Raises
    ------
    InputError
        If a footprint lies outside UTM's latitude range (beyond 80°S or 84°N).
    """
    settings = settings or EstimateSettings()
    query = _SELECT_BUILDINGS
    params: dict[str, Any] = {}
    if building_ids is not None:
        query += " WHERE b.id = ANY(CAST(:ids AS integer[]))"
        params["ids"] = _array_literal(np.asarray(building_ids, dtype=np.int64))
    rows = connection.execute(text(query + " ORDER BY b.id"), params).all()
    scope = [int(r.id) for r in rows]
    homes = [r for r in rows if is_residential(r.use, r.name, r.tags)]
    candidates = [r for r in homes if not r.real]
    skipped_real = len(homes) - len(candidates)

    ids = np.array([r.id for r in candidates], dtype=np.int64)
    footprints = shapely.from_wkb([bytes(r.wkb) for r in candidates])
    levels = np.array([r.levels or settings.default_levels for r in candidates], dtype=np.int64)
    per_floor = np.array(
        [
            0 if (r.use or "").strip().lower() in HOUSE_USES else settings.households_per_floor
            for r in candidates
        ],
        dtype=np.int64,
    )
    households_each = np.where(per_floor == 0, 1, levels * per_floor)

    out_b: list[npt.NDArray[np.int64]] = []
    out_u: list[npt.NDArray[np.int64]] = []
    out_pts: list[npt.NDArray[Any]] = []
    out_owner: list[npt.NDArray[np.intp]] = []
    skipped_small = 0
    for zone, where, projected in _in_utm(footprints) if len(candidates) else ():
        area = shapely.area(projected)
        keep = (area >= settings.min_footprint_m2) & (area > 0)
        skipped_small += int((~keep).sum())
        where, projected = where[keep], projected[keep]
        if not len(where):
            continue
        layout = _layout(projected)
        n_units = np.maximum(1, np.floor(layout.length / settings.unit_width_m + 0.5)).astype(
            np.int64
        )
        local = np.repeat(np.arange(len(where)), n_units)
        unit_no = np.arange(len(local)) - np.repeat(np.cumsum(n_units) - n_units, n_units) + 1
        points = _unit_points(layout, local, unit_no, n_units[local])
        out_pts.append(project_geometries(points, source=zone, target=WGS84))
        out_owner.append(where[local])
        out_b.append(ids[where[local]])
        out_u.append(unit_no)

    owner = np.concatenate(out_owner) if out_owner else np.zeros(0, dtype=np.intp)
    building = np.concatenate(out_b) if out_b else np.zeros(0, dtype=np.int64)
    unit = np.concatenate(out_u) if out_u else np.zeros(0, dtype=np.int64)
    xy = shapely.get_coordinates(np.concatenate(out_pts)) if out_pts else np.zeros((0, 2))
    households = households_each[owner]
    # One generator per building, keyed by what identifies it across re-imports.
    keys = [_building_key(r.source, r.source_id) for r in candidates]
    residents, elderly = _draw_counts(households, _uniforms(settings.seed, keys, owner), settings)

    written = {
        "b": _array_literal(building),
        "u": _array_literal(unit),
        "x": _array_literal(xy[:, 0]),
        "y": _array_literal(xy[:, 1]),
        "h": _array_literal(households),
        "r": _array_literal(residents),
        "e": _array_literal(elderly),
    }
    removed = connection.execute(
        text(_DELETE_STALE_ESTIMATES),
        {"scope": _array_literal(np.asarray(scope)), "b": written["b"], "u": written["u"]},
    ).rowcount
    if len(building):
        connection.execute(text(_UPSERT_ESTIMATES), written)
    return EstimateReport(
        buildings=len(rows),
        residential=len(homes),
        estimated_buildings=len(np.unique(building)),
        skipped_small=skipped_small,
        skipped_real=skipped_real,
        stairwells=len(building),
        households=int(households.sum()),
        residents=int(residents.sum()),
        elderly=int(elderly.sum()),
        removed=int(removed),
    )


@dataclass(frozen=True)
class RowError:
    """One rejected value of a CSV file.

    ``row`` is the row as a spreadsheet numbers it: the header is row 1, the first data row 2.
    """

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.reason}"


@dataclass
class CsvReport:
    """What :func:`import_stairwell_counts` read, stored and rejected.

    Attributes
    ----------
    path
        The file read.
    rows
        Data rows read (header excluded).
    stored
        Stairwells written with real counts (0 when ``strict`` and anything was rejected).
    buildings
        Buildings whose stairwells were written.
    replaced_estimates
        Estimated stairwells deleted because real counts replaced them.
    rejected
        Each problem found, by row and column; a row may have several.
    strict
        Whether a single problem prevented storing anything.
    import_run_id
        The ``import_run`` row that logs this import.
    """

    path: str
    rows: int = 0
    stored: int = 0
    buildings: int = 0
    replaced_estimates: int = 0
    rejected: list[RowError] = field(default_factory=list)
    strict: bool = False
    import_run_id: int | None = None

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.rejected


@dataclass
class _Row:
    number: int
    building: str
    unit: int | None = None
    households: int | None = None
    residents: int | None = None
    elderly: int | None = None
    lon: float | None = None
    lat: float | None = None
    building_id: int | None = None
    errors: list[RowError] = field(default_factory=list)

    def reject(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.number, column, reason))


_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _parse_count(row: _Row, column: str, value: str | None, *, minimum: int) -> int | None:
    value = (value or "").strip()
    if not value:
        row.reject(column, "missing value")
        return None
    if not _INTEGER.match(value):
        row.reject(column, f"not an integer: {value!r}")
        return None
    number = int(value)
    if number < minimum:
        row.reject(column, f"must be ≥ {minimum}, got {number}")
        return None
    return number


def _parse_coordinate(row: _Row, column: str, value: str, limit: float) -> float | None:
    try:
        number = float(value)
    except ValueError:
        row.reject(column, f"not a number: {value!r}")
        return None
    if not math.isfinite(number) or abs(number) > limit:
        row.reject(column, f"must be within ±{limit:g} degrees (WGS84), got {value}")
        return None
    return number


def _parse_row(number: int, record: dict[str | None, Any], has_point: bool) -> _Row:
    row = _Row(number=number, building=(record.get("building") or "").strip())
    if None in record:
        row.reject("(extra)", f"{len(record[None])} value(s) beyond the header's columns")
    if not row.building:
        row.reject("building", "missing value")
    row.unit = _parse_count(row, "unit", record.get("unit"), minimum=1)
    row.households = _parse_count(row, "households", record.get("households"), minimum=0)
    row.residents = _parse_count(row, "residents", record.get("residents"), minimum=0)
    row.elderly = _parse_count(row, "elderly", record.get("elderly"), minimum=0)
    if row.elderly is not None and row.residents is not None and row.elderly > row.residents:
        row.reject("elderly", f"{row.elderly} elderly exceed {row.residents} residents")
        row.elderly = None
    if has_point:
        lon = (record.get("lon") or "").strip()
        lat = (record.get("lat") or "").strip()
        if lon and lat:
            row.lon = _parse_coordinate(row, "lon", lon, 180.0)
            row.lat = _parse_coordinate(row, "lat", lat, 90.0)
        elif lon or lat:
            row.reject("lat" if lon else "lon", "lon and lat go together: one is empty")
    return row


def _read_rows(path: Path, report: CsvReport) -> list[_Row]:
    """Parse the file; header problems go to ``report`` and leave no row to store."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise InputError(str(path), "empty file: expected a header row")
            reader.fieldnames = [(name or "").strip().lower() for name in header]
            columns = set(reader.fieldnames)
            for column in STAIRWELL_COLUMNS:
                if column not in columns:
                    report.rejected.append(RowError(1, column, "missing column"))
            has_point = "lon" in columns or "lat" in columns
            if has_point and not {"lon", "lat"} <= columns:
                missing = "lat" if "lon" in columns else "lon"
                report.rejected.append(
                    RowError(1, missing, "missing column: lon and lat go together")
                )
            # The reader's line number after a record is its row in a spreadsheet (blank
            # lines, which the reader skips, still count); multi-line cells are the exception.
            rows = [_parse_row(reader.line_num, record, has_point) for record in reader]
    except FileNotFoundError as exc:
        raise InputError(str(path), "no such file") from exc
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise InputError(str(path), f"not a readable CSV file: {exc}") from exc
    report.rows = len(rows)
    return [] if report.rejected else rows


_MAX_ID = 2**31 - 1
_BARE_NUMBER = re.compile(r"^\s*([0-9]+|[零〇一二两三四五六七八九十]+)\s*(号楼|号|栋|幢|座)?\s*$")


def _bare_number(ref: str) -> str | None:
    """Return the building number a reference consists of ("12号楼" → "12"), else None.

    Normalised as the OSM reader stores ``building.number``: full-width digits folded, Chinese
    numerals up to 99 converted ("三号楼" → "3").
    """
    from gis.osm import parse_building_number

    match = _BARE_NUMBER.match(unicodedata.normalize("NFKC", ref))
    if not match:
        return None
    numeral = match.group(1)
    return str(int(numeral)) if numeral.isdigit() else parse_building_number(numeral + "号")


def _resolve_buildings(connection: Connection, rows: list[_Row]) -> None:
    """Set ``building_id`` of each row from its reference, three set-based queries in all.

    A reference is ``source:source_id`` (``osm:w123``), a building id (digits only), or a
    building's name or number ("12号楼" also matches number "12"), which must be unique.
    """
    refs = {row.building for row in rows if row.building}
    by_source = {ref for ref in refs if ":" in ref}
    by_id = {ref for ref in refs - by_source if ref.isascii() and ref.isdigit()}
    by_name = refs - by_source - by_id
    found: dict[str, list[int]] = {ref: [] for ref in refs}
    if by_source:
        pairs = sorted(ref.split(":", 1) for ref in by_source)
        result = connection.execute(
            text(
                "SELECT b.source, b.source_id, b.id FROM building b"
                " JOIN unnest(CAST(:s AS text[]), CAST(:i AS text[])) AS r(s, i)"
                " ON b.source = r.s AND b.source_id = r.i"
            ),
            {"s": [p[0] for p in pairs], "i": [p[1] for p in pairs]},
        )
        for source, source_id, building_id in result:
            found[f"{source}:{source_id}"].append(int(building_id))
    if by_id:
        # Ids beyond PostgreSQL's integer range cannot exist; "007" names id 7.
        wanted_ids = {int(ref) for ref in by_id if int(ref) <= _MAX_ID}
        result = connection.execute(
            text("SELECT id FROM building WHERE id = ANY(CAST(:ids AS bigint[]))"),
            {"ids": sorted(wanted_ids)},
        )
        existing = {int(building_id) for (building_id,) in result}
        for ref in by_id:
            if int(ref) in existing:
                found[ref].append(int(ref))
    if by_name:
        # "12号楼", "１２栋", "三号楼" also name the building numbered 12, 12, 3.
        number_of = {ref: _bare_number(ref) for ref in by_name}
        refs_by_number: dict[str, list[str]] = {}
        for ref, number in number_of.items():
            if number is not None:
                refs_by_number.setdefault(number, []).append(ref)
        result = connection.execute(
            text(
                "SELECT id, name, number FROM building WHERE name = ANY(CAST(:names AS text[]))"
                " OR number = ANY(CAST(:numbers AS text[]))"
            ),
            {"names": sorted(by_name), "numbers": sorted(refs_by_number)},
        )
        for building_id, name, number in result:
            matched = set(refs_by_number.get(number, ()))
            if name in by_name:
                matched.add(name)
            for ref in matched:
                found[ref].append(int(building_id))
    for row in rows:
        if not row.building:
            continue
        matches = sorted(set(found[row.building]))
        if len(matches) == 1:
            row.building_id = matches[0]
        elif not matches:
            row.reject("building", f"unknown building {row.building!r}")
        else:
            row.reject(
                "building",
                f"{len(matches)} buildings match {row.building!r}; use source:source_id",
            )


def _reject_duplicates(rows: list[_Row]) -> None:
    """Reject every row of a building and unit given more than once: the file contradicts itself."""
    seen: dict[tuple[int, int], list[_Row]] = {}
    for row in rows:
        if row.building_id is not None and row.unit is not None:
            seen.setdefault((row.building_id, row.unit), []).append(row)
    for group in seen.values():
        if len(group) > 1:
            numbers = [row.number for row in group]
            for row in group:
                others = ", ".join(str(n) for n in numbers if n != row.number)
                row.reject("unit", f"building and unit repeated in row {others}")


def _check_entrances(
    connection: Connection, rows: list[_Row], crs: CoordinateSystem, max_offset_m: float
) -> None:
    """Convert given entrances to WGS84 and reject those far from their building (one query).

    An entrance kilometres away, or a few hundred metres off in China, is the sign of swapped
    columns or of GCJ-02/BD-09 coordinates read as WGS84.
    """
    located = [r for r in rows if r.lon is not None and r.lat is not None]
    if not located:
        return
    lon, lat = to_wgs84(np.array([r.lon for r in located]), np.array([r.lat for r in located]), crs)
    for row, x, y in zip(located, lon.tolist(), lat.tolist(), strict=True):
        row.lon, row.lat = x, y
    placed = [r for r in located if r.building_id is not None]
    if not placed:
        return
    offsets = connection.execute(
        text(
            "SELECT n.k, ST_Distance(b.footprint::geography, ST_Point(n.x, n.y, 4326)::geography)"
            " FROM unnest(CAST(:k AS integer[]), CAST(:b AS integer[]), CAST(:x AS float8[]),"
            " CAST(:y AS float8[])) AS n(k, b, x, y) JOIN building b ON b.id = n.b"
        ),
        {
            "k": list(range(len(placed))),
            "b": [r.building_id for r in placed],
            "x": [r.lon for r in placed],
            "y": [r.lat for r in placed],
        },
    )
    for k, offset in offsets:
        if offset > max_offset_m:
            row = placed[int(k)]
            row.reject(
                "lon",
                f"entrance {offset:,.0f} m from building {row.building!r} (limit "
                f"{max_offset_m:g} m): swapped lon/lat, or coordinates not in {crs.value}?",
            )


_SELECT_PLACEMENT = """
SELECT b.id, ST_AsBinary(b.footprint) AS wkb,
       (SELECT max(s.unit_no) FROM stairwell s
        WHERE s.building_id = b.id AND NOT s.estimated) AS real_units
FROM building b WHERE b.id = ANY(CAST(:ids AS integer[]))
ORDER BY b.id
"""

_DELETE_REPLACED = """
DELETE FROM stairwell s
WHERE s.estimated AND s.building_id = ANY(CAST(:ids AS integer[]))
  AND NOT EXISTS (
    SELECT 1 FROM unnest(CAST(:b AS integer[]), CAST(:u AS integer[])) AS n(b, u)
    WHERE n.b = s.building_id AND n.u = s.unit_no)
"""

_UPSERT_COUNTS = """
INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, elderly,
                       estimated, source)
SELECT n.b, n.u,
       coalesce(ST_Point(n.x, n.y, 4326),
                (SELECT s.entrance FROM stairwell s WHERE s.building_id = n.b AND s.unit_no = n.u)),
       n.h, n.r, n.e, false, 'csv'
FROM unnest(CAST(:b AS integer[]), CAST(:u AS integer[]), CAST(:x AS float8[]),
            CAST(:y AS float8[]), CAST(:h AS integer[]), CAST(:r AS integer[]),
            CAST(:e AS integer[])) AS n(b, u, x, y, h, r, e)
ON CONFLICT (building_id, unit_no) DO UPDATE
SET entrance = excluded.entrance, households = excluded.households,
    residents = excluded.residents, elderly = excluded.elderly,
    estimated = false, source = 'csv'
"""


class _Count(NamedTuple):
    """A valid CSV row, ready to store."""

    building_id: int
    unit: int
    households: int
    residents: int
    elderly: int
    lon: float | None
    lat: float | None


def _valid_counts(rows: list[_Row]) -> list[_Count]:
    counts = []
    for row in rows:
        if row.errors:
            continue
        b, u, h, r, e = row.building_id, row.unit, row.households, row.residents, row.elderly
        if b is None or u is None or h is None or r is None or e is None:
            msg = f"row {row.number} has no error but a value is missing"
            raise AssertionError(msg)
        counts.append(_Count(b, u, h, r, e, row.lon, row.lat))
    return counts


def _place_missing(
    connection: Connection, counts: list[_Count]
) -> dict[tuple[int, int], tuple[float, float]]:
    """Entrances (lon, lat) for rows with neither lon/lat nor an existing stairwell.

    They go where the estimate puts unit k of n, n being the highest unit number known for the
    building (in the file or among its real stairwells).
    """
    existing = {
        (int(b), int(u))
        for b, u in connection.execute(
            text(
                "SELECT building_id, unit_no FROM stairwell"
                " WHERE building_id = ANY(CAST(:ids AS integer[]))"
            ),
            {"ids": sorted({c.building_id for c in counts})},
        )
    }
    wanted = [c for c in counts if c.lon is None and (c.building_id, c.unit) not in existing]
    if not wanted:
        return {}
    buildings = connection.execute(
        text(_SELECT_PLACEMENT), {"ids": sorted({c.building_id for c in wanted})}
    ).all()
    position = {int(b.id): i for i, b in enumerate(buildings)}
    highest = np.array([b.real_units or 1 for b in buildings], dtype=np.int64)
    for c in counts:
        if c.building_id in position:
            i = position[c.building_id]
            highest[i] = max(highest[i], c.unit)
    footprints = shapely.from_wkb([bytes(b.wkb) for b in buildings])
    owner = np.array([position[c.building_id] for c in wanted], dtype=np.intp)
    unit_no = np.array([c.unit for c in wanted], dtype=np.int64)
    placed: dict[tuple[int, int], tuple[float, float]] = {}
    # A footprint collapsed to a line has no long side: its entrance is a point on it.
    surface = shapely.point_on_surface(footprints)
    for zone, where, projected in _in_utm(footprints):
        flat = shapely.area(projected) <= 0
        for k in np.flatnonzero(np.isin(owner, where[flat])):
            c, point = wanted[int(k)], surface[owner[k]]
            placed[(c.building_id, c.unit)] = (float(point.x), float(point.y))
        solid = where[~flat]
        local = np.full(len(buildings), -1, dtype=np.intp)
        local[solid] = np.arange(len(solid))
        mine = np.flatnonzero(local[owner] >= 0)
        if not len(mine):
            continue
        points = _unit_points(
            _layout(projected[~flat]), local[owner[mine]], unit_no[mine], highest[owner[mine]]
        )
        lonlat = shapely.get_coordinates(project_geometries(points, source=zone, target=WGS84))
        for k, (lon, lat) in zip(mine, lonlat, strict=True):
            c = wanted[int(k)]
            placed[(c.building_id, c.unit)] = (float(lon), float(lat))
    return placed


def import_stairwell_counts(
    connection: Connection,
    path: str | Path,
    *,
    strict: bool = False,
    crs: str | CoordinateSystem = CoordinateSystem.WGS84,
    max_offset_m: float = 50.0,
) -> CsvReport:
    """Load real per-stairwell counts from a CSV file; they replace the building's estimate.

    Columns (header names, any order, case-insensitive; UTF-8, a BOM is accepted):
    ``building`` (``source:source_id`` such as ``osm:w123``, a building id, or a unique building
    name or number such as ``12号楼``), ``unit`` (integer ≥ 1), ``households``, ``residents``,
    ``elderly`` (integers ≥ 0, elderly ≤ residents), and optionally ``lon`` and ``lat`` of the
    entrance in degrees of ``crs``, converted to WGS84 and rejected when farther than
    ``max_offset_m`` from the building. Without lon/lat the entrance of an existing stairwell
    of the same building and unit is kept, else it is placed where the estimate would put it.

    Rows stored become ``estimated = false``, ``source = 'csv'``; every estimated stairwell of
    their buildings is replaced (deleted unless the file gives the same unit). A re-import
    updates the same stairwells in place. Bad rows (unknown or ambiguous building, a value that
    is missing, not an integer or negative, elderly above residents, the same building and unit
    twice) are reported and skipped; with ``strict`` nothing is stored if any row is bad.
    Each import is logged in ``import_run`` (kind ``stairwells``). Nothing is committed.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Connection to the wangge database, inside the caller's transaction.
    path : str or pathlib.Path
        The CSV file.
    strict : bool, default False
        Store nothing unless every row is valid.
    crs : {"wgs84", "gcj02", "bd09"}, default "wgs84"
        Coordinate system of ``lon``/``lat`` (GCJ-02 for Amap/Tencent/WeChat, BD-09 for Baidu).
    max_offset_m : float, default 50
        Largest accepted distance in metres between a given entrance and its footprint.

    Returns
    -------
    CsvReport
        Rows read, stored and rejected (with row number, column and reason).

    Raises
    ------
    InputError
        If the file is missing, empty, not UTF-8 or not CSV (field: the path), or ``crs`` is
        unknown (field ``crs``).
    """
    system = parse_crs(crs)
    path = Path(path)
    report = CsvReport(path=str(path), strict=strict)
    rows = _read_rows(path, report)
    _resolve_buildings(connection, rows)
    _reject_duplicates(rows)
    _check_entrances(connection, rows, system, max_offset_m)
    for row in rows:
        report.rejected.extend(row.errors)
    report.rejected.sort(key=lambda e: (e.row, e.column))
    counts = _valid_counts(rows)
    if counts and not (strict and report.rejected):
        _store_counts(connection, counts, report)
    report.import_run_id = _record_run(connection, report)
    return report


def _store_counts(connection: Connection, counts: list[_Count], report: CsvReport) -> None:
    placed = _place_missing(connection, counts)
    points = [
        (c.lon, c.lat) if c.lon is not None else placed.get((c.building_id, c.unit), (None, None))
        for c in counts
    ]
    values = {
        "b": [c.building_id for c in counts],
        "u": [c.unit for c in counts],
        "x": [p[0] for p in points],
        "y": [p[1] for p in points],
        "h": [c.households for c in counts],
        "r": [c.residents for c in counts],
        "e": [c.elderly for c in counts],
    }
    ids = sorted({c.building_id for c in counts})
    # Every estimated row of these buildings goes: deleted here, or overwritten just below.
    report.replaced_estimates = int(
        connection.execute(
            text(
                "SELECT count(*) FROM stairwell"
                " WHERE estimated AND building_id = ANY(CAST(:ids AS integer[]))"
            ),
            {"ids": ids},
        ).scalar_one()
    )
    connection.execute(text(_DELETE_REPLACED), {"ids": ids, "b": values["b"], "u": values["u"]})
    connection.execute(text(_UPSERT_COUNTS), values)
    report.stored = len(counts)
    report.buildings = len(ids)


def _record_run(connection: Connection, report: CsvReport) -> int:
    """Log the import in ``import_run`` (kind ``stairwells``), with every rejected value."""
    from gis.loader import record_import

    counts = {
        "rows": report.rows,
        "stored": report.stored,
        "buildings": report.buildings,
        "replaced_estimates": report.replaced_estimates,
        "strict": report.strict,
    }
    rejected = [
        {"row": str(e.row), "column": e.column, "reason": e.reason} for e in report.rejected
    ]
    return record_import(
        connection, kind="stairwells", path=report.path, counts=counts, rejected=rejected
    )
