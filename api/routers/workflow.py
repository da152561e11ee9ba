"""The closed loop over HTTP: move a case through its workflow, read it with its history.

``POST /cases/{id}/transitions``, ``GET /cases/{id}``, ``GET /cases/overdue``.

The actor is the request's principal (``api.deps.get_principal``): its name is recorded, and
the role it acts in is one of its roles that the workflow knows (``gis.cases.workflow.ROLES``).
Routes validate and pass on; :mod:`gis.cases.workflow` owns every query and rule. Reporter
contact is shown to staff and admins only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from api.deps import EngineDep, PrincipalDep, ReadConnectionDep
from gis.auth import CONTACT_ROLES, PermissionDeniedError, Principal, audit
from gis.cases.categories import TimeLimit
from gis.cases.deadlines import TimeStatus
from gis.cases.workflow import (
    ROLES,
    CaseView,
    IllegalTransitionError,
    TransitionRecord,
    allowed_transitions,
    apply_transition,
    get_case,
    overdue_case_ids,
)
from gis.db import translate_errors

router = APIRouter(tags=["workflow"])


def get_workflow_connection(engine: EngineDep) -> Iterator[Connection]:
    """Yield a connection in a transaction committed when the route succeeds."""
    with translate_errors(), engine.begin() as connection:
        yield connection


# scope="function": commit before the response is sent (a failed commit is never answered 2xx).
WorkflowConnectionDep = Annotated[Connection, Depends(get_workflow_connection, scope="function")]


class ExtensionIn(BaseModel):
    """The time limit an extension asks for (or an approval grants)."""

    value: int = Field(gt=0)
    unit: str = Field(description="urgent_hours, working_hours, working_days or calendar_days.")


class TransitionIn(BaseModel):
    """One workflow step asked for by the principal."""

    to_state: str = Field(description="The wanted state, e.g. dispatched.")
    reason: str | None = Field(
        default=None, description="Mandatory for return, void, rework, park and extensions."
    )
    receiver: str | None = Field(
        default=None, description="Receiving department at dispatch (default: the category's)."
    )
    expected_version: int | None = Field(
        default=None, description="The case version the actor saw; another one answers 409."
    )
    action: str | None = Field(
        default=None, description="approve_extension or reject_extension (same target state)."
    )
    extension: ExtensionIn | None = Field(
        default=None, description="Time limit asked for by request_extension."
    )
    role: str | None = Field(
        default=None, description="Act in this role of the principal (default: the first fit)."
    )


class AllowedOut(BaseModel):
    """A step the principal may take from the case's current state."""

    action: str
    to_state: str
    reason_required: bool


class CaseOut(BaseModel):
    """A case with its time used/left (seconds of its clock) and its full history."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category_code: str
    status: str
    version: int
    grid_id: int | None
    department: str | None
    worker_id: int | None
    external_id: str | None
    reported_at: dt.datetime
    filed_at: dt.datetime | None
    dispatched_at: dt.datetime | None
    deadline: dt.datetime | None
    closed_at: dt.datetime | None
    time_limit: TimeLimit | None
    time: TimeStatus | None
    history: list[TransitionRecord]
    reporter_name: str | None = Field(default=None, description="Staff and admins only.")
    reporter_phone: str | None = Field(default=None, description="Staff and admins only.")
    allowed: list[AllowedOut] = Field(
        default_factory=list, description="Steps the principal may take now."
    )


class OverdueOut(BaseModel):
    """Open cases past their deadline, most overdue first."""

    now: dt.datetime
    cases: list[CaseOut]


def workflow_roles(principal: Principal) -> list[str]:
    """Return the principal's roles that the workflow knows, in the workflow's order."""
    return [r for r in ROLES if r in principal.roles]


def _case_out(view: CaseView, principal: Principal) -> CaseOut:
    roles = workflow_roles(principal)
    steps = {
        (t.action, t.to_state): t for r in roles for t in allowed_transitions(view.status, role=r)
    }
    out = CaseOut.model_validate(view)
    out.allowed = [
        AllowedOut(action=t.action, to_state=t.to_state, reason_required=t.reason_required)
        for t in steps.values()
    ]
    return out


def _acting_roles(principal: Principal, asked: str | None) -> list[str]:
    roles = workflow_roles(principal)
    if asked is not None:
        if asked not in roles:
            msg = f"{principal.name} does not hold the workflow role {asked!r}"
            raise PermissionDeniedError(msg)
        return [asked]
    if not roles:
        msg = f"{principal.name} holds no workflow role ({', '.join(ROLES)})"
        raise PermissionDeniedError(msg)
    return roles


@router.post(
    "/cases/{case_id}/transitions",
    response_model=CaseOut,
    responses={
        403: {"description": "The principal holds no workflow role (or not the one named)."},
        404: {"description": "No such case."},
        409: {"description": "Illegal step (allowed ones listed) or a concurrent change."},
        422: {"description": "Bad input, e.g. a return without a reason."},
    },
)
def post_transition(
    case_id: Annotated[int, Path(ge=1)],
    body: TransitionIn,
    connection: WorkflowConnectionDep,
    principal: PrincipalDep,
) -> CaseOut:
    """Move a case one step along its workflow; the step is recorded append-only.

    The principal acts in the first of its workflow roles the step allows (or in ``role``).
    A step the workflow does not allow answers 409 with the allowed ones; a return, void,
    rework, park or extension without a reason 422; a stale ``expected_version`` (another
    actor moved the case first) 409.
    """
    roles = _acting_roles(principal, body.role)
    extension = None if body.extension is None else TimeLimit(**body.extension.model_dump())
    refused: IllegalTransitionError | None = None
    for role in roles:
        try:
            view = apply_transition(
                connection,
                case_id,
                body.to_state,
                actor=principal.name,
                role=role,
                reason=body.reason,
                receiver=body.receiver,
                expected_version=body.expected_version,
                action=body.action,
                extension=extension,
            )
        except IllegalTransitionError as exc:
            refused = exc
            continue
        return _case_out(view, principal)
    assert refused is not None
    if len(roles) > 1:
        # Refused in every role: list what any of them may do.
        state = get_case(connection, case_id).status
        allowed = {
            (t.action, t.to_state): t for r in roles for t in allowed_transitions(state, role=r)
        }
        msg = f"{', '.join(roles)} may not move a case from {state} to {body.to_state}"
        raise IllegalTransitionError(msg, list(allowed.values()))
    raise refused


@router.get(
    "/cases/overdue",
    response_model=OverdueOut,
    responses={422: {"description": "Bad limit."}},
)
def get_overdue(
    connection: ReadConnectionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Most cases returned.")] = 100,
) -> OverdueOut:
    """Return the open cases past their deadline now, most overdue first, with time left."""
    now = dt.datetime.now(dt.UTC)
    cases = [
        _case_out(get_case(connection, case_id, now=now), principal)
        for case_id in overdue_case_ids(connection, now=now, limit=limit)
    ]
    return OverdueOut(now=now, cases=cases)


@router.get(
    "/cases/{case_id}",
    response_model=CaseOut,
    responses={404: {"description": "No such case."}},
)
def get_case_route(
    case_id: Annotated[int, Path(ge=1)],
    connection: ReadConnectionDep,
    principal: PrincipalDep,
) -> CaseOut:
    """Return a case with its full history, time used and left, and the allowed next steps.

    The reporter's name and phone are included for staff and admins only.
    """
    contact = bool(CONTACT_ROLES & principal.roles)
    view = get_case(connection, case_id, include_reporter=contact)
    if contact:
        # Reporter name and phone are personal data: every read of them is recorded.
        audit(connection, principal, "read", "cases.reporter", {"case_id": case_id})
    return _case_out(view, principal)
