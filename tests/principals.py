"""Committed users and tokens for tests of access control.

Authentication reads users through the app's own engine, so they must be committed (a test's
rolled-back connection is invisible to it). Each user gets a unique name; everything is
deleted again when the context ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, text

from gis.auth import ROLES, add_user, issue_token


@dataclass(frozen=True)
class People:
    """One token per role, and the grid worker the ``worker`` user is."""

    tokens: dict[str, str]
    names: dict[str, str]
    worker_id: int

    def headers(self, role: str) -> dict[str, str]:
        """Authorization header of the user holding ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextmanager
def people(engine: Engine) -> Iterator[People]:
    """Create a user and a token for every role (committed), and delete them afterwards."""
    tag = uuid.uuid4().hex[:8]
    with engine.begin() as connection:
        worker_id = int(
            connection.execute(
                text(
                    "INSERT INTO grid_worker (name, phone) VALUES (:n, '13912345678') RETURNING id"
                ),
                {"n": f"worker-{tag}"},
            ).scalar_one()
        )
        names = {role: f"{role}-{tag}" for role in ROLES}
        for role, name in names.items():
            add_user(connection, name, role=role, worker_id=worker_id if role == "worker" else None)
        tokens = {role: issue_token(connection, name, days=1) for role, name in names.items()}
    try:
        yield People(tokens=tokens, names=names, worker_id=worker_id)
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("DELETE FROM app_user WHERE name = ANY(:names)"),
                {"names": list(names.values())},
            )
            connection.execute(text("DELETE FROM grid_worker WHERE id = :id"), {"id": worker_id})
