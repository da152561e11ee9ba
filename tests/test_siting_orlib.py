"""OR-Library p-median instances: reading and the published optima reproduced exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gis.siting import PMedian, SolveStatus
from gis.siting.orlib import read_optima, read_pmed

ORLIB = Path(__file__).resolve().parent.parent / "data" / "orlib_pmed"
OPTIMA = read_optima(ORLIB / "pmedopt.txt")


@pytest.mark.parametrize("name", [f"pmed{i}" for i in range(1, 11)])
def test_pmedian_reproduces_published_optimum(name: str) -> None:
    instance = read_pmed(ORLIB / f"{name}.txt")
    result = PMedian.from_cost_matrix(instance.distances, p=instance.p).solve()
    assert result.objective == OPTIMA[name]
    assert result.status is SolveStatus.OPTIMAL
    assert result.sites.size == instance.p


def test_read_optima_lists_all_forty_instances() -> None:
    assert len(OPTIMA) == 40
    assert OPTIMA["pmed1"] == 5819
    assert OPTIMA["pmed40"] == 5128


def test_duplicate_edge_takes_last_occurrence(tmp_path: Path) -> None:
    path = tmp_path / "pmedx.txt"
    path.write_text("3 3 1\n1 2 5\n2 3 4\n1 2 9\n")
    instance = read_pmed(path)
    assert instance.distances[0, 1] == 9
    assert instance.distances[0, 2] == 13


def test_distances_are_shortest_paths_over_edges(tmp_path: Path) -> None:
    path = tmp_path / "pmedy.txt"
    path.write_text("3 3 1\n1 2 1\n2 3 1\n1 3 10\n")
    instance = read_pmed(path)
    assert instance.distances[0, 2] == 2
    assert np.array_equal(instance.distances, instance.distances.T)
