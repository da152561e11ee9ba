"""The walking network: noding, walkability, components, snapping, walls and gates."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from scipy.sparse import csgraph
from shapely import LineString, MultiLineString, Point, Polygon

from gis.errors import InputError
from gis.network import NetworkSettings, WalkNetwork, barriers_from_osm

from .conftest import DATA

UTM50 = "EPSG:32650"
X0, Y0 = 440_000.0, 4_428_000.0


def _lines(coords: list[list[tuple[float, float]]], **columns: list[object]) -> gpd.GeoDataFrame:
    geoms = [LineString([(X0 + x, Y0 + y) for x, y in c]) for c in coords]
    return gpd.GeoDataFrame(
        {"osm_id": list(range(1, len(geoms) + 1)), **columns}, geometry=geoms, crs=UTM50
    )


def _points(coords: list[tuple[float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=[Point(X0 + x, Y0 + y) for x, y in coords], crs=UTM50)


def _distance(net: WalkNetwork, a: tuple[float, float], b: tuple[float, float]) -> float:
    """Walking distance between the snapped positions of two points (snap legs excluded)."""
    snap = net.snap(_points([a, b])).frame
    e = snap["edge"].to_numpy()
    t = snap["t"].to_numpy()
    length = net.edge_length[e]
    ends = np.array([net.edge_u[e[1]], net.edge_v[e[1]]])
    d = csgraph.dijkstra(net.graph, indices=[net.edge_u[e[0]], net.edge_v[e[0]]])[:, ends]
    start = np.array([t[0], length[0] - t[0]])[:, None]
    end = np.array([t[1], length[1] - t[1]])[None, :]
    best = float((d + start + end).min())
    if e[0] == e[1]:
        best = min(best, abs(t[0] - t[1]))
    return best


@pytest.fixture(scope="module")
def xueyuanlu_streets() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "beijing_haidian_xueyuanlu" / "streets.geojson")


def test_ways_sharing_a_vertex_are_joined_there() -> None:
    net = WalkNetwork.from_lines(
        _lines([[(0, 0), (50, 0), (100, 0)], [(50, -50), (50, 0), (50, 50)]])
    )
    assert net.n_nodes == 5
    assert net.n_edges == 4
    assert _distance(net, (100, 1), (50, 40)) == pytest.approx(90.0)


def test_bridge_crossing_without_shared_vertex_is_not_connected() -> None:
    streets = _lines(
        [[(0, 0), (100, 0)], [(50, -50), (50, 50)]], bridge=[None, "yes"], layer=[None, "1"]
    )
    net = WalkNetwork.from_lines(streets)
    assert len(net.components()) == 2
    assert _distance(net, (10, 1), (50, 40)) == np.inf


def test_vertices_within_tolerance_are_the_same_node() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (50, 0)], [(50.002, 0.001), (50, 50)]]))
    assert net.n_nodes == 3
    assert len(net.components()) == 1


def test_intermediate_vertices_do_not_become_nodes() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (30, 0), (30, 40), (60, 40)]]))
    assert net.n_nodes == 2
    assert net.edge_length.tolist() == pytest.approx([100.0])


def test_parallel_ways_keep_the_shortest_in_the_graph() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (100, 0)], [(0, 0), (50, 50), (100, 0)]]))
    assert net.n_edges == 2
    assert net.graph.nnz == 2
    assert net.graph.data.tolist() == pytest.approx([100.0, 100.0])


def test_non_walkable_ways_are_excluded_and_reported() -> None:
    streets = _lines(
        [
            [(0, 0), (10, 0)],
            [(0, 10), (10, 10)],
            [(0, 20), (10, 20)],
            [(0, 30), (10, 30)],
            [(0, 40), (10, 40)],
        ],
        highway=["footway", "motorway", "service", "service", "residential"],
        foot=[None, None, "no", "yes", None],
        access=[None, None, None, "private", "private"],
    )
    net = WalkNetwork.from_lines(streets)
    assert sorted(set(net.edge_way.tolist())) == [1, 4]
    assert dict(zip(net.rejected["way"], net.rejected["reason"], strict=True)) == {
        2: "not walkable: highway",
        3: "not walkable: foot",
        5: "not walkable: access",
    }


def test_broken_geometry_is_reported_per_way() -> None:
    streets = gpd.GeoDataFrame(
        {"osm_id": [7, 8, 9]},
        geometry=[LineString([(X0, Y0), (X0 + 10, Y0)]), Point(X0, Y0), LineString()],
        crs=UTM50,
    )
    net = WalkNetwork.from_lines(streets)
    assert net.rejected.set_index("way")["reason"].to_dict() == {
        8: "not a line geometry",
        9: "empty geometry",
    }


def test_multilinestring_parts_are_all_walked() -> None:
    streets = gpd.GeoDataFrame(
        {"osm_id": [1]},
        geometry=[
            MultiLineString([[(X0, Y0), (X0 + 100, Y0)], [(X0 + 100, Y0), (X0 + 100, Y0 + 50)]])
        ],
        crs=UTM50,
    )
    net = WalkNetwork.from_lines(streets)
    assert net.edge_length.sum() == pytest.approx(150.0)
    assert _distance(net, (0, 1), (101, 50)) == pytest.approx(150.0)


def test_lines_without_crs_are_refused() -> None:
    streets = _lines([[(0, 0), (10, 0)]]).set_crs(None, allow_override=True)
    with pytest.raises(InputError, match="lines"):
        WalkNetwork.from_lines(streets)


def test_components_are_reported_with_sizes() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (100, 0), (100, 100)], [(500, 0), (520, 0)]]))
    table = net.components()
    assert table["nodes"].tolist() == [2, 2]
    assert table["length_m"].tolist() == pytest.approx([200.0, 20.0])


def test_snap_lands_on_the_middle_of_an_edge() -> None:
    square = _lines([[(0, 0), (100, 0), (100, 100), (0, 100), (0, 0)]])
    net = WalkNetwork.from_lines(square)
    snap = net.snap(_points([(50, -5)])).frame.iloc[0]
    assert snap["snap_m"] == pytest.approx(5.0)
    assert (snap["x"] - X0, snap["y"] - Y0) == pytest.approx((50.0, 0.0))


def test_distance_from_mid_edge_snap_is_exact_on_a_square() -> None:
    square = _lines(
        [[(0, 0), (100, 0)], [(100, 0), (100, 100)], [(100, 100), (0, 100)], [(0, 100), (0, 0)]]
    )
    net = WalkNetwork.from_lines(square)
    assert _distance(net, (50, -5), (100, 100)) == pytest.approx(150.0)
    assert _distance(net, (20, -5), (80, 1)) == pytest.approx(60.0)


def test_points_far_from_the_network_are_reported() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (100, 0)]]))
    snap = net.snap(_points([(50, 10), (50, 250), (50, -400)]), max_snap_m=200)
    assert snap.report().index.tolist() == [2, 1]
    assert snap.report()["snap_m"].tolist() == pytest.approx([400.0, 250.0])


def _compound(gate: bool) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A street along y=0 and a walled compound above it with a gate on its service road."""
    streets = _lines(
        [
            [(0, 0), (60, 0), (100, 0), (200, 0)],  # the street
            [(60, 0), (60, 70), (100, 70)],  # service road through the gate at (60, 20)
            [(100, 0), (100, 70)],  # footway straight through the wall at (100, 20)
        ]
    )
    ring = Polygon(
        [(X0 + 50, Y0 + 20), (X0 + 150, Y0 + 20), (X0 + 150, Y0 + 120), (X0 + 50, Y0 + 120)]
    )
    walls = gpd.GeoDataFrame({"barrier": ["wall"]}, geometry=[ring.exterior], crs=UTM50)
    gates = _points([(60, 20)] if gate else [])
    gates.index = ["north_gate"] if gate else []
    return streets, walls, gates


def test_wall_forces_the_detour_through_the_gate() -> None:
    streets, walls, gates = _compound(gate=True)
    open_net = WalkNetwork.from_lines(streets)
    walled = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    assert _distance(open_net, (101, 60), (100, -5)) == pytest.approx(60.0)
    assert _distance(walled, (101, 60), (100, -5)) == pytest.approx(10 + 40 + 70 + 40)


def test_wall_without_gate_shuts_the_compound() -> None:
    streets, walls, gates = _compound(gate=False)
    walled = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    assert _distance(walled, (101, 60), (100, -5)) == np.inf
    assert len(walled.cuts) == 2


def test_closing_the_gate_shuts_the_compound() -> None:
    streets, walls, gates = _compound(gate=True)
    walled = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    closed = walled.close_gates(["north_gate"])
    assert _distance(closed, (101, 60), (100, -5)) == np.inf
    assert _distance(walled, (101, 60), (100, -5)) == pytest.approx(160.0)


def test_stairwell_inside_a_wall_snaps_to_the_compound_not_the_nearer_street() -> None:
    streets, walls, gates = _compound(gate=True)
    home = _points([(130, 25)])
    open_snap = WalkNetwork.from_lines(streets).snap(home).frame.iloc[0]
    walled = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    snap = walled.snap(home).frame.iloc[0]
    assert (open_snap["x"] - X0, open_snap["y"] - Y0) == pytest.approx((130.0, 0.0))
    assert (snap["x"] - X0, snap["y"] - Y0) == pytest.approx((100.0, 25.0))
    assert not snap["crosses_barrier"]


def test_point_with_no_way_on_its_side_of_the_wall_is_flagged() -> None:
    streets = _lines([[(0, 0), (200, 0)]])
    ring = Polygon(
        [(X0 + 50, Y0 + 20), (X0 + 150, Y0 + 20), (X0 + 150, Y0 + 120), (X0 + 50, Y0 + 120)]
    )
    walls = gpd.GeoDataFrame(geometry=[ring.exterior], crs=UTM50)
    net = WalkNetwork.from_lines(streets, barriers=walls)
    snap = net.snap(_points([(100, 60), (100, -10)])).frame
    assert snap["crosses_barrier"].tolist() == [True, False]
    assert snap["snap_m"].tolist() == pytest.approx([60.0, 10.0])


def test_private_compound_ways_can_be_kept() -> None:
    streets = _lines([[(0, 0), (10, 0)], [(10, 0), (10, 30)]], access=[None, "private"])
    assert WalkNetwork.from_lines(streets).n_edges == 1
    kept = WalkNetwork.from_lines(streets, settings=NetworkSettings(keep_private=True))
    assert kept.n_edges == 2


def test_adding_a_gate_opens_the_compound() -> None:
    streets, walls, _ = _compound(gate=False)
    walled = WalkNetwork.from_lines(streets, barriers=walls)
    gate = _points([(60, 20)])
    gate.index = ["new_gate"]
    opened = walled.add_gates(gate)
    assert _distance(walled, (101, 60), (100, -5)) == np.inf
    assert _distance(opened, (101, 60), (100, -5)) == pytest.approx(160.0)


def test_snap_limit_defaults_to_the_network_settings() -> None:
    streets = _lines([[(0, 0), (100, 0)]])
    net = WalkNetwork.from_lines(streets, settings=NetworkSettings(max_snap_m=30.0))
    assert net.snap(_points([(50, 20), (50, 40)])).frame["too_far"].tolist() == [False, True]


def test_snapping_no_points_gives_an_empty_typed_table() -> None:
    net = WalkNetwork.from_lines(_lines([[(0, 0), (100, 0)]]))
    frame = net.snap(_points([])).frame
    assert len(frame) == 0
    assert frame["edge"].dtype == np.int64


def test_closing_an_unknown_gate_names_the_field() -> None:
    streets, walls, gates = _compound(gate=True)
    walled = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    with pytest.raises(InputError, match="ids"):
        walled.close_gates(["south_gate"])


@pytest.mark.parametrize(("gate", "expected"), [(True, 60.0), (False, np.inf)])
def test_way_vertex_on_the_wall_passes_only_with_a_gate(gate: bool, expected: float) -> None:
    # OSM style: the footway has a node exactly on the wall line, tagged as a gate or not.
    streets = _lines([[(0, 0), (100, 0), (200, 0)], [(100, 0), (100, 20), (100, 70)]])
    ring = Polygon(
        [(X0 + 50, Y0 + 20), (X0 + 150, Y0 + 20), (X0 + 150, Y0 + 120), (X0 + 50, Y0 + 120)]
    )
    walls = gpd.GeoDataFrame(geometry=[ring.exterior], crs=UTM50)
    gates = _points([(100, 20)] if gate else [])
    net = WalkNetwork.from_lines(streets, barriers=walls, gates=gates)
    assert _distance(net, (101, 60), (100, -5)) == pytest.approx(expected)


def test_closed_gate_blocks_its_way_even_without_a_wall() -> None:
    streets = _lines([[(0, 0), (100, 0)]])
    gates = _points([(40, 0)])
    net = WalkNetwork.from_lines(streets, gates=gates)
    assert _distance(net, (10, 1), (90, 1)) == pytest.approx(80.0)
    assert _distance(net.close_gates([0]), (10, 1), (90, 1)) == np.inf


def test_fence_ending_on_a_way_does_not_cut_it() -> None:
    streets = _lines([[(0, 0), (100, 0)]])
    fence = gpd.GeoDataFrame(geometry=[LineString([(X0 + 50, Y0), (X0 + 50, Y0 + 80)])], crs=UTM50)
    net = WalkNetwork.from_lines(streets, barriers=fence)
    assert _distance(net, (10, 1), (90, 1)) == pytest.approx(80.0)


def test_fence_across_a_way_cuts_it() -> None:
    streets = _lines([[(0, 0), (100, 0)]])
    fence = gpd.GeoDataFrame(
        geometry=[LineString([(X0 + 50, Y0 - 30), (X0 + 50, Y0 + 80)])], crs=UTM50
    )
    net = WalkNetwork.from_lines(streets, barriers=fence)
    assert _distance(net, (10, 1), (90, 1)) == np.inf
    assert _distance(net, (10, 1), (45, 1)) == pytest.approx(35.0)


def test_demo_network_keeps_all_street_length(xueyuanlu_streets: gpd.GeoDataFrame) -> None:
    net = WalkNetwork.from_lines(xueyuanlu_streets)
    assert net.edge_length.sum() == pytest.approx(xueyuanlu_streets["length_m"].sum(), rel=1e-4)
    assert net.components()["length_m"].sum() == pytest.approx(net.edge_length.sum())


def test_demo_walls_and_shut_gates_split_the_network(xueyuanlu_streets: gpd.GeoDataFrame) -> None:
    walls, gates = barriers_from_osm(
        DATA / "beijing_haidian_xueyuanlu" / "raw" / "source_map.osm.pbf"
    )
    open_net = WalkNetwork.from_lines(xueyuanlu_streets)
    walled = WalkNetwork.from_lines(xueyuanlu_streets, barriers=walls, gates=gates)
    shut = walled.close_gates(gates.index)
    assert len(walled.cuts) > 0
    assert len(shut.cuts) > len(walled.cuts)
    assert len(shut.components()) > len(walled.components()) >= len(open_net.components())


def test_osm_walls_and_gates_are_read_from_the_raw_extract() -> None:
    walls, gates = barriers_from_osm(
        DATA / "beijing_haidian_xueyuanlu" / "raw" / "source_map.osm.pbf"
    )
    assert set(walls["barrier"]) == {"wall", "fence"}
    assert len(walls) == 15
    assert {"gate", "lift_gate"} <= set(gates["barrier"])
    assert "entrance=emergency" not in set(gates["barrier"])
