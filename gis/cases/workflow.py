"""The closed loop as a data-driven state machine, applied with optimistic locking.

States: ``reported → filed → dispatched → handling → feedback → checking → closed →
evaluated`` (信息收集, 立案, 派遣, 处置, 反馈, 核查, 结案, 评价) plus ``extension_requested``,
``parked`` (挂账) and ``voided`` (作废). Every allowed step is one row of :data:`TRANSITIONS`:
its action name, from and to states, the roles that may take it and whether a reason is
mandatory. Exceptions: ``return`` (回退, to the command centre, reason mandatory), ``void``,
``request_extension`` / ``approve_extension`` / ``reject_extension`` (延期 needs approval),
``park`` / ``resume`` and ``rework`` (返工 after a failed check).

Roles: ``staff`` (command centre 指挥中心), ``department`` (责任部门), ``worker`` (grid worker
网格员), ``admin`` and ``reporter``.

:func:`apply_transition` appends one ``case_transition`` row and updates the case in one
savepoint, guarded by the case's ``version``: of two actors acting on the same version, the
first wins and the second gets :class:`gis.errors.ConflictError`. The transition log is never
updated or deleted (a database trigger refuses it).

Dispatch computes the deadline from the category's time limit (``gis.cases.deadlines``); a
re-dispatch after a return restarts the clock for the new receiver; an approved extension moves
the deadline by the requested limit.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, text

from gis.cases.calendar import WorkingCalendar
from gis.cases.categories import Category, TimeLimit, get_category
from gis.cases.deadlines import TimeStatus, deadline, extend, time_status
from gis.errors import ConflictError, InputError, NotFoundError
from gis.models import CASE_STATES

ROLES = ("staff", "department", "worker", "admin", "reporter")
_CENTRE = frozenset({"staff", "admin"})
_HANDLERS = frozenset({"department", "worker"})


@dataclass(frozen=True, slots=True)
class Transition:
    """One allowed step of the workflow."""

    action: str
    from_state: str
    to_state: str
    roles: frozenset[str]
    reason_required: bool = False


#: The workflow table: the only steps a case may take, and who may take them.
TRANSITIONS: tuple[Transition, ...] = (
    Transition("file", "reported", "filed", _CENTRE),
    Transition("void", "reported", "voided", _CENTRE, reason_required=True),
    Transition("void", "filed", "voided", _CENTRE, reason_required=True),
    Transition("dispatch", "filed", "dispatched", _CENTRE),
    Transition("accept", "dispatched", "handling", _HANDLERS),
    Transition("return", "dispatched", "filed", _HANDLERS, reason_required=True),
    Transition("return", "handling", "filed", _HANDLERS, reason_required=True),
    Transition("feedback", "handling", "feedback", _HANDLERS),
    Transition(
        "request_extension", "handling", "extension_requested", _HANDLERS, reason_required=True
    ),
    Transition("approve_extension", "extension_requested", "handling", _CENTRE),
    Transition(
        "reject_extension", "extension_requested", "handling", _CENTRE, reason_required=True
    ),
    Transition("park", "handling", "parked", _CENTRE, reason_required=True),
    Transition("resume", "parked", "handling", _CENTRE),
    Transition("check", "feedback", "checking", _CENTRE),
    Transition("rework", "feedback", "handling", _CENTRE, reason_required=True),
    Transition("rework", "checking", "handling", _CENTRE | {"worker"}, reason_required=True),
    Transition("close", "checking", "closed", _CENTRE),
    Transition("evaluate", "closed", "evaluated", _CENTRE | {"reporter"}),
)


# Steps counted on the case row as well as in the history (read by the indicators).
_COUNTERS = {"rework": "rework_count", "approve_extension": "extension_count"}


class IllegalTransitionError(ConflictError):
    """A step the workflow does not allow from the current state for this role.

    ``allowed`` lists the steps that are allowed (``action → to_state``).
    """

    def __init__(self, message: str, allowed: list[Transition]) -> None:
        listing = ", ".join(f"{t.action} → {t.to_state}" for t in allowed) or "none"
        super().__init__(f"{message}; allowed: {listing}")
        self.allowed = allowed


def allowed_transitions(state: str, *, role: str | None = None) -> list[Transition]:
    """Return the steps allowed from ``state`` for ``role`` (any role when None)."""
    return [t for t in TRANSITIONS if t.from_state == state and (role is None or role in t.roles)]


def plan_transition(
    state: str,
    to_state: str,
    *,
    role: str,
    reason: str | None = None,
    action: str | None = None,
) -> Transition:
    """Choose the workflow step from ``state`` to ``to_state`` for ``role`` (pure).

    Parameters
    ----------
    state, to_state
        Current and wanted state.
    role
        One of :data:`ROLES`.
    reason
        Free text; mandatory for the steps marked ``reason_required``.
    action
        Needed only when two steps lead to the same state (``approve_extension`` and
        ``reject_extension``).

    Raises
    ------
    InputError
        Naming ``role``, ``to_state`` or ``action`` when unknown or ambiguous, ``reason`` when
        a mandatory reason is missing or blank.
    IllegalTransitionError
        When the workflow has no such step for this role; lists the allowed ones.
    """
    if role not in ROLES:
        raise InputError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    if to_state not in CASE_STATES:
        raise InputError("to_state", f"{to_state!r} is not a case state")
    allowed = allowed_transitions(state, role=role)
    candidates = [t for t in allowed if t.to_state == to_state]
    if action is not None:
        candidates = [t for t in candidates if t.action == action]
    if not candidates:
        msg = f"{role} may not move a case from {state} to {to_state}"
        if action is not None:
            msg += f" by {action}"
        raise IllegalTransitionError(msg, allowed)
    if len(candidates) > 1:
        names = ", ".join(t.action for t in candidates)
        raise InputError("action", f"{state} → {to_state} is ambiguous: name one of {names}")
    step = candidates[0]
    if step.reason_required and not (reason and reason.strip()):
        raise InputError("reason", f"a reason is mandatory to {step.action}")
    return step


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One recorded step of a case's history."""

    seq: int
    action: str
    actor: str
    actor_role: str
    at: dt.datetime
    from_state: str
    to_state: str
    reason: str | None
    receiver: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as staff see it: workflow fields, time status and history.

    ``reporter_name``/``reporter_phone`` are filled only when asked for (personal data).
    """

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
    reporter_name: str | None = None
    reporter_phone: str | None = None


_CASE_COLUMNS = (
    "id, category_code, status, version, grid_id, department, worker_id, external_id,"
    " reported_at, filed_at, dispatched_at, deadline, closed_at, limit_value, limit_unit,"
    " reporter_name, reporter_phone"
)


def _read_case(connection: Connection, case_id: int) -> dict[str, Any]:
    row = (
        connection.execute(
            text(f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = :id"),  # noqa: S608 (constant)
            {"id": case_id},
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        msg = f"case {case_id} does not exist"
        raise NotFoundError(msg)
    return dict(row)


def case_history(connection: Connection, case_id: int) -> list[TransitionRecord]:
    """Return the recorded steps of a case, oldest first."""
    rows = connection.execute(
        text(
            "SELECT seq, action, actor, actor_role, at, from_state, to_state, reason, receiver,"
            " detail FROM case_transition WHERE case_id = :id ORDER BY seq"
        ),
        {"id": case_id},
    ).mappings()
    return [TransitionRecord(**dict(r)) for r in rows]


@lru_cache(maxsize=1)
def _default_calendar() -> WorkingCalendar:
    return WorkingCalendar.from_settings()


def get_case(
    connection: Connection,
    case_id: int,
    *,
    now: dt.datetime | None = None,
    calendar: WorkingCalendar | None = None,
    include_reporter: bool = False,
) -> CaseView:
    """Read a case with its time used/left at ``now`` and its full history.

    The time status is measured up to the close time for a closed case and is None before
    dispatch. Raises :class:`NotFoundError` for an unknown case.
    """
    case = _read_case(connection, case_id)
    cal = calendar or _default_calendar()
    limit = TimeLimit(case["limit_value"], case["limit_unit"]) if case["limit_unit"] else None
    status = None
    if limit is not None and case["dispatched_at"] and case["deadline"]:
        moment = case["closed_at"] or now or dt.datetime.now(dt.UTC)
        status = time_status(
            case["dispatched_at"], cal, deadline_at=case["deadline"], unit=limit.unit, now=moment
        )
    return CaseView(
        id=case["id"],
        category_code=case["category_code"],
        status=case["status"],
        version=case["version"],
        grid_id=case["grid_id"],
        department=case["department"],
        worker_id=case["worker_id"],
        external_id=case["external_id"],
        reported_at=case["reported_at"],
        filed_at=case["filed_at"],
        dispatched_at=case["dispatched_at"],
        deadline=case["deadline"],
        closed_at=case["closed_at"],
        time_limit=limit,
        time=status,
        history=case_history(connection, case_id),
        reporter_name=case["reporter_name"] if include_reporter else None,
        reporter_phone=case["reporter_phone"] if include_reporter else None,
    )


def _effects(
    connection: Connection,
    step: Transition,
    case: dict[str, Any],
    *,
    at: dt.datetime,
    receiver: str | None,
    extension: TimeLimit | None,
    calendar: WorkingCalendar,
    categories: dict[str, Category] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Case columns a step sets (column names are constants) and the transition's detail."""
    if step.action == "file":
        worker = connection.execute(
            text("SELECT worker_id FROM grid WHERE id = :g"), {"g": case["grid_id"]}
        ).scalar_one_or_none()
        return {"filed_at": at, "worker_id": case["worker_id"] or worker}, {}
    if step.action == "dispatch":
        category = get_category(case["category_code"], categories)
        limit = category.time_limit
        return {
            "dispatched_at": at,
            "department": receiver or category.department,
            "limit_value": limit.value,
            "limit_unit": limit.unit,
            "deadline": deadline(at, limit, calendar),
        }, {}
    if step.action == "close":
        return {"closed_at": at}, {}
    if step.action == "return":
        # The return names the dispatch it sends back (time and receiver), so that indicators
        # attribute returned dispatches without replaying histories.
        dispatch = connection.execute(
            text(
                "SELECT seq, at, receiver FROM case_transition WHERE case_id = :id"
                " AND action = 'dispatch' ORDER BY seq DESC LIMIT 1"
            ),
            {"id": case["id"]},
        ).one()
        return {}, {
            "dispatch_seq": dispatch.seq,
            "dispatched_at": dispatch.at.isoformat(),
            "department": dispatch.receiver,
        }
    if step.action == "request_extension":
        if extension is None:
            raise InputError("extension", "an extension request names its time limit")
        return {}, {"value": extension.value, "unit": extension.unit}
    if step.action == "approve_extension":
        requested = connection.execute(
            text(
                "SELECT detail FROM case_transition WHERE case_id = :id"
                " AND action = 'request_extension' ORDER BY seq DESC LIMIT 1"
            ),
            {"id": case["id"]},
        ).scalar_one()
        granted = extension or TimeLimit(int(requested["value"]), str(requested["unit"]))
        moved = extend(case["deadline"], granted, calendar)
        return {"deadline": moved}, {"value": granted.value, "unit": granted.unit}
    return {}, {}


def apply_transition(
    connection: Connection,
    case_id: int,
    to_state: str,
    *,
    actor: str,
    role: str,
    reason: str | None = None,
    receiver: str | None = None,
    expected_version: int | None = None,
    action: str | None = None,
    extension: TimeLimit | None = None,
    at: dt.datetime | None = None,
    calendar: WorkingCalendar | None = None,
    categories: dict[str, Category] | None = None,
) -> CaseView:
    """Move case ``case_id`` to ``to_state``, record the step and return the updated case.

    Runs inside the caller's transaction (in a savepoint); the caller commits.

    Parameters
    ----------
    connection
        An open connection; its transaction holds the case row lock until commit.
    case_id
        The case.
    to_state
        The wanted state (one of ``gis.models.CASE_STATES``).
    actor, role
        Who acts (a name or id) and in which role (:data:`ROLES`).
    reason
        Mandatory for return, void, rework, park, extension request and rejection.
    receiver
        Who receives the case: at dispatch the responsible department (default: the
        category's), otherwise recorded as given.
    expected_version
        The version the actor saw; a different current version raises ConflictError.
    action
        Disambiguates steps to the same state (``approve_extension``/``reject_extension``).
    extension
        The time limit asked for by ``request_extension`` (mandatory there); on
        ``approve_extension`` it overrides the requested one.
    at
        When the step happened (aware datetime, default now); not before the last step.
    calendar, categories
        Working calendar and category tree (defaults: settings and shipped tree).

    Raises
    ------
    NotFoundError
        Unknown case.
    InputError
        Naming ``reason``, ``role``, ``to_state``, ``action``, ``extension``, ``at`` or
        ``category_code`` (unknown category at dispatch).
    IllegalTransitionError
        A step the workflow does not allow; lists the allowed ones.
    ConflictError
        Another actor changed the case first (stale ``expected_version`` or lost race).
    """
    case = _read_case(connection, case_id)
    if expected_version is not None and expected_version != case["version"]:
        msg = f"case {case_id} is at version {case['version']}, not {expected_version}"
        raise ConflictError(msg)
    step = plan_transition(case["status"], to_state, role=role, reason=reason, action=action)
    moment = at or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise InputError("at", "a time zone is required")
    last = connection.execute(
        text("SELECT max(at) FROM case_transition WHERE case_id = :id"), {"id": case_id}
    ).scalar_one()
    if last is not None and moment < last:
        raise InputError("at", f"before the last recorded step ({last.isoformat()})")
    sets, detail = _effects(
        connection,
        step,
        case,
        at=moment,
        receiver=receiver,
        extension=extension,
        calendar=calendar or _default_calendar(),
        categories=categories,
    )
    # Column names come from _effects' constant keys, never from input.
    assignments = "".join(f", {column} = :{column}" for column in sets)
    counter = _COUNTERS.get(step.action)
    if counter:
        assignments += f", {counter} = {counter} + 1"
    with connection.begin_nested():
        version = connection.execute(
            text(
                f"UPDATE cases SET status = :to_state, version = version + 1{assignments}"  # noqa: S608
                " WHERE id = :id AND version = :version RETURNING version"
            ),
            {"id": case_id, "version": case["version"], "to_state": to_state, **sets},
        ).scalar_one_or_none()
        if version is None:
            msg = f"case {case_id} was changed by someone else meanwhile; reload and retry"
            raise ConflictError(msg)
        connection.execute(
            text(
                "INSERT INTO case_transition (case_id, seq, action, actor, actor_role, at,"
                " from_state, to_state, reason, receiver, detail) SELECT :id,"
                " coalesce(max(seq), 0) + 1, :action, :actor, :role, :at, :from_state,"
                " :to_state, :reason, :receiver, CAST(:detail AS jsonb)"
                " FROM case_transition WHERE case_id = :id"
            ),
            {
                "id": case_id,
                "action": step.action,
                "actor": actor,
                "role": role,
                "at": moment,
                "from_state": step.from_state,
                "to_state": step.to_state,
                "reason": reason,
                "receiver": receiver if step.action != "dispatch" else sets["department"],
                "detail": json.dumps(detail, ensure_ascii=False),
            },
        )
    return get_case(connection, case_id, now=moment, calendar=calendar)


def overdue_case_ids(connection: Connection, *, now: dt.datetime, limit: int = 1000) -> list[int]:
    """Return the ids of open cases past their deadline at ``now``, most overdue first.

    Open means dispatched and not closed, voided or parked. Raises :class:`InputError` naming
    ``now`` for a naive datetime and ``limit`` when it is not positive.
    """
    if now.tzinfo is None:
        raise InputError("now", "a time zone is required")
    if limit <= 0:
        raise InputError("limit", "must be positive")
    rows = connection.execute(
        text(
            "SELECT id FROM cases WHERE deadline < :now AND closed_at IS NULL"
            " AND status NOT IN ('voided', 'parked', 'closed', 'evaluated')"
            " ORDER BY deadline, id LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [int(r[0]) for r in rows]
