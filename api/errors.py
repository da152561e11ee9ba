"""Domain exceptions mapped to HTTP status codes in one table.

Every error body has the same shape: ``{"error": kind, "detail": message}``, plus
``"parameter"`` naming the offending request parameter for bad input.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gis.cases.workflow import IllegalTransitionError
from gis.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InputError,
    NotFoundError,
    WanggeError,
)

STATUS_CODES: dict[type[WanggeError], int] = {
    InputError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    DatabaseUnavailableError: 503,
}

_KINDS: dict[type[WanggeError], str] = {
    InputError: "invalid_input",
    NotFoundError: "not_found",
    ConflictError: "conflict",
    DatabaseUnavailableError: "database_unavailable",
}


def error_body(exc: WanggeError) -> dict[str, Any]:
    """Return the JSON body describing ``exc``."""
    kind = next((k for cls, k in _KINDS.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, InputError):
        return {"error": kind, "parameter": exc.field, "detail": exc.message}
    if isinstance(exc, IllegalTransitionError):
        # The steps the actor may take instead, so a client can offer them.
        allowed = [
            {"action": t.action, "to_state": t.to_state, "reason_required": t.reason_required}
            for t in exc.allowed
        ]
        return {"error": kind, "detail": str(exc), "allowed": allowed}
    return {"error": kind, "detail": str(exc)}


def _handler(status_code: int) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WanggeError)
        return JSONResponse(error_body(exc), status_code=status_code)

    return handle


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own parameter parsing (a non-integer limit): same body shape as InputError.
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ())]
    parameter = location[-1] if location else "request"
    body = {"error": "invalid_input", "parameter": parameter, "detail": first.get("msg", "")}
    return JSONResponse(body, status_code=422)


def add_exception_handlers(
    app: FastAPI, status_codes: dict[type[WanggeError], int] = STATUS_CODES
) -> None:
    """Register one handler per domain exception class of ``status_codes``."""
    for cls, status_code in status_codes.items():
        app.add_exception_handler(cls, _handler(status_code))
    app.add_exception_handler(RequestValidationError, _validation_handler)
