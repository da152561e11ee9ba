"""Siting from layers: the labelled straight-line fallback, the distance hook, PostGIS demand."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import scipy.sparse as sp
import shapely
from pyproj import Geod
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.siting import MaximalCovering, PMedian
from gis.siting.demand import existing_facilities, stairwell_demand
from gis.siting.geo import cost_between
from gis.siting.summary import coverage_by

LON, LAT = 116.3, 39.95  # Haidian
GEOD = Geod(ellps="WGS84")


def _layer(offsets_m: list[tuple[float, float]], **columns: Any) -> gpd.GeoDataFrame:
    """Points at (east, north) metre offsets from the origin, WGS84."""
    dx = np.array([o[0] for o in offsets_m])
    dy = np.array([o[1] for o in offsets_m])
    lon = LON + dx / (111_320 * np.cos(np.radians(LAT)))
    lat = LAT + dy / 110_574
    return gpd.GeoDataFrame(columns, geometry=shapely.points(lon, lat), crs="EPSG:4326")


def _geodesic(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, i: int, j: int) -> float:
    pa, pb = a.geometry.iloc[i], b.geometry.iloc[j]
    return float(GEOD.inv(pa.x, pa.y, pb.x, pb.y)[2])


def test_euclidean_fallback_is_labelled() -> None:
    demand = _layer([(0, 0), (400, 0)], w=[5.0, 7.0])
    sites = _layer([(100, 0), (2000, 0)])
    model = MaximalCovering.from_geodataframe(
        demand, sites, weight_col="w", service_radius=300, k=1
    )
    result = model.solve()
    assert "fallback" in result.distance
    assert "UTM" in result.distance


def test_euclidean_costs_are_metres_times_detour() -> None:
    demand = _layer([(0, 0), (0, 600)])
    sites = _layer([(300, 0)])
    cost, _ = cost_between(demand, sites, detour=1.3)
    expected = 1.3 * _geodesic(demand, sites, 1, 0)
    assert cost[1, 0] == pytest.approx(expected, rel=2e-3)


def test_detour_factor_is_configurable() -> None:
    demand = _layer([(0, 0)])
    sites = _layer([(500, 0)])
    straight, _ = cost_between(demand, sites, detour=1.0)
    walked, label = cost_between(demand, sites, detour=1.5)
    assert walked[0, 0] == pytest.approx(1.5 * straight[0, 0])
    assert "1.5" in label


def test_detour_below_one_names_detour() -> None:
    with pytest.raises(InputError) as err:
        cost_between(_layer([(0, 0)]), _layer([(10, 0)]), detour=0.8)
    assert err.value.field == "detour"


def test_radius_limited_costs_keep_coincident_points() -> None:
    demand = _layer([(0, 0), (50, 0)])
    sites = _layer([(0, 0)])
    cost, _ = cost_between(demand, sites, max_cost=300)
    assert isinstance(cost, sp.csr_array)
    assert cost.nnz == 2
    assert cost[0, 0] == 0.0


def test_distance_callable_replaces_straight_line() -> None:
    demand = _layer([(0, 0), (100, 0)], w=[1.0, 1.0])
    sites = _layer([(0, 0), (100, 0)])

    def network(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> np.ndarray:
        return np.array([[900.0, 10.0], [900.0, 20.0]])

    network.label = "walking network"  # type: ignore[attr-defined]
    result = PMedian.from_geodataframe(demand, sites, weight_col="w", p=1, distance=network).solve()
    assert result.distance == "walking network"
    assert list(result.site_ids) == [1]
    assert result.objective == pytest.approx(30.0)


def test_distance_callable_wrong_shape_names_distance() -> None:
    demand = _layer([(0, 0), (100, 0)])
    sites = _layer([(0, 0)])
    with pytest.raises(InputError) as err:
        cost_between(demand, sites, distance=lambda a, b: np.zeros((1, 1)))
    assert err.value.field == "distance"


def test_missing_crs_names_demand_layer() -> None:
    demand = gpd.GeoDataFrame(geometry=shapely.points([0.0], [0.0]))
    with pytest.raises(InputError) as err:
        cost_between(demand, _layer([(0, 0)]))
    assert err.value.field == "demand_gdf"


def test_existing_column_marks_fixed_sites() -> None:
    demand = _layer([(0, 0), (2000, 0)], w=[4.0, 6.0])
    sites = _layer([(50, 0), (2050, 0), (5000, 0)], existing=[True, False, False])
    result = MaximalCovering.from_geodataframe(
        demand, sites, weight_col="w", service_radius=300, k=1, existing_col="existing"
    ).solve()
    assert result.covered_before == 4.0
    assert result.covered_after == 10.0
    assert list(result.site_ids) == [1]


def _building(connection: Connection, source_id: str, dx: float) -> int:
    lon = LON + dx / (111_320 * np.cos(np.radians(LAT)))
    footprint = shapely.box(lon, LAT, lon + 0.0002, LAT + 0.0001)
    return int(
        connection.execute(
            text(
                "INSERT INTO building (source, source_id, footprint, area_m2) VALUES "
                "('test', :i, ST_Multi(ST_GeomFromText(:wkt, 4326)), 300) RETURNING id"
            ),
            {"i": source_id, "wkt": footprint.wkt},
        ).scalar_one()
    )


def _stairwell(
    connection: Connection, building: int, unit: int, counts: tuple[int, int, int]
) -> int:
    households, residents, elderly = counts
    return int(
        connection.execute(
            text(
                "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
                " elderly, estimated, source) SELECT id, :u, ST_PointOnSurface(footprint), :h,"
                " :r, :e, false, 'test' FROM building WHERE id = :b RETURNING id"
            ),
            {"b": building, "u": unit, "h": households, "r": residents, "e": elderly},
        ).scalar_one()
    )


def test_stairwell_demand_weighs_elderly_by_default(connection: Connection) -> None:
    b = _building(connection, "s1", 0)
    first = _stairwell(connection, b, 1, (10, 25, 6))
    second = _stairwell(connection, b, 2, (12, 30, 9))
    demand = stairwell_demand(connection)
    assert demand.crs.to_epsg() == 4326
    assert demand.loc[first, "demand"] == 6.0
    assert demand.loc[second, "demand"] == 9.0
    assert (demand.loc[[first, second], "building_id"] == b).all()


def test_stairwell_demand_can_weigh_households(connection: Connection) -> None:
    b = _building(connection, "s2", 0)
    sw = _stairwell(connection, b, 1, (10, 25, 6))
    demand = stairwell_demand(connection, measure="households")
    assert demand.loc[sw, "demand"] == 10.0


def test_stairwell_demand_unknown_measure_names_measure(connection: Connection) -> None:
    with pytest.raises(InputError) as err:
        stairwell_demand(connection, measure="income")
    assert err.value.field == "measure"


def test_existing_facilities_are_flagged_with_capacity(connection: Connection) -> None:
    connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, name, capacity, geom) VALUES "
            "('test', 'f1', 'elderly_daycare', '日间照料中心', 40,"
            " ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"x": LON, "y": LAT},
    )
    facilities = existing_facilities(connection, ["elderly_daycare"])
    assert len(facilities) == 1
    assert facilities["existing"].all()
    assert facilities["capacity"].iloc[0] == 40.0


def test_siting_from_stairwells_counts_gain_over_existing(connection: Connection) -> None:
    near = _building(connection, "s3", 0)
    far = _building(connection, "s4", 3000)
    _stairwell(connection, near, 1, (10, 25, 6))
    _stairwell(connection, far, 1, (12, 30, 9))
    connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, capacity, geom) VALUES "
            "('test', 'f2', 'elderly_daycare', 40, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"x": LON, "y": LAT},
    )
    demand = stairwell_demand(connection)
    existing = existing_facilities(connection, ["elderly_daycare"])
    candidates = _layer([(3000, 0), (6000, 0)])
    candidates["existing"] = False
    sites = gpd.GeoDataFrame(
        [*existing.to_dict("records"), *candidates.to_dict("records")], crs="EPSG:4326"
    )
    result = MaximalCovering.from_geodataframe(
        demand, sites, weight_col="demand", service_radius=500, k=1, existing_col="existing"
    ).solve()
    assert result.covered_before == 6.0
    assert result.covered_after == 15.0


def test_coverage_by_grid_sums_before_and_after_per_group() -> None:
    demand = _layer([(0, 0), (100, 0), (3000, 0)], w=[4.0, 6.0, 5.0], grid=["A", "A", "B"])
    sites = _layer([(50, 0), (3050, 0), (9000, 0)], existing=[True, False, False])
    result = MaximalCovering.from_geodataframe(
        demand, sites, weight_col="w", service_radius=300, k=1, existing_col="existing"
    ).solve()
    table = coverage_by(result, demand, by="grid")
    assert table.loc["A", "covered_before"] == 10.0
    assert table.loc["B", "covered_before"] == 0.0
    assert table.loc["B", "gain"] == 5.0
    assert table.loc["B", "share_after"] == 1.0


def test_coverage_by_unknown_column_names_by() -> None:
    demand = _layer([(0, 0)], w=[1.0])
    result = MaximalCovering.from_geodataframe(
        demand, _layer([(10, 0)]), weight_col="w", service_radius=300, k=1
    ).solve()
    with pytest.raises(InputError) as err:
        coverage_by(result, demand, by="grid_id")
    assert err.value.field == "by"
