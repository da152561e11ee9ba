"""Closed-loop indicators over HTTP: ``GET /stats/indicators`` as JSON or CSV.

Definitions (numerator / denominator) are documented with the query in
:mod:`gis.cases.indicators`. No reporter data is ever part of an indicator.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from api.deps import ReadConnectionDep
from gis.cases.stats import FIELDS, indicator_table, parse_group_by, parse_period, to_csv
from gis.errors import InputError

router = APIRouter(tags=["stats"])

FORMATS = ("json", "csv")


@router.get(
    "/stats/indicators",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}},
            "description": "One record per group: keys, counts and rates.",
        },
        422: {"description": "Bad grouping, date or format; the body names the parameter."},
    },
)
def get_indicators(
    connection: ReadConnectionDep,
    by: Annotated[
        str,
        Query(
            description="Comma-separated: grid, community, subdistrict, department, worker, "
            "category (empty: one total row)."
        ),
    ] = "grid",
    since: Annotated[
        str | None, Query(description="ISO 8601 start (default: 30 days before until).")
    ] = None,
    until: Annotated[
        str | None, Query(description="ISO 8601 end, excluded; a date includes that day.")
    ] = None,
    format: Annotated[str, Query(description="json or csv.")] = "json",
) -> Response:
    """Return filed, due, closed, on-time, rework, extension, dispatch and incident figures."""
    if format not in FORMATS:
        raise InputError("format", f"{format!r} is not one of {', '.join(FORMATS)}")
    dims = parse_group_by(by)
    start, end = parse_period(since, until)
    rows = indicator_table(connection, start=start, end=end, group_by=dims)
    if format == "csv":
        return Response(content=to_csv(rows, dims), media_type="text/csv; charset=utf-8")
    body: dict[str, Any] = {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "group_by": list(dims),
        "fields": list(FIELDS),
        "groups": rows,
    }
    return JSONResponse(body)
