"""Backups of the database: ``pg_dump`` / ``pg_restore`` in PostgreSQL's custom format.

The custom format is compressed, restores table by table, and can be restored selectively.
The client programs come from the same PostgreSQL installation as the embedded cluster
(:func:`gis.cluster.find_pg_bindir`), so their version matches the server's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import make_url

from gis.cluster import find_pg_bindir
from gis.errors import ClusterError, InputError


def libpq_url(url: str) -> str:
    """Return ``url`` (SQLAlchemy form, e.g. ``postgresql+psycopg://``) as a libpq URI."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        msg = f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
        raise ClusterError(msg)


def dump_database(url: str, path: Path) -> Path:
    """Write the whole database at ``url`` to ``path`` (custom format) and return the path.

    Raises
    ------
    InputError
        When the folder of ``path`` does not exist.
    ClusterError
        When ``pg_dump`` fails (its message is included).
    """
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"folder {path.parent} does not exist"
        raise InputError("path", msg)
    bindir = find_pg_bindir()
    _run([str(bindir / "pg_dump"), "--format=custom", "--file", str(path), libpq_url(url)])
    return path


def restore_database(url: str, path: Path, *, clean: bool = True) -> None:
    """Restore a dump written by :func:`dump_database` into the database at ``url``.

    Parameters
    ----------
    url
        Target database (it must exist; it may be empty).
    path
        The dump file.
    clean
        Drop the objects of the dump before recreating them, so restoring over a database that
        holds the same schema replaces its content.

    Raises
    ------
    InputError
        When ``path`` is not a file.
    ClusterError
        When ``pg_restore`` fails (its message is included).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"no dump file at {path}"
        raise InputError("path", msg)
    bindir = find_pg_bindir()
    args = [str(bindir / "pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction"]
    if clean:
        args += ["--clean", "--if-exists"]
    _run([*args, "--dbname", libpq_url(url), str(path)])
