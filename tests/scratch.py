"""Throwaway databases next to the session's one, for tests whose work commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import make_url

from gis.db import migrate


@contextmanager
def scratch_database(server_url: str, prefix: str, *, migrated: bool = True) -> Iterator[str]:
    """Create a database on the server of ``server_url``; yield its URL; drop it afterwards.

    ``migrated`` brings its schema up to date first. The name is ``wangge_<prefix>_<random>``.
    """
    url = make_url(server_url)
    name = f"wangge_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        scratch = url.set(database=name).render_as_string(hide_password=False)
        if migrated:
            migrate(scratch)
        yield scratch
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
