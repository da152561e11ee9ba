"""Bad siting input fails with an InputError naming the field, or a readable SolverError."""

from __future__ import annotations

import numpy as np
import pytest

from gis.errors import InputError
from gis.siting import (
    CapacitatedMaximalCovering,
    MaximalCovering,
    PMedian,
    SetCovering,
    SolverError,
)

COST = np.array([[0.0, 300.0, 900.0], [250.0, 100.0, 700.0], [800.0, 600.0, 50.0]])
WEIGHTS = np.array([10.0, 20.0, 30.0])


def test_k_larger_than_candidates_names_k() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(COST, weights=WEIGHTS, service_radius=300, k=4)
    assert err.value.field == "k"
    assert "only 3" in err.value.message


def test_k_counts_only_new_candidates() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(
            COST, weights=WEIGHTS, service_radius=300, k=3, existing=[0]
        )
    assert err.value.field == "k"


def test_k_below_one_names_k() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(COST, weights=WEIGHTS, service_radius=300, k=0)
    assert err.value.field == "k"


def test_p_larger_than_candidates_names_p() -> None:
    with pytest.raises(InputError) as err:
        PMedian.from_cost_matrix(COST, weights=WEIGHTS, p=5)
    assert err.value.field == "p"


def test_empty_demand_names_demand() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(np.empty((0, 3)), service_radius=300, k=1)
    assert err.value.field == "demand"


def test_no_candidates_names_candidates() -> None:
    with pytest.raises(InputError) as err:
        PMedian.from_cost_matrix(np.empty((3, 0)), p=1)
    assert err.value.field == "candidates"


def test_negative_weight_names_weights_and_row() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(COST, weights=[10.0, -1.0, 3.0], service_radius=300, k=1)
    assert err.value.field == "weights"
    assert "ids 1" in err.value.message


def test_all_zero_weights_name_weights() -> None:
    with pytest.raises(InputError) as err:
        PMedian.from_cost_matrix(COST, weights=[0.0, 0.0, 0.0], p=1)
    assert err.value.field == "weights"


def test_negative_capacity_names_capacities() -> None:
    with pytest.raises(InputError) as err:
        CapacitatedMaximalCovering.from_cost_matrix(
            COST, weights=WEIGHTS, service_radius=300, k=1, capacities=[10.0, -5.0, 10.0]
        )
    assert err.value.field == "capacities"


def test_nan_cost_names_cost_and_position() -> None:
    cost = COST.copy()
    cost[2, 1] = np.nan
    with pytest.raises(InputError) as err:
        PMedian.from_cost_matrix(cost, weights=WEIGHTS, p=1)
    assert err.value.field == "cost"
    assert "demand 2, candidate 1" in err.value.message


def test_negative_cost_names_cost() -> None:
    with pytest.raises(InputError) as err:
        SetCovering.from_cost_matrix(-COST, service_radius=300)
    assert err.value.field == "cost"


def test_infeasible_covering_names_unreachable_demand_points() -> None:
    cost = np.array([[0.0, 50.0], [900.0, 800.0], [100.0, 20.0], [700.0, 990.0]])
    with pytest.raises(InputError) as err:
        SetCovering.from_cost_matrix(cost, service_radius=300)
    assert err.value.field == "demand"
    assert "2 demand points (ids 1, 3)" in err.value.message


def test_unreachable_target_share_names_target() -> None:
    cost = np.array([[0.0, 50.0], [900.0, 800.0], [100.0, 20.0]])
    with pytest.raises(InputError) as err:
        SetCovering.from_cost_matrix(cost, weights=[1.0, 8.0, 1.0], service_radius=300, target=0.5)
    assert err.value.field == "target"
    assert "ids 1" in err.value.message


def test_capacity_too_small_for_target_names_capacities() -> None:
    with pytest.raises(InputError) as err:
        CapacitatedMaximalCovering.from_cost_matrix(
            COST, weights=WEIGHTS, service_radius=1000, k=2, capacities=20.0, target=0.9
        )
    assert err.value.field == "capacities"


def test_pmedian_unreachable_demand_names_cost() -> None:
    cost = np.array([[0.0, 50.0], [np.inf, np.inf]])
    with pytest.raises(InputError) as err:
        PMedian.from_cost_matrix(cost, p=1)
    assert err.value.field == "cost"


def test_negative_radius_names_service_radius() -> None:
    with pytest.raises(InputError) as err:
        MaximalCovering.from_cost_matrix(COST, service_radius=-1, k=1)
    assert err.value.field == "service_radius"


def test_unknown_method_names_method() -> None:
    model = MaximalCovering.from_cost_matrix(COST, service_radius=300, k=1)
    with pytest.raises(InputError) as err:
        model.solve(method="magic")  # type: ignore[arg-type]
    assert err.value.field == "method"


def test_non_positive_time_limit_names_time_limit() -> None:
    model = MaximalCovering.from_cost_matrix(COST, service_radius=300, k=1)
    with pytest.raises(InputError) as err:
        model.solve(time_limit=0)
    assert err.value.field == "time_limit"


def test_single_source_packing_infeasible_raises_readable_solver_error() -> None:
    cost = np.zeros((3, 2))
    model = CapacitatedMaximalCovering.from_cost_matrix(
        cost,
        weights=[3.0, 3.0, 2.0],
        service_radius=10,
        k=2,
        capacities=4.0,
        single_source=True,
        target=1.0,
    )
    with pytest.raises(SolverError, match="infeasible"):
        model.solve()
