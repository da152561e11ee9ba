"""import_cases_batch outside a transaction: chunks stored on two connections at once, each
committed on its own (a scratch database, since the rows are committed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from gis.cases.reporting import import_cases_batch
from gis.db import make_engine
from gis.settings import CaseSettings
from tests.case_town import X0, Y0, D, seed_town
from tests.scratch import scratch_database

P002 = (X0 + 1.5 * D, Y0 + 0.5 * D)
HEADER = "external_id,category,lon,lat,crs,description\n"


@pytest.fixture(scope="module")
def scratch(database_url: str) -> Iterator[Engine]:
    with scratch_database(database_url, "batch_parallel") as url:
        engine = make_engine(url, pool_size=1)
        with engine.begin() as conn:
            seed_town(conn)
        try:
            yield engine
        finally:
            engine.dispose()


def rows(prefix: str, n: int) -> bytes:
    body = "".join(
        f'{prefix}-{i},E0103,{P002[0] + i * 1e-6},{P002[1]},wgs84,"第{i}件, ""急""\t\\"\n'
        for i in range(n)
    )
    return (HEADER + body).encode()


def stored(engine: Engine, prefix: str) -> list[tuple[str, int | None, str]]:
    with engine.connect() as conn:
        return [
            (r.external_id, r.grid_id, r.description)
            for r in conn.execute(
                text(
                    "SELECT external_id, grid_id, description FROM cases"
                    " WHERE external_id LIKE :p ORDER BY id"
                ),
                {"p": f"{prefix}-%"},
            )
        ]


def test_every_chunk_is_stored_once_with_its_grid_and_text(scratch: Engine) -> None:
    settings = CaseSettings(batch_chunk_rows=4)
    with scratch.connect() as conn:
        report = import_cases_batch(conn, rows("p", 23), settings=settings)
    assert (report.stored, report.already_stored, report.chunks) == (23, 0, 6)
    cases = stored(scratch, "p")
    assert sorted(c[0] for c in cases) == sorted(f"p-{i}" for i in range(23))
    assert {c[1] for c in cases} != {None}
    assert len({c[1] for c in cases}) == 1
    assert dict((c[0], c[2]) for c in cases)["p-7"] == '第7件, "急"\t\\'


def test_progress_counts_committed_rows_up_to_the_total(scratch: Engine) -> None:
    seen: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "storing":
            seen.append(done)

    with scratch.connect() as conn:
        import_cases_batch(
            conn, rows("q", 10), settings=CaseSettings(batch_chunk_rows=3), progress=progress
        )
    assert seen[0] == 0
    assert seen[-1] == 10
    assert seen == sorted(seen)
    assert len(seen) == 1 + 4


class SimulatedCrashError(RuntimeError):
    pass


def test_crash_keeps_whole_chunks_and_a_rerun_stores_the_rest(scratch: Engine) -> None:
    settings = CaseSettings(batch_chunk_rows=3)
    body = rows("r", 20)

    def crash(stage: str, done: int, total: int) -> None:
        if stage == "storing" and done > 0:
            raise SimulatedCrashError

    with scratch.connect() as conn, pytest.raises(SimulatedCrashError):
        import_cases_batch(conn, body, settings=settings, progress=crash)
    kept = len(stored(scratch, "r"))
    assert kept % 3 == 0
    assert 3 <= kept < 20
    with scratch.connect() as conn:
        rerun = import_cases_batch(conn, body, settings=settings)
    assert (rerun.stored, rerun.already_stored) == (20 - kept, kept)
    assert len(stored(scratch, "r")) == 20
