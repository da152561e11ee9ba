"""Siting service facilities (elderly day-care centres, canteens, care homes).

Models: :class:`MaximalCovering` (MCLP), :class:`SetCovering` (LSCP), :class:`PMedian`,
:class:`CapacitatedMaximalCovering`. Each is built with ``from_cost_matrix`` or
``from_geodataframe`` and solved with ``solve()`` into a :class:`SitingResult`;
:func:`coverage_by` summarises an answer per grid or community. Demand and existing
facilities come from PostGIS through :mod:`gis.siting.demand`.
"""

from gis.siting.models import (
    CapacitatedMaximalCovering,
    MaximalCovering,
    PMedian,
    SetCovering,
)
from gis.siting.result import SitingResult, SolverError, SolveStatus
from gis.siting.summary import coverage_by

__all__ = [
    "CapacitatedMaximalCovering",
    "MaximalCovering",
    "PMedian",
    "SetCovering",
    "SitingResult",
    "SolveStatus",
    "SolverError",
    "coverage_by",
]
