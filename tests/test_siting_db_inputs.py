"""Siting inputs from PostGIS (gis.siting_inputs): demand, candidates, walking costs, answers.

The synthetic subdistrict (gis.grids.synthetic) is a square of 150 m street blocks near
Beijing, two by two communities with service grids, one stairwell per building; its streets
are noded so walks cross the blocks. Elderly residents are a quarter of the residents.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import shapely
from sqlalchemy import Connection, text

from gis.circles import CircleSettings, reachable, thresholds
from gis.circles_store import area_geometry, build_network
from gis.errors import InputError
from gis.grids.generate import generate_grids
from gis.grids.synthetic import synthetic_subdistrict
from gis.siting_inputs import (
    FALLBACK,
    NETWORK,
    CandidateSpec,
    SitingRequest,
    build_model,
    candidate_sites,
    demand_points,
    load_inputs,
    network_nodes,
    solve_siting,
    walking_costs,
)
from tests.test_circles_store import CODE, insert_facility, lonlat, node_streets

NODES = CandidateSpec(node_spacing_m=150)


def make_town(connection: Connection) -> dict[str, Any]:
    """Insert the synthetic subdistrict with grids, elderly counts and two public buildings."""
    made = synthetic_subdistrict(connection, code=CODE, buildings=80, communities=(2, 2), seed=7)
    generate_grids(connection, community_ids=made.community_ids, target_households=400)
    node_streets(connection)
    connection.execute(
        text(
            "UPDATE stairwell SET elderly = residents / 4 WHERE building_id IN "
            "(SELECT id FROM building WHERE source_id LIKE :p)"
        ),
        {"p": f"{CODE}-%"},
    )
    public = connection.execute(
        text(
            "UPDATE building SET use = 'public' WHERE id IN (SELECT id FROM building "
            "WHERE source_id LIKE :p ORDER BY id LIMIT 2) RETURNING id"
        ),
        {"p": f"{CODE}-%"},
    ).scalars()
    _, area = area_geometry(connection, subdistrict=CODE)
    community = connection.execute(
        text("SELECT code FROM community WHERE id = :i"), {"i": made.community_ids[0]}
    ).scalar_one()
    return {"area": area, "public": sorted(public), "community": community}


@pytest.fixture
def town(connection: Connection) -> dict[str, Any]:
    return make_town(connection)


def request(town: dict[str, Any], **changes: Any) -> SitingRequest:
    fields: dict[str, Any] = {
        "problem": "mclp",
        "facility_type": "elderly_day_care",
        "candidates": NODES,
        "k": 2,
        "service_distance_m": 300.0,
        "bbox": town["area"].bounds,
    }
    fields.update(changes)
    return SitingRequest(**fields)


def stairwell_sum(connection: Connection, column: str) -> float:
    sql = {
        "elderly": "SELECT sum(s.elderly) FROM stairwell s JOIN building b ON b.id = s.building_id"
        " WHERE b.source_id LIKE :p",
        "residents": "SELECT sum(s.residents) FROM stairwell s JOIN building b"
        " ON b.id = s.building_id WHERE b.source_id LIKE :p",
    }[column]
    return float(connection.execute(text(sql), {"p": f"{CODE}-%"}).scalar_one())


def test_demand_is_elderly_by_default(connection: Connection, town: dict[str, Any]) -> None:
    demand = demand_points(connection, town["area"])
    assert demand["demand"].sum() == stairwell_sum(connection, "elderly")


def test_demand_measure_residents_is_selectable(
    connection: Connection, town: dict[str, Any]
) -> None:
    demand = demand_points(connection, town["area"], measure="residents")
    assert demand["demand"].sum() == stairwell_sum(connection, "residents")


def test_demand_rows_carry_grid_and_community_codes(
    connection: Connection, town: dict[str, Any]
) -> None:
    demand = demand_points(connection, town["area"])
    assert demand["grid_code"].str.len().eq(15).all()
    assert demand["community_code"].str.len().eq(12).all()


def test_area_without_stairwells_is_empty_demand(connection: Connection) -> None:
    with pytest.raises(InputError) as err:
        demand_points(connection, shapely.box(10.0, 10.0, 10.001, 10.001))
    assert err.value.field == "demand"


def test_node_candidates_keep_one_node_per_spacing_square(
    connection: Connection, town: dict[str, Any]
) -> None:
    network = build_network(connection, town["area"])
    assert network is not None
    sites = network_nodes(network, town["area"], spacing_m=300)
    xy = network.node_xy[sites["ref"].astype(int).to_numpy()]
    squares = {tuple(c) for c in np.floor(xy / 300).astype(int)}
    assert len(squares) == len(sites)
    every = network_nodes(network, town["area"], spacing_m=1e-3)
    assert 0 < len(sites) < len(every)


def test_building_id_candidates_stand_on_their_footprints(
    connection: Connection, town: dict[str, Any]
) -> None:
    spec = CandidateSpec(building_ids=town["public"])
    sites = candidate_sites(connection, spec, area=town["area"], network=None)
    assert sites["ref"].astype(int).tolist() == town["public"]
    assert set(sites["kind"]) == {"building"}


def test_unknown_building_ids_are_named(connection: Connection, town: dict[str, Any]) -> None:
    spec = CandidateSpec(building_ids=[town["public"][0], 987654321])
    with pytest.raises(InputError) as err:
        candidate_sites(connection, spec, area=town["area"], network=None)
    assert err.value.field == "candidates.building_ids"
    assert "987654321" in err.value.message


def test_building_use_candidates_are_only_buildings_of_that_use(
    connection: Connection, town: dict[str, Any]
) -> None:
    spec = CandidateSpec(building_uses=["public"])
    sites = candidate_sites(connection, spec, area=town["area"], network=None)
    assert sorted(sites["ref"].astype(int)) == town["public"]


def test_planner_points_become_candidates_in_order(
    connection: Connection, town: dict[str, Any]
) -> None:
    points = [lonlat(150, 150), lonlat(450, 450)]
    sites = candidate_sites(
        connection, CandidateSpec(points=points), area=town["area"], network=None
    )
    assert list(sites.index) == ["point:0", "point:1"]
    assert sites.geometry.x.tolist() == pytest.approx([p[0] for p in points])


def test_walking_costs_are_never_shorter_than_straight_lines_nor_beyond_the_limit(
    connection: Connection, town: dict[str, Any]
) -> None:
    inputs = load_inputs(connection, request(town))
    assert inputs.method == NETWORK
    cost = inputs.cost.tocoo()  # type: ignore[union-attr]
    utm = inputs.demand.estimate_utm_crs()
    a = inputs.demand.to_crs(utm).get_coordinates().to_numpy()[cost.row]
    b = inputs.sites.to_crs(utm).get_coordinates().to_numpy()[cost.col]
    assert (cost.data >= np.hypot(*(a - b).T) - 1e-6).all()
    assert cost.data.max() <= 300.0


def test_without_walkable_ways_costs_fall_back_to_a_labelled_straight_line(
    connection: Connection, town: dict[str, Any]
) -> None:
    connection.execute(text("DELETE FROM street_segment"))
    public = CandidateSpec(building_uses=["public"])
    inputs = load_inputs(connection, request(town, candidates=public, k=1))
    assert inputs.method == FALLBACK
    assert "straight-line fallback" in inputs.distance


def test_existing_facilities_of_the_type_are_fixed_sites(
    connection: Connection, town: dict[str, Any]
) -> None:
    fid = insert_facility(connection, "elderly_day_care", 300, 300)
    insert_facility(connection, "kindergarten", 150, 150)
    inputs = load_inputs(connection, request(town))
    fixed = inputs.sites[inputs.sites["existing"]]
    assert list(fixed.index) == [f"facility:{fid}"]


def test_existing_facility_covers_before_any_new_site(
    connection: Connection, town: dict[str, Any]
) -> None:
    insert_facility(connection, "elderly_day_care", 300, 300)
    answer = solve_siting(connection, request(town))
    total = answer["coverage"]["total"]
    assert 0 < total["covered_before"] <= total["covered_after"]


def test_service_distance_from_minutes_uses_the_group_speed(
    connection: Connection, town: dict[str, Any]
) -> None:
    answer = solve_siting(
        connection, request(town, service_distance_m=None, minutes=5, group="elderly")
    )
    assert answer["service_distance_m"] == pytest.approx(5 * 3900 / 60)


def test_walking_costs_equal_the_service_circle_point_query(
    connection: Connection, town: dict[str, Any]
) -> None:
    network = build_network(connection, town["area"])
    assert network is not None
    demand = demand_points(connection, town["area"])
    sites = network_nodes(network, town["area"], spacing_m=100).assign(type="day_care")
    sites = sites.set_geometry(sites.geometry.translate(0.0002, 0.0001))  # off the nodes
    settings = CircleSettings()
    limit = max(t.distance_m for t in thresholds(settings=settings))
    cost = walking_costs(network, demand, sites, limit_m=limit).toarray()
    for row in range(0, len(demand), 9):
        near = reachable(demand.geometry.iloc[[row]], sites, network, settings=settings)
        expected = np.zeros(len(sites))
        expected[sites.index.get_indexer(near["facility"])] = near["distance_m"]
        assert cost[row] == pytest.approx(expected, abs=1e-6)


def test_pmedian_names_the_stairwells_no_site_reaches_as_demand(
    connection: Connection, town: dict[str, Any]
) -> None:
    question = request(town, problem="pmedian", service_distance_m=None)
    inputs = load_inputs(connection, question)
    stranded = inputs.demand.index[0]
    cost = inputs.cost.tolil()  # type: ignore[union-attr]
    cost[0, :] = 0.0
    matrix = sp.csr_array(cost)
    matrix.eliminate_zeros()
    cut = replace(inputs, cost=matrix)
    with pytest.raises(InputError) as err:
        build_model(cut, question)
    assert err.value.field == "demand"
    assert f"ids {stranded}" in err.value.message
