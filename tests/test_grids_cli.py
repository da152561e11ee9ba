"""The ``wangge grids`` commands, against a scratch database they may commit into."""

import json
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from gis.cli import app
from gis.db import make_engine
from gis.grids.synthetic import box, insert_building, insert_community
from tests.scratch import scratch_database

COMMUNITY = "110108001001"


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Iterator[tuple[str, Engine]]:
    with scratch_database(database_url, "cli") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            insert_community(conn, COMMUNITY, box(0, 0, 400, 400))
            for x, y in [(50, 250), (250, 250), (50, 50), (250, 50)]:
                insert_building(conn, box(x, y, x + 30, y + 20), households=100)
        try:
            yield url, engine
        finally:
            engine.dispose()


def _run(scratch: tuple[str, Engine], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"WANGGE_DATABASE_URL": scratch[0]})
    return result.exit_code, result.stdout


def _layer(path: Path, cells: list[tuple[str, str]]) -> Path:
    gpd.GeoDataFrame(
        {"code": [c for c, _ in cells]}, geometry=[shapely.from_wkt(w) for _, w in cells], crs=32650
    ).to_file(path, driver="GeoJSON")
    return path


QUADRANTS = [
    (COMMUNITY + "001", box(0, 200, 200, 400)),
    (COMMUNITY + "002", box(200, 200, 400, 400)),
    (COMMUNITY + "003", box(0, 0, 200, 200)),
    (COMMUNITY + "004", box(200, 0, 400, 200)),
]


def test_defective_import_exits_1_and_stores_nothing(
    scratch: tuple[str, Engine], tmp_path: Path
) -> None:
    cells = [*QUADRANTS[:2], (COMMUNITY + "003", box(0, 0, 210, 200)), QUADRANTS[3]]
    path = _layer(tmp_path / "bad.geojson", cells)
    code, out = _run(scratch, "grids", "import", str(path), "--kind", "service", "--json")
    assert code == 1
    assert json.loads(out)["counts"]["overlap"] == 1
    with scratch[1].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM grid")).scalar_one() == 0


def test_clean_import_then_validate_exits_0(scratch: tuple[str, Engine], tmp_path: Path) -> None:
    path = _layer(tmp_path / "good.geojson", QUADRANTS)
    code, _ = _run(scratch, "grids", "import", str(path), "--kind", "service")
    assert code == 0
    code, out = _run(scratch, "grids", "validate", "--kind", "service", "--json")
    assert (code, json.loads(out)["clean"], json.loads(out)["cells"]) == (0, True, 4)


def test_validate_exits_1_on_a_gap(scratch: tuple[str, Engine], tmp_path: Path) -> None:
    path = _layer(tmp_path / "good.geojson", QUADRANTS)
    assert _run(scratch, "grids", "import", str(path), "--kind", "service")[0] == 0
    with scratch[1].begin() as conn:
        conn.execute(
            text(
                "UPDATE grid SET geom = ST_Multi(ST_Buffer(geom, -0.0001))"
                " WHERE code = :c AND valid_to IS NULL"
            ),
            {"c": COMMUNITY + "001"},
        )
    code, out = _run(scratch, "grids", "validate", "--kind", "service", "--json")
    assert code == 1
    assert json.loads(out)["counts"]["gap"] == 1
