"""Service-circle coverage stored in PostGIS: compute, incremental updates, reports, gates.

The synthetic subdistrict (gis.grids.synthetic) is a 600 m square of 150 m street blocks
near Beijing (UTM 50N offsets), two by two communities, one stairwell per building;
facilities are placed with a seeded generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import Connection, text

from gis.circles import CircleSettings, coverage
from gis.circles_store import (
    ALL_REQUIRED,
    add_facility,
    area_geometry,
    area_summary,
    build_network,
    compute_area,
    coverage_report,
    facility_types,
    load_inputs,
    missing_report,
    move_facility,
    refresh,
    remove_facility,
    set_gate_closed,
    store_gates_and_barriers,
    stored_table,
)
from gis.errors import InputError
from gis.grids.generate import generate_grids
from gis.grids.synthetic import ORIGIN, synthetic_subdistrict
from gis.osm import read_osm
from tests.conftest import DATA

TO_WGS84 = Transformer.from_crs(32650, 4326, always_xy=True)
TYPES = ("kindergarten", "convenience_shop", "primary_school", "nursing_home")
CODE = "110108951"


def lonlat(x: float, y: float) -> tuple[float, float]:
    """WGS84 of a point ``x``, ``y`` metres east/north of the synthetic origin."""
    lon, lat = TO_WGS84.transform(ORIGIN[0] + x, ORIGIN[1] + y)
    return float(lon), float(lat)


def insert_facility(connection: Connection, kind: str, x: float, y: float) -> int:
    lon, lat = lonlat(x, y)
    return int(
        connection.execute(
            text(
                "INSERT INTO facility (source, source_id, type, geom) VALUES ('test', "
                "'t' || nextval('facility_id_seq'), :kind, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                " RETURNING id"
            ),
            {"kind": kind, "x": lon, "y": lat},
        ).scalar_one()
    )


def node_streets(connection: Connection) -> None:
    """Split the synthetic streets where they cross: real street data meets at shared nodes."""
    lines = connection.execute(
        text("DELETE FROM street_segment WHERE source = 'synthetic' RETURNING ST_AsBinary(geom)")
    ).scalars()
    pieces = shapely.get_parts(shapely.union_all([shapely.from_wkb(bytes(w)) for w in lines]))
    connection.execute(
        text(
            "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m) "
            "VALUES ('synthetic', :sid, 0, 'residential', ST_GeomFromText(:wkt, 4326), 1)"
        ),
        [{"sid": f"n{i}", "wkt": g.wkt} for i, g in enumerate(pieces)],
    )


@pytest.fixture
def town(connection: Connection) -> dict[str, object]:
    made = synthetic_subdistrict(connection, code=CODE, buildings=80, communities=(2, 2), seed=7)
    generate_grids(connection, community_ids=made.community_ids, target_households=400)
    node_streets(connection)
    rng = np.random.default_rng(3)
    ids = [
        insert_facility(connection, TYPES[i % len(TYPES)], *rng.uniform(0, 600, size=2))
        for i in range(10)
    ]
    _, area = area_geometry(connection, subdistrict=CODE)
    return {"area": area, "facilities": ids}


def full_table(connection: Connection, area: object) -> pd.DataFrame:
    """Recompute the area from scratch and return its stored table."""
    area_id = compute_area(connection, area, name="full")
    return stored_table(connection, area_id=area_id)


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["type", "origin"]
    a = a.assign(type=a["type"].astype(str)).sort_values(key, ignore_index=True)
    b = b.assign(type=b["type"].astype(str)).sort_values(key, ignore_index=True)
    count_cols = [c for c in a.columns if c.startswith("count_")]
    assert a[key].equals(b[key])
    assert (a[count_cols].to_numpy() == b[count_cols].to_numpy()).all()
    np.testing.assert_allclose(a["distance_m"], b["distance_m"], atol=1e-6)
    assert (
        a["facility"].astype(object).fillna(-1).tolist()
        == b["facility"].astype(object).fillna(-1).tolist()
    )


def test_compute_stores_a_row_per_stairwell_type_and_level(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    stairwells = connection.execute(
        text(
            "SELECT count(*) FROM stairwell s JOIN building b ON b.id = s.building_id "
            "WHERE b.source = 'synthetic' AND b.source_id LIKE :p"
        ),
        {"p": f"{CODE}-%"},
    ).scalar_one()
    rows = connection.execute(
        text("SELECT count(*) FROM circle_coverage WHERE area_id = :a"), {"a": area_id}
    ).scalar_one()
    levels = len(CircleSettings().standard_radius_m) * (1 + len(CircleSettings().speeds_kmh))
    assert rows == stairwells * len(facility_types()) * levels


def test_stored_coverage_equals_the_in_memory_computation(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    inputs = load_inputs(connection, town["area"], _extent_of(connection, area_id))
    expected = coverage(
        inputs.stairwells, inputs.facilities, inputs.network, types=sorted(facility_types())
    )
    assert_same(stored_table(connection, area_id=area_id), expected)


def _extent_of(connection: Connection, area_id: int) -> object:
    wkb = connection.execute(
        text("SELECT ST_AsBinary(extent) FROM circle_area WHERE id = :a"), {"a": area_id}
    ).scalar_one()
    return shapely.from_wkb(bytes(wkb))


def test_the_synthetic_network_is_connected(
    connection: Connection, town: dict[str, object]
) -> None:
    ext = shapely.box(*town["area"].bounds)  # type: ignore[attr-defined]
    network = build_network(connection, ext)
    assert network is not None
    assert len(network.components()) == 1


def test_stored_coverage_uses_walking_distances_on_the_network(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    methods = connection.execute(
        text("SELECT DISTINCT method FROM circle_coverage WHERE area_id = :a"), {"a": area_id}
    ).scalars()
    assert set(methods) == {"network"}


def test_adding_a_facility_updates_the_table_as_a_full_recompute(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    lon, lat = lonlat(300, 300)
    add_facility(connection, type="kindergarten", lon=lon, lat=lat)
    incremental = stored_table(connection, area_id=area_id)
    assert_same(incremental, full_table(connection, town["area"]))


def test_adding_a_facility_changes_the_counts_near_it(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    before = stored_table(connection, area_id=area_id)
    lon, lat = lonlat(300, 300)
    add_facility(connection, type="elderly_canteen", lon=lon, lat=lat)
    after = stored_table(connection, area_id=area_id)
    col = "count_standard_15"
    kind = before["type"] == "elderly_canteen"
    assert before.loc[kind, col].sum() == 0
    assert after.loc[after["type"] == "elderly_canteen", col].sum() > 0


def test_moving_a_facility_updates_the_table_as_a_full_recompute(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    lon, lat = lonlat(20, 580)
    move_facility(connection, int(town["facilities"][0]), lon=lon, lat=lat)  # type: ignore[index]
    assert_same(stored_table(connection, area_id=area_id), full_table(connection, town["area"]))


def test_removing_a_facility_updates_the_table_as_a_full_recompute(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    remove_facility(connection, int(town["facilities"][1]))  # type: ignore[index]
    assert_same(stored_table(connection, area_id=area_id), full_table(connection, town["area"]))


def test_adding_an_unknown_facility_type_names_the_type(
    connection: Connection, town: dict[str, object]
) -> None:
    lon, lat = lonlat(300, 300)
    with pytest.raises(InputError) as info:
        add_facility(connection, type="casino", lon=lon, lat=lat)
    assert info.value.field == "type"


def test_a_change_far_from_every_area_rewrites_nothing(
    connection: Connection, town: dict[str, object]
) -> None:
    compute_area(connection, town["area"], name="town")
    lon, lat = lonlat(20_000, 20_000)
    assert refresh(connection, [(lon, lat, "kindergarten")]) == 0


@pytest.mark.parametrize("by", ["grid", "community", "subdistrict"])
def test_report_household_totals_add_up_to_the_stairwell_table(
    connection: Connection, town: dict[str, object], by: str
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    report = coverage_report(connection, level=5, by=by, area_id=area_id)
    total = connection.execute(
        text(
            "SELECT sum(s.households) FROM stairwell s JOIN building b ON b.id = s.building_id "
            "WHERE b.source_id LIKE :p"
        ),
        {"p": f"{CODE}-%"},
    ).scalar_one()
    for _, rows in report.groupby("type"):
        assert rows["households"].sum() == total


def test_report_by_community_names_each_community(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    report = coverage_report(connection, level=10, by="community", area_id=area_id)
    communities = connection.execute(
        text(
            "SELECT DISTINCT c.code FROM stairwell s JOIN building b ON b.id = s.building_id "
            "JOIN grid g ON g.id = b.grid_id JOIN community c ON c.id = g.community_id "
            "WHERE b.source_id LIKE :p"
        ),
        {"p": f"{CODE}-%"},
    ).scalars()
    assert set(report["community"]) == set(communities)


def test_report_by_grid_names_each_grid_cell(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    report = coverage_report(connection, level=10, by="grid", area_id=area_id)
    cells = connection.execute(
        text(
            "SELECT DISTINCT g.code FROM stairwell s JOIN building b ON b.id = s.building_id "
            "JOIN grid g ON g.id = b.grid_id WHERE b.source_id LIKE :p"
        ),
        {"p": f"{CODE}-%"},
    ).scalars()
    assert set(report["grid"]) == set(cells)


def test_report_share_is_covered_households_over_households(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    report = coverage_report(connection, type="kindergarten", level=5, area_id=area_id)
    table = stored_table(connection, area_id=area_id)
    pop = pd.read_sql_query(
        text("SELECT id, households FROM stairwell WHERE id = ANY(:ids)"),
        connection,
        params={"ids": table["origin"].unique().tolist()},
        index_col="id",
    )
    kg = table.loc[table["type"] == "kindergarten"]
    covered = pop.loc[kg.loc[kg["count_standard_5"] > 0, "origin"], "households"].sum()
    assert report["households_covered"].sum() == covered
    assert report["share_households"].between(0, 1).all()


def test_all_required_types_share_is_never_above_any_single_type(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    report = coverage_report(connection, level=15, by="subdistrict", area_id=area_id)
    every = report.loc[report["type"] == ALL_REQUIRED, "households_covered"].iloc[0]
    single = report.loc[report["type"] != ALL_REQUIRED, "households_covered"]
    assert every <= single.min()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "casino"}, "type"),
        ({"group": "runner"}, "group"),
        ({"level": 20}, "level"),
        ({"by": "street"}, "by"),
    ],
)
def test_report_bad_input_names_the_parameter(
    connection: Connection, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as info:
        coverage_report(connection, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_missing_report_lists_stairwells_lacking_the_most_types_first(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    missing = missing_report(connection, level=5, limit=5, area_id=area_id)
    assert len(missing) == 5
    assert missing["missing"].is_monotonic_decreasing
    required = {k for k, lv in facility_types().items() if lv == 5}
    assert all(set(t.split(",")) <= required for t in missing["types"] if t)


def test_area_without_streets_falls_back_to_labelled_straight_lines(
    connection: Connection, town: dict[str, object]
) -> None:
    connection.execute(text("DELETE FROM street_segment WHERE source = 'synthetic'"))
    area_id = compute_area(connection, town["area"], name="town")
    methods = connection.execute(
        text("SELECT DISTINCT method FROM circle_coverage WHERE area_id = :a"), {"a": area_id}
    ).scalars()
    assert set(methods) == {"euclidean_fallback"}


def test_osm_gates_and_walls_are_stored(connection: Connection) -> None:
    layers = read_osm(DATA / "beijing_haidian_xueyuanlu" / "raw" / "source_map.osm.pbf")
    stored = store_gates_and_barriers(connection, layers, source="osm-test")
    gates = connection.execute(
        text("SELECT count(*) FROM walk_gate WHERE source = 'osm-test'")
    ).scalar_one()
    assert gates == stored["gates"] == len(layers.entrances) > 0
    assert stored["barriers"] > 0


def _compound(connection: Connection) -> tuple[object, int]:
    """A street along y=0 and a walled yard (y 20..120) reached by a path through one gate."""
    lines = [
        ("s-main", "residential", [(-200, 0), (100, 0), (400, 0)]),
        ("s-yard", "footway", [(100, 0), (100, 100)]),
        ("s-side", "residential", [(-200, 0), (-200, 300), (400, 300), (400, 0)]),
    ]
    for sid, hw, pts in lines:
        wkt = shapely.LineString([lonlat(*p) for p in pts]).wkt
        connection.execute(
            text(
                "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m) "
                "VALUES ('yard', :sid, 0, :hw, ST_GeomFromText(:wkt, 4326), 1)"
            ),
            {"sid": sid, "hw": hw, "wkt": wkt},
        )
    wall = shapely.LineString(
        [lonlat(*p) for p in [(0, 20), (200, 20), (200, 120), (0, 120), (0, 20)]]
    )
    connection.execute(
        text(
            "INSERT INTO walk_barrier (source, source_id, kind, geom) "
            "VALUES ('yard', 'w1', 'wall', ST_GeomFromText(:wkt, 4326))"
        ),
        {"wkt": wall.wkt},
    )
    gate = connection.execute(
        text(
            "INSERT INTO walk_gate (source, source_id, kind, geom) VALUES ('yard', 'g1', 'gate', "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326)) RETURNING id"
        ),
        dict(zip(("x", "y"), lonlat(100, 20), strict=True)),
    ).scalar_one()
    (x0, y0), (x1, y1) = lonlat(-300, -100), lonlat(500, 400)
    return shapely.box(x0, y0, x1, y1), int(gate)


def test_a_closed_gate_keeps_the_walk_out_of_the_compound(connection: Connection) -> None:
    extent, gate = _compound(connection)
    inside = shapely.Point(lonlat(100, 100))
    import geopandas as gpd

    point = gpd.GeoSeries([inside], crs=4326)
    open_net = build_network(connection, extent)
    assert open_net is not None
    set_gate_closed(connection, gate, closed=True)
    closed_net = build_network(connection, extent)
    assert closed_net is not None
    comp_open = open_net.snap(point).frame["component"].iloc[0]
    comp_closed = closed_net.snap(point).frame["component"].iloc[0]
    street = gpd.GeoSeries([shapely.Point(lonlat(-150, 0))], crs=4326)
    assert open_net.snap(street).frame["component"].iloc[0] == comp_open
    assert closed_net.snap(street).frame["component"].iloc[0] != comp_closed


def test_a_change_rewrites_only_rows_of_its_type(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="town")
    stairwells = len(stored_table(connection, area_id=area_id)["origin"].unique())
    lon, lat = lonlat(20, 20)
    connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, geom) VALUES ('test', 'corner', "
            "'kindergarten', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        {"x": lon, "y": lat},
    )
    written = refresh(connection, [(lon, lat, "kindergarten")])
    levels = len(CircleSettings().standard_radius_m) * (1 + len(CircleSettings().speeds_kmh))
    assert 0 < written <= stairwells * levels


def test_a_connected_network_is_stored_as_one_piece(
    connection: Connection, town: dict[str, object]
) -> None:
    area_id = compute_area(connection, town["area"], name="pieces")
    summary = area_summary(connection, area_id)
    assert summary["network_pieces"] == 1


def test_a_street_that_meets_no_other_is_reported_as_its_own_piece(
    connection: Connection, town: dict[str, object]
) -> None:
    # A footpath inside the area that touches no other way: a piece of its own.
    (x0, y0), (x1, y1) = lonlat(300, 305), lonlat(300, 345)
    connection.execute(
        text(
            "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m) "
            "VALUES ('test', 'island', 0, 'footway', "
            "ST_MakeLine(ST_Point(:x0, :y0, 4326), ST_Point(:x1, :y1, 4326)), 40)"
        ),
        {"x0": x0, "y0": y0, "x1": x1, "y1": y1},
    )
    area_id = compute_area(connection, town["area"], name="pieces")
    summary = area_summary(connection, area_id)
    assert summary["network_pieces"] == 2
    smallest = summary["network_pieces_largest_first"][-1]
    assert smallest["edges"] == 1
    assert smallest["length_m"] == pytest.approx(40, abs=1)
