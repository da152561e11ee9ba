"""Siting service facilities (elderly day-care centres, canteens, care homes).

Models: :class:`MaximalCovering` (MCLP), :class:`SetCovering` (LSCP), :class:`PMedian`,
:class:`CapacitatedMaximalCovering`. Each is built with ``from_cost_matrix`` or
``from_geodataframe`` and solved with ``solve()`` into a :class:`SitingResult`.
"""

from gis.siting.models import (
    CapacitatedMaximalCovering,
    MaximalCovering,
    PMedian,
    SetCovering,
)
from gis.siting.result import SitingResult, SolverError, SolveStatus

__all__ = [
    "CapacitatedMaximalCovering",
    "MaximalCovering",
    "PMedian",
    "SetCovering",
    "SitingResult",
    "SolveStatus",
    "SolverError",
]
