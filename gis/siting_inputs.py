"""Siting from the database: demand, candidate sites and walking costs, solved and summarised.

:func:`load_inputs` reads a planner's :class:`SitingRequest` against PostGIS:

- **demand**: one point per stairwell entrance in the area, weighted by its elderly residents
  (default), residents or households;
- **candidates**: points the planner lists (WGS84 lon/lat), buildings by id, buildings of
  given uses (a point on each footprint), or walking-network nodes thinned to a spacing;
- **existing facilities** of the type within reach of the area: fixed, open, already covering;
- **costs**: walking distances in metres on the street network of ``street_segment`` (with the
  stored gates and walls), kept sparse up to the service distance. Where the area holds no
  walkable way, straight-line metres × the detour factor stand in, and every answer says so
  (``method = "euclidean_fallback"``).

:func:`solve_siting` solves the request with the models of :mod:`gis.siting` and returns a
JSON-ready summary: chosen sites, objective, gap, solver status, demand covered before and
after in total and per grid and community, each stairwell's assigned site, and a GeoJSON
layer. The summary holds aggregates and stairwell ids only, never household-level data.

Coordinates are WGS84 (EPSG:4326) in and out; every distance is in metres.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from sqlalchemy import Connection, bindparam, text

from gis.circles import CircleSettings
from gis.circles_store import _extent, area_geometry, build_network, facility_types
from gis.errors import InputError
from gis.network import NetworkSettings, WalkNetwork
from gis.siting import (
    CapacitatedMaximalCovering,
    MaximalCovering,
    PMedian,
    SetCovering,
    SitingResult,
    SolverError,
    coverage_by,
)
from gis.siting.geo import cost_between

WGS84 = "EPSG:4326"
#: Problems a planner can pose: maximal covering, set covering, p-median, capacitated MCLP.
PROBLEMS = ("mclp", "lscp", "pmedian", "cmclp")
#: Stairwell counts usable as demand weight (whitelisted columns).
MEASURES = ("elderly", "residents", "households")
NETWORK = "network"
FALLBACK = "euclidean_fallback"
UNASSIGNED = "unassigned"

FloatArray = npt.NDArray[np.float64]

_DEMAND_SQL = text(
    "SELECT s.id AS stairwell_id, s.building_id, "
    "coalesce(g.code, :none) AS grid_code, coalesce(c.code, :none) AS community_code, "
    "s.elderly, s.residents, s.households, s.estimated, ST_AsBinary(s.entrance) AS wkb "
    "FROM stairwell s JOIN building b ON b.id = s.building_id "
    "LEFT JOIN grid g ON g.id = b.grid_id "
    "LEFT JOIN community c ON c.id = coalesce(b.community_id, g.community_id) "
    "WHERE ST_Intersects(s.entrance, ST_GeomFromWKB(:area, 4326)) ORDER BY s.id"
)
_BUILDING_IDS_SQL = text(
    "SELECT id, ST_AsBinary(ST_PointOnSurface(footprint)) AS wkb FROM building "
    "WHERE id IN :ids ORDER BY id"
).bindparams(bindparam("ids", expanding=True))
_BUILDING_USES_SQL = text(
    "SELECT id, ST_AsBinary(ST_PointOnSurface(footprint)) AS wkb FROM building "
    "WHERE use IN :uses AND ST_Intersects(footprint, ST_GeomFromWKB(:area, 4326)) ORDER BY id"
).bindparams(bindparam("uses", expanding=True))
_FACILITY_SQL = text(
    "SELECT id, name, capacity, ST_AsBinary(geom) AS wkb FROM facility "
    "WHERE type = :type AND ST_Intersects(geom, ST_GeomFromWKB(:extent, 4326)) ORDER BY id"
)


@dataclass(frozen=True)
class CandidateSpec:
    """Where new sites may go; the sources given are combined.

    Attributes
    ----------
    points
        ``(lon, lat)`` pairs in WGS84 degrees the planner lists.
    building_ids
        Ids of buildings (a point on each footprint).
    building_uses
        Building uses (``building.use``, e.g. ``"public"``): every such building in the area.
    node_spacing_m
        Walking-network nodes in the area, one per ``spacing × spacing`` square (the node
        nearest the square's centre), in metres.
    """

    points: Sequence[tuple[float, float]] | None = None
    building_ids: Sequence[int] | None = None
    building_uses: Sequence[str] | None = None
    node_spacing_m: float | None = None


@dataclass(frozen=True)
class SitingRequest:
    """One siting question (see :func:`solve_siting`).

    Attributes
    ----------
    problem
        ``mclp`` (k new sites, most demand within reach), ``lscp`` (fewest sites covering
        ``target`` of the demand), ``pmedian`` (k new sites, least total walking) or ``cmclp``
        (``mclp`` with ``capacity`` per site).
    facility_type
        A type of the facility mapping (e.g. ``elderly_day_care``); existing facilities of
        the type are fixed and already covering.
    k
        New sites to open (not for ``lscp``).
    service_distance_m, minutes, group
        The walking limit in metres, or ``minutes`` at the walking speed of ``group``
        (``elderly``, ``adult``: configured speeds). Required except for ``pmedian``, where it
        only adds coverage figures.
    capacity
        Demand one site can serve (``cmclp``); existing facilities with a stored capacity keep
        theirs.
    single_source
        ``cmclp``: each stairwell served by one site only.
    target
        ``lscp``: share of the demand to cover (0-1].
    candidates
        Where new sites may go.
    measure
        Demand weight: ``elderly`` (default), ``residents`` or ``households``.
    time_limit_s
        Solver time limit; at the limit the best answer found comes back with its proven gap.
    bbox, community
        The area: a WGS84 box ``(min lon, min lat, max lon, max lat)`` or a community code.
    """

    problem: str
    facility_type: str
    candidates: CandidateSpec
    k: int | None = None
    service_distance_m: float | None = None
    minutes: float | None = None
    group: str | None = None
    capacity: float | None = None
    single_source: bool = False
    target: float = 1.0
    measure: str = "elderly"
    time_limit_s: float | None = None
    bbox: Sequence[float] | None = None
    community: str | None = None


@dataclass(frozen=True)
class SitingInputs:
    """Demand, candidate and existing sites and their cost matrix, read for one request.

    Attributes
    ----------
    demand
        Indexed by ``stairwell_id``: ``building_id``, ``grid_code``, ``community_code``,
        ``demand`` (the chosen measure), ``estimated``, ``geometry`` (WGS84).
    sites
        Candidates then existing facilities, indexed by a label (``point:0``,
        ``building:12``, ``node:5``, ``facility:3``): ``kind``, ``ref``, ``existing``,
        ``capacity``, ``geometry`` (WGS84).
    cost
        Sparse demand × site matrix of metres; absent pairs lie beyond ``limit_m``.
    method
        ``network`` or ``euclidean_fallback``.
    distance
        A label saying how costs were measured.
    limit_m
        The service distance (None for a p-median without one).
    """

    demand: gpd.GeoDataFrame
    sites: gpd.GeoDataFrame
    cost: sp.csr_array | FloatArray = field(repr=False)
    method: str
    distance: str
    limit_m: float | None


# --- the pieces ----------------------------------------------------------------------------


def service_distance(
    request: SitingRequest, *, settings: CircleSettings | None = None
) -> float | None:
    """Return the walking limit of ``request`` in metres (None: none given, p-median only).

    Raises
    ------
    InputError
        Non-positive distance or minutes, an unknown ``group``, minutes without a group, or
        no limit for a covering problem (field ``service_distance_m``).
    """
    settings = settings or CircleSettings()
    if request.service_distance_m is not None:
        if not (math.isfinite(request.service_distance_m) and request.service_distance_m > 0):
            raise InputError("service_distance_m", "must be a positive number of metres")
        return float(request.service_distance_m)
    if request.minutes is not None:
        if not (math.isfinite(request.minutes) and request.minutes > 0):
            raise InputError("minutes", "must be a positive number of minutes")
        if request.group is None:
            raise InputError("group", f"name a walking group: {', '.join(settings.speeds_kmh)}")
        if request.group not in settings.speeds_kmh:
            known = ", ".join(settings.speeds_kmh)
            raise InputError("group", f"unknown walking group {request.group!r}; known: {known}")
        return float(request.minutes * settings.speeds_kmh[request.group] * 1000.0 / 60.0)
    if request.problem != "pmedian":
        raise InputError("service_distance_m", "give service_distance_m, or minutes and group")
    return None


def demand_points(
    connection: Connection, area: Any, *, measure: str = "elderly"
) -> gpd.GeoDataFrame:
    """Stairwell entrances in ``area`` as demand points, WGS84.

    Parameters
    ----------
    connection
        Database connection.
    area
        WGS84 polygon.
    measure
        ``elderly``, ``residents`` or ``households``: the ``demand`` column.

    Returns
    -------
    GeoDataFrame
        Indexed by ``stairwell_id``: ``building_id``, ``grid_code``, ``community_code``
        (``unassigned`` when missing), ``demand``, ``estimated``, ``geometry``.

    Raises
    ------
    InputError
        Unknown ``measure``; no stairwell in the area, or none holding any demand
        (field ``demand``).
    """
    if measure not in MEASURES:
        raise InputError("measure", f"must be one of {', '.join(MEASURES)}, got {measure!r}")
    rows = connection.execute(_DEMAND_SQL, {"area": shapely.to_wkb(area), "none": UNASSIGNED}).all()
    if not rows:
        raise InputError("demand", "no stairwell lies in the area")
    frame = gpd.GeoDataFrame(
        {
            "stairwell_id": [r.stairwell_id for r in rows],
            "building_id": [r.building_id for r in rows],
            "grid_code": [r.grid_code for r in rows],
            "community_code": [r.community_code for r in rows],
            "demand": [float(getattr(r, measure)) for r in rows],
            "estimated": [bool(r.estimated) for r in rows],
        },
        geometry=shapely.from_wkb([bytes(r.wkb) for r in rows]),
        crs=WGS84,
    ).set_index("stairwell_id")
    if not frame["demand"].sum() > 0:
        msg = f"the {len(frame)} stairwells of the area hold no {measure}: nothing to serve"
        raise InputError("demand", msg)
    return frame


def _sites(kind: str, refs: Sequence[Any], geometry: Any, capacity: Any = np.nan) -> Any:
    return gpd.GeoDataFrame(
        {
            "site": [f"{kind}:{r}" for r in refs],
            "kind": kind,
            "ref": [str(r) for r in refs],
            "existing": False,
            "capacity": capacity,
        },
        geometry=geometry,
        crs=WGS84,
    ).set_index("site")


def network_nodes(network: WalkNetwork, area: Any, *, spacing_m: float) -> gpd.GeoDataFrame:
    """Walking-network nodes inside ``area`` thinned to about one per ``spacing_m`` square.

    Returns
    -------
    GeoDataFrame
        Indexed ``node:<n>``; WGS84 points (the kept node nearest each square's centre).

    Raises
    ------
    InputError
        A non-positive spacing (field ``candidates.node_spacing_m``).
    """
    if not (math.isfinite(spacing_m) and spacing_m > 0):
        raise InputError("candidates.node_spacing_m", "must be a positive number of metres")
    xy = network.node_xy
    to_wgs = Transformer.from_crs(network.crs, WGS84, always_xy=True)
    lon, lat = to_wgs.transform(xy[:, 0], xy[:, 1])
    inside = np.flatnonzero(shapely.contains_xy(area, lon, lat))
    cell = np.floor(xy[inside] / spacing_m)
    off = np.hypot(*(xy[inside] - (cell + 0.5) * spacing_m).T)
    order = pd.DataFrame({"cx": cell[:, 0], "cy": cell[:, 1], "off": off, "node": inside})
    kept = order.sort_values(["off", "node"]).drop_duplicates(["cx", "cy"])["node"].to_numpy()
    kept = np.sort(kept)
    return _sites("node", list(kept), shapely.points(lon[kept], lat[kept]))


def candidate_sites(
    connection: Connection,
    spec: CandidateSpec,
    *,
    area: Any,
    network: WalkNetwork | None,
) -> gpd.GeoDataFrame:
    """Return the candidate sites of ``spec``, WGS84 (columns as :attr:`SitingInputs.sites`).

    Raises
    ------
    InputError
        No source given or none yielding a site (``candidates``); a point outside WGS84
        ranges (``candidates.points``); building ids not in the database
        (``candidates.building_ids``, listing them); node spacing without a walking network
        (``candidates.node_spacing_m``).
    """
    parts: list[gpd.GeoDataFrame] = []
    if spec.points:
        xy = np.asarray(spec.points, dtype=np.float64)
        ok = xy.ndim == 2 and xy.shape[1] == 2 and np.isfinite(xy).all()
        if not ok or (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
            raise InputError("candidates.points", "expected [lon, lat] pairs in WGS84 degrees")
        parts.append(_sites("point", list(range(len(xy))), shapely.points(xy)))
    if spec.building_ids:
        wanted = sorted({int(i) for i in spec.building_ids})
        rows = connection.execute(_BUILDING_IDS_SQL, {"ids": wanted}).all()
        missing = sorted(set(wanted) - {r.id for r in rows})
        if missing:
            shown = ", ".join(str(i) for i in missing[:20])
            msg = f"{len(missing)} building ids not in the database ({shown})"
            raise InputError("candidates.building_ids", msg)
        geom = shapely.from_wkb([bytes(r.wkb) for r in rows])
        parts.append(_sites("building", [r.id for r in rows], geom))
    if spec.building_uses:
        params = {"uses": list(spec.building_uses), "area": shapely.to_wkb(area)}
        rows = connection.execute(_BUILDING_USES_SQL, params).all()
        if rows:
            geom = shapely.from_wkb([bytes(r.wkb) for r in rows])
            parts.append(_sites("building", [r.id for r in rows], geom))
    if spec.node_spacing_m is not None:
        if network is None:
            msg = "the area holds no walkable way: list points or buildings instead"
            raise InputError("candidates.node_spacing_m", msg)
        parts.append(network_nodes(network, area, spacing_m=spec.node_spacing_m))
    if not parts:
        msg = "give points, building_ids, building_uses or node_spacing_m"
        raise InputError("candidates", msg)
    sites = pd.concat(parts)
    sites = sites[~sites.index.duplicated()]
    if len(sites) == 0:
        raise InputError("candidates", "no candidate site matches: nothing to choose from")
    return gpd.GeoDataFrame(sites, geometry="geometry", crs=WGS84)


def existing_sites(connection: Connection, facility_type: str, extent: Any) -> gpd.GeoDataFrame:
    """Facilities of ``facility_type`` within ``extent`` (WGS84), as fixed open sites."""
    rows = connection.execute(
        _FACILITY_SQL, {"type": facility_type, "extent": shapely.to_wkb(extent)}
    ).all()
    capacity = [np.nan if r.capacity is None else float(r.capacity) for r in rows]
    sites = _sites(
        "facility", [r.id for r in rows], shapely.from_wkb([bytes(r.wkb) for r in rows]), capacity
    )
    sites["existing"] = True
    sites["name"] = [r.name for r in rows]
    return sites


def walking_costs(
    network: WalkNetwork,
    demand: gpd.GeoDataFrame,
    sites: gpd.GeoDataFrame,
    *,
    limit_m: float | None,
    add_snap_distance: bool = True,
    batch: int = 64,
) -> sp.csr_array:
    """Return walking metres from every demand point to every site, within ``limit_m``.

    Both layers are snapped to the network (never across a wall); with
    ``add_snap_distance`` the walk from each point to the network counts. Sites are handled
    ``batch`` at a time (fewer on a large network, to keep the per-batch node table near
    80 MB): one bounded Dijkstra from the two ends of each site's edge. With a limit, only
    pairs within that straight-line distance are evaluated (a walk is never shorter).

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(len(demand), len(sites))``; a stored entry is a walk within ``limit_m``
        (zero distances stored explicitly); absent pairs are beyond it or unreachable.
    """
    shape = (len(demand), len(sites))
    if 0 in shape:
        return sp.csr_array(shape, dtype=np.float64)
    o = network.snap(demand).frame
    f = network.snap(sites).frame
    eu, ev, elen = network.edge_u, network.edge_v, network.edge_length
    o_edge = o["edge"].to_numpy()
    o_t = o["t"].to_numpy()
    o_u, o_v, o_rest = eu[o_edge], ev[o_edge], elen[o_edge] - o_t
    o_x = o["snap_m"].to_numpy() if add_snap_distance else np.zeros(len(o))
    f_edge = f["edge"].to_numpy()
    f_t = f["t"].to_numpy()
    f_x = f["snap_m"].to_numpy() if add_snap_distance else np.zeros(len(f))
    limit = np.inf if limit_m is None else float(limit_m)
    tree: cKDTree | None = None
    if np.isfinite(limit):
        tree = cKDTree(shapely.get_coordinates(demand.geometry.to_crs(network.crs)))
        f_xy = shapely.get_coordinates(sites.geometry.to_crs(network.crs))
    step = int(max(1, min(batch, 5_000_000 // max(network.n_nodes, 1))))
    rows: list[npt.NDArray[np.intp]] = []
    cols: list[npt.NDArray[np.intp]] = []
    vals: list[FloatArray] = []
    for start in range(0, len(f), step):
        j = np.arange(start, min(start + step, len(f)))
        fe, ft, fx = f_edge[j], f_t[j], f_x[j]
        nodes, pos = np.unique(np.r_[eu[fe], ev[fe]], return_inverse=True)
        d = csgraph.dijkstra(network.graph, directed=True, indices=nodes, limit=limit)
        # walking metres from each site of the batch (row) to every node
        to_node = np.minimum(
            (ft + fx)[:, None] + d[pos[: len(j)]],
            (elen[fe] - ft + fx)[:, None] + d[pos[len(j) :]],
        )
        if tree is not None:
            near = tree.query_ball_point(f_xy[j], r=limit + 1e-6)
            jj = np.repeat(np.arange(len(j)), [len(n) for n in near])
            ii = np.fromiter(itertools.chain.from_iterable(near), dtype=np.intp, count=jj.size)
        else:
            jj = np.repeat(np.arange(len(j)), len(o))
            ii = np.tile(np.arange(len(o)), len(j))
        cost = np.minimum(to_node[jj, o_u[ii]] + o_t[ii], to_node[jj, o_v[ii]] + o_rest[ii])
        direct = np.abs(ft[jj] - o_t[ii]) + fx[jj]
        cost = np.where(fe[jj] == o_edge[ii], np.minimum(cost, direct), cost) + o_x[ii]
        keep = cost <= limit
        rows.append(ii[keep])
        cols.append(j[jj[keep]])
        vals.append(cost[keep])
    matrix = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    matrix.sort_indices()
    return matrix


# --- one request ---------------------------------------------------------------------------


def _check_request(request: SitingRequest, types: dict[str, int]) -> None:
    if request.problem not in PROBLEMS:
        msg = f"must be one of {', '.join(PROBLEMS)}, got {request.problem!r}"
        raise InputError("problem", msg)
    if request.facility_type not in types:
        msg = f"unknown facility type {request.facility_type!r}; see the facility mapping"
        raise InputError("facility_type", msg)
    if request.measure not in MEASURES:
        msg = f"must be one of {', '.join(MEASURES)}, got {request.measure!r}"
        raise InputError("measure", msg)
    if request.problem != "lscp" and (request.k is None or request.k < 1):
        raise InputError("k", "give the number of new sites to open (at least 1)")
    if request.capacity is not None and not (
        math.isfinite(request.capacity) and request.capacity >= 0
    ):
        raise InputError("capacity", f"must be a non-negative number, got {request.capacity!r}")
    if request.problem == "cmclp" and not request.capacity:
        raise InputError("capacity", "cmclp needs the demand one site can serve (> 0)")
    if request.time_limit_s is not None and not (
        math.isfinite(request.time_limit_s) and request.time_limit_s > 0
    ):
        raise InputError("time_limit_s", "must be a positive number of seconds")
    if not 0 < request.target <= 1:
        raise InputError("target", "must be a share in (0, 1]")


def load_inputs(
    connection: Connection,
    request: SitingRequest,
    *,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
) -> SitingInputs:
    """Read demand, candidate and existing sites and their costs for ``request``.

    The network, the existing facilities and (for node candidates) the nodes come from the
    area widened by the service distance plus the snapping limit, so walks leaving the area
    count.

    Raises
    ------
    InputError
        Any bad field of the request (named), an empty demand, no candidate, ``k`` above the
        number of candidates.
    NotFoundError
        An unknown community code.
    """
    settings = settings or CircleSettings()
    _check_request(request, facility_types())
    limit = service_distance(request, settings=settings)
    _, area = area_geometry(connection, bbox=request.bbox, community=request.community)
    demand = demand_points(connection, area, measure=request.measure)
    reach = (limit if limit is not None else 2_000.0) + settings.max_snap_m
    extent = _extent(area, reach)
    network = build_network(connection, extent, settings=network_settings)
    candidates = candidate_sites(connection, request.candidates, area=area, network=network)
    if request.k is not None and request.problem != "lscp" and request.k > len(candidates):
        msg = f"asks for {request.k} new sites but only {len(candidates)} candidates are given"
        raise InputError("k", msg)
    existing = existing_sites(connection, request.facility_type, extent)
    sites = gpd.GeoDataFrame(pd.concat([candidates, existing]), geometry="geometry", crs=WGS84)
    if network is not None:
        cost: sp.csr_array | FloatArray = walking_costs(
            network,
            demand,
            sites,
            limit_m=limit,
            add_snap_distance=settings.add_snap_distance,
        )
        method, label = NETWORK, "walking distance on the street network"
    else:
        cost, label = cost_between(
            demand, sites, distance="euclidean", detour=settings.detour_factor, max_cost=limit
        )
        method = FALLBACK
    return SitingInputs(
        demand=demand, sites=sites, cost=cost, method=method, distance=label, limit_m=limit
    )


def build_model(
    inputs: SitingInputs, request: SitingRequest
) -> MaximalCovering | SetCovering | PMedian | CapacitatedMaximalCovering:
    """Build the :mod:`gis.siting` model of ``request`` on ``inputs``.

    Raises
    ------
    InputError
        As the model's constructor, with the field named as in the request: for set covering
        and p-median, the demand points no candidate can reach (field ``demand``, naming the
        stairwell ids); ``p`` is ``k``, ``capacities`` is ``capacity``.
    """
    try:
        return _model(inputs, request)
    except InputError as exc:
        raise _renamed(exc) from exc


def _renamed(exc: InputError) -> InputError:
    """Name a model's field as the request names it (``p`` is ``k``, ``cost`` the demand)."""
    field = _REQUEST_FIELDS.get(exc.field)
    return exc if field is None else InputError(field, exc.message)


#: Model argument -> the request field a planner sets.
_REQUEST_FIELDS = {
    "cost": "demand",
    "weights": "demand",
    "p": "k",
    "capacities": "capacity",
    "service_radius": "service_distance_m",
    "time_limit": "time_limit_s",
}


def _model(
    inputs: SitingInputs, request: SitingRequest
) -> MaximalCovering | SetCovering | PMedian | CapacitatedMaximalCovering:
    common: dict[str, Any] = {
        "weights": inputs.demand["demand"].to_numpy(float),
        "existing": inputs.sites["existing"].to_numpy(bool),
        "demand_ids": list(inputs.demand.index),
        "site_ids": list(inputs.sites.index),
        "distance": inputs.distance,
    }
    k = int(request.k) if request.k is not None else 0
    if request.problem == "pmedian":
        return PMedian(inputs.cost, p=k, service_radius=inputs.limit_m, **common)
    assert inputs.limit_m is not None
    if request.problem == "lscp":
        return SetCovering(
            inputs.cost, service_radius=inputs.limit_m, target=request.target, **common
        )
    if request.problem == "mclp":
        return MaximalCovering(inputs.cost, service_radius=inputs.limit_m, k=k, **common)
    capacities = inputs.sites["capacity"].fillna(float(request.capacity or 0.0)).to_numpy(float)
    return CapacitatedMaximalCovering(
        inputs.cost,
        service_radius=inputs.limit_m,
        k=k,
        capacities=capacities,
        single_source=request.single_source,
        **common,
    )


def solve_siting(
    connection: Connection,
    request: SitingRequest,
    *,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
) -> dict[str, Any]:
    """Solve ``request`` against the database and summarise the answer (JSON-ready).

    Returns
    -------
    dict
        ``problem``, ``facility_type``, ``measure``, ``status`` (``optimal``, ``gap_limit``,
        ``time_limit``, ``heuristic``), ``objective``, ``bound``, ``gap``, ``method`` and
        ``distance`` (how costs were measured), ``service_distance_m``, ``sites`` (chosen new
        sites with lon/lat and the demand they serve), ``existing`` (fixed facilities),
        ``coverage`` (``total``, ``by_grid``, ``by_community``: demand, covered before and
        after, gain, shares; None for a p-median without service distance), ``assignments``
        (stairwell id → site label and walking metres, site None when unserved),
        ``demand_points``, ``estimated_stairwells``, ``layer`` (GeoJSON of the sites,
        ``proposed`` true for new ones) and ``runtime_s``.

    Raises
    ------
    InputError
        Bad input, named (see :func:`load_inputs`, :func:`build_model`).
    SolverError
        The solver found no feasible answer (a time limit that ended the search before any
        answer is an ``InputError`` naming ``time_limit_s``).
    """
    inputs = load_inputs(connection, request, settings=settings, network_settings=network_settings)
    model = build_model(inputs, request)
    try:
        result = model.solve(time_limit=request.time_limit_s)
    except InputError as exc:
        raise _renamed(exc) from exc
    except SolverError as exc:
        if request.time_limit_s is not None and "time limit" in str(exc).lower():
            msg = f"ended the search before any feasible answer was found: raise it ({exc})"
            raise InputError("time_limit_s", msg) from exc
        raise
    return summarise(inputs, result, request)


def _number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _coverage(inputs: SitingInputs, result: SitingResult) -> dict[str, Any] | None:
    if result.covered_before is None or result.covered_after is None:
        return None
    total = result.total_demand
    out: dict[str, Any] = {
        "total": {
            "demand": total,
            "covered_before": result.covered_before,
            "covered_after": result.covered_after,
            "gain": result.covered_after - result.covered_before,
            "share_before": result.covered_before / total if total else 0.0,
            "share_after": result.covered_after / total if total else 0.0,
        }
    }
    for key, column in (("by_grid", "grid_code"), ("by_community", "community_code")):
        table = coverage_by(result, inputs.demand, by=column).reset_index()
        table = table.rename(columns={column: key.removeprefix("by_")})
        out[key] = [
            {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")
        ]
    return out


def summarise(inputs: SitingInputs, result: SitingResult, request: SitingRequest) -> dict[str, Any]:
    """Turn a solved model into the summary of :func:`solve_siting`."""
    sites = inputs.sites
    labels = np.asarray(sites.index, dtype=object)
    lon = sites.geometry.x.to_numpy()
    lat = sites.geometry.y.to_numpy()

    def site_row(col: int, *, proposed: bool) -> dict[str, Any]:
        row: dict[str, Any] = {
            "site": str(labels[col]),
            "kind": str(sites["kind"].iat[col]),
            "ref": str(sites["ref"].iat[col]),
            "lon": float(lon[col]),
            "lat": float(lat[col]),
            "proposed": proposed,
            "served": float(result.site_load[col]),
            "capacity": _number(float(sites["capacity"].iat[col])),
        }
        if request.problem == "cmclp" and row["capacity"] is None:
            row["capacity"] = float(request.capacity or 0.0)
        return row

    chosen = [site_row(int(c), proposed=True) for c in result.sites]
    fixed = [site_row(int(c), proposed=False) for c in result.existing]
    assigned = result.assignment
    assignments = [
        {
            "stairwell_id": int(sid),
            "site": None if col < 0 else str(labels[col]),
            "distance_m": None if col < 0 else _number(float(cost)),
        }
        for sid, col, cost in zip(inputs.demand.index, assigned, result.assigned_cost, strict=True)
    ]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [s["lon"], s["lat"]]},
            "properties": {k: v for k, v in s.items() if k not in ("lon", "lat")},
        }
        for s in chosen + fixed
    ]
    return {
        "problem": request.problem,
        "facility_type": request.facility_type,
        "measure": request.measure,
        "status": str(result.status),
        "objective": float(result.objective),
        "bound": _number(result.bound),
        "gap": _number(result.gap),
        "method": inputs.method,
        "distance": inputs.distance,
        "service_distance_m": inputs.limit_m,
        "candidates": int((~sites["existing"]).sum()),
        "sites": chosen,
        "existing": fixed,
        "coverage": _coverage(inputs, result),
        "assignments": assignments,
        "demand_points": len(inputs.demand),
        "estimated_stairwells": int(inputs.demand["estimated"].sum()),
        "layer": {"type": "FeatureCollection", "features": features},
        "runtime_s": float(result.runtime),
    }
