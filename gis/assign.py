"""Fast in-memory assignment of many points to grid cells (polygons).

Tie rule (the same everywhere in wangge)
----------------------------------------
A point belongs to a cell when the cell **covers** it: interior *or* boundary, so a point on the
outer boundary of the managed area counts as inside. When several cells cover a point (a point
on a shared edge or vertex, or overlapping cells), the cell with the **lowest id** wins; ids are
compared in numpy sort order (numbers numerically, strings character by character, so grid codes
of equal length, such as the 15-digit codes, compare like numbers). Without ids the lowest
position wins. A point covered by no cell gets ``-1``. Non-finite coordinates get ``-1``.
:func:`gis.locate.locate` applies the same rule in PostGIS (``ST_Covers``, lowest code).

How it is fast
--------------
The cells' extent is cut into a raster of small buckets (about 16 x 16 per typical cell). At
build time every bucket that any cell boundary passes through (with a small safety margin) is
marked *mixed*; the remaining buckets form connected regions that no boundary crosses, so every
point of such a region is covered by the same cells, and one exact test per region fixes its
answer. At query time a point's bucket is found with integer arithmetic; only points in mixed
buckets (typically a fifth) go to the exact path: the cells whose bounding box meets the point's
tile (4 x 4 buckets, listed in id order at build time) are filtered by bounding box, then tested
with ``shapely.intersects_xy`` (equal to ``covers`` for a point) on prepared polygons, vectorised;
the first covering cell in id order wins. The result is exactly what a per-point ``covers`` test
gives, whatever the raster resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from scipy import ndimage

from gis.coords import CoordinateSystem, parse_crs, to_wgs84, utm_epsg
from gis.errors import InputError

__all__ = ["CellIndex", "NearBoundary"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Bucket margin in bucket widths: far above float rounding, far below a bucket.
_EPS = 1e-6
_MIXED = -2
# Side of a candidate tile, in buckets.
_TILE = 4


@dataclass(frozen=True)
class NearBoundary:
    """Nearest *other* cell within a distance of each point.

    Attributes
    ----------
    other
        Index of the nearest cell other than the point's own cell within the threshold, ``-1``
        when there is none (ties by distance go to the lowest id).
    distance_m
        Straight distance in metres from the point to that cell (0 on a shared boundary),
        NaN when there is none.
    """

    other: IntArray
    distance_m: FloatArray

    @property
    def flagged(self) -> npt.NDArray[np.bool_]:
        """True where another cell lies within the threshold."""
        return np.asarray(self.other >= 0)


def _validate_geometries(geometries: Any) -> npt.NDArray[np.object_]:
    geoms = np.asarray(geometries, dtype=object)
    if geoms.ndim != 1 or geoms.size == 0:
        msg = "expected a non-empty sequence of polygons"
        raise InputError("geometries", msg)
    try:
        # 3 = Polygon, 6 = MultiPolygon; anything that is not a geometry fails the check.
        ok_type = np.isin(shapely.get_type_id(geoms), (3, 6))
    except TypeError:
        ok_type = np.array([isinstance(g, shapely.Polygon | shapely.MultiPolygon) for g in geoms])
    if not ok_type.all():
        row = int(np.flatnonzero(~ok_type)[0])
        msg = f"row {row}: expected a Polygon or MultiPolygon, got {type(geoms[row]).__name__}"
        raise InputError("geometries", msg)
    empty = shapely.is_empty(geoms)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        msg = f"row {row}: empty polygon"
        raise InputError("geometries", msg)
    valid = shapely.is_valid(geoms)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        msg = f"row {row}: invalid polygon ({shapely.is_valid_reason(geoms[row])})"
        raise InputError("geometries", msg)
    return geoms


def _validate_ids(ids: Any, n: int) -> npt.NDArray[Any]:
    if ids is None:
        return np.arange(n, dtype=np.int64)
    values = np.asarray(ids)
    if values.ndim != 1 or values.size != n:
        msg = f"expected {n} ids, one per geometry, got shape {values.shape}"
        raise InputError("ids", msg)
    unique, counts = np.unique(values, return_counts=True)
    if unique.size != n:
        msg = f"duplicate id {unique[counts > 1][0]!r}"
        raise InputError("ids", msg)
    return values


class CellIndex:
    """Assign points to polygon cells with ``covers`` semantics and the lowest-id tie rule.

    Build it once with :meth:`from_geometries`, then call :meth:`assign` on arrays of points.
    Geometries and points are WGS84 longitude/latitude (degrees) unless a ``crs`` is given to
    :meth:`assign` for the points.

    Parameters
    ----------
    geometries
        Valid, non-empty Polygons or MultiPolygons (shapely 2), one per cell.
    ids
        One id per cell (grid codes, database ids...); ties go to the lowest. Defaults to the
        position. Must be unique.
    buckets_per_cell
        Target number of raster buckets per typical cell (speed/memory trade-off).
    max_buckets
        Upper bound on the raster size.

    Raises
    ------
    gis.errors.InputError
        Field ``geometries`` (naming the row) for a missing, empty, invalid or non-polygon
        geometry, or when the coordinates are not longitude/latitude degrees; field ``ids`` for
        duplicate ids or a length mismatch.
    """

    def __init__(
        self,
        geometries: Sequence[shapely.Geometry] | npt.NDArray[np.object_],
        ids: Sequence[Any] | npt.NDArray[Any] | None = None,
        *,
        buckets_per_cell: int = 256,
        max_buckets: int = 8_000_000,
    ) -> None:
        geoms = _validate_geometries(geometries)
        n = geoms.size
        self._ids = _validate_ids(ids, n)
        # rank[i] = position of cell i in id order; order[r] = the cell of rank r.
        self._order = np.argsort(self._ids, kind="stable").astype(np.int64)
        self._rank = np.empty(n, dtype=np.int64)
        self._rank[self._order] = np.arange(n, dtype=np.int64)
        self._geoms = geoms
        shapely.prepare(geoms)
        bounds = shapely.bounds(geoms)
        self._bx0, self._by0, self._bx1, self._by1 = (
            np.ascontiguousarray(bounds[:, k]) for k in range(4)
        )
        self._extent = (
            float(bounds[:, 0].min()),
            float(bounds[:, 1].min()),
            float(bounds[:, 2].max()),
            float(bounds[:, 3].max()),
        )
        west, south, east, north = self._extent
        if not (west >= -180.0 and east <= 180.0 and south >= -90.0 and north <= 90.0):
            msg = (
                f"extent ({west:.6g}, {south:.6g}, {east:.6g}, {north:.6g}) is not WGS84"
                " longitude/latitude in degrees"
            )
            raise InputError("geometries", msg)
        self._build_raster(bounds, buckets_per_cell, max_buckets)
        self._epsg = utm_epsg(
            (self._extent[0] + self._extent[2]) / 2.0, (self._extent[1] + self._extent[3]) / 2.0
        )

    @classmethod
    def from_geometries(
        cls,
        geometries: Sequence[shapely.Geometry] | npt.NDArray[np.object_],
        ids: Sequence[Any] | npt.NDArray[Any] | None = None,
        *,
        buckets_per_cell: int = 256,
        max_buckets: int = 8_000_000,
    ) -> CellIndex:
        """Build the index of ``geometries`` (WGS84 polygons) with optional ``ids``.

        See :class:`CellIndex` for the parameters and errors raised.
        """
        return cls(geometries, ids, buckets_per_cell=buckets_per_cell, max_buckets=max_buckets)

    # -- properties -------------------------------------------------------------------------

    @property
    def geometries(self) -> npt.NDArray[np.object_]:
        """The cell polygons (WGS84), in input order."""
        return self._geoms

    @property
    def ids(self) -> npt.NDArray[Any]:
        """The cell ids, in input order."""
        return self._ids

    @property
    def utm_epsg(self) -> int:
        """EPSG code of the UTM zone used for metric work (zone of the extent's centre)."""
        return self._epsg

    def __len__(self) -> int:
        return int(self._geoms.size)

    # -- build --------------------------------------------------------------------------------

    def _build_raster(self, bounds: FloatArray, buckets_per_cell: int, max_buckets: int) -> None:
        x0, y0, x1, y1 = self._extent
        side = math.sqrt(max(buckets_per_cell, 1))
        width = float(np.median(bounds[:, 2] - bounds[:, 0]))
        height = float(np.median(bounds[:, 3] - bounds[:, 1]))
        span_x = max(x1 - x0, 1e-12)
        span_y = max(y1 - y0, 1e-12)
        dx = max(width, 1e-12) / side
        dy = max(height, 1e-12) / side
        count = math.ceil(span_x / dx) * math.ceil(span_y / dy)
        if count > max_buckets:
            factor = math.sqrt(count / max_buckets)
            dx *= factor
            dy *= factor
        nx = max(math.ceil(span_x / dx), 1)
        ny = max(math.ceil(span_y / dy), 1)
        self._x0, self._y0, self._dx, self._dy, self._nx, self._ny = x0, y0, dx, dy, nx, ny
        self._build_tiles()

        mixed = np.zeros((ny, nx), dtype=bool)
        parts = shapely.get_parts(self._geoms)
        rings = shapely.get_rings(parts)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        same = ring_of[:-1] == ring_of[1:]
        u = (coords[:, 0] - x0) / dx
        v = (coords[:, 1] - y0) / dy
        ua, va, ub, vb = u[:-1][same], v[:-1][same], u[1:][same], v[1:][same]
        self._mark_segments(mixed, ua, va, ub, vb)

        labels, count_regions = ndimage.label(~mixed)
        flat = labels.ravel()
        # ndimage.label numbers regions in raster-scan order of first appearance, so the first
        # bucket of each region is where the label exceeds every earlier one (checked below).
        seen = np.maximum.accumulate(flat)
        first = np.flatnonzero(flat > np.concatenate(([0], seen[:-1])))
        region_ids = flat[first]
        if not np.array_equal(region_ids, np.arange(1, count_regions + 1)):
            region_ids, first = np.unique(flat, return_index=True)
            free = region_ids > 0
            region_ids, first = region_ids[free], first[free]
        ix, iy = first % nx, first // nx
        region_cell = np.full(count_regions + 1, _MIXED, dtype=np.int64)
        region_cell[region_ids], covers = self._assign_exact(
            np.asarray(x0 + (ix + 0.5) * dx, np.float64),
            np.asarray(y0 + (iy + 0.5) * dy, np.float64),
            self._tile_of(ix, iy),
            count=True,
        )
        self._bucket_cell = region_cell[flat].astype(np.int32)
        # Regions covered by two cells or more exist only where cells overlap.
        self._overlapping = covers is not None and bool((covers >= 2).any())

    @staticmethod
    def _mark_segments(
        mixed: npt.NDArray[np.bool_],
        ua: FloatArray,
        va: FloatArray,
        ub: FloatArray,
        vb: FloatArray,
    ) -> None:
        """Mark every bucket a segment passes within ``_EPS`` buckets of (a widened supercover).

        Coordinates are in bucket units. Each segment is walked along its major axis one
        bucket column at a time; in a column the segment spans at most two rows (slope <= 1),
        widened by the margin.
        """
        ny, nx = mixed.shape
        major_u = np.abs(ub - ua) >= np.abs(vb - va)
        a0 = np.where(major_u, ua, va)
        a1 = np.where(major_u, ub, vb)
        b0 = np.where(major_u, va, ua)
        b1 = np.where(major_u, vb, ub)
        flip = (a0 > a1) | ((a0 == a1) & (b0 > b1))
        a0, a1 = np.where(flip, a1, a0), np.where(flip, a0, a1)
        b0, b1 = np.where(flip, b1, b0), np.where(flip, b0, b1)
        # An edge shared by two cells appears once per ring: walk it once.
        order = np.lexsort((b1, a1, b0, a0, major_u))
        a0, b0, a1, b1, major_u = a0[order], b0[order], a1[order], b1[order], major_u[order]
        keep = np.ones(order.size, dtype=bool)
        keep[1:] = (
            (a0[1:] != a0[:-1])
            | (b0[1:] != b0[:-1])
            | (a1[1:] != a1[:-1])
            | (b1[1:] != b1[:-1])
            | (major_u[1:] != major_u[:-1])
        )
        a0, b0, a1, b1, major_u = a0[keep], b0[keep], a1[keep], b1[keep], major_u[keep]
        length = a1 - a0
        slope = np.divide(b1 - b0, length, out=np.zeros_like(length), where=length > 0)
        c_lo = np.floor(a0 - _EPS).astype(np.int64)
        columns = np.floor(a1 + _EPS).astype(np.int64) - c_lo + 1
        seg = np.repeat(np.arange(columns.size), columns)
        col = c_lo[seg] + (np.arange(seg.size) - np.repeat(np.cumsum(columns) - columns, columns))
        a0s, b0s, slope_s = a0[seg], b0[seg], slope[seg]
        lo = np.maximum(col - _EPS, a0s) - a0s
        hi = np.minimum(col + 1 + _EPS, a1[seg]) - a0s
        b_lo = b0s + slope_s * lo
        b_hi = b0s + slope_s * hi
        r_lo = np.floor(np.minimum(b_lo, b_hi) - _EPS).astype(np.int64)
        rows = np.floor(np.maximum(b_lo, b_hi) + _EPS).astype(np.int64) - r_lo + 1
        mark = np.repeat(np.arange(rows.size), rows)
        row = r_lo[mark] + (np.arange(mark.size) - np.repeat(np.cumsum(rows) - rows, rows))
        col = col[mark]
        along_u = major_u[seg[mark]]
        i = np.clip(np.where(along_u, col, row), 0, nx - 1)
        j = np.clip(np.where(along_u, row, col), 0, ny - 1)
        mixed.ravel()[j * nx + i] = True

    def _build_tiles(self) -> None:
        """Candidate cells per tile of _TILE x _TILE buckets: cells whose bbox meets the tile."""
        side_x = _TILE * self._dx
        side_y = _TILE * self._dy
        self._tiles_x = math.ceil(self._nx / _TILE)
        tiles_y = math.ceil(self._ny / _TILE)
        # Tile ranges of each cell's bbox, widened by the margin so rounding never loses one.
        i_lo = np.clip(np.floor((self._bx0 - self._x0) / side_x - _EPS), 0, self._tiles_x - 1)
        i_hi = np.clip(np.floor((self._bx1 - self._x0) / side_x + _EPS), 0, self._tiles_x - 1)
        j_lo = np.clip(np.floor((self._by0 - self._y0) / side_y - _EPS), 0, tiles_y - 1)
        j_hi = np.clip(np.floor((self._by1 - self._y0) / side_y + _EPS), 0, tiles_y - 1)
        i_lo, i_hi, j_lo, j_hi = (a.astype(np.int64) for a in (i_lo, i_hi, j_lo, j_hi))
        wide = i_hi - i_lo + 1
        count = wide * (j_hi - j_lo + 1)
        # Cells enumerated in id order; a stable sort by tile keeps that order within each tile,
        # so the first covering candidate of a tile is the answer.
        cell = np.repeat(self._order, count[self._order])
        local = np.arange(cell.size) - np.repeat(
            np.cumsum(count[self._order]) - count[self._order], count[self._order]
        )
        tile = (j_lo[cell] + local // wide[cell]) * self._tiles_x + i_lo[cell] + local % wide[cell]
        self._tile_cells = cell[np.argsort(tile, kind="stable")]
        per_tile = np.bincount(tile, minlength=self._tiles_x * tiles_y)
        self._tile_ptr = np.concatenate(([0], np.cumsum(per_tile))).astype(np.int64)

    def _tile_of(self, ix: IntArray, iy: IntArray) -> IntArray:
        return np.asarray((iy // _TILE) * self._tiles_x + ix // _TILE, dtype=np.int64)

    @cached_property
    def _metric(self) -> tuple[Transformer, npt.NDArray[np.object_], shapely.STRtree]:
        """The cells in UTM metres and their tree, built on first use by :meth:`near_boundary`."""
        to_utm = Transformer.from_crs(4326, self._epsg, always_xy=True)
        utm_geoms = shapely.transform(
            self._geoms, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
        )
        return to_utm, utm_geoms, shapely.STRtree(utm_geoms)

    # -- queries ------------------------------------------------------------------------------

    def _assign_exact(
        self, x: FloatArray, y: FloatArray, tile: IntArray, *, count: bool = False
    ) -> tuple[IntArray, IntArray | None]:
        """Covers test on the tile's bbox candidates, in id order: the first hit wins.

        Returns the cell per point and, with ``count``, the number of cells covering it.
        Without ``count``, candidates are tested in rounds (first candidate of every point,
        then the second of those still unresolved...), so most points need one test.
        """
        start = self._tile_ptr[tile]
        per_point = self._tile_ptr[tile + 1] - start
        point = np.repeat(np.arange(x.size), per_point)
        local = np.arange(point.size) - np.repeat(np.cumsum(per_point) - per_point, per_point)
        cell = self._tile_cells[np.repeat(start, per_point) + local]
        px, py = x[point], y[point]
        near = (
            (px >= self._bx0[cell])
            & (px <= self._bx1[cell])
            & (py >= self._by0[cell])
            & (py <= self._by1[cell])
        )
        point, cell, px, py = point[near], cell[near], px[near], py[near]
        result = np.full(x.size, -1, dtype=np.int64)
        if count:
            hit = shapely.intersects_xy(self._geoms[cell], px, py)
            point, cell = point[hit], cell[hit]
            first = np.ones(point.size, dtype=bool)
            first[1:] = point[1:] != point[:-1]
            result[point[first]] = cell[first]
            return result, np.bincount(point, minlength=x.size).astype(np.int64)
        group = np.flatnonzero(np.r_[True, point[1:] != point[:-1]]) if point.size else point
        sizes = np.diff(np.r_[group, point.size])
        rank_in_group = np.arange(point.size) - np.repeat(group, sizes)
        pending = np.ones(x.size, dtype=bool)
        for k in range(int(sizes.max()) if sizes.size else 0):
            sel = np.flatnonzero((rank_in_group == k) & pending[point])
            hit = sel[shapely.intersects_xy(self._geoms[cell[sel]], px[sel], py[sel])]
            result[point[hit]] = cell[hit]
            pending[point[hit]] = False
        return result, None

    def assign(
        self,
        lon: npt.ArrayLike,
        lat: npt.ArrayLike,
        *,
        crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    ) -> IntArray:
        """Return the index of the cell covering each point, ``-1`` outside every cell.

        Parameters
        ----------
        lon, lat
            Point coordinates in degrees (arrays of equal shape, or scalars), in ``crs``.
        crs
            ``"wgs84"`` (default), ``"gcj02"`` or ``"bd09"``; converted to WGS84 first.

        Returns
        -------
        numpy.ndarray of int64
            Cell index (position in the input geometries) per point, ties to the lowest id
            (see the module docstring); ``-1`` for points outside every cell or with non-finite
            coordinates.

        Raises
        ------
        gis.errors.InputError
            Field ``lat`` when the shapes differ, ``lon``/``lat`` for non-numeric values,
            ``crs`` for an unknown system.
        """
        x, y = self._points(lon, lat, crs)
        x0, y0, x1, y1 = self._extent
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        result = np.full(x.shape, -1, dtype=np.int64)
        where = np.flatnonzero(inside)
        xi, yi = x[where], y[where]
        ix = np.minimum(((xi - x0) / self._dx).astype(np.int64), self._nx - 1)
        iy = np.minimum(((yi - y0) / self._dy).astype(np.int64), self._ny - 1)
        cells = self._bucket_cell[iy * self._nx + ix].astype(np.int64)
        mixed = np.flatnonzero(cells == _MIXED)
        if mixed.size:
            cells[mixed] = self._assign_exact(
                xi[mixed], yi[mixed], self._tile_of(ix[mixed], iy[mixed])
            )[0]
        result[where] = cells
        return result

    def near_boundary(
        self,
        lon: npt.ArrayLike,
        lat: npt.ArrayLike,
        cells: npt.ArrayLike | None = None,
        *,
        threshold_m: float = 10.0,
        crs: CoordinateSystem | str = CoordinateSystem.WGS84,
    ) -> NearBoundary:
        """Find, for each point, the nearest other cell within ``threshold_m`` metres.

        Distances are straight distances computed in the UTM zone of the cells' centre
        (:attr:`utm_epsg`), in metres.

        Parameters
        ----------
        lon, lat
            Point coordinates in degrees, in ``crs``.
        cells
            Each point's own cell as returned by :meth:`assign` (computed when omitted).
            For a point outside every cell (``-1``) every cell counts as "other".
        threshold_m
            Search distance in metres (default 10, the usual confirmation distance).
        crs
            Coordinate system of the points.

        Returns
        -------
        NearBoundary

        Raises
        ------
        gis.errors.InputError
            Field ``threshold_m`` for a negative or non-finite distance, ``cells`` for a shape
            mismatch, plus the errors of :meth:`assign`.
        """
        if not (math.isfinite(threshold_m) and threshold_m >= 0):
            msg = f"must be a finite distance >= 0 in metres, got {threshold_m!r}"
            raise InputError("threshold_m", msg)
        x, y = self._points(lon, lat, crs)
        if cells is None:
            own = self.assign(x, y)
        else:
            own = np.asarray(cells, dtype=np.int64).reshape(-1)
            if own.shape != x.shape:
                msg = f"expected one cell per point ({x.size}), got shape {np.shape(cells)}"
                raise InputError("cells", msg)
        other = np.full(x.shape, -1, dtype=np.int64)
        distance = np.full(x.shape, np.nan, dtype=np.float64)
        wanted = np.isfinite(x) & np.isfinite(y)
        if not self._overlapping:
            wanted &= self._maybe_near(x, y, threshold_m)
        finite = np.flatnonzero(wanted)
        if finite.size == 0:
            return NearBoundary(other, distance)
        to_utm, utm_geoms, utm_tree = self._metric
        ux, uy = to_utm.transform(x[finite], y[finite])
        if self._overlapping:
            # A point may lie inside another cell: ask GEOS for true polygon distances.
            points = shapely.points(ux, uy)
            pi, ci = utm_tree.query(points, predicate="dwithin", distance=threshold_m)
            keep = ci != own[finite][pi]
            pi, ci = pi[keep], ci[keep]
            d = shapely.distance(utm_geoms[ci], points[pi])
        else:
            pi, ci, d = self._boundary_distances(
                np.asarray(ux), np.asarray(uy), own[finite], threshold_m
            )
        if pi.size:
            sort = np.lexsort((self._rank[ci], d, pi))
            pi, ci, d = pi[sort], ci[sort], d[sort]
            first = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
            other[finite[pi[first]]] = ci[first]
            distance[finite[pi[first]]] = d[first]
        return NearBoundary(other, distance)

    @cached_property
    def _segments(self) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
        """Boundary segments in UTM metres: start (n, 2), end (n, 2), cell, second cell or -1.

        An edge shared by exactly two cells is kept once, with both cells.
        """
        _, utm_geoms, _ = self._metric
        parts, part_cell = shapely.get_parts(utm_geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, ring_of = shapely.get_coordinates(rings, return_index=True)
        same = ring_of[:-1] == ring_of[1:]
        cell = part_cell[ring_part[ring_of[:-1][same]]].astype(np.int64)
        start, end = coords[:-1][same], coords[1:][same]
        # Orient every segment the same way, then find runs of identical segments.
        flip = (start[:, 0] > end[:, 0]) | ((start[:, 0] == end[:, 0]) & (start[:, 1] > end[:, 1]))
        start, end = np.where(flip[:, None], end, start), np.where(flip[:, None], start, end)
        order = np.lexsort((end[:, 1], end[:, 0], start[:, 1], start[:, 0]))
        start, end, cell = start[order], end[order], cell[order]
        equal = np.all(start[1:] == start[:-1], axis=1) & np.all(end[1:] == end[:-1], axis=1)
        run_start = np.flatnonzero(np.r_[True, ~equal])
        run_length = np.diff(np.r_[run_start, cell.size])
        pair = run_start[run_length == 2]
        second = np.full(cell.size, -1, dtype=np.int64)
        second[pair] = cell[pair + 1]
        keep = np.ones(cell.size, dtype=bool)
        keep[pair + 1] = False
        return start[keep], end[keep], cell[keep], second[keep]

    def _boundary_distances(
        self, ux: FloatArray, uy: FloatArray, own: IntArray, threshold_m: float
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """(point, other cell, metres) for boundary segments of other cells within the threshold.

        Without overlaps a point lies in no other cell, so its distance to another cell is the
        distance to that cell's boundary. Segments are cut into pieces no longer than a hash
        cell of side ``g = 2 * threshold``; a piece within the threshold of a point has its
        midpoint within ``g`` of it, so it is found in the point's hash cell or a neighbour.
        """
        start, end, seg_cell, seg_second = self._segments
        side = max(2.0 * threshold_m, 1.0) * (1.0 + 1e-6)
        # A larger side stays correct (side >= 2 * threshold); it bounds the hash table size.
        span = max(
            float(np.ptp(np.r_[start[:, 0], ux])), float(np.ptp(np.r_[start[:, 1], uy])), 1.0
        )
        side = max(side, span / 2_000.0)
        delta = end - start
        pieces = np.maximum(np.ceil(np.hypot(delta[:, 0], delta[:, 1]) / side), 1).astype(np.int64)
        seg = np.repeat(np.arange(pieces.size), pieces)
        k = np.arange(seg.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        total = pieces[seg]
        q0 = start[seg] + delta[seg] * (k / total)[:, None]
        q1 = start[seg] + delta[seg] * ((k + 1) / total)[:, None]
        # Keep the original vertices exact, so shared vertices give exactly 0 m.
        q0[k == 0] = start[seg[k == 0]]
        q1[k + 1 == total] = end[seg[k + 1 == total]]
        mid = (q0 + q1) / 2.0
        ox, oy = float(min(mid[:, 0].min(), ux.min())), float(min(mid[:, 1].min(), uy.min()))
        hx = np.floor((mid[:, 0] - ox) / side).astype(np.int64) + 1
        hy = np.floor((mid[:, 1] - oy) / side).astype(np.int64) + 1
        px = np.floor((ux - ox) / side).astype(np.int64) + 1
        py = np.floor((uy - oy) / side).astype(np.int64) + 1
        rows = int(max(hy.max(), py.max())) + 2
        cols = int(max(hx.max(), px.max())) + 2
        # Dense table of pieces per hash cell (CSR); indices 0 and max+1 stay empty borders.
        key = hx * rows + hy
        order = np.argsort(key, kind="stable")
        ptr = np.zeros(rows * cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=rows * cols), out=ptr[1:])
        point_parts: list[IntArray] = []
        piece_parts: list[IntArray] = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                wanted = (px + dx) * rows + (py + dy)
                lo = ptr[wanted]
                count = ptr[wanted + 1] - lo
                point = np.repeat(np.arange(ux.size), count)
                local = np.arange(point.size) - np.repeat(np.cumsum(count) - count, count)
                point_parts.append(point)
                piece_parts.append(order[np.repeat(lo, count) + local])
        point = np.concatenate(point_parts)
        piece = np.concatenate(piece_parts)
        first, second = seg_cell[seg[piece]], seg_second[seg[piece]]
        mine = own[point]
        useful = (first != mine) | ((second >= 0) & (second != mine))
        point, piece, first, second = point[useful], piece[useful], first[useful], second[useful]
        # Distance from each point to its candidate piece (clamped projection).
        ax, ay = q0[piece, 0], q0[piece, 1]
        bx, by = q1[piece, 0] - ax, q1[piece, 1] - ay
        wx, wy = ux[point] - ax, uy[point] - ay
        length2 = bx * bx + by * by
        t = np.clip(
            np.divide(wx * bx + wy * by, length2, out=np.zeros_like(length2), where=length2 > 0),
            0.0,
            1.0,
        )
        d = np.hypot(wx - t * bx, wy - t * by)
        close = d <= threshold_m
        point, first, second, d = point[close], first[close], second[close], d[close]
        mine = own[point]
        use_first = first != mine
        use_second = (second >= 0) & (second != mine)
        return (
            np.concatenate([point[use_first], point[use_second]]),
            np.concatenate([first[use_first], second[use_second]]),
            np.concatenate([d[use_first], d[use_second]]),
        )

    def _maybe_near(
        self, x: FloatArray, y: FloatArray, threshold_m: float
    ) -> npt.NDArray[np.bool_]:
        """Flag points that may have another cell within ``threshold_m``; the rest have none.

        A point is cleared when its bucket and every bucket up to the threshold away are
        boundary-free: every point within the threshold is then covered by the same cells as
        the point itself, so no other cell is that near (valid only when no two cells overlap).
        """
        x0, y0, _, y1 = self._extent
        # Shortest bucket side in metres, with room for UTM scale error.
        metres_x = 111_000.0 * math.cos(math.radians(min(max(abs(y0), abs(y1)), 89.0)))
        bucket_m = min(self._dx * metres_x, self._dy * 110_000.0) / 1.01
        # |x_q - x_p| <= t implies their bucket columns differ by at most ceil(t / bucket).
        reach = max(math.ceil(threshold_m / bucket_m), 1)
        mixed = (self._bucket_cell == _MIXED).reshape(self._ny, self._nx)
        grown = ndimage.binary_dilation(
            mixed, structure=np.ones((3, 3), dtype=bool), iterations=reach
        ).ravel()
        ix = np.floor((np.nan_to_num(x, nan=x0 - 1e9) - x0) / self._dx)
        iy = np.floor((np.nan_to_num(y, nan=y0 - 1e9) - y0) / self._dy)
        in_raster = (ix >= 0) & (ix < self._nx) & (iy >= 0) & (iy < self._ny)
        around = (ix >= -reach) & (ix < self._nx + reach) & (iy >= -reach) & (iy < self._ny + reach)
        result = around & ~in_raster
        where = np.flatnonzero(in_raster)
        result[where] = grown[iy[where].astype(np.int64) * self._nx + ix[where].astype(np.int64)]
        return np.asarray(result)

    def _points(
        self, lon: npt.ArrayLike, lat: npt.ArrayLike, crs: CoordinateSystem | str
    ) -> tuple[FloatArray, FloatArray]:
        system = parse_crs(crs)
        try:
            x = np.asarray(lon, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            msg = "expected numbers"
            raise InputError("lon", msg) from None
        try:
            y = np.asarray(lat, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            msg = "expected numbers"
            raise InputError("lat", msg) from None
        if x.shape != y.shape:
            msg = f"shape {y.shape} does not match lon shape {x.shape}"
            raise InputError("lat", msg)
        if system is CoordinateSystem.WGS84:
            return x, y
        # Convert only the valid points; the rest stay non-finite and end up -1.
        ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90)
        wx = np.full(x.shape, np.nan)
        wy = np.full(y.shape, np.nan)
        if ok.any():
            cx, cy = to_wgs84(x[ok], y[ok], system)
            wx[ok], wy[ok] = cx, cy
        return wx, wy
