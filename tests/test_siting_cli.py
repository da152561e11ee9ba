"""``wangge site`` against a scratch database holding the synthetic subdistrict."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from gis.cli import app
from gis.db import make_engine
from tests.scratch import scratch_database
from tests.test_siting_db_inputs import make_town


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Iterator[tuple[str, str]]:
    with scratch_database(database_url, "site_cli") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            town = make_town(conn)
        engine.dispose()
        yield url, ",".join(str(v) for v in town["area"].bounds)


def _run(scratch: tuple[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["site", "--bbox", scratch[1], "--node-spacing", "150", *args],
        env={"WANGGE_DATABASE_URL": scratch[0], "COLUMNS": "200"},
    )
    return result.exit_code, result.stdout, result.stderr


def test_json_answer_opens_k_sites_with_per_grid_coverage(scratch: tuple[str, str]) -> None:
    code, out, _ = _run(scratch, "--k", "2", "--distance", "300", "--json")
    assert code == 0
    answer = json.loads(out)
    assert len(answer["sites"]) == 2
    rows = answer["coverage"]["by_grid"]
    assert sum(r["covered_after"] for r in rows) == pytest.approx(
        answer["coverage"]["total"]["covered_after"]
    )


def test_table_prints_status_sites_and_each_grid(scratch: tuple[str, str]) -> None:
    code, out, _ = _run(scratch, "--k", "2", "--minutes", "5", "--group", "elderly")
    assert code == 0
    answer = json.loads(
        _run(scratch, "--k", "2", "--minutes", "5", "--group", "elderly", "--json")[1]
    )
    assert f"status {answer['status']}" in out
    for site in answer["sites"]:
        assert site["site"] in out
    for row in answer["coverage"]["by_grid"]:
        assert row["grid"] in out


def test_bad_input_exits_2_naming_the_field(scratch: tuple[str, str]) -> None:
    code, _, err = _run(scratch, "--k", "2", "--distance", "300", "--type", "casino")
    assert code == 2
    assert "facility_type" in err
