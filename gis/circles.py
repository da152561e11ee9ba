"""The 15-minute service circle (一刻钟服务圈): walking coverage of every stairwell.

For every origin (stairwell or building) and every facility type: the walking distance to
the nearest facility of that type and the number of facilities within each level, both at
the standard radius (GB 50180-2018: 300/500/1000 m) and at minutes x walking speed of a
group (adult, elderly). Distances are network distances from :mod:`gis.network`, computed
exactly from the snapped positions on the edges: one multi-source Dijkstra per type for the
nearest facility, and per facility a Dijkstra bounded by the largest level for the counts,
run on the part of the network that bounded walk can reach.

Where no network exists the fallback is straight-line distance x a detour factor, and every
row it produces says ``method='euclidean_fallback'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
from scipy.spatial import cKDTree

from gis.errors import InputError
from gis.network import WalkNetwork

NETWORK = "network"
FALLBACK = "euclidean_fallback"
STANDARD = "standard"
POPULATION_COLUMNS = ("households", "residents", "elderly")


class CircleSettings(BaseSettings):
    """Levels, speeds and fallback of the service circle (env prefix ``WANGGE_CIRCLE_``).

    Defaults follow GB 50180-2018 (5/10/15-minute levels at 300/500/1000 m) and common
    walking speeds (adults 4.8 km/h, elderly 3.9 km/h).
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_CIRCLE_", extra="ignore")

    # Level in minutes -> standard walking radius in metres.
    standard_radius_m: dict[int, float] = Field(
        default_factory=lambda: {5: 300.0, 10: 500.0, 15: 1000.0}
    )
    # Group -> walking speed in km/h; a level's distance for a group is minutes x speed.
    speeds_kmh: dict[str, float] = Field(default_factory=lambda: {"adult": 4.8, "elderly": 3.9})
    # Straight-line distance x this factor stands in for walking distance without a network.
    detour_factor: float = Field(default=1.3, ge=1.0)
    # Add the walk from each point to the network (its snap distance) to every distance.
    add_snap_distance: bool = True
    # Points farther than this from the network are reported.
    max_snap_m: float = Field(default=200.0, gt=0)
    # Limit of the nearest-facility search in metres; None means the largest level distance.
    nearest_limit_m: float | None = Field(default=None, gt=0)
    # Counting works tile by tile (metres; at least the largest level distance) and in
    # batches of this many facilities.
    tile_m: float = Field(default=1_000.0, gt=0)
    batch: int = Field(default=128, ge=1)


@dataclass(frozen=True)
class Threshold:
    """One level distance: ``basis`` is ``standard`` or a group name."""

    basis: str
    minutes: int
    distance_m: float

    @property
    def column(self) -> str:
        """Name of the count column of this threshold."""
        return f"count_{self.basis}_{self.minutes}"


def thresholds(*, settings: CircleSettings | None = None) -> list[Threshold]:
    """List the level distances: the standard radii, then minutes x speed per group.

    Parameters
    ----------
    settings
        Levels and speeds; defaults when None.

    Returns
    -------
    list of Threshold
        Distances in metres.
    """
    settings = settings or CircleSettings()
    out = [Threshold(STANDARD, m, float(r)) for m, r in sorted(settings.standard_radius_m.items())]
    for group, kmh in settings.speeds_kmh.items():
        out += [
            Threshold(group, m, m * kmh * 1000.0 / 60.0) for m in sorted(settings.standard_radius_m)
        ]
    return out


def coverage(
    origins: gpd.GeoDataFrame | gpd.GeoSeries,
    facilities: gpd.GeoDataFrame,
    network: WalkNetwork | None,
    *,
    type_column: str = "type",
    types: Sequence[str] | None = None,
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """Compute the walking coverage of every origin for every facility type.

    Parameters
    ----------
    origins
        Stairwells (or buildings) as points, any set CRS; their index identifies them.
    facilities
        Facility points with a type column; their index identifies them.
    network
        The walking network; None uses the straight-line fallback for every row.
    type_column
        Column of ``facilities`` holding the facility type.
    types
        Types to report (also those without any facility: distance NaN, counts 0); by
        default the types present.
    settings
        Levels, speeds, fallback and batching.

    Returns
    -------
    pandas.DataFrame
        One row per origin and type: ``origin``, ``type``, ``distance_m`` (metres to the
        nearest facility; NaN when none lies within the search limit), ``facility`` (its
        index value), ``method`` (``network`` or ``euclidean_fallback``), ``snap_m`` and
        ``too_far`` (the origin's distance to the network and whether it exceeds
        ``max_snap_m``), then one ``count_<basis>_<minutes>`` column per threshold.
        ``attrs["far_facilities"]`` lists the facilities farther than ``max_snap_m`` from
        the network.

    Raises
    ------
    InputError
        If a layer has no CRS (``origins``/``facilities``), ``type_column`` is missing, or
        ``types`` names a type twice.
    """
    settings = settings or CircleSettings()
    if type_column not in facilities.columns:
        raise InputError("type_column", f"facilities have no column {type_column!r}")
    for name, layer in (("origins", origins), ("facilities", facilities)):
        if layer.crs is None:
            raise InputError(name, "the layer has no CRS")
    kinds = facilities[type_column].astype(str).to_numpy()
    wanted = list(types) if types is not None else sorted(set(kinds.tolist()))
    if len(set(wanted)) != len(wanted):
        raise InputError("types", "a type is named twice")
    thr = thresholds(settings=settings)
    if network is None:
        table = _euclidean(origins, facilities, kinds, wanted, thr, settings)
        table.attrs["far_facilities"] = []
        return table
    o_snap = network.snap(origins, max_snap_m=settings.max_snap_m).frame
    f_snap = network.snap(facilities, max_snap_m=settings.max_snap_m).frame
    if not settings.add_snap_distance:
        o_snap = o_snap.assign(extra=0.0)
        f_snap = f_snap.assign(extra=0.0)
    else:
        o_snap = o_snap.assign(extra=o_snap["snap_m"])
        f_snap = f_snap.assign(extra=f_snap["snap_m"])
    limit = max(t.distance_m for t in thr)
    nearest_limit = settings.nearest_limit_m or limit
    levels = np.array([t.distance_m for t in thr])
    code = np.full(kinds.shape[0], -1, dtype=np.int64)
    for j, kind in enumerate(wanted):
        code[kinds == kind] = j
    counts, rank = _counts(network, o_snap, f_snap, code, len(wanted), levels, limit, settings)
    n_o, n_t = len(o_snap), len(wanted)
    if n_t == 0:
        table = _empty(thr)
    else:
        dist_all = np.empty(n_t * n_o)
        who_all = np.empty(n_t * n_o, dtype=np.int64)
        for j in range(n_t):
            sel = np.flatnonzero(code == j)
            dist, nearest = _nearest(network, o_snap, f_snap.iloc[sel], nearest_limit)
            dist_all[j * n_o : (j + 1) * n_o] = dist
            found = nearest >= 0
            who = np.full(n_o, -1, dtype=np.int64)
            who[found] = sel[nearest[found]]
            who_all[j * n_o : (j + 1) * n_o] = who
        # Built column by column in one go: a city has millions of rows.
        columns: dict[str, Any] = {
            "origin": np.tile(o_snap.index.to_numpy(), n_t),
            "type": pd.Categorical.from_codes(
                np.repeat(np.arange(n_t), n_o), dtype=pd.CategoricalDtype(wanted)
            ),
            "distance_m": np.where(np.isfinite(dist_all), dist_all, np.nan),
            "facility": _ids(facilities.index, who_all),
            "method": pd.Categorical.from_codes(
                np.zeros(n_t * n_o, dtype=np.int8), dtype=pd.CategoricalDtype([NETWORK])
            ),
            "snap_m": np.tile(o_snap["snap_m"].to_numpy(), n_t),
            "too_far": np.tile(o_snap["too_far"].to_numpy(dtype=bool), n_t),
        }
        for k, t in enumerate(thr):
            columns[t.column] = counts[rank[k]].reshape(-1)
        table = pd.DataFrame(columns, copy=False)
    table.attrs["far_facilities"] = f_snap.index[f_snap["too_far"].astype(bool)].tolist()
    return table


def update_coverage(
    table: pd.DataFrame,
    origins: gpd.GeoDataFrame | gpd.GeoSeries,
    facilities: gpd.GeoDataFrame,
    network: WalkNetwork,
    *,
    touched: gpd.GeoDataFrame,
    type_column: str = "type",
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """Update a coverage table after facilities were added, moved or removed.

    Only the rows of the touched types whose origins lie within the search limit (in a
    straight line, between snapped points) of a touched place are recomputed: a walk is
    never shorter than the straight line, so no other row can change. The answer equals
    a full :func:`coverage` of the new facilities.

    Parameters
    ----------
    table
        The result of :func:`coverage` for ``origins`` before the change (network rows).
    origins
        The same origins (unique index).
    facilities
        All facilities after the change.
    network
        The walking network the table was computed on.
    touched
        The places that changed, with their type: the old position of a moved or removed
        facility and the new position of a moved or added one.
    type_column
        Column of ``facilities`` and ``touched`` holding the type.
    settings
        The settings the table was computed with.

    Returns
    -------
    pandas.DataFrame
        A new table; ``table`` is unchanged.

    Raises
    ------
    InputError
        If the origins' index is not unique (``origins``), ``touched`` lacks the type
        column (``touched``) or the table lacks a touched type (``table``).
    """
    settings = settings or CircleSettings()
    if not origins.index.is_unique:
        raise InputError("origins", "the index must identify each origin once")
    if type_column not in touched.columns:
        raise InputError("touched", f"no column {type_column!r}")
    limit = max(t.distance_m for t in thresholds(settings=settings))
    reach = max(limit, settings.nearest_limit_m or limit)
    out = table.copy()
    if len(touched) == 0 or len(origins) == 0:
        return out
    o_snap = network.snap(origins, max_snap_m=settings.max_snap_m).frame
    t_snap = network.snap(touched, max_snap_m=settings.max_snap_m).frame
    tree = cKDTree(o_snap[["x", "y"]].to_numpy())
    kinds = touched[type_column].astype(str).to_numpy()
    row_of = pd.Series(
        np.arange(len(out)),
        index=pd.MultiIndex.from_arrays(
            [out["origin"].to_numpy(), out["type"].astype(str).to_numpy()]
        ),
    )
    for kind in sorted(set(kinds.tolist())):
        if kind not in set(out["type"].astype(str)):
            raise InputError("table", f"has no rows of type {kind!r}")
        if np.isfinite(reach):
            near = tree.query_ball_point(
                t_snap[["x", "y"]].to_numpy()[kinds == kind], reach, return_sorted=False
            )
            hit = np.unique(np.concatenate([np.asarray(n, dtype=np.int64) for n in near]))
        else:
            hit = np.arange(len(origins))
        if hit.shape[0] == 0:
            continue
        fresh = coverage(
            origins.iloc[hit],
            facilities,
            network,
            type_column=type_column,
            types=[kind],
            settings=settings,
        )
        pos = row_of.loc[list(zip(fresh["origin"], [kind] * len(fresh), strict=True))].to_numpy()
        labels = out.index[pos]
        for col in fresh.columns:
            if col in ("origin", "type", "method"):
                continue
            if out[col].dtype != fresh[col].dtype:
                # e.g. a new facility id of another kind than the old ids
                out[col] = out[col].astype(object)
            out.loc[labels, col] = fresh[col].to_numpy()
    return out


def reachable(
    point: gpd.GeoSeries,
    facilities: gpd.GeoDataFrame,
    network: WalkNetwork,
    *,
    type_column: str = "type",
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """List the facilities within walking reach of one point, nearest first.

    Parameters
    ----------
    point
        One point, in any set CRS.
    facilities
        Facility points with a type column.
    network
        The walking network.
    type_column
        Column of ``facilities`` holding the type.
    settings
        Levels, speeds and the search limit (the largest level distance).

    Returns
    -------
    pandas.DataFrame
        One row per facility within the limit: ``facility`` (index value), ``type``,
        ``distance_m``, ``minutes_<group>`` for every group speed, and ``level_standard``
        (the smallest level whose standard radius covers it; NaN when none).

    Raises
    ------
    InputError
        If ``point`` holds other than one point (``point``) or ``type_column`` is
        missing (``type_column``).
    """
    settings = settings or CircleSettings()
    if len(point) != 1:
        raise InputError("point", f"expected one point, got {len(point)}")
    if type_column not in facilities.columns:
        raise InputError("type_column", f"facilities have no column {type_column!r}")
    limit = max(t.distance_m for t in thresholds(settings=settings))
    o = network.snap(point, max_snap_m=settings.max_snap_m).frame
    f = network.snap(facilities, max_snap_m=settings.max_snap_m).frame
    o_extra = o["snap_m"].to_numpy() if settings.add_snap_distance else np.zeros(1)
    f_extra = f["snap_m"].to_numpy() if settings.add_snap_distance else np.zeros(len(f))
    oe = o["edge"].to_numpy()
    ot = o["t"].to_numpy()
    aug = _augment(
        network.graph,
        network.edge_u[oe],
        network.edge_v[oe],
        ot,
        network.edge_length[oe] - ot,
    )
    n = network.n_nodes
    d = csgraph.dijkstra(aug, directed=True, indices=n, limit=limit)
    fe = f["edge"].to_numpy()
    ft = f["t"].to_numpy()
    dist = np.minimum(
        d[network.edge_u[fe]] + ft, d[network.edge_v[fe]] + network.edge_length[fe] - ft
    )
    same = fe == oe[0]
    dist[same] = np.minimum(dist[same], np.abs(ft[same] - ot[0]))
    dist = dist + f_extra + o_extra[0]
    keep = np.flatnonzero(dist <= limit)
    out = pd.DataFrame(
        {
            "facility": facilities.index[keep],
            "type": facilities[type_column].astype(str).to_numpy()[keep],
            "distance_m": dist[keep],
        }
    )
    for group, kmh in settings.speeds_kmh.items():
        out[f"minutes_{group}"] = out["distance_m"] / (kmh * 1000.0 / 60.0)
    radii = sorted(settings.standard_radius_m.items(), key=lambda mr: mr[1])
    level = np.full(len(out), np.nan)
    for minutes, radius in reversed(radii):
        level[out["distance_m"].to_numpy() <= radius] = minutes
    out["level_standard"] = level
    return out.sort_values("distance_m", ignore_index=True)


def isochrones(
    point: gpd.GeoSeries,
    network: WalkNetwork,
    *,
    distances_m: Sequence[float],
    buffer_m: float = 25.0,
    settings: CircleSettings | None = None,
) -> gpd.GeoDataFrame:
    """Draw the streets reached from one point within each distance, as display shapes.

    The shape is the reached part of the network (edges cut where the walk runs out)
    widened by ``buffer_m``: it never includes places the network does not reach, but it
    is for display only; coverage figures always come from network distances.

    Parameters
    ----------
    point
        One point (a facility or any place), in any set CRS.
    network
        The walking network.
    distances_m
        Walking distances in metres, one shape each.
    buffer_m
        Half-width of the drawn shape around the reached streets, metres.
    settings
        Whether the walk to the network counts (``add_snap_distance``).

    Returns
    -------
    geopandas.GeoDataFrame
        In EPSG:4326, one row per distance: ``distance_m``, ``reached_m`` (length of
        street reached), ``display_only`` (always True), polygon geometry.

    Raises
    ------
    InputError
        If ``point`` holds other than one point (``point``) or a distance is not positive
        (``distances_m``).
    """
    settings = settings or CircleSettings()
    if len(point) != 1:
        raise InputError("point", f"expected one point, got {len(point)}")
    if any(not d > 0 for d in distances_m):
        raise InputError("distances_m", "distances must be positive")
    o = network.snap(point, max_snap_m=settings.max_snap_m).frame
    oe, ot = o["edge"].to_numpy(), o["t"].to_numpy()
    start = float(o["snap_m"].iloc[0]) if settings.add_snap_distance else 0.0
    aug = _augment(
        network.graph, network.edge_u[oe], network.edge_v[oe], ot, network.edge_length[oe] - ot
    )
    d = csgraph.dijkstra(aug, directed=True, indices=network.n_nodes, limit=max(distances_m))
    seg_edge = network.seg_edge
    a = shapely.get_coordinates(shapely.get_point(network.seg_geom, 0))
    b = shapely.get_coordinates(shapely.get_point(network.seg_geom, 1))
    seg_len = np.hypot(*(b - a).T)
    lo = network.seg_offset
    edge_len = network.edge_length[seg_edge]
    du = d[network.edge_u[seg_edge]]
    dv = d[network.edge_v[seg_edge]]
    rows = []
    for limit in distances_m:
        budget = limit - start
        # Reached stretches of each edge (positions from its first node): from either end
        # node, and around the start point on its own edge.
        own = seg_edge == oe[0]
        stretches = (
            (np.zeros_like(lo), budget - du),
            (edge_len - (budget - dv), edge_len),
            (np.where(own, ot[0] - budget, np.inf), np.where(own, ot[0] + budget, -np.inf)),
        )
        pieces: list[NDArray[np.object_]] = []
        for p0, p1 in stretches:
            s0 = np.maximum(lo, p0)
            s1 = np.minimum(lo + seg_len, p1)
            ok = s1 > s0
            f0 = (s0[ok] - lo[ok]) / seg_len[ok]
            f1 = (s1[ok] - lo[ok]) / seg_len[ok]
            sa, sd = a[ok], (b - a)[ok]
            ends = np.stack([sa + f0[:, None] * sd, sa + f1[:, None] * sd], axis=1)
            pieces.append(np.asarray(shapely.linestrings(ends), dtype=object))
        lines = np.concatenate(pieces)
        reached = float(shapely.length(shapely.union_all(lines))) if len(lines) else 0.0
        shape = (
            shapely.buffer(shapely.union_all(lines), buffer_m) if len(lines) else shapely.Polygon()
        )
        rows.append((float(limit), reached, shape))
    frame = gpd.GeoDataFrame(
        {
            "distance_m": [r[0] for r in rows],
            "reached_m": [r[1] for r in rows],
            "display_only": True,
        },
        geometry=[r[2] for r in rows],
        crs=network.crs,
    )
    return frame.to_crs("EPSG:4326")


def _ids(ids: pd.Index, pos: NDArray[np.int64]) -> Any:
    """Index values at ``pos``, missing where ``pos`` is -1 (nullable for integer ids)."""
    ok = pos >= 0
    if pd.api.types.is_integer_dtype(ids.dtype):
        values = np.zeros(pos.shape[0], dtype=np.int64)
        values[ok] = ids.to_numpy()[pos[ok]]
        return pd.arrays.IntegerArray(values, ~ok)
    out = np.full(pos.shape[0], None, dtype=object)
    out[ok] = ids.to_numpy(dtype=object)[pos[ok]]
    return out


def _empty(thr: list[Threshold]) -> pd.DataFrame:
    cols = ["origin", "type", "distance_m", "facility", "method", "snap_m", "too_far"]
    return pd.DataFrame(columns=cols + [t.column for t in thr])


def _augment(
    graph: sparse.csr_array,
    u: NDArray[np.int64],
    v: NDArray[np.int64],
    wu: NDArray[np.float64],
    wv: NDArray[np.float64],
) -> sparse.csr_array:
    """Add one source node per point, with one-way edges to its edge's two endpoints.

    An endpoint given as -1 (outside a subgraph) gets no edge.
    """
    n = graph.shape[0]
    k = u.shape[0]
    cols = np.stack([u, v], axis=1)
    vals = np.stack([wu, wv], axis=1)
    loop = u == v
    vals[loop, 0] = np.minimum(wu[loop], wv[loop])
    use = cols >= 0
    use[loop, 1] = False
    count = use.sum(axis=1)
    indptr = np.r_[graph.indptr, graph.indptr[-1] + np.cumsum(count)]
    indices = np.r_[graph.indices, cols[use]]
    data = np.r_[graph.data, np.maximum(vals[use], 1e-9)]
    return sparse.csr_array((data, indices, indptr), shape=(n + k, n + k))


def _nearest(
    network: WalkNetwork, o: pd.DataFrame, f: pd.DataFrame, limit: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Distance from every origin to its nearest facility, and that facility's position."""
    n_o = len(o)
    if len(f) == 0:
        return np.full(n_o, np.inf), np.full(n_o, -1, dtype=np.int64)
    n = network.n_nodes
    f_edge = f["edge"].to_numpy()
    f_t = f["t"].to_numpy()
    f_x = f["extra"].to_numpy()
    f_len = network.edge_length[f_edge]
    aug = _augment(
        network.graph,
        network.edge_u[f_edge],
        network.edge_v[f_edge],
        f_t + f_x,
        f_len - f_t + f_x,
    )
    sources = np.arange(n, n + len(f))
    dist, _, src = csgraph.dijkstra(
        aug, directed=True, indices=sources, min_only=True, limit=limit, return_predecessors=True
    )
    o_edge = o["edge"].to_numpy()
    o_t = o["t"].to_numpy()
    ou, ov = network.edge_u[o_edge], network.edge_v[o_edge]
    via_u = dist[ou] + o_t
    via_v = dist[ov] + network.edge_length[o_edge] - o_t
    best = np.minimum(via_u, via_v)
    who = np.where(via_u <= via_v, src[ou], src[ov]) - n
    # Origin and facility on the same edge: the direct walk along the edge may be shorter.
    same = pd.merge(
        pd.DataFrame({"o": np.arange(n_o), "edge": o_edge, "to": o_t}),
        pd.DataFrame({"f": np.arange(len(f)), "edge": f_edge, "tf": f_t, "xf": f_x}),
        on="edge",
    )
    if len(same):
        direct = np.abs(same["to"].to_numpy() - same["tf"].to_numpy()) + same["xf"].to_numpy()
        same = same.assign(d=direct).sort_values(["o", "d"]).drop_duplicates("o")
        rows = same["o"].to_numpy()
        better = same["d"].to_numpy() < best[rows]
        best[rows[better]] = same["d"].to_numpy()[better]
        who[rows[better]] = same["f"].to_numpy()[better]
    best = best + o["extra"].to_numpy()
    far = ~(best <= limit)
    best[far] = np.inf
    who[far] = -1
    return best, who.astype(np.int64)


def _tiles(xy: NDArray[np.float64], origin: NDArray[np.float64], size: float) -> NDArray[np.int64]:
    ij = np.floor((xy - origin) / size).astype(np.int64)
    return ij


def _counts(
    network: WalkNetwork,
    o: pd.DataFrame,
    f: pd.DataFrame,
    code: NDArray[np.int64],
    n_types: int,
    levels: NDArray[np.float64],
    limit: float,
    settings: CircleSettings,
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Count the facilities of each type within each level distance of every origin.

    Returns an array ``(n_levels, n_types, n_origins)`` and ``rank``: the counts of
    ``levels[k]`` are ``counts[rank[k]]``. Facilities (rows of ``f`` whose
    ``code`` is a type number; -1 is ignored) are taken tile by tile. A walk of at most
    ``limit`` metres never leaves the disc of that radius around its start, so

    - the bounded Dijkstra of a tile's facilities runs on the nodes of the tile and of its
      neighbours within ``limit`` only, and
    - only origins whose snapped point lies within ``limit`` in a straight line of a
      facility's snapped point can be reached from it (found with a k-d tree).

    Both cuts are exact.
    """
    n_o = len(o)
    n_lv = levels.shape[0]
    used = np.flatnonzero(code >= 0)
    if used.shape[0] == 0 or n_o == 0:
        return np.zeros((n_lv, n_types, n_o), dtype=np.int32), np.arange(n_lv)
    size = max(settings.tile_m, limit)
    ring = math.ceil(limit / size)
    base = network.node_xy.min(axis=0) - size
    o_xy = o[["x", "y"]].to_numpy()
    f_xy = f[["x", "y"]].to_numpy()[used]
    node_ij = _tiles(network.node_xy, base, size)
    f_ij = _tiles(f_xy, base, size)
    width = int(max(node_ij[:, 1].max(), f_ij[:, 1].max())) + 2 * ring + 2
    node_key = node_ij[:, 0] * width + node_ij[:, 1]
    f_key = f_ij[:, 0] * width + f_ij[:, 1]
    node_order = np.argsort(node_key, kind="stable")
    node_sorted = node_key[node_order]
    f_order = np.argsort(f_key, kind="stable")
    f_sorted = f_key[f_order]
    o_tree = cKDTree(o_xy)
    glob2loc = np.full(network.n_nodes, -1, dtype=np.int64)
    o_edge_all = o["edge"].to_numpy()
    o_t_all = o["t"].to_numpy()
    o_x_all = o["extra"].to_numpy()
    o_u_all = network.edge_u[o_edge_all]
    o_v_all = network.edge_v[o_edge_all]
    o_rest_all = network.edge_length[o_edge_all] - o_t_all
    f_edge_all = f["edge"].to_numpy()[used]
    f_t_all = f["t"].to_numpy()[used]
    f_x_all = f["extra"].to_numpy()[used]
    f_code = code[used]
    # Histogram of (level bin, type, origin): a walk of d counts at every level >= d.
    order = np.argsort(levels, kind="stable")
    sorted_levels = levels[order]
    hist = np.zeros((n_lv + 1) * n_types * n_o, dtype=np.int32)
    span = np.arange(-ring, ring + 1)
    offsets = (span[:, None] * width + span[None, :]).ravel()
    tile_keys, tile_start = np.unique(f_sorted, return_index=True)
    tile_end = np.r_[tile_start[1:], f_sorted.shape[0]]
    for key, t0, t1 in zip(tile_keys, tile_start, tile_end, strict=True):
        near = key + offsets
        lo = np.searchsorted(node_sorted, near, side="left")
        hi = np.searchsorted(node_sorted, near, side="right")
        nodes = np.concatenate([node_order[a:b] for a, b in zip(lo, hi, strict=True)])
        m = nodes.shape[0]
        glob2loc[nodes] = np.arange(m)
        sub = network.graph[nodes][:, nodes]
        members = f_order[t0:t1]
        for start in range(0, members.shape[0], settings.batch):
            fi = members[start : start + settings.batch]
            k = fi.shape[0]
            pairs = cKDTree(f_xy[fi]).sparse_distance_matrix(o_tree, limit, output_type="ndarray")
            if pairs.shape[0] == 0:
                continue
            fk = pairs["i"].astype(np.int64)
            ok = pairs["j"].astype(np.int64)
            fe, ft, fx = f_edge_all[fi], f_t_all[fi], f_x_all[fi]
            aug = _augment(
                sub,
                glob2loc[network.edge_u[fe]],
                glob2loc[network.edge_v[fe]],
                ft + fx,
                network.edge_length[fe] - ft + fx,
            )
            d = csgraph.dijkstra(aug, directed=True, indices=np.arange(m, m + k), limit=limit)
            # -1 (a node outside the subgraph) reads the last column: a source, never reached
            # from another source, so infinite except on the diagonal; mask it explicitly.
            lu = glob2loc[o_u_all[ok]]
            lv = glob2loc[o_v_all[ok]]
            du = np.where(lu >= 0, d[fk, lu], np.inf)
            dv = np.where(lv >= 0, d[fk, lv], np.inf)
            dist = np.minimum(du + o_t_all[ok], dv + o_rest_all[ok])
            same = fe[fk] == o_edge_all[ok]
            if same.any():
                direct = np.abs(ft[fk[same]] - o_t_all[ok[same]]) + fx[fk[same]]
                dist[same] = np.minimum(dist[same], direct)
            dist += o_x_all[ok]
            hit = dist <= sorted_levels[-1]
            if not hit.any():
                continue
            bins = np.searchsorted(sorted_levels, dist[hit], side="left")
            cell = (bins * n_types + f_code[fi][fk[hit]]) * n_o + ok[hit]
            np.add.at(hist, cell, np.int32(1))  # same dtype: the fast path
        glob2loc[nodes] = -1
    cum = hist.reshape(n_lv + 1, n_types, n_o)[:n_lv]
    np.cumsum(cum, axis=0, out=cum)
    # Level k of ``levels`` is row rank[k] (no reordering copy: a city's array is large).
    return cum, np.argsort(order)


def _metric_crs(layer: gpd.GeoDataFrame | gpd.GeoSeries) -> CRS:
    crs = layer.crs
    if crs is not None and CRS.from_user_input(crs).is_projected:
        return CRS.from_user_input(crs)
    utm: CRS = layer.estimate_utm_crs()
    return utm


def _euclidean(
    origins: gpd.GeoDataFrame | gpd.GeoSeries,
    facilities: gpd.GeoDataFrame,
    kinds: NDArray[np.str_],
    wanted: list[str],
    thr: list[Threshold],
    settings: CircleSettings,
) -> pd.DataFrame:
    crs = _metric_crs(origins)
    oxy = _xy(origins.geometry.to_crs(crs), "origins")
    fxy = _xy(facilities.geometry.to_crs(crs), "facilities")
    factor = settings.detour_factor
    fids = facilities.index.to_numpy()
    pieces = []
    for kind in wanted:
        sel = np.flatnonzero(kinds == kind)
        piece = pd.DataFrame(
            {
                "origin": origins.index,
                "type": kind,
                "distance_m": np.nan,
                "facility": None,
                "method": FALLBACK,
                "snap_m": np.nan,
                "too_far": False,
            }
        )
        if sel.shape[0]:
            tree = cKDTree(fxy[sel])
            d, i = tree.query(oxy)
            piece["distance_m"] = d * factor
            piece["facility"] = pd.Series(fids[sel][i], dtype=object).to_numpy()
            for t in thr:
                piece[t.column] = tree.query_ball_point(
                    oxy, t.distance_m / factor, return_length=True
                )
        else:
            for t in thr:
                piece[t.column] = 0
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True) if pieces else _empty(thr)


def _xy(geo: gpd.GeoSeries, field: str) -> NDArray[np.float64]:
    if (geo.geom_type != "Point").any() or geo.is_empty.any():
        row = geo.index[int(np.flatnonzero((geo.geom_type != "Point") | geo.is_empty)[0])]
        raise InputError(f"{field}[{row}]", "not a point geometry")
    return np.column_stack([geo.x.to_numpy(), geo.y.to_numpy()])


def coverage_shares(
    table: pd.DataFrame,
    stairwells: pd.DataFrame,
    *,
    by: str = "grid",
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """Share of households, residents and elderly residents covered, per group and type.

    An origin is covered at a threshold when at least one facility of the type lies within
    it. The type ``*`` stands for "every type of the table at once".

    Parameters
    ----------
    table
        The result of :func:`coverage` (its ``origin`` values index ``stairwells``).
    stairwells
        Indexed by origin, with the group column ``by`` and the counts ``households``,
        ``residents``, ``elderly``.
    by
        Group column (grid or community).
    settings
        Levels and speeds (to name the count columns).

    Returns
    -------
    pandas.DataFrame
        One row per group, type, basis and level: ``<by>``, ``type``, ``basis``,
        ``minutes``, ``distance_m``, ``method`` (``network``, ``euclidean_fallback`` or
        ``mixed``), then per population column its total, covered count and
        ``share_<column>`` (NaN when the total is zero).

    Raises
    ------
    InputError
        If a column is missing (``by``, ``stairwells``) or an origin has no stairwell row
        (``table``).
    """
    if by not in stairwells.columns:
        raise InputError("by", f"stairwells have no column {by!r}")
    missing = [c for c in POPULATION_COLUMNS if c not in stairwells.columns]
    if missing:
        raise InputError("stairwells", f"missing column {missing[0]!r}")
    unknown = ~table["origin"].isin(stairwells.index)
    if unknown.any():
        raise InputError("table", f"origin {table['origin'][unknown].iloc[0]!r} has no stairwell")
    thr = thresholds(settings=settings)
    cols = [t.column for t in thr]
    covered = table[["origin", "type", "method"]].copy()
    for c in cols:
        covered[c] = table[c].to_numpy() > 0
    every = covered.groupby("origin", sort=False).agg(
        {**{c: "all" for c in cols}, "method": _method}
    )
    every = every.reset_index().assign(type="*")
    covered = pd.concat([covered, every[covered.columns]], ignore_index=True)
    pop = stairwells[[by, *POPULATION_COLUMNS]]
    merged = covered.join(pop, on="origin")
    out = []
    for t in thr:
        frame = merged[[by, "type", "method", *POPULATION_COLUMNS]].copy()
        hit = merged[t.column].to_numpy()
        for p in POPULATION_COLUMNS:
            frame[f"{p}_covered"] = np.where(hit, merged[p].to_numpy(), 0)
        agg = frame.groupby([by, "type"], sort=True).agg(
            {
                "method": _method,
                **{p: "sum" for p in POPULATION_COLUMNS},
                **{f"{p}_covered": "sum" for p in POPULATION_COLUMNS},
            }
        )
        agg = agg.reset_index()
        agg.insert(2, "basis", t.basis)
        agg.insert(3, "minutes", t.minutes)
        agg.insert(4, "distance_m", t.distance_m)
        for p in POPULATION_COLUMNS:
            total = agg[p].to_numpy(dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                agg[f"share_{p}"] = np.where(
                    total > 0, agg[f"{p}_covered"].to_numpy() / total, np.nan
                )
        out.append(agg)
    return pd.concat(out, ignore_index=True)


def missing_types(
    table: pd.DataFrame,
    *,
    basis: str = STANDARD,
    minutes: int = 15,
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """Rank the origins by how many facility types they lack within one level.

    Parameters
    ----------
    table
        The result of :func:`coverage`.
    basis
        ``standard`` or a group name (``adult``, ``elderly``).
    minutes
        The level (5, 10 or 15 by default).
    settings
        Levels and speeds (to find the level's column).

    Returns
    -------
    pandas.DataFrame
        Indexed by origin, most types missing first: ``missing`` (how many), ``types``
        (their names, sorted, joined by ``,``), ``method``.

    Raises
    ------
    InputError
        If no such level exists (``basis`` or ``minutes``).
    """
    levels = {(t.basis, t.minutes): t for t in thresholds(settings=settings)}
    if basis not in {b for b, _ in levels}:
        raise InputError("basis", f"unknown basis {basis!r}")
    if (basis, minutes) not in levels:
        raise InputError("minutes", f"no {minutes}-minute level")
    column = levels[(basis, minutes)].column
    lacking = table.loc[table[column].to_numpy() == 0, ["origin", "type"]].astype({"type": str})
    names = lacking.sort_values("type").groupby("origin")["type"].agg(",".join)
    out = pd.DataFrame({"origin": table["origin"].unique()}).set_index("origin")
    out["missing"] = lacking.groupby("origin").size().reindex(out.index, fill_value=0)
    out["types"] = names.reindex(out.index, fill_value="")
    out["method"] = table.groupby("origin", sort=False)["method"].agg(_method).reindex(out.index)
    return out.sort_values("missing", ascending=False, kind="stable")


def _method(values: pd.Series) -> str:
    kinds = set(values.tolist())
    return kinds.pop() if len(kinds) == 1 else "mixed"
