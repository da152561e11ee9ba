import pytest
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.grids.generate import communities_of, generate_grids
from gis.grids.synthetic import synthetic_subdistrict
from gis.grids.validate import validate_grids


@pytest.fixture
def area(connection: Connection) -> list[int]:
    synthetic_subdistrict(connection, buildings=300, seed=7)
    return communities_of(connection, subdistrict_code="110108901")


def test_service_cells_validate_clean(connection: Connection, area: list[int]) -> None:
    generate_grids(connection, community_ids=area, kind="service", target_households=400)
    report = validate_grids(connection, kind="service")
    assert report.defects == []
    assert report.cells > len(area)


def test_unit_cells_validate_clean(connection: Connection, area: list[int]) -> None:
    generate_grids(connection, community_ids=area, kind="unit", target_area_m2=10_000)
    assert validate_grids(connection, kind="unit").defects == []


def test_unit_cells_are_about_the_target_area(connection: Connection, area: list[int]) -> None:
    result = generate_grids(connection, community_ids=area, kind="unit", store=False)
    areas = sorted(c.area_m2 for c in result.cells)
    assert 7_500 <= areas[len(areas) // 2] <= 13_000


def test_service_cells_hold_about_the_target_households(
    connection: Connection, area: list[int]
) -> None:
    result = generate_grids(connection, community_ids=area, kind="service", store=False)
    households = sorted(c.households for c in result.cells)
    assert households[0] >= 300 * 0.5
    assert 300 <= households[len(households) // 2] <= 1.35 * 400


def test_every_household_is_in_exactly_one_cell(connection: Connection, area: list[int]) -> None:
    result = generate_grids(connection, community_ids=area, kind="service", store=False)
    total = connection.execute(text("SELECT sum(households) FROM stairwell")).scalar_one()
    assert sum(c.households for c in result.cells) == total


def test_every_building_lies_wholly_in_one_cell(connection: Connection, area: list[int]) -> None:
    generate_grids(connection, community_ids=area, kind="service")
    counts = connection.execute(
        text(
            "SELECT b.id, count(g.id) FROM building b LEFT JOIN grid g ON g.valid_to IS NULL"
            " AND ST_Area(ST_Intersection(b.footprint, g.geom)::geography)"
            " > 0.999 * ST_Area(b.footprint::geography) GROUP BY b.id"
        )
    ).all()
    assert {n for _, n in counts} == {1}


def test_cells_report_compactness(connection: Connection, area: list[int]) -> None:
    result = generate_grids(connection, community_ids=area, kind="unit", store=False)
    assert all(0.15 < c.compactness <= 1 for c in result.cells)


def test_regenerating_keeps_the_codes(connection: Connection, area: list[int]) -> None:
    first = generate_grids(connection, community_ids=area, kind="service")
    second = generate_grids(connection, community_ids=area, kind="service")
    assert sorted(c.code for c in second.cells) == sorted(c.code for c in first.cells)
    assert second.replaced is not None and second.replaced.closed == len(first.cells)


def test_codes_run_in_reading_order_in_each_community(
    connection: Connection, area: list[int]
) -> None:
    result = generate_grids(connection, community_ids=area[:1], kind="unit", store=False)
    codes = sorted(c.code for c in result.cells)
    assert codes[0].endswith("001") and codes[-1].endswith(f"{len(codes):03d}")
    first = min(result.cells, key=lambda c: c.code).geometry.representative_point()
    ys = [c.geometry.representative_point().y for c in result.cells]
    assert first.y >= sorted(ys)[-len(ys) // 4]  # numbering starts in the northern rows


def test_unknown_kind_is_refused(connection: Connection, area: list[int]) -> None:
    with pytest.raises(InputError, match="kind"):
        generate_grids(connection, community_ids=area, kind="block")


def test_unchanged_cells_keep_their_codes_when_others_change(
    connection: Connection, area: list[int]
) -> None:
    first = generate_grids(connection, community_ids=area[:1], kind="service")
    # Many more households in one building reshapes the cells around it, not the others.
    connection.execute(
        text(
            "UPDATE stairwell SET households = households + 900 WHERE building_id ="
            " (SELECT b.id FROM building b JOIN community c ON c.id = :cid"
            "  AND ST_Intersects(c.geom, ST_PointOnSurface(b.footprint)) ORDER BY b.id LIMIT 1)"
        ),
        {"cid": area[0]},
    )
    second = generate_grids(connection, community_ids=area[:1], kind="service")
    before = {c.geometry.wkb: c.code for c in first.cells}
    same = [c for c in second.cells if c.geometry.wkb in before]
    assert same and all(c.code == before[c.geometry.wkb] for c in same)
    # Changed cells keep the code of the old cell they mostly cover; any other code is fresh.
    codes = [c.code for c in second.cells]
    assert len(set(codes)) == len(codes)
    assert all(c > max(before.values()) for c in codes if c not in before.values())
