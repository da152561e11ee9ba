import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.grids.io import DefectiveLayerError, GridFileError, accepted_defects, import_grids
from gis.grids.synthetic import ORIGIN, box, insert_building, insert_community
from gis.grids.validate import CUT_BUILDING, GAP, OVERLAP

COMMUNITY = "110108001001"


def _layer(path: Path, cells: list[tuple[str, str]], *, driver: str = "GeoJSON") -> Path:
    frame = gpd.GeoDataFrame(
        {"code": [c for c, _ in cells]},
        geometry=[shapely.from_wkt(w) for _, w in cells],
        crs=32650,
    )
    frame.to_file(path, driver=driver)
    return path


def _quadrants() -> list[tuple[str, str]]:
    return [
        (COMMUNITY + "001", box(0, 200, 200, 400)),
        (COMMUNITY + "002", box(200, 200, 400, 400)),
        (COMMUNITY + "003", box(0, 0, 200, 200)),
        (COMMUNITY + "004", box(200, 0, 400, 200)),
    ]


def _community(connection: Connection) -> int:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 400, 400))
    for x, y in [(50, 250), (250, 250), (50, 50), (250, 50)]:
        insert_building(connection, box(x, y, x + 30, y + 20), households=100)
    return cid


def _grid_count(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM grid")).scalar_one())


def test_clean_layer_in_a_projected_crs_is_stored_in_wgs84(
    connection: Connection, tmp_path: Path
) -> None:
    _community(connection)
    result = import_grids(connection, _layer(tmp_path / "g.geojson", _quadrants()), kind="unit")
    assert (result.cells, result.defects_accepted) == (4, 0)
    row = connection.execute(
        text("SELECT ST_SRID(geom), ST_Area(geom::geography) FROM grid WHERE code = :c"),
        {"c": COMMUNITY + "001"},
    ).one()
    assert row[0] == 4326
    assert row[1] == pytest.approx(40_000, rel=0.01)


def test_geopackage_is_read(connection: Connection, tmp_path: Path) -> None:
    _community(connection)
    path = _layer(tmp_path / "g.gpkg", _quadrants(), driver="GPKG")
    assert import_grids(connection, path, kind="unit").cells == 4


def test_shapefile_is_read(connection: Connection, tmp_path: Path) -> None:
    _community(connection)
    path = _layer(tmp_path / "g.shp", _quadrants(), driver="ESRI Shapefile")
    assert import_grids(connection, path, kind="unit").cells == 4


def _defective(tmp_path: Path) -> Path:
    cells = _quadrants()
    cells[0] = (COMMUNITY + "001", box(0, 200, 200, 390))  # gap along the top
    cells[2] = (COMMUNITY + "003", box(0, 0, 210, 200))  # overlaps cell 004
    return _layer(tmp_path / "bad.geojson", cells)


def test_defective_layer_is_refused_with_its_report(connection: Connection, tmp_path: Path) -> None:
    _community(connection)
    insert_building(connection, box(190, 300, 215, 320), households=5)
    with pytest.raises(DefectiveLayerError) as refused:
        import_grids(connection, _defective(tmp_path), kind="unit")
    counts = {k: n for k, n in refused.value.report.counts().items() if n}
    assert counts == {OVERLAP: 1, GAP: 1, CUT_BUILDING: 1}
    assert _grid_count(connection) == 0


def test_accepted_defects_are_stored_and_listed(connection: Connection, tmp_path: Path) -> None:
    _community(connection)
    result = import_grids(connection, _defective(tmp_path), kind="unit", accept_defects=True)
    assert result.defects_accepted == 2
    listed = accepted_defects(connection)
    assert sorted(f["properties"]["kind"] for f in listed) == [GAP, OVERLAP]
    overlap = next(f for f in listed if f["properties"]["kind"] == OVERLAP)
    assert overlap["properties"]["grid_code"] == COMMUNITY + "003"
    assert overlap["geometry"]["type"] == "Polygon"
    assert _grid_count(connection) == 4


def _raw_geojson(path: Path, features: list[tuple[str, list[list[float]]]]) -> Path:
    ox, oy = ORIGIN
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}},
        "features": [
            {
                "type": "Feature",
                "properties": {"code": code},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[ox + x, oy + y] for x, y in ring]],
                },
            }
            for code, ring in features
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def test_bad_features_are_each_named_and_nothing_is_written(
    connection: Connection, tmp_path: Path
) -> None:
    _community(connection)
    square = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    path = _raw_geojson(
        tmp_path / "bad.geojson",
        [
            (COMMUNITY + "001", square),
            (COMMUNITY + "002", [[0, 0], [100, 0], [100, 100], [0, 100]]),  # unclosed
            (COMMUNITY + "003", [[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]),  # bow-tie
            ("11010800100104", square),  # 14 digits
            ("110108001777001", square),  # unknown community
        ],
    )
    with pytest.raises(GridFileError) as bad:
        import_grids(connection, path, kind="unit")
    problems = [(p.feature, p.field) for p in bad.value.problems]
    assert problems == [(1, "geometry"), (2, "geometry"), (3, "code"), (4, "code")]
    messages = [p.problem for p in bad.value.problems]
    assert "not closed" in messages[0]
    assert "Self-intersection" in messages[1]
    assert "15-digit" in messages[2]
    assert "does not exist" in messages[3]
    assert _grid_count(connection) == 0


def test_metre_coordinates_declared_as_wgs84_are_refused(
    connection: Connection, tmp_path: Path
) -> None:
    _community(connection)
    frame = gpd.GeoDataFrame(
        {"code": [COMMUNITY + "001"]}, geometry=[shapely.from_wkt(box(0, 0, 100, 100))]
    )
    frame = frame.set_crs(4326, allow_override=True)
    path = tmp_path / "wrong.geojson"
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(GridFileError, match="wrong CRS"):
        import_grids(connection, path, kind="unit")


def test_file_without_crs_is_refused(connection: Connection, tmp_path: Path) -> None:
    _community(connection)
    frame = gpd.GeoDataFrame({"code": [COMMUNITY + "001"]}, geometry=[shapely.box(0, 0, 1, 1)])
    path = tmp_path / "nocrs.shp"
    frame.to_file(path)
    with pytest.raises(InputError, match="CRS"):
        import_grids(connection, path, kind="unit")
