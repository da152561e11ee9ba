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
    # Counting works tile by tile (metres) and in batches of this many facilities.
    tile_m: float = Field(default=2_000.0, gt=0)
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
    counts = _counts(network, o_snap, f_snap, code, len(wanted), levels, limit, settings)
    fac_index = facilities.index
    pieces = []
    for j, kind in enumerate(wanted):
        sel = np.flatnonzero(code == j)
        dist, nearest = _nearest(network, o_snap, f_snap.iloc[sel], nearest_limit)
        piece = pd.DataFrame(
            {
                "origin": o_snap.index,
                "type": kind,
                "distance_m": np.where(np.isfinite(dist), dist, np.nan),
                "facility": _ids(fac_index[sel], nearest),
                "method": NETWORK,
                "snap_m": o_snap["snap_m"].to_numpy(),
                "too_far": o_snap["too_far"].to_numpy(),
            }
        )
        for k, t in enumerate(thr):
            piece[t.column] = counts[j, :, k]
        pieces.append(piece)
    table = pd.concat(pieces, ignore_index=True) if pieces else _empty(thr)
    table.attrs["far_facilities"] = f_snap.index[f_snap["too_far"].astype(bool)].tolist()
    return table


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
) -> NDArray[np.int32]:
    """Count the facilities of each type within each level distance of every origin.

    Returns an array ``(n_types, n_origins, n_levels)``. Facilities (rows of ``f`` whose
    ``code`` is a type number; -1 is ignored) are taken tile by tile. A walk of at most
    ``limit`` metres never leaves the disc of that radius around its start, so the bounded
    Dijkstra of a tile's facilities runs on the nodes of the tile and of its neighbours
    within ``limit`` only: exact, and small.
    """
    n_o = len(o)
    counts = np.zeros((n_types, n_o, levels.shape[0]), dtype=np.int32)
    used = np.flatnonzero(code >= 0)
    if used.shape[0] == 0 or n_o == 0:
        return counts
    size = max(settings.tile_m, limit)
    ring = math.ceil(limit / size)
    base = network.node_xy.min(axis=0) - size
    node_ij = _tiles(network.node_xy, base, size)
    o_ij = _tiles(o[["x", "y"]].to_numpy(), base, size)
    f_ij = _tiles(f[["x", "y"]].to_numpy()[used], base, size)
    width = int(max(node_ij[:, 1].max(), o_ij[:, 1].max(), f_ij[:, 1].max())) + 2 * ring + 2
    node_key = node_ij[:, 0] * width + node_ij[:, 1]
    o_key = o_ij[:, 0] * width + o_ij[:, 1]
    f_key = f_ij[:, 0] * width + f_ij[:, 1]
    node_order = np.argsort(node_key, kind="stable")
    node_sorted = node_key[node_order]
    o_order = np.argsort(o_key, kind="stable")
    o_sorted = o_key[o_order]
    f_order = np.argsort(f_key, kind="stable")
    f_sorted = f_key[f_order]
    glob2loc = np.full(network.n_nodes, -1, dtype=np.int64)
    o_edge_all = o["edge"].to_numpy()
    o_t_all = o["t"].to_numpy()
    o_x_all = o["extra"].to_numpy()
    f_edge_all = f["edge"].to_numpy()[used]
    f_t_all = f["t"].to_numpy()[used]
    f_x_all = f["extra"].to_numpy()[used]
    f_code = code[used]
    span = np.arange(-ring, ring + 1)
    offsets = (span[:, None] * width + span[None, :]).ravel()

    def gather(order: NDArray[np.int64], keys: NDArray[np.int64], near: NDArray[np.int64]) -> Any:
        lo = np.searchsorted(keys, near, side="left")
        hi = np.searchsorted(keys, near, side="right")
        return np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)])

    tile_keys, tile_start = np.unique(f_sorted, return_index=True)
    tile_end = np.r_[tile_start[1:], f_sorted.shape[0]]
    for key, t0, t1 in zip(tile_keys, tile_start, tile_end, strict=True):
        near = key + offsets
        rows = gather(o_order, o_sorted, near)
        if rows.shape[0] == 0:
            continue
        nodes = gather(node_order, node_sorted, near)
        m = nodes.shape[0]
        glob2loc[nodes] = np.arange(m)
        sub = network.graph[nodes][:, nodes]
        o_edge = o_edge_all[rows]
        o_t = o_t_all[rows]
        o_extra = o_x_all[rows]
        # -1 (an endpoint outside the subgraph) reads the extra column of infinities.
        lu = glob2loc[network.edge_u[o_edge]]
        lv = glob2loc[network.edge_v[o_edge]]
        o_rest = network.edge_length[o_edge] - o_t
        members = f_order[t0:t1]
        for start in range(0, members.shape[0], settings.batch):
            fi = members[start : start + settings.batch]
            k = fi.shape[0]
            fe, ft, fx = f_edge_all[fi], f_t_all[fi], f_x_all[fi]
            aug = _augment(
                sub,
                glob2loc[network.edge_u[fe]],
                glob2loc[network.edge_v[fe]],
                ft + fx,
                network.edge_length[fe] - ft + fx,
            )
            d = csgraph.dijkstra(aug, directed=True, indices=np.arange(m, m + k), limit=limit)
            d = np.concatenate([d[:, :m], np.full((k, 1), np.inf)], axis=1)
            dist = np.minimum(d[:, lu] + o_t, d[:, lv] + o_rest)
            same = fe[:, None] == o_edge[None, :]
            if same.any():
                direct = np.abs(ft[:, None] - o_t[None, :]) + fx[:, None]
                dist = np.where(same, np.minimum(dist, direct), dist)
            dist += o_extra[None, :]
            reach = dist <= limit
            fk, ok = np.nonzero(reach)
            if fk.shape[0] == 0:
                continue
            hit = (dist[fk, ok][:, None] <= levels[None, :]).astype(np.int32)
            np.add.at(counts, (f_code[fi][fk], rows[ok]), hit)
        glob2loc[nodes] = -1
    return counts


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


def _method(values: pd.Series) -> str:
    kinds = set(values.tolist())
    return kinds.pop() if len(kinds) == 1 else "mixed"
