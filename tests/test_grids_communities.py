from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.grids.communities import derive_communities, import_boundaries, read_study_area
from gis.grids.io import GridFileError
from gis.grids.synthetic import box, insert_subdistrict, synthetic_subdistrict

ROOT = Path(__file__).resolve().parent.parent


def _file(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    gpd.GeoDataFrame(
        {"code": [c for c, _, _ in rows], "name": [n for _, n, _ in rows]},
        geometry=[shapely.from_wkt(w) for _, _, w in rows],
        crs=32650,
    ).to_file(path, driver="GeoJSON")
    return path


def test_communities_are_imported_with_their_codes(connection: Connection, tmp_path: Path) -> None:
    insert_subdistrict(connection, "110108001", box(0, 0, 400, 200))
    path = _file(
        tmp_path / "c.geojson",
        [
            ("110108001001", "八角北路社区", box(0, 0, 200, 200)),
            ("110108001002", "八角中里社区", box(200, 0, 400, 200)),
        ],
    )
    result = import_boundaries(connection, path, level="community")
    assert (result.inserted, result.updated) == (2, 0)
    row = connection.execute(
        text(
            "SELECT c.name, s.code, c.derived, ST_Area(c.geom::geography) FROM community c"
            " JOIN subdistrict s ON s.id = c.subdistrict_id WHERE c.code = '110108001001'"
        )
    ).one()
    assert row[:3] == ("八角北路社区", "110108001", False)
    assert row[3] == pytest.approx(40_000, rel=0.01)


def test_reimport_updates_the_boundary(connection: Connection, tmp_path: Path) -> None:
    insert_subdistrict(connection, "110108001")
    rows = [("110108001001", "A", box(0, 0, 200, 200))]
    import_boundaries(connection, _file(tmp_path / "a.geojson", rows), level="community")
    rows = [("110108001001", "A", box(0, 0, 300, 200))]
    result = import_boundaries(connection, _file(tmp_path / "b.geojson", rows), level="community")
    assert (result.inserted, result.updated) == (0, 1)


def test_community_of_an_unknown_subdistrict_is_refused(
    connection: Connection, tmp_path: Path
) -> None:
    path = _file(tmp_path / "c.geojson", [("110108777001", "X", box(0, 0, 200, 200))])
    with pytest.raises(GridFileError, match="subdistrict 110108777 does not exist"):
        import_boundaries(connection, path, level="community")


def test_code_of_the_wrong_length_is_named(connection: Connection, tmp_path: Path) -> None:
    path = _file(tmp_path / "s.geojson", [("11010800", "X", box(0, 0, 200, 200))])
    with pytest.raises(GridFileError) as bad:
        import_boundaries(connection, path, level="subdistrict")
    assert [(p.feature, p.field) for p in bad.value.problems] == [(0, "code")]


def test_derived_communities_follow_major_roads(connection: Connection) -> None:
    # Streets of the synthetic area: secondary every few blocks, residential between.
    synthetic_subdistrict(connection, code="110108902", buildings=100, communities=(2, 2))
    connection.execute(text("DELETE FROM community"))
    connection.execute(text("DELETE FROM subdistrict"))
    area = connection.execute(
        text(
            "SELECT ST_AsBinary(ST_Transform(ST_Envelope(ST_Collect(ST_Transform(geom, 32650))),"
            " 4326)) FROM street_segment"
        )
    ).scalar_one()
    ids = derive_communities(
        connection, shapely.from_wkb(area), subdistrict_code="110108903", min_area_m2=10_000
    )
    rows = connection.execute(
        text("SELECT code, derived FROM community WHERE id = ANY(:ids) ORDER BY code"),
        {"ids": ids},
    ).all()
    assert len(rows) == 4  # two secondary roads cross inside the area
    assert all(derived for _, derived in rows)
    assert [code for code, _ in rows] == [f"110108903{n:03d}" for n in range(1, 5)]


def test_small_pieces_join_a_neighbour(connection: Connection) -> None:
    synthetic_subdistrict(connection, code="110108902", buildings=100, communities=(2, 2))
    area = connection.execute(
        text(
            "SELECT ST_AsBinary(ST_Transform(ST_Envelope(ST_Collect(ST_Transform(geom, 32650))),"
            " 4326)) FROM street_segment"
        )
    ).scalar_one()
    ids = derive_communities(
        connection, shapely.from_wkb(area), subdistrict_code="110108904", min_area_m2=10**9
    )
    assert len(ids) == 1


def test_subdistrict_with_communities_is_not_derived_twice(connection: Connection) -> None:
    synthetic_subdistrict(connection, code="110108902", buildings=50)
    with pytest.raises(InputError, match="already has"):
        derive_communities(
            connection, shapely.box(116.29, 39.99, 116.31, 40.0), subdistrict_code="110108902"
        )


def test_study_area_file_is_read() -> None:
    area = read_study_area(ROOT / "data/beijing_haidian_xueyuanlu/study_area.geojson")
    assert area.bounds == pytest.approx((116.34403, 39.99767, 116.35974, 40.00888))
