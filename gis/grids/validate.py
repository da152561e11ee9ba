"""Validate a grid layer against the rules of DOMAIN §1, set-based in PostGIS.

The layer is either the ``grid`` table (filtered by kind, community and date) or the staging
table an import fills (:func:`create_staging`). Every check is one SQL statement over the whole
layer; areas are m² on the spheroid (``geography``).

What is checked, and the defect ``kind`` reported:

``invalid_geometry``     ST_IsValidReason of the cell (the repaired shape is used for the rest)
``overlap``              two cells share interior area above the tolerance (pair, m², where)
``gap``                  part of a community covered by no cell (m², where)
``outside_community``    part of a cell outside its community (m², which communities it enters)
``no_community``         a cell whose community is unknown
``cut_building``         a building with more than the tolerance of its area in two or more cells
                         and wholly inside none
``building_in_no_cell``  a building of the communities whose area lies in no cell
``empty_cell``           a service cell holding no building (unit cells may cover parks and roads)
``duplicate_code``       one code on several cells
``bad_code``             a code that is not 15 digits, has sequence 000, or does not start with
                         its community's code

A building belongs to the cell that covers it, otherwise to the cell holding most of its area
(above the tolerance); it belongs to the communities in scope when its ``ST_PointOnSurface`` lies
in one. Household balance (min/median/max per cell) sums ``stairwell.households`` by that rule.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from gis.errors import InputError

INVALID_GEOMETRY: Final = "invalid_geometry"
OVERLAP: Final = "overlap"
GAP: Final = "gap"
OUTSIDE_COMMUNITY: Final = "outside_community"
NO_COMMUNITY: Final = "no_community"
CUT_BUILDING: Final = "cut_building"
BUILDING_IN_NO_CELL: Final = "building_in_no_cell"
EMPTY_CELL: Final = "empty_cell"
DUPLICATE_CODE: Final = "duplicate_code"
BAD_CODE: Final = "bad_code"
DEFECT_KINDS: Final = (
    INVALID_GEOMETRY,
    OVERLAP,
    GAP,
    OUTSIDE_COMMUNITY,
    NO_COMMUNITY,
    CUT_BUILDING,
    BUILDING_IN_NO_CELL,
    EMPTY_CELL,
    DUPLICATE_CODE,
    BAD_CODE,
)

STAGING_TABLE: Final = "grid_staging"
# The layers validate_grids accepts: table name → whether it carries validity dates.
LAYERS: Final = {"grid": True, STAGING_TABLE: False}
KINDS: Final = ("unit", "service")


@dataclass(frozen=True, slots=True)
class Defect:
    """One defect of a grid layer.

    ``codes`` names the cells involved (one, or the overlapping pair), ``area_m2`` the area in
    square metres where it applies, ``geometry`` a GeoJSON geometry (WGS84) locating it.
    """

    kind: str
    codes: tuple[str, ...] = ()
    cell_ids: tuple[int, ...] = ()
    community_code: str | None = None
    area_m2: float | None = None
    building_id: int | None = None
    detail: str = ""
    geometry: dict[str, Any] | None = None

    def to_dict(self, *, geometry: bool = True) -> dict[str, Any]:
        """Plain-JSON form; without the geometry when ``geometry`` is false."""
        out = asdict(self)
        out["codes"] = list(self.codes)
        out["cell_ids"] = list(self.cell_ids)
        if not geometry:
            out.pop("geometry")
        return out


@dataclass(frozen=True, slots=True)
class HouseholdBalance:
    """Households per cell (sums of stairwell households): min, median, max."""

    cells: int
    min: int | None
    median: float | None
    max: int | None


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Result of :func:`validate_grids`: counts, defects, household balance."""

    layer: str
    kind: str
    as_of: datetime | None
    cells: int
    buildings: int
    defects: list[Defect] = field(default_factory=list)
    households: HouseholdBalance = field(
        default_factory=lambda: HouseholdBalance(0, None, None, None)
    )

    @property
    def clean(self) -> bool:
        """True when no defect was found."""
        return not self.defects

    def by_kind(self, kind: str) -> list[Defect]:
        """Return the defects of one kind."""
        return [d for d in self.defects if d.kind == kind]

    def counts(self) -> dict[str, int]:
        """Count defects per kind (every kind listed, zeros included)."""
        return {k: len(self.by_kind(k)) for k in DEFECT_KINDS}

    def to_dict(self, *, geometry: bool = True) -> dict[str, Any]:
        """Plain-JSON form of the report."""
        return {
            "layer": self.layer,
            "kind": self.kind,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "clean": self.clean,
            "cells": self.cells,
            "buildings": self.buildings,
            "counts": self.counts(),
            "households": asdict(self.households),
            "defects": [d.to_dict(geometry=geometry) for d in self.defects],
        }


def create_staging(connection: Connection) -> None:
    """Create (or empty) the session-local staging table of imported cells.

    Columns: ``feature`` (position in the source file), ``code``, ``kind``, ``community_id``,
    ``geom`` (any geometry, SRID 4326, possibly invalid). Dropped at the end of the transaction.
    """
    connection.execute(text(f"DROP TABLE IF EXISTS pg_temp.{STAGING_TABLE}"))
    connection.execute(
        text(
            f"CREATE TEMP TABLE {STAGING_TABLE} (id serial PRIMARY KEY, feature integer,"
            " code text, kind text, community_id integer, geom geometry(Geometry, 4326))"
            " ON COMMIT DROP"
        )
    )


def _tmp(connection: Connection, name: str, select: str, params: dict[str, Any]) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    connection.execute(text(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select}"), params)
    # Temporary tables have no statistics until analysed; the planner needs them.
    connection.execute(text(f"ANALYZE {name}"))


def _geojson(value: str | None) -> dict[str, Any] | None:
    return json.loads(value) if value else None


def validate_grids(
    connection: Connection,
    *,
    community_id: int | None = None,
    kind: str = "service",
    as_of: datetime | None = None,
    layer: str = "grid",
    tolerance_m2: float = 1.0,
    sliver_width_m: float = 0.05,
) -> ValidationReport:
    """Check a grid layer for every defect of DOMAIN §1.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Connection to PostGIS; temporary tables are created in its transaction.
    community_id : int, optional
        Only the cells of this community (and its gaps and buildings); by default every community
        that has a cell in the layer.
    kind : {"service", "unit"}
        Which grid kind to check.
    as_of : datetime, optional
        For the ``grid`` layer, the cells valid at that moment (default: now).
    layer : {"grid", "grid_staging"}
        The table holding the cells.
    tolerance_m2 : float
        Areas (overlaps, gaps, parts outside, building parts) at or below this many m² are
        rounding noise, not defects.
    sliver_width_m : float
        Overlaps, gaps and parts outside whose mean width ``2·area/perimeter`` is below this
        many metres are hair-thin slivers of two nearly equal lines (noise of projection and
        of GEOS's snapping overlay), not defects.

    Returns
    -------
    ValidationReport

    Raises
    ------
    InputError
        If ``layer`` or ``kind`` is unknown or the tolerance is negative.
    """
    if layer not in LAYERS:
        raise InputError("layer", f"unknown grid layer {layer!r}; expected one of {sorted(LAYERS)}")
    if kind not in KINDS:
        raise InputError("kind", f"unknown grid kind {kind!r}; expected one of {KINDS}")
    if tolerance_m2 < 0:
        raise InputError("tolerance_m2", "must be zero or positive")
    if sliver_width_m < 0:
        raise InputError("sliver_width_m", "must be zero or positive")
    dated = LAYERS[layer]
    # Many short spatial statements: JIT compilation costs more than it saves here, and the
    # anti-joins on 100k ids want their hash tables in memory. Both reset at transaction end.
    connection.execute(text("SET LOCAL jit = off"))
    connection.execute(text("SET LOCAL work_mem = '64MB'"))
    if dated and as_of is None:
        as_of = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    params: dict[str, Any] = {
        "kind": kind,
        "community_id": community_id,
        "tol": tolerance_m2,
        "width": sliver_width_m,
    }
    where = (
        "g.kind = :kind AND (CAST(:community_id AS integer) IS NULL"
        " OR g.community_id = :community_id)"
    )
    if dated:
        where += " AND g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
        params["as_of"] = as_of
    # `layer` is whitelisted above: the only identifier interpolated; values are bound.
    source = f"FROM {layer} g WHERE {where}"
    _tmp(
        connection,
        "_vg_cells",
        "SELECT g.id, g.code, g.community_id, ST_IsValid(g.geom) AS valid,"
        " CASE WHEN ST_IsValid(g.geom) THEN NULL ELSE ST_IsValidReason(g.geom) END AS reason,"
        " CASE WHEN ST_IsValid(g.geom) THEN g.geom"
        " ELSE ST_CollectionExtract(ST_MakeValid(g.geom), 3) END AS geom " + source,
        params,
    )
    connection.execute(text("CREATE INDEX ON _vg_cells USING gist (geom)"))
    connection.execute(text("CREATE INDEX ON _vg_cells (id)"))
    connection.execute(text("CREATE INDEX ON _vg_cells (community_id)"))
    _tmp(
        connection,
        "_vg_comm",
        "SELECT c.id, c.code, c.geom FROM community c WHERE c.geom IS NOT NULL AND"
        " (c.id = :community_id OR (CAST(:community_id AS integer) IS NULL"
        " AND c.id IN (SELECT community_id FROM _vg_cells)))",
        params,
    )
    # Buildings of the communities in scope (by ST_PointOnSurface), for counts and for
    # "building in no cell"; their geometry stays in `building` and its index.
    _tmp(
        connection,
        "_vg_bld",
        "SELECT DISTINCT ON (b.id) b.id, c.id AS community_id"
        " FROM _vg_comm c JOIN building b ON b.footprint && c.geom"
        " AND ST_Intersects(c.geom, ST_PointOnSurface(b.footprint)) ORDER BY b.id",
        params,
    )
    # Building ↔ cell: covered wholly, or else the area of the part in the cell. Cells outer and
    # first in each predicate: PostGIS prepares the cell once for all its buildings.
    pair_sql = (
        "SELECT b.id AS bid, c.id AS cid, b.covered"
        " FROM _vg_cells c CROSS JOIN LATERAL (SELECT b.id, {covered} AS covered"
        " FROM building b WHERE b.footprint && c.geom {predicate}) b"
    )
    try:
        with connection.begin_nested():
            _tmp(
                connection,
                "_vg_pairs",
                # Bbox candidates that merely touch get area 0 below; cheaper than a
                # second predicate on every pair.
                pair_sql.format(covered="ST_Covers(c.geom, b.footprint)", predicate=""),
                params,
            )
    except DBAPIError:
        # See _robust: measure every bbox pair's shared area instead of asking GEOS relate.
        _tmp(connection, "_vg_pairs", pair_sql.format(covered="false", predicate=""), params)
    _tmp(
        connection,
        "_vg_parts",
        "SELECT p.bid, p.cid, ST_Area(ST_Intersection(c.geom, b.footprint)::geography) AS area"
        " FROM _vg_pairs p JOIN _vg_cells c ON c.id = p.cid JOIN building b ON b.id = p.bid"
        " WHERE NOT p.covered"
        " AND NOT EXISTS (SELECT 1 FROM _vg_pairs q WHERE q.bid = p.bid AND q.covered)",
        params,
    )
    _tmp(
        connection,
        "_vg_home",
        "SELECT DISTINCT ON (bid) bid, cid FROM ("
        " SELECT bid, cid, 'Infinity'::float8 AS area FROM _vg_pairs WHERE covered"
        " UNION ALL SELECT bid, cid, area FROM _vg_parts WHERE area > :tol) h"
        " ORDER BY bid, area DESC, cid",
        params,
    )
    # Per community: the union of its cells (for gaps) and whether its cells' areas add up to
    # more than the union, the only way cells of one community can overlap.
    _tmp(
        connection,
        "_vg_union",
        "SELECT cm.id, cm.code, cm.geom, u.cells,"
        " coalesce(u.area_sum - ST_Area(u.cells::geography), 0) > :tol AS overlapping"
        " FROM _vg_comm cm LEFT JOIN LATERAL (SELECT ST_Union(c.geom) AS cells,"
        " sum(ST_Area(c.geom::geography)) AS area_sum FROM _vg_cells c"
        " WHERE c.community_id = cm.id) u ON true",
        params,
    )
    invalid = _invalid(connection)
    gaps = _gaps(connection, params)
    outside = _outside(connection, params)
    # Cells that may overlap another: those of a community whose areas overlap, those reaching
    # outside their community (communities do not overlap), those without a community.
    _tmp(
        connection,
        "_vg_suspect",
        "SELECT c.id FROM _vg_cells c WHERE c.id = ANY(CAST(:outside AS integer[]))"
        " OR c.community_id IS NULL"
        " OR c.community_id IN (SELECT id FROM _vg_union WHERE overlapping)"
        " OR c.community_id NOT IN (SELECT id FROM _vg_union)",
        {"outside": [i for d in outside for i in d.cell_ids]},
    )
    defects: list[Defect] = []
    defects += invalid
    defects += _overlaps(connection, params)
    defects += gaps
    defects += outside
    defects += _buildings(connection, params)
    if kind == "service":
        defects += _empty(connection)
    defects += _codes(connection)
    cells = connection.execute(text("SELECT count(*) FROM _vg_cells")).scalar_one()
    buildings = connection.execute(text("SELECT count(*) FROM _vg_bld")).scalar_one()
    return ValidationReport(
        layer=layer,
        kind=kind,
        as_of=as_of,
        cells=int(cells),
        buildings=int(buildings),
        defects=defects,
        households=_households(connection),
    )


def _invalid(connection: Connection) -> list[Defect]:
    rows = connection.execute(
        text(
            "SELECT c.id, c.code, c.reason, cm.code, ST_AsGeoJSON(ST_PointOnSurface(c.geom), 7)"
            " FROM _vg_cells c LEFT JOIN community cm ON cm.id = c.community_id"
            " WHERE NOT c.valid ORDER BY c.id"
        )
    ).all()
    return [
        Defect(INVALID_GEOMETRY, (r[1],), (r[0],), r[3], detail=r[2], geometry=_geojson(r[4]))
        for r in rows
    ]


_OVERLAPS = (
    "WITH o AS (SELECT a.id AS aid, b.id AS bid, a.code AS acode, b.code AS bcode,"
    " a.community_id, ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 3) AS g"
    " FROM (SELECT DISTINCT least(a.id, b.id) AS x, greatest(a.id, b.id) AS y"
    "  FROM _vg_suspect s JOIN _vg_cells a ON a.id = s.id"
    "  JOIN _vg_cells b ON b.id <> a.id AND a.geom && b.geom) p"
    " JOIN _vg_cells a ON a.id = p.x JOIN _vg_cells b ON b.id = p.y {predicate_where})"
    " SELECT aid, bid, acode, bcode, cm.code, ST_Area(g::geography), ST_AsGeoJSON(g, 7)"
    " FROM o LEFT JOIN community cm ON cm.id = o.community_id"
    " WHERE ST_Area(g::geography) > :tol"
    " AND 2 * ST_Area(g::geography) > :width * ST_Perimeter(g::geography) ORDER BY aid, bid"
)


def _overlaps(connection: Connection, params: dict[str, Any]) -> list[Defect]:
    rows = _robust(
        connection,
        _OVERLAPS.format(predicate_where="WHERE ST_Relate(a.geom, b.geom, 'T********')"),
        _OVERLAPS.format(predicate_where=""),
        params,
    )
    return [
        Defect(
            OVERLAP,
            (r[2], r[3]),
            (r[0], r[1]),
            r[4],
            area_m2=float(r[5]),
            detail=f"cells {r[2]} and {r[3]} overlap by {r[5]:.1f} m²",
            geometry=_geojson(r[6]),
        )
        for r in rows
    ]


def _gaps(connection: Connection, params: dict[str, Any]) -> list[Defect]:
    rows = connection.execute(
        text(
            "WITH d AS (SELECT id, code, (ST_Dump(CASE WHEN cells IS NULL THEN geom"
            " ELSE ST_CollectionExtract(ST_Difference(geom, cells), 3) END)).geom AS g"
            " FROM _vg_union)"
            " SELECT code, ST_Area(g::geography) AS a, ST_AsGeoJSON(g, 7),"
            " ST_X(ST_PointOnSurface(g)), ST_Y(ST_PointOnSurface(g))"
            " FROM d WHERE ST_Area(g::geography) > :tol"
            " AND 2 * ST_Area(g::geography) > :width * ST_Perimeter(g::geography)"
            " ORDER BY code, a DESC"
        ),
        params,
    ).all()
    return [
        Defect(
            GAP,
            community_code=r[0],
            area_m2=float(r[1]),
            detail=f"{r[1]:.1f} m² of community {r[0]} in no cell, around ({r[3]:.6f}, {r[4]:.6f})",
            geometry=_geojson(r[2]),
        )
        for r in rows
    ]


_OUTSIDE = (
    "WITH o AS (SELECT c.id, c.code, cm.code AS ccode,"
    " ST_CollectionExtract(ST_Difference(c.geom, cm.geom), 3) AS g"
    " FROM _vg_cells c JOIN community cm ON cm.id = c.community_id {filter})"
    " SELECT o.id, o.code, o.ccode, ST_Area(o.g::geography), ST_AsGeoJSON(o.g, 7),"
    " (SELECT string_agg(x.code, ',' ORDER BY x.code) FROM community x"
    "  WHERE x.code <> o.ccode AND x.geom && o.g"
    "  AND ST_Area(ST_Intersection(x.geom, o.g)::geography) > :tol)"
    " FROM o WHERE ST_Area(o.g::geography) > :tol"
    " AND 2 * ST_Area(o.g::geography) > :width * ST_Perimeter(o.g::geography) ORDER BY o.id"
)


def _robust(connection: Connection, fast: str, robust: str, params: dict[str, Any]) -> list[Any]:
    """Run ``fast`` (GEOS relate predicates); on a GEOS topology error run ``robust``.

    GEOS < 3.13 relate can fail on nearly coincident edges, common in hand-drawn layers; the
    overlay functions (OverlayNG) do not, so the robust query measures areas instead.
    """
    try:
        with connection.begin_nested():
            return list(connection.execute(text(fast), params).all())
    except DBAPIError:
        return list(connection.execute(text(robust), params).all())


def _outside(connection: Connection, params: dict[str, Any]) -> list[Defect]:
    rows: list[Any] = _robust(
        connection,
        _OUTSIDE.format(filter="WHERE NOT ST_CoveredBy(c.geom, cm.geom)"),
        _OUTSIDE.format(filter=""),
        params,
    )
    out = [
        Defect(
            OUTSIDE_COMMUNITY,
            (r[1],),
            (r[0],),
            r[2],
            area_m2=float(r[3]),
            detail=f"{r[3]:.1f} m² outside community {r[2]}" + (f", inside {r[5]}" if r[5] else ""),
            geometry=_geojson(r[4]),
        )
        for r in rows
    ]
    rows = list(
        connection.execute(
            text(
                "SELECT c.id, c.code, ST_AsGeoJSON(ST_PointOnSurface(c.geom), 7) FROM _vg_cells c"
                " LEFT JOIN community cm ON cm.id = c.community_id"
                " WHERE cm.id IS NULL OR cm.geom IS NULL ORDER BY c.id"
            )
        ).all()
    )
    out += [
        Defect(
            NO_COMMUNITY,
            (r[1],),
            (r[0],),
            detail="the cell's community is unknown or has no boundary",
            geometry=_geojson(r[2]),
        )
        for r in rows
    ]
    return out


def _buildings(connection: Connection, params: dict[str, Any]) -> list[Defect]:
    rows = connection.execute(
        text(
            "WITH cut AS (SELECT bid, array_agg(cid ORDER BY area DESC) AS cids,"
            " array_agg(round(area::numeric, 1) ORDER BY area DESC) AS areas"
            " FROM _vg_parts WHERE area > :tol GROUP BY bid HAVING count(*) > 1)"
            " SELECT cut.bid, cut.cids, cut.areas, cm.code, ST_AsGeoJSON(b.footprint, 7),"
            " ARRAY(SELECT c.code FROM unnest(cut.cids) WITH ORDINALITY u(id, n)"
            "  JOIN _vg_cells c ON c.id = u.id ORDER BY u.n)"
            " FROM cut JOIN building b ON b.id = cut.bid"
            " LEFT JOIN _vg_bld sb ON sb.id = b.id"
            " LEFT JOIN community cm ON cm.id = sb.community_id ORDER BY cut.bid"
        ),
        params,
    ).all()
    out = [
        Defect(
            CUT_BUILDING,
            tuple(r[5]),
            tuple(r[1]),
            r[3],
            area_m2=float(sum(r[2])),
            building_id=int(r[0]),
            detail=f"building {r[0]} cut by cell boundaries: "
            + ", ".join(f"{c} {a} m²" for c, a in zip(r[5], r[2], strict=True)),
            geometry=_geojson(r[4]),
        )
        for r in rows
    ]
    rows = connection.execute(
        text(
            "SELECT b.id, cm.code, ST_Area(g.footprint::geography), ST_AsGeoJSON(g.footprint, 7)"
            " FROM _vg_bld b JOIN building g ON g.id = b.id"
            " LEFT JOIN community cm ON cm.id = b.community_id"
            " WHERE NOT EXISTS (SELECT 1 FROM _vg_home h WHERE h.bid = b.id) ORDER BY b.id"
        )
    ).all()
    out += [
        Defect(
            BUILDING_IN_NO_CELL,
            community_code=r[1],
            area_m2=float(r[2]),
            building_id=int(r[0]),
            detail=f"building {r[0]} of community {r[1]} lies in no cell",
            geometry=_geojson(r[3]),
        )
        for r in rows
    ]
    return out


def _empty(connection: Connection) -> list[Defect]:
    rows = connection.execute(
        text(
            "SELECT c.id, c.code, cm.code, ST_Area(c.geom::geography),"
            " ST_AsGeoJSON(ST_PointOnSurface(c.geom), 7)"
            " FROM _vg_cells c LEFT JOIN community cm ON cm.id = c.community_id"
            " WHERE NOT EXISTS (SELECT 1 FROM _vg_home h WHERE h.cid = c.id) ORDER BY c.id"
        )
    ).all()
    return [
        Defect(
            EMPTY_CELL,
            (r[1],),
            (r[0],),
            r[2],
            area_m2=float(r[3]),
            detail=f"cell {r[1]} holds no building",
            geometry=_geojson(r[4]),
        )
        for r in rows
    ]


def _codes(connection: Connection) -> list[Defect]:
    rows = connection.execute(
        text(
            "SELECT code, array_agg(id ORDER BY id), min(community_id) FROM _vg_cells"
            " GROUP BY code HAVING count(*) > 1 ORDER BY code"
        )
    ).all()
    out = [
        Defect(
            DUPLICATE_CODE,
            (r[0],) * len(r[1]),
            tuple(r[1]),
            detail=f"code {r[0]} is used by {len(r[1])} cells",
        )
        for r in rows
    ]
    rows = connection.execute(
        text(
            "SELECT c.id, c.code, cm.code FROM _vg_cells c"
            " LEFT JOIN community cm ON cm.id = c.community_id"
            " WHERE c.code IS NULL OR c.code !~ '^[0-9]{15}$' OR right(c.code, 3) = '000'"
            " OR (cm.code IS NOT NULL AND left(c.code, 12) <> cm.code) ORDER BY c.id"
        )
    ).all()
    out += [
        Defect(
            BAD_CODE,
            (r[1] or "",),
            (r[0],),
            r[2],
            detail=f"code {r[1]!r} is not 15 digits starting with community code {r[2]}",
        )
        for r in rows
    ]
    return out


def _households(connection: Connection) -> HouseholdBalance:
    row = connection.execute(
        text(
            "WITH h AS (SELECT c.id, coalesce(sum(s.households), 0) AS n FROM _vg_cells c"
            " LEFT JOIN _vg_home hm ON hm.cid = c.id"
            " LEFT JOIN stairwell s ON s.building_id = hm.bid GROUP BY c.id)"
            " SELECT count(*), min(n), percentile_cont(0.5) WITHIN GROUP (ORDER BY n), max(n)"
            " FROM h"
        )
    ).one()
    return HouseholdBalance(
        int(row[0]),
        None if row[1] is None else int(row[1]),
        None if row[2] is None else float(row[2]),
        None if row[3] is None else int(row[3]),
    )
