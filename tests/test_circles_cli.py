"""``wangge circles compute|report|gate`` against a scratch database they may commit into."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from gis.cli import app
from gis.db import make_engine
from gis.errors import InputError
from gis.grids.generate import generate_grids
from gis.grids.synthetic import synthetic_subdistrict
from tests.scratch import scratch_database
from tests.test_circles_store import CODE, insert_facility, node_streets


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Iterator[tuple[str, Engine]]:
    with scratch_database(database_url, "circles_cli") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            made = synthetic_subdistrict(conn, code=CODE, buildings=80, communities=(2, 2), seed=7)
            generate_grids(conn, community_ids=made.community_ids, target_households=400)
            node_streets(conn)
            for kind, x, y in [("kindergarten", 150, 150), ("convenience_shop", 450, 300)]:
                insert_facility(conn, kind, x, y)
        try:
            yield url, engine
        finally:
            engine.dispose()


def _run(scratch: tuple[str, Engine], *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args), env={"WANGGE_DATABASE_URL": scratch[0]})
    return result.exit_code, result.stdout, result.exception


def test_compute_prints_a_summary_of_the_stored_area(scratch: tuple[str, Engine]) -> None:
    code, out, _ = _run(scratch, "circles", "compute", "--subdistrict", CODE)
    assert code == 0
    summary = json.loads(out)
    with scratch[1].connect() as conn:
        stored = conn.execute(
            text("SELECT count(DISTINCT stairwell_id) FROM circle_coverage WHERE area_id = :a"),
            {"a": summary["area_id"]},
        ).scalar_one()
    assert summary["stairwells"] == stored > 0
    assert summary["methods"] == ["network"]


def test_report_csv_household_totals_add_up(scratch: tuple[str, Engine]) -> None:
    _run(scratch, "circles", "compute", "--subdistrict", CODE)
    code, out, _ = _run(scratch, "circles", "report", "--level", "5", "--by", "community", "--csv")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out), dtype={"community": str})
    with scratch[1].connect() as conn:
        total = conn.execute(
            text(
                "SELECT sum(households) FROM stairwell WHERE id IN "
                "(SELECT stairwell_id FROM circle_coverage)"
            )
        ).scalar_one()
    assert set(frame.groupby("type")["households"].sum()) == {total}


def test_report_with_an_unknown_type_names_the_type(scratch: tuple[str, Engine]) -> None:
    code, _, exc = _run(scratch, "circles", "report", "--type", "casino")
    assert code != 0
    assert isinstance(exc, InputError)
    assert exc.field == "type"
