"""A thin, typed wrapper that hands a sparse MIP to HiGHS and reads back the outcome."""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from gis.siting.result import SolverError

FloatArray = npt.NDArray[np.float64]

#: Relative gap under which a finished search counts as proven optimal.
OPTIMAL_GAP = 1e-9


@dataclass(frozen=True)
class MipProblem:
    """A mixed-integer programme ``opt c·x`` s.t. ``row_lower ≤ A x ≤ row_upper``.

    ``integer`` flags the integer columns; ``maximize`` sets the sense.
    """

    cost: FloatArray
    matrix: sp.csc_array
    row_lower: FloatArray
    row_upper: FloatArray
    col_lower: FloatArray
    col_upper: FloatArray
    integer: npt.NDArray[np.bool_]
    maximize: bool
    offset: float = 0.0


@dataclass(frozen=True)
class MipOutcome:
    """What HiGHS returned: the incumbent, its objective, the proven bound and the gap."""

    x: FloatArray
    objective: float
    bound: float
    gap: float
    time_limited: bool
    runtime: float


def relative_gap(objective: float, bound: float) -> float:
    """Return ``|bound - objective| / max(|objective|, 1e-10)`` (0 when both agree)."""
    diff = abs(bound - objective)
    if diff <= 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return diff / max(abs(objective), 1e-10)


def solve_mip(
    problem: MipProblem,
    *,
    time_limit: float | None,
    mip_gap: float,
    start: FloatArray | None = None,
    relax: bool = False,
    heuristic_effort: float | None = None,
    integral_objective: bool = False,
    presolve: bool = True,
) -> MipOutcome:
    """Solve ``problem`` with HiGHS.

    Parameters
    ----------
    problem : MipProblem
        The model.
    time_limit : float or None
        Wall-clock limit in seconds; ``None`` means none.
    mip_gap : float
        Relative gap at which HiGHS may stop.
    start : ndarray, optional
        A feasible solution handed to HiGHS as its first incumbent.
    relax : bool
        Solve the LP relaxation (integrality dropped).
    heuristic_effort : float, optional
        HiGHS ``mip_heuristic_effort``; 0 skips its primal heuristics when ``start`` is good.
    integral_objective : bool
        Every feasible objective is an integer: the search stops once the bound is within 1
        of the incumbent, and the bound is rounded accordingly.
    presolve : bool
        Run HiGHS presolve (off pays when the caller has already reduced the model).

    Returns
    -------
    MipOutcome

    Raises
    ------
    SolverError
        HiGHS reports the model infeasible, fails, or stops without any feasible solution.
    """
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    h.setOptionValue("random_seed", 0)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    if integral_objective:
        h.setOptionValue("mip_abs_gap", 1.0 - 1e-6)
    if not presolve:
        h.setOptionValue("presolve", "off")
    if heuristic_effort is not None:
        h.setOptionValue("mip_heuristic_effort", float(heuristic_effort))
        if heuristic_effort == 0:
            for name in ("rins", "rens", "root_reduced_cost", "feasibility_jump"):
                h.setOptionValue(f"mip_heuristic_run_{name}", False)
    lp = highspy.HighsLp()
    n_col = int(problem.cost.shape[0])
    matrix = problem.matrix.tocsc()
    lp.num_col_ = n_col
    lp.num_row_ = int(matrix.shape[0])
    lp.col_cost_ = np.ascontiguousarray(problem.cost, dtype=np.float64)
    lp.col_lower_ = np.ascontiguousarray(problem.col_lower, dtype=np.float64)
    lp.col_upper_ = np.ascontiguousarray(problem.col_upper, dtype=np.float64)
    lp.row_lower_ = np.ascontiguousarray(problem.row_lower, dtype=np.float64)
    lp.row_upper_ = np.ascontiguousarray(problem.row_upper, dtype=np.float64)
    lp.offset_ = float(problem.offset)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(np.float64)
    lp.a_matrix_.num_col_ = n_col
    lp.a_matrix_.num_row_ = int(matrix.shape[0])
    lp.sense_ = highspy.ObjSense.kMaximize if problem.maximize else highspy.ObjSense.kMinimize
    is_mip = not relax and bool(problem.integer.any())
    if is_mip:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in problem.integer
        ]
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        msg = "HiGHS rejected the model (inconsistent matrix or bounds)"
        raise SolverError(msg)
    if start is not None and is_mip:
        solution = highspy.HighsSolution()
        solution.col_value = list(np.asarray(start, dtype=np.float64))
        solution.value_valid = True
        h.setSolution(solution)
    h.run()
    model_status = h.getModelStatus()
    info = h.getInfo()
    runtime = float(h.getRunTime())
    ok = highspy.HighsModelStatus.kOptimal
    limited = highspy.HighsModelStatus.kTimeLimit
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if model_status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        msg = "HiGHS proved the model infeasible: no choice of sites meets every constraint"
        raise SolverError(msg)
    if model_status not in (ok, limited) or not has_solution:
        text = h.modelStatusToString(model_status)
        msg = f"HiGHS stopped without a feasible solution (status: {text})"
        raise SolverError(msg)
    x = np.asarray(h.getSolution().col_value, dtype=np.float64)
    objective = float(info.objective_function_value)
    bound = float(info.mip_dual_bound) if is_mip else objective
    if not np.isfinite(bound):
        bound = np.inf if problem.maximize else -np.inf
    elif integral_objective:
        bound = float(np.floor(bound + 1e-6) if problem.maximize else np.ceil(bound - 1e-6))
    gap = relative_gap(objective, bound) if np.isfinite(bound) else np.inf
    return MipOutcome(
        x=x,
        objective=objective,
        bound=bound,
        gap=gap,
        time_limited=model_status == limited,
        runtime=runtime,
    )
