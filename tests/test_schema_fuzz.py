"""schemathesis against the OpenAPI document: no generated request may get a 5xx.

The app runs on a scratch database (generated POSTs commit) with access control off, so the
requests reach the routes' own validation. Bounded: a few examples per operation, derandomised
so a run is repeatable. schemathesis' own pytest plugin does not load under this pytest, so
its per-operation hypothesis strategies are driven directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.app import AppSettings, create_app
from gis.settings import ApiSettings, DatabaseSettings
from tests.scratch import scratch_database

EXAMPLES_PER_OPERATION = 8


@pytest.fixture(scope="module")
def api_schema(database_url: str) -> Iterator[schemathesis.BaseSchema]:
    with scratch_database(database_url, "fuzz") as url:
        app = create_app(
            AppSettings(
                database=DatabaseSettings(database_url=url, pool_size=2),
                api=ApiSettings(auth_required=False),
            )
        )
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[tuple[str, str, int, str]] = []
    calls: list[int] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) > 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def probe(case: schemathesis.Case[Any]) -> None:
            response = case.call()
            calls.append(response.status_code)
            if response.status_code >= 500:
                request = f"{case.method} {case.formatted_path} {case.query} {case.body!r}"[:300]
                failures.append(
                    (case.operation.label, request, response.status_code, response.text[:200])
                )

        probe()
    assert len(calls) >= len(operations)
    assert failures == []
