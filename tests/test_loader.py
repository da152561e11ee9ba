"""Bulk upserts of gis.loader against real PostGIS."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from gis import loader
from gis.errors import InputError
from gis.loader import (
    ellipsoidal_area_m2,
    load_buildings,
    load_facilities,
    load_streets,
    record_import,
)

UTM50N = 32650
X0, Y0 = 440_000.0, 4_417_000.0  # Haidian, Beijing, in UTM 50N metres


def _buildings(count: int = 3, *, side: float = 100.0, **columns: Any) -> Any:
    boxes = [shapely.box(X0 + i * 200, Y0, X0 + i * 200 + side, Y0 + side) for i in range(count)]
    frame = gpd.GeoDataFrame(
        {"source_id": [f"w{i}" for i in range(count)], **columns}, geometry=boxes, crs=UTM50N
    )
    return frame.to_crs(4326)


def _streets(parts: int) -> Any:
    lines = [shapely.LineString([(X0, Y0 + i * 50), (X0 + 100, Y0 + i * 50)]) for i in range(parts)]
    frame = gpd.GeoDataFrame(
        {"source_id": ["w9"] * parts, "part": list(range(parts)), "highway": ["footway"] * parts},
        geometry=lines,
        crs=UTM50N,
    )
    return frame.to_crs(4326)


def _one(connection: Connection, sql: str, **params: Any) -> Any:
    return connection.execute(text(sql), params).one()


def test_building_area_is_square_metres(connection: Connection) -> None:
    load_buildings(connection, _buildings(1, side=100.0), source="t")
    (area,) = _one(connection, "SELECT area_m2 FROM building WHERE source = 't'")
    assert area == pytest.approx(10_000, rel=0.005)


def test_polygon_is_stored_as_multipolygon_in_wgs84(connection: Connection) -> None:
    load_buildings(connection, _buildings(1), source="t")
    kind, srid = _one(
        connection, "SELECT GeometryType(footprint), ST_SRID(footprint) FROM building"
    )
    assert (kind, srid) == ("MULTIPOLYGON", 4326)


def test_first_load_inserts_every_row(connection: Connection) -> None:
    result = load_buildings(connection, _buildings(3), source="t")
    assert (result.inserted, result.updated, result.unchanged) == (3, 0, 0)


def test_reloading_the_same_rows_changes_nothing(connection: Connection) -> None:
    load_buildings(connection, _buildings(3), source="t")
    result = load_buildings(connection, _buildings(3), source="t")
    (count,) = _one(connection, "SELECT count(*) FROM building WHERE source = 't'")
    assert (result.inserted, result.updated, result.unchanged, count) == (0, 0, 3, 3)


def test_changed_geometry_updates_the_row_and_its_area(connection: Connection) -> None:
    load_buildings(connection, _buildings(2, side=100.0), source="t")
    result = load_buildings(connection, _buildings(2, side=50.0), source="t")
    areas = connection.execute(text("SELECT area_m2 FROM building WHERE source = 't'")).scalars()
    assert result.updated == 2
    assert list(areas) == pytest.approx([2500, 2500], rel=0.005)


def test_same_source_id_under_another_source_is_another_row(connection: Connection) -> None:
    load_buildings(connection, _buildings(2), source="a")
    load_buildings(connection, _buildings(2), source="b")
    (count,) = _one(connection, "SELECT count(*) FROM building WHERE source IN ('a', 'b')")
    assert count == 4


def test_duplicate_source_ids_in_one_frame_keep_the_last(connection: Connection) -> None:
    frame = _buildings(2, name=["first", "second"]).assign(source_id=["w1", "w1"])
    load_buildings(connection, frame, source="t")
    names = connection.execute(text("SELECT name FROM building WHERE source = 't'")).scalars()
    assert list(names) == ["second"]


def test_levels_tags_and_repaired_are_stored(connection: Connection) -> None:
    frame = _buildings(1, levels=[6], repaired=[True], tags=[{"building": "apartments"}])
    load_buildings(connection, frame, source="t")
    row = _one(connection, "SELECT levels, repaired, tags FROM building WHERE source = 't'")
    assert tuple(row) == (6, True, {"building": "apartments"})


def test_frame_not_in_wgs84_is_refused(connection: Connection) -> None:
    frame = _buildings(1).to_crs(UTM50N)
    with pytest.raises(InputError, match="EPSG:4326"):
        load_buildings(connection, frame, source="t")


def test_frame_with_missing_geometry_is_refused(connection: Connection) -> None:
    frame = _buildings(2)
    frame.loc[1, "geometry"] = None
    with pytest.raises(InputError, match="w1"):
        load_buildings(connection, frame, source="t")


def test_load_is_not_committed(connection: Connection, engine: Engine) -> None:
    load_buildings(connection, _buildings(2), source="t-uncommitted")
    with engine.connect() as other:
        (count,) = _one(other, "SELECT count(*) FROM building WHERE source = 't-uncommitted'")
    assert count == 0


def test_street_length_is_metres(connection: Connection) -> None:
    load_streets(connection, _streets(1), source="t")
    (length,) = _one(connection, "SELECT length_m FROM street_segment WHERE source = 't'")
    assert length == pytest.approx(100.0, rel=0.005)


def test_street_parts_beyond_the_new_last_part_are_removed(connection: Connection) -> None:
    load_streets(connection, _streets(3), source="t")
    load_streets(connection, _streets(2), source="t")
    parts = connection.execute(
        text("SELECT part FROM street_segment WHERE source = 't' ORDER BY part")
    ).scalars()
    assert list(parts) == [0, 1]


def test_facility_capacity_read_from_beds_tag(connection: Connection) -> None:
    frame = gpd.GeoDataFrame(
        {
            "source_id": ["n1", "n2"],
            "type": ["nursing_home", "nursing_home"],
            "tags": [{"beds": "120"}, {"beds": "about 50"}],
        },
        geometry=[shapely.Point(116.3, 39.9), shapely.Point(116.31, 39.9)],
        crs=4326,
    )
    load_facilities(connection, frame, source="t")
    capacities = connection.execute(
        text("SELECT capacity FROM facility WHERE source = 't' ORDER BY source_id")
    ).scalars()
    assert list(capacities) == [120, None]


def test_import_run_records_counts_and_rejected(connection: Connection) -> None:
    rejected = [{"layer": "buildings", "source_id": "w7", "reason": "missing geometry"}]
    run_id = record_import(
        connection, kind="osm", path="x.geojson", counts={"buildings": 1}, rejected=rejected
    )
    row = _one(connection, "SELECT kind, counts, rejected FROM import_run WHERE id = :i", i=run_id)
    assert tuple(row) == ("osm", {"buildings": 1}, rejected)


def _index_definitions(connection: Connection) -> list[str]:
    rows = connection.execute(
        text("SELECT indexdef FROM pg_indexes WHERE tablename = 'building' ORDER BY indexname")
    )
    return list(rows.scalars())


@pytest.fixture
def bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load counts as a big one, so the bulk paths run on small frames."""
    monkeypatch.setattr(loader, "BULK_MIN_ROWS", 1)
    monkeypatch.setattr(loader, "BULK_SHARE", 0.0)


@pytest.mark.usefixtures("bulk")
def test_bulk_first_import_stores_rows_like_the_upsert(connection: Connection) -> None:
    frame = _buildings(2, levels=[6, 7], tags=[{"building": "yes"}, {"name": "1号楼"}])
    result = load_buildings(connection, frame, source="t-bulk")
    rows = connection.execute(
        text(
            "SELECT source_id, levels, tags, GeometryType(footprint), round(area_m2 / 100) "
            "FROM building WHERE source = 't-bulk' ORDER BY source_id"
        )
    ).all()
    assert result.inserted == 2
    assert [tuple(r) for r in rows] == [
        ("w0", 6, {"building": "yes"}, "MULTIPOLYGON", 100),
        ("w1", 7, {"name": "1号楼"}, "MULTIPOLYGON", 100),
    ]


@pytest.mark.usefixtures("bulk")
def test_bulk_first_import_rebuilds_every_index(connection: Connection) -> None:
    before = _index_definitions(connection)
    load_buildings(connection, _buildings(3), source="t-bulk")
    assert _index_definitions(connection) == before


@pytest.mark.usefixtures("bulk")
def test_bulk_first_import_keeps_the_unique_source_key(connection: Connection) -> None:
    load_buildings(connection, _buildings(1), source="t-bulk")
    duplicate = text(
        "INSERT INTO building (source, source_id, footprint, area_m2) "
        "SELECT source, source_id, footprint, area_m2 FROM building WHERE source = 't-bulk'"
    )
    savepoint = connection.begin_nested()
    with pytest.raises(IntegrityError, match="building_source_key"):
        connection.execute(duplicate)
    savepoint.rollback()


@pytest.mark.usefixtures("bulk")
def test_bulk_reimport_updates_in_place(connection: Connection) -> None:
    load_buildings(connection, _buildings(3, name=["a", "b", "c"]), source="t-bulk")
    result = load_buildings(connection, _buildings(3, name=["a", "B", "c"]), source="t-bulk")
    names = connection.execute(
        text("SELECT name FROM building WHERE source = 't-bulk' ORDER BY source_id")
    ).scalars()
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 2)
    assert list(names) == ["a", "B", "c"]


def test_ellipsoidal_area_matches_postgis_geography(connection: Connection) -> None:
    frame = _buildings(5, side=300.0)
    areas = ellipsoidal_area_m2(frame.geometry.array)
    reference = [
        connection.execute(
            text("SELECT ST_Area(ST_GeomFromWKB(:wkb, 4326)::geography)"),
            {"wkb": shapely.to_wkb(g)},
        ).scalar_one()
        for g in frame.geometry
    ]
    assert list(areas) == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("big", [False, True], ids=["upsert", "bulk"])
def test_rows_prepared_in_chunks_all_arrive(
    connection: Connection, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    monkeypatch.setattr(loader, "CHUNK_ROWS", 2)
    if big:
        monkeypatch.setattr(loader, "BULK_MIN_ROWS", 1)
        monkeypatch.setattr(loader, "BULK_SHARE", 0.0)
    load_buildings(connection, _buildings(5), source="t-chunks")
    ids = connection.execute(
        text("SELECT source_id FROM building WHERE source = 't-chunks' ORDER BY source_id")
    ).scalars()
    assert list(ids) == ["w0", "w1", "w2", "w3", "w4"]


@pytest.mark.parametrize(
    "tags",
    [{"name": '10号楼 "东"\\', "building": "yes"}, {"capacity": 120, "levels": [3, 5]}, {}],
    ids=["quotes-and-backslash", "non-string-values", "empty"],
)
def test_tags_round_trip_through_jsonb(connection: Connection, tags: dict[str, Any]) -> None:
    load_buildings(connection, _buildings(1, tags=[tags]), source="t")
    (stored,) = _one(connection, "SELECT tags FROM building WHERE source = 't'")
    assert stored == tags


@pytest.mark.parametrize("big", [False, True], ids=["upsert", "bulk"])
def test_text_with_copy_control_characters_round_trips(
    connection: Connection, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    if big:
        monkeypatch.setattr(loader, "BULK_MIN_ROWS", 1)
        monkeypatch.setattr(loader, "BULK_SHARE", 0.0)
    names = ["a\tb", "c\nd\re", "f\\N", None]
    load_buildings(connection, _buildings(4, name=names), source="t-escape")
    stored = connection.execute(
        text("SELECT name FROM building WHERE source = 't-escape' ORDER BY source_id")
    ).scalars()
    assert list(stored) == names


def test_tags_holding_the_object_separator_round_trip(connection: Connection) -> None:
    tags = [{"note": "a},{b"}, {"building": "yes"}]
    load_buildings(connection, _buildings(2, tags=tags), source="t")
    stored = connection.execute(
        text("SELECT tags FROM building WHERE source = 't' ORDER BY source_id")
    ).scalars()
    assert list(stored) == tags


@pytest.mark.parametrize("big", [False, True], ids=["upsert", "bulk"])
def test_multipolygon_footprint_keeps_every_part(
    connection: Connection, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    if big:
        monkeypatch.setattr(loader, "BULK_MIN_ROWS", 1)
        monkeypatch.setattr(loader, "BULK_SHARE", 0.0)
    frame = _buildings(2)
    frame.loc[0, "geometry"] = shapely.MultiPolygon(list(frame.geometry))
    load_buildings(connection, frame.iloc[:1], source="t-multi")
    parts, srid = _one(
        connection,
        "SELECT ST_NumGeometries(footprint), ST_SRID(footprint) FROM building "
        "WHERE source = 't-multi'",
    )
    assert (parts, srid) == (2, 4326)


def test_missing_levels_are_stored_as_null(connection: Connection) -> None:
    load_buildings(connection, _buildings(2, levels=[6, None]), source="t")
    levels = connection.execute(
        text("SELECT levels FROM building WHERE source = 't' ORDER BY source_id")
    ).scalars()
    assert list(levels) == [6, None]


def test_non_polygonal_footprint_is_refused_naming_the_row(connection: Connection) -> None:
    frame = _buildings(2)
    frame.loc[1, "geometry"] = frame.geometry.iloc[1].exterior
    with pytest.raises(InputError, match="w1"):
        load_buildings(connection, frame, source="t")
