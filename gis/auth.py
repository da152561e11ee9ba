"""Users, bearer tokens, scopes and the audit log.

Roles (one per user):

``admin``
    Everything, including users and tokens.
``staff``
    The subdistrict service centre: every case and household-level row, reporter contact.
``worker``
    A grid worker (网格员): household-level rows and cases of their own current grids only.
``department``
    A functional department (职能部门) handling the cases dispatched to it (the workflow's
    ``department`` role).
``planner``
    Aggregates only: counts per grid or community, never a household-level row or a person.
``reporter``
    An app or a resident: creates cases (Open311 ``api_key`` tokens are reporter tokens).

Tokens are ``secrets.token_urlsafe(32)`` (256 random bits); only their SHA-256 is stored, so
a leaked table yields no usable token. A token carries an expiry and may be revoked.
Scoping happens in SQL: :func:`grid_scope_sql` gives the condition a query adds so that a
worker's rows are filtered by PostgreSQL, not after the fact.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from gis.errors import InputError, NotFoundError, WanggeError

ROLES = ("admin", "staff", "worker", "department", "planner", "reporter")
# Roles that may see household-level rows (stairwell counts) and reporter contact.
HOUSEHOLD_ROLES = frozenset({"admin", "staff", "worker"})
CONTACT_ROLES = frozenset({"admin", "staff"})
_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")


class AuthenticationError(WanggeError):
    """No credentials, or a token that is unknown, expired or revoked (HTTP 401)."""


class PermissionDeniedError(WanggeError):
    """An authenticated principal whose role does not allow the request (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking.

    Parameters
    ----------
    name
        User name (``anonymous`` when access control is off).
    roles
        The user's role as a one-element set (all roles when access control is off).
    authenticated
        Whether a valid token identified the user.
    user_id
        ``app_user.id``; None for the anonymous principal.
    worker_id
        The ``grid_worker`` a worker user is (None when unlinked: then no grid is theirs).
    """

    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    authenticated: bool = False
    user_id: int | None = None
    worker_id: int | None = None

    @property
    def scoped(self) -> bool:
        """Whether the principal sees only its own grids (a worker)."""
        return self.roles == frozenset({"worker"})

    @property
    def role(self) -> str:
        """The single role of an authenticated user (``admin`` for the unrestricted anonymous)."""
        for role in ROLES:
            if role in self.roles:
                return role
        return "none"

    def has_any(self, roles: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        """Whether the principal holds one of ``roles``."""
        return not self.roles.isdisjoint(roles)


# Access control off (development, tests of other modules): everything, unscoped.
UNRESTRICTED = Principal("anonymous", roles=frozenset(ROLES))


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored for ``token``.

    A plain hash suffices: tokens carry 256 random bits, so no dictionary or brute-force attack
    applies, and a fast hash keeps authentication well under a millisecond.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _check_role(role: str) -> None:
    if role not in ROLES:
        msg = f"unknown role {role!r}; expected one of {', '.join(ROLES)}"
        raise InputError("role", msg)


def add_user(connection: Connection, name: str, *, role: str, worker_id: int | None = None) -> int:
    """Create a user and return its id.

    Parameters
    ----------
    connection
        Connection in a transaction (the caller commits).
    name
        Unique user name.
    role
        One of :data:`ROLES`.
    worker_id
        The ``grid_worker`` a ``worker`` user is; required for that role, refused for others.

    Raises
    ------
    InputError
        Empty or taken name, unknown role, missing or unknown worker id.
    """
    name = name.strip()
    if not name:
        raise InputError("name", "must not be empty")
    _check_role(role)
    if role == "worker" and worker_id is None:
        raise InputError("worker_id", "a worker user needs the id of its grid_worker row")
    if role != "worker" and worker_id is not None:
        raise InputError("worker_id", f"only worker users have a worker id, not {role}")
    if worker_id is not None:
        known = connection.execute(
            text("SELECT 1 FROM grid_worker WHERE id = :id"), {"id": worker_id}
        ).first()
        if known is None:
            raise InputError("worker_id", f"no grid_worker with id {worker_id}")
    taken = connection.execute(
        text("SELECT 1 FROM app_user WHERE name = :name"), {"name": name}
    ).first()
    if taken is not None:
        raise InputError("name", f"user {name!r} exists")
    user_id = connection.execute(
        text(
            "INSERT INTO app_user (name, role, worker_id) VALUES (:name, :role, :worker) "
            "RETURNING id"
        ),
        {"name": name, "role": role, "worker": worker_id},
    ).scalar_one()
    audit(connection, None, "write", "app_user", {"id": int(user_id), "name": name, "role": role})
    return int(user_id)


def _user_id(connection: Connection, name: str) -> int:
    row = connection.execute(
        text("SELECT id FROM app_user WHERE name = :name"), {"name": name}
    ).first()
    if row is None:
        msg = f"no user {name!r}"
        raise NotFoundError(msg)
    return int(row[0])


def issue_token(
    connection: Connection, user: str, *, days: float = 90.0, label: str | None = None
) -> str:
    """Create a bearer token for ``user`` and return it (shown once; only its hash is kept).

    Parameters
    ----------
    connection
        Connection in a transaction.
    user
        User name.
    days
        Validity in days from now (> 0).
    label
        Free text saying what the token is for (e.g. the app's name).

    Raises
    ------
    NotFoundError
        Unknown user.
    InputError
        ``days`` not positive.
    """
    if not days > 0:
        raise InputError("days", f"must be > 0, got {days}")
    user_id = _user_id(connection, user)
    token = secrets.token_urlsafe(32)
    token_id = connection.execute(
        text(
            "INSERT INTO api_token (user_id, token_hash, label, expires_at) "
            "VALUES (:user, :hash, :label, :expires) RETURNING id"
        ),
        {
            "user": user_id,
            "hash": hash_token(token),
            "label": label,
            "expires": _now() + timedelta(days=days),
        },
    ).scalar_one()
    audit(connection, None, "write", "api_token", {"id": int(token_id), "user": user})
    return token


def revoke_tokens(connection: Connection, user: str, *, token: str | None = None) -> int:
    """Revoke ``token`` of ``user`` (or all of the user's live tokens); return how many.

    Raises
    ------
    NotFoundError
        Unknown user.
    """
    user_id = _user_id(connection, user)
    # A NULL hash revokes every live token of the user.
    count = connection.execute(
        text(
            "UPDATE api_token SET revoked_at = now() WHERE user_id = :user "
            "AND revoked_at IS NULL AND (CAST(:hash AS text) IS NULL OR token_hash = :hash)"
        ),
        {"user": user_id, "hash": None if token is None else hash_token(token)},
    ).rowcount
    audit(connection, None, "write", "api_token", {"revoked": count, "user": user})
    return int(count)


def list_users(connection: Connection) -> list[dict[str, Any]]:
    """Return every user with its role, worker id and number of live tokens (no secrets)."""
    rows = connection.execute(
        text(
            "SELECT u.id, u.name, u.role, u.worker_id, u.active, count(t.id) AS live_tokens "
            "FROM app_user u LEFT JOIN api_token t ON t.user_id = u.id "
            "AND t.revoked_at IS NULL AND t.expires_at > now() "
            "GROUP BY u.id ORDER BY u.id"
        )
    ).mappings()
    return [dict(row) for row in rows]


_AUTH_SQL = text(
    "SELECT u.id, u.name, u.role, u.worker_id "
    "FROM api_token t JOIN app_user u ON u.id = t.user_id "
    "WHERE t.token_hash = :hash AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active"
)


def authenticate_token(connection: Connection, token: str) -> Principal:
    """Return the principal a bearer token (or an Open311 ``api_key``) stands for.

    One indexed query on the token's hash checks expiry, revocation and the user. A worker's
    grids are not read here: :func:`grid_scope_sql` finds them inside each scoped query, so
    they are always the current ones.

    Raises
    ------
    AuthenticationError
        Empty, unknown (forged), expired or revoked token, or an inactive user. The message
        does not say which, so a caller learns nothing about other tokens.
    """
    if not token or len(token) > 256:
        msg = "invalid or expired token"
        raise AuthenticationError(msg)
    row = connection.execute(_AUTH_SQL, {"hash": hash_token(token)}).first()
    if row is None:
        msg = "invalid or expired token"
        raise AuthenticationError(msg)
    return Principal(
        str(row.name),
        roles=frozenset({str(row.role)}),
        authenticated=True,
        user_id=int(row.id),
        worker_id=None if row.worker_id is None else int(row.worker_id),
    )


def grid_ids(connection: Connection, principal: Principal) -> tuple[int, ...] | None:
    """Return the ids of the current grids a worker serves; None for an unscoped principal."""
    if not principal.scoped:
        return None
    rows = connection.execute(
        text("SELECT id FROM grid WHERE worker_id = :w AND valid_to IS NULL ORDER BY id"),
        {"w": principal.worker_id},
    )
    return tuple(int(r[0]) for r in rows)


def require_roles(principal: Principal, roles: frozenset[str] | set[str] | tuple[str, ...]) -> None:
    """Raise :class:`PermissionDeniedError` unless ``principal`` holds one of ``roles``."""
    if not principal.has_any(roles):
        msg = f"role {principal.role} may not do this; allowed: {', '.join(sorted(roles))}"
        raise PermissionDeniedError(msg)


def grid_scope_sql(
    principal: Principal, *, grid_column: str | None = None, geometry: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Return a SQL condition restricting rows to the principal's grids, with its parameters.

    Parameters
    ----------
    principal
        The caller; an unscoped principal (anyone but a worker) gets ``TRUE``.
    grid_column
        A column holding a ``grid.id`` (``cases.grid_id``, ``building.grid_id``): rows of the
        worker's current grids.
    geometry
        A geometry column (SRID 4326) instead: rows whose geometry lies in one of the worker's
        current grids (``ST_Covers`` on the grid polygon).

    Returns
    -------
    tuple
        The condition text and the parameters to bind (``scope_worker_id``). A worker with no
        current grid, or not linked to a grid worker, gets a condition matching nothing.

    Raises
    ------
    ValueError
        Neither or both of ``grid_column`` and ``geometry``, or a column name that is not a
        plain (optionally table-qualified) identifier; these come from code, never requests.
    """
    if (grid_column is None) == (geometry is None):
        msg = "give exactly one of grid_column and geometry"
        raise ValueError(msg)
    column = grid_column if grid_column is not None else geometry
    assert column is not None
    if not column or not set(column.replace('"', "")) <= _IDENTIFIER_CHARS:
        msg = f"not a plain SQL identifier: {column!r}"
        raise ValueError(msg)
    if not principal.scoped:
        return "TRUE", {}
    params: dict[str, Any] = {"scope_worker_id": principal.worker_id}
    mine = "scope_g.worker_id = :scope_worker_id AND scope_g.valid_to IS NULL"
    # Column names are checked above and come from code; the worker id is bound.
    if grid_column is not None:
        return f"{column} IN (SELECT scope_g.id FROM grid scope_g WHERE {mine})", params  # noqa: S608
    condition = (
        f"EXISTS (SELECT 1 FROM grid scope_g WHERE {mine} "  # noqa: S608
        f"AND ST_Covers(scope_g.geom, {column}))"
    )
    return condition, params


def audit(
    connection: Connection,
    principal: Principal | None,
    action: str,
    resource: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that ``principal`` (None: the command line) did ``action`` on ``resource``.

    Parameters
    ----------
    connection
        The connection of the read or write itself, so the record commits (or rolls back)
        with it.
    action
        ``read`` (of personal data) or ``write``.
    resource
        What was touched: a table or a route (``stairwell``, ``POST /cases``).
    detail
        JSON-serialisable specifics (ids, filters, counts); never the personal data itself.
    """
    if action not in ("read", "write"):
        raise InputError("action", f"must be read or write, got {action!r}")
    actor = "cli" if principal is None else principal.name
    user_id = None if principal is None else principal.user_id
    connection.execute(
        text(
            "INSERT INTO audit_log (user_id, actor, action, resource, detail) "
            "VALUES (:user, :actor, :action, :resource, CAST(:detail AS jsonb))"
        ),
        {
            "user": user_id,
            "actor": actor,
            "action": action,
            "resource": resource,
            "detail": json.dumps(detail or {}, default=str, ensure_ascii=False),
        },
    )
