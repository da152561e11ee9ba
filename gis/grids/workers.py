"""Grid workers (网格员): who they are, which service cells they hold, who answers for a cell.

A worker's phone is personal data: :class:`Worker` (what public outputs and listings get) has no
phone field at all; only :func:`worker_contact`, meant for authorised staff, returns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, text

from gis.errors import InputError, NotFoundError
from gis.grids.codes import parse_code

# Mainland mobile numbers (11 digits starting 13-19) or landlines with area code.
PHONE_PATTERN = re.compile(r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$")


@dataclass(frozen=True, slots=True)
class Worker:
    """A grid worker as shown publicly: no phone."""

    id: int
    name: str
    role: str
    active: bool
    grids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WorkerContact:
    """A worker with the phone, for authorised staff only."""

    worker: Worker
    phone: str | None


@dataclass(frozen=True, slots=True)
class Responsible:
    """Who answers for a cell: its worker, else the community (the territory rule)."""

    code: str
    community_code: str | None
    community_name: str | None
    worker: Worker | None


def _worker(connection: Connection, worker_id: int) -> Worker:
    row = connection.execute(
        text("SELECT id, name, role, active FROM grid_worker WHERE id = :id"), {"id": worker_id}
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no grid worker {worker_id}")
    grids = connection.execute(
        text(
            "SELECT code FROM grid WHERE worker_id = :id AND valid_to IS NULL"
            " AND kind = 'service' ORDER BY code"
        ),
        {"id": worker_id},
    ).scalars()
    return Worker(int(row[0]), row[1], row[2], bool(row[3]), list(grids))


def create_worker(
    connection: Connection, *, name: str, phone: str | None = None, role: str = "grid_worker"
) -> Worker:
    """Create a grid worker.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    name : str
        The worker's name.
    phone : str, optional
        Mobile (11 digits) or landline with area code; stored, never shown publicly.
    role : str
        E.g. ``grid_worker`` (网格员), ``grid_leader`` (网格长), ``police`` (网格警).

    Returns
    -------
    Worker

    Raises
    ------
    InputError
        If the name or role is empty or the phone malformed.
    """
    name = name.strip()
    if not name:
        raise InputError("name", "must not be empty")
    if not role.strip() or len(role) > 40:
        raise InputError("role", "must be 1-40 characters")
    if phone is not None:
        phone = phone.replace(" ", "")
        if not PHONE_PATTERN.fullmatch(phone):
            raise InputError("phone", "expected 11 mobile digits or an area code and number")
    worker_id = connection.execute(
        text("INSERT INTO grid_worker (name, phone, role) VALUES (:n, :p, :r) RETURNING id"),
        {"n": name, "p": phone, "r": role.strip()},
    ).scalar_one()
    return _worker(connection, int(worker_id))


def assign_grids(connection: Connection, worker_id: int, codes: list[str]) -> Worker:
    """Make a worker responsible for current service cells (replacing their previous worker).

    Raises
    ------
    NotFoundError
        If the worker does not exist.
    InputError
        If a code is malformed or names no current service cell.
    """
    _worker(connection, worker_id)
    for code in codes:
        parse_code(code)
    found = set(
        connection.execute(
            text(
                "SELECT code FROM grid WHERE code = ANY(:codes) AND kind = 'service'"
                " AND valid_to IS NULL"
            ),
            {"codes": codes},
        ).scalars()
    )
    missing = [c for c in codes if c not in found]
    if missing:
        msg = f"no current service cell {', '.join(missing)} (unit cells have no worker)"
        raise InputError("codes", msg)
    connection.execute(
        text(
            "UPDATE grid SET worker_id = :w WHERE code = ANY(:codes) AND kind = 'service'"
            " AND valid_to IS NULL"
        ),
        {"w": worker_id, "codes": codes},
    )
    return _worker(connection, worker_id)


def unassign_grid(connection: Connection, code: str) -> None:
    """Leave a current service cell without a worker.

    Raises
    ------
    NotFoundError
        If there is no such current service cell.
    """
    result = connection.execute(
        text(
            "UPDATE grid SET worker_id = NULL WHERE code = :code AND kind = 'service'"
            " AND valid_to IS NULL"
        ),
        {"code": code},
    )
    if not result.rowcount:
        raise NotFoundError(f"no current service cell {code}")


def responsible_for(
    connection: Connection, code: str, *, as_of: datetime | None = None
) -> Responsible:
    """Answer "who is responsible here" for a service cell code, at ``as_of`` (default now).

    Raises
    ------
    InputError
        If the code is malformed.
    NotFoundError
        If no service cell had that code at that moment.
    """
    parse_code(code)
    row = connection.execute(
        text(
            "SELECT g.worker_id, c.code, c.name FROM grid g"
            " LEFT JOIN community c ON c.id = g.community_id"
            " WHERE g.code = :code AND g.kind = 'service' AND g.valid_from <= :t"
            " AND (g.valid_to IS NULL OR g.valid_to > :t)"
        ),
        {"code": code, "t": as_of or connection.execute(text("SELECT clock_timestamp()")).scalar()},
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no service cell {code}" + (f" as of {as_of}" if as_of else ""))
    worker = _worker(connection, int(row[0])) if row[0] is not None else None
    return Responsible(code, row[1], row[2], worker)


def list_workers(connection: Connection, *, active_only: bool = True) -> list[Worker]:
    """Return the workers (without phones), by name."""
    ids = connection.execute(
        text("SELECT id FROM grid_worker WHERE active OR NOT :a ORDER BY name, id"),
        {"a": active_only},
    ).scalars()
    return [_worker(connection, int(i)) for i in ids]


def worker_contact(connection: Connection, worker_id: int) -> WorkerContact:
    """Return a worker with the phone. For authorised staff only; never for public outputs.

    Raises
    ------
    NotFoundError
        If the worker does not exist.
    """
    worker = _worker(connection, worker_id)
    phone = connection.execute(
        text("SELECT phone FROM grid_worker WHERE id = :id"), {"id": worker_id}
    ).scalar_one()
    return WorkerContact(worker, phone)
