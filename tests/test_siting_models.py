"""Siting models against spopt (CBC) on seeded random instances, and result invariants."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pulp  # type: ignore[import-untyped]
import pytest
from spopt.locate import LSCP, MCLP
from spopt.locate import PMedian as SpoptPMedian

from gis.siting import (
    CapacitatedMaximalCovering,
    MaximalCovering,
    PMedian,
    SetCovering,
    SolveStatus,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEEDS = [0, 1, 2]


def _instance(
    seed: int, n: int = 250, m: int = 35
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 1000, (n, 2))
    sites = rng.uniform(0, 1000, (m, 2))
    cost = np.hypot(*(demand[:, None, :] - sites[None, :, :]).transpose(2, 0, 1))
    weights = rng.integers(1, 20, n).astype(np.float64)
    return cost, weights


def _cbc() -> pulp.LpSolver:
    return pulp.PULP_CBC_CMD(msg=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_maximal_covering_objective_equals_spopt(seed: int) -> None:
    cost, weights = _instance(seed)
    ours = MaximalCovering.from_cost_matrix(cost, weights=weights, service_radius=150, k=5).solve()
    ref = MCLP.from_cost_matrix(cost, weights, service_radius=150, p_facilities=5).solve(_cbc())
    assert ours.objective == pytest.approx(ref.problem.objective.value())
    assert ours.status is SolveStatus.OPTIMAL


@pytest.mark.parametrize("seed", SEEDS)
def test_maximal_covering_with_existing_equals_spopt_predefined(seed: int) -> None:
    cost, weights = _instance(seed)
    existing = np.zeros(cost.shape[1], dtype=bool)
    existing[:3] = True
    ours = MaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=150, k=4, existing=existing
    ).solve()
    ref = MCLP.from_cost_matrix(
        cost, weights, 150, 4 + 3, predefined_facilities_arr=existing.astype(int)
    ).solve(_cbc())
    assert ours.objective == pytest.approx(ref.problem.objective.value())
    assert not np.isin(ours.existing, ours.sites).any()


@pytest.mark.parametrize("seed", SEEDS)
def test_set_covering_objective_equals_spopt(seed: int) -> None:
    cost, _ = _instance(seed)
    ours = SetCovering.from_cost_matrix(cost, service_radius=400).solve()
    ref = LSCP.from_cost_matrix(cost, service_radius=400).solve(_cbc())
    assert ours.objective == pytest.approx(ref.problem.objective.value())
    assert ours.covered_after == ours.total_demand


@pytest.mark.parametrize("seed", SEEDS)
def test_pmedian_objective_equals_spopt(seed: int) -> None:
    cost, weights = _instance(seed, n=120, m=30)
    ours = PMedian.from_cost_matrix(cost, weights=weights, p=4).solve()
    ref = SpoptPMedian.from_cost_matrix(cost, weights, p_facilities=4).solve(_cbc())
    assert ours.objective == pytest.approx(ref.problem.objective.value(), rel=1e-9)
    assert ours.status is SolveStatus.OPTIMAL


def test_pmedian_assigns_each_demand_to_nearest_open_site() -> None:
    cost, weights = _instance(3, n=120, m=30)
    result = PMedian.from_cost_matrix(cost, weights=weights, p=4).solve()
    nearest = cost[:, result.sites].min(axis=1)
    assert np.allclose(result.assigned_cost, nearest)
    assert result.objective == pytest.approx(float((weights * nearest).sum()))


def test_pmedian_existing_facilities_stay_open() -> None:
    cost, weights = _instance(4, n=120, m=30)
    existing = np.zeros(30, dtype=bool)
    existing[[2, 7]] = True
    result = PMedian.from_cost_matrix(cost, weights=weights, p=3, existing=existing).solve()
    ref = SpoptPMedian.from_cost_matrix(
        cost, weights, p_facilities=5, predefined_facilities_arr=existing.astype(int)
    ).solve(_cbc())
    assert result.objective == pytest.approx(ref.problem.objective.value(), rel=1e-9)
    assert result.sites.size == 3


def test_maximal_covering_heuristic_brackets_the_optimum() -> None:
    cost, weights = _instance(5, n=400, m=60)
    model = MaximalCovering.from_cost_matrix(cost, weights=weights, service_radius=180, k=6)
    exact = model.solve()
    heuristic = model.solve(method="heuristic")
    assert heuristic.status is SolveStatus.HEURISTIC
    assert heuristic.objective <= exact.objective + 1e-9
    assert heuristic.bound >= exact.objective - 1e-9


def test_pmedian_heuristic_brackets_the_optimum() -> None:
    cost, weights = _instance(6, n=150, m=40)
    model = PMedian.from_cost_matrix(cost, weights=weights, p=5)
    exact = model.solve()
    heuristic = model.solve(method="heuristic")
    assert heuristic.status is SolveStatus.HEURISTIC
    assert heuristic.objective >= exact.objective - 1e-6
    assert heuristic.bound <= exact.objective + 1e-6


def test_set_covering_heuristic_bound_is_below_optimum() -> None:
    cost, _ = _instance(7)
    model = SetCovering.from_cost_matrix(cost, service_radius=300)
    exact = model.solve()
    heuristic = model.solve(method="heuristic")
    assert heuristic.covered_after == heuristic.total_demand
    assert heuristic.bound <= exact.objective <= heuristic.objective


def test_set_covering_target_share_is_met() -> None:
    cost, weights = _instance(8)
    result = SetCovering.from_cost_matrix(
        cost, weights=weights, service_radius=400, target=0.8
    ).solve()
    full = SetCovering.from_cost_matrix(cost, weights=weights, service_radius=400).solve()
    assert result.covered_after is not None
    assert result.covered_after >= 0.8 * result.total_demand
    assert result.objective <= full.objective


def test_existing_facilities_count_as_covering_before() -> None:
    cost, weights = _instance(9)
    existing = np.zeros(cost.shape[1], dtype=bool)
    existing[0] = True
    result = MaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=150, k=3, existing=existing
    ).solve()
    before = float(weights[cost[:, 0] <= 150].sum())
    assert result.covered_before == pytest.approx(before)
    assert result.covered_gain == pytest.approx(result.objective - before)


def test_maximal_covering_assignment_stays_within_radius() -> None:
    cost, weights = _instance(10)
    result = MaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=150, k=5
    ).solve()
    served = result.assignment >= 0
    assert (result.assigned_cost[served] <= 150).all()
    assert np.isin(result.assignment[served], result.sites).all()
    assert result.objective == pytest.approx(float(weights[served].sum()))


def test_sparse_cost_matrix_gives_same_answer_as_dense() -> None:
    import scipy.sparse as sp

    cost, weights = _instance(11)
    sparse = sp.csr_array(np.where(cost <= 150, cost, 0.0))
    dense = MaximalCovering.from_cost_matrix(cost, weights=weights, service_radius=150, k=5)
    from_sparse = MaximalCovering.from_cost_matrix(sparse, weights=weights, service_radius=150, k=5)
    assert dense.solve().objective == from_sparse.solve().objective


@pytest.mark.parametrize("single_source", [False, True])
def test_capacitated_load_never_exceeds_capacity(single_source: bool) -> None:
    cost, weights = _instance(12)
    capacities = np.random.default_rng(12).integers(40, 120, cost.shape[1]).astype(float)
    result = CapacitatedMaximalCovering.from_cost_matrix(
        cost,
        weights=weights,
        service_radius=200,
        k=5,
        capacities=capacities,
        single_source=single_source,
    ).solve()
    assert (result.site_load <= capacities + 1e-6).all()
    assert result.objective == pytest.approx(float(result.served.sum()))
    assert (
        result.objective
        < MaximalCovering.from_cost_matrix(cost, weights=weights, service_radius=200, k=5)
        .solve()
        .objective
    )


def test_capacitated_single_source_serves_whole_demand_points() -> None:
    cost, weights = _instance(13)
    result = CapacitatedMaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=200, k=4, capacities=90, single_source=True
    ).solve()
    whole = np.isclose(result.served, weights) | np.isclose(result.served, 0.0)
    assert whole.all()


def test_capacitated_with_ample_capacity_equals_maximal_covering() -> None:
    cost, weights = _instance(14)
    capacitated = CapacitatedMaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=150, k=5, capacities=1e6
    ).solve()
    plain = MaximalCovering.from_cost_matrix(cost, weights=weights, service_radius=150, k=5).solve()
    assert capacitated.objective == pytest.approx(plain.objective)


def test_time_limit_returns_best_found_with_status_and_gap() -> None:
    rng = np.random.default_rng(15)
    import scipy.sparse as sp
    from scipy.spatial import cKDTree

    demand = rng.uniform(0, 4000, (6000, 2))
    sites = rng.uniform(0, 4000, (400, 2))
    cost = cKDTree(demand).sparse_distance_matrix(cKDTree(sites), 500, output_type="coo_matrix")
    weights = rng.integers(1, 30, 6000).astype(float)
    model = MaximalCovering.from_cost_matrix(
        sp.csr_array(cost), weights=weights, service_radius=500, k=12
    )
    result = model.solve(time_limit=0.2)
    assert result.status is SolveStatus.TIME_LIMIT
    assert result.sites.size == 12
    assert result.bound >= result.objective
    assert result.gap == pytest.approx((result.bound - result.objective) / result.objective)


def test_result_is_frozen() -> None:
    cost, weights = _instance(16)
    result = MaximalCovering.from_cost_matrix(
        cost, weights=weights, service_radius=150, k=2
    ).solve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.objective = 0.0  # type: ignore[misc]


def test_capacitated_before_is_what_existing_capacity_serves() -> None:
    cost = np.array([[0.0, 900.0], [10.0, 900.0], [900.0, 0.0]])
    result = CapacitatedMaximalCovering.from_cost_matrix(
        cost,
        weights=[5.0, 5.0, 3.0],
        service_radius=100,
        k=1,
        capacities=[6.0, 10.0],
        existing=[0],
    ).solve()
    assert result.covered_before == pytest.approx(6.0)
    assert result.covered_after == pytest.approx(9.0)
    assert result.demand_covered_before is not None
    assert result.demand_covered_before.sum() == pytest.approx(6.0)
