"""Assign 1,000,000 points to 10,000 grid cells in memory: CellIndex vs geopandas.sjoin vs STRtree.

Run: ``.venv/bin/python -m bench.bench_assign [--points N] [--side N] [--repeats N] [--no-append]``.

Data (seeded): a ``side`` x ``side`` lattice of 100 m cells drawn in UTM 50N around Haidian,
Beijing, every vertex jittered by up to ±30 m (cells share vertices, so they tile with no gap or
overlap), stored as WGS84 polygons; points uniform over the lattice's extent plus 200 m of margin
(so some fall outside every cell). Each repeat runs the three methods back to back on the same
data, so they see the same machine load; the median over repeats is reported.

- ``CellIndex``: ``CellIndex.from_geometries(cells, codes)`` (index build, timed) then
  ``.assign(lon, lat)`` on plain float arrays; covers semantics with the lowest-code tie rule.
- ``geopandas.sjoin(points, cells, predicate="within")`` on ready GeoDataFrames (a fresh cells
  frame per repeat so its spatial index is built inside the timing; building the points frame is
  not timed, which favours the anchor).
- ``shapely.STRtree(cells).query(points, predicate="within")`` on a ready points array (tree
  build timed, points creation not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import geopandas
import numpy as np
import pyproj
import shapely

from bench.common import record_section
from gis.assign import CellIndex

SEED = 20_261_122
CENTRE_LONLAT = (116.35, 39.95)  # Haidian, Beijing
UTM = "EPSG:32650"
CELL_M = 100.0
JITTER_M = 30.0
MARGIN_M = 200.0


def lattice(
    side: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Return (cells as WGS84 polygons, 15-digit codes, WGS84 extent with margin)."""
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    cx, cy = to_utm.transform(*CENTRE_LONLAT)
    x0, y0 = cx - side * CELL_M / 2, cy - side * CELL_M / 2
    gx, gy = np.meshgrid(
        x0 + np.arange(side + 1) * CELL_M, y0 + np.arange(side + 1) * CELL_M, indexing="ij"
    )
    gx = gx + rng.uniform(-JITTER_M, JITTER_M, gx.shape)
    gy = gy + rng.uniform(-JITTER_M, JITTER_M, gy.shape)
    lon, lat = to_lonlat.transform(gx, gy)
    i = np.repeat(np.arange(side), side)
    j = np.tile(np.arange(side), side)
    ring = np.stack(
        [
            np.column_stack([lon[i, j], lat[i, j]]),
            np.column_stack([lon[i + 1, j], lat[i + 1, j]]),
            np.column_stack([lon[i + 1, j + 1], lat[i + 1, j + 1]]),
            np.column_stack([lon[i, j + 1], lat[i, j + 1]]),
            np.column_stack([lon[i, j], lat[i, j]]),
        ],
        axis=1,
    )
    cells = np.asarray(shapely.polygons(ring))
    codes = np.array([f"110108011{k:06d}" for k in rng.permutation(side * side)])
    west, south = to_lonlat.transform(x0 - MARGIN_M, y0 - MARGIN_M)
    east, north = to_lonlat.transform(x0 + side * CELL_M + MARGIN_M, y0 + side * CELL_M + MARGIN_M)
    return cells, codes, (west, south, east, north)


def timed(fn: Callable[[], Any], cpu: list[float] | None = None) -> tuple[float, Any]:
    """Run ``fn``; return wall seconds and its result, appending process CPU seconds to ``cpu``."""
    started, started_cpu = time.perf_counter(), time.process_time()
    result = fn()
    if cpu is not None:
        cpu.append(time.process_time() - started_cpu)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--side", type=int, default=100, help="cells per side (side² cells)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()

    rng = np.random.default_rng(SEED)
    cells, codes, (west, south, east, north) = lattice(args.side, rng)
    lon = rng.uniform(west, east, args.points)
    lat = rng.uniform(south, north, args.points)
    points_array = shapely.points(lon, lat)
    points_frame = geopandas.GeoDataFrame(geometry=points_array, crs=4326)

    ours_build: list[float] = []
    ours_assign: list[float] = []
    sjoin_s: list[float] = []
    tree_s: list[float] = []
    cpu: dict[str, list[float]] = {"build": [], "assign": [], "sjoin": [], "tree": []}
    load_before = os.getloadavg()[0]
    assigned = np.empty(0, dtype=np.int64)
    joined: Any = None
    for _ in range(args.repeats):
        build_s, index = timed(lambda: CellIndex.from_geometries(cells, codes), cpu["build"])
        assign_s, assigned = timed(lambda: index.assign(lon, lat), cpu["assign"])  # noqa: B023
        ours_build.append(build_s)
        ours_assign.append(assign_s)
        cells_frame = geopandas.GeoDataFrame({"code": codes}, geometry=cells.copy(), crs=4326)
        seconds, joined = timed(
            lambda: geopandas.sjoin(points_frame, cells_frame, predicate="within"),  # noqa: B023
            cpu["sjoin"],
        )
        sjoin_s.append(seconds)
        seconds, _pairs = timed(
            lambda: shapely.STRtree(cells).query(points_array, predicate="within"), cpu["tree"]
        )
        tree_s.append(seconds)

    near_cpu: list[float] = []
    near_s, near = timed(
        lambda: index.near_boundary(lon, lat, assigned, threshold_m=10.0), near_cpu
    )

    # Agreement with the anchor (uniform random points essentially never lie on a boundary).
    anchor = np.full(args.points, -1, dtype=np.int64)
    anchor[joined.index.to_numpy()] = joined["index_right"].to_numpy()
    agree = int((anchor == assigned).sum())

    n = args.points
    med = statistics.median
    build, assign = med(ours_build), med(ours_assign)
    total = med(b + a for b, a in zip(ours_build, ours_assign, strict=True))
    sjoin, tree = med(sjoin_s), med(tree_s)
    cpu_total = med(b + a for b, a in zip(cpu["build"], cpu["assign"], strict=True))
    cpu_sjoin = med(cpu["sjoin"])
    inside = int((assigned >= 0).sum())
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "",
        f"## Point-to-cell assignment in memory ({stamp})",
        "",
        f"`python -m bench.bench_assign`: {n:,} uniform random points into {len(cells):,} "
        f"jittered 100 m cells (±{JITTER_M:.0f} m vertices, Haidian, WGS84), {inside:,} inside a "
        f"cell; median of {args.repeats} interleaved repeats. shapely {shapely.__version__}, "
        f"geopandas {geopandas.__version__}, numpy {np.__version__}. Machine load average "
        f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after (2 cores shared with other "
        "work: wall times are inflated under load, process CPU times much less).",
        "",
        "| method | wall s | CPU s | points/s (wall) | vs sjoin (wall) | vs sjoin (CPU) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| CellIndex build + assign | {total:.3f} | {cpu_total:.3f} | {n / total:,.0f} "
        f"| ×{sjoin / total:.2f} | ×{cpu_sjoin / cpu_total:.2f} |",
        f"| CellIndex assign only (index already built) | {assign:.3f} | {med(cpu['assign']):.3f} "
        f"| {n / assign:,.0f} | ×{sjoin / assign:.2f} | ×{cpu_sjoin / med(cpu['assign']):.2f} |",
        f"| CellIndex build only | {build:.3f} | {med(cpu['build']):.3f} | | | |",
        f'| geopandas.sjoin(predicate="within") | {sjoin:.3f} | {cpu_sjoin:.3f} | {n / sjoin:,.0f} '
        "| ×1.00 | ×1.00 |",
        f'| STRtree build + query(predicate="within") | {tree:.3f} | {med(cpu["tree"]):.3f} '
        f"| {n / tree:,.0f} | ×{sjoin / tree:.2f} | ×{cpu_sjoin / med(cpu['tree']):.2f} |",
        "",
        f"Same cell as sjoin for {agree:,} of {n:,} points. near_boundary (10 m, UTM 50N) on all "
        f"points: {near_s:.3f} s wall, {near_cpu[0]:.3f} s CPU, "
        f"{int(near.flagged.sum()):,} flagged. Targets on build + "
        f"assign, wall clock: ≥ 1,000,000 points/s "
        f"{'met' if n / total >= 1_000_000 else 'NOT met'} ({n / cpu_total:,.0f} points per CPU "
        f"second), ≥ 2× sjoin {'met' if sjoin / total >= 2 else 'NOT met'}.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_append:
        record_section(section)


if __name__ == "__main__":
    main()
