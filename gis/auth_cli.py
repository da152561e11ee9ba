"""``wangge users ...`` (accounts and tokens) and ``wangge db dump|restore``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gis.auth import ROLES, add_user, issue_token, list_users, revoke_tokens
from gis.backup import dump_database, restore_database
from gis.db import database_url, make_engine, migrate, translate_errors
from gis.settings import DatabaseSettings

users_app = typer.Typer(no_args_is_help=True, help="API users, roles and bearer tokens.")
console = Console(stderr=True)


def _url() -> str:
    url = database_url(DatabaseSettings())
    migrate(url)
    return url


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Unique user name.")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    worker_id: Annotated[
        int | None, typer.Option(help="grid_worker id of a worker user (their grids).")
    ] = None,
) -> None:
    """Create a user with a role."""
    engine = make_engine(_url(), pool_size=1)
    try:
        with translate_errors(), engine.begin() as connection:
            user_id = add_user(connection, name, role=role, worker_id=worker_id)
    finally:
        engine.dispose()
    console.print(f"user {name} ({role}) created with id {user_id}")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="User name.")],
    days: Annotated[float, typer.Option(help="Validity in days.")] = 90.0,
    label: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
) -> None:
    """Issue a bearer token and print it (only its hash is stored: keep it now)."""
    engine = make_engine(_url(), pool_size=1)
    try:
        with translate_errors(), engine.begin() as connection:
            token = issue_token(connection, name, days=days, label=label)
    finally:
        engine.dispose()
    print(token)


@users_app.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="User name.")],
    token: Annotated[
        str | None, typer.Option(help="Revoke this token only (default: all of the user's).")
    ] = None,
) -> None:
    """Revoke a user's tokens (all, or the one given)."""
    engine = make_engine(_url(), pool_size=1)
    try:
        with translate_errors(), engine.begin() as connection:
            count = revoke_tokens(connection, name, token=token)
    finally:
        engine.dispose()
    console.print(f"{count} token(s) of {name} revoked")


@users_app.command("list")
def users_list() -> None:
    """Print every user as a JSON line: id, name, role, worker id, live tokens."""
    engine = make_engine(_url(), pool_size=1)
    try:
        with translate_errors(), engine.connect() as connection:
            users = list_users(connection)
    finally:
        engine.dispose()
    for user in users:
        print(json.dumps(user, ensure_ascii=False))


def db_dump(
    path: Annotated[Path, typer.Argument(help="Dump file to write (custom format).")],
) -> None:
    """Dump the database (embedded cluster or WANGGE_DATABASE_URL) with pg_dump."""
    dump_database(database_url(DatabaseSettings()), path)
    console.print(f"dumped to {path}")


def db_restore(
    path: Annotated[Path, typer.Argument(help="Dump file written by wangge db dump.")],
) -> None:
    """Restore a dump over the database (objects of the dump are replaced)."""
    restore_database(database_url(DatabaseSettings()), path)
    console.print(f"restored {path}")
