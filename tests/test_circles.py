"""Service-circle coverage: network distances against an independent networkx computation."""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from shapely import LineString, Point

from gis.circles import (
    CircleSettings,
    coverage,
    coverage_shares,
    isochrones,
    missing_types,
    reachable,
    thresholds,
    update_coverage,
)
from gis.errors import InputError
from gis.network import WalkNetwork

from .conftest import DATA

AREA = "beijing_haidian_xueyuanlu"
UTM50 = "EPSG:32650"
X0, Y0 = 440_000.0, 4_428_000.0


def _reference(
    streets: gpd.GeoDataFrame, origins: gpd.GeoSeries, facilities: gpd.GeoDataFrame
) -> tuple[nx.Graph, dict[Any, tuple[str, int]], dict[Any, tuple[str, int]]]:
    """Build a vertex-level networkx graph straight from the ways, with the points inserted.

    Every OSM vertex is a node (keyed by its coordinates rounded to 1 cm), every straight
    piece an edge; each point is joined to its own node on the nearest piece (brute force),
    which splits that piece, and the snap leg is an edge of its own.
    """
    crs = streets.estimate_utm_crs()
    lines = streets.to_crs(crs).geometry.explode(index_parts=False)
    segs: dict[tuple[Any, Any], float] = {}
    pieces = []
    for line in lines:
        xy = np.round(np.asarray(line.coords) / 0.01).astype(np.int64)
        for p, q in itertools.pairwise(xy):
            a, b = tuple(p), tuple(q)
            if a == b:
                continue
            key = (min(a, b), max(a, b))
            if key not in segs:
                segs[key] = float(np.hypot(*((q - p) * 0.01)))
                pieces.append(key)
    ends = np.array([[a[0], a[1], b[0], b[1]] for a, b in pieces], dtype=float) * 0.01
    graph = nx.Graph()
    on_piece: dict[int, list[tuple[float, Any]]] = defaultdict(list)

    def attach(points: gpd.GeoSeries, tag: str) -> dict[Any, tuple[str, int]]:
        xy = np.column_stack([points.to_crs(crs).x, points.to_crs(crs).y])
        names = {}
        for i, (px, py) in enumerate(xy):
            ax, ay, bx, by = ends.T
            dx, dy = bx - ax, by - ay
            s = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0, 1)
            gap = np.hypot(ax + s * dx - px, ay + s * dy - py)
            k = int(np.argmin(gap))
            length = float(np.hypot(dx[k], dy[k]))
            on_piece[k].append((float(s[k]) * length, (tag, i, "on")))
            graph.add_edge((tag, i), (tag, i, "on"), weight=max(float(gap[k]), 1e-7))
            names[points.index[i]] = (tag, i)
        return names

    o_names = attach(origins, "o")
    f_names = attach(facilities.geometry, "f")
    for k, (a, b) in enumerate(pieces):
        chain = [(0.0, a), *sorted(on_piece.get(k, []), key=lambda x: x[0]), (segs[(a, b)], b)]
        for (s0, n0), (s1, n1) in itertools.pairwise(chain):
            graph.add_edge(n0, n1, weight=max(s1 - s0, 1e-7))
    return graph, o_names, f_names


@functools.cache
def _demo(area: str) -> dict[str, Any]:
    streets = gpd.read_file(DATA / area / "streets.geojson")
    pois = gpd.read_file(DATA / area / "pois.geojson").rename(columns={"category": "type"})
    buildings = gpd.read_file(DATA / area / "buildings.geojson")
    origins = gpd.GeoSeries(buildings.representative_point(), crs=buildings.crs)
    network = WalkNetwork.from_lines(streets)
    table = coverage(origins, pois, network)
    graph, o_names, f_names = _reference(streets, origins, pois)
    return {
        "pois": pois,
        "origins": origins,
        "network": network,
        "table": table,
        "graph": graph,
        "o_names": o_names,
        "f_names": f_names,
    }


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return _demo(AREA)


@pytest.mark.parametrize("area", [AREA, "beijing_haidian_tsinghua", "nanjing_xinjiekou"])
def test_nearest_distances_equal_networkx_for_every_origin_and_type(area: str) -> None:
    demo = _demo(area)
    pois, table, graph = demo["pois"], demo["table"], demo["graph"]
    limit = max(t.distance_m for t in thresholds())
    checked = 0
    for kind, group in pois.groupby("type"):
        sources = {demo["f_names"][i] for i in group.index}
        ref = nx.multi_source_dijkstra_path_length(graph, sources, weight="weight")
        ours = table[table["type"] == kind].set_index("origin")["distance_m"]
        for origin, node in demo["o_names"].items():
            want = ref.get(node, np.inf)
            got = ours[origin]
            if want <= limit - 1:
                assert got == pytest.approx(want, abs=1.0), (kind, origin)
                checked += 1
            elif want > limit + 1:
                assert np.isnan(got), (kind, origin)
    assert checked > 1000


def test_counts_within_levels_equal_networkx(demo: dict[str, Any]) -> None:
    pois, table, graph = demo["pois"], demo["table"], demo["graph"]
    levels = thresholds()
    limit = max(t.distance_m for t in levels)
    want: dict[tuple[str, Any], np.ndarray] = defaultdict(lambda: np.zeros(len(levels), int))
    for fid, kind in pois["type"].items():
        reach = nx.single_source_dijkstra_path_length(
            graph, demo["f_names"][fid], cutoff=limit, weight="weight"
        )
        for origin, node in demo["o_names"].items():
            if node in reach:
                want[(kind, origin)] += np.array([reach[node] <= t.distance_m for t in levels])
    got = table.set_index(["type", "origin"])[[t.column for t in levels]]
    expected = pd.DataFrame([want[key] for key in got.index], index=got.index, columns=got.columns)
    assert got.to_numpy().sum() > 10_000
    assert np.array_equal(got.to_numpy(), expected.to_numpy())


def test_nearest_facility_is_within_a_level_exactly_when_the_count_is_positive(
    demo: dict[str, Any],
) -> None:
    table = demo["table"]
    for t in thresholds():
        within = table["distance_m"].to_numpy() <= t.distance_m
        assert np.array_equal(within, table[t.column].to_numpy() > 0), t.column


def test_counting_by_tiles_and_batches_gives_the_same_counts(demo: dict[str, Any]) -> None:
    small = CircleSettings(tile_m=10_000.0, batch=3)
    table = coverage(demo["origins"], demo["pois"], demo["network"], settings=small)
    cols = [t.column for t in thresholds()]
    assert table[cols].to_numpy().tolist() == demo["table"][cols].to_numpy().tolist()


def test_every_network_row_is_labelled_network(demo: dict[str, Any]) -> None:
    assert set(demo["table"]["method"]) == {"network"}
    assert len(demo["table"]) == len(demo["origins"]) * demo["pois"]["type"].nunique()


def _line_world() -> tuple[WalkNetwork, gpd.GeoDataFrame]:
    street = gpd.GeoDataFrame(geometry=[LineString([(X0, Y0), (X0 + 2000, Y0)])], crs=UTM50)
    shops = gpd.GeoDataFrame(
        {"type": ["shop", "shop", "clinic"]},
        geometry=[Point(X0 + 100, Y0 + 10), Point(X0 + 700, Y0), Point(X0 + 1500, Y0)],
        index=["s1", "s2", "c1"],
        crs=UTM50,
    )
    return WalkNetwork.from_lines(street), shops


def test_snap_legs_are_added_to_the_walk() -> None:
    network, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0 + 350, Y0 - 20)], crs=UTM50)
    row = coverage(homes, shops, network).set_index("type").loc["shop"]
    assert row["distance_m"] == pytest.approx(20 + 250 + 10)
    assert row["facility"] == "s1"
    assert row["count_standard_5"] == 1
    assert row["count_standard_10"] == 2


def test_snap_legs_can_be_left_out() -> None:
    network, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0 + 400, Y0 - 20)], crs=UTM50)
    table = coverage(homes, shops, network, settings=CircleSettings(add_snap_distance=False))
    assert table.set_index("type").loc["shop", "distance_m"] == pytest.approx(300.0)


def test_group_levels_use_minutes_times_speed() -> None:
    network, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0 + 1000, Y0)], crs=UTM50)
    row = coverage(homes, shops, network).set_index("type").loc["clinic"]
    # 500 m: beyond the 5-minute standard radius (300 m) and the elderly 5 minutes (325 m),
    # within 10 minutes at 3.9 km/h (650 m).
    assert row["count_standard_5"] == 0
    assert row["count_elderly_5"] == 0
    assert row["count_elderly_10"] == 1
    assert row["count_adult_10"] == 1


def test_types_without_facilities_give_no_distance_and_zero_counts() -> None:
    network, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0 + 1000, Y0)], crs=UTM50)
    row = coverage(homes, shops, network, types=["canteen"]).iloc[0]
    assert np.isnan(row["distance_m"])
    assert row["facility"] is None
    assert row["count_standard_15"] == 0


def test_fallback_without_network_is_labelled_and_uses_the_detour_factor() -> None:
    _, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0 + 400, Y0 + 400)], crs=UTM50)
    table = coverage(homes, shops, None)
    assert set(table["method"]) == {"euclidean_fallback"}
    shop = table.set_index("type").loc["shop"]
    assert shop["distance_m"] == pytest.approx(1.3 * np.hypot(300, 390))
    assert shop["facility"] == "s1"


def test_far_facilities_and_origins_are_reported() -> None:
    network, shops = _line_world()
    shops = pd.concat(
        [
            shops,
            gpd.GeoDataFrame(
                {"type": ["shop"]}, geometry=[Point(X0, Y0 + 500)], index=["far"], crs=UTM50
            ),
        ]
    )
    homes = gpd.GeoSeries([Point(X0 + 400, Y0 - 20), Point(X0 + 400, Y0 - 300)], crs=UTM50)
    table = coverage(homes, shops, network)
    assert table.attrs["far_facilities"] == ["far"]
    assert table.groupby("origin")["too_far"].first().tolist() == [False, True]


def test_no_origins_give_an_empty_table() -> None:
    network, shops = _line_world()
    table = coverage(gpd.GeoSeries([], crs=UTM50), shops, network)
    assert len(table) == 0
    assert "count_elderly_15" in table.columns


def test_missing_type_column_names_the_parameter() -> None:
    network, shops = _line_world()
    homes = gpd.GeoSeries([Point(X0, Y0)], crs=UTM50)
    with pytest.raises(InputError, match="type_column"):
        coverage(homes, shops, network, type_column="kind")


def _stairwells() -> tuple[gpd.GeoSeries, pd.DataFrame]:
    homes = gpd.GeoSeries(
        [Point(X0 + 100, Y0), Point(X0 + 900, Y0), Point(X0 + 1900, Y0)],
        index=[11, 12, 13],
        crs=UTM50,
    )
    table = pd.DataFrame(
        {
            "grid": ["A", "A", "B"],
            "households": [40, 60, 30],
            "residents": [100, 150, 80],
            "elderly": [20, 30, 10],
        },
        index=[11, 12, 13],
    )
    return homes, table


def test_shares_count_the_households_of_covered_stairwells() -> None:
    network, shops = _line_world()
    homes, stairwells = _stairwells()
    shares = coverage_shares(coverage(homes, shops, network), stairwells, by="grid")
    row = shares.set_index(["grid", "type", "basis", "minutes"]).loc[("A", "shop", "standard", 5)]
    # Stairwell 11 is 10 m from s1; stairwell 12 is 200 m from s2; both within 300 m.
    assert row["households"] == 100
    assert row["households_covered"] == 100
    b = shares.set_index(["grid", "type", "basis", "minutes"]).loc[("B", "clinic", "standard", 5)]
    assert b["share_elderly"] == 0.0


def test_share_totals_match_the_stairwell_table() -> None:
    network, shops = _line_world()
    homes, stairwells = _stairwells()
    shares = coverage_shares(coverage(homes, shops, network), stairwells, by="grid")
    for _, part in shares.groupby(["type", "basis", "minutes"]):
        assert part["households"].sum() == stairwells["households"].sum()
        assert part["elderly"].sum() == stairwells["elderly"].sum()


def test_all_types_share_requires_every_type() -> None:
    network, shops = _line_world()
    homes, stairwells = _stairwells()
    shares = coverage_shares(coverage(homes, shops, network), stairwells, by="grid")
    every = shares.set_index(["grid", "type", "basis", "minutes"])
    # Within 1,000 m: stairwell 11 lacks the clinic (1,400 m), 12 has both, 13 lacks a shop.
    assert every.loc[("A", "*", "standard", 15), "households_covered"] == 60
    assert every.loc[("B", "*", "standard", 15), "households_covered"] == 0


def test_shares_label_fallback_rows() -> None:
    _, shops = _line_world()
    homes, stairwells = _stairwells()
    shares = coverage_shares(coverage(homes, shops, None), stairwells, by="grid")
    assert set(shares["method"]) == {"euclidean_fallback"}


def test_shares_refuse_an_unknown_group_column() -> None:
    network, shops = _line_world()
    homes, stairwells = _stairwells()
    with pytest.raises(InputError, match="by"):
        coverage_shares(coverage(homes, shops, network), stairwells, by="community")


def _changed_pois(pois: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Move one park 300 m east, remove a pharmacy, add a school; return (after, touched)."""
    utm = pois.estimate_utm_crs()
    after = pois.to_crs(utm)
    park = after.index[after["type"] == "park"][0]
    pharmacy = after.index[after["type"] == "pharmacy"][0]
    school = after[after["type"] == "school"].iloc[[0]].copy()
    school.index = [10**12]
    school["geometry"] = school.geometry.translate(-250, 120)
    old_park = after.loc[[park], ["type", "geometry"]]
    after.loc[park, "geometry"] = Point(after.geometry[park].x + 300, after.geometry[park].y)
    touched = pd.concat(
        [
            old_park,
            after.loc[[park], ["type", "geometry"]],
            after.loc[[pharmacy], ["type", "geometry"]],
            school[["type", "geometry"]],
        ]
    )
    after = pd.concat([after.drop(index=pharmacy), school])
    return gpd.GeoDataFrame(after, crs=utm), gpd.GeoDataFrame(touched, crs=utm)


def test_incremental_update_equals_a_full_recompute(demo: dict[str, Any]) -> None:
    after, touched = _changed_pois(demo["pois"])
    types = sorted(demo["pois"]["type"].unique())
    updated = update_coverage(
        demo["table"], demo["origins"], after, demo["network"], touched=touched
    )
    full = coverage(demo["origins"], after, demo["network"], types=types)
    key = ["type", "origin"]
    a = updated.astype({"type": str}).sort_values(key).reset_index(drop=True)
    b = full.astype({"type": str}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_categorical=False)
    assert not a.equals(demo["table"].astype({"type": str}).sort_values(key).reset_index(drop=True))


def test_incremental_update_leaves_far_origins_alone(demo: dict[str, Any]) -> None:
    after, touched = _changed_pois(demo["pois"])
    updated = update_coverage(
        demo["table"], demo["origins"], after, demo["network"], touched=touched
    )
    untouched = ~demo["table"]["type"].isin(["park", "pharmacy", "school"])
    pd.testing.assert_frame_equal(updated[untouched], demo["table"][untouched])


def test_reachable_lists_facilities_nearest_first_with_minutes() -> None:
    network, shops = _line_world()
    here = gpd.GeoSeries([Point(X0 + 350, Y0 - 20)], crs=UTM50)
    table = reachable(here, shops, network)
    assert table["facility"].tolist() == ["s1", "s2", "c1"]
    assert table["distance_m"].tolist() == pytest.approx([280.0, 370.0, 1170.0])
    assert table["minutes_elderly"].iloc[0] == pytest.approx(280.0 / 65.0)
    assert table["level_standard"].iloc[:2].tolist() == [5, 10]
    assert np.isnan(table["level_standard"].iloc[2])


def test_reachable_agrees_with_coverage_on_the_demo(demo: dict[str, Any]) -> None:
    origin = demo["origins"].iloc[[7]]
    table = reachable(origin, demo["pois"], demo["network"])
    nearest = table.groupby("type")["distance_m"].min()
    rows = demo["table"][demo["table"]["origin"] == origin.index[0]].set_index("type")
    found = rows["distance_m"].dropna()
    assert nearest.sort_index().to_numpy() == pytest.approx(found.sort_index().to_numpy())
    assert (table.groupby("type").size() == rows.loc[nearest.index, "count_adult_15"]).all()


def test_isochrone_follows_the_street_and_is_labelled_display_only() -> None:
    network, _ = _line_world()
    start = gpd.GeoSeries([Point(X0 + 1000, Y0)], crs=UTM50)
    shapes = isochrones(start, network, distances_m=[50, 300]).set_index("distance_m")
    assert shapes["reached_m"].tolist() == pytest.approx([100.0, 600.0])
    assert shapes["display_only"].all()
    inside = gpd.GeoSeries([Point(X0 + 1040, Y0), Point(X0 + 1100, Y0)], crs=UTM50).to_crs(4326)
    assert inside.within(shapes.geometry[50]).tolist() == [True, False]


def test_isochrone_leaves_out_a_bridge_it_cannot_reach() -> None:
    roads = gpd.GeoDataFrame(
        {"bridge": [None, "yes"]},
        geometry=[
            LineString([(X0, Y0), (X0 + 400, Y0)]),
            LineString([(X0 + 200, Y0 - 200), (X0 + 200, Y0 + 200)]),
        ],
        crs=UTM50,
    )
    network = WalkNetwork.from_lines(roads)
    start = gpd.GeoSeries([Point(X0 + 150, Y0)], crs=UTM50)
    shape = isochrones(start, network, distances_m=[100]).iloc[0]
    assert shape["reached_m"] == pytest.approx(200.0)
    deck = gpd.GeoSeries([Point(X0 + 200, Y0 + 40)], crs=UTM50).to_crs(4326)
    assert not deck.within(shape.geometry).iloc[0]


def test_missing_types_ranks_stairwells_by_gaps() -> None:
    network, shops = _line_world()
    homes, _ = _stairwells()
    gaps = missing_types(coverage(homes, shops, network), basis="standard", minutes=5)
    # Within 300 m: 11 and 12 have a shop but no clinic; 13 has neither (clinic 400 m).
    assert gaps.index.tolist() == [13, 11, 12]
    assert gaps["missing"].tolist() == [2, 1, 1]
    assert gaps.loc[13, "types"] == "clinic,shop"


def test_missing_types_refuses_an_unknown_level() -> None:
    network, shops = _line_world()
    homes, _ = _stairwells()
    with pytest.raises(InputError, match="minutes"):
        missing_types(coverage(homes, shops, network), minutes=20)
