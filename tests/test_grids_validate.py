import pytest
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.grids.synthetic import box, insert_building, insert_cell, insert_community
from gis.grids.validate import (
    BAD_CODE,
    BUILDING_IN_NO_CELL,
    CUT_BUILDING,
    DUPLICATE_CODE,
    EMPTY_CELL,
    GAP,
    INVALID_GEOMETRY,
    OUTSIDE_COMMUNITY,
    OVERLAP,
    STAGING_TABLE,
    create_staging,
    validate_grids,
)

COMMUNITY = "110108001001"


def _clean_layer(connection: Connection) -> tuple[int, dict[str, int]]:
    """A 400 m community in four 200 m cells, each holding one building."""
    cid = insert_community(connection, COMMUNITY, box(0, 0, 400, 400))
    cells = {
        "A": insert_cell(connection, COMMUNITY + "001", cid, box(0, 200, 200, 400)),
        "B": insert_cell(connection, COMMUNITY + "002", cid, box(200, 200, 400, 400)),
        "C": insert_cell(connection, COMMUNITY + "003", cid, box(0, 0, 200, 200)),
        "D": insert_cell(connection, COMMUNITY + "004", cid, box(200, 0, 400, 200)),
    }
    for x, y in [(50, 250), (250, 250), (50, 50), (250, 50)]:
        insert_building(connection, box(x, y, x + 30, y + 20), households=100)
    return cid, cells


def _planted_layer(connection: Connection) -> int:
    """Cells with one overlap (C reaches 10 m into D), one gap (A stops 10 m short of the top)
    and one building straddling the A/B boundary."""
    cid = insert_community(connection, COMMUNITY, box(0, 0, 400, 400))
    insert_cell(connection, COMMUNITY + "001", cid, box(0, 200, 200, 390))
    insert_cell(connection, COMMUNITY + "002", cid, box(200, 200, 400, 400))
    insert_cell(connection, COMMUNITY + "003", cid, box(0, 0, 210, 200))
    insert_cell(connection, COMMUNITY + "004", cid, box(200, 0, 400, 200))
    for x, y in [(50, 250), (250, 250), (50, 50), (250, 50)]:
        insert_building(connection, box(x, y, x + 30, y + 20), households=100)
    insert_building(connection, box(190, 300, 215, 320), households=10)
    return cid


def test_a_clean_layer_has_no_defects(connection: Connection) -> None:
    _clean_layer(connection)
    report = validate_grids(connection, kind="service")
    assert report.defects == []
    assert report.clean
    assert (report.cells, report.buildings) == (4, 4)


def test_planted_defects_are_reported_exactly(connection: Connection) -> None:
    _planted_layer(connection)
    report = validate_grids(connection, kind="service")
    counts = {k: n for k, n in report.counts().items() if n}
    assert counts == {OVERLAP: 1, GAP: 1, CUT_BUILDING: 1}


def test_overlap_names_the_pair_and_its_area(connection: Connection) -> None:
    _planted_layer(connection)
    (overlap,) = validate_grids(connection).by_kind(OVERLAP)
    assert overlap.codes == (COMMUNITY + "003", COMMUNITY + "004")
    assert overlap.area_m2 == pytest.approx(10 * 200, rel=0.01)
    assert overlap.geometry is not None and overlap.geometry["type"] == "Polygon"


def test_gap_reports_where_and_how_large(connection: Connection) -> None:
    _planted_layer(connection)
    (gap,) = validate_grids(connection).by_kind(GAP)
    assert gap.community_code == COMMUNITY
    assert gap.area_m2 == pytest.approx(200 * 10, rel=0.01)
    assert gap.geometry is not None


def test_cut_building_names_both_cells(connection: Connection) -> None:
    _planted_layer(connection)
    (cut,) = validate_grids(connection).by_kind(CUT_BUILDING)
    assert set(cut.codes) == {COMMUNITY + "001", COMMUNITY + "002"}
    assert cut.codes[0] == COMMUNITY + "002"  # the larger part first (15 m vs 10 m wide)
    assert cut.building_id is not None


def test_cell_reaching_into_the_next_community_is_reported(connection: Connection) -> None:
    _clean_layer(connection)
    other = insert_community(connection, "110108001002", box(400, 0, 800, 400))
    insert_cell(connection, "110108001002001", other, box(380, 0, 800, 400))
    insert_building(connection, box(500, 100, 530, 120), households=50)
    report = validate_grids(connection)
    (outside,) = report.by_kind(OUTSIDE_COMMUNITY)
    assert outside.codes == ("110108001002001",)
    assert outside.area_m2 == pytest.approx(20 * 400, rel=0.01)
    assert COMMUNITY in outside.detail


def test_building_outside_every_cell_is_reported(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 400, 400))
    insert_cell(connection, COMMUNITY + "001", cid, box(0, 0, 400, 300))
    insert_building(connection, box(50, 50, 80, 70), households=10)
    stray = insert_building(connection, box(100, 340, 130, 360), households=10)
    report = validate_grids(connection)
    assert [d.building_id for d in report.by_kind(BUILDING_IN_NO_CELL)] == [stray]


def test_service_cell_without_buildings_is_empty(connection: Connection) -> None:
    _, cells = _clean_layer(connection)
    connection.execute(text("DELETE FROM stairwell"))
    connection.execute(
        text(
            "DELETE FROM building"
            " WHERE ST_Intersects(footprint, (SELECT geom FROM grid WHERE id = :id))"
        ),
        {"id": cells["D"]},
    )
    report = validate_grids(connection, kind="service")
    assert [d.codes for d in report.by_kind(EMPTY_CELL)] == [(COMMUNITY + "004",)]


def test_unit_cells_may_hold_no_building(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 100, 100))
    insert_cell(connection, COMMUNITY + "001", cid, box(0, 0, 100, 100), kind="unit")
    assert validate_grids(connection, kind="unit").clean


def test_invalid_geometry_gives_the_reason(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 100, 100))
    bowtie = (
        "POLYGON((440000 4427000, 440100 4427100, 440100 4427000, 440000 4427100, 440000 4427000))"
    )
    insert_cell(connection, COMMUNITY + "001", cid, bowtie, kind="unit")
    (invalid,) = validate_grids(connection, kind="unit").by_kind(INVALID_GEOMETRY)
    assert "Self-intersection" in invalid.detail


def _stage(connection: Connection, cid: int, cells: list[tuple[str, str]]) -> None:
    create_staging(connection)
    connection.execute(
        text(
            f"INSERT INTO {STAGING_TABLE} (feature, code, kind, community_id, geom) VALUES"
            " (:f, :code, 'unit', :cid, ST_Transform(ST_GeomFromText(:wkt, 32650), 4326))"
        ),
        [{"f": i, "code": c, "cid": cid, "wkt": w} for i, (c, w) in enumerate(cells)],
    )


def test_duplicate_codes_are_reported(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 200, 100))
    code = COMMUNITY + "001"
    _stage(connection, cid, [(code, box(0, 0, 100, 100)), (code, box(100, 0, 200, 100))])
    report = validate_grids(connection, kind="unit", layer=STAGING_TABLE)
    assert [(d.kind, d.codes) for d in report.defects] == [(DUPLICATE_CODE, (code, code))]


def test_code_of_another_community_is_reported(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 200, 100))
    cells = [(COMMUNITY + "001", box(0, 0, 100, 100)), ("110108001999001", box(100, 0, 200, 100))]
    _stage(connection, cid, cells)
    report = validate_grids(connection, kind="unit", layer=STAGING_TABLE)
    assert [(d.kind, d.codes) for d in report.defects] == [(BAD_CODE, ("110108001999001",))]


def test_household_balance_sums_stairwells_per_cell(connection: Connection) -> None:
    _clean_layer(connection)
    insert_building(connection, box(300, 300, 330, 320), households=50)
    balance = validate_grids(connection).households
    assert (balance.cells, balance.min, balance.median, balance.max) == (4, 100, 100.0, 150)


def test_closed_cells_are_not_validated_as_current(connection: Connection) -> None:
    _clean_layer(connection)
    cid = connection.execute(text("SELECT id FROM community")).scalar_one()
    old = insert_cell(connection, COMMUNITY + "005", cid, box(0, 0, 400, 400))
    connection.execute(
        text(
            "UPDATE grid SET valid_from = now() - interval '2 days',"
            " valid_to = now() - interval '1 day' WHERE id = :id"
        ),
        {"id": old},
    )
    assert validate_grids(connection).clean


def test_staging_layer_is_validated_like_the_grid_table(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 100, 100))
    _stage(connection, cid, [(COMMUNITY + "001", box(0, 0, 100, 60))])
    report = validate_grids(connection, kind="unit", layer=STAGING_TABLE)
    assert [d.kind for d in report.defects] == [GAP]


def test_unknown_layer_is_refused(connection: Connection) -> None:
    with pytest.raises(InputError, match="layer"):
        validate_grids(connection, layer="building; DROP TABLE grid")
