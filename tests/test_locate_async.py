"""``locate_async`` (the server's path of ``GET /locate``) over an async psycopg connection.

Each test runs in a transaction of its own async connection, rolled back at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
import sqlalchemy

from gis.errors import InputError
from gis.locate import Location, locate_async

T = TypeVar("T")

CELL = "POLYGON((50 30, 50.01 30, 50.01 30.01, 50 30.01, 50 30))"


def run_rolled_back(
    database_url: str, body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
) -> T:
    dsn = sqlalchemy.make_url(database_url).set(drivername="postgresql")

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(
            dsn.render_as_string(hide_password=False)
        ) as conn:
            worker = await conn.execute(
                "INSERT INTO grid_worker (name, phone, role)"
                " VALUES ('李四', '13900000000', 'grid_worker') RETURNING id"
            )
            row = await worker.fetchone()
            assert row is not None
            await conn.execute(
                "INSERT INTO grid (code, kind, worker_id, geom, source) VALUES"
                " ('650102001001001', 'service', %s,"
                " ST_Multi(ST_GeomFromText(%s, 4326)), 'test')",
                (row[0], CELL),
            )
            try:
                return await body(conn)
            finally:
                await conn.rollback()

    return asyncio.run(main())


def test_locate_async_answers_the_covering_cell_and_its_worker(database_url: str) -> None:
    async def body(conn: psycopg.AsyncConnection[Any]) -> Location:
        return await locate_async(conn, 50.005, 30.005)

    location = run_rolled_back(database_url, body)
    assert location.grid is not None
    assert (location.grid.code, location.grid.worker_name) == ("650102001001001", "李四")


def test_locate_async_outside_every_cell_is_outside_the_managed_area(database_url: str) -> None:
    async def body(conn: psycopg.AsyncConnection[Any]) -> Location:
        return await locate_async(conn, 51.5, 31.5)

    location = run_rolled_back(database_url, body)
    assert location.inside_managed_area is False


def test_locate_async_refuses_swapped_coordinates(database_url: str) -> None:
    async def body(conn: psycopg.AsyncConnection[Any]) -> Location:
        return await locate_async(conn, 30.005, 50.005)

    with pytest.raises(InputError) as info:
        run_rolled_back(database_url, body)
    assert info.value.field == "lat"
