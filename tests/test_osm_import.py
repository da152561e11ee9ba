"""Reading OSM and vector files, and the ``wangge import osm`` command, against real PostGIS."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import osmium
import pytest
import shapely
from sqlalchemy import Connection, Engine, text
from typer.testing import CliRunner

from gis.cli import app
from gis.errors import InputError
from gis.loader import load_buildings, load_facilities, load_streets, store_layers
from gis.osm import (
    load_facility_mapping,
    mark_residential_landuse,
    parse_building_number,
    parse_levels,
    read_osm,
    read_source,
    read_vector,
)
from tests.compounds import reference_shares, write_compound_osm
from tests.conftest import DATA

HELSINKI = DATA / "helsinki_centre" / "raw" / "Helsinki.osm.pbf"
HAIDIAN = DATA / "beijing_haidian_xueyuanlu" / "raw" / "source_map.osm.pbf"
NANJING = DATA / "nanjing_xinjiekou" / "raw" / "source_osm_bbox.osm.pbf"
NANJING_BUILDINGS = DATA / "nanjing_xinjiekou" / "buildings.geojson"


class BuildingAreaCounter(osmium.SimpleHandler):  # type: ignore[misc]
    """Independent count of the building areas a file holds in full.

    Closed ways tagged ``building`` (not ``no``) whose nodes all have locations in the file,
    plus multipolygon relations tagged ``building`` whose member ways are all such complete
    ways (an extract cut along a bbox holds parts of outlines that cannot be areas).
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.complete_ways: set[int] = set()

    def way(self, way: Any) -> None:
        nodes = way.nodes
        if not all(node.location.valid() for node in nodes):
            return
        self.complete_ways.add(way.id)
        closed = len(nodes) >= 4 and nodes[0].ref == nodes[len(nodes) - 1].ref
        if closed and way.tags.get("building", "no") != "no":
            self.count += 1

    def relation(self, relation: Any) -> None:
        tags = relation.tags
        if tags.get("type") != "multipolygon" or tags.get("building", "no") == "no":
            return
        ways = [member.ref for member in relation.members if member.type == "w"]
        if ways and all(way in self.complete_ways for way in ways):
            self.count += 1


def _count(connection: Connection, table: str, source: str) -> int:
    # Table names come from the literals of the tests below.
    sql = text(f"SELECT count(*) FROM {table} WHERE source = :source")
    return int(connection.execute(sql, {"source": source}).scalar_one())


def _feature(source_id: int, geometry: dict[str, Any] | None, **properties: Any) -> dict[str, Any]:
    props = {"osm_type": "way", "osm_id": source_id, "building": "yes", **properties}
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _square(x: float, y: float, size: float = 0.0002) -> dict[str, Any]:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def _write_geojson(path: Path, features: list[dict[str, Any]], crs: str | None = None) -> Path:
    document: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        document["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_helsinki_building_count_equals_independent_osmium_count(connection: Connection) -> None:
    counter = BuildingAreaCounter()
    counter.apply_file(str(HELSINKI), locations=True)
    layers = read_osm(HELSINKI)
    load_buildings(connection, layers.buildings, source="test-helsinki")
    assert counter.count == 446
    assert _count(connection, "building", "test-helsinki") == counter.count


def test_nanjing_pbf_imports_buildings_streets_and_facilities(connection: Connection) -> None:
    layers = read_osm(NANJING)
    summary = store_layers(connection, layers, source="test-nanjing")
    assert _count(connection, "building", "test-nanjing") == 1277
    assert _count(connection, "street_segment", "test-nanjing") == len(layers.streets) > 300
    assert _count(connection, "facility", "test-nanjing") == len(layers.facilities) > 0
    assert summary["buildings"]["inserted"] == 1277


def test_nanjing_building_number_parsed_from_chinese_name(connection: Connection) -> None:
    load_buildings(connection, read_osm(NANJING).buildings, source="test-nanjing")
    number = connection.execute(
        text("SELECT number FROM building WHERE source = 'test-nanjing' AND name = :name"),
        {"name": "君临国际广场2幢"},
    ).scalar_one()
    assert number == "2"


def test_haidian_pbf_facilities_are_typed_by_the_mapping(connection: Connection) -> None:
    layers = read_osm(HAIDIAN)
    load_facilities(connection, layers.facilities, source="test-haidian")
    types = set(
        connection.execute(
            text("SELECT DISTINCT type FROM facility WHERE source = 'test-haidian'")
        ).scalars()
    )
    known = set(load_facility_mapping().types)
    assert types and types <= known


def test_haidian_pbf_keeps_gates_and_compound_walls() -> None:
    layers = read_osm(HAIDIAN)
    assert set(layers.entrances["kind"]) & {"gate", "lift_gate"}
    assert set(layers.barriers["kind"]) <= {"wall", "fence", "city_wall", "retaining_wall"}
    assert len(layers.barriers) > 0


def test_building_area_stored_in_square_metres(connection: Connection) -> None:
    load_buildings(connection, read_osm(HAIDIAN).buildings, source="test-haidian")
    areas = connection.execute(
        text(
            "SELECT area_m2, ST_Area(ST_Transform(footprint, 32650)) FROM building "
            "WHERE source = 'test-haidian'"
        )
    ).all()
    assert len(areas) == 257
    for stored, utm in areas:
        assert stored == pytest.approx(utm, rel=0.01)


def test_street_lengths_are_metres_on_the_spheroid(connection: Connection) -> None:
    load_streets(connection, read_osm(HAIDIAN).streets, source="test-haidian")
    ratio = connection.execute(
        text(
            "SELECT sum(length_m) / sum(ST_Length(ST_Transform(geom, 32650))) "
            "FROM street_segment WHERE source = 'test-haidian'"
        )
    ).scalar_one()
    assert ratio == pytest.approx(1.0, rel=0.01)


def test_reimport_updates_changed_values_without_duplicates(
    connection: Connection, tmp_path: Path
) -> None:
    first = read_vector(NANJING_BUILDINGS)
    load_buildings(connection, first.buildings, source="test-reimport")
    document = json.loads(NANJING_BUILDINGS.read_text(encoding="utf-8"))
    changed = document["features"][0]["properties"]
    changed["name"] = "测试大厦"
    changed["building_levels_raw"] = "9"
    path = tmp_path / "changed.geojson"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    result = load_buildings(connection, read_vector(path).buildings, source="test-reimport")
    source_id = f"{changed['osm_type'][0]}{changed['osm_id']}"
    row = connection.execute(
        text("SELECT name, levels FROM building WHERE source = 'test-reimport' AND source_id = :i"),
        {"i": source_id},
    ).one()
    assert _count(connection, "building", "test-reimport") == len(first.buildings)
    assert (result.inserted, result.updated) == (0, 1)
    assert tuple(row) == ("测试大厦", 9)


def test_self_intersecting_polygon_is_repaired_and_flagged(
    connection: Connection, tmp_path: Path
) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[116.3, 39.9], [116.301, 39.901], [116.301, 39.9], [116.3, 39.901], [116.3, 39.9]]
        ],
    }
    path = _write_geojson(
        tmp_path / "bowtie.geojson", [_feature(1, bowtie), _feature(2, _square(116.31, 39.9))]
    )
    layers = read_vector(path)
    load_buildings(connection, layers.buildings, source="test-bowtie")
    rows = dict(
        connection.execute(
            text(
                "SELECT source_id, (repaired AND ST_IsValid(footprint) AND area_m2 > 0) "
                "FROM building WHERE source = 'test-bowtie'"
            )
        ).all()
    )
    assert rows == {"w1": True, "w2": False}
    assert layers.rejected == []


def test_missing_geometry_is_rejected_with_id_and_reason(tmp_path: Path) -> None:
    path = _write_geojson(
        tmp_path / "missing.geojson", [_feature(7, None), _feature(8, _square(116.3, 39.9))]
    )
    layers = read_vector(path)
    assert layers.rejected == [
        {"layer": "buildings", "source_id": "w7", "reason": "missing geometry"}
    ]
    assert list(layers.buildings["source_id"]) == ["w8"]


def test_line_in_building_layer_is_rejected_as_not_polygonal(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[116.3, 39.9], [116.31, 39.9]]}
    layers = read_vector(_write_geojson(tmp_path / "line.geojson", [_feature(3, line)]))
    assert [r["source_id"] for r in layers.rejected] == ["w3"]
    assert "not a polygon" in layers.rejected[0]["reason"]


def test_projected_coordinates_without_crs_are_rejected_as_wrong_crs(tmp_path: Path) -> None:
    utm = {
        "type": "Polygon",
        "coordinates": [
            [[440000, 4417000], [440020, 4417000], [440020, 4417020], [440000, 4417000]]
        ],
    }
    path = _write_geojson(tmp_path / "utm.geojson", [_feature(1, utm)])
    with pytest.raises(InputError, match="wrong CRS"):
        read_vector(path)


def test_declared_projected_crs_is_transformed_to_wgs84(tmp_path: Path) -> None:
    square = shapely.box(440000, 4417000, 440020, 4417020)
    frame = gpd.GeoDataFrame(
        {"osm_type": ["way"], "osm_id": [5], "building": ["yes"]}, geometry=[square], crs=32650
    )
    path = tmp_path / "utm.gpkg"
    frame.to_file(path, driver="GPKG", layer="buildings")
    layers = read_vector(path)
    minx, miny, maxx, maxy = layers.buildings.total_bounds
    expected = gpd.GeoSeries([square], crs=32650).to_crs(4326).total_bounds
    assert (minx, miny, maxx, maxy) == pytest.approx(tuple(expected), abs=1e-7)
    assert 116 < minx < 117 and 39 < miny < 41


def test_unknown_tag_values_do_not_crash(connection: Connection, tmp_path: Path) -> None:
    path = _write_geojson(
        tmp_path / "odd.geojson",
        [
            _feature(1, _square(116.3, 39.9), building="spaceship", building_levels_raw="many"),
            _feature(2, _square(116.31, 39.9), building="yes", building_levels_raw="-3"),
        ],
    )
    layers = read_vector(path)
    load_buildings(connection, layers.buildings, source="test-odd")
    rows = connection.execute(
        text("SELECT use, levels FROM building WHERE source = 'test-odd' ORDER BY source_id")
    ).all()
    assert [tuple(r) for r in rows] == [("spaceship", None), ("yes", None)]


def test_unmapped_poi_is_not_a_facility(tmp_path: Path) -> None:
    point = {"type": "Point", "coordinates": [116.3, 39.9]}
    features = [
        {
            "type": "Feature",
            "properties": {"osm_type": "node", "osm_id": 1, "amenity": "foo_bar"},
            "geometry": point,
        },
        {
            "type": "Feature",
            "properties": {"osm_type": "node", "osm_id": 2, "amenity": "police"},
            "geometry": point,
        },
    ]
    layers = read_vector(_write_geojson(tmp_path / "pois.geojson", features))
    assert list(zip(layers.facilities["source_id"], layers.facilities["type"], strict=True)) == [
        ("n2", "police_station")
    ]


def test_osm_xml_file_is_read(tmp_path: Path) -> None:
    xml = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
  <node id="1" lat="39.9000" lon="116.3000" version="1"/>
  <node id="2" lat="39.9000" lon="116.3010" version="1"/>
  <node id="3" lat="39.9010" lon="116.3010" version="1"/>
  <node id="4" lat="39.9010" lon="116.3000" version="1"/>
  <node id="5" lat="39.9005" lon="116.3005" version="1">
    <tag k="amenity" v="kindergarten"/><tag k="name" v="阳光幼儿园"/>
  </node>
  <way id="10" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
    <tag k="building" v="residential"/><tag k="name" v="１２号楼"/>
    <tag k="building:levels" v="6"/>
  </way>
  <way id="11" version="1">
    <nd ref="1"/><nd ref="2"/><tag k="highway" v="footway"/>
  </way>
  <way id="12" version="1">
    <nd ref="3"/><nd ref="4"/><tag k="highway" v="motorway"/>
  </way>
</osm>
"""
    path = tmp_path / "tiny.osm"
    path.write_text(xml, encoding="utf-8")
    layers = read_source(path)
    building = layers.buildings.iloc[0]
    assert (building["source_id"], building["number"], building["levels"]) == ("w10", "12", 6)
    assert list(layers.streets["source_id"]) == ["w11"]
    assert list(layers.facilities["type"]) == ["kindergarten"]


def test_truncated_osm_xml_raises_input_error(tmp_path: Path) -> None:
    xml = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\">\n"
        '  <node id="1" lat="39.9" lon="116.3" version="1"/>\n'
        '  <node id="2" lat="39.9" lon="116.301" version="1"/>\n'
    )
    path = tmp_path / "cut.osm"
    path.write_text(xml, encoding="utf-8")
    with pytest.raises(InputError, match="cannot read OSM data"):
        read_osm(path)


@pytest.mark.parametrize("keep", [100, HELSINKI.stat().st_size // 2], ids=["header", "half"])
def test_truncated_pbf_raises_input_error(tmp_path: Path, keep: int) -> None:
    # libosmium reads a file cut inside its first blob as an empty file: checked separately.
    truncated = tmp_path / "cut.osm.pbf"
    truncated.write_bytes(HELSINKI.read_bytes()[:keep])
    with pytest.raises(InputError, match="truncated"):
        read_osm(truncated)


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("10号楼", "10"),
        ("3栋", "3"),
        ("君临国际广场2幢", "2"),
        ("１２号楼", "12"),
        ("学生公寓二号楼", "2"),
        ("二十三号楼", "23"),
        ("新街口百货", None),
        (None, None),
    ],
)
def test_building_number_parsed(name: str | None, number: str | None) -> None:
    assert parse_building_number(name) == number


@pytest.mark.parametrize(
    ("raw", "levels"),
    [("6", 6), ("6.5", 6), ("１８", 18), ("12;14", 12), ("many", None), ("0", None), (None, None)],
)
def test_building_levels_parsed(raw: str | None, levels: int | None) -> None:
    assert parse_levels(raw) == levels


def test_mapping_with_undeclared_type_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('[[rules]]\ntype = "spa"\ntags = { amenity = "spa" }\n', encoding="utf-8")
    with pytest.raises(InputError, match="not declared"):
        load_facility_mapping(path)


def test_mapping_rules_apply_in_order_with_name_and_area() -> None:
    mapping = load_facility_mapping()
    assert mapping.classify({"amenity": "school", "name": "人民中学"}) == "middle_school"
    assert mapping.classify({"amenity": "school", "name": "琅琊路小学"}) == "primary_school"
    assert mapping.classify({"leisure": "park"}, area_m2=50_000) == "large_park"
    assert mapping.classify({"leisure": "park"}, area_m2=20_000) == "park"
    assert mapping.classify({"leisure": "park"}) == "pocket_park"
    assert mapping.classify({"amenity": "restaurant"}) is None


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def cli_source(engine: Engine) -> Iterator[str]:
    """A source name private to one CLI test; its committed rows are deleted afterwards."""
    source = f"test-cli-{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn:
        last_run = conn.execute(text("SELECT coalesce(max(id), 0) FROM import_run")).scalar_one()
    yield source
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM import_run WHERE id > :id"), {"id": last_run})
        for table in ("building", "street_segment", "facility"):
            conn.execute(text(f"DELETE FROM {table} WHERE source = :s"), {"s": source})


def _run(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["import", "osm", *args], env={"WANGGE_DATABASE_URL": database_url}
    )


def test_cli_exit_0_and_rows_committed_when_nothing_rejected(
    database_url: str, engine: Engine, cli_source: str
) -> None:
    result = _run(database_url, str(HAIDIAN), "--source", cli_source)
    with engine.connect() as conn:
        assert _count(conn, "building", cli_source) == 257
    assert result.exit_code == 0, result.output


def test_cli_exit_1_when_some_features_rejected(
    database_url: str, engine: Engine, cli_source: str, tmp_path: Path
) -> None:
    path = _write_geojson(
        tmp_path / "some_bad.geojson", [_feature(7, None), _feature(8, _square(116.3, 39.9))]
    )
    result = _run(database_url, str(path), "--source", cli_source)
    with engine.connect() as conn:
        assert _count(conn, "building", cli_source) == 1
    assert result.exit_code == 1
    assert "w7" in result.output and "missing geometry" in result.output


def test_cli_truncated_pbf_fails_with_exit_2_and_database_unchanged(
    database_url: str, engine: Engine, cli_source: str, tmp_path: Path
) -> None:
    truncated = tmp_path / "half.osm.pbf"
    raw = HELSINKI.read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    with engine.connect() as conn:
        runs_before = conn.execute(text("SELECT count(*) FROM import_run")).scalar_one()
    result = _run(database_url, str(HAIDIAN), str(truncated), "--source", cli_source)
    with engine.connect() as conn:
        assert _count(conn, "building", cli_source) == 0
        runs_after = conn.execute(text("SELECT count(*) FROM import_run")).scalar_one()
    assert result.exit_code == 2
    assert runs_after == runs_before
    assert "truncated" in result.output


def test_cli_records_import_run_with_rejected_list(
    database_url: str, engine: Engine, cli_source: str, tmp_path: Path
) -> None:
    path = _write_geojson(
        tmp_path / f"{cli_source}.geojson", [_feature(7, None), _feature(8, _square(116.3, 39.9))]
    )
    _run(database_url, str(path), "--source", cli_source)
    with engine.connect() as conn:
        counts, rejected = conn.execute(
            text("SELECT counts, rejected FROM import_run WHERE path = :p"), {"p": str(path)}
        ).one()
    assert counts["buildings"]["inserted"] == 1
    assert rejected == [{"layer": "buildings", "source_id": "w7", "reason": "missing geometry"}]


def test_building_no_is_not_a_building(tmp_path: Path) -> None:
    path = _write_geojson(
        tmp_path / "no.geojson",
        [_feature(1, _square(116.3, 39.9), building="no"), _feature(2, _square(116.31, 39.9))],
    )
    assert list(read_vector(path).buildings["source_id"]) == ["w2"]


def test_vector_streets_keep_only_walkable_ways(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[116.3, 39.9], [116.31, 39.9]]}
    features = [
        {"type": "Feature", "properties": {"osm_id": 1, "highway": "footway"}, "geometry": line},
        {"type": "Feature", "properties": {"osm_id": 2, "highway": "motorway"}, "geometry": line},
        {
            "type": "Feature",
            "properties": {"osm_id": 3, "highway": "service", "access": "private"},
            "geometry": line,
        },
    ]
    layers = read_vector(_write_geojson(tmp_path / "streets.geojson", features))
    assert list(layers.streets["source_id"]) == ["w1"]


def test_unknown_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "buildings.shp.zip"
    path.write_bytes(b"PK")
    with pytest.raises(InputError, match="unknown file type"):
        read_source(path)


# --- residential compounds ------------------------------------------------------------------


def _marked(buildings: Any) -> set[str]:
    return {
        source_id
        for source_id, tags in zip(buildings["source_id"], buildings["tags"], strict=True)
        if tags.get("landuse_residential") == "yes"
    }


def test_buildings_mostly_inside_residential_landuse_are_tagged(tmp_path: Path) -> None:
    layers = read_source(write_compound_osm(tmp_path / "compound.osm"))
    # w22 lies outside the compound, w24 only a quarter inside; the rest wholly inside.
    assert _marked(layers.buildings) == {"w21", "w23", "w25"}


def test_the_landuse_outline_itself_is_not_a_building_and_not_rejected(tmp_path: Path) -> None:
    layers = read_source(write_compound_osm(tmp_path / "compound.osm"))
    assert "w20" not in set(layers.buildings["source_id"])
    assert layers.rejected == []


def test_a_building_in_the_hole_of_a_multipolygon_compound_is_not_tagged(
    tmp_path: Path,
) -> None:
    square = [(39.900, 116.300), (39.900, 116.302), (39.902, 116.302), (39.902, 116.300)]
    hole = [(39.9005, 116.3005), (39.9005, 116.3015), (39.9015, 116.3015), (39.9015, 116.3005)]
    in_hole = [(39.9008, 116.3008), (39.9008, 116.3012), (39.9010, 116.3012), (39.9010, 116.3008)]
    in_ring = [(39.9001, 116.3001), (39.9001, 116.3004), (39.9003, 116.3004), (39.9003, 116.3001)]
    nodes, ways = [], []
    for way_id, ring in ((1, square), (2, hole), (3, in_hole), (4, in_ring)):
        ids = [way_id * 10 + i for i in range(4)]
        nodes += [
            f'<node id="{n}" lat="{lat}" lon="{lon}" version="1"/>'
            for n, (lat, lon) in zip(ids, ring, strict=True)
        ]
        refs = "".join(f'<nd ref="{n}"/>' for n in [*ids, ids[0]])
        tag = '<tag k="building" v="yes"/>' if way_id > 2 else ""
        ways.append(f'<way id="{way_id}" version="1">{refs}{tag}</way>')
    relation = (
        '<relation id="9" version="1"><member type="way" ref="1" role="outer"/>'
        '<member type="way" ref="2" role="inner"/><tag k="type" v="multipolygon"/>'
        '<tag k="landuse" v="residential"/></relation>'
    )
    body = "\n".join([*nodes, *ways, relation])
    path = tmp_path / "holed.osm"
    path.write_text(
        f"<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\">\n{body}\n</osm>"
    )
    layers = read_source(path)
    assert _marked(layers.buildings) == {"w4"}
    assert set(layers.buildings["source_id"]) == {"w3", "w4"}


@pytest.mark.parametrize("path", [NANJING, HAIDIAN], ids=["nanjing", "xueyuanlu"])
def test_demo_buildings_tagged_in_residential_landuse_match_an_independent_reading(
    connection: Connection, path: Path
) -> None:
    shares, _ = reference_shares(path)
    expected = {source_id for source_id, share in shares.items() if share >= 0.5}
    store_layers(connection, read_osm(path), source="test-compounds")
    stored = connection.execute(
        text(
            "SELECT source_id FROM building WHERE source = 'test-compounds'"
            " AND tags->>'landuse_residential' = 'yes'"
        )
    ).scalars()
    assert set(stored) == expected
    assert len(expected) > 50


def test_geojson_buildings_carry_no_landuse_tag(tmp_path: Path) -> None:
    layers = read_vector(NANJING_BUILDINGS)
    assert _marked(layers.buildings) == set()
    assert len(layers.buildings) > 0


def test_a_share_threshold_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    layers = read_source(write_compound_osm(tmp_path / "compound.osm"))
    with pytest.raises(ValueError, match="min_share"):
        mark_residential_landuse(layers.buildings, [], min_share=1.5)
