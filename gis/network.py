"""The walking network: streets and footpaths as a compact graph in metres.

Lines (OSM ways, not noded) become a graph split at shared vertices only: two ways meet
where they share a vertex (coordinates equal after rounding to ``tolerance_m``), never where
they merely cross, so a bridge over a road or a tunnel under it stays apart. Walls and fences
cut the ways that cross them except at a gate, which makes a gated compound (封闭小区)
reachable only through its gates.

The graph is held as a symmetric :class:`scipy.sparse.csr_array` of edge lengths in metres
in a local UTM CRS (chosen with pyproj from the data's extent). Points (stairwells,
facilities) snap to the nearest point on the nearest edge; a snapped point is described by
its edge and its distance ``t`` from the edge's first node, which lets distances be
computed exactly from the two edge endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from pyproj import CRS
from scipy import sparse
from scipy.sparse import csgraph

from gis.errors import InputError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Ways a pedestrian may not use whatever their other tags say.
EXCLUDED_HIGHWAYS = frozenset(
    {"motorway", "motorway_link", "construction", "proposed", "abandoned", "platform", "raceway"}
)
NO_ACCESS = frozenset({"no", "private"})
FOOT_ALLOWED = frozenset({"yes", "designated", "permissive"})
BARRIER_LINES = ("wall", "fence", "city_wall")
GATE_BARRIERS = ("gate", "lift_gate", "swing_gate", "sliding_gate", "entrance", "turnstile")


class NetworkSettings(BaseSettings):
    """Defaults of the walking network (env prefix ``WANGGE_NETWORK_``)."""

    model_config = SettingsConfigDict(env_prefix="WANGGE_NETWORK_", extra="ignore")

    # Vertices closer than this (after rounding) are the same intersection.
    tolerance_m: float = Field(default=0.01, gt=0)
    # A point farther than this from every walkable way is reported as not on the network.
    max_snap_m: float = Field(default=200.0, gt=0)
    # A way crosses a wall or fence freely only where a gate lies this close to the crossing.
    gate_radius_m: float = Field(default=2.0, gt=0)
    # Keep ways tagged access/foot=private: the residents' own view of their compound.
    keep_private: bool = False


@dataclass(frozen=True)
class _Sources:
    """What a network was built from, kept so that gates can be closed and reopened."""

    lines: NDArray[np.object_]
    line_ids: NDArray[np.object_]
    barriers: NDArray[np.object_]
    gates: NDArray[np.object_]
    gate_ids: NDArray[np.object_]
    tolerance_m: float
    gate_radius_m: float
    max_snap_m: float


@dataclass
class WalkNetwork:
    """A walking graph in a projected CRS (metres).

    Build it with :meth:`from_lines`. Nodes are intersections and dead ends; each edge is a
    polyline between two nodes made of straight segments.

    Attributes
    ----------
    crs
        The projected CRS of every coordinate and length (a UTM zone).
    node_xy
        ``(n_nodes, 2)`` node coordinates.
    edge_u, edge_v
        First and last node of each edge.
    edge_length
        Edge lengths in metres.
    edge_way
        Id of the input way each edge comes from.
    graph
        Symmetric CSR adjacency of shape ``(n_nodes, n_nodes)``, values in metres (the
        shortest of parallel edges).
    component
        Connected-component label of each node.
    rejected
        Input ways left out, one row each: ``way``, ``reason``.
    cuts
        Places where a wall or fence cut a way (``x``, ``y``, ``way``).
    """

    crs: CRS
    node_xy: FloatArray
    edge_u: IntArray
    edge_v: IntArray
    edge_length: FloatArray
    edge_way: NDArray[np.object_]
    graph: sparse.csr_array
    component: IntArray
    rejected: pd.DataFrame
    cuts: pd.DataFrame
    seg_edge: IntArray = field(repr=False)
    seg_offset: FloatArray = field(repr=False)
    seg_geom: NDArray[np.object_] = field(repr=False)
    _tree: shapely.STRtree = field(repr=False)
    _seg_a: FloatArray = field(repr=False)
    _seg_b: FloatArray = field(repr=False)
    _barrier_tree: shapely.STRtree | None = field(repr=False)
    _sources: _Sources = field(repr=False)

    @property
    def n_nodes(self) -> int:
        """Number of graph nodes."""
        return int(self.node_xy.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of edges (polylines between nodes)."""
        return int(self.edge_u.shape[0])

    @classmethod
    def from_lines(
        cls,
        lines: gpd.GeoDataFrame,
        *,
        barriers: gpd.GeoDataFrame | None = None,
        gates: gpd.GeoDataFrame | None = None,
        crs: CRS | str | int | None = None,
        id_column: str | None = "osm_id",
        settings: NetworkSettings | None = None,
    ) -> WalkNetwork:
        """Build the walking network from street and footpath lines.

        Parameters
        ----------
        lines
            Ways as LineString or MultiLineString rows, in any CRS that is set. Optional
            columns ``highway``, ``foot``, ``access`` decide walkability: motorways and
            construction are dropped, as are ``foot=no|private`` and ``access=no|private``
            unless ``foot`` is ``yes|designated|permissive`` (``private`` is kept with
            ``settings.keep_private``).
        barriers
            Walls and fences (lines, or polygons whose boundaries are used). A way segment
            crossing one is cut at the crossing unless a gate lies within
            ``gate_radius_m``; a barrier that only ends on a way does not cut it.
        gates
            Gate points; their index values are the gate ids used by :meth:`close_gates`.
        crs
            Projected CRS in metres to work in; by default the UTM zone of the data.
        id_column
            Column naming each way in reports (the row index when absent or None).
        settings
            Tolerance, snapping and gate defaults.

        Returns
        -------
        WalkNetwork

        Raises
        ------
        InputError
            If ``lines`` has no CRS, or no walkable way with a valid geometry remains
            (field ``lines``).
        """
        settings = settings or NetworkSettings()
        if lines.crs is None:
            raise InputError("lines", "the street layer has no CRS; set it (WGS84 is EPSG:4326)")
        work_crs = CRS.from_user_input(crs) if crs is not None else lines.estimate_utm_crs()
        if not work_crs.is_projected:
            raise InputError("crs", f"{work_crs.name} is not a projected CRS in metres")
        ids = (
            lines[id_column].to_numpy(dtype=object)
            if id_column and id_column in lines.columns
            else lines.index.to_numpy(dtype=object)
        )
        keep, rejected = _walkable(lines, ids, keep_private=settings.keep_private)
        kept = lines.loc[keep]
        geoms = kept.geometry.to_crs(work_crs).to_numpy()
        parts, part_of = shapely.get_parts(geoms, return_index=True)
        parts_ids = ids[keep][part_of]
        barrier_geoms = _barrier_lines(barriers, work_crs)
        gate_geoms, gate_ids = _gate_points(gates, work_crs)
        sources = _Sources(
            lines=np.asarray(parts, dtype=object),
            line_ids=np.asarray(parts_ids, dtype=object),
            barriers=barrier_geoms,
            gates=gate_geoms,
            gate_ids=gate_ids,
            tolerance_m=settings.tolerance_m,
            gate_radius_m=settings.gate_radius_m,
            max_snap_m=settings.max_snap_m,
        )
        return cls._build(work_crs, sources, rejected)

    @classmethod
    def _build(cls, work_crs: CRS, src: _Sources, rejected: pd.DataFrame) -> WalkNetwork:
        coords, line_of = shapely.get_coordinates(src.lines, return_index=True)
        if coords.shape[0] < 2:
            raise InputError("lines", "no walkable way with a valid geometry")
        keys = np.round(coords / src.tolerance_m).astype(np.int64)
        vkeys, vid = _unique_rows(keys)
        vxy = vkeys.astype(np.float64) * src.tolerance_m
        same_line = line_of[1:] == line_of[:-1]
        a = vid[:-1][same_line]
        b = vid[1:][same_line]
        seg_line = line_of[:-1][same_line].astype(np.int64)
        nonzero = a != b
        a, b, seg_line = a[nonzero], b[nonzero], seg_line[nonzero]
        axy, bxy = vxy[a], vxy[b]
        cuts = pd.DataFrame({"x": [], "y": [], "way": []})
        if len(src.barriers):
            a, b, seg_line, axy, bxy, vxy, cuts = _cut_at_barriers(
                a, b, seg_line, axy, bxy, vxy, src
            )
        if a.shape[0] == 0:
            raise InputError("lines", "no walkable way with a valid geometry")
        seg_len = np.hypot(*(bxy - axy).T)
        n_vertices = vxy.shape[0]
        degree = np.bincount(a, minlength=n_vertices) + np.bincount(b, minlength=n_vertices)
        starts = np.ones(a.shape[0], dtype=bool)
        starts[1:] = (seg_line[1:] != seg_line[:-1]) | (a[1:] != b[:-1]) | (degree[a[1:]] != 2)
        seg_edge = np.cumsum(starts) - 1
        n_edges = int(seg_edge[-1]) + 1
        edge_length = np.bincount(seg_edge, weights=seg_len, minlength=n_edges).astype(np.float64)
        first = np.flatnonzero(starts)
        last = np.r_[first[1:] - 1, a.shape[0] - 1]
        cum = np.cumsum(seg_len)
        seg_offset = cum - seg_len - (cum - seg_len)[first][seg_edge]
        node_vertex, ends = np.unique(np.r_[a[first], b[last]], return_inverse=True)
        edge_u = ends[:n_edges].astype(np.int64)
        edge_v = ends[n_edges:].astype(np.int64)
        node_xy = vxy[node_vertex]
        graph = _adjacency(edge_u, edge_v, edge_length, node_xy.shape[0])
        _, component = csgraph.connected_components(graph, directed=False)
        seg_geom = _segments(axy, bxy)
        return cls(
            crs=work_crs,
            node_xy=node_xy,
            edge_u=edge_u,
            edge_v=edge_v,
            edge_length=edge_length,
            edge_way=src.line_ids[seg_line[first]],
            graph=graph,
            component=component.astype(np.int64),
            rejected=rejected,
            cuts=cuts,
            seg_edge=seg_edge.astype(np.int64),
            seg_offset=seg_offset,
            seg_geom=seg_geom,
            _tree=shapely.STRtree(seg_geom),
            _seg_a=axy,
            _seg_b=bxy,
            _barrier_tree=shapely.STRtree(src.barriers) if len(src.barriers) else None,
            _sources=src,
        )

    def components(self) -> pd.DataFrame:
        """Report the connected pieces of the network, largest first.

        Returns
        -------
        pandas.DataFrame
            One row per component: ``component``, ``nodes``, ``edges``, ``length_m``.
        """
        edge_comp = self.component[self.edge_u]
        n_comp = int(self.component.max()) + 1
        table = pd.DataFrame(
            {
                "component": np.arange(n_comp),
                "nodes": np.bincount(self.component, minlength=n_comp),
                "edges": np.bincount(edge_comp, minlength=n_comp),
                "length_m": np.bincount(edge_comp, weights=self.edge_length, minlength=n_comp),
            }
        )
        return table.sort_values("length_m", ascending=False, ignore_index=True)

    def snap(
        self, points: gpd.GeoSeries | gpd.GeoDataFrame, *, max_snap_m: float | None = None
    ) -> Snap:
        """Snap points to the nearest point on the nearest edge.

        Parameters
        ----------
        points
            Points in any set CRS (transformed to the network CRS).
        max_snap_m
            Points farther than this (metres) from every edge are flagged ``too_far``;
            by default the ``max_snap_m`` of the network's settings (200 m).

        A point never snaps across a wall or fence: its snap leg (the straight walk from
        the point to the network) may not cross a barrier, so a stairwell inside a walled
        compound snaps to the compound's own ways even when the street outside is nearer.
        A point with no such way within ``max_snap_m`` keeps its nearest snap and is
        flagged ``crosses_barrier``.

        Returns
        -------
        Snap
            Per point (index kept): ``edge``, ``t`` (metres from the edge's first node
            along the edge), ``snap_m`` (metres from the point to the network), ``x``, ``y``
            (snapped point), ``component``, ``too_far``, ``crosses_barrier``.

        Raises
        ------
        InputError
            If ``points`` has no CRS or holds empty or non-point geometries (field
            ``points``, naming the first bad row).
        """
        geo = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
        if geo.crs is None:
            raise InputError("points", "the point layer has no CRS")
        arr = geo.to_crs(self.crs).to_numpy()
        bad = shapely.is_empty(arr) | (shapely.get_type_id(arr) != 0) | shapely.is_missing(arr)
        if bad.any():
            row = geo.index[int(np.flatnonzero(bad)[0])]
            raise InputError(f"points[{row}]", "not a point geometry")
        if max_snap_m is None:
            max_snap_m = self._sources.max_snap_m
        if len(arr) == 0:
            return Snap(_empty_snap(geo.index))
        pxy = shapely.get_coordinates(arr)
        seg = self._nearest_segment(pxy)
        crosses = np.zeros(len(arr), dtype=bool)
        if self._barrier_tree is not None:
            crosses = self._leg_crosses(pxy, seg)
            if crosses.any():
                rows = np.flatnonzero(crosses)
                inside = self._nearest_free_segment(pxy[rows], max_snap_m)
                found = inside >= 0
                seg[rows[found]] = inside[found]
                crosses[rows[found]] = False
        xy, dist = self._project(pxy, seg)
        s = np.hypot(*(xy - self._seg_a[seg]).T)
        edge = self.seg_edge[seg]
        frame = pd.DataFrame(
            {
                "edge": edge,
                "t": np.minimum(self.seg_offset[seg] + s, self.edge_length[edge]),
                "snap_m": dist,
                "x": xy[:, 0],
                "y": xy[:, 1],
                "component": self.component[self.edge_u[edge]],
                "too_far": dist > max_snap_m,
                "crosses_barrier": crosses,
            },
            index=geo.index,
        )
        return Snap(frame)

    def _project(self, pxy: FloatArray, seg: IntArray) -> tuple[FloatArray, FloatArray]:
        """Nearest point of each segment to each point, and the distance to it."""
        a = self._seg_a[seg]
        d = self._seg_b[seg] - a
        frac = np.clip(((pxy - a) * d).sum(axis=1) / (d * d).sum(axis=1), 0.0, 1.0)
        xy = a + frac[:, None] * d
        return xy, np.hypot(*(pxy - xy).T)

    def _leg_crosses(self, pxy: FloatArray, seg: IntArray) -> NDArray[np.bool_]:
        """Whether the straight walk from each point to its segment crosses a barrier."""
        assert self._barrier_tree is not None
        xy, _ = self._project(pxy, seg)
        legs = shapely.linestrings(np.stack([pxy, xy], axis=1))
        hit, _ = self._barrier_tree.query(legs, predicate="crosses")
        out = np.zeros(pxy.shape[0], dtype=bool)
        out[hit] = True
        return out

    def _nearest_free_segment(self, pxy: FloatArray, radius: float) -> IntArray:
        """Nearest segment within ``radius`` reached without crossing a barrier, or -1."""
        boxes = shapely.box(
            pxy[:, 0] - radius, pxy[:, 1] - radius, pxy[:, 0] + radius, pxy[:, 1] + radius
        )
        inp, cand = self._tree.query(boxes)
        seg = np.full(pxy.shape[0], -1, dtype=np.int64)
        if inp.shape[0] == 0:
            return seg
        _, dist = self._project(pxy[inp], cand)
        ok = (dist <= radius) & ~self._leg_crosses(pxy[inp], cand)
        inp, cand, dist = inp[ok], cand[ok], dist[ok]
        order = np.lexsort((cand, dist, inp))
        inp, cand = inp[order], cand[order]
        first = np.r_[True, inp[1:] != inp[:-1]] if inp.shape[0] else inp.astype(bool)
        seg[inp[first]] = cand[first]
        return seg

    def _nearest_segment(
        self, pxy: FloatArray, radii: tuple[float, ...] = (25.0, 100.0)
    ) -> IntArray:
        """Index of the nearest segment of every point (ties: the first candidate found).

        Segments whose boxes meet a square of each radius in turn around a point are
        measured exactly; points with nothing that close fall back to the tree's nearest
        search.
        """
        seg = np.full(pxy.shape[0], -1, dtype=np.int64)
        rest = np.arange(pxy.shape[0])
        for radius in radii:
            found = self._nearest_within(pxy[rest], radius)
            seg[rest] = found
            rest = rest[found < 0]
            if rest.shape[0] == 0:
                return seg
        (inp2, hit), _ = self._tree.query_nearest(
            shapely.points(pxy[rest]), return_distance=True, all_matches=False
        )
        seg[rest[inp2]] = hit
        return seg

    def _nearest_within(self, pxy: FloatArray, radius: float) -> IntArray:
        """Nearest segment of every point when it lies within ``radius``, else -1."""
        boxes = shapely.box(
            pxy[:, 0] - radius, pxy[:, 1] - radius, pxy[:, 0] + radius, pxy[:, 1] + radius
        )
        inp, cand = self._tree.query(boxes)
        seg = np.full(pxy.shape[0], -1, dtype=np.int64)
        if inp.shape[0] == 0:
            return seg
        _, dist = self._project(pxy[inp], cand)
        if (np.diff(inp) < 0).any():
            order = np.argsort(inp, kind="stable")
            inp, cand, dist = inp[order], cand[order], dist[order]
        new_point = np.r_[True, inp[1:] != inp[:-1]]
        starts = np.flatnonzero(new_point)
        group = np.cumsum(new_point) - 1
        is_best = dist == np.minimum.reduceat(dist, starts)[group]
        before = np.cumsum(is_best) - is_best
        first = is_best & (before == before[starts][group])
        # Only a hit within the radius is sure to be the nearest of all segments.
        sure = first & (dist <= radius)
        seg[inp[sure]] = cand[sure]
        return seg

    def close_gates(self, ids: Iterable[Any]) -> WalkNetwork:
        """Return the network with the named gates closed (a what-if: gates shut at night).

        A closed gate no longer lets ways through walls and fences, and also blocks the
        way it stands on (a ring of ``gate_radius_m`` around it acts as a barrier).

        Parameters
        ----------
        ids
            Gate ids (index values of the ``gates`` given to :meth:`from_lines`).

        Returns
        -------
        WalkNetwork
            A new network; this one is unchanged.

        Raises
        ------
        InputError
            If an id names no gate (field ``ids``).
        """
        src = self._sources
        wanted = list(ids)
        known = set(src.gate_ids.tolist())
        missing = [g for g in wanted if g not in known]
        if missing:
            raise InputError("ids", f"no gate with id {missing[0]!r}")
        closed = np.isin(src.gate_ids, np.asarray(wanted, dtype=object))
        rings = shapely.boundary(shapely.buffer(src.gates[closed], src.gate_radius_m))
        new = replace(
            src,
            barriers=np.concatenate([src.barriers, np.asarray(rings, dtype=object)]),
            gates=src.gates[~closed],
            gate_ids=src.gate_ids[~closed],
        )
        return WalkNetwork._build(self.crs, new, self.rejected)

    def add_gates(self, gates: gpd.GeoDataFrame) -> WalkNetwork:
        """Return the network with more gates (a what-if: a new opening in a wall).

        Parameters
        ----------
        gates
            Gate points in any set CRS; their index values become gate ids.

        Returns
        -------
        WalkNetwork
            A new network; this one is unchanged. Ways crossing a wall within
            ``gate_radius_m`` of a new gate pass through it.

        Raises
        ------
        InputError
            If ``gates`` has no CRS, or an id is already taken (field ``gates``).
        """
        src = self._sources
        geoms, ids = _gate_points(gates, self.crs)
        taken = set(src.gate_ids.tolist()) & set(ids.tolist())
        if taken:
            raise InputError("gates", f"gate id {sorted(taken, key=str)[0]!r} already exists")
        new = replace(
            src,
            gates=np.concatenate([src.gates, geoms]),
            gate_ids=np.concatenate([src.gate_ids, ids]),
        )
        return WalkNetwork._build(self.crs, new, self.rejected)


@dataclass(frozen=True)
class Snap:
    """Points snapped to a :class:`WalkNetwork` (see :meth:`WalkNetwork.snap`)."""

    COLUMNS = ("edge", "t", "snap_m", "x", "y", "component", "too_far", "crosses_barrier")
    frame: pd.DataFrame

    def report(self) -> pd.DataFrame:
        """Return the points farther than the snapping limit, farthest first."""
        far = self.frame.loc[self.frame["too_far"].astype(bool), ["snap_m"]]
        return far.sort_values("snap_m", ascending=False)


def _empty_snap(index: pd.Index) -> pd.DataFrame:
    dtypes = {"edge": "int64", "t": "float64", "snap_m": "float64", "x": "float64"}
    dtypes |= {"y": "float64", "component": "int64", "too_far": "bool", "crosses_barrier": "bool"}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in Snap.COLUMNS}, index=index)


def _unique_rows(keys: IntArray) -> tuple[IntArray, IntArray]:
    """Return the unique rows of an ``(n, 2)`` integer array and the row of each input."""
    low = keys.min(axis=0)
    span = keys.max(axis=0) - low + 1
    if float(span[0]) * float(span[1]) < 2.0**62:
        # One integer per vertex: far faster than np.unique(axis=0).
        flat = (keys[:, 0] - low[0]) * span[1] + (keys[:, 1] - low[1])
        uniq, inverse = np.unique(flat, return_inverse=True)
        rows = np.stack([uniq // span[1] + low[0], uniq % span[1] + low[1]], axis=1)
        return rows.astype(np.int64), inverse.reshape(-1).astype(np.int64)
    rows, inverse = np.unique(keys, axis=0, return_inverse=True)
    return rows.astype(np.int64), inverse.reshape(-1).astype(np.int64)


def _segments(axy: FloatArray, bxy: FloatArray) -> NDArray[np.object_]:
    return np.asarray(shapely.linestrings(np.stack([axy, bxy], axis=1)), dtype=object)


def _adjacency(u: IntArray, v: IntArray, length: FloatArray, n: int) -> sparse.csr_array:
    loop = u == v
    rows = np.r_[u[~loop], v[~loop]]
    cols = np.r_[v[~loop], u[~loop]]
    vals = np.r_[length[~loop], length[~loop]]
    # Parallel edges: keep the shortest (a sparse constructor would add them up).
    order = np.lexsort((vals, cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    # Zero-length edges would vanish as explicit zeros; a micrometre keeps them.
    vals = np.maximum(vals[first], 1e-6)
    return sparse.csr_array((vals, (rows[first], cols[first])), shape=(n, n))


def _column(frame: pd.DataFrame, name: str) -> NDArray[np.object_]:
    if name not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    values = frame[name].astype("string").str.strip().str.lower()
    out = values.astype(object).to_numpy().copy()
    out[values.isna().to_numpy()] = None
    return np.asarray(out, dtype=np.object_)


def _walkable(
    lines: gpd.GeoDataFrame, ids: NDArray[np.object_], *, keep_private: bool
) -> tuple[NDArray[np.bool_], Any]:
    highway = _column(lines, "highway")
    foot = _column(lines, "foot")
    access = _column(lines, "access")
    geoms = lines.geometry.to_numpy()
    reasons = np.full(len(lines), None, dtype=object)
    open_ = np.ones(len(lines), dtype=bool)

    def reject(mask: NDArray[np.bool_], reason: str) -> None:
        hit = open_ & mask
        reasons[hit] = reason
        open_[hit] = False

    type_id = shapely.get_type_id(geoms)
    reject(shapely.is_missing(geoms) | shapely.is_empty(geoms), "empty geometry")
    reject(~np.isin(type_id, [1, 5]), "not a line geometry")
    coords, row = shapely.get_coordinates(geoms, return_index=True)
    non_finite = np.bincount(row, weights=~np.isfinite(coords).all(axis=1), minlength=len(lines))
    reject(non_finite > 0, "non-finite coordinates")
    reject(shapely.get_num_coordinates(geoms) < 2, "fewer than two vertices")
    reject(np.isin(highway, list(EXCLUDED_HIGHWAYS)), "not walkable: highway")
    closed = list({"no"} if keep_private else NO_ACCESS)
    reject(np.isin(foot, closed), "not walkable: foot")
    reject(
        np.isin(access, closed) & ~np.isin(foot, list(FOOT_ALLOWED)),
        "not walkable: access",
    )
    keep = open_
    rejected = pd.DataFrame({"way": ids[~keep], "reason": reasons[~keep]})
    return np.asarray(keep, dtype=bool), rejected


def _barrier_lines(barriers: gpd.GeoDataFrame | None, crs: CRS) -> NDArray[np.object_]:
    if barriers is None or len(barriers) == 0:
        return np.empty(0, dtype=object)
    if barriers.crs is None:
        raise InputError("barriers", "the barrier layer has no CRS")
    geoms = barriers.geometry.to_crs(crs).to_numpy()
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    geoms[polygonal] = shapely.boundary(geoms[polygonal])
    # Merge pieces that continue each other, so that an end is a real end of the wall.
    merged = shapely.line_merge(shapely.union_all(geoms))
    return np.asarray(shapely.get_parts(merged), dtype=object)


def _gate_points(
    gates: gpd.GeoDataFrame | None, crs: CRS
) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
    if gates is None or len(gates) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    if gates.crs is None:
        raise InputError("gates", "the gate layer has no CRS")
    geo = gates.geometry.to_crs(crs)
    return np.asarray(geo.to_numpy(), dtype=object), gates.index.to_numpy(dtype=object)


def _cut_at_barriers(
    a: IntArray,
    b: IntArray,
    seg_line: IntArray,
    axy: FloatArray,
    bxy: FloatArray,
    vxy: FloatArray,
    src: _Sources,
) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray, FloatArray, pd.DataFrame]:
    """Cut segments where they cross a barrier away from every gate.

    A cut segment keeps its part before the first blocking crossing and its part after the
    last one, each ending at a new dead-end vertex; what lies between barriers is dropped.
    """
    segs = _segments(axy, bxy)
    tree = shapely.STRtree(src.barriers)
    seg_idx, bar_idx = tree.query(segs, predicate="intersects")
    empty = pd.DataFrame({"x": [], "y": [], "way": []})
    if seg_idx.shape[0] == 0:
        return a, b, seg_line, axy, bxy, vxy, empty
    inter = shapely.intersection(segs[seg_idx], src.barriers[bar_idx])
    parts, part_of = shapely.get_parts(inter, return_index=True)
    is_point = shapely.get_type_id(parts) == 0
    parts, pair = parts[is_point], part_of[is_point]
    hit_seg = seg_idx[pair]
    hit_bar = bar_idx[pair]
    pxy = shapely.get_coordinates(parts)
    # A barrier that merely ends on the way (a fence up to the kerb) does not block it.
    ends = shapely.get_coordinates(
        np.r_[shapely.get_point(src.barriers, 0), shapely.get_point(src.barriers, -1)]
    )
    blocking = np.ones(pxy.shape[0], dtype=bool)
    if ends.shape[0]:
        end_tree = shapely.STRtree(np.asarray(shapely.points(ends), dtype=object))
        near_end, _ = end_tree.query(parts, predicate="dwithin", distance=src.tolerance_m * 10)
        closed_ring = shapely.is_closed(src.barriers[hit_bar[near_end]])
        blocking[near_end[~closed_ring]] = False
    if len(src.gates):
        gate_tree = shapely.STRtree(src.gates)
        near_gate, _ = gate_tree.query(parts, predicate="dwithin", distance=src.gate_radius_m)
        blocking[near_gate] = False
    hit_seg, pxy = hit_seg[blocking], pxy[blocking]
    if hit_seg.shape[0] == 0:
        return a, b, seg_line, axy, bxy, vxy, empty
    seg_len = np.hypot(*(bxy - axy).T)
    d = bxy - axy
    s = ((pxy - axy[hit_seg]) * d[hit_seg]).sum(axis=1) / seg_len[hit_seg]
    s = np.clip(s, 0.0, seg_len[hit_seg])
    cut = np.unique(hit_seg)
    s_min = np.full(a.shape[0], np.inf)
    s_max = np.full(a.shape[0], -np.inf)
    np.minimum.at(s_min, hit_seg, s)
    np.maximum.at(s_max, hit_seg, s)
    eps = src.tolerance_m
    n_v = vxy.shape[0]
    unit = d[cut] / seg_len[cut, None]
    head_keep = s_min[cut] > eps
    tail_keep = s_max[cut] < seg_len[cut] - eps
    head_end = axy[cut] + unit * s_min[cut, None]
    tail_start = axy[cut] + unit * s_max[cut, None]
    n_head, n_tail = int(head_keep.sum()), int(tail_keep.sum())
    head_vid = np.arange(n_v, n_v + n_head)
    tail_vid = np.arange(n_v + n_head, n_v + n_head + n_tail)
    new_vxy = np.r_[vxy, head_end[head_keep], tail_start[tail_keep]]
    keep = np.ones(a.shape[0], dtype=bool)
    keep[cut] = False
    hc, tc = cut[head_keep], cut[tail_keep]
    # Pieces sit in place of their segment so that the order along each way is kept.
    pos = np.r_[np.flatnonzero(keep), hc, tc + 0.5]
    new_a = np.r_[a[keep], a[hc], tail_vid]
    new_b = np.r_[b[keep], head_vid, b[tc]]
    new_line = np.r_[seg_line[keep], seg_line[hc], seg_line[tc]]
    new_axy = np.r_[axy[keep], axy[hc], tail_start[tail_keep]]
    new_bxy = np.r_[bxy[keep], head_end[head_keep], bxy[tc]]
    order = np.argsort(pos, kind="stable")
    cuts = pd.DataFrame({"x": pxy[:, 0], "y": pxy[:, 1], "way": src.line_ids[seg_line[hit_seg]]})
    return (
        new_a[order],
        new_b[order],
        new_line[order],
        new_axy[order],
        new_bxy[order],
        new_vxy,
        cuts,
    )


def barriers_from_osm(
    path: str | Path,
    *,
    barrier_values: Iterable[str] = BARRIER_LINES,
    gate_values: Iterable[str] = GATE_BARRIERS,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Read walls, fences and gates from an OSM file (PBF or XML).

    Parameters
    ----------
    path
        The OSM file.
    barrier_values
        ``barrier=*`` values of ways that cannot be walked through.
    gate_values
        ``barrier=*`` values of nodes that let people through; nodes tagged ``entrance``
        (except ``entrance=emergency``) count as gates too.

    Returns
    -------
    (barriers, gates)
        Two GeoDataFrames in EPSG:4326: barrier lines (``osm_id``, ``barrier``) and gate
        points indexed by OSM node id (``barrier``, ``access``).
    """
    import osmium

    walls: set[str] = set(barrier_values)
    gate_kinds: set[str] = set(gate_values)
    bar_rows: list[tuple[int, str, shapely.LineString]] = []
    gate_rows: list[tuple[int, str, str | None, shapely.Point]] = []
    fp = osmium.FileProcessor(str(path)).with_locations()
    for obj in fp:
        if isinstance(obj, osmium.osm.Node):
            kind = obj.tags.get("barrier")
            entrance = obj.tags.get("entrance")
            if kind in gate_kinds or (entrance is not None and entrance != "emergency"):
                gate_rows.append(
                    (
                        obj.id,
                        kind or f"entrance={entrance}",
                        obj.tags.get("access"),
                        shapely.Point(obj.location.lon, obj.location.lat),
                    )
                )
        elif isinstance(obj, osmium.osm.Way):
            wall = str(obj.tags.get("barrier", ""))
            pts = [(n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
            if wall in walls and len(pts) >= 2:
                bar_rows.append((obj.id, wall, shapely.LineString(pts)))
    barriers = gpd.GeoDataFrame(
        {"osm_id": [r[0] for r in bar_rows], "barrier": [r[1] for r in bar_rows]},
        geometry=[r[2] for r in bar_rows],
        crs="EPSG:4326",
    )
    gates = gpd.GeoDataFrame(
        {"barrier": [r[1] for r in gate_rows], "access": [r[2] for r in gate_rows]},
        geometry=[r[3] for r in gate_rows],
        index=pd.Index([r[0] for r in gate_rows], name="osm_id"),
        crs="EPSG:4326",
    )
    return barriers, gates
