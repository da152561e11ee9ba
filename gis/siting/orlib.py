"""Reader for Beasley's OR-Library uncapacitated p-median instances (pmed1 … pmed40)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import shortest_path

from gis.errors import InputError


@dataclass(frozen=True, eq=False)
class PMedianInstance:
    """One OR-Library instance: ``n`` vertices, the all-pairs distance matrix and ``p``."""

    name: str
    n: int
    p: int
    distances: npt.NDArray[np.float64]


def read_pmed(path: str | Path) -> PMedianInstance:
    """Read ``pmedN.txt`` and build its distance matrix.

    The file lists ``n m p`` then ``m`` undirected edges ``i j cost`` (1-based). Distances are
    all-pairs shortest paths (scipy.sparse.csgraph, Dijkstra) over the edge list, where a
    repeated edge takes the cost of its LAST occurrence, as the published optima assume.

    Raises
    ------
    InputError
        The header or an edge line is malformed, or the graph is disconnected.
    """
    path = Path(path)
    tokens = path.read_text().split()
    try:
        n, m, p = (int(t) for t in tokens[:3])
        edges = np.asarray(tokens[3 : 3 + 3 * m], dtype=np.int64).reshape(m, 3)
    except ValueError as exc:
        raise InputError(str(path), f"not an OR-Library p-median file: {exc}") from exc
    i = edges[:, 0] - 1
    j = edges[:, 1] - 1
    if i.min() < 0 or j.min() < 0 or max(i.max(), j.max()) >= n:
        raise InputError(str(path), f"edge endpoint outside 1..{n}")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = lo * n + hi
    # last occurrence wins: take the first index of each key in the reversed list
    _, first_rev = np.unique(key[::-1], return_index=True)
    keep = m - 1 - first_rev
    graph = sp.csr_array((edges[keep, 2].astype(np.float64), (lo[keep], hi[keep])), shape=(n, n))
    dist = shortest_path(graph, method="D", directed=False)
    if not np.isfinite(dist).all():
        raise InputError(str(path), "the graph is disconnected")
    return PMedianInstance(name=path.stem, n=n, p=p, distances=dist)


def read_optima(path: str | Path) -> dict[str, int]:
    """Read ``pmedopt.txt``: instance name → published optimal objective."""
    optima: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("pmed") and parts[1].isdigit():
            optima[parts[0]] = int(parts[1])
    return optima
