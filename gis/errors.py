"""Domain exceptions: one hierarchy, mapped to HTTP status codes in ``api.errors``."""

from __future__ import annotations


class WanggeError(Exception):
    """Base of every error wangge raises on purpose."""


class InputError(WanggeError, ValueError):
    """Bad input: names the offending field (parameter, column, CSV row or feature)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(WanggeError, LookupError):
    """A named thing (layer, grid code, case) does not exist."""


class ConflictError(WanggeError):
    """The request conflicts with the current state (a stale version, an illegal transition)."""


class DatabaseUnavailableError(WanggeError):
    """PostGIS cannot be reached or refuses to work."""


class ClusterError(WanggeError):
    """The embedded PostgreSQL cluster cannot be set up, started or stopped."""
