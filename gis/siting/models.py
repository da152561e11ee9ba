"""Siting models: maximal covering, set covering, p-median and capacitated maximal covering.

Each model is built from a demand × candidate cost matrix (:meth:`from_cost_matrix`) or from two
GeoDataFrames (:meth:`from_geodataframe`), and :meth:`solve` returns a frozen
:class:`~gis.siting.result.SitingResult`. Costs are in the matrix's units (metres when built from
GeoDataFrames). Existing facilities are columns flagged ``existing``: always open, already
covering, never counted among the ``k`` / ``p`` new sites.

The exact method builds a sparse MIP for HiGHS, seeded with the heuristic answer, so a time
limit still returns the best answer found with its proven gap.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from gis.errors import InputError
from gis.siting import _inputs as inp
from gis.siting import heuristics as heur
from gis.siting._highs import MipOutcome, MipProblem, relative_gap, solve_mip
from gis.siting.result import SitingResult, SolverError, SolveStatus

if TYPE_CHECKING:
    import geopandas as gpd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Method = Literal["exact", "heuristic"]
DistanceSpec = str | Callable[..., Any]

#: A finished search whose relative gap is below this counts as proven optimal.
PROVEN_GAP = 1e-6


def _status(outcome: MipOutcome, gap: float) -> SolveStatus:
    if outcome.time_limited:
        return SolveStatus.TIME_LIMIT
    return SolveStatus.OPTIMAL if gap <= PROVEN_GAP else SolveStatus.GAP_LIMIT


def _restatus(result: SitingResult, status: SolveStatus, gap: float) -> SitingResult:
    return dataclasses.replace(result, status=status, gap=gap)


def _check_method(method: str) -> None:
    if method not in ("exact", "heuristic"):
        raise InputError("method", f"must be 'exact' or 'heuristic', got {method!r}")


def _check_limits(time_limit: float | None, mip_gap: float) -> None:
    if time_limit is not None and not time_limit > 0:
        raise InputError("time_limit", f"must be a positive number of seconds, got {time_limit!r}")
    if not 0 <= mip_gap < 1:
        raise InputError("mip_gap", f"must lie in [0, 1), got {mip_gap!r}")


class _SitingModel:
    """Validated inputs shared by every model."""

    problem: ClassVar[str]

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any,
        existing: Any,
        demand_ids: Sequence[Hashable] | None,
        site_ids: Sequence[Hashable] | None,
        distance: str,
    ) -> None:
        self.cost: inp.Cost = inp.as_cost(cost)
        n, m = self.cost.shape
        self.weights: FloatArray = inp.as_weights(weights, n)
        if not self.weights.sum() > 0:
            raise InputError("weights", "all demand weights are zero: there is nothing to serve")
        self.existing: BoolArray = inp.as_existing(existing, m)
        self.demand_ids: tuple[Hashable, ...] = inp.as_labels(demand_ids, n, field="demand_ids")
        self.site_ids: tuple[Hashable, ...] = inp.as_labels(site_ids, m, field="site_ids")
        self.distance: str = distance

    @property
    def n_demand(self) -> int:
        """Number of demand points (rows)."""
        return int(self.cost.shape[0])

    @property
    def n_candidates(self) -> int:
        """Number of columns, existing facilities included."""
        return int(self.cost.shape[1])

    @property
    def n_new_candidates(self) -> int:
        """Number of columns that may be opened (existing facilities excluded)."""
        return int((~self.existing).sum())

    def _ids(self, rows: IntArray) -> list[Hashable]:
        return [self.demand_ids[int(i)] for i in rows]

    def _result(
        self,
        *,
        sites: IntArray,
        status: SolveStatus,
        objective: float,
        bound: float,
        gap: float,
        assignment: IntArray,
        assigned_cost: FloatArray,
        served: FloatArray,
        site_load: FloatArray | None,
        covered_before: FloatArray | None,
        covered_after: FloatArray | None,
        method: str,
        started: float,
    ) -> SitingResult:
        sites = np.sort(np.asarray(sites, dtype=np.intp))
        if site_load is None:
            ok = assignment >= 0
            site_load = np.bincount(
                assignment[ok], weights=served[ok], minlength=self.n_candidates
            ).astype(np.float64)
        return SitingResult(
            problem=self.problem,
            status=status,
            objective=float(objective),
            bound=float(bound),
            gap=float(gap),
            sites=sites,
            site_ids=tuple(self.site_ids[int(j)] for j in sites),
            existing=np.flatnonzero(self.existing).astype(np.intp),
            assignment=assignment,
            assigned_cost=assigned_cost,
            served=served,
            site_load=site_load,
            covered_before=None if covered_before is None else float(covered_before.sum()),
            covered_after=None if covered_after is None else float(covered_after.sum()),
            demand_covered_before=covered_before,
            demand_covered_after=covered_after,
            weights=self.weights,
            total_demand=float(self.weights.sum()),
            method=method,
            runtime=time.perf_counter() - started,
            distance=self.distance,
        )

    @classmethod
    def _geo_inputs(
        cls,
        demand_gdf: gpd.GeoDataFrame,
        candidate_gdf: gpd.GeoDataFrame,
        *,
        weight_col: str | None,
        existing_col: str | None,
        distance: DistanceSpec,
        detour: float,
        max_cost: float | None,
    ) -> dict[str, Any]:
        from gis.siting.geo import cost_between

        cost, label = cost_between(
            demand_gdf, candidate_gdf, distance=distance, detour=detour, max_cost=max_cost
        )
        if weight_col is not None and weight_col not in demand_gdf.columns:
            raise InputError("weight_col", f"column {weight_col!r} not in the demand table")
        if existing_col is not None and existing_col not in candidate_gdf.columns:
            raise InputError("existing_col", f"column {existing_col!r} not in the candidates")
        return {
            "cost": cost,
            "weights": None if weight_col is None else demand_gdf[weight_col].to_numpy(float),
            "existing": (
                None if existing_col is None else candidate_gdf[existing_col].to_numpy(bool)
            ),
            "demand_ids": list(demand_gdf.index),
            "site_ids": list(candidate_gdf.index),
            "distance": label,
        }


class _CoverageModel(_SitingModel):
    """Shared coverage bookkeeping of the covering models."""

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any,
        service_radius: Any,
        existing: Any,
        demand_ids: Sequence[Hashable] | None,
        site_ids: Sequence[Hashable] | None,
        distance: str,
    ) -> None:
        super().__init__(
            cost,
            weights=weights,
            existing=existing,
            demand_ids=demand_ids,
            site_ids=site_ids,
            distance=distance,
        )
        self.service_radius: float = inp.as_radius(service_radius)
        self.cover: sp.csr_array = inp.coverage(self.cost, self.service_radius)
        existing_f = self.existing.astype(np.float64)
        self.covered_by_existing: BoolArray = (self.cover @ existing_f) > 0
        new_f = (~self.existing).astype(np.float64)
        self.reachable_by_new: BoolArray = (self.cover @ new_f) > 0

    @property
    def covered_before(self) -> float:
        """Weighted demand within the radius of an existing facility."""
        return float(self.weights[self.covered_by_existing].sum())

    def _reduced(self, rows: IntArray) -> tuple[sp.csr_array, FloatArray, IntArray]:
        """Coverage of ``rows`` by new columns, identical rows merged and empty columns dropped.

        Returns ``(matrix, group_weight, columns)``.
        """
        new_cols = np.flatnonzero(~self.existing)
        matrix, group_weight, used = _regroup(
            sp.csr_array(self.cover[rows][:, new_cols]), self.weights[rows]
        )
        return matrix, group_weight, new_cols[used]

    def _coverage_answer(self, sites: IntArray) -> tuple[IntArray, FloatArray, FloatArray]:
        open_cols = np.union1d(np.flatnonzero(self.existing), sites).astype(np.intp)
        assignment, assigned_cost = inp.nearest(self.cost, open_cols, within=self.service_radius)
        served = np.where(assignment >= 0, self.weights, 0.0)
        return assignment, assigned_cost, served


def _cover_mip(
    matrix: sp.csr_array, weights: FloatArray, *, k: int | None, required: float | None
) -> MipProblem:
    """Variables ``x`` (one per column) then ``y`` (one per row); ``y_g ≤ Σ x_j`` per row.

    With ``k``: ``Σ x ≤ k``, maximise ``Σ w y``. With ``required``: ``Σ w y ≥ required``,
    minimise ``Σ x``.
    """
    g, u = matrix.shape
    link = sp.hstack([-matrix.astype(np.float64), sp.identity(g, format="csr")], format="csr")
    if k is not None:
        extra = sp.csr_array(np.concatenate([np.ones(u), np.zeros(g)])[None, :])
        cost = np.concatenate([np.zeros(u), weights])
        lo, hi = -np.inf, float(k)
        maximize = True
    else:
        extra = sp.csr_array(np.concatenate([np.zeros(u), weights])[None, :])
        cost = np.concatenate([np.ones(u), np.zeros(g)])
        lo, hi = float(required or 0.0), np.inf
        maximize = False
    a = sp.vstack([link, extra], format="csc")
    return MipProblem(
        cost=cost,
        matrix=sp.csc_array(a),
        row_lower=np.concatenate([np.full(g, -np.inf), [lo]]),
        row_upper=np.concatenate([np.zeros(g), [hi]]),
        col_lower=np.zeros(u + g),
        col_upper=np.ones(u + g),
        integer=np.concatenate([np.ones(u, dtype=bool), np.zeros(g, dtype=bool)]),
        maximize=maximize,
    )


def _covered_rows(matrix: sp.csr_array, cols: IntArray) -> BoolArray:
    """Rows of a 0/1 matrix with a non-zero in any of ``cols``."""
    pick = np.zeros(matrix.shape[1])
    pick[cols] = 1.0
    covered: BoolArray = (matrix.astype(np.float64) @ pick) > 0
    return covered


def _regroup(
    matrix: sp.csr_array, weights: FloatArray
) -> tuple[sp.csr_array, FloatArray, IntArray]:
    """Merge identical rows (summing weights), drop empty rows and empty columns.

    Returns the matrix, the row weights and the kept column positions.
    """
    matrix = sp.csr_array(matrix)
    matrix.sort_indices()
    nonempty = np.flatnonzero(np.diff(matrix.indptr) > 0)
    matrix = sp.csr_array(matrix[nonempty])
    reps, group = inp.group_rows(matrix)
    merged_weight = np.bincount(group, weights=weights[nonempty], minlength=reps.size)
    merged = sp.csr_array(matrix[reps])
    kept = np.flatnonzero(np.bincount(merged.indices, minlength=merged.shape[1]) > 0)
    return sp.csr_array(merged[:, kept]), merged_weight.astype(np.float64), kept


def _cover_start(matrix: sp.csr_array, chosen_pos: IntArray) -> FloatArray:
    x = np.zeros(matrix.shape[1])
    x[chosen_pos] = 1.0
    y = np.minimum(matrix.astype(np.float64) @ x, 1.0)
    return np.concatenate([x, y])


class MaximalCovering(_CoverageModel):
    """Maximal covering location problem (MCLP).

    Open ``k`` new sites to maximise the weighted demand within ``service_radius`` of an open
    site; existing facilities are open and already cover their surroundings.
    """

    problem = "maximal_covering"

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        k: int,
        existing: Any = None,
        demand_ids: Sequence[Hashable] | None = None,
        site_ids: Sequence[Hashable] | None = None,
        distance: str = "cost matrix",
    ) -> None:
        super().__init__(
            cost,
            weights=weights,
            service_radius=service_radius,
            existing=existing,
            demand_ids=demand_ids,
            site_ids=site_ids,
            distance=distance,
        )
        self.k: int = inp.as_count(
            k, field="k", available=self.n_new_candidates, what="candidate sites"
        )

    @classmethod
    def from_cost_matrix(
        cls,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        k: int,
        existing: Any = None,
    ) -> Self:
        """Build from a demand × candidate cost matrix (dense with ``inf`` or sparse).

        Raises
        ------
        InputError
            Bad matrix, weights, radius, ``existing`` or ``k`` (below 1, more than candidates).
        """
        return cls(cost, weights=weights, service_radius=service_radius, k=k, existing=existing)

    @classmethod
    def from_geodataframe(
        cls,
        demand_gdf: gpd.GeoDataFrame,
        candidate_gdf: gpd.GeoDataFrame,
        *,
        weight_col: str | None = None,
        service_radius: float,
        k: int,
        existing_col: str | None = None,
        distance: DistanceSpec = "euclidean",
        detour: float = 1.3,
    ) -> Self:
        """Build from demand and candidate point layers; radius in metres.

        ``distance="euclidean"`` is the labelled straight-line fallback (local UTM metres ×
        ``detour``); a callable ``f(demand_gdf, candidate_gdf)`` returns walking costs.

        Raises
        ------
        InputError
            As :meth:`from_cost_matrix`, or a missing column / CRS.
        """
        return cls(
            **cls._geo_inputs(
                demand_gdf,
                candidate_gdf,
                weight_col=weight_col,
                existing_col=existing_col,
                distance=distance,
                detour=detour,
                max_cost=service_radius,
            ),
            service_radius=service_radius,
            k=k,
        )

    def solve(
        self,
        *,
        time_limit: float | None = None,
        mip_gap: float = 0.0,
        method: Method = "exact",
    ) -> SitingResult:
        """Choose the ``k`` new sites.

        Parameters
        ----------
        time_limit : float, optional
            Seconds; when reached the best answer found comes back with status
            ``time_limit`` and its proven gap.
        mip_gap : float
            Relative gap at which the search may stop (status ``gap_limit``).
        method : {"exact", "heuristic"}
            HiGHS MIP, or greedy + swap with the LP relaxation as bound.

        Returns
        -------
        SitingResult
            ``objective`` is the covered weighted demand, existing coverage included.

        Raises
        ------
        InputError
            Bad ``method``, ``time_limit`` or ``mip_gap``.
        SolverError
            HiGHS fails.
        """
        _check_method(method)
        _check_limits(time_limit, mip_gap)
        started = time.perf_counter()
        before = self.covered_before
        rows = np.flatnonzero(
            (self.weights > 0) & ~self.covered_by_existing & self.reachable_by_new
        )
        if rows.size == 0:
            sites = np.empty(0, dtype=np.intp)
            return self._answer(sites, SolveStatus.OPTIMAL, before, "mip", started)
        matrix, group_weight, cols = self._reduced(rows)
        if cols.size <= self.k:
            return self._answer(cols, SolveStatus.OPTIMAL, before, "mip", started)
        chosen = heur.cover_greedy_swap(
            matrix, group_weight, allowed=np.ones(cols.size, dtype=bool), k=self.k
        )
        lower = float(group_weight[_covered_rows(matrix, chosen)].sum())
        deadline = None if time_limit is None else started + time_limit
        bound, closed, forced, better, lower = heur.cover_lagrangian_bound(
            matrix, group_weight, k=self.k, lower=lower, deadline=deadline
        )
        if better.size:
            # The Lagrangian met a better answer; swaps polish it, and a second pass fixes
            # more columns against the higher value.
            chosen = heur.cover_greedy_swap(
                matrix,
                group_weight,
                allowed=np.ones(cols.size, dtype=bool),
                k=self.k,
                start=better,
            )
            lower = float(group_weight[_covered_rows(matrix, chosen)].sum())
            bound2, closed2, forced2, better2, lower = heur.cover_lagrangian_bound(
                matrix, group_weight, k=self.k, lower=lower, deadline=deadline
            )
            if better2.size:
                chosen = better2
            bound = min(bound, bound2)
            closed |= closed2
            forced |= forced2
        if method == "heuristic":
            return self._answer(
                cols[chosen], SolveStatus.HEURISTIC, before + bound, method, started
            )
        if bound <= lower + 1e-9 * max(1.0, lower):
            return self._answer(cols[chosen], SolveStatus.OPTIMAL, before + bound, "mip", started)
        # Columns the Lagrangian bound rules out (or in) for every answer better than the
        # greedy one leave the MIP; rows covered by forced columns count as covered.
        forced_pos = np.flatnonzero(forced)
        free_pos = np.flatnonzero(~closed & ~forced)
        done = _covered_rows(matrix, forced_pos)
        constant = float(group_weight[done].sum())
        k_rest = self.k - forced_pos.size
        sub, sub_weight, kept = _regroup(
            sp.csr_array(matrix[np.flatnonzero(~done)][:, free_pos]), group_weight[~done]
        )
        free_pos = free_pos[kept]
        if k_rest == 0 or sub.shape[0] == 0:
            return self._answer(cols[chosen], SolveStatus.OPTIMAL, before + lower, "mip", started)
        if free_pos.size <= k_rest:
            sites = cols[np.union1d(forced_pos, free_pos)]
            return self._answer(sites, SolveStatus.OPTIMAL, before, "mip", started)
        remaining = None if deadline is None else deadline - time.perf_counter()
        if remaining is not None and remaining <= 0:
            answer = self._answer(
                cols[chosen], SolveStatus.TIME_LIMIT, before + bound, "mip", started
            )
            return _restatus(answer, SolveStatus.TIME_LIMIT, answer.gap)
        problem = _cover_mip(sub, sub_weight, k=k_rest, required=None)
        start = _cover_start(sub, np.flatnonzero(np.isin(free_pos, chosen)))
        outcome = solve_mip(problem, time_limit=remaining, mip_gap=mip_gap, start=start)
        picked = free_pos[np.flatnonzero(outcome.x[: free_pos.size] > 0.5)]
        sites = cols[np.union1d(forced_pos, picked)]
        answer = self._answer(
            sites,
            SolveStatus.OPTIMAL,
            before + min(bound, constant + outcome.bound),
            "mip",
            started,
        )
        gap = relative_gap(answer.objective, answer.bound)
        return _restatus(answer, _status(outcome, gap), gap)

    def _answer(
        self, sites: IntArray, status: SolveStatus, bound: float, method: str, started: float
    ) -> SitingResult:
        assignment, assigned_cost, served = self._coverage_answer(sites)
        objective = float(served.sum())
        bound = max(bound, objective)
        return self._result(
            sites=sites,
            status=status,
            objective=objective,
            bound=bound,
            gap=relative_gap(objective, bound),
            assignment=assignment,
            assigned_cost=assigned_cost,
            served=served,
            site_load=None,
            covered_before=np.where(self.covered_by_existing, self.weights, 0.0),
            covered_after=served,
            method=method,
            started=started,
        )


class SetCovering(_CoverageModel):
    """Location set covering problem (LSCP).

    Open the fewest new sites so that every demand point with positive weight lies within
    ``service_radius`` of an open site, or, with ``target`` below 1, so that that share of
    the total weighted demand is covered. Existing facilities are open and count as covering.
    """

    problem = "set_covering"

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        target: float = 1.0,
        existing: Any = None,
        demand_ids: Sequence[Hashable] | None = None,
        site_ids: Sequence[Hashable] | None = None,
        distance: str = "cost matrix",
    ) -> None:
        super().__init__(
            cost,
            weights=weights,
            service_radius=service_radius,
            existing=existing,
            demand_ids=demand_ids,
            site_ids=site_ids,
            distance=distance,
        )
        self.target: float = inp.as_share(target, field="target")
        if (
            self.n_new_candidates == 0
            and self.target == 1.0
            and not self.covered_by_existing[self.weights > 0].all()
        ):
            raise InputError("candidates", "no new candidate sites to choose from")
        self._check_reachable()

    def _check_reachable(self) -> None:
        positive = self.weights > 0
        stranded = np.flatnonzero(positive & ~self.covered_by_existing & ~self.reachable_by_new)
        total = float(self.weights.sum())
        radius = f"{self.service_radius:g}"
        if self.target == 1.0:
            if stranded.size:
                msg = f"no candidate site lies within {radius} of " + inp.describe_rows(
                    self._ids(stranded), what="demand points"
                )
                raise InputError("demand", msg)
            return
        best = total - float(self.weights[stranded].sum())
        if best < self.target * total * (1 - 1e-12):
            msg = (
                f"asks for {self.target:.1%} of demand covered but at most {best / total:.1%} "
                f"can be: no candidate lies within {radius} of "
                + inp.describe_rows(self._ids(stranded), what="demand points")
            )
            raise InputError("target", msg)

    @classmethod
    def from_cost_matrix(
        cls,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        target: float = 1.0,
        existing: Any = None,
    ) -> Self:
        """Build from a demand × candidate cost matrix (dense with ``inf`` or sparse).

        Raises
        ------
        InputError
            Bad inputs, or demand points no candidate reaches within the radius (named).
        """
        return cls(
            cost, weights=weights, service_radius=service_radius, target=target, existing=existing
        )

    @classmethod
    def from_geodataframe(
        cls,
        demand_gdf: gpd.GeoDataFrame,
        candidate_gdf: gpd.GeoDataFrame,
        *,
        weight_col: str | None = None,
        service_radius: float,
        target: float = 1.0,
        existing_col: str | None = None,
        distance: DistanceSpec = "euclidean",
        detour: float = 1.3,
    ) -> Self:
        """Build from demand and candidate point layers; radius in metres.

        Raises
        ------
        InputError
            As :meth:`from_cost_matrix`, or a missing column / CRS.
        """
        return cls(
            **cls._geo_inputs(
                demand_gdf,
                candidate_gdf,
                weight_col=weight_col,
                existing_col=existing_col,
                distance=distance,
                detour=detour,
                max_cost=service_radius,
            ),
            service_radius=service_radius,
            target=target,
        )

    def solve(
        self,
        *,
        time_limit: float | None = None,
        mip_gap: float = 0.0,
        method: Method = "exact",
    ) -> SitingResult:
        """Choose the fewest new sites.

        Returns
        -------
        SitingResult
            ``objective`` is the number of new sites.

        Raises
        ------
        InputError
            Bad ``method``, ``time_limit`` or ``mip_gap``.
        SolverError
            HiGHS fails.
        """
        _check_method(method)
        _check_limits(time_limit, mip_gap)
        started = time.perf_counter()
        total = float(self.weights.sum())
        before = self.covered_before
        required = self.target * total - before
        rows = np.flatnonzero(
            (self.weights > 0) & ~self.covered_by_existing & self.reachable_by_new
        )
        if rows.size == 0 or required <= 1e-9 * total:
            return self._answer(
                np.empty(0, dtype=np.intp), SolveStatus.OPTIMAL, 0.0, "mip", started
            )
        matrix, group_weight, cols = self._reduced(rows)
        full = self.target == 1.0
        # Covering everyone counts points; a target share counts weight.
        score = np.ones_like(group_weight) if full else group_weight
        need = float(score.sum()) if full else required
        chosen = heur.set_cover_greedy(
            matrix, score, allowed=np.ones(cols.size, dtype=bool), required=need
        )
        problem = _cover_mip(matrix, score, k=None, required=need)
        if method == "heuristic":
            relaxed = solve_mip(problem, time_limit=time_limit, mip_gap=mip_gap, relax=True)
            bound = float(np.ceil(relaxed.objective - 1e-6))
            return self._answer(cols[chosen], SolveStatus.HEURISTIC, bound, method, started)
        outcome = solve_mip(
            problem, time_limit=time_limit, mip_gap=mip_gap, start=_cover_start(matrix, chosen)
        )
        picked = np.flatnonzero(outcome.x[: cols.size] > 0.5)
        bound = float(np.ceil(outcome.bound - 1e-6))
        result = self._answer(cols[picked], SolveStatus.OPTIMAL, bound, "mip", started)
        return _restatus(result, _status(outcome, result.gap), result.gap)

    def _answer(
        self, sites: IntArray, status: SolveStatus, bound: float, method: str, started: float
    ) -> SitingResult:
        assignment, assigned_cost, served = self._coverage_answer(sites)
        objective = float(sites.size)
        bound = min(bound, objective)
        return self._result(
            sites=sites,
            status=status,
            objective=objective,
            bound=bound,
            gap=relative_gap(objective, bound) if objective > 0 else 0.0,
            assignment=assignment,
            assigned_cost=assigned_cost,
            served=served,
            site_load=None,
            covered_before=np.where(self.covered_by_existing, self.weights, 0.0),
            covered_after=served,
            method=method,
            started=started,
        )


class PMedian(_SitingModel):
    """The p-median problem: open ``p`` new sites minimising total weighted cost.

    Every demand point goes to its nearest open site (existing or new). The exact model uses
    the distance-level formulation (one variable per distinct distance a demand point can
    face, levels beyond what ``p`` open sites guarantee dropped), which has the LP bound of the
    classic assignment formulation with far fewer non-zeros.
    """

    problem = "p_median"

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any = None,
        p: int,
        existing: Any = None,
        service_radius: float | None = None,
        demand_ids: Sequence[Hashable] | None = None,
        site_ids: Sequence[Hashable] | None = None,
        distance: str = "cost matrix",
    ) -> None:
        super().__init__(
            cost,
            weights=weights,
            existing=existing,
            demand_ids=demand_ids,
            site_ids=site_ids,
            distance=distance,
        )
        self.p: int = inp.as_count(
            p, field="p", available=self.n_new_candidates, what="candidate sites"
        )
        self.service_radius: float | None = (
            None if service_radius is None else inp.as_radius(service_radius)
        )
        self.dense: FloatArray = inp.to_dense(self.cost)
        reach = np.isfinite(self.dense).any(axis=1)
        stranded = np.flatnonzero((self.weights > 0) & ~reach)
        if stranded.size:
            msg = "no candidate site is reachable from " + inp.describe_rows(
                self._ids(stranded), what="demand points"
            )
            raise InputError("cost", msg)

    @classmethod
    def from_cost_matrix(
        cls,
        cost: Any,
        *,
        weights: Any = None,
        p: int,
        existing: Any = None,
        service_radius: float | None = None,
    ) -> Self:
        """Build from a demand × candidate cost matrix (dense with ``inf`` or sparse).

        ``service_radius`` (optional) only adds coverage figures to the answer.

        Raises
        ------
        InputError
            Bad inputs, ``p`` outside ``1 .. candidates``, or unreachable demand points.
        """
        return cls(cost, weights=weights, p=p, existing=existing, service_radius=service_radius)

    @classmethod
    def from_geodataframe(
        cls,
        demand_gdf: gpd.GeoDataFrame,
        candidate_gdf: gpd.GeoDataFrame,
        *,
        weight_col: str | None = None,
        p: int,
        existing_col: str | None = None,
        service_radius: float | None = None,
        distance: DistanceSpec = "euclidean",
        detour: float = 1.3,
    ) -> Self:
        """Build from demand and candidate point layers; costs in metres.

        Raises
        ------
        InputError
            As :meth:`from_cost_matrix`, or a missing column / CRS.
        """
        return cls(
            **cls._geo_inputs(
                demand_gdf,
                candidate_gdf,
                weight_col=weight_col,
                existing_col=existing_col,
                distance=distance,
                detour=detour,
                max_cost=None,
            ),
            p=p,
            service_radius=service_radius,
        )

    def solve(
        self,
        *,
        time_limit: float | None = None,
        mip_gap: float = 0.0,
        method: Method = "exact",
    ) -> SitingResult:
        """Choose the ``p`` new sites.

        Returns
        -------
        SitingResult
            ``objective`` is ``Σ weight × cost to the nearest open site``.

        Raises
        ------
        InputError
            Bad ``method``, ``time_limit`` or ``mip_gap``.
        SolverError
            HiGHS fails or finds no assignment serving every demand point.
        """
        _check_method(method)
        _check_limits(time_limit, mip_gap)
        started = time.perf_counter()
        rows = np.flatnonzero(self.weights > 0)
        dist = self.dense[rows]
        w = self.weights[rows]
        finite = dist[np.isfinite(dist)]
        big = (float(finite.max()) + 1.0) * (self.n_demand + 1) if finite.size else 1.0
        fixed = np.flatnonzero(self.existing).astype(np.intp)
        chosen = heur.median_greedy_interchange(
            np.where(np.isfinite(dist), dist, big), w, allowed=~self.existing, fixed=fixed, p=self.p
        )
        upper = float((w * self._nearest(chosen)[1][rows]).sum())
        if not np.isfinite(upper):
            msg = "the heuristic left demand points without a reachable site"
            raise SolverError(msg)
        bound, closed, forced = heur.median_lagrangian_bound(
            dist, w, allowed=~self.existing, fixed=fixed, p=self.p, upper=upper
        )
        weighted = w[:, None] * dist
        finite_costs = weighted[np.isfinite(weighted)]
        integral = bool(np.array_equal(finite_costs, np.round(finite_costs)))
        if integral:
            bound = float(np.ceil(bound - 1e-6))
        if method == "heuristic":
            return self._answer(chosen, SolveStatus.HEURISTIC, bound, "heuristic", started)
        if bound >= upper - 1e-9 * max(1.0, abs(upper)):
            return self._answer(chosen, SolveStatus.OPTIMAL, bound, "mip", started)
        # Columns the Lagrangian bound rules out (or in) for any solution at most as costly as
        # the heuristic's leave the MIP, which shrinks it severalfold when p is small.
        forced &= ~self.existing
        variable = ~self.existing & ~closed & ~forced
        p_rest = self.p - int(forced.sum())
        if p_rest == 0 or int(variable.sum()) < p_rest:
            sites = np.flatnonzero(forced).astype(np.intp)
            return self._answer(sites, SolveStatus.OPTIMAL, bound, "mip", started)
        problem, start = self._mip(
            rows, chosen, variable=variable, fixed=self.existing | forced, p=p_rest
        )
        remaining = None if time_limit is None else started + time_limit - time.perf_counter()
        if remaining is not None and remaining <= 0:
            result = self._answer(chosen, SolveStatus.TIME_LIMIT, bound, "mip", started)
            return _restatus(result, SolveStatus.TIME_LIMIT, result.gap)
        # The interchange answer is usually optimal already: HiGHS's own primal heuristics
        # (sub-MIPs) would spend most of the time re-finding it.
        outcome = solve_mip(
            problem,
            time_limit=remaining,
            mip_gap=mip_gap,
            start=start,
            heuristic_effort=0.0,
            integral_objective=integral,
            presolve=False,
        )
        new_cols = np.flatnonzero(variable)
        picked = new_cols[np.flatnonzero(outcome.x[: new_cols.size] > 0.5)]
        sites = np.union1d(picked, np.flatnonzero(forced)).astype(np.intp)
        result = self._answer(sites, SolveStatus.OPTIMAL, max(bound, outcome.bound), "mip", started)
        return _restatus(result, _status(outcome, result.gap), result.gap)

    def _nearest(self, sites: IntArray) -> tuple[IntArray, FloatArray]:
        open_cols = np.union1d(np.flatnonzero(self.existing), sites).astype(np.intp)
        sub = self.dense[:, open_cols]
        j = np.argmin(sub, axis=1)
        d = sub[np.arange(self.n_demand), j]
        return open_cols[j].astype(np.intp), d

    def _answer(
        self, sites: IntArray, status: SolveStatus, bound: float, method: str, started: float
    ) -> SitingResult:
        assignment, assigned_cost = self._nearest(sites)
        unreachable = ~np.isfinite(assigned_cost)
        if (unreachable & (self.weights > 0)).any():
            msg = "the chosen sites leave demand points without a reachable site"
            raise SolverError(msg)
        assignment = np.where(unreachable, -1, assignment).astype(np.intp)
        assigned_cost = np.where(unreachable, np.nan, assigned_cost)
        objective = float((self.weights * np.nan_to_num(assigned_cost)).sum())
        bound = min(bound, objective)
        before: FloatArray | None = None
        after: FloatArray | None = None
        if self.service_radius is not None:
            fixed = np.flatnonzero(self.existing)
            near = (
                self.dense[:, fixed].min(axis=1) if fixed.size else np.full(self.n_demand, np.inf)
            )
            before = np.where(near <= self.service_radius, self.weights, 0.0)
            after = np.where(assigned_cost <= self.service_radius, self.weights, 0.0)
        return self._result(
            sites=sites,
            status=status,
            objective=objective,
            bound=bound,
            gap=relative_gap(objective, bound),
            assignment=assignment,
            assigned_cost=assigned_cost,
            served=np.where(assignment >= 0, self.weights, 0.0),
            site_load=None,
            covered_before=before,
            covered_after=after,
            method=method,
            started=started,
        )

    def _mip(
        self, rows: IntArray, chosen: IntArray, *, variable: BoolArray, fixed: BoolArray, p: int
    ) -> tuple[MipProblem, FloatArray]:
        """Distance-level model: x per new column, then u per (demand, level).

        ``u_ik = 1`` when no open site lies within level ``L_ik``; demand ``i`` costs
        ``L_i1 + Σ_k (L_i,k+1 - L_ik) u_ik``. Chained rows ``u_ik ≥ u_i,k-1 - Σ_{d_ij = L_ik} x_j``
        (``u_i0 = 1``) keep every (i, j) pair in one row only.
        """
        new_cols = np.flatnonzero(variable)
        m_new = new_cols.size
        dist_new = self.dense[np.ix_(rows, new_cols)]
        fixed_cols = np.flatnonzero(fixed)
        e = (
            self.dense[np.ix_(rows, fixed_cols)].min(axis=1)
            if fixed_cols.size
            else np.full(rows.size, np.inf)
        )
        # With p sites open among m_new, one of the (m_new - p + 1) nearest is always open.
        kth = np.partition(dist_new, m_new - p, axis=1)[:, m_new - p]
        cap = np.minimum(e, kth)
        open_new = np.zeros(m_new, dtype=bool)
        open_new[np.isin(new_cols, chosen)] = True
        w = self.weights[rows]
        entry_r: list[IntArray] = []
        entry_c: list[IntArray] = []
        entry_v: list[FloatArray] = []
        u_cost: list[FloatArray] = []
        u_upper: list[FloatArray] = []
        u_start: list[FloatArray] = []
        row_lower: list[FloatArray] = []
        offset = 0.0
        n_rows = 0
        n_u = 0
        for i in range(rows.size):
            d = dist_new[i]
            c = cap[i]
            mask = (d < c) & np.isfinite(d)
            cols_i = np.flatnonzero(mask)
            levels, inv = np.unique(d[cols_i], return_inverse=True)
            bounded = bool(np.isfinite(c))
            full_levels = np.append(levels, c) if bounded else levels
            offset += w[i] * float(full_levels[0])
            k_u = levels.size
            if k_u == 0:
                continue
            steps = np.diff(full_levels) if bounded else np.append(np.diff(full_levels), 0.0)
            u_cost.append(w[i] * steps)
            upper = np.ones(k_u)
            if not bounded:
                upper[-1] = 0.0  # the farthest reachable level must be served
            u_upper.append(upper)
            near_open = d[cols_i][open_new[cols_i]]
            nearest_open = float(near_open.min()) if near_open.size else np.inf
            u_start.append((nearest_open > levels).astype(np.float64))
            level_rows = n_rows + np.arange(k_u)
            u_cols = m_new + n_u + np.arange(k_u)
            entry_r += [level_rows[inv], level_rows, level_rows[1:]]
            entry_c += [cols_i, u_cols, u_cols[:-1]]
            entry_v += [np.ones(cols_i.size), np.ones(k_u), -np.ones(k_u - 1)]
            lower = np.zeros(k_u)
            lower[0] = 1.0
            row_lower.append(lower)
            n_rows += k_u
            n_u += k_u
        # Σ x = p
        entry_r.append(np.full(m_new, n_rows))
        entry_c.append(np.arange(m_new))
        entry_v.append(np.ones(m_new))
        n_total = m_new + n_u
        matrix = sp.csc_array(
            (
                np.concatenate(entry_v),
                (np.concatenate(entry_r), np.concatenate(entry_c)),
            ),
            shape=(n_rows + 1, n_total),
        )
        cat = np.concatenate
        problem = MipProblem(
            cost=cat([np.zeros(m_new), *u_cost]),
            matrix=matrix,
            row_lower=cat([*row_lower, [float(p)]]),
            row_upper=cat([np.full(n_rows, np.inf), [float(p)]]),
            col_lower=np.zeros(n_total),
            col_upper=cat([np.ones(m_new), *u_upper]),
            integer=cat([np.ones(m_new, dtype=bool), np.zeros(n_u, dtype=bool)]),
            maximize=False,
            offset=offset,
        )
        start = cat([open_new.astype(np.float64), *u_start])
        return problem, start


class CapacitatedMaximalCovering(_CoverageModel):
    """Capacitated maximal covering: ``k`` new sites, each serving at most its capacity.

    Demand within ``service_radius`` of an open site may be served by it up to the site's
    capacity (beds, seats; in demand-weight units). With ``single_source`` each demand point
    goes whole to one site; otherwise it may be split. Existing facilities are open with their
    own capacities. ``target`` (a share) makes serving that much demand a hard requirement.
    """

    problem = "capacitated_maximal_covering"

    def __init__(
        self,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        k: int,
        capacities: Any,
        existing: Any = None,
        single_source: bool = False,
        target: float | None = None,
        demand_ids: Sequence[Hashable] | None = None,
        site_ids: Sequence[Hashable] | None = None,
        distance: str = "cost matrix",
    ) -> None:
        super().__init__(
            cost,
            weights=weights,
            service_radius=service_radius,
            existing=existing,
            demand_ids=demand_ids,
            site_ids=site_ids,
            distance=distance,
        )
        self.k: int = inp.as_count(
            k, field="k", available=self.n_new_candidates, what="candidate sites"
        )
        caps = np.broadcast_to(np.asarray(capacities, dtype=np.float64), (self.n_candidates,))
        if np.isnan(caps).any() or (caps < 0).any():
            bad = np.flatnonzero(np.isnan(caps) | (caps < 0))
            msg = "must be non-negative numbers; bad for " + inp.describe_rows(
                [self.site_ids[int(j)] for j in bad], what="sites"
            )
            raise InputError("capacities", msg)
        total = float(self.weights.sum())
        self.capacities: FloatArray = np.minimum(caps, total).copy()
        self.single_source: bool = bool(single_source)
        self.target: float | None = None if target is None else inp.as_share(target, field="target")
        if self.target is not None:
            self._check_target()

    def _check_target(self) -> None:
        assert self.target is not None
        total = float(self.weights.sum())
        wanted = self.target * total
        reach = self.covered_by_existing | self.reachable_by_new
        reachable = float(self.weights[reach].sum())
        new_caps = np.sort(self.capacities[~self.existing])[::-1][: self.k]
        capacity = float(self.capacities[self.existing].sum() + new_caps.sum())
        tol = 1e-9 * max(1.0, wanted)
        if capacity < wanted - tol:
            msg = (
                f"existing facilities and the {self.k} largest candidates hold {capacity:g}, "
                f"less than the {wanted:g} demand the target of {self.target:.1%} asks for"
            )
            raise InputError("capacities", msg)
        if reachable < wanted - tol:
            stranded = np.flatnonzero(~reach & (self.weights > 0))
            msg = (
                f"asks for {self.target:.1%} of demand but only {reachable / total:.1%} lies "
                f"within {self.service_radius:g} of any site; unreachable: "
                + inp.describe_rows(self._ids(stranded), what="demand points")
            )
            raise InputError("target", msg)

    @classmethod
    def from_cost_matrix(
        cls,
        cost: Any,
        *,
        weights: Any = None,
        service_radius: float,
        k: int,
        capacities: Any,
        existing: Any = None,
        single_source: bool = False,
        target: float | None = None,
    ) -> Self:
        """Build from a demand × candidate cost matrix (dense with ``inf`` or sparse).

        ``capacities`` is one number for every column or one per column.

        Raises
        ------
        InputError
            Bad inputs, negative or NaN capacities, or a ``target`` the capacities or the
            radius cannot meet.
        """
        return cls(
            cost,
            weights=weights,
            service_radius=service_radius,
            k=k,
            capacities=capacities,
            existing=existing,
            single_source=single_source,
            target=target,
        )

    @classmethod
    def from_geodataframe(
        cls,
        demand_gdf: gpd.GeoDataFrame,
        candidate_gdf: gpd.GeoDataFrame,
        *,
        weight_col: str | None = None,
        service_radius: float,
        k: int,
        capacity_col: str,
        existing_col: str | None = None,
        single_source: bool = False,
        target: float | None = None,
        distance: DistanceSpec = "euclidean",
        detour: float = 1.3,
    ) -> Self:
        """Build from demand and candidate point layers; radius in metres.

        Raises
        ------
        InputError
            As :meth:`from_cost_matrix`, or a missing column / CRS.
        """
        if capacity_col not in candidate_gdf.columns:
            raise InputError("capacity_col", f"column {capacity_col!r} not in the candidates")
        return cls(
            **cls._geo_inputs(
                demand_gdf,
                candidate_gdf,
                weight_col=weight_col,
                existing_col=existing_col,
                distance=distance,
                detour=detour,
                max_cost=service_radius,
            ),
            service_radius=service_radius,
            k=k,
            capacities=candidate_gdf[capacity_col].to_numpy(float),
            single_source=single_source,
            target=target,
        )

    def _mip(
        self, *, k: int, target: float | None
    ) -> tuple[MipProblem, IntArray, IntArray, IntArray]:
        """Variables: ``x`` per usable new column, then ``y`` per (demand, site) pair in reach.

        Returns the problem and, per pair, its demand row and column, and the new columns.
        """
        coo = self.cover.tocoo()
        keep = self.weights[coo.row] > 0
        pi = coo.row[keep].astype(np.intp)
        pj = coo.col[keep].astype(np.intp)
        new_cols = np.unique(pj[~self.existing[pj]])
        n_x, n_y = new_cols.size, pi.size
        x_of = np.full(self.n_candidates, -1, dtype=np.intp)
        x_of[new_cols] = np.arange(n_x)
        y_idx = n_x + np.arange(n_y)
        w = self.weights[pi]
        demand_rows, demand_pos = np.unique(pi, return_inverse=True)
        site_cols, site_pos = np.unique(pj, return_inverse=True)
        n_d, n_s = demand_rows.size, site_cols.size
        new_pair = np.flatnonzero(~self.existing[pj])
        n_link = new_pair.size
        r0, r1, r2 = 0, n_d, n_d + n_s
        r3 = r2 + n_link
        site_new = ~self.existing[site_cols]
        rows = [
            r0 + demand_pos,  # Σ_j y_ij ≤ 1
            r1 + site_pos,  # Σ_i w_i y_ij − C_j x_j ≤ 0
            r1 + np.flatnonzero(site_new),
            r2 + np.arange(n_link),  # y_ij − x_j ≤ 0
            r2 + np.arange(n_link),
            np.full(n_x, r3),  # Σ x ≤ k
        ]
        cols = [
            y_idx,
            y_idx,
            x_of[site_cols[site_new]],
            y_idx[new_pair],
            x_of[pj[new_pair]],
            np.arange(n_x),
        ]
        vals = [
            np.ones(n_y),
            w,
            -self.capacities[site_cols[site_new]],
            np.ones(n_link),
            -np.ones(n_link),
            np.ones(n_x),
        ]
        upper_site = np.where(site_new, 0.0, self.capacities[site_cols])
        row_lower: list[FloatArray] = [np.full(n_d + n_s + n_link + 1, -np.inf)]
        row_upper: list[FloatArray] = [
            np.ones(n_d),
            upper_site,
            np.zeros(n_link),
            np.array([float(k)]),
        ]
        n_rows = r3 + 1
        if target is not None:
            rows.append(np.full(n_y, n_rows))
            cols.append(y_idx)
            vals.append(w)
            row_lower.append(np.array([target * float(self.weights.sum())]))
            row_upper.append(np.array([np.inf]))
            n_rows += 1
        cat = np.concatenate
        matrix = sp.csc_array((cat(vals), (cat(rows), cat(cols))), shape=(n_rows, n_x + n_y))
        problem = MipProblem(
            cost=cat([np.zeros(n_x), w]),
            matrix=matrix,
            row_lower=cat(row_lower),
            row_upper=cat(row_upper),
            col_lower=np.zeros(n_x + n_y),
            col_upper=np.ones(n_x + n_y),
            integer=cat([np.ones(n_x, dtype=bool), np.full(n_y, self.single_source, dtype=bool)]),
            maximize=True,
        )
        return problem, pi, pj, new_cols

    def solve(
        self,
        *,
        time_limit: float | None = None,
        mip_gap: float = 0.0,
        method: Method = "exact",
    ) -> SitingResult:
        """Choose the ``k`` new sites and the assignment of demand to sites.

        Only the exact method exists for this model (``method="heuristic"`` is refused).

        Returns
        -------
        SitingResult
            ``objective`` is the served weighted demand; ``covered_before`` what the
            existing facilities serve within their capacities; ``site_load`` never exceeds a
            capacity.

        Raises
        ------
        InputError
            ``method="heuristic"``, bad ``time_limit`` or ``mip_gap``.
        SolverError
            HiGHS fails or cannot meet ``target``.
        """
        _check_method(method)
        if method != "exact":
            raise InputError("method", "the capacitated model is solved exactly only")
        _check_limits(time_limit, mip_gap)
        started = time.perf_counter()
        before = self._served_by_existing(time_limit)
        problem, pi, pj, new_cols = self._mip(k=self.k, target=self.target)
        outcome = solve_mip(problem, time_limit=time_limit, mip_gap=mip_gap)
        n_x = new_cols.size
        sites = new_cols[np.flatnonzero(outcome.x[:n_x] > 0.5)]
        share = np.clip(outcome.x[n_x:], 0.0, 1.0)
        if self.single_source:
            share = np.round(share)
        share[~np.isin(pj, np.union1d(sites, np.flatnonzero(self.existing)))] = 0.0
        served_pair = self.weights[pi] * share
        served = np.bincount(pi, weights=served_pair, minlength=self.n_demand).astype(np.float64)
        site_load = np.bincount(pj, weights=served_pair, minlength=self.n_candidates).astype(
            np.float64
        )
        assignment = np.full(self.n_demand, -1, dtype=np.intp)
        order = np.lexsort((-share, pi))
        first = np.ones(order.size, dtype=bool)
        first[1:] = pi[order][1:] != pi[order][:-1]
        lead = order[first & (share[order] > 1e-9)]
        assignment[pi[lead]] = pj[lead]
        dense_rows = np.flatnonzero(assignment >= 0)
        assigned_cost = np.full(self.n_demand, np.nan)
        assigned_cost[dense_rows] = np.asarray(
            self.cost[dense_rows, assignment[dense_rows]], dtype=np.float64
        ).reshape(-1)
        objective = float(served.sum())
        bound = max(float(outcome.bound), objective)
        gap = relative_gap(objective, bound)
        return self._result(
            sites=sites,
            status=_status(outcome, gap),
            objective=objective,
            bound=bound,
            gap=gap,
            assignment=assignment,
            assigned_cost=assigned_cost,
            served=served,
            site_load=site_load,
            covered_before=before,
            covered_after=served,
            method="mip",
            started=started,
        )

    def _served_by_existing(self, time_limit: float | None) -> FloatArray:
        """Per demand point, what the existing facilities serve within their capacities."""
        if not self.existing.any():
            return np.zeros(self.n_demand)
        problem, pi, _, new_cols = self._mip(k=0, target=None)
        outcome = solve_mip(problem, time_limit=time_limit, mip_gap=0.0)
        share = np.clip(outcome.x[new_cols.size :], 0.0, 1.0)
        served: FloatArray = np.bincount(
            pi, weights=self.weights[pi] * share, minlength=self.n_demand
        ).astype(np.float64)
        return served
