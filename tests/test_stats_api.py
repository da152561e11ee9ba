"""``GET /stats/indicators`` (JSON and CSV) and ``wangge stats`` over the scripted week.

The week is the hand-checked one of :mod:`tests.test_cases_week` (2026 Mid-Autumn holiday,
make-up workday); its expected figures are worked out there.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from gis.auth import Principal
from gis.cases.calendar import WorkingCalendar
from gis.cases.stats import FIELDS
from gis.cases.workflow import apply_transition
from gis.cli import app as cli
from tests.test_cases_week import SCRIPT, _place
from tests.workflow_client import client_as

WEEK = {"since": "2026-09-20", "until": "2026-09-28"}  # [20 Sep 00:00, 29 Sep 00:00) +08:00
GRID1, GRID2 = "110108001001001", "110108001001002"


@pytest.fixture
def week(connection: Connection) -> dict[str, int]:
    calendar = WorkingCalendar(2025, 2027)
    place = _place(connection)
    for _name, category, grid, steps in SCRIPT:
        case_id = connection.execute(
            text(
                "INSERT INTO cases (category_code, geom, reported_at, grid_id, reporter_name,"
                " reporter_phone) VALUES (:c, ST_Point(116.3, 39.9, 4326), :r, :g, '钱先生',"
                " '13700002222') RETURNING id"
            ),
            {"c": category, "r": steps[0][2], "g": place[f"grid{grid}"]},
        ).scalar_one()
        for to_state, role, when, options in steps:
            apply_transition(
                connection,
                case_id,
                to_state,
                actor=role,
                role=role,
                at=when,
                calendar=calendar,
                **options,
            )
    return place


@pytest.fixture
def client(database_url: str, connection: Connection) -> Iterator[TestClient]:
    with client_as(database_url, connection, Principal("统计员", frozenset({"planner"}))) as c:
        yield c


def get_json(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/stats/indicators", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_total_row_counts_filed_due_closed_and_on_time(client: TestClient, week: object) -> None:
    (total,) = get_json(client, by="", **WEEK)["groups"]
    assert (total["filed"], total["due"], total["closed"], total["closed_on_time"]) == (
        10,
        7,
        6,
        4,
    )
    assert total["on_time_rate"] == pytest.approx(4 / 7)
    assert total["correct_dispatch_rate"] == pytest.approx(0.9)


def test_by_grid_gives_incidents_per_1000_households(client: TestClient, week: object) -> None:
    groups = get_json(client, by="grid", **WEEK)["groups"]
    assert {g["grid"]: (g["filed"], g["households"]) for g in groups} == {
        GRID1: (5, 200),
        GRID2: (5, 300),
    }
    assert groups[0]["incidents_per_1000_households"] == pytest.approx(25.0)


def test_by_worker_follows_the_grid_worker(client: TestClient, week: dict[str, int]) -> None:
    groups = get_json(client, by="worker", **WEEK)["groups"]
    assert {g["worker"]: (g["filed"], g["due"]) for g in groups} == {
        str(week["worker1"]): (5, 4),
        str(week["worker2"]): (5, 3),
    }


def test_by_department_counts_the_returned_dispatch_for_its_receiver(
    client: TestClient, week: object
) -> None:
    groups = get_json(client, by="department,category", **WEEK)["groups"]
    dogs = {
        g["department"]: (g["dispatches"], g["returned_dispatches"])
        for g in groups
        if g["category"] == "E0601"
    }
    assert dogs == {"城管执法队": (1, 1), "派出所": (1, 0)}


def test_csv_parses_and_matches_json(client: TestClient, week: object) -> None:
    params = {"by": "community,category", **WEEK}
    groups = get_json(client, **params)["groups"]
    response = client.get("/stats/indicators", params={**params, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["community", "category", *FIELDS]
    assert len(rows) == len(groups)
    for row, group in zip(rows, groups, strict=True):
        for name, value in group.items():
            if value is None:
                assert row[name] == ""
            elif isinstance(value, float):
                assert float(row[name]) == pytest.approx(value)
            else:
                assert row[name] == str(value)


def test_a_date_until_includes_that_whole_day(client: TestClient, week: object) -> None:
    # C (due Mon 28 10:00) and G (due Mon 28 17:00) fall on the last day of the week
    (whole,) = get_json(client, by="", **WEEK)["groups"]
    (cut,) = get_json(client, by="", since="2026-09-20", until="2026-09-28T00:00:00+08:00")[
        "groups"
    ]
    assert (whole["due"], cut["due"]) == (7, 5)


def test_stats_never_carry_reporter_contact(client: TestClient, week: object) -> None:
    response = client.get("/stats/indicators", params={"by": "grid,category", **WEEK})
    assert "13700002222" not in response.text
    assert "钱先生" not in response.text


def test_a_date_that_is_not_iso_8601_is_422_naming_since(client: TestClient) -> None:
    response = client.get("/stats/indicators", params={"since": "20/09/2026"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "since"


def test_an_unknown_grouping_is_422_naming_by(client: TestClient) -> None:
    response = client.get("/stats/indicators", params={"by": "grid; DROP TABLE cases"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "by"


def test_an_unknown_format_is_422_naming_format(client: TestClient) -> None:
    response = client.get("/stats/indicators", params={"format": "xlsx"})
    assert response.status_code == 422
    assert response.json()["parameter"] == "format"


class _OnConnection:
    """An engine stand-in for the CLI that works inside the test's connection (real PostGIS)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connection.begin_nested():
            yield self.connection

    def dispose(self) -> None:
        return None


@pytest.fixture
def cli_on_test_connection(
    monkeypatch: pytest.MonkeyPatch, connection: Connection, database_url: str
) -> CliRunner:
    monkeypatch.setattr("gis.cli.ready_url", lambda: database_url)
    monkeypatch.setattr(
        "gis.cases.stats_cli.make_engine", lambda url, pool_size: _OnConnection(connection)
    )
    return CliRunner()


def test_cli_prints_the_same_csv_as_the_api(
    cli_on_test_connection: CliRunner, client: TestClient, week: object
) -> None:
    args = ["stats", "--by", "grid", "--since", WEEK["since"], "--until", WEEK["until"]]
    result = cli_on_test_connection.invoke(cli, args)
    assert result.exit_code == 0, result.output
    api = client.get("/stats/indicators", params={"by": "grid", "format": "csv", **WEEK})
    assert result.stdout == api.text


def test_cli_json_lists_the_groups(cli_on_test_connection: CliRunner, week: object) -> None:
    args = ["stats", "--by", "community", "--format", "json", "--since", WEEK["since"]]
    result = cli_on_test_connection.invoke(cli, [*args, "--until", WEEK["until"]])
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert (group["community"], group["filed"], group["households"]) == ("110108001001", 10, 500)


def test_cli_refuses_a_bad_date_naming_it(cli_on_test_connection: CliRunner) -> None:
    result = cli_on_test_connection.invoke(cli, ["stats", "--until", "next week"])
    assert result.exit_code == 2
    assert "until" in result.output
