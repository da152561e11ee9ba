"""Fast heuristics (greedy + swap / interchange) and the bounds reported with them.

All functions work on column positions of a demand × candidate matrix; ``allowed`` marks the
columns that may be opened, ``fixed`` the existing facilities that are always open.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

_EPS = 1e-9


def cover_greedy_swap(
    cover: sp.csr_array,
    weights: FloatArray,
    *,
    allowed: BoolArray,
    k: int,
    max_passes: int = 50,
    start: IntArray | None = None,
) -> IntArray:
    """Choose up to ``k`` columns maximising the weight of rows covered (greedy, then 1-swap).

    ``weights`` should be 0 for rows already covered by fixed facilities. Columns that add no
    coverage are not opened, so fewer than ``k`` may come back. ``start`` (optional) replaces
    the greedy construction by the given columns, which the swaps then improve.
    """
    cover_t = sp.csr_array(cover.T, dtype=np.float64)
    cover_t.sort_indices()
    n = cover.shape[0]
    count = np.zeros(n, dtype=np.int64)
    chosen: list[int] = []
    blocked = ~allowed
    for j in [] if start is None else [int(c) for c in start]:
        chosen.append(j)
        count[_rows(cover_t, j)] += 1
    for _ in range(k - len(chosen)):
        gain = cover_t @ (weights * (count == 0))
        gain[blocked] = -np.inf
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        if not gain[j] > _EPS:
            break
        chosen.append(j)
        count[_rows(cover_t, j)] += 1
    for _ in range(max_passes):
        improved = False
        for pos in range(len(chosen)):
            s = chosen[pos]
            rows_s = _rows(cover_t, s)
            count[rows_s] -= 1
            open_weight = weights * (count == 0)
            loss = float(open_weight[rows_s].sum())
            gain = cover_t @ open_weight
            gain[blocked] = -np.inf
            gain[chosen] = -np.inf
            j = int(np.argmax(gain))
            if gain[j] > loss + _EPS * max(1.0, loss):
                chosen[pos] = j
                count[_rows(cover_t, j)] += 1
                improved = True
            else:
                count[rows_s] += 1
        if not improved:
            break
    return np.sort(np.asarray(chosen, dtype=np.intp))


def set_cover_greedy(
    cover: sp.csr_array,
    weights: FloatArray,
    *,
    allowed: BoolArray,
    required: float,
) -> IntArray:
    """Few columns whose covered row weight reaches ``required`` (greedy, then drop redundant).

    Rows that must not count (already covered, no demand) carry weight 0. Returns the columns
    found; the caller checks feasibility beforehand.
    """
    cover_t = sp.csr_array(cover.T, dtype=np.float64)
    cover_t.sort_indices()
    count = np.zeros(cover.shape[0], dtype=np.int64)
    chosen: list[int] = []
    covered = 0.0
    tol = _EPS * max(1.0, required)
    while covered < required - tol:
        gain = cover_t @ (weights * (count == 0))
        gain[~allowed] = -np.inf
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        if not gain[j] > 0:
            break
        chosen.append(j)
        count[_rows(cover_t, j)] += 1
        covered += float(gain[j])
    for j in reversed(list(chosen)):
        rows_j = _rows(cover_t, j)
        lost = float(weights[rows_j][count[rows_j] == 1].sum())
        if covered - lost >= required - tol:
            count[rows_j] -= 1
            covered -= lost
            chosen.remove(j)
    return np.sort(np.asarray(chosen, dtype=np.intp))


def _rows(cover_t: sp.csr_array, j: int) -> IntArray:
    rows: IntArray = cover_t.indices[cover_t.indptr[j] : cover_t.indptr[j + 1]]
    return rows


def median_greedy_interchange(
    dist: FloatArray,
    weights: FloatArray,
    *,
    allowed: BoolArray,
    fixed: IntArray,
    p: int,
    max_swaps: int = 10_000,
) -> IntArray:
    """Open ``p`` columns minimising ``Σ weight × distance to nearest open`` (greedy + swaps).

    ``dist`` must be finite (the caller caps unreachable pairs); each step evaluates every
    (close, open) pair at once and makes the best improving swap.
    """
    n, m = dist.shape
    w = weights[:, None]
    far = 2.0 * float(dist.max()) + 1.0  # stands for "no open site yet"
    best = dist[:, fixed].min(axis=1) if fixed.size else np.full(n, far)
    chosen: list[int] = []
    for _ in range(p):
        current = best
        delta = (w * np.minimum(dist - current[:, None], 0.0)).sum(axis=0)
        delta[~allowed] = np.inf
        delta[chosen] = np.inf
        j = int(np.argmin(delta))
        chosen.append(j)
        best = np.minimum(best, dist[:, j])
    chosen_arr = np.asarray(chosen, dtype=np.intp)
    for _ in range(max_swaps):
        open_cols = np.concatenate([fixed, chosen_arr])
        sub = dist[:, open_cols]
        if open_cols.size >= 2:
            two = np.argpartition(sub, 1, axis=1)[:, :2]
            d_a = sub[np.arange(n), two[:, 0]]
            d_b = sub[np.arange(n), two[:, 1]]
            swap = d_b < d_a
            first = np.where(swap, two[:, 1], two[:, 0])
            d1 = np.minimum(d_a, d_b)
            d2 = np.maximum(d_a, d_b)
        else:
            first = np.zeros(n, dtype=np.intp)
            d1 = sub[:, 0]
            d2 = np.full(n, far)
        with_j = np.minimum(d1[:, None], dist)
        add = (w * (with_j - d1[:, None])).sum(axis=0)
        extra = w * (np.minimum(d2[:, None], dist) - with_j)
        owner = sp.csr_array((np.ones(n), (first, np.arange(n))), shape=(open_cols.size, n))
        removal = owner @ extra
        delta = add[None, :] + removal[fixed.size :]
        delta[:, ~allowed] = np.inf
        delta[:, open_cols] = np.inf
        flat = int(np.argmin(delta))
        s, j = divmod(flat, m)
        total = float((weights * d1).sum())
        if not delta[s, j] < -_EPS * max(1.0, abs(total)):
            break
        chosen_arr[s] = j
    return np.sort(chosen_arr)


def median_lagrangian_bound(
    dist: FloatArray,
    weights: FloatArray,
    *,
    allowed: BoolArray,
    fixed: IntArray,
    p: int,
    upper: float,
    iterations: int = 300,
) -> tuple[float, BoolArray, BoolArray]:
    """Lagrangian lower bound of the p-median (assignment constraints relaxed), with fixing.

    Subgradient optimisation with Polyak steps towards ``upper`` (the value of a known
    solution). Every iterate gives a valid bound; the best is returned. Unreachable pairs must
    be ``inf``.

    Returns
    -------
    bound : float
        Best Lagrangian lower bound.
    closed : ndarray of bool
        Columns no solution costing at most ``upper`` opens (opening one costs more).
    forced : ndarray of bool
        Columns every solution costing at most ``upper`` opens.
    """
    cost = weights[:, None] * dist
    finite = np.where(np.isfinite(cost), cost, np.inf)
    lam = np.sort(finite, axis=1)[:, min(1, finite.shape[1] - 1)]
    lam = np.where(np.isfinite(lam), lam, finite.min(axis=1))
    cand = np.flatnonzero(allowed)
    closed = np.zeros(dist.shape[1], dtype=bool)
    forced = np.zeros(dist.shape[1], dtype=bool)
    tol = 1e-9 * max(1.0, abs(upper))
    best = -np.inf
    theta = 2.0
    stall = 0
    for _ in range(iterations):
        reduced = np.minimum(finite - lam[:, None], 0.0)
        rho = reduced.sum(axis=0)
        order = cand[np.argsort(rho[cand], kind="stable")]
        pick = order[:p]
        open_cols = np.concatenate([fixed, pick])
        value = float(lam.sum() + rho[open_cols].sum())
        # Opening j outside the pick costs at least value + rho_j - rho_[p]; leaving a picked j
        # closed costs at least value - rho_j + rho_[p+1].
        closed[order[p:]] |= value + rho[order[p:]] - rho[order[p - 1]] > upper + tol
        if order.size > p:
            forced[pick] |= value - rho[pick] + rho[order[p]] > upper + tol
        if value > best + 1e-12 * max(1.0, abs(value)):
            best = value
            stall = 0
        else:
            stall += 1
            if stall >= 15:
                theta /= 2.0
                stall = 0
        grad = 1.0 - (reduced[:, open_cols] < 0).sum(axis=1)
        norm = float(grad @ grad)
        if norm == 0 or theta < 1e-4 or upper - best <= tol:
            break
        lam = lam + theta * (upper - value) / norm * grad
    return best, closed, forced


def cover_lagrangian_bound(
    cover: sp.csr_array,
    weights: FloatArray,
    *,
    k: int,
    lower: float,
    iterations: int = 400,
    deadline: float | None = None,
) -> tuple[float, BoolArray, BoolArray, IntArray, float]:
    """Lagrangian upper bound of maximal covering, with column fixing.

    Relaxing ``y_g ≤ Σ_j a_gj x_j`` with multipliers ``μ_g ∈ [0, w_g]`` gives
    ``L(μ) = Σ_g (w_g − μ_g) + (sum of the k largest v_j)``, ``v = Aᵀμ``. Subgradient steps
    (Polyak, towards ``lower``, the value of a known answer). Every iterate is a valid bound.
    Stops early at ``deadline`` (a ``time.perf_counter()`` value).

    Returns
    -------
    bound : float
        Best (smallest) Lagrangian bound.
    closed : ndarray of bool
        Columns that no answer better than ``lower`` can open.
    forced : ndarray of bool
        Columns every answer better than ``lower`` must open.
    incumbent : ndarray of int
        The best set of ``k`` columns met on the way (the top ``k`` of ``v`` at some step),
        empty when none beat ``lower``.
    lower : float
        Its covered weight (``lower`` when none beat it). Fixing uses the best value known
        at each step.
    """
    a = sp.csr_array(cover, dtype=np.float64)
    incumbent = np.empty(0, dtype=np.intp)
    a_t = sp.csr_array(a.T)
    a_t.sort_indices()
    u = a.shape[1]
    n_rows = a.shape[0]
    mu = weights * 0.5
    closed = np.zeros(u, dtype=bool)
    forced = np.zeros(u, dtype=bool)
    tol = 1e-9 * max(1.0, abs(lower))
    best = np.inf
    theta = 1.0
    stall = 0
    for _ in range(iterations):
        v = a_t @ mu
        order = np.argsort(-v, kind="stable")
        top = order[:k]
        value = float((weights - mu).sum() + v[top].sum())
        v_k = v[order[k - 1]]
        rest = order[k:]
        closed[rest] |= value - v_k + v[rest] < lower - tol
        if u > k:
            forced[top] |= value - v[top] + v[order[k]] < lower - tol
        if value < best - 1e-12 * max(1.0, abs(value)):
            best = value
            stall = 0
        else:
            stall += 1
            if stall >= 15:
                theta /= 2.0
                stall = 0
        hits = np.bincount(
            np.concatenate([_rows(a_t, int(j)) for j in top]), minlength=n_rows
        ).astype(np.float64)
        covered = float(weights[hits > 0].sum())
        if covered > lower:
            lower = covered
            incumbent = np.sort(top).astype(np.intp)
        grad = hits - (mu < weights)
        norm = float(grad @ grad)
        if norm == 0 or theta < 1e-4 or best - lower <= tol:
            break
        if deadline is not None and time.perf_counter() > deadline:
            break
        mu = np.clip(mu - theta * (value - lower) / norm * grad, 0.0, weights)
    return best, closed, forced, incumbent, lower
