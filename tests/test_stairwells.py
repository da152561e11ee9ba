import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from shapely import affinity
from sqlalchemy import Connection, Engine, text
from typer.testing import CliRunner

from gis.cli import app
from gis.coords import wgs84_to_gcj02
from gis.crs import project_geometries, utm_epsg
from gis.errors import InputError
from gis.loader import store_layers
from gis.osm import read_source
from gis.settings import EstimateSettings
from gis.stairwells import (
    OTHER_USE_KEYS,
    RESIDENTIAL_USES,
    building_ids_for,
    estimate_stairwells,
    import_stairwell_counts,
    is_residential,
)
from tests.compounds import reference_shares, write_compound_osm
from tests.conftest import DATA

# Haidian, Beijing (UTM 50N); Helsinki centre (UTM 35N).
BEIJING = (116.35, 39.98)
HELSINKI = (24.94, 60.17)
SETTINGS = EstimateSettings(seed=7, unit_width_m=14.0, default_levels=6, households_per_floor=2)


def _origin_m(lonlat: tuple[float, float]) -> tuple[int, float, float]:
    epsg = utm_epsg(*lonlat)
    point = project_geometries(np.array([shapely.Point(lonlat)]), source=4326, target=epsg)[0]
    return epsg, point.x, point.y


def add_building(
    conn: Connection,
    source_id: str,
    polygon_m: shapely.Polygon,
    *,
    use: str | None = "residential",
    name: str | None = None,
    number: str | None = None,
    levels: int | None = None,
    at: tuple[float, float] = BEIJING,
    source: str = "osm",
) -> int:
    """Insert a building whose footprint is given in metres relative to ``at``."""
    epsg, x0, y0 = _origin_m(at)
    placed = affinity.translate(polygon_m, x0, y0)
    footprint = project_geometries(np.array([placed]), source=epsg, target=4326)[0]
    return int(
        conn.execute(
            text(
                "INSERT INTO building (source, source_id, name, number, use, levels, footprint,"
                " area_m2) VALUES (:s, :i, :n, :num, :u, :l,"
                " ST_Multi(ST_GeomFromText(:wkt, 4326)), :a) RETURNING id"
            ),
            {
                "s": source,
                "i": source_id,
                "n": name,
                "num": number,
                "u": use,
                "l": levels,
                "wkt": footprint.wkt,
                "a": placed.area,
            },
        ).scalar_one()
    )


def slab(length: float, depth: float, *, x: float = 0, y: float = 0, angle: float = 0) -> Any:
    return affinity.rotate(shapely.box(x, y, x + length, y + depth), angle, origin="centroid")


def stairwells(conn: Connection, building_id: int) -> list[Any]:
    return list(
        conn.execute(
            text(
                "SELECT unit_no, ST_X(entrance) AS lon, ST_Y(entrance) AS lat, households,"
                " residents, elderly, estimated, source, id FROM stairwell"
                " WHERE building_id = :b ORDER BY unit_no"
            ),
            {"b": building_id},
        ).all()
    )


def snapshot(conn: Connection) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = conn.execute(
        text(
            "SELECT b.source_id, s.unit_no, round(ST_X(s.entrance)::numeric, 9),"
            " round(ST_Y(s.entrance)::numeric, 9), s.households, s.residents, s.elderly"
            " FROM stairwell s JOIN building b ON b.id = s.building_id"
        )
    ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def write_csv(tmp_path: Path, body: str, name: str = "counts.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


# --- which buildings are homes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("use", "name"),
    [
        ("residential", None),
        ("apartments", "君临国际广场2幢"),
        ("dormitory", None),
        ("house", None),
        ("yes", "10号楼"),
        (None, "3栋"),
        ("yes", "2幢"),
        ("yes", "八角北路小区"),
        (None, "清华大学紫荆学生公寓"),
        ("Residential", None),
        ("yes", "１０号楼"),
        ("yes", "三号楼"),
        ("yes", "科巷新寓"),
    ],
)
def test_residential_uses_and_names_count_as_homes(use: str | None, name: str | None) -> None:
    assert is_residential(use, name)


@pytest.mark.parametrize(
    ("use", "name"),
    [
        ("commercial", "10号楼"),
        ("school", None),
        ("yes", None),
        (None, "新街口百货商场"),
        ("yes", "清华大学3号楼"),
        ("yes", "金鹰国际大厦2栋"),
        ("office", "职工宿舍"),
    ],
)
def test_other_uses_and_names_are_not_homes(use: str | None, name: str | None) -> None:
    assert not is_residential(use, name)


# --- the estimate ---------------------------------------------------------------------------


def test_long_slab_gets_one_entrance_per_unit_width(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(60, 12))
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert [r.unit_no for r in stairwells(connection, b)] == [1, 2, 3, 4]  # 60 / 14 ≈ 4.3


def test_small_house_gets_one_entrance_and_one_household(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(10, 9), use="house", levels=2)
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    rows = stairwells(connection, b)
    assert [(r.unit_no, r.households) for r in rows] == [(1, 1)]


def test_households_are_floors_times_households_per_floor(connection: Connection) -> None:
    tall = add_building(connection, "w1", slab(30, 12), levels=11)
    unknown = add_building(connection, "w2", slab(30, 12, y=50))
    estimate_stairwells(connection, building_ids=[tall, unknown], settings=SETTINGS)
    assert {r.households for r in stairwells(connection, tall)} == {22}
    assert {r.households for r in stairwells(connection, unknown)} == {12}  # default 6 floors


def test_entrances_lie_on_the_footprint_boundary(connection: Connection) -> None:
    l_shape = shapely.Polygon([(0, 0), (70, 0), (70, 12), (12, 12), (12, 50), (0, 50)])
    ids = [
        add_building(connection, "w1", slab(80, 11, angle=33)),
        add_building(connection, "w2", affinity.translate(l_shape, 0, 100)),
        add_building(connection, "w3", slab(45, 14, angle=-70), at=HELSINKI),
    ]
    estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    distances = connection.execute(
        text(
            "SELECT ST_Distance(ST_Boundary(b.footprint)::geography, s.entrance::geography)"
            " FROM stairwell s JOIN building b ON b.id = s.building_id"
            " WHERE b.id = ANY(:ids)"
        ),
        {"ids": ids},
    ).scalars()
    values = list(distances)
    assert len(values) >= 8
    assert max(values) < 0.5


def test_entrances_are_on_the_northern_long_side(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(56, 12, angle=15))
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    centre_lat = connection.execute(
        text("SELECT ST_Y(ST_Centroid(footprint)) FROM building WHERE id = :b"), {"b": b}
    ).scalar_one()
    assert all(r.lat > centre_lat for r in stairwells(connection, b))


def test_units_are_numbered_west_to_east(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(70, 12, angle=-20))
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    lons = [r.lon for r in stairwells(connection, b)]
    assert lons == sorted(lons)
    assert len(lons) == 5


def test_counts_are_consistent_with_the_census_ratios(connection: Connection) -> None:
    ids = [add_building(connection, f"w{i}", slab(42, 12, y=30 * i)) for i in range(40)]
    estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    rows = connection.execute(
        text("SELECT households, residents, elderly FROM stairwell WHERE building_id = ANY(:ids)"),
        {"ids": ids},
    ).all()
    households = np.array([r[0] for r in rows])
    residents = np.array([r[1] for r in rows])
    elderly = np.array([r[2] for r in rows])
    assert (elderly <= residents).all()
    # Stochastic rounding: each value is the floor or the ceiling of households × 2.62.
    assert (np.abs(residents - households * 2.62) < 1).all()
    assert 0.12 < elderly.sum() / residents.sum() < 0.26


def test_rerun_gives_the_same_rows(connection: Connection) -> None:
    ids = [add_building(connection, f"w{i}", slab(30 + 10 * i, 12, y=30 * i)) for i in range(5)]
    first = estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    rows_before = [stairwells(connection, b) for b in ids]
    second = estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    assert [stairwells(connection, b) for b in ids] == rows_before  # ids included: updated in place
    assert first == second


def test_results_do_not_depend_on_processing_order_or_building_ids(
    connection: Connection,
) -> None:
    shapes = {f"w{i}": slab(25 + 9 * i, 12, y=30 * i, angle=5 * i) for i in range(6)}
    ids = [add_building(connection, sid, shape) for sid, shape in shapes.items()]
    estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    together = snapshot(connection)
    connection.execute(text("DELETE FROM building WHERE id = ANY(:ids)"), {"ids": ids})
    # Re-import in reverse order (new ids), estimated one building at a time.
    new_ids = [add_building(connection, sid, shapes[sid]) for sid in reversed(list(shapes))]
    for b in new_ids:
        estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert snapshot(connection) == together


def test_the_seed_drives_the_draws(connection: Connection) -> None:
    ids = [add_building(connection, f"w{i}", slab(42, 12, y=30 * i)) for i in range(10)]
    estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    first = snapshot(connection)
    estimate_stairwells(
        connection, building_ids=ids, settings=SETTINGS.model_copy(update={"seed": 8})
    )
    assert snapshot(connection) != first


def test_real_counts_are_never_overwritten(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(60, 12))
    connection.execute(
        text(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
            " elderly, estimated, source) SELECT id, 1, ST_PointOnSurface(footprint), 9, 20, 4,"
            " false, 'csv' FROM building WHERE id = :b"
        ),
        {"b": b},
    )
    before = stairwells(connection, b)
    report = estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert stairwells(connection, b) == before
    assert report.skipped_real == 1
    assert report.stairwells == 0


def test_non_residential_buildings_get_no_stairwells(connection: Connection) -> None:
    ids = [
        add_building(connection, "w1", slab(60, 20), use="commercial"),
        add_building(connection, "w2", slab(60, 20, y=40), use="yes", name="清华大学3号楼"),
        add_building(connection, "w3", slab(60, 20, y=80), use="school"),
        add_building(connection, "w4", slab(60, 20, y=120), use=None),
    ]
    report = estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    assert report.residential == 0
    count = connection.execute(
        text("SELECT count(*) FROM stairwell WHERE building_id = ANY(:ids)"), {"ids": ids}
    ).scalar_one()
    assert count == 0


def test_unspecified_use_with_a_residential_name_is_estimated(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(30, 12), use="yes", name="10号楼")
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert len(stairwells(connection, b)) == 2


def test_footprints_below_the_minimum_are_skipped(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(7, 7))  # 49 m² < 60 m²
    report = estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert report.skipped_small == 1
    assert stairwells(connection, b) == []


def test_estimates_of_a_building_no_longer_residential_are_removed(
    connection: Connection,
) -> None:
    b = add_building(connection, "w1", slab(42, 12))
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    connection.execute(text("UPDATE building SET use = 'commercial' WHERE id = :b"), {"b": b})
    report = estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert report.removed == 3
    assert stairwells(connection, b) == []


def test_every_estimated_row_is_flagged_and_sourced(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(42, 12))
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert {(r.estimated, r.source) for r in stairwells(connection, b)} == {(True, "estimate")}


def test_estimate_without_building_ids_covers_every_building(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(42, 12))
    report = estimate_stairwells(connection, settings=SETTINGS)
    assert report.buildings >= 1
    assert len(stairwells(connection, b)) == 3


# --- real counts from CSV ------------------------------------------------------------------


@pytest.fixture
def estimated_slab(connection: Connection) -> int:
    b = add_building(connection, "w100", slab(56, 12), name="12号楼", number="12")
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert len(stairwells(connection, b)) == 4
    return b


def test_csv_counts_replace_the_estimates_of_their_building(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\nosm:w100,1,18,40,9\nosm:w100,2,17,39,12\n",
    )
    report = import_stairwell_counts(connection, path)
    assert report.ok
    assert report.stored == 2
    rows = stairwells(connection, estimated_slab)
    assert [(r.unit_no, r.households, r.residents, r.elderly) for r in rows] == [
        (1, 18, 40, 9),
        (2, 17, 39, 12),
    ]
    assert {(r.estimated, r.source) for r in rows} == {(False, "csv")}
    assert report.replaced_estimates == 4  # units 1-2 overwritten, 3-4 deleted


def test_csv_keeps_the_estimated_entrance_of_the_same_unit(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    before = stairwells(connection, estimated_slab)[2]
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\nosm:w100,3,1,2,0\n")
    import_stairwell_counts(connection, path)
    (after,) = stairwells(connection, estimated_slab)
    assert (after.lon, after.lat) == (before.lon, before.lat)


def test_csv_entrance_is_taken_from_lon_lat(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly,lon,lat\nosm:w100,1,12,30,5,116.3502,39.9801\n",
    )
    import_stairwell_counts(connection, path)
    (row,) = stairwells(connection, estimated_slab)
    assert (row.lon, row.lat) == pytest.approx((116.3502, 39.9801))


def test_csv_unit_without_a_point_is_placed_on_the_footprint(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\nosm:w100,6,1,2,0\n")
    import_stairwell_counts(connection, path)
    distance = connection.execute(
        text(
            "SELECT ST_Distance(ST_Boundary(b.footprint)::geography, s.entrance::geography)"
            " FROM stairwell s JOIN building b ON b.id = s.building_id WHERE b.id = :b"
        ),
        {"b": estimated_slab},
    ).scalar_one()
    assert distance < 0.5


def test_csv_references_by_id_name_and_number(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    other = add_building(connection, "w101", slab(30, 12, y=40), name="育新花园7号楼", number="7")
    third = add_building(connection, "w102", slab(30, 12, y=80), name="3栋", number="3")
    path = write_csv(
        tmp_path,
        "Building,Unit,Households,Residents,Elderly\n"
        f"{estimated_slab},1,1,1,0\n育新花园7号楼,1,2,2,0\n3栋,1,3,3,0\n",
    )
    report = import_stairwell_counts(connection, path)
    assert report.ok
    assert [r.households for r in stairwells(connection, estimated_slab)] == [1]
    assert [r.households for r in stairwells(connection, other)] == [2]
    assert [r.households for r in stairwells(connection, third)] == [3]


def test_csv_reimport_updates_in_place(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    header = "building,unit,households,residents,elderly\n"
    import_stairwell_counts(connection, write_csv(tmp_path, header + "osm:w100,1,10,20,3\n"))
    (first,) = stairwells(connection, estimated_slab)
    import_stairwell_counts(connection, write_csv(tmp_path, header + "osm:w100,1,11,25,4\n"))
    (second,) = stairwells(connection, estimated_slab)
    assert second.id == first.id
    assert (second.households, second.residents, second.elderly) == (11, 25, 4)


def test_estimate_after_csv_leaves_the_real_counts(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\nosm:w100,1,9,9,9\n")
    import_stairwell_counts(connection, path)
    estimate_stairwells(connection, building_ids=[estimated_slab], settings=SETTINGS)
    rows = stairwells(connection, estimated_slab)
    assert [(r.unit_no, r.households, r.estimated) for r in rows] == [(1, 9, False)]


BAD_ROWS = [
    ("osm:w999,1,1,1,0", "building", "unknown building"),
    ("osm:w100,x,1,1,0", "unit", "not an integer"),
    ("osm:w100,0,1,1,0", "unit", "must be ≥ 1"),
    ("osm:w100,1,2.5,1,0", "households", "not an integer"),
    ("osm:w100,1,-3,1,0", "households", "must be ≥ 0"),
    ("osm:w100,1,1,-1,0", "residents", "must be ≥ 0"),
    ("osm:w100,1,1,5,6", "elderly", "exceed"),
    ("osm:w100,1,1,5,", "elderly", "missing value"),
    ("osm:w100,1,1,5", "elderly", "missing value"),
    (",1,1,5,0", "building", "missing value"),
]


@pytest.mark.parametrize(("line", "column", "reason"), BAD_ROWS)
def test_each_bad_row_is_reported_with_its_row_and_column(
    connection: Connection,
    estimated_slab: int,
    tmp_path: Path,
    line: str,
    column: str,
    reason: str,
) -> None:
    path = write_csv(
        tmp_path, f"building,unit,households,residents,elderly\nosm:w100,2,1,1,0\n{line}\n"
    )
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column) for e in report.rejected] == [(3, column)]
    assert reason in report.rejected[0].reason
    assert report.stored == 1  # the valid row is still stored


def test_duplicate_building_and_unit_rejects_every_occurrence(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\n"
        f"osm:w100,1,1,1,0\nosm:w100,2,1,1,0\n{estimated_slab},1,2,2,0\n",
    )
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column) for e in report.rejected] == [(2, "unit"), (4, "unit")]
    assert "row 4" in report.rejected[0].reason
    assert [r.unit_no for r in stairwells(connection, estimated_slab)] == [2]


def test_a_missing_column_is_reported_on_the_header_row(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "building,unit,households,residents\nosm:w100,1,1,1\n")
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column, e.reason) for e in report.rejected] == [
        (1, "elderly", "missing column")
    ]
    assert report.stored == 0
    assert {r.estimated for r in stairwells(connection, estimated_slab)} == {True}


def test_an_ambiguous_name_is_rejected(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    add_building(connection, "w201", slab(30, 12, y=40), name="5号楼", number="5")
    add_building(connection, "w202", slab(30, 12, y=80), name="5号楼", number="5")
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\n5号楼,1,1,1,0\n")
    report = import_stairwell_counts(connection, path)
    assert "2 buildings match" in report.rejected[0].reason


def test_strict_stores_nothing_when_a_row_is_bad(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    before = stairwells(connection, estimated_slab)
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\nosm:w100,1,1,1,0\nosm:w100,2,1,1,5\n",
    )
    report = import_stairwell_counts(connection, path, strict=True)
    assert [e.row for e in report.rejected] == [3]
    assert report.stored == 0
    assert stairwells(connection, estimated_slab) == before


def test_a_missing_file_raises_input_error_naming_it(
    connection: Connection, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="no such file"):
        import_stairwell_counts(connection, tmp_path / "absent.csv")


def test_building_ids_for_a_source_ignore_unknown_ids(connection: Connection) -> None:
    a = add_building(connection, "w1", slab(20, 10))
    b = add_building(connection, "w2", slab(20, 10, y=30))
    add_building(connection, "w1", slab(20, 10, y=60), source="other")
    assert building_ids_for(connection, "osm", ["w2", "w1", "w404"]) == sorted([a, b])


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def committed_slab(engine: Engine) -> Iterator[tuple[str, int]]:
    """A committed estimated building of a private source, deleted with its stairwells after."""
    source = f"test-stairwells-{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        b = add_building(conn, "w1", slab(42, 12), source=source)
        estimate_stairwells(conn, building_ids=[b], settings=SETTINGS)
        last_run = conn.execute(text("SELECT coalesce(max(id), 0) FROM import_run")).scalar_one()
    yield source, b
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM building WHERE source = :s"), {"s": source})
        conn.execute(
            text("DELETE FROM import_run WHERE id > :id AND kind = 'stairwells'"), {"id": last_run}
        )


def _run_cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["import", "stairwells", *args], env={"WANGGE_DATABASE_URL": database_url}
    )


def test_cli_exit_0_and_counts_committed(
    database_url: str, engine: Engine, committed_slab: tuple[str, int], tmp_path: Path
) -> None:
    source, b = committed_slab
    path = write_csv(
        tmp_path, f"building,unit,households,residents,elderly\n{source}:w1,1,12,30,6\n"
    )
    result = _run_cli(database_url, str(path))
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        assert [(r.unit_no, r.residents, r.estimated) for r in stairwells(conn, b)] == [
            (1, 30, False)
        ]


def test_cli_exit_1_lists_rejected_rows_and_stores_the_valid_ones(
    database_url: str, engine: Engine, committed_slab: tuple[str, int], tmp_path: Path
) -> None:
    source, b = committed_slab
    path = write_csv(
        tmp_path,
        f"building,unit,households,residents,elderly\n{source}:w1,1,12,30,6\n{source}:w1,2,1,1,3\n",
    )
    result = _run_cli(database_url, str(path))
    assert result.exit_code == 1
    assert "row 3, elderly" in " ".join(result.output.split())
    with engine.connect() as conn:
        assert [r.unit_no for r in stairwells(conn, b)] == [1]


def test_cli_strict_exit_1_stores_nothing(
    database_url: str, engine: Engine, committed_slab: tuple[str, int], tmp_path: Path
) -> None:
    source, b = committed_slab
    path = write_csv(
        tmp_path,
        f"building,unit,households,residents,elderly\n{source}:w1,1,12,30,6\nosm:w0,2,1,1,0\n",
    )
    result = _run_cli(database_url, str(path), "--strict")
    assert result.exit_code == 1
    with engine.connect() as conn:
        assert {r.estimated for r in stairwells(conn, b)} == {True}


def test_cli_exit_2_when_the_file_cannot_be_read(database_url: str, tmp_path: Path) -> None:
    result = _run_cli(database_url, str(tmp_path / "absent.csv"))
    assert result.exit_code == 2
    assert "no such file" in " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture
def osm_source(engine: Engine) -> Iterator[str]:
    """A private source name for `wangge import osm`; its committed rows are deleted after."""
    source = f"test-stairwells-osm-{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        last_run = conn.execute(text("SELECT coalesce(max(id), 0) FROM import_run")).scalar_one()
    yield source
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_run WHERE id > :id"), {"id": last_run})
        for table in ("building", "street_segment", "facility"):
            conn.execute(text(f"DELETE FROM {table} WHERE source = :s"), {"s": source})


def test_import_osm_estimates_the_stairwells_of_the_imported_buildings(
    database_url: str, engine: Engine, osm_source: str, committed_slab: tuple[str, int]
) -> None:
    _, other = committed_slab
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM stairwell WHERE building_id = :b"), {"b": other})
    haidian = DATA / "beijing_haidian_xueyuanlu" / "raw" / "source_map.osm.pbf"
    result = CliRunner().invoke(
        app,
        ["import", "osm", str(haidian), "--source", osm_source],
        env={"WANGGE_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        estimated = conn.execute(
            text(
                "SELECT count(*) FROM stairwell s JOIN building b ON b.id = s.building_id"
                " WHERE b.source = :s AND s.estimated"
            ),
            {"s": osm_source},
        ).scalar_one()
        assert stairwells(conn, other) == []  # another source's building is left alone
    assert estimated > 0
    assert f"{estimated} stairwells" in " ".join(result.output.split())


def test_an_entrance_far_from_its_building_is_rejected(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly,lon,lat\nosm:w100,1,1,1,0,116.36,39.98\n",
    )
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column) for e in report.rejected] == [(2, "lon")]
    assert "m from building" in report.rejected[0].reason


def test_gcj02_entrances_are_converted_to_wgs84(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    lon, lat = connection.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(footprint) AS p"
            " FROM building WHERE id = :b) q"
        ),
        {"b": estimated_slab},
    ).one()
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly,lon,lat\n"
        f"osm:w100,1,1,1,0,{gcj_lon:.9f},{gcj_lat:.9f}\n",
    )
    assert not import_stairwell_counts(connection, path, crs="wgs84").ok  # ≈ 500 m off
    report = import_stairwell_counts(connection, path, crs="gcj02")
    assert report.ok
    (row,) = stairwells(connection, estimated_slab)
    assert (row.lon, row.lat) == pytest.approx((lon, lat), abs=1e-7)


def test_an_unknown_coordinate_system_is_refused(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\nosm:w100,1,1,1,0\n")
    with pytest.raises(InputError) as info:
        import_stairwell_counts(connection, path, crs="mars")
    assert info.value.field == "crs"


def test_cli_crs_option_converts_gcj02_entrances(
    database_url: str, engine: Engine, committed_slab: tuple[str, int], tmp_path: Path
) -> None:
    source, b = committed_slab
    with engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(entrance), ST_Y(entrance) FROM stairwell WHERE building_id = :b"
                " AND unit_no = 1"
            ),
            {"b": b},
        ).one()
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly,lon,lat\n"
        f"{source}:w1,1,12,30,6,{gcj_lon:.9f},{gcj_lat:.9f}\n",
    )
    result = _run_cli(database_url, str(path), "--crs", "gcj02")
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        (row,) = stairwells(conn, b)
    assert (row.lon, row.lat) == pytest.approx((lon, lat), abs=1e-7)


def test_a_collapsed_footprint_gets_no_estimate_but_accepts_real_counts(
    connection: Connection, tmp_path: Path
) -> None:
    b = connection.execute(
        text(
            "INSERT INTO building (source, source_id, use, footprint, area_m2) VALUES"
            " ('osm', 'w300', 'residential', ST_GeomFromText('MULTIPOLYGON(((116.35 39.98,"
            " 116.3501 39.98, 116.3502 39.98, 116.35 39.98)))', 4326), 0) RETURNING id"
        )
    ).scalar_one()
    report = estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert report.skipped_small == 1
    path = write_csv(tmp_path, "building,unit,households,residents,elderly\nosm:w300,1,4,9,2\n")
    assert import_stairwell_counts(connection, path).ok
    (row,) = stairwells(connection, b)
    assert row.lat == pytest.approx(39.98)
    assert 116.35 <= row.lon <= 116.3502


def test_row_numbers_count_blank_lines_as_a_spreadsheet_does(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\nosm:w100,1,1,1,0\n\nosm:w100,2,1,1,x\n",
    )
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column) for e in report.rejected] == [(4, "elderly")]


@pytest.mark.parametrize("reference", ["１２号楼", "12栋", "十二号楼", "0012号楼"])
def test_number_references_are_normalised_like_the_osm_reader(
    connection: Connection, estimated_slab: int, tmp_path: Path, reference: str
) -> None:
    path = write_csv(tmp_path, f"building,unit,households,residents,elderly\n{reference},1,5,5,5\n")
    assert import_stairwell_counts(connection, path).ok
    assert [r.households for r in stairwells(connection, estimated_slab)] == [5]


def test_an_id_with_leading_zeros_or_out_of_range_is_resolved_safely(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\n"
        f"000{estimated_slab},1,5,5,5\n99999999999999999999,1,1,1,0\n",
    )
    report = import_stairwell_counts(connection, path)
    assert [(e.row, e.column) for e in report.rejected] == [(3, "building")]
    assert [r.households for r in stairwells(connection, estimated_slab)] == [5]


def test_each_csv_import_is_logged_with_its_rejections(
    connection: Connection, estimated_slab: int, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "building,unit,households,residents,elderly\nosm:w100,1,1,1,0\nosm:w404,1,1,1,0\n",
    )
    report = import_stairwell_counts(connection, path)
    kind, counts, rejected = connection.execute(
        text("SELECT kind, counts, rejected FROM import_run WHERE id = :id"),
        {"id": report.import_run_id},
    ).one()
    assert kind == "stairwells"
    assert (counts["rows"], counts["stored"]) == (2, 1)
    assert rejected == [{"row": "3", "column": "building", "reason": "unknown building 'osm:w404'"}]


def test_an_empty_building_list_estimates_nothing(connection: Connection) -> None:
    b = add_building(connection, "w1", slab(42, 12))
    report = estimate_stairwells(connection, building_ids=[], settings=SETTINGS)
    assert (report.buildings, report.stairwells) == (0, 0)
    assert stairwells(connection, b) == []


def test_entrances_of_a_u_shaped_building_are_distinct_walls_facing_north(
    connection: Connection,
) -> None:
    # Open to the north: two 12 m arms and a courtyard wall 20 m further south.
    u_shape = shapely.Polygon(
        [(0, 0), (70, 0), (70, 40), (58, 40), (58, 20), (12, 20), (12, 40), (0, 40)]
    )
    b = add_building(connection, "w1", u_shape)
    estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    epsg, x0, y0 = _origin_m(BEIJING)
    rows = stairwells(connection, b)
    points = project_geometries(
        shapely.points([(r.lon, r.lat) for r in rows]), source=4326, target=epsg
    )
    xy = shapely.get_coordinates(points) - [x0, y0]
    # 70 / 14 = 5 units at x = 7, 21, 35, 49, 63: arms at y = 40, courtyard wall at y = 20.
    assert xy[:, 0] == pytest.approx([7, 21, 35, 49, 63], abs=0.01)
    assert xy[:, 1] == pytest.approx([40, 20, 20, 20, 40], abs=0.01)


def test_a_self_intersecting_footprint_is_estimated_on_its_repaired_shape(
    connection: Connection,
) -> None:
    bow_tie = shapely.Polygon([(0, 0), (40, 12), (40, 0), (0, 12)])
    b = add_building(connection, "w1", bow_tie)
    report = estimate_stairwells(connection, building_ids=[b], settings=SETTINGS)
    assert report.stairwells == len(stairwells(connection, b)) >= 1
    distance = connection.execute(
        text(
            "SELECT max(ST_Distance(ST_Boundary(ST_MakeValid(b.footprint))::geography,"
            " s.entrance::geography)) FROM stairwell s JOIN building b ON b.id = s.building_id"
            " WHERE b.id = :b"
        ),
        {"b": b},
    ).scalar_one()
    assert distance < 0.5


# --- buildings in residential compounds -----------------------------------------------------


@pytest.fixture
def compound_stairwells(connection: Connection, tmp_path: Path) -> dict[str, int]:
    """Stairwells estimated per building of the synthetic compound file (tests/compounds.py)."""
    layers = read_source(write_compound_osm(tmp_path / "compound.osm"))
    store_layers(connection, layers, source="test-compound")
    ids = building_ids_for(connection, "test-compound", list(layers.buildings["source_id"]))
    estimate_stairwells(connection, building_ids=ids, settings=SETTINGS)
    rows = connection.execute(
        text(
            "SELECT b.source_id, count(s.id) FROM building b"
            " LEFT JOIN stairwell s ON s.building_id = b.id AND s.estimated"
            " WHERE b.source = 'test-compound' GROUP BY b.source_id"
        )
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def test_unnamed_building_inside_residential_landuse_is_estimated(
    compound_stairwells: dict[str, int],
) -> None:
    assert compound_stairwells["w21"] >= 1


def test_unnamed_building_outside_residential_landuse_is_not_estimated(
    compound_stairwells: dict[str, int],
) -> None:
    assert compound_stairwells["w22"] == 0


def test_shop_inside_residential_landuse_is_not_estimated(
    compound_stairwells: dict[str, int],
) -> None:
    assert compound_stairwells["w23"] == 0


def test_building_mostly_outside_residential_landuse_is_not_estimated(
    compound_stairwells: dict[str, int],
) -> None:
    assert compound_stairwells["w24"] == 0


def test_named_office_block_inside_residential_landuse_is_not_estimated(
    compound_stairwells: dict[str, int],
) -> None:
    assert compound_stairwells["w25"] == 0


@pytest.mark.parametrize(
    ("use", "name", "tags"),
    [
        ("yes", None, {"landuse_residential": "yes"}),
        (None, None, {"landuse_residential": "yes", "building:use": "residential"}),
    ],
)
def test_compound_tags_make_unnamed_unspecified_buildings_homes(
    use: str | None, name: str | None, tags: dict[str, str]
) -> None:
    assert is_residential(use, name, tags)


@pytest.mark.parametrize(
    ("use", "name", "tags"),
    [
        ("yes", None, {}),
        ("yes", None, None),
        ("yes", None, {"landuse_residential": "no"}),
        ("yes", None, {"landuse_residential": "yes", "amenity": "clinic"}),
        ("yes", None, {"landuse_residential": "yes", "office": "company"}),
        ("yes", None, {"landuse_residential": "yes", "building:use": "commercial"}),
        ("garage", None, {"landuse_residential": "yes"}),
        ("commercial", None, {"landuse_residential": "yes"}),
        ("yes", "物业管理处", {"landuse_residential": "yes"}),
    ],
)
def test_compound_tags_do_not_make_other_buildings_homes(
    use: str | None, name: str | None, tags: dict[str, str] | None
) -> None:
    assert not is_residential(use, name, tags)


def _reference_residential(path: Path) -> tuple[int, int]:
    """Homes of an OSM file by the name/use rule alone, and with the compound rule added."""
    shares, all_tags = reference_shares(path)
    by_name = with_compounds = 0
    for source_id, tags in all_tags.items():
        use = tags.get("building", "").strip().lower()
        name = tags.get("name") or tags.get("name:zh")
        named_home = is_residential(use, name)
        in_compound = (
            use in ("yes", "building")
            and not name
            and shares[source_id] >= 0.5
            and not OTHER_USE_KEYS.intersection(tags)
            and tags.get("building:use", "residential") in RESIDENTIAL_USES
        )
        by_name += named_home
        with_compounds += named_home or in_compound
    return by_name, with_compounds


@pytest.mark.parametrize(
    "area", ["nanjing_xinjiekou", "beijing_haidian_xueyuanlu"], ids=["nanjing", "xueyuanlu"]
)
def test_demo_imports_count_compound_buildings_as_homes(connection: Connection, area: str) -> None:
    path = next((DATA / area / "raw").glob("*.osm.pbf"))
    by_name, expected = _reference_residential(path)
    store_layers(connection, read_source(path), source="test-demo-homes")
    ids = connection.execute(
        text("SELECT id FROM building WHERE source = 'test-demo-homes'")
    ).scalars()
    report = estimate_stairwells(connection, building_ids=list(ids), settings=SETTINGS)
    assert report.residential == expected
    assert expected > by_name
