"""Cost matrices between demand and candidate point layers.

The walking network is the reference for coverage figures; until a network cost function is
plugged in (``distance=callable``), ``distance="euclidean"`` gives the clearly labelled
straight-line fallback: metres in the local UTM zone multiplied by a detour factor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from gis.errors import InputError

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy.typing as npt

#: Default ratio of walking to straight-line distance for the euclidean fallback.
DEFAULT_DETOUR = 1.3


def _points_xy(gdf: gpd.GeoDataFrame, crs: Any, *, field: str) -> npt.NDArray[np.float64]:
    if gdf.crs is None:
        raise InputError(field, "has no CRS; set it (e.g. EPSG:4326) before siting")
    if len(gdf) == 0:
        what = "demand points" if field == "demand_gdf" else "candidate sites"
        raise InputError(field, f"no {what}")
    geom = gdf.geometry.to_crs(crs)
    if geom.isna().any() or geom.is_empty.any():
        bad = list(gdf.index[np.asarray(geom.isna() | geom.is_empty)])[:20]
        raise InputError(field, f"missing or empty geometry for ids {bad}")
    points = geom.where(geom.geom_type == "Point", geom.representative_point())
    return np.column_stack([points.x.to_numpy(), points.y.to_numpy()])


def cost_between(
    demand_gdf: gpd.GeoDataFrame,
    candidate_gdf: gpd.GeoDataFrame,
    *,
    distance: str | Callable[..., Any] = "euclidean",
    detour: float = DEFAULT_DETOUR,
    max_cost: float | None = None,
) -> tuple[npt.NDArray[np.float64] | sp.csr_array, str]:
    """Demand × candidate cost matrix in metres, and a label saying how it was measured.

    Parameters
    ----------
    demand_gdf, candidate_gdf : GeoDataFrame
        Points (other geometries use a representative point) in any CRS.
    distance : "euclidean" or callable
        ``"euclidean"``: straight-line metres in the UTM zone of the demand layer × ``detour``,
        labelled as a fallback. A callable ``f(demand_gdf, candidate_gdf)`` returns a dense
        array (``inf`` = unreachable) or a sparse matrix (stored pairs only) in metres, e.g.
        walking distances on the street network; its ``label`` attribute (or name) labels it.
    detour : float
        Walking / straight-line ratio for the euclidean fallback (≥ 1).
    max_cost : float, optional
        Only pairs up to this cost matter (covering radius); the euclidean matrix is then
        sparse (KD-tree), which keeps 40,000 × 1,000 instances small.

    Returns
    -------
    cost, label

    Raises
    ------
    InputError
        Missing CRS, empty layers, unknown ``distance``, bad ``detour`` or a callable
        returning the wrong shape.
    """
    if callable(distance):
        cost = distance(demand_gdf, candidate_gdf)
        shape = (len(demand_gdf), len(candidate_gdf))
        if getattr(cost, "shape", None) != shape:
            msg = f"callable returned shape {getattr(cost, 'shape', None)}, expected {shape}"
            raise InputError("distance", msg)
        label = str(getattr(distance, "label", getattr(distance, "__name__", "custom")))
        matrix = sp.csr_array(cost) if sp.issparse(cost) else np.asarray(cost, dtype=np.float64)
        return matrix, label
    if distance != "euclidean":
        raise InputError("distance", f"must be 'euclidean' or a callable, got {distance!r}")
    if not (np.isfinite(detour) and detour >= 1.0):
        raise InputError("detour", f"must be a finite factor ≥ 1, got {detour!r}")
    if demand_gdf.crs is None:
        raise InputError("demand_gdf", "has no CRS; set it (e.g. EPSG:4326) before siting")
    utm = demand_gdf.estimate_utm_crs()
    a = _points_xy(demand_gdf, utm, field="demand_gdf")
    b = _points_xy(candidate_gdf, utm, field="candidate_gdf")
    label = f"euclidean×{detour:g} in {utm.name} (straight-line fallback, not walking)"
    if max_cost is None:
        return cdist(a, b) * detour, label
    tree_a, tree_b = cKDTree(a), cKDTree(b)
    pairs = tree_a.sparse_distance_matrix(tree_b, max_cost / detour, output_type="coo_matrix")
    rows, cols = pairs.row, pairs.col
    # sparse_distance_matrix drops zero distances; points on top of each other are kept here
    same = tree_a.query_ball_tree(tree_b, 0.0)
    z_rows = np.repeat(np.arange(len(same)), [len(s) for s in same])
    z_cols = np.asarray([j for s in same for j in s], dtype=np.int64)
    data = np.concatenate([pairs.data * detour, np.zeros(z_rows.size)])
    rows = np.concatenate([rows, z_rows])
    cols = np.concatenate([cols, z_cols])
    matrix = sp.csr_array((data, (rows, cols)), shape=(a.shape[0], b.shape[0]))
    matrix.sort_indices()
    return matrix, label
