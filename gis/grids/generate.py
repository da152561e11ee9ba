"""Generate unit and service grid cells that follow the street network.

For one community (or every community of a subdistrict):

1. **Blocks.** The street lines inside the community (``street_segment``, highway kinds in
   ``streets``) and the community boundary are noded and polygonised: the faces are the blocks
   between streets. They tile the community.
2. **Buildings.** Overlapping footprints form one group; each group belongs wholly to the block
   holding most of its area.
3. **Split.** A block worth more than ``target × (1 + tolerance)`` (households for service cells,
   m² for unit cells) is bisected recursively along its longer side at the weighted quantile,
   moved into the nearest gap between buildings when that costs little balance.
4. **No cut buildings.** Each piece becomes (piece − every building group) ∪ its own groups, so
   pieces still tile the community and no footprint is cut.
5. **Merge.** Pieces are grown into cells in reading order: a cell takes the neighbour sharing the
   longest boundary with it while it stays within ``target × (1 + tolerance)``; cells left below
   ``target × (1 − tolerance)`` (and service cells without households) join their smallest
   neighbour.
6. **Codes** are kept from the current cells they match (intersection over union ≥ 0.5), the rest
   take the next free numbers in reading order (:mod:`gis.grids.codes`).

Work happens in the local UTM zone (metres); cells are stored in WGS84. Each cell reports its
households, area (m²) and Polsby-Popper compactness ``4πA/P²`` (1 for a circle, 0.785 for a
square).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import Connection, text

from gis.crs import project_geometries, utm_crs
from gis.errors import InputError, NotFoundError
from gis.grids.codes import assign_codes, reading_order
from gis.grids.io import StagedCell, stage_cells
from gis.grids.validate import KINDS
from gis.grids.versions import ReplaceResult, replace_from_staging

STREET_KINDS = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "motorway_link",
    "trunk_link",
    "primary_link",
    "secondary_link",
    "tertiary_link",
    "residential",
    "unclassified",
    "living_street",
    "service",
    "pedestrian",
)
# Areas below this are noise of noding and projection, not land to give to a cell (m²).
SLIVER_M2 = 0.01


@dataclass(frozen=True, slots=True)
class GeneratedCell:
    """One generated cell: code, figures and geometry (WGS84 shapely polygon)."""

    code: str
    community_id: int
    households: int
    buildings: int
    area_m2: float
    compactness: float
    geometry: Any = field(repr=False)


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """Cells generated for some communities, and what storing them changed."""

    kind: str
    cells: list[GeneratedCell]
    replaced: ReplaceResult | None

    def summary(self) -> dict[str, Any]:
        """Return per-kind figures: cell count, households and area ranges, compactness."""
        hh = np.array([c.households for c in self.cells]) if self.cells else np.zeros(1)
        area = np.array([c.area_m2 for c in self.cells]) if self.cells else np.zeros(1)
        pp = np.array([c.compactness for c in self.cells]) if self.cells else np.zeros(1)
        return {
            "kind": self.kind,
            "cells": len(self.cells),
            "households": {
                "min": int(hh.min()),
                "median": float(np.median(hh)),
                "max": int(hh.max()),
            },
            "area_m2": {
                "min": float(area.min()),
                "median": float(np.median(area)),
                "max": float(area.max()),
            },
            "compactness": {"min": float(pp.min()), "median": float(np.median(pp))},
        }


@dataclass(slots=True)
class _Community:
    id: int
    code: str
    crs: CRS
    polygon: Any
    polygon_wgs: Any
    streets: npt.NDArray[Any]
    buildings: npt.NDArray[Any]
    buildings_wgs: npt.NDArray[Any]
    households: npt.NDArray[np.int64]


def _load(connection: Connection, community_id: int, streets: tuple[str, ...]) -> _Community:
    row = connection.execute(
        text(
            "SELECT code, ST_AsBinary(geom), ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom))"
            " FROM community WHERE id = :id"
        ),
        {"id": community_id},
    ).one_or_none()
    if row is None or row[1] is None:
        raise NotFoundError(f"community {community_id} does not exist or has no boundary")
    crs = utm_crs(float(row[2]), float(row[3]))
    polygon = project_geometries(np.array([shapely.from_wkb(row[1])]), source=4326, target=crs)[0]
    lines = connection.execute(
        text(
            "SELECT ST_AsBinary(s.geom) FROM street_segment s"
            " JOIN community c ON c.id = :id AND s.geom && c.geom AND ST_Intersects(s.geom, c.geom)"
            " WHERE s.highway = ANY(:kinds)"
        ),
        {"id": community_id, "kinds": list(streets)},
    ).scalars()
    blds = connection.execute(
        text(
            # Every footprint reaching into the community shapes the cells; its households
            # count here only when its ST_PointOnSurface lies here (as in validate_grids).
            "SELECT ST_AsBinary(b.footprint), CASE WHEN"
            " ST_Intersects(c.geom, ST_PointOnSurface(b.footprint)) THEN"
            " (SELECT coalesce(sum(s.households), 0) FROM stairwell s WHERE s.building_id = b.id)"
            " ELSE 0 END"
            " FROM building b JOIN community c ON c.id = :id AND b.footprint && c.geom"
            " AND ST_Intersects(c.geom, b.footprint) ORDER BY b.id"
        ),
        {"id": community_id},
    ).all()
    line_geoms = shapely.from_wkb(np.array(list(lines), dtype=object))
    bld_geoms = shapely.from_wkb(np.array([r[0] for r in blds], dtype=object))
    return _Community(
        id=community_id,
        code=row[0],
        crs=crs,
        polygon=shapely.make_valid(polygon),
        polygon_wgs=shapely.make_valid(shapely.from_wkb(row[1])),
        streets=project_geometries(line_geoms, source=4326, target=crs)
        if len(line_geoms)
        else line_geoms,
        buildings=project_geometries(bld_geoms, source=4326, target=crs)
        if len(bld_geoms)
        else bld_geoms,
        buildings_wgs=shapely.make_valid(bld_geoms),
        households=np.array([int(r[1]) for r in blds], dtype=np.int64),
    )


def blocks(polygon: Any, streets: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Cut a polygon into the faces between street lines (metres, one projected CRS).

    Returns
    -------
    numpy.ndarray of Polygon
        Faces that tile ``polygon`` (up to noding noise).
    """
    lines = [shapely.get_parts(polygon.boundary)]
    if len(streets):
        # Streets are clipped a little outside the boundary so that those ending on it cross it
        # (a line projected from degrees misses the boundary by centimetres); the faces outside
        # are dropped below and hair-thin ones inside absorbed.
        clipped = shapely.intersection(streets, polygon.buffer(2.0))
        lines.append(shapely.get_parts(clipped))
    flat = np.concatenate(lines)
    flat = flat[np.isin(shapely.get_type_id(flat), (1, 2))]  # lines only: drop stray points
    # Snap-rounding to 1 mm nodes nearly coincident lines (a road drawn on the boundary)
    # robustly; without it, polygonize loses faces next to them.
    parts = shapely.get_parts(shapely.union_all(flat, grid_size=0.001))
    parts = parts[shapely.get_type_id(parts) == 1]
    faces = shapely.get_parts(shapely.polygonize(parts))
    if not len(faces):
        return np.array([polygon], dtype=object)
    shapely.prepare(polygon)
    inside = shapely.contains(polygon, shapely.point_on_surface(faces))
    faces = faces[inside & (shapely.area(faces) > SLIVER_M2)]
    if not len(faces):
        return np.array([polygon], dtype=object)
    return _absorb_slivers(faces, min_width=1.0)


def _absorb_slivers(faces: npt.NDArray[Any], *, min_width: float) -> npt.NDArray[Any]:
    """Join faces thinner than ``min_width`` m (mean width 2A/P) to the neighbour sharing most.

    Two almost coincident lines (a road drawn along a boundary, a straight line projected from
    degrees) enclose faces centimetres wide and hundreds of metres long: land, but not a block.
    """
    width = 2 * shapely.area(faces) / np.maximum(shapely.length(faces), 1e-9)
    thin = np.flatnonzero(width < min_width)
    if not len(thin) or len(thin) == len(faces):
        return faces
    faces = faces.copy()
    tree = shapely.STRtree(faces)
    for i in thin.tolist():
        cand = [
            j for j in tree.query(faces[i], predicate="intersects").tolist() if j not in set(thin)
        ]
        if not cand:
            continue
        shared = shapely.length(shapely.intersection(faces[cand], faces[i].boundary))
        j = cand[int(np.argmax(shared))]
        faces[j] = shapely.union(faces[j], faces[i])
    keep = np.ones(len(faces), dtype=bool)
    keep[thin] = False
    return faces[keep]


def group_labels(buildings: npt.NDArray[Any]) -> tuple[int, npt.NDArray[np.int64]]:
    """Label footprints that overlap or touch, directly or through others, as one group."""
    if not len(buildings):
        return 0, np.zeros(0, dtype=np.int64)
    geoms = shapely.make_valid(buildings)
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    n = len(geoms)
    count, labels = connected_components(
        coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False
    )
    return int(count), labels.astype(np.int64)


def group_geoms(
    buildings: npt.NDArray[Any], count: int, labels: npt.NDArray[np.int64], polygon: Any
) -> npt.NDArray[Any]:
    """Union the footprints of each group, clipped to ``polygon``."""
    geoms = shapely.make_valid(buildings)
    groups = np.empty(count, dtype=object)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    for g in range(count):
        members = order[bounds[g] : bounds[g + 1]]
        groups[g] = shapely.union_all(geoms[members]) if len(members) > 1 else geoms[members[0]]
    return polygonal(shapely.intersection(groups, polygon))


def polygonal(geoms: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Keep only the polygon parts of each geometry (clipping leaves lines and points behind)."""
    geoms = np.asarray(geoms, dtype=object).copy()
    mixed = np.flatnonzero(shapely.get_type_id(geoms) == 7)
    for i in mixed.tolist():
        parts = shapely.get_parts(geoms[i])
        geoms[i] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), (3, 6))])
    return geoms


def owner_of(groups: npt.NDArray[Any], pieces: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Index of the piece holding most of each group's area (-1 when none)."""
    owner = np.full(len(groups), -1, dtype=np.int64)
    if not len(groups) or not len(pieces):
        return owner
    gi, pi = shapely.STRtree(pieces).query(groups, predicate="intersects")
    if not len(gi):
        return owner
    area = shapely.area(shapely.intersection(groups[gi], pieces[pi]))
    order = np.lexsort((-area, gi))
    first = np.unique(gi[order], return_index=True)[1]
    owner[gi[order][first]] = pi[order][first]
    return owner


def _free_cut(
    c: float, lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], slack: float
) -> float:
    """Move a cut coordinate into the nearest gap between building extents within ``slack``."""
    if not len(lo):
        return c
    order = np.argsort(lo)
    starts, ends = [float(lo[order[0]])], [float(hi[order[0]])]
    for s, e in zip(lo[order[1:]], hi[order[1:]], strict=True):
        if s <= ends[-1]:
            ends[-1] = max(ends[-1], float(e))
        else:
            starts.append(float(s))
            ends.append(float(e))
    for s, e in zip(starts, ends, strict=True):
        if s < c < e:
            best = s if c - s <= e - c else e
            return best if abs(best - c) <= slack else c
    return c


def _bisect(
    poly: Any,
    pts: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64],
    extents: npt.NDArray[np.float64],
    k: int,
) -> list[Any]:
    """Split ``poly`` into ``k`` parts of about equal weight by recursive straight cuts."""
    if k <= 1 or w.sum() <= 0:
        return [poly]
    minx, miny, maxx, maxy = poly.bounds
    axis = 0 if maxx - minx >= maxy - miny else 1
    k1 = k // 2
    coord = pts[:, axis]
    order = np.argsort(coord)
    cum = np.cumsum(w[order])
    i = int(np.searchsorted(cum, cum[-1] * k1 / k))
    c = float(coord[order][min(i, len(order) - 1)])
    span = (maxx - minx) if axis == 0 else (maxy - miny)
    c = _free_cut(c, extents[:, axis], extents[:, axis + 2], span / (4 * k))
    if axis == 0:
        first, second = (
            shapely.box(minx - 1, miny - 1, c, maxy + 1),
            shapely.box(c, miny - 1, maxx + 1, maxy + 1),
        )
    else:
        first, second = (
            shapely.box(minx - 1, miny - 1, maxx + 1, c),
            shapely.box(minx - 1, c, maxx + 1, maxy + 1),
        )
    a, b = shapely.intersection(poly, first), shapely.intersection(poly, second)
    left = coord < c
    mid_a = (extents[:, axis] + extents[:, axis + 2]) / 2 < c
    if shapely.area(a) <= SLIVER_M2 or shapely.area(b) <= SLIVER_M2:
        return [poly]
    return _bisect(a, pts[left], w[left], extents[mid_a], k1) + _bisect(
        b, pts[~left], w[~left], extents[~mid_a], k - k1
    )


def _lattice(poly: Any, spacing: float) -> npt.NDArray[np.float64]:
    minx, miny, maxx, maxy = poly.bounds
    xs = np.arange(minx + spacing / 2, maxx, spacing)
    ys = np.arange(miny + spacing / 2, maxy, spacing)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    inside = shapely.contains_xy(poly, pts[:, 0], pts[:, 1])
    return pts[inside]


def _split(
    pieces: npt.NDArray[Any],
    groups: npt.NDArray[Any],
    households: npt.NDArray[np.int64],
    *,
    kind: str,
    target: float,
    tolerance: float,
) -> npt.NDArray[Any]:
    owner = owner_of(groups, pieces)
    extents = shapely.bounds(groups) if len(groups) else np.zeros((0, 4))
    reps = shapely.get_coordinates(shapely.centroid(groups)) if len(groups) else np.zeros((0, 2))
    out: list[Any] = []
    for i, piece in enumerate(pieces):
        mine = owner == i
        value = float(households[mine].sum()) if kind == "service" else float(shapely.area(piece))
        if value <= target * (1 + tolerance):
            out.append(piece)
            continue
        k = max(2, round(value / target))
        if kind == "service":
            pts, w = reps[mine], households[mine].astype(float)
        else:
            spacing = max(1.0, np.sqrt(target / 400))
            pts = _lattice(piece, spacing)
            w = np.ones(len(pts))
        out.extend(_bisect(piece, pts, w, extents[mine], k))
    return np.array(out, dtype=object)


def subtract(pieces: npt.NDArray[Any], holes: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Remove from each piece the holes that touch it (cheaper than one union of all holes)."""
    out = np.asarray(pieces, dtype=object).copy()
    if not len(holes) or not len(out):
        return out
    pi, hi = shapely.STRtree(holes).query(out, predicate="intersects")
    order = np.argsort(pi, kind="stable")
    pi, hi = pi[order], hi[order]
    starts = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]]) if len(pi) else np.zeros(0, int)
    for s, e in zip(starts, np.r_[starts[1:], len(pi)], strict=True):
        i = int(pi[s])
        out[i] = shapely.difference(out[i], shapely.union_all(holes[hi[s:e]]))
    return out


def adjust_to_buildings(
    pieces: npt.NDArray[Any], groups: npt.NDArray[Any], owner: npt.NDArray[np.int64]
) -> npt.NDArray[Any]:
    """Give each building group wholly to its owner piece; the pieces still tile the area."""
    if not len(groups):
        return pieces
    out = subtract(pieces, groups)
    for i in np.unique(owner[owner >= 0]):
        out[i] = shapely.union_all(np.concatenate([[out[i]], groups[owner == i]]))
    return out


def _adjacency(pieces: npt.NDArray[Any]) -> dict[int, dict[int, float]]:
    """Shared boundary length (m) between touching pieces."""
    tree = shapely.STRtree(pieces)
    a, b = tree.query(pieces, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(pieces[a]), shapely.boundary(pieces[b]))
    )
    adj: dict[int, dict[int, float]] = {i: {} for i in range(len(pieces))}
    for i, j, s in zip(a.tolist(), b.tolist(), shared.tolist(), strict=True):
        if s > 0:
            adj[i][j] = s
            adj[j][i] = s
    return adj


def _merge(
    pieces: npt.NDArray[Any],
    values: npt.NDArray[np.float64],
    *,
    kind: str,
    target: float,
    tolerance: float,
) -> list[list[int]]:
    """Grow pieces into regions of about ``target`` value; return piece indices per region."""
    n = len(pieces)
    adj = _adjacency(pieces)
    reps = shapely.get_coordinates(shapely.point_on_surface(pieces))
    order = reading_order(
        reps[:, 0], reps[:, 1], band_m=float(np.sqrt(max(np.median(shapely.area(pieces)), 1.0)))
    )
    region = np.full(n, -1, dtype=np.int64)
    upper, lower = target * (1 + tolerance), target * (1 - tolerance)
    regions: list[list[int]] = []
    # Area and perimeter of regions, kept without geometry operations: merging a and b gives
    # perimeter P_a + P_b - 2·shared, hence the Polsby-Popper score of every candidate.
    p_area = shapely.area(pieces)
    p_len = shapely.length(pieces)

    def score(a_area: float, a_len: float, b_area: float, b_len: float, shared: float) -> float:
        return float((a_area + b_area) / max(a_len + b_len - 2 * shared, 1e-9) ** 2)

    for seed in order.tolist():
        if region[seed] >= 0:
            continue
        r = len(regions)
        members = [seed]
        region[seed] = r
        total = values[seed]
        r_area, r_len = float(p_area[seed]), float(p_len[seed])
        border: dict[int, float] = {j: s for j, s in adj[seed].items() if region[j] < 0}
        while total < lower and border:
            fits = [j for j in border if total + values[j] <= upper]
            if not fits:
                break
            j = max(
                fits,
                key=lambda c: (
                    score(r_area, r_len, float(p_area[c]), float(p_len[c]), border[c]),
                    -c,
                ),
            )
            members.append(j)
            region[j] = r
            total += values[j]
            r_len = r_len + float(p_len[j]) - 2 * border[j]
            r_area += float(p_area[j])
            border.pop(j)
            for m, s in adj[j].items():
                if region[m] < 0:
                    border[m] = border.get(m, 0.0) + s
        regions.append(members)
    # Small regions (and service cells without households) join their smallest neighbour.
    totals = np.array([values[m].sum() for m in regions])
    areas = np.array([p_area[m].sum() for m in regions])
    lengths = np.array([p_len[m].sum() for m in regions], dtype=float)
    for r, ms in enumerate(regions):
        inner = sum(adj[i].get(j, 0.0) for i in ms for j in ms if i < j)
        lengths[r] -= 2 * inner
    alive = [True] * len(regions)
    changed = True
    while changed:
        changed = False
        for r in np.argsort(totals, kind="stable").tolist():
            if not alive[r]:
                continue
            small = totals[r] < lower or (kind == "service" and totals[r] <= 0)
            if not small:
                continue
            neighbours: dict[int, float] = {}
            for i in regions[r]:
                for j, s in adj[i].items():
                    q = int(region[j])
                    if q != r and alive[q]:
                        neighbours[q] = neighbours.get(q, 0.0) + s
            if not neighbours:
                continue
            q = min(
                neighbours,
                key=lambda c: (
                    totals[c] + totals[r] > upper,
                    -score(
                        float(areas[r]),
                        float(lengths[r]),
                        float(areas[c]),
                        float(lengths[c]),
                        neighbours[c],
                    ),
                    c,
                ),
            )
            if kind == "unit" and totals[r] > 0 and totals[q] + totals[r] > upper * 1.5:
                continue
            regions[q].extend(regions[r])
            for i in regions[r]:
                region[i] = q
            totals[q] += totals[r]
            areas[q] += areas[r]
            lengths[q] += lengths[r] - 2 * neighbours[q]
            alive[r] = False
            changed = True
    return [m for m, a in zip(regions, alive, strict=True) if a]


def _fill_gaps(cells: list[Any], polygon: Any, *, min_width: float = 0.05) -> list[Any]:
    """Give land covered by no cell (dropped faces) to the neighbour sharing most boundary.

    Hair-thin slivers (mean width ``2A/P`` below ``min_width``, in CRS units) are noise of
    noding and projection, a fraction of a m²: giving them to a cell would only wrap it in a
    thread along the community boundary.
    """
    rest = shapely.difference(polygon, shapely.union_all(cells))
    parts = [
        p
        for p in shapely.get_parts(rest)
        if 2 * shapely.area(p) / max(shapely.length(p), 1e-12) > min_width
    ]
    arr = np.array(cells, dtype=object)
    for part in parts:
        shared = shapely.length(shapely.intersection(shapely.boundary(arr), part.boundary))
        i = (
            int(np.argmax(shared))
            if shared.max() > 0
            else int(np.argmin(shapely.distance(arr, part)))
        )
        arr[i] = shapely.union(arr[i], part)
    return list(arr)


def _valid_polygons(geoms: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Repair rings that projecting made touch or cross (sub-millimetre), keeping polygons."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        fixed = shapely.make_valid(geoms[bad])
        geoms = geoms.copy()
        geoms[bad] = [
            shapely.union_all(shapely.get_parts(g)[shapely.get_type_id(shapely.get_parts(g)) >= 3])
            for g in fixed
        ]
    return geoms


def _exact_wgs84(
    cells: npt.NDArray[Any],
    com: _Community,
    groups_wgs: npt.NDArray[Any],
    grp_cell: npt.NDArray[np.int64],
) -> npt.NDArray[Any]:
    """Bring cells to WGS84 with edges exactly on the stored footprints and community boundary.

    Projecting back moves vertices by ~1e-10°; edges nearly (not exactly) coincident with the
    footprints would make GEOS predicates fail, so the cells are snapped to the stored geometry,
    clipped to the community, and each building group is put back exactly in its own cell.
    """
    wgs = _valid_polygons(project_geometries(cells, source=com.crs, target=4326))
    # Snap each cell to the boundaries near it only (one anchor of every footprint is slow).
    edge = com.polygon_wgs.boundary
    near = shapely.STRtree(groups_wgs).query(shapely.buffer(wgs, 1e-7), predicate="intersects")
    snapped = wgs.copy()
    for i in range(len(wgs)):
        mine = groups_wgs[near[1][near[0] == i]]
        anchors = shapely.union_all([edge, *shapely.boundary(mine)])
        snapped[i] = shapely.snap(wgs[i], anchors, 1e-8)
    wgs = _valid_polygons(snapped)
    wgs = shapely.intersection(wgs, com.polygon_wgs)
    if len(groups_wgs):
        wgs = subtract(wgs, groups_wgs)
        for r in np.unique(grp_cell[grp_cell >= 0]):
            wgs[r] = shapely.union_all(np.concatenate([[wgs[r]], groups_wgs[grp_cell == r]]))
    return _valid_polygons(_fill_slivers(_valid_polygons(wgs), com.polygon_wgs))


def _fill_slivers(cells: npt.NDArray[Any], polygon: Any, *, eps: float = 2e-7) -> npt.NDArray[Any]:
    """Give the hair-thin rest of ``polygon`` not covered by cells to the cells along it.

    Each cell takes the part of the rest within ``eps`` (degrees, about 2 cm) of it, so a
    sliver running along several cells is shared among them rather than wrapped around one.
    """
    rest = shapely.difference(polygon, shapely.union_all(cells))
    if shapely.is_empty(rest) or shapely.area(rest) == 0:
        return cells
    cells = cells.copy()
    for i in shapely.STRtree(cells).query(rest.buffer(eps), predicate="intersects").tolist():
        part = shapely.intersection(rest, shapely.buffer(cells[i], eps))
        if shapely.area(part) > 0:
            cells[i] = shapely.union(cells[i], part)
            rest = shapely.difference(rest, part)
    return cells


def generate_cells(
    connection: Connection,
    community_id: int,
    *,
    kind: str = "service",
    target_households: int = 400,
    target_area_m2: float = 10_000.0,
    tolerance: float = 0.25,
    streets: tuple[str, ...] = STREET_KINDS,
) -> list[GeneratedCell]:
    """Generate the cells of one community (not stored; see :func:`generate_grids`).

    Parameters
    ----------
    connection : sqlalchemy.Connection
    community_id : int
    kind : {"service", "unit"}
        Service cells are sized by households, unit cells by area.
    target_households : int
        Households per service cell (DOMAIN: typically 300-500).
    target_area_m2 : float
        Area of a unit cell in m² (10,000 for 万米单元网格).
    tolerance : float
        Accepted relative deviation from the target before splitting or merging.
    streets : tuple of str
        ``street_segment.highway`` kinds that bound blocks.

    Returns
    -------
    list of GeneratedCell
        Cells tiling the community, codes kept from matching current cells.

    Raises
    ------
    InputError
        If the kind or a target is out of range.
    NotFoundError
        If the community does not exist or has no boundary.
    """
    if kind not in KINDS:
        raise InputError("kind", f"unknown grid kind {kind!r}; expected one of {KINDS}")
    if target_households < 1:
        raise InputError("target_households", "must be at least 1")
    if target_area_m2 <= 0:
        raise InputError("target_area_m2", "must be positive")
    if not 0 <= tolerance < 1:
        raise InputError("tolerance", "must be in [0, 1)")
    com = _load(connection, community_id, streets)
    target = float(target_households) if kind == "service" else float(target_area_m2)
    count, labels = group_labels(com.buildings)
    groups = group_geoms(com.buildings, count, labels, com.polygon)
    keep = shapely.area(groups) > SLIVER_M2
    hh = np.bincount(labels, weights=com.households, minlength=count).astype(np.int64)[keep]
    nb = np.bincount(labels, minlength=count).astype(np.int64)[keep]
    groups_wgs = group_geoms(com.buildings_wgs, count, labels, com.polygon_wgs)[keep]
    groups = groups[keep]
    pieces = blocks(com.polygon, com.streets)
    pieces = _split(pieces, groups, hh, kind=kind, target=target, tolerance=tolerance)
    owner = owner_of(groups, pieces)
    pieces = adjust_to_buildings(pieces, groups, owner)
    # Pieces wholly covered by other pieces' buildings vanish; crumbs under 1 m² owning no
    # building are left to the gap filling rather than becoming cells of their own.
    alive = shapely.area(pieces) > 1.0
    alive[owner[owner >= 0]] = True
    if not alive.all():
        index = np.cumsum(alive) - 1
        owner = np.where(owner >= 0, index[np.maximum(owner, 0)], -1)
        pieces = pieces[alive]
    values = np.asarray(
        np.bincount(owner[owner >= 0], weights=hh[owner >= 0], minlength=len(pieces))
        if kind == "service"
        else shapely.area(pieces),
        dtype=float,
    )
    regions = _merge(pieces, values.astype(float), kind=kind, target=target, tolerance=tolerance)
    cells = [shapely.union_all(pieces[m]) for m in regions]
    cells = _fill_gaps(cells, com.polygon)
    cell_arr = np.array(cells, dtype=object)
    cell_of_piece = np.full(len(pieces), -1, dtype=np.int64)
    for r, members in enumerate(regions):
        cell_of_piece[members] = r
    grp_cell = np.where(owner >= 0, cell_of_piece[np.maximum(owner, 0)], -1)
    cell_hh = np.bincount(grp_cell[grp_cell >= 0], weights=hh[grp_cell >= 0], minlength=len(cells))
    cell_nb = np.bincount(grp_cell[grp_cell >= 0], weights=nb[grp_cell >= 0], minlength=len(cells))
    area = shapely.area(cell_arr)
    perimeter = shapely.length(cell_arr)
    compact = 4 * np.pi * area / np.maximum(perimeter, 1e-9) ** 2
    reps = shapely.get_coordinates(shapely.point_on_surface(cell_arr))
    wgs = _exact_wgs84(cell_arr, com, groups_wgs, grp_cell)
    codes = _codes(connection, com, kind, wgs, reps, area)
    return [
        GeneratedCell(
            code=codes[i],
            community_id=com.id,
            households=int(cell_hh[i]),
            buildings=int(cell_nb[i]),
            area_m2=float(area[i]),
            compactness=float(compact[i]),
            geometry=wgs[i],
        )
        for i in range(len(cells))
    ]


def _codes(
    connection: Connection,
    com: _Community,
    kind: str,
    wgs: npt.NDArray[Any],
    reps: npt.NDArray[np.float64],
    area: npt.NDArray[np.float64],
) -> list[str]:
    """Keep the codes of current cells matched by IoU ≥ 0.5; number the rest."""
    current = connection.execute(
        text(
            "SELECT code, ST_AsBinary(geom) FROM grid WHERE community_id = :id AND kind = :kind"
            " AND valid_to IS NULL ORDER BY code"
        ),
        {"id": com.id, "kind": kind},
    ).all()
    used = [
        int(c[12:])
        for c in connection.execute(
            text("SELECT DISTINCT code FROM grid WHERE community_id = :id AND kind = :kind"),
            {"id": com.id, "kind": kind},
        ).scalars()
        if c.startswith(com.code)
    ]
    keep: list[str | None] = [None] * len(wgs)
    if current:
        old = shapely.from_wkb(np.array([r[1] for r in current], dtype=object))
        gi, oi = shapely.STRtree(old).query(wgs, predicate="intersects")
        if len(gi):
            inter = shapely.area(shapely.intersection(wgs[gi], old[oi]))
            union = shapely.area(shapely.union(wgs[gi], old[oi]))
            iou = inter / np.maximum(union, 1e-18)
            taken: set[int] = set()
            for j in np.argsort(-iou).tolist():
                if iou[j] < 0.5:
                    break
                g, o = int(gi[j]), int(oi[j])
                if keep[g] is None and o not in taken and current[o][0].startswith(com.code):
                    keep[g] = current[o][0]
                    taken.add(o)
    return assign_codes(com.code, reps[:, 0], reps[:, 1], keep=keep, used=used, areas_m2=area)


def generate_grids(
    connection: Connection,
    *,
    community_ids: list[int],
    kind: str = "service",
    target_households: int = 400,
    target_area_m2: float = 10_000.0,
    tolerance: float = 0.25,
    streets: tuple[str, ...] = STREET_KINDS,
    store: bool = True,
    valid_from: datetime | None = None,
) -> GenerationResult:
    """Generate cells for communities and, with ``store``, replace their current cells.

    See :func:`generate_cells` for the parameters; storing closes the current cells of that kind
    in these communities and opens the new ones (:func:`replace_from_staging`), in a savepoint.

    Returns
    -------
    GenerationResult
    """
    if not community_ids:
        raise InputError("community_ids", "no community to generate cells for")
    cells: list[GeneratedCell] = []
    for cid in community_ids:
        cells += generate_cells(
            connection,
            cid,
            kind=kind,
            target_households=target_households,
            target_area_m2=target_area_m2,
            tolerance=tolerance,
            streets=streets,
        )
    replaced = None
    if store:
        with connection.begin_nested():
            stage_cells(
                connection,
                [StagedCell(i, c.code, c.community_id, c.geometry) for i, c in enumerate(cells)],
                kind=kind,
            )
            replaced = replace_from_staging(
                connection,
                kind=kind,
                community_ids=community_ids,
                valid_from=valid_from,
                source="generated",
            )
    return GenerationResult(kind=kind, cells=cells, replaced=replaced)


def communities_of(connection: Connection, *, subdistrict_code: str | None = None) -> list[int]:
    """Return the ids of the communities with a boundary (of one subdistrict when given)."""
    rows = connection.execute(
        text(
            "SELECT c.id FROM community c LEFT JOIN subdistrict s ON s.id = c.subdistrict_id"
            " WHERE c.geom IS NOT NULL AND (CAST(:code AS text) IS NULL OR s.code = :code)"
            " ORDER BY c.code"
        ),
        {"code": subdistrict_code},
    ).scalars()
    return [int(r) for r in rows]
