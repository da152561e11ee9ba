"""``wangge locate``, ``wangge cases import`` and ``wangge import addresses`` on a scratch
database they may commit into (the seeded town of ``tests.case_town``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from gis.addresses import resolve_address
from gis.cli import app
from gis.db import make_engine
from tests.case_town import X0, Y0, D, seed_town
from tests.scratch import scratch_database

P002 = (X0 + 1.5 * D, Y0 + 0.5 * D)


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Iterator[tuple[str, Engine]]:
    with scratch_database(database_url, "cases_cli") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            seed_town(conn)
        try:
            yield url, engine
        finally:
            engine.dispose()


def run(scratch: tuple[str, Engine], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"WANGGE_DATABASE_URL": scratch[0]})
    return result.exit_code, result.stdout


def test_locate_prints_the_grid_of_the_point(scratch: tuple[str, Engine]) -> None:
    code, out = run(scratch, "locate", str(P002[0]), str(P002[1]))
    assert code == 0
    assert json.loads(out)["grid"]["code"] == "110108011001002"


def test_locate_with_swapped_coordinates_exits_2(scratch: tuple[str, Engine]) -> None:
    code, _ = run(scratch, "locate", str(P002[1]), str(P002[0]))
    assert code == 2


def test_cases_import_twice_stores_once_and_exits_0(
    scratch: tuple[str, Engine], tmp_path: Path
) -> None:
    path = tmp_path / "cases.csv"
    rows = "".join(f"cli-{i},E0103,{P002[0]},{P002[1]}\n" for i in range(3))
    path.write_text("external_id,category,lon,lat\n" + rows, encoding="utf-8")
    assert run(scratch, "cases", "import", str(path))[0] == 0
    assert run(scratch, "cases", "import", str(path))[0] == 0
    with scratch[1].connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM cases WHERE external_id LIKE 'cli-%'"))
        assert stored.scalar_one() == 3


def test_cases_import_with_bad_rows_exits_1_and_writes_the_errors_file(
    scratch: tuple[str, Engine], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("external_id,category,lon,lat\nbad-1,E0103,abc,39.9\n", encoding="utf-8")
    code, _ = run(scratch, "cases", "import", str(path))
    assert code == 1
    errors = (tmp_path / "bad.csv.errors.csv").read_text(encoding="utf-8").splitlines()
    assert errors[1].startswith("2,lon,")


def test_import_addresses_makes_new_numbers_resolvable(
    scratch: tuple[str, Engine], tmp_path: Path
) -> None:
    path = tmp_path / "addresses.csv"
    path.write_text("community,building_number,building\n八角北路社区,88,north-7\n", "utf-8")
    assert run(scratch, "import", "addresses", str(path))[0] == 0
    with scratch[1].connect() as conn:
        match = resolve_address(conn, "八角北路社区 88号楼")
        building = conn.execute(
            text("SELECT source_id FROM building WHERE id = :i"), {"i": match.building_id}
        )
        assert building.scalar_one() == "north-7"
