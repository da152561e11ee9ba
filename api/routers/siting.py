"""``POST /siting``: where the next elderly day-care centres (or any facility type) should go.

The route validates the body and passes it to :func:`gis.siting_inputs.solve_siting`, which
reads demand, candidates, existing facilities and the walking network from PostGIS and solves
the chosen problem. The answer holds aggregates and stairwell ids, never household data.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import ReadConnectionDep
from gis.circles import CircleSettings
from gis.errors import InputError
from gis.siting import SolverError
from gis.siting_inputs import CandidateSpec, SitingRequest, solve_siting

router = APIRouter(tags=["siting"])

_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Bad input; the body names the field (`parameter`)."},
    404: {"description": "Unknown community code."},
}


class Candidates(BaseModel):
    """Where new sites may go; the sources given are combined."""

    points: list[tuple[float, float]] | None = Field(
        default=None, description="[lon, lat] pairs in WGS84 degrees."
    )
    building_ids: list[int] | None = Field(default=None, description="Building ids.")
    building_uses: list[str] | None = Field(
        default=None, description="Every building of these uses in the area."
    )
    node_spacing_m: float | None = Field(
        default=None, description="Walking-network nodes, about one per square of this side."
    )


class Area(BaseModel):
    """The area whose stairwells are the demand: a WGS84 box or a community code."""

    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="min lon, min lat, max lon, max lat (WGS84)."
    )
    community: str | None = Field(default=None, description="Community code (12 digits).")


class SitingBody(BaseModel):
    """A siting question."""

    problem: Literal["mclp", "lscp", "pmedian", "cmclp"] = Field(
        description="mclp: k sites covering most demand; lscp: fewest sites covering `target`;"
        " pmedian: k sites with least total walking; cmclp: mclp with `capacity` per site."
    )
    facility_type: str = Field(description="A facility type, e.g. elderly_day_care.")
    k: int | None = Field(default=None, description="New sites to open (not for lscp).")
    service_distance_m: float | None = Field(default=None, description="Walking limit, metres.")
    minutes: float | None = Field(default=None, description="Walking limit in minutes ...")
    group: str | None = Field(default=None, description="... at this group's speed (elderly).")
    capacity: float | None = Field(default=None, description="Demand one site serves (cmclp).")
    single_source: bool = Field(default=False, description="cmclp: one site per stairwell.")
    target: float = Field(default=1.0, description="lscp: share of demand to cover.")
    candidates: Candidates
    demand: Literal["elderly", "residents", "households"] = Field(
        default="elderly", description="Demand weight per stairwell."
    )
    time_limit_s: float | None = Field(
        default=None, description="Solver time limit; the best answer found and its gap."
    )
    area: Area


class Site(BaseModel):
    """A chosen new site or an existing facility of the type."""

    site: str = Field(description="point:N, building:ID, node:N or facility:ID.")
    kind: str
    ref: str
    lon: float
    lat: float
    proposed: bool = Field(description="True for a new site, false for an existing facility.")
    served: float = Field(description="Demand it serves in the answer.")
    capacity: float | None


class Covered(BaseModel):
    """Demand covered within the walking limit before and after the answer."""

    demand: float
    covered_before: float
    covered_after: float
    gain: float
    share_before: float
    share_after: float


class GridCovered(Covered):
    """The same for one grid (``unassigned``: stairwells outside every grid)."""

    grid: str


class CommunityCovered(Covered):
    """The same for one community."""

    community: str


class Coverage(BaseModel):
    """Coverage in total, per grid and per community."""

    total: Covered
    by_grid: list[GridCovered]
    by_community: list[CommunityCovered]


class Assignment(BaseModel):
    """The site serving one stairwell (None: none within reach)."""

    stairwell_id: int
    site: str | None
    distance_m: float | None


class SitingAnswer(BaseModel):
    """The answer of ``POST /siting``."""

    problem: str
    facility_type: str
    measure: str
    status: Literal["optimal", "gap_limit", "time_limit", "heuristic"]
    objective: float
    bound: float | None
    gap: float | None
    method: Literal["network", "euclidean_fallback"]
    distance: str = Field(description="How distances were measured.")
    service_distance_m: float | None
    candidates: int
    sites: list[Site]
    existing: list[Site]
    coverage: Coverage | None = Field(description="None for a p-median without a limit.")
    assignments: list[Assignment]
    demand_points: int
    estimated_stairwells: int
    layer: dict[str, Any] = Field(description="GeoJSON FeatureCollection of the sites.")
    runtime_s: float


def _circle_settings(request: Request) -> CircleSettings:
    settings = getattr(request.app.state, "circle_settings", None)
    if not isinstance(settings, CircleSettings):
        settings = CircleSettings()
        request.app.state.circle_settings = settings
    return settings


@router.post("/siting", responses=_BAD_INPUT, response_model=SitingAnswer)
def siting(body: SitingBody, connection: ReadConnectionDep, request: Request) -> dict[str, Any]:
    """Choose sites for new facilities and report the gain over today.

    Answers the chosen sites, objective, optimality gap and solver status (``time_limit``
    when the limit ended the search: the best answer found with its proven gap), demand
    covered before and after in total and per grid and community, each stairwell's assigned
    site, and a GeoJSON layer of the sites (``proposed`` true for new ones).
    """
    question = SitingRequest(
        problem=body.problem,
        facility_type=body.facility_type,
        candidates=CandidateSpec(
            points=body.candidates.points,
            building_ids=body.candidates.building_ids,
            building_uses=body.candidates.building_uses,
            node_spacing_m=body.candidates.node_spacing_m,
        ),
        k=body.k,
        service_distance_m=body.service_distance_m,
        minutes=body.minutes,
        group=body.group,
        capacity=body.capacity,
        single_source=body.single_source,
        target=body.target,
        measure=body.demand,
        time_limit_s=body.time_limit_s,
        bbox=body.area.bbox,
        community=body.area.community,
    )
    try:
        return solve_siting(connection, question, settings=_circle_settings(request))
    except SolverError as exc:
        raise InputError("problem", str(exc)) from exc
