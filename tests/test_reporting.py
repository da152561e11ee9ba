"""report_case, move_pin and list_cases against PostGIS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text

from gis.cases.reporting import CaseReport, list_cases, move_pin, report_case
from gis.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.errors import InputError, NotFoundError
from gis.settings import CaseSettings
from tests.case_town import X0, Y0, D, Town, seed_town

# Inside cell ...004 near building 12 of 八角北路社区; inside cell ...002 (worker 张三).
P004 = (X0 + 0.5 * D, Y0 + 0.25 * D)
P002 = (X0 + 1.5 * D, Y0 + 0.5 * D)
GARBAGE = "E0103"


@pytest.fixture
def town(connection: Connection) -> Town:
    return seed_town(connection)


def test_reported_case_is_stored_with_its_grid_worker_community_and_stairwell(
    connection: Connection, town: Town
) -> None:
    answer = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1]))
    case = answer.case
    assert answer.created
    assert case.grid_id == town.grids["110108011001004"]
    assert case.community_code == "110108011001"
    assert case.subdistrict_code == "110108011"
    assert case.stairwell_id == town.stairwells["north-12-2"]
    assert case.inside_managed_area and case.routed_to == "grid"


def test_worker_of_the_grid_is_assigned(connection: Connection, town: Town) -> None:
    answer = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    assert answer.case.worker_id == town.worker
    assert answer.case.worker_name == "张三"


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_gcj02_and_bd09_reports_land_where_their_wgs84_original_does(
    connection: Connection, town: Town, system: str
) -> None:
    convert = wgs84_to_gcj02 if system == "gcj02" else wgs84_to_bd09
    lon, lat = convert(*P004)
    case = report_case(connection, CaseReport(category=GARBAGE, lon=lon, lat=lat, crs=system)).case
    assert case.grid_id == town.grids["110108011001004"]
    assert (case.lon, case.lat) == pytest.approx(P004, abs=1e-6)


def test_unknown_category_is_refused_naming_category(connection: Connection, town: Town) -> None:
    with pytest.raises(InputError) as caught:
        report_case(connection, CaseReport(category="E9999", lon=P002[0], lat=P002[1]))
    assert caught.value.field == "category"


@pytest.mark.parametrize(
    ("lon", "lat", "field"),
    [("abc", Y0, "lon"), (float("nan"), Y0, "lon"), (X0, 95.0, "lat"), (200.0, Y0, "lon")],
)
def test_bad_coordinates_are_refused_naming_the_field(
    connection: Connection, town: Town, lon: object, lat: object, field: str
) -> None:
    with pytest.raises(InputError) as caught:
        report_case(connection, CaseReport(category=GARBAGE, lon=lon, lat=lat))  # type: ignore[arg-type]
    assert caught.value.field == field


def test_unknown_crs_is_refused_naming_crs(connection: Connection, town: Town) -> None:
    with pytest.raises(InputError) as caught:
        report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1], crs="osgb"))
    assert caught.value.field == "crs"


def test_swapped_coordinates_are_refused_saying_so(connection: Connection, town: Town) -> None:
    with pytest.raises(InputError, match="swapped") as caught:
        report_case(connection, CaseReport(category=GARBAGE, lon=P002[1], lat=P002[0]))
    assert caught.value.field == "lat"


def test_swapped_coordinates_inside_latitude_range_are_refused_saying_so(
    connection: Connection, town: Town
) -> None:
    # A cell at (39.5..39.6, 39.9..40.0): the point (39.95, 39.55) lies outside every cell as
    # given and inside that cell when swapped.
    connection.execute(
        text(
            "INSERT INTO grid (code, kind, geom, valid_from) VALUES ('110108011003001', 'service',"
            " ST_Multi(ST_MakeEnvelope(39.5, 39.9, 39.6, 40.0, 4326)), '2020-01-01')"
        )
    )
    with pytest.raises(InputError, match="swapped"):
        report_case(connection, CaseReport(category=GARBAGE, lon=39.95, lat=39.55))


def test_empty_address_without_coordinates_is_refused_naming_address(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(InputError) as caught:
        report_case(connection, CaseReport(category=GARBAGE, address="  "))
    assert caught.value.field == "address"


def test_report_without_any_location_is_refused_naming_location(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(InputError) as caught:
        report_case(connection, CaseReport(category=GARBAGE))
    assert caught.value.field == "location"


def test_case_reported_by_address_gets_the_stairwell_of_the_address(
    connection: Connection, town: Town
) -> None:
    case = report_case(
        connection, CaseReport(category=GARBAGE, address="八角南路社区 12号楼1单元")
    ).case
    assert case.stairwell_id == town.stairwells["south-12-1"]
    assert case.grid_id == town.grids["110108011002001"]
    assert case.address == "八角南路社区 12号楼1单元"


def test_case_outside_every_grid_is_stored_flagged_and_routed_to_the_subdistrict(
    connection: Connection, town: Town
) -> None:
    case = report_case(connection, CaseReport(category=GARBAGE, lon=X0 - 5 * D, lat=Y0)).case
    assert case.grid_id is None
    assert not case.inside_managed_area
    assert case.routed_to == "subdistrict"
    assert case.subdistrict_code == "110108011"


def test_case_near_a_boundary_is_flagged_with_the_other_grid(
    connection: Connection, town: Town
) -> None:
    # 0.00005 degree of longitude is about 4.3 m at 39.9 N: inside the default 10 m.
    case = report_case(
        connection, CaseReport(category=GARBAGE, lon=X0 + D - 0.00005, lat=Y0 + 0.5 * D)
    ).case
    assert case.grid_id == town.grids["110108011001004"]
    assert case.near_grid_code == "110108011001002"
    assert case.near_boundary_m == pytest.approx(4.27, abs=0.1)


def test_same_external_id_twice_answers_the_existing_case(
    connection: Connection, town: Town
) -> None:
    first = report_case(
        connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1], external_id="wx-1")
    )
    again = report_case(
        connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1], external_id="wx-1")
    )
    assert not again.created
    assert again.case.id == first.case.id
    count = connection.execute(text("SELECT count(*) FROM cases WHERE external_id = 'wx-1'"))
    assert count.scalar_one() == 1


def test_open_case_of_the_same_class_nearby_is_a_possible_duplicate(
    connection: Connection, town: Town
) -> None:
    first = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    second = report_case(
        connection, CaseReport(category=GARBAGE, lon=P002[0] + 0.0002, lat=P002[1])
    )
    assert [c.id for c in second.possible_duplicates] == [first.case.id]


def test_other_class_is_not_a_duplicate(connection: Connection, town: Town) -> None:
    report_case(connection, CaseReport(category="E0104", lon=P002[0], lat=P002[1]))
    second = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    assert second.possible_duplicates == []


def test_case_beyond_the_radius_is_not_a_duplicate(connection: Connection, town: Town) -> None:
    report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    # 0.0015 degree of longitude is about 128 m: beyond the default 100 m.
    second = report_case(
        connection, CaseReport(category=GARBAGE, lon=P002[0] + 0.0015, lat=P002[1])
    )
    assert second.possible_duplicates == []


def test_radius_is_configurable(connection: Connection, town: Town) -> None:
    first = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    second = report_case(
        connection,
        CaseReport(category=GARBAGE, lon=P002[0] + 0.0015, lat=P002[1]),
        settings=CaseSettings(duplicate_radius_m=200),
    )
    assert [c.id for c in second.possible_duplicates] == [first.case.id]


def test_closed_case_is_not_a_duplicate(connection: Connection, town: Town) -> None:
    first = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    connection.execute(
        text("UPDATE cases SET status = 'closed' WHERE id = :i"), {"i": first.case.id}
    )
    second = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    assert second.possible_duplicates == []


def test_case_older_than_the_window_is_not_a_duplicate(connection: Connection, town: Town) -> None:
    first = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    connection.execute(
        text("UPDATE cases SET reported_at = now() - interval '8 days' WHERE id = :i"),
        {"i": first.case.id},
    )
    second = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    assert second.possible_duplicates == []


def test_moving_the_pin_reassigns_the_case(connection: Connection, town: Town) -> None:
    case = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case
    moved = move_pin(connection, case.id, *P002, reason="在路东侧", actor="李四")
    assert moved.grid_id == town.grids["110108011001002"]
    assert moved.worker_id == town.worker


def test_moving_the_pin_records_who_when_why_and_both_grids(
    connection: Connection, town: Town
) -> None:
    case = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case
    before = datetime.now(UTC) - timedelta(seconds=5)
    move_pin(connection, case.id, *P002, reason="在路东侧", actor="李四")
    row = connection.execute(
        text(
            "SELECT actor, reason, at, old_grid_id, new_grid_id, ST_X(old_geom) AS x"
            " FROM case_location_change WHERE case_id = :i"
        ),
        {"i": case.id},
    ).one()
    assert (row.actor, row.reason) == ("李四", "在路东侧")
    assert row.at >= before
    assert (row.old_grid_id, row.new_grid_id) == (
        town.grids["110108011001004"],
        town.grids["110108011001002"],
    )
    assert row.x == pytest.approx(P004[0])


def test_moving_the_pin_without_a_reason_is_refused_and_changes_nothing(
    connection: Connection, town: Town
) -> None:
    case = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case
    with pytest.raises(InputError) as caught:
        move_pin(connection, case.id, *P002, reason=" ", actor="李四")
    assert caught.value.field == "reason"
    grid = connection.execute(text("SELECT grid_id FROM cases WHERE id = :i"), {"i": case.id})
    assert grid.scalar_one() == town.grids["110108011001004"]


def test_moving_the_pin_of_a_missing_case_is_not_found(connection: Connection, town: Town) -> None:
    with pytest.raises(NotFoundError):
        move_pin(connection, 987_654_321, *P002, reason="x", actor="李四")


def features(body: str) -> list[dict[str, object]]:
    return list(json.loads(body)["features"])


def test_listing_filters_by_grid(connection: Connection, town: Town) -> None:
    report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1]))
    b = report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1])).case
    found = features(list_cases(connection, grid="110108011001002"))
    assert [f["id"] for f in found] == [b.id]


def test_listing_filters_by_bbox(connection: Connection, town: Town) -> None:
    a = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case
    report_case(connection, CaseReport(category=GARBAGE, lon=P002[0], lat=P002[1]))
    bbox = f"{X0},{Y0},{X0 + 0.9 * D},{Y0 + 0.9 * D}"
    assert [f["id"] for f in features(list_cases(connection, bbox=bbox))] == [a.id]


def test_listing_filters_by_category_status_and_community(
    connection: Connection, town: Town
) -> None:
    a = report_case(connection, CaseReport(category="E0104", lon=P004[0], lat=P004[1])).case
    report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1]))
    report_case(connection, CaseReport(category="E0104", lon=X0 + 3 * D, lat=Y0 + D))
    found = features(
        list_cases(connection, category="E0104", status="reported", community="110108011001")
    )
    assert [f["id"] for f in found] == [a.id]


def test_listing_filters_by_report_time(connection: Connection, town: Town) -> None:
    old = report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case
    connection.execute(
        text("UPDATE cases SET reported_at = '2026-01-01T00:00:00Z' WHERE id = :i"), {"i": old.id}
    )
    report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1]))
    found = features(
        list_cases(
            connection,
            since=datetime(2025, 12, 31, tzinfo=UTC),
            until=datetime(2026, 1, 2, tzinfo=UTC),
        )
    )
    assert [f["id"] for f in found] == [old.id]


def test_listing_pages_by_limit_and_offset(connection: Connection, town: Town) -> None:
    ids = [
        report_case(connection, CaseReport(category=GARBAGE, lon=P004[0], lat=P004[1])).case.id
        for _ in range(3)
    ]
    first = json.loads(list_cases(connection, grid="110108011001004", limit=2))
    second = json.loads(list_cases(connection, grid="110108011001004", limit=2, offset=2))
    assert [f["id"] for f in first["features"]] == ids[:2] and first["truncated"]
    assert [f["id"] for f in second["features"]] == ids[2:] and not second["truncated"]


def test_listing_never_shows_reporter_contact(connection: Connection, town: Town) -> None:
    report_case(
        connection,
        CaseReport(
            category=GARBAGE,
            lon=P004[0],
            lat=P004[1],
            reporter_name="王五",
            reporter_phone="13912345678",
        ),
    )
    body = list_cases(connection)
    assert "13912345678" not in body and "王五" not in body


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"category": "X1"}, "category"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": datetime(2026, 1, 1)}, "since"),
    ],
)
def test_listing_refuses_bad_filters_naming_them(
    connection: Connection, options: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        list_cases(connection, **options)  # type: ignore[arg-type]
    assert caught.value.field == field
