"""Siting inputs read from PostGIS: demand per stairwell and the existing facilities."""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import shapely
from sqlalchemy import Connection, bindparam, text

from gis.errors import InputError

#: Demand measures a planner can pick, each a whitelisted stairwell column.
MEASURES = ("elderly", "residents", "households")

_DEMAND_SQL = (
    "SELECT s.id AS stairwell_id, s.building_id, b.grid_id, b.community_id, "
    "CASE CAST(:measure AS text) WHEN 'elderly' THEN s.elderly "
    "WHEN 'residents' THEN s.residents ELSE s.households END AS demand, "
    "s.estimated, ST_AsBinary(s.entrance) AS wkb "
    "FROM stairwell s JOIN building b ON b.id = s.building_id "
    "LEFT JOIN community c ON c.id = b.community_id "
    "WHERE (CAST(:all_communities AS boolean) OR b.community_id IN :community_ids) "
    "AND (CAST(:subdistrict_id AS integer) IS NULL OR c.subdistrict_id = :subdistrict_id) "
    "ORDER BY s.id"
)

_FACILITY_SQL = (
    "SELECT id AS facility_id, type, name, capacity, ST_AsBinary(geom) AS wkb "
    "FROM facility WHERE type IN :types ORDER BY id"
)


def stairwell_demand(
    connection: Connection,
    *,
    measure: str = "elderly",
    community_ids: Sequence[int] | None = None,
    subdistrict_id: int | None = None,
) -> gpd.GeoDataFrame:
    """Demand points for siting: one row per stairwell entrance, WGS84 (EPSG:4326).

    Parameters
    ----------
    connection : sqlalchemy.Connection
        An open connection to the wangge database.
    measure : {"elderly", "residents", "households"}
        The stairwell count used as demand weight (column ``demand``).
    community_ids : sequence of int, optional
        Only stairwells in buildings of these communities.
    subdistrict_id : int, optional
        Only stairwells in communities of this subdistrict.

    Returns
    -------
    GeoDataFrame
        Indexed by ``stairwell_id``; columns ``building_id``, ``grid_id``, ``community_id``
        (for per-grid and per-community figures), ``demand``, ``estimated``, ``geometry``.

    Raises
    ------
    InputError
        Unknown ``measure``, an empty ``community_ids`` list, or no stairwell selected.
    """
    if measure not in MEASURES:
        raise InputError("measure", f"must be one of {', '.join(MEASURES)}, got {measure!r}")
    if community_ids is not None and len(community_ids) == 0:
        raise InputError("community_ids", "is empty; pass None for every community")
    statement = text(_DEMAND_SQL).bindparams(bindparam("community_ids", expanding=True))
    rows = connection.execute(
        statement,
        {
            "measure": measure,
            "all_communities": community_ids is None,
            "community_ids": list(community_ids) if community_ids is not None else [-1],
            "subdistrict_id": subdistrict_id,
        },
    ).all()
    if not rows:
        raise InputError("demand", "no stairwell matches the selection")
    geometry = shapely.from_wkb([bytes(r.wkb) for r in rows])
    frame = gpd.GeoDataFrame(
        {
            "stairwell_id": [r.stairwell_id for r in rows],
            "building_id": [r.building_id for r in rows],
            "grid_id": [r.grid_id for r in rows],
            "community_id": [r.community_id for r in rows],
            "demand": [float(r.demand) for r in rows],
            "estimated": [bool(r.estimated) for r in rows],
        },
        geometry=geometry,
        crs="EPSG:4326",
    )
    return frame.set_index("stairwell_id")


def existing_facilities(connection: Connection, types: Sequence[str]) -> gpd.GeoDataFrame:
    """Facilities of the given types as fixed, already-open sites, WGS84 (EPSG:4326).

    Returns
    -------
    GeoDataFrame
        Indexed by ``facility_id``; columns ``type``, ``name``, ``capacity`` (NaN when
        unknown), ``existing`` (always True), ``geometry``. Concatenate it with the planner's
        candidates and pass ``existing_col="existing"`` to a model's ``from_geodataframe``.

    Raises
    ------
    InputError
        ``types`` is empty.
    """
    if len(types) == 0:
        raise InputError("types", "name at least one facility type")
    statement = text(_FACILITY_SQL).bindparams(bindparam("types", expanding=True))
    rows = connection.execute(statement, {"types": list(types)}).all()
    frame = gpd.GeoDataFrame(
        {
            "facility_id": [r.facility_id for r in rows],
            "type": [r.type for r in rows],
            "name": [r.name for r in rows],
            "capacity": [float("nan") if r.capacity is None else float(r.capacity) for r in rows],
            "existing": [True] * len(rows),
        },
        geometry=shapely.from_wkb([bytes(r.wkb) for r in rows]) if rows else [],
        crs="EPSG:4326",
    )
    return frame.set_index("facility_id")
