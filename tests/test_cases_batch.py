"""import_cases_batch: validation per row, assignment, chunked storage, idempotency, crashes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection, text

from gis.cases import reporting
from gis.cases.reporting import BatchTooLargeError, import_cases_batch
from gis.coords import wgs84_to_gcj02
from gis.errors import ConflictError, InputError
from gis.locate import locate
from gis.settings import CaseSettings
from tests.case_town import X0, Y0, D, Town, seed_town

HEADER = "external_id,category,lon,lat,crs,address,description\n"
P004 = (X0 + 0.5 * D, Y0 + 0.25 * D)
P002 = (X0 + 1.5 * D, Y0 + 0.5 * D)


@pytest.fixture
def town(connection: Connection) -> Town:
    return seed_town(connection)


def csv_bytes(*rows: str) -> bytes:
    return (HEADER + "".join(f"{r}\n" for r in rows)).encode()


def good_rows(n: int, prefix: str = "h") -> list[str]:
    return [f"{prefix}-{i},E0103,{P002[0] + i * 1e-6},{P002[1]},wgs84,,垃圾" for i in range(n)]


def count(connection: Connection, prefix: str) -> int:
    return int(
        connection.execute(
            text("SELECT count(*) FROM cases WHERE external_id LIKE :p"), {"p": f"{prefix}-%"}
        ).scalar_one()
    )


def test_valid_rows_are_stored_with_their_grid_and_worker(
    connection: Connection, town: Town
) -> None:
    report = import_cases_batch(connection, csv_bytes(*good_rows(3)))
    assert (report.rows, report.stored, report.rejected) == (3, 3, [])
    grids = connection.execute(
        text("SELECT DISTINCT grid_id, worker_id FROM cases WHERE external_id LIKE 'h-%'")
    ).all()
    assert grids == [(town.grids["110108011001002"], town.worker)]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("b-1,E0103,abc,39.9,wgs84,,", "lon"),
        ("b-1,E0103,116.3,NaN,wgs84,,", "lat"),
        ("b-1,E0103,190,39.9,wgs84,,", "lon"),
        ("b-1,E0103,116.3,91,wgs84,,", "lat"),
        ("b-1,E0103,116.3,39.9,mars,,", "crs"),
        ("b-1,E9999,116.3,39.9,wgs84,,", "category"),
        ("b-1,E0103,,,wgs84,,", "location"),
        ("b-1,E0103,,,,八角北路社区 99号楼,", "address"),
        ("b-1,E0103,,,,12号楼1单元,", "address"),
    ],
)
def test_bad_row_is_rejected_with_its_row_number_and_field(
    connection: Connection, town: Town, row: str, field: str
) -> None:
    report = import_cases_batch(connection, csv_bytes(good_rows(1)[0], row))
    assert [(r.row, r.field) for r in report.rejected] == [(3, field)]
    assert report.stored == 1


def test_swapped_row_inside_the_area_when_swapped_is_rejected_saying_so(
    connection: Connection, town: Town
) -> None:
    connection.execute(
        text(
            "INSERT INTO grid (code, kind, geom, valid_from) VALUES ('110108011003001', 'service',"
            " ST_Multi(ST_MakeEnvelope(39.5, 39.9, 39.6, 40.0, 4326)), '2020-01-01')"
        )
    )
    report = import_cases_batch(connection, csv_bytes("s-1,E0103,39.95,39.55,wgs84,,"))
    assert [(r.row, r.field) for r in report.rejected] == [(2, "lat")]
    assert "swapped" in report.rejected[0].reason


def test_rejected_rows_are_written_to_the_errors_file(
    connection: Connection, town: Town, tmp_path: Path
) -> None:
    errors = tmp_path / "errors.csv"
    import_cases_batch(connection, csv_bytes("e-1,E9999,116.3,39.9,wgs84,,"), errors_path=errors)
    with errors.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row"], r["field"]) for r in rows] == [("2", "category")]


def test_running_the_same_file_twice_stores_each_case_once(
    connection: Connection, town: Town, tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    path.write_bytes(csv_bytes(*good_rows(5)))
    import_cases_batch(connection, path)
    again = import_cases_batch(connection, path)
    assert (again.stored, again.already_stored) == (0, 5)
    assert count(connection, "h") == 5


def test_rows_without_external_id_are_stored_once_over_two_runs(
    connection: Connection, town: Town
) -> None:
    body = csv_bytes(*[f",E0103,{P002[0] + i * 1e-6},{P002[1]},wgs84,,无编号" for i in range(4)])
    import_cases_batch(connection, body)
    import_cases_batch(connection, body)
    stored = connection.execute(
        text("SELECT count(*) FROM cases WHERE description = '无编号'")
    ).scalar_one()
    assert stored == 4


def test_external_id_repeated_in_the_file_is_rejected_after_its_first_row(
    connection: Connection, town: Town
) -> None:
    rows = good_rows(1) * 2
    report = import_cases_batch(connection, csv_bytes(*rows))
    assert [(r.row, r.field, r.reason) for r in report.rejected] == [
        (3, "external_id", "repeats row 2")
    ]


class SimulatedCrashError(RuntimeError):
    pass


def test_crash_after_a_chunk_keeps_whole_chunks_and_a_rerun_completes(
    connection: Connection, town: Town
) -> None:
    body = csv_bytes(*good_rows(7))
    settings = CaseSettings(batch_chunk_rows=3)

    def crash(stage: str, done: int, total: int) -> None:
        if stage == "storing" and done == 3:
            raise SimulatedCrashError

    with pytest.raises(SimulatedCrashError):
        import_cases_batch(connection, body, settings=settings, progress=crash)
    assert count(connection, "h") == 3
    rerun = import_cases_batch(connection, body, settings=settings)
    assert (rerun.stored, rerun.already_stored, rerun.chunks) == (4, 3, 2)
    assert count(connection, "h") == 7


def test_batch_assignment_equals_locate_for_every_point(connection: Connection, town: Town) -> None:
    rng = np.random.default_rng(7)
    lon = X0 - 0.5 * D + rng.random(60) * 5 * D
    lat = Y0 - 0.5 * D + rng.random(60) * 3 * D
    # Points on shared edges and vertices too.
    lon = np.r_[lon, X0 + D, X0 + D, X0 + 2 * D, X0]
    lat = np.r_[lat, Y0 + 0.5 * D, Y0 + D, Y0 + D, Y0]
    rows = [
        f"a-{i},E0103,{float(x)!r},{float(y)!r},wgs84,,"
        for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    ]
    import_cases_batch(connection, csv_bytes(*rows))
    stored: dict[str, int | None] = dict(
        connection.execute(
            text("SELECT external_id, grid_id FROM cases WHERE external_id LIKE 'a-%'")
        ).all()
    )
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        found = locate(connection, float(x), float(y))
        assert stored[f"a-{i}"] == (None if found.grid is None else found.grid.id), (x, y)


def test_batch_near_boundary_flags_equal_locate(connection: Connection, town: Town) -> None:
    x, y = X0 + D - 0.00005, Y0 + 0.5 * D
    import_cases_batch(connection, csv_bytes(f"n-1,E0103,{x},{y},wgs84,,"))
    row = connection.execute(
        text("SELECT near_grid_code, near_boundary_m FROM cases WHERE external_id = 'n-1'")
    ).one()
    found = locate(connection, x, y)
    assert found.near_boundary is not None
    assert row.near_grid_code == found.near_boundary.code
    assert row.near_boundary_m == pytest.approx(found.near_boundary.distance_m, abs=0.05)


def test_gcj02_rows_land_in_the_grid_of_their_wgs84_original(
    connection: Connection, town: Town
) -> None:
    gx, gy = wgs84_to_gcj02(*P004)
    import_cases_batch(connection, csv_bytes(f"g-1,E0103,{gx!r},{gy!r},gcj02,,"))
    grid = connection.execute(text("SELECT grid_id FROM cases WHERE external_id = 'g-1'"))
    assert grid.scalar_one() == town.grids["110108011001004"]


def test_row_outside_every_grid_is_stored_and_routed_to_the_subdistrict(
    connection: Connection, town: Town
) -> None:
    import_cases_batch(connection, csv_bytes(f"o-1,E0103,{X0 - 5 * D},{Y0},wgs84,,"))
    row = connection.execute(
        text(
            "SELECT grid_id, inside_managed_area, routed_to, subdistrict_id FROM cases"
            " WHERE external_id = 'o-1'"
        )
    ).one()
    assert tuple(row) == (None, False, "subdistrict", town.subdistrict)


def test_address_rows_get_the_stairwell_of_the_address(connection: Connection, town: Town) -> None:
    import_cases_batch(connection, csv_bytes("d-1,E0103,,,,八角北路社区 12号楼2单元,"))
    stairwell = connection.execute(
        text("SELECT stairwell_id FROM cases WHERE external_id = 'd-1'")
    ).scalar_one()
    assert stairwell == town.stairwells["north-12-2"]


def test_geojson_features_are_imported(connection: Connection, town: Town) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": list(P004)},
                "properties": {"external_id": "j-1", "category": "E0103"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [list(P004), list(P002)]},
                "properties": {"external_id": "j-2", "category": "E0103"},
            },
        ],
    }
    report = import_cases_batch(connection, json.dumps(document).encode(), fmt="geojson")
    assert report.stored == 1
    assert [(r.row, r.field) for r in report.rejected] == [(2, "lon")]


def test_batch_over_the_row_limit_is_refused_naming_the_limit(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(BatchTooLargeError, match="limit of 2 rows"):
        import_cases_batch(
            connection, csv_bytes(*good_rows(3)), settings=CaseSettings(batch_max_rows=2)
        )
    assert count(connection, "h") == 0


def test_batch_over_the_byte_limit_is_refused_naming_the_limit(
    connection: Connection, town: Town
) -> None:
    with pytest.raises(BatchTooLargeError, match="limit of 100 bytes"):
        import_cases_batch(
            connection, csv_bytes(*good_rows(3)), settings=CaseSettings(batch_max_bytes=100)
        )


def test_file_without_a_category_column_is_refused(connection: Connection) -> None:
    with pytest.raises(InputError) as caught:
        import_cases_batch(connection, b"lon,lat\n116.3,39.9\n")
    assert caught.value.field == "columns"


def test_text_fields_and_photo_urls_arrive_intact(connection: Connection, town: Town) -> None:
    body = (
        "external_id,category,lon,lat,description,photo_urls,reporter_phone\n"
        f't-1,E0103,{P002[0]},{P002[1]},"门口, ""堆放""\n垃圾\\t",'
        "http://a/1.jpg|http://a/2.jpg,13912345678\n"
    ).encode()
    import_cases_batch(connection, body)
    row = connection.execute(
        text("SELECT description, photo_urls, reporter_phone FROM cases WHERE external_id = 't-1'")
    ).one()
    assert row.description == '门口, "堆放"\n垃圾\\t'
    assert row.photo_urls == ["http://a/1.jpg", "http://a/2.jpg"]
    assert row.reporter_phone == "13912345678"


def test_triggers_of_the_cases_table_still_fire_for_batch_rows(
    connection: Connection, town: Town
) -> None:
    connection.execute(text("CREATE TABLE batch_trigger_probe (case_id integer)"))
    connection.execute(
        text(
            "CREATE FUNCTION batch_trigger_probe() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO batch_trigger_probe VALUES (NEW.id); RETURN NEW; END; $$"
        )
    )
    connection.execute(
        text(
            "CREATE TRIGGER batch_trigger_probe AFTER INSERT ON cases"
            " FOR EACH ROW EXECUTE FUNCTION batch_trigger_probe()"
        )
    )
    import_cases_batch(connection, csv_bytes(*good_rows(3)))
    fired = connection.execute(text("SELECT count(*) FROM batch_trigger_probe")).scalar_one()
    assert fired == 3


def test_rows_referencing_a_stairwell_deleted_meanwhile_are_refused(
    connection: Connection, town: Town
) -> None:
    def delete_stairwells(stage: str, done: int, total: int) -> None:
        if stage == "storing" and done == 0:
            connection.execute(text("DELETE FROM stairwell"))

    with pytest.raises(ConflictError):
        import_cases_batch(connection, csv_bytes(*good_rows(2)), progress=delete_stairwells)
    assert count(connection, "h") == 0


def test_reported_at_is_stored_at_its_instant_with_or_without_offset(
    connection: Connection, town: Town
) -> None:
    connection.execute(text("SET LOCAL TimeZone = 'America/New_York'"))
    body = (
        "external_id,category,lon,lat,reported_at\n"
        f"t-1,E0103,{P002[0]},{P002[1]},2026-05-01T08:00:00.250+08:00\n"
        f"t-2,E0103,{P002[0]},{P002[1]},2026-05-01T08:00:00\n"
    ).encode()
    import_cases_batch(connection, body)
    stamps: dict[str, str] = dict(
        connection.execute(
            text(
                "SELECT external_id, to_char(reported_at AT TIME ZONE 'UTC',"
                " 'YYYY-MM-DD HH24:MI:SS.MS') FROM cases WHERE external_id LIKE 't-%'"
            )
        ).all()
    )
    assert stamps == {"t-1": "2026-05-01 00:00:00.250", "t-2": "2026-05-01 08:00:00.000"}


def test_values_padded_with_spaces_are_read_without_them(
    connection: Connection, town: Town
) -> None:
    body = (HEADER + f"p-1,\u3000E0103 ,{P002[0]}, {P002[1]},wgs84 ,, 垃圾\t\n").encode()
    report = import_cases_batch(connection, body)
    assert (report.stored, report.rejected) == (1, [])
    row = connection.execute(
        text("SELECT category_code, input_crs, description FROM cases WHERE external_id = 'p-1'")
    ).one()
    assert tuple(row) == ("E0103", "wgs84", "垃圾")


def test_cases_stored_by_another_writer_meanwhile_are_counted_not_stored_twice(
    connection: Connection, town: Town, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct COPY meets an external id stored after the check: the chunk goes the
    staged way (ON CONFLICT DO NOTHING) and every other row is stored once."""
    import_cases_batch(connection, csv_bytes(*good_rows(2)))
    # As if both rows were stored by another writer between the check and the COPY.
    monkeypatch.setattr(
        reporting, "_already_stored", lambda _c, ids: np.zeros(len(ids), dtype=bool)
    )
    report = import_cases_batch(connection, csv_bytes(*good_rows(5)))
    assert (report.stored, report.already_stored) == (3, 2)
    assert count(connection, "h") == 5


def test_batch_rows_arrive_with_their_values_and_the_time_of_storing_when_none(
    connection: Connection, town: Town
) -> None:
    body = (
        "external_id,category,lon,lat,crs,reported_at,photo_urls,reporter_name\n"
        f"t-1,E0103,{P002[0]},{P002[1]},wgs84,2026-05-01T08:00:00+08:00,http://a/1.jpg|http://a/2.jpg,王\n"
        f"t-2,E0104,{P004[0]},{P004[1]},wgs84,,,\n"
    ).encode()
    import_cases_batch(connection, body)
    rows = connection.execute(
        text(
            "SELECT external_id, category_code, ST_X(geom), ST_Y(geom), reported_at, photo_urls,"
            " reporter_name, reported_at = now() AS now, routed_to, inside_managed_area"
            " FROM cases WHERE external_id LIKE 't-%' ORDER BY external_id"
        )
    ).all()
    first, second = rows
    assert (first[0], first[1]) == ("t-1", "E0103")
    assert (first[2], first[3]) == P002
    assert first[4].isoformat() == "2026-05-01T00:00:00+00:00"
    assert first[5] == ["http://a/1.jpg", "http://a/2.jpg"]
    assert (first[6], first[8], first[9]) == ("王", "grid", True)
    assert (second[1], second[5], second[6], second[7]) == ("E0104", [], None, True)
