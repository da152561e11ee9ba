from datetime import timedelta

import pytest
import shapely
from sqlalchemy import Connection, text

from gis.errors import NotFoundError
from gis.grids.io import StagedCell, stage_cells
from gis.grids.synthetic import box, insert_building, insert_cell, insert_community
from gis.grids.versions import cell_by_code, cells_as_of, replace_from_staging

COMMUNITY = "110108001001"


def _before_and_after(connection: Connection) -> tuple[int, int]:
    """One cell over the whole community, replaced by two halves."""
    cid = insert_community(connection, COMMUNITY, box(0, 0, 200, 100))
    old = insert_cell(connection, COMMUNITY + "001", cid, box(0, 0, 200, 100))
    insert_building(connection, box(20, 20, 50, 40), households=30)
    insert_building(connection, box(120, 20, 150, 40), households=40)
    connection.execute(text("UPDATE building SET grid_id = :g"), {"g": old})
    halves = connection.execute(
        text(
            "SELECT ST_AsBinary(ST_Transform(ST_GeomFromText(:a, 32650), 4326)),"
            " ST_AsBinary(ST_Transform(ST_GeomFromText(:b, 32650), 4326))"
        ),
        {"a": box(0, 0, 100, 100), "b": box(100, 0, 200, 100)},
    ).one()
    stage_cells(
        connection,
        [
            StagedCell(0, COMMUNITY + "002", cid, shapely.from_wkb(halves[0])),
            StagedCell(1, COMMUNITY + "003", cid, shapely.from_wkb(halves[1])),
        ],
        kind="service",
    )
    return cid, old


def test_replacing_closes_old_cells_and_deletes_nothing(connection: Connection) -> None:
    _, old = _before_and_after(connection)
    result = replace_from_staging(connection, kind="service")
    assert (result.closed, len(result.opened)) == (1, 2)
    rows = connection.execute(text("SELECT id, valid_to FROM grid ORDER BY id")).all()
    assert len(rows) == 3
    assert rows[0].id == old and rows[0].valid_to == result.valid_from
    assert rows[1].valid_to is None and rows[2].valid_to is None


def test_queries_as_of_a_moment_see_that_moment(connection: Connection) -> None:
    _before_and_after(connection)
    result = replace_from_staging(connection, kind="service")
    before = cells_as_of(connection, as_of=result.valid_from - timedelta(microseconds=1))
    after = cells_as_of(connection, as_of=result.valid_from)
    assert [f["id"] for f in before["features"]] == [COMMUNITY + "001"]
    assert [f["id"] for f in after["features"]] == [COMMUNITY + "002", COMMUNITY + "003"]


def test_buildings_follow_the_new_cells(connection: Connection) -> None:
    _before_and_after(connection)
    result = replace_from_staging(connection, kind="service")
    assert result.buildings_relinked == 2
    links = connection.execute(
        text("SELECT g.code FROM building b JOIN grid g ON g.id = b.grid_id ORDER BY b.id")
    ).scalars()
    assert list(links) == [COMMUNITY + "002", COMMUNITY + "003"]


def test_worker_stays_with_the_code(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 200, 100))
    old = insert_cell(connection, COMMUNITY + "001", cid, box(0, 0, 200, 100))
    worker = connection.execute(
        text("INSERT INTO grid_worker (name) VALUES ('王芳') RETURNING id")
    ).scalar_one()
    connection.execute(
        text("UPDATE grid SET worker_id = :w WHERE id = :g"), {"w": worker, "g": old}
    )
    geom = connection.execute(
        text("SELECT ST_AsBinary(geom) FROM grid WHERE id = :g"), {"g": old}
    ).scalar_one()
    stage_cells(
        connection, [StagedCell(0, COMMUNITY + "001", cid, shapely.from_wkb(geom))], kind="service"
    )
    replace_from_staging(connection, kind="service")
    assert cell_by_code(connection, COMMUNITY + "001").worker_name == "王芳"


def test_cell_by_code_counts_what_it_holds(connection: Connection) -> None:
    _before_and_after(connection)
    cell = cell_by_code(connection, COMMUNITY + "001")
    assert (cell.counts.buildings, cell.counts.households, cell.counts.residents) == (2, 70, 140)
    assert cell.area_m2 == pytest.approx(20_000, rel=0.01)


def test_closed_code_is_not_found_now_but_is_as_of_before(connection: Connection) -> None:
    _before_and_after(connection)
    result = replace_from_staging(connection, kind="service")
    with pytest.raises(NotFoundError):
        cell_by_code(connection, COMMUNITY + "001")
    then = result.valid_from - timedelta(microseconds=1)
    assert cell_by_code(connection, COMMUNITY + "001", as_of=then).valid_to == result.valid_from
