import dataclasses
import json
from datetime import timedelta

import pytest
from sqlalchemy import Connection, text

from gis.errors import InputError, NotFoundError
from gis.grids.synthetic import box, insert_cell, insert_community
from gis.grids.workers import (
    Worker,
    assign_grids,
    create_worker,
    list_workers,
    responsible_for,
    worker_contact,
)

COMMUNITY = "110108001001"
PHONE = "13800138000"


@pytest.fixture
def cells(connection: Connection) -> list[str]:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 300, 100), name="八角北路社区")
    codes = [COMMUNITY + f"{i:03d}" for i in (1, 2, 3)]
    for i, code in enumerate(codes):
        insert_cell(connection, code, cid, box(i * 100, 0, (i + 1) * 100, 100))
    return codes


def test_worker_holds_the_grids_assigned(connection: Connection, cells: list[str]) -> None:
    worker = create_worker(connection, name="王芳", phone=PHONE)
    worker = assign_grids(connection, worker.id, cells[:2])
    assert worker.grids == cells[:2]


def test_who_is_responsible_names_the_worker(connection: Connection, cells: list[str]) -> None:
    worker = create_worker(connection, name="王芳", phone=PHONE, role="grid_leader")
    assign_grids(connection, worker.id, [cells[1]])
    answer = responsible_for(connection, cells[1])
    assert answer.worker is not None
    assert (answer.worker.name, answer.worker.role) == ("王芳", "grid_leader")
    assert answer.community_name == "八角北路社区"


def test_cell_without_worker_falls_to_the_community(
    connection: Connection, cells: list[str]
) -> None:
    answer = responsible_for(connection, cells[0])
    assert answer.worker is None and answer.community_code == COMMUNITY


def test_public_outputs_carry_no_phone(connection: Connection, cells: list[str]) -> None:
    worker = create_worker(connection, name="王芳", phone=PHONE)
    assign_grids(connection, worker.id, cells)
    public = [
        dataclasses.asdict(responsible_for(connection, cells[0])),
        *[dataclasses.asdict(w) for w in list_workers(connection)],
    ]
    assert PHONE not in json.dumps(public, ensure_ascii=False)
    assert "phone" not in {f.name for f in dataclasses.fields(Worker)}


def test_staff_contact_has_the_phone(connection: Connection) -> None:
    worker = create_worker(connection, name="王芳", phone="138 0013 8000")
    assert worker_contact(connection, worker.id).phone == PHONE


def test_malformed_phone_is_refused(connection: Connection) -> None:
    with pytest.raises(InputError, match="phone"):
        create_worker(connection, name="王芳", phone="12345")


def test_unit_cells_cannot_be_assigned(connection: Connection) -> None:
    cid = insert_community(connection, COMMUNITY, box(0, 0, 100, 100))
    insert_cell(connection, COMMUNITY + "001", cid, box(0, 0, 100, 100), kind="unit")
    worker = create_worker(connection, name="王芳")
    with pytest.raises(InputError, match="no current service cell"):
        assign_grids(connection, worker.id, [COMMUNITY + "001"])


def test_responsibility_as_of_before_the_cell_existed_is_not_found(
    connection: Connection, cells: list[str]
) -> None:
    start = connection.execute(text("SELECT min(valid_from) FROM grid")).scalar_one()
    with pytest.raises(NotFoundError):
        responsible_for(connection, cells[0], as_of=start - timedelta(days=1))
