"""Validation of siting inputs and the sparse matrix helpers the models share."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from gis.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Cost: TypeAlias = FloatArray | sp.csr_array

_SHOWN = 20


def describe_rows(rows: Sequence[Hashable] | npt.NDArray[Any], *, what: str) -> str:
    """Return ``"3 demand points (ids 4, 9, 17)"``, listing at most 20 labels."""
    items = [str(r) for r in list(rows)[:_SHOWN]]
    more = f", … {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return f"{len(rows)} {what} (ids {', '.join(items)}{more})"


def as_cost(cost: Any) -> Cost:
    """Validate a demand × candidate cost matrix.

    Dense input may hold ``inf`` for pairs that cannot be reached. Sparse input stores the
    reachable pairs only (explicit zeros are kept as cost 0); absent pairs are unreachable.

    Raises
    ------
    InputError
        ``cost`` is not two-dimensional, has no demand row or no candidate column, holds NaN
        or a negative value.
    """
    if sp.issparse(cost):
        matrix = sp.csr_array(cost, dtype=np.float64)
        matrix.sort_indices()
        values = matrix.data
    else:
        matrix = np.asarray(cost, dtype=np.float64)
        values = matrix
    if matrix.ndim != 2:
        msg = f"must be a 2-D demand × candidate matrix, got {matrix.ndim} dimension(s)"
        raise InputError("cost", msg)
    if matrix.shape[0] == 0:
        raise InputError("demand", "no demand points: the cost matrix has no rows")
    if matrix.shape[1] == 0:
        raise InputError("candidates", "no candidate sites: the cost matrix has no columns")
    bad = np.isnan(values)
    if bad.any():
        where = _first_position(matrix, bad)
        msg = f"contains NaN ({int(bad.sum())} entries; first at demand {where[0]}, "
        msg += f"candidate {where[1]}); use inf for unreachable pairs"
        raise InputError("cost", msg)
    negative = values < 0
    if negative.any():
        where = _first_position(matrix, negative)
        msg = f"contains negative costs (first at demand {where[0]}, candidate {where[1]})"
        raise InputError("cost", msg)
    return matrix


def _first_position(matrix: Cost, mask: npt.NDArray[np.bool_]) -> tuple[int, int]:
    if isinstance(matrix, sp.csr_array):
        k = int(np.flatnonzero(mask)[0])
        row = int(np.searchsorted(matrix.indptr, k, side="right") - 1)
        return row, int(matrix.indices[k])
    r, c = np.argwhere(mask)[0]
    return int(r), int(c)


def as_weights(weights: Any, n: int, *, field: str = "weights") -> FloatArray:
    """Validate demand weights (default: 1 per demand point).

    Raises
    ------
    InputError
        Wrong length, NaN, infinite or negative weights.
    """
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        msg = f"has {w.shape[0]} values for {n} demand points"
        raise InputError(field, msg)
    if not np.isfinite(w).all():
        rows = np.flatnonzero(~np.isfinite(w))
        raise InputError(field, "not finite for " + describe_rows(rows, what="demand points"))
    if (w < 0).any():
        rows = np.flatnonzero(w < 0)
        raise InputError(field, "negative for " + describe_rows(rows, what="demand points"))
    return w


def as_existing(existing: Any, m: int) -> BoolArray:
    """Turn a boolean mask or a list of column positions into a boolean mask of length ``m``.

    Raises
    ------
    InputError
        Wrong length or positions outside ``0 .. m-1``.
    """
    mask = np.zeros(m, dtype=bool)
    if existing is None:
        return mask
    arr = np.asarray(existing)
    if arr.dtype == bool:
        if arr.shape != (m,):
            msg = f"boolean mask has {arr.size} values for {m} candidate columns"
            raise InputError("existing", msg)
        return arr.copy()
    idx = arr.astype(np.intp).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        msg = f"column positions must lie in 0..{m - 1}"
        raise InputError("existing", msg)
    mask[idx] = True
    return mask


def as_count(value: Any, *, field: str, available: int, what: str) -> int:
    """Validate a number of sites to open: an integer in ``1 .. available``.

    Raises
    ------
    InputError
        Not an integer, below 1, or larger than the ``available`` candidate sites.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(field, f"must be an integer, got {value!r}")
    count = int(value)
    if count < 1:
        raise InputError(field, f"must be at least 1, got {count}")
    if count > available:
        msg = f"asks for {count} new sites but only {available} {what} exist"
        raise InputError(field, msg)
    return count


def as_radius(value: Any, *, field: str = "service_radius") -> float:
    """Validate a service radius (cost units, metres for geodataframes).

    Raises
    ------
    InputError
        NaN, infinite or negative.
    """
    radius = float(value)
    if not np.isfinite(radius) or radius < 0:
        raise InputError(field, f"must be a finite non-negative distance, got {value!r}")
    return radius


def as_share(value: Any, *, field: str) -> float:
    """Validate a share of demand in ``(0, 1]``.

    Raises
    ------
    InputError
        Outside ``(0, 1]``.
    """
    share = float(value)
    if not 0.0 < share <= 1.0:
        raise InputError(field, f"must be a share in (0, 1], got {value!r}")
    return share


def as_labels(labels: Sequence[Hashable] | None, n: int, *, field: str) -> tuple[Hashable, ...]:
    """Return row/column labels, positions when none are given."""
    if labels is None:
        return tuple(range(n))
    out = tuple(labels)
    if len(out) != n:
        raise InputError(field, f"has {len(out)} labels for {n} entries")
    return out


def coverage(cost: Cost, radius: float) -> sp.csr_array:
    """Boolean demand × candidate matrix: True where ``cost ≤ radius``."""
    if isinstance(cost, sp.csr_array):
        keep = cost.data <= radius
        rows = np.repeat(np.arange(cost.shape[0]), np.diff(cost.indptr))[keep]
        cols = cost.indices[keep]
    else:
        rows, cols = np.nonzero(np.asarray(cost) <= radius)
    data = np.ones(rows.shape[0], dtype=bool)
    out = sp.csr_array((data, (rows, cols)), shape=cost.shape)
    out.sum_duplicates()
    out.sort_indices()
    return out


def to_dense(cost: Cost) -> FloatArray:
    """Dense cost matrix with ``inf`` where a sparse input stores no pair."""
    if isinstance(cost, sp.csr_array):
        dense = np.full(cost.shape, np.inf)
        rows = np.repeat(np.arange(cost.shape[0]), np.diff(cost.indptr))
        dense[rows, cost.indices] = cost.data
        return dense
    return cost


def nearest(
    cost: Cost, open_cols: IntArray, *, within: float = np.inf
) -> tuple[IntArray, FloatArray]:
    """Nearest open column per demand row within ``within``; ``(-1, nan)`` when none."""
    n = cost.shape[0]
    best = np.full(n, -1, dtype=np.intp)
    dist = np.full(n, np.nan)
    if open_cols.size == 0:
        return best, dist
    if isinstance(cost, sp.csr_array):
        sub = cost[:, open_cols].tocoo()
        order = np.lexsort((sub.data, sub.row))
        r, c, d = sub.row[order], sub.col[order], sub.data[order]
        first = np.ones(r.shape[0], dtype=bool)
        first[1:] = r[1:] != r[:-1]
        r, c, d = r[first], c[first], d[first]
        ok = d <= within
        best[r[ok]] = open_cols[c[ok]]
        dist[r[ok]] = d[ok]
        return best, dist
    sub = cost[:, open_cols]
    j = np.argmin(sub, axis=1)
    d = sub[np.arange(n), j]
    ok = d <= within
    best[ok] = open_cols[j[ok]]
    dist[ok] = d[ok]
    return best, dist


def group_rows(matrix: sp.csr_array) -> tuple[IntArray, IntArray]:
    """Group rows with the same sparsity pattern.

    Returns ``(representative, group)``: one row index per distinct pattern, and per row the
    position of its pattern in ``representative``.
    """
    indptr, indices = matrix.indptr, matrix.indices
    seen: dict[bytes, int] = {}
    group = np.empty(matrix.shape[0], dtype=np.intp)
    reps: list[int] = []
    for i in range(matrix.shape[0]):
        key = indices[indptr[i] : indptr[i + 1]].tobytes()
        g = seen.get(key)
        if g is None:
            g = len(reps)
            seen[key] = g
            reps.append(i)
        group[i] = g
    return np.asarray(reps, dtype=np.intp), group
