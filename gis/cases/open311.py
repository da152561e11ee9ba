"""Open311 GeoReport v2 views of the category tree and of cases (no FastAPI here).

Mapping (DOMAIN §3): small class ↔ ``service_code``, big class ↔ ``group``, the filing
standard ↔ the service definition's attributes (informational, ``variable: false``), the
deadline ↔ ``expected_datetime``, the department ↔ ``agency_responsible``.

Public status is ``open`` or ``closed``; closed means closed, evaluated or voided. The fine
workflow state goes to ``status_notes``. ``expected_datetime`` is the case's current
(possibly extended) deadline; before dispatch the clock has not started and it is null.
``agency_responsible`` is the department the case was dispatched to, before dispatch the
category's responsible department. Reporter name and phone are never read here.

Dates of the GeoReport interface are W3C/ISO 8601 date-times; a date-time without a zone is
read in ``timezone`` (the command centre's, Asia/Shanghai by default).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, text

from gis.cases.categories import Category, default_categories, get_category
from gis.cases.reporting import CaseReport, report_case
from gis.errors import InputError, NotFoundError
from gis.settings import CaseSettings

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CLOSED_STATES = ("closed", "evaluated", "voided")
PUBLIC_STATUSES = ("open", "closed")
#: Roles whose token may post service requests as ``api_key``.
POSTING_ROLES = frozenset({"reporter", "staff", "admin"})
MAX_ID = 2**31 - 1  # case ids are 32-bit integers

#: The workflow states as the public reads them in ``status_notes``.
STATE_NOTES = {
    "reported": "reported (信息收集): received, not yet filed",
    "filed": "filed (立案): accepted, waiting for dispatch",
    "dispatched": "dispatched (派遣): sent to the responsible department",
    "handling": "handling (处置): being handled",
    "feedback": "feedback (反馈): handled, waiting for the on-site check",
    "checking": "checking (核查): on-site check under way",
    "closed": "closed (结案): handled and checked",
    "evaluated": "evaluated (评价): closed and evaluated",
    "extension_requested": "extension requested (延期申请): handling, more time asked for",
    "parked": "parked (挂账): needs a decision or funding before it can be handled",
    "voided": "voided (作废): not a case (duplicate or invalid report)",
}

_UNIT_NAMES = {
    "urgent_hours": "urgent hours (紧急工作时)",
    "working_hours": "working hours (工作时)",
    "working_days": "working days (工作日)",
    "calendar_days": "calendar days (自然日)",
}

# W3C date-time profile of ISO 8601: a date, or a date and time with optional seconds,
# fraction and zone ("Z" or ±hh:mm).
_ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


class Open311Settings(BaseSettings):
    """The GeoReport endpoint (``WANGGE_OPEN311_*``).

    Posting needs an ``api_key``: a token of a ``wangge users`` user (``gis.auth``) whose role
    may report (:data:`POSTING_ROLES`), one per reporting application.
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_OPEN311_", extra="ignore")

    jurisdiction_id: str = "wangge"
    contact: str = "Subdistrict command centre (街道指挥中心)"
    timezone: str = "Asia/Shanghai"
    # Defaults of GET requests: the most recent days, the first results.
    default_days: int = Field(default=90, ge=1)
    max_requests: int = Field(default=1000, ge=1)


def parse_datetime(value: str, field: str, *, timezone: str = "Asia/Shanghai") -> dt.datetime:
    """Parse a W3C/ISO 8601 date or date-time into an aware datetime.

    A date means its local midnight; a date-time without a zone is read in ``timezone``.

    Raises
    ------
    InputError
        Naming ``field`` when ``value`` is not ISO 8601.
    """
    raw = value.strip()
    if not _ISO_8601.fullmatch(raw):
        msg = f"{value!r} is not an ISO 8601 date-time (e.g. 2026-09-20T08:00:00+08:00)"
        raise InputError(field, msg)
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{value!r} is not a valid ISO 8601 date-time"
        raise InputError(field, msg) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed


def format_datetime(value: dt.datetime | None, *, timezone: str = "Asia/Shanghai") -> str | None:
    """Format an instant as ISO 8601 with its UTC offset in ``timezone`` (None stays None)."""
    if value is None:
        return None
    return value.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def _limit_text(category: Category) -> str:
    limit = category.time_limit
    return f"{limit.value} {_UNIT_NAMES[limit.unit]} from dispatch"


def service_list(categories: dict[str, Category] | None = None) -> list[dict[str, Any]]:
    """Return the GeoReport service list: one service per small class of the tree."""
    tree = default_categories() if categories is None else categories
    return [
        {
            "service_code": c.code,
            "service_name": c.small_name,
            "description": c.filing_condition,
            "metadata": True,
            "type": "realtime",
            "keywords": ",".join((c.kind, c.big_name, c.small_name)),
            "group": c.big_name,
        }
        for c in tree.values()
    ]


def service_definition(code: str, categories: dict[str, Category] | None = None) -> dict[str, Any]:
    """Return the GeoReport service definition of small class ``code``.

    Its attributes carry the filing standard (立结案标准) as information for the reporter
    (``variable: false``): filing condition, time limit, closing condition and department.

    Raises
    ------
    NotFoundError
        When ``code`` is not a small class of the tree.
    """
    try:
        category = get_category(code, categories)
    except InputError:
        msg = f"no service {code!r}"
        raise NotFoundError(msg) from None
    facts = (
        ("filing_condition", "Filing condition (立案条件)", category.filing_condition),
        ("time_limit", "Time limit (处置时限)", _limit_text(category)),
        ("closing_condition", "Closing condition (结案条件)", category.closing_condition),
        ("department", "Responsible department (责任部门)", category.department),
    )
    return {
        "service_code": category.code,
        "attributes": [
            {
                "variable": False,
                "code": name,
                "datatype": "text",
                "required": False,
                "datatype_description": label,
                "order": order,
                "description": f"{label}: {value}",
            }
            for order, (name, label, value) in enumerate(facts, start=1)
        ],
    }


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Filters of ``GET requests``: ids override every other filter."""

    ids: tuple[int, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    statuses: tuple[str, ...] = ()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def parse_request_query(
    *,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    timezone: str = "Asia/Shanghai",
) -> RequestQuery:
    """Validate the query parameters of ``GET requests`` (comma-separated lists allowed).

    Raises
    ------
    InputError
        Naming ``service_request_id`` (not integers), ``status`` (not open/closed),
        ``start_date``/``end_date`` (not ISO 8601, or start after end).
    """
    raw_ids = _split(service_request_id)
    if any(not v.isdigit() or int(v) > MAX_ID for v in raw_ids):
        raise InputError("service_request_id", f"{service_request_id!r} is not a list of ids")
    statuses = tuple(s.lower() for s in _split(status))
    unknown = [s for s in statuses if s not in PUBLIC_STATUSES]
    if unknown:
        raise InputError("status", f"{', '.join(unknown)} is not open or closed")
    start = None if not start_date else parse_datetime(start_date, "start_date", timezone=timezone)
    end = None if not end_date else parse_datetime(end_date, "end_date", timezone=timezone)
    if start is not None and end is not None and start > end:
        raise InputError("end_date", "must not be before start_date")
    return RequestQuery(
        ids=tuple(int(v) for v in raw_ids),
        service_codes=_split(service_code),
        start=start,
        end=end,
        statuses=statuses,
    )


# Reporter name and phone are deliberately absent from this select list.
_REQUESTS = """
SELECT k.id, k.category_code, k.status, k.description, k.department, k.reported_at,
       k.deadline, k.address, ST_X(k.geom) AS lon, ST_Y(k.geom) AS lat,
       k.photo_urls ->> 0 AS media_url,
       greatest(k.reported_at, (SELECT max(t.at) FROM case_transition t WHERE t.case_id = k.id))
           AS updated_at
FROM cases k
"""


def _request(row: Any, categories: dict[str, Category], timezone: str) -> dict[str, Any]:
    category = categories.get(row.category_code)
    public = "closed" if row.status in CLOSED_STATES else "open"
    return {
        "service_request_id": str(row.id),
        "status": public,
        "status_notes": STATE_NOTES.get(row.status, row.status),
        "service_name": None if category is None else category.small_name,
        "service_code": row.category_code,
        "description": row.description,
        "agency_responsible": row.department or (None if category is None else category.department),
        "service_notice": None if category is None else _limit_text(category),
        "requested_datetime": format_datetime(row.reported_at, timezone=timezone),
        "updated_datetime": format_datetime(row.updated_at, timezone=timezone),
        "expected_datetime": format_datetime(row.deadline, timezone=timezone),
        "address": row.address,
        "address_id": None,
        "zipcode": None,
        "lat": float(row.lat),
        "long": float(row.lon),
        "media_url": row.media_url,
    }


def list_requests(
    connection: Connection,
    query: RequestQuery,
    *,
    now: dt.datetime | None = None,
    default_days: int = 90,
    limit: int = 1000,
    timezone: str = "Asia/Shanghai",
    categories: dict[str, Category] | None = None,
) -> list[dict[str, Any]]:
    """Return the service requests matching ``query``, most recent first.

    With ids, exactly those cases (other filters ignored, as the specification says). Without,
    cases requested in ``[start, end]`` (default: the ``default_days`` before ``now``, or
    before ``end``), of the given service codes and public statuses, at most ``limit``.
    """
    tree = default_categories() if categories is None else categories
    if query.ids:
        rows = connection.execute(
            text(_REQUESTS + " WHERE k.id = ANY(:ids) ORDER BY k.id"), {"ids": list(query.ids)}
        ).all()
        return [_request(r, tree, timezone) for r in rows]
    moment = now or dt.datetime.now(dt.UTC)
    end = query.end
    start = query.start
    if start is None:
        start = (end or moment) - dt.timedelta(days=default_days)
    closed = None
    if len(set(query.statuses)) == 1:
        closed = query.statuses[0] == "closed"
    rows = connection.execute(
        text(
            _REQUESTS
            + """ WHERE k.reported_at >= :start
              AND (CAST(:end AS timestamptz) IS NULL OR k.reported_at <= :end)
              AND (CAST(:codes AS text[]) IS NULL OR k.category_code = ANY(:codes))
              AND (CAST(:closed AS boolean) IS NULL
                   OR (k.status = ANY(:closed_states)) = CAST(:closed AS boolean))
            ORDER BY k.reported_at DESC, k.id DESC
            LIMIT :limit"""
        ),
        {
            "start": start,
            "end": end,
            "codes": list(query.service_codes) or None,
            "closed": closed,
            "closed_states": list(CLOSED_STATES),
            "limit": limit,
        },
    ).all()
    return [_request(r, tree, timezone) for r in rows]


def get_request(
    connection: Connection,
    case_id: int,
    *,
    timezone: str = "Asia/Shanghai",
    categories: dict[str, Category] | None = None,
) -> dict[str, Any]:
    """Return one service request.

    Raises
    ------
    NotFoundError
        When there is no case ``case_id``.
    """
    rows = list_requests(
        connection, RequestQuery(ids=(case_id,)), timezone=timezone, categories=categories
    )
    if not rows:
        msg = f"no service request {case_id}"
        raise NotFoundError(msg)
    return rows[0]


def submit_request(
    connection: Connection,
    form: Mapping[str, str],
    *,
    settings: CaseSettings | None = None,
    categories: dict[str, Category] | None = None,
) -> list[dict[str, Any]]:
    """Store a GeoReport ``POST requests`` submission as a reported case.

    Parameters
    ----------
    connection
        A connection inside a transaction (the caller commits).
    form
        The form fields: ``service_code`` and either ``lat``/``long`` (WGS84 degrees, as the
        specification requires) or ``address_string``; optional ``description``,
        ``media_url``, ``first_name``/``last_name``/``phone`` (the reporter's contact, kept
        for staff only). ``email``, ``device_id``, ``account_id`` and ``attribute[...]`` are
        accepted and not stored (the service attributes are informational).
    settings
        Case reporting settings (boundary and duplicate distances).

    Returns
    -------
    list of dict
        The GeoReport answer: one ``{service_request_id, service_notice, account_id}``.

    Raises
    ------
    InputError
        Naming ``service_code`` (missing or unknown), ``lat``/``long`` (one missing, not
        numeric, out of range), ``address_string`` (unknown or ambiguous) or ``location``
        (neither coordinates nor address).
    """
    tree = default_categories() if categories is None else categories
    code = (form.get("service_code") or "").strip()
    if not code:
        raise InputError("service_code", "is required")
    if code not in tree:
        raise InputError("service_code", f"unknown service {code!r}; see services.json")
    lat = (form.get("lat") or "").strip()
    lon = (form.get("long") or "").strip()
    address = (form.get("address_string") or "").strip()
    if bool(lat) != bool(lon):
        missing = "long" if lat else "lat"
        raise InputError(missing, "lat and long go together")
    if not lat and not address:
        raise InputError("location", "give lat and long (WGS84) or address_string")
    family = (form.get("last_name") or "").strip()
    given = (form.get("first_name") or "").strip()
    # Chinese names are written family name first, without a space.
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in family + given)
    name = ("" if chinese else " ").join(part for part in (family, given) if part)
    media = (form.get("media_url") or "").strip()
    report = CaseReport(
        category=code,
        lon=lon or None,
        lat=lat or None,
        crs="wgs84",
        address=None if lat else address,
        description=(form.get("description") or "").strip() or None,
        photo_urls=(media,) if media else (),
        reporter_name=name or None,
        reporter_phone=(form.get("phone") or "").strip() or None,
    )
    try:
        answer = report_case(connection, report, settings=settings)
    except InputError as exc:
        # Name the field as the GeoReport client sent it.
        renamed = {"lon": "long", "address": "address_string", "category": "service_code"}
        if exc.field in renamed:
            raise InputError(renamed[exc.field], exc.message) from exc
        raise
    return [
        {
            "service_request_id": str(answer.case.id),
            "service_notice": _limit_text(tree[code]),
            "account_id": None,
        }
    ]
