"""The answer a siting model returns, and the errors its solver raises."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from gis.errors import WanggeError


class SolverError(WanggeError, RuntimeError):
    """The MIP solver failed or stopped without any feasible answer."""


class SolveStatus(StrEnum):
    """How far the answer is proven.

    ``optimal``: the bound meets the objective. ``gap_limit``: the search stopped at the
    requested ``mip_gap``. ``time_limit``: the time limit ended the search; the answer is the
    best found and ``gap`` is what is proven about it. ``heuristic``: greedy and swap search,
    with ``bound`` from a relaxation.
    """

    OPTIMAL = "optimal"
    GAP_LIMIT = "gap_limit"
    TIME_LIMIT = "time_limit"
    HEURISTIC = "heuristic"


@dataclass(frozen=True, eq=False)
class SitingResult:
    """A solved siting problem.

    Attributes
    ----------
    problem : str
        ``"maximal_covering"``, ``"set_covering"``, ``"p_median"`` or
        ``"capacitated_maximal_covering"``.
    status : SolveStatus
        See :class:`SolveStatus`; a time-limited answer always says so.
    objective : float
        Covered (served) weighted demand for covering problems, number of new sites for set
        covering, total weighted cost (cost-matrix units, metres for geodataframes) for p-median.
    bound : float
        Proven bound on the optimum (upper for maximisation, lower for minimisation).
    gap : float
        ``|bound - objective| / |objective|``; 0 when proven optimal.
    sites : ndarray of int
        Columns of the cost matrix (candidate positions) chosen as new sites, ascending.
    site_ids : tuple
        Labels of the chosen sites (the candidate index for geodataframes).
    existing : ndarray of int
        Columns of the existing facilities, open in every answer.
    assignment : ndarray of int
        Per demand point, the column of the site serving it (existing or new), -1 if none.
    assigned_cost : ndarray of float
        Per demand point, the cost to its assigned site (NaN when unassigned).
    served : ndarray of float
        Per demand point, weighted demand served (covered) in this answer.
    site_load : ndarray of float
        Per column, weighted demand it serves (0 for closed candidates).
    covered_before, covered_after : float or None
        Weighted demand covered within the service radius by the existing facilities alone and
        by the answer (capacitated: served within capacities); ``None`` for a p-median model
        without ``service_radius``.
    demand_covered_before, demand_covered_after : ndarray of float or None
        The same per demand point, for figures per grid or community (see
        :func:`gis.siting.summary.coverage_by`).
    weights : ndarray of float
        Per demand point, its demand weight.
    total_demand : float
        Sum of the demand weights.
    method : str
        ``"mip"`` (HiGHS branch and bound) or ``"heuristic"``.
    runtime : float
        Seconds spent in :meth:`solve`.
    distance : str
        Where the costs came from (``"cost matrix"``, ``"euclidean×1.3 (fallback)"``, …).
    """

    problem: str
    status: SolveStatus
    objective: float
    bound: float
    gap: float
    sites: npt.NDArray[np.intp]
    site_ids: tuple[Hashable, ...]
    existing: npt.NDArray[np.intp]
    assignment: npt.NDArray[np.intp]
    assigned_cost: npt.NDArray[np.float64]
    served: npt.NDArray[np.float64]
    site_load: npt.NDArray[np.float64]
    covered_before: float | None
    covered_after: float | None
    demand_covered_before: npt.NDArray[np.float64] | None
    demand_covered_after: npt.NDArray[np.float64] | None
    weights: npt.NDArray[np.float64]
    total_demand: float
    method: str
    runtime: float
    distance: str

    @property
    def proven_optimal(self) -> bool:
        """True when the bound meets the objective."""
        return self.status is SolveStatus.OPTIMAL

    @property
    def covered_gain(self) -> float | None:
        """Weighted demand newly covered by the chosen sites (``None`` without coverage)."""
        if self.covered_before is None or self.covered_after is None:
            return None
        return self.covered_after - self.covered_before
