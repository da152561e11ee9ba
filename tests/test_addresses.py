"""Address resolution: the forms staff type, ambiguity, suggestions, the address table."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from gis.addresses import (
    AmbiguousAddressError,
    UnknownAddressError,
    import_address_table,
    parse_address,
    resolve_address,
)
from gis.errors import InputError
from tests.case_town import Town, seed_town


@pytest.fixture
def town(connection: Connection) -> Town:
    return seed_town(connection)


def test_canonical_address_resolves_to_the_stairwell_entrance(
    connection: Connection, town: Town
) -> None:
    match = resolve_address(connection, "八角北路社区 12号楼3单元")
    assert match.stairwell_id == town.stairwells["north-12-3"]
    assert match.building_id == town.buildings["north-12"]
    entrance = connection.execute(
        text("SELECT ST_X(entrance), ST_Y(entrance) FROM stairwell WHERE id = :i"),
        {"i": match.stairwell_id},
    ).one()
    assert (match.lon, match.lat) == pytest.approx((entrance[0], entrance[1]))


@pytest.mark.parametrize(
    "typed",
    [
        "八角北路社区 １２号楼３单元",
        "八角北路社区12栋3门",
        "八角北路 12幢 3楼门",
        "八角北路社区 12座3单元",
        "八角北路社区 12号3单元 301室",
        "八角北路社区 十二号楼三单元",
        "  八角北路社区　12号楼　3单元 ",
    ],
)
def test_forms_staff_type_resolve_to_the_same_stairwell(
    connection: Connection, town: Town, typed: str
) -> None:
    assert resolve_address(connection, typed).stairwell_id == town.stairwells["north-12-3"]


def test_missing_community_resolves_when_the_number_is_unique(
    connection: Connection, town: Town
) -> None:
    match = resolve_address(connection, "5号楼2单元")
    assert match.stairwell_id == town.stairwells["south-5-2"]


def test_building_without_community_is_found_in_the_covering_community(
    connection: Connection, town: Town
) -> None:
    match = resolve_address(connection, "八角南路社区 5号楼1单元")
    assert match.community_id == town.south
    assert match.stairwell_id == town.stairwells["south-5-1"]


def test_missing_community_with_a_shared_number_lists_the_candidates(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(AmbiguousAddressError) as caught:
        resolve_address(connection, "12号楼3单元")
    stairwells = {c.stairwell_id for c in caught.value.candidates}
    assert stairwells == {town.stairwells["north-12-3"], town.stairwells["south-12-3"]}


def test_building_with_several_units_and_no_unit_lists_its_units(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(AmbiguousAddressError) as caught:
        resolve_address(connection, "八角北路社区 12号楼")
    assert [c.unit_no for c in caught.value.candidates] == [1, 2, 3]


def test_building_with_a_single_unit_resolves_without_the_unit(
    connection: Connection, town: Town
) -> None:
    assert (
        resolve_address(connection, "八角北路社区 3号楼").stairwell_id
        == town.stairwells["north-3-1"]
    )


def test_building_without_stairwells_resolves_to_a_point_on_its_footprint(
    connection: Connection, town: Town
) -> None:
    match = resolve_address(connection, "八角北路社区 7号楼")
    assert match.stairwell_id is None
    inside = connection.execute(
        text(
            "SELECT ST_Covers(footprint, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) FROM building"
            " WHERE id = :b"
        ),
        {"x": match.lon, "y": match.lat, "b": town.buildings["north-7"]},
    ).scalar_one()
    assert inside


def test_unknown_community_suggests_the_closest_names(connection: Connection, town: Town) -> None:
    with pytest.raises(UnknownAddressError) as caught:
        resolve_address(connection, "八角北社区 12号楼3单元")
    assert "八角北路社区" in caught.value.suggestions


def test_unknown_building_suggests_the_closest_numbers(connection: Connection, town: Town) -> None:
    with pytest.raises(UnknownAddressError) as caught:
        resolve_address(connection, "八角北路社区 13号楼1单元")
    assert caught.value.field == "address"
    assert "八角北路社区 12号楼" in caught.value.suggestions


def test_unknown_unit_names_the_known_units(connection: Connection, town: Town) -> None:
    with pytest.raises(UnknownAddressError) as caught:
        resolve_address(connection, "八角北路社区 12号楼9单元")
    assert "八角北路社区 12号楼1单元" in caught.value.suggestions


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_address_is_refused_naming_the_field(empty: str | None) -> None:
    with pytest.raises(InputError) as caught:
        parse_address(empty)
    assert caught.value.field == "address"


def test_text_without_a_building_number_is_refused(connection: Connection, town: Town) -> None:
    with pytest.raises(UnknownAddressError, match="no building number"):
        resolve_address(connection, "八角北路社区 门口")


def test_address_table_adds_numbers_missing_from_the_map(
    connection: Connection, town: Town, tmp_path: Path
) -> None:
    table = tmp_path / "addresses.csv"
    table.write_text(
        "community,building_number,building\n八角北路,99号楼,north-7\n不存在社区,1,north-7\n",
        encoding="utf-8",
    )
    stored, rejected = import_address_table(connection, table)
    assert stored == 1
    assert rejected == ["row 3: unknown community '不存在社区'"]
    assert (
        resolve_address(connection, "八角北路社区 99号楼").building_id == town.buildings["north-7"]
    )
