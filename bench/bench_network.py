"""Walking coverage of the 15-minute service circle against networkx, on seeded synthetic areas.

Run: ``.venv/bin/python -m bench.bench_network [--city] [--append]``

- subdistrict: 5,000 stairwells, ~20,000 network nodes, 12 facility types. Full coverage
  (snapping + nearest distance per type + counts within the 9 level distances) with
  gis.circles.coverage, then the same question answered by networkx (multi-source Dijkstra
  per type for the nearest, a cutoff Dijkstra per facility for the counts) on the same graph
  with the same snapped points inserted; results are checked equal.
- city (``--city``): 1,000,000 stairwells, ~500,000 nodes, 12 types; wall time and peak
  memory (ru_maxrss of the process).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from collections import defaultdict

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import scipy
import shapely

from bench.common import record_section
from gis.circles import CircleSettings, coverage, thresholds
from gis.network import WalkNetwork

SEED = 20_261_122
CRS = "EPSG:32650"
X0, Y0 = 440_000.0, 4_420_000.0
# Facilities per type in a subdistrict (~17 km²): few nursing homes, many shops.
TYPE_COUNTS = (3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 40, 60)


def synthetic_area(
    side: int, spacing: float, n_stairwells: int, facility_scale: float, seed: int = SEED
) -> tuple[gpd.GeoDataFrame, gpd.GeoSeries, gpd.GeoDataFrame]:
    """A jittered street grid with 12% of its blocks' sides missing, homes and facilities."""
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    xy = np.stack([ii.ravel() * spacing, jj.ravel() * spacing], axis=1)
    xy += rng.uniform(-0.2 * spacing, 0.2 * spacing, size=xy.shape)
    node = np.arange(side * side).reshape(side, side)
    pairs = np.concatenate(
        [
            np.stack([node[:-1, :].ravel(), node[1:, :].ravel()], axis=1),
            np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1),
        ]
    )
    pairs = pairs[rng.random(pairs.shape[0]) > 0.12]
    # Half of the streets bend once (an intermediate vertex that is not an intersection).
    mid = (xy[pairs[:, 0]] + xy[pairs[:, 1]]) / 2 + rng.normal(
        0, 0.1 * spacing, (pairs.shape[0], 2)
    )
    bend = rng.random(pairs.shape[0]) < 0.5
    coords = np.stack([xy[pairs[:, 0]], mid, xy[pairs[:, 1]]], axis=1)
    straight = shapely.linestrings(coords[~bend][:, [0, 2]] + [X0, Y0])
    bent = shapely.linestrings(coords[bend] + [X0, Y0])
    streets = gpd.GeoDataFrame(
        {"osm_id": np.arange(pairs.shape[0]), "highway": "residential"},
        geometry=np.r_[straight, bent],
        crs=CRS,
    )
    extent = (side - 1) * spacing
    homes = gpd.GeoSeries(
        shapely.points(rng.uniform(0, extent, (n_stairwells, 2)) + np.array([X0, Y0])), crs=CRS
    )
    counts = [max(1, round(c * facility_scale)) for c in TYPE_COUNTS]
    kinds = np.repeat([f"type_{k:02d}" for k in range(len(counts))], counts)
    facilities = gpd.GeoDataFrame(
        {"type": kinds},
        geometry=shapely.points(rng.uniform(0, extent, (kinds.shape[0], 2)) + np.array([X0, Y0])),
        crs=CRS,
    )
    return streets, homes, facilities


def networkx_coverage(
    net: WalkNetwork, homes: gpd.GeoSeries, facilities: gpd.GeoDataFrame, settings: CircleSettings
) -> tuple[nx.Graph, dict[str, float], pd.DataFrame]:
    """The same question with networkx on the same graph and the same snapped points."""
    t0 = time.perf_counter()
    o = net.snap(homes).frame
    f = net.snap(facilities).frame
    g = nx.Graph()
    for u, v, w in zip(net.edge_u, net.edge_v, net.edge_length, strict=True):
        if u != v and (not g.has_edge(u, v) or g[u][v]["weight"] > w):
            g.add_edge(int(u), int(v), weight=float(w))
    on_edge: dict[int, list[tuple[float, object]]] = defaultdict(list)
    for i, (e, t, s) in enumerate(zip(o["edge"], o["t"], o["snap_m"], strict=True)):
        on_edge[int(e)].append((float(t), ("o", i)))
        g.add_edge(("O", i), ("o", i), weight=max(float(s), 1e-9))
    for i, (e, t, s) in enumerate(zip(f["edge"], f["t"], f["snap_m"], strict=True)):
        on_edge[int(e)].append((float(t), ("f", i)))
        g.add_edge(("F", i), ("f", i), weight=max(float(s), 1e-9))
    for e, pts in on_edge.items():
        u, v, length = int(net.edge_u[e]), int(net.edge_v[e]), float(net.edge_length[e])
        chain = [(0.0, u), *sorted(pts, key=lambda p: p[0]), (length, v)]
        for (s0, a), (s1, b) in itertools.pairwise(chain):
            w = max(s1 - s0, 1e-9)
            if a != b and (not g.has_edge(a, b) or g[a][b]["weight"] > w):
                g.add_edge(a, b, weight=w)
    build = time.perf_counter() - t0
    levels = thresholds(settings=settings)
    limit = max(t.distance_m for t in levels)
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    kinds = facilities["type"].to_numpy()
    for kind in sorted(set(kinds)):
        members = np.flatnonzero(kinds == kind)
        near = nx.multi_source_dijkstra_path_length(
            g, {("F", int(i)) for i in members}, cutoff=limit, weight="weight"
        )
        count = np.zeros((len(homes), len(levels)), dtype=np.int64)
        for member in members:
            reach = nx.single_source_dijkstra_path_length(g, ("F", int(member)), cutoff=limit)
            for node, d in reach.items():
                if isinstance(node, tuple) and node[0] == "O":
                    count[node[1]] += [d <= t.distance_m for t in levels]
        dist = np.array([near.get(("O", i), np.nan) for i in range(len(homes))])
        frame = pd.DataFrame({"origin": homes.index, "type": kind, "distance_m": dist})
        for k, t in enumerate(levels):
            frame[t.column] = count[:, k]
        rows.append(frame)
    query = time.perf_counter() - t0
    query_cpu = time.process_time() - c0
    times = {"build_s": build, "query_s": query, "query_cpu_s": query_cpu}
    return g, times, pd.concat(rows, ignore_index=True)


def subdistrict(settings: CircleSettings) -> list[str]:
    streets, homes, facilities = synthetic_area(141, 30.0, 5_000, 1.0)
    t0 = time.perf_counter()
    net = WalkNetwork.from_lines(streets, crs=CRS)
    build = time.perf_counter() - t0
    coverage(homes.iloc[:10], facilities, net, settings=settings)  # warm-up (imports, caches)
    runs, cpu = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        table = coverage(homes, facilities, net, settings=settings)
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ours, ours_cpu = min(runs), min(cpu)
    _, nxt, ref = networkx_coverage(net, homes, facilities, settings)
    cols = [t.column for t in thresholds(settings=settings)]
    a = table.sort_values(["type", "origin"]).reset_index(drop=True)
    b = ref.sort_values(["type", "origin"]).reset_index(drop=True)
    both = a["distance_m"].notna() & b["distance_m"].notna()
    max_diff = float(np.abs(a["distance_m"][both] - b["distance_m"][both]).max())
    same_missing = bool((a["distance_m"].isna() == b["distance_m"].isna()).all())
    counts_equal = float((a[cols].to_numpy() == b[cols].to_numpy()).mean())
    lines = [
        "",
        "## Walking coverage, subdistrict (bench/bench_network.py)",
        "",
        f"Seeded synthetic subdistrict: {net.n_nodes:,} nodes, {net.n_edges:,} edges, "
        f"{len(homes):,} stairwells, {len(facilities):,} facilities in 12 types, "
        f"{len(cols)} level distances (standard 300/500/1000 m, adult 4.8 km/h, elderly 3.9 km/h).",
        "Question: per stairwell and type, walking distance to the nearest facility and the "
        "count within each level distance.",
        "",
        "| step | wall s | CPU s of the process |",
        "|---|---|---|",
        f"| network build from {len(streets):,} lines (wangge) | {build:.2f} | |",
        f"| full coverage, wangge (snap + Dijkstra, best of 3) | {ours:.2f} | {ours_cpu:.2f} |",
        "| same question, networkx (queries only; graph building "
        f"{nxt['build_s']:.2f} s not counted) | {nxt['query_s']:.2f} | {nxt['query_cpu_s']:.2f} |",
        "",
        f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared).",
        "",
        f"Ratio networkx / wangge: **{nxt['query_s'] / ours:.0f}x** wall, "
        f"{nxt['query_cpu_s'] / ours_cpu:.0f}x CPU. Results agree: max distance "
        f"difference {max_diff:.2e} m, same missing distances: {same_missing}, counts equal in "
        f"{counts_equal:.4%} of cells.",
    ]
    return lines


def city(settings: CircleSettings) -> list[str]:
    t0, c0 = time.perf_counter(), time.process_time()
    streets, homes, facilities = synthetic_area(708, 60.0, 1_000_000, 100.0, seed=SEED + 1)
    gen = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    net = WalkNetwork.from_lines(streets, crs=CRS)
    build = (time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    table = coverage(homes, facilities, net, settings=settings)
    cover = (time.perf_counter() - t0, time.process_time() - c0)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return [
        "",
        "## Walking coverage, city (bench/bench_network.py --city)",
        "",
        f"Seeded synthetic city: {net.n_nodes:,} nodes, {net.n_edges:,} edges, {len(homes):,} "
        f"stairwells, {len(facilities):,} facilities in 12 types, {len(table):,} result rows "
        f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).",
        "",
        "| step | wall s | CPU s of the process |",
        "|---|---|---|",
        f"| generate data | {gen[0]:.1f} | {gen[1]:.1f} |",
        f"| network build from {len(streets):,} lines | {build[0]:.1f} | {build[1]:.1f} |",
        f"| full coverage (snap + nearest + counts) | {cover[0]:.1f} | {cover[1]:.1f} |",
        "",
        f"Peak memory of the process (ru_maxrss, includes the generated data): {peak_gb:.2f} GB.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--city", action="store_true", help="also run the 1M-stairwell city")
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    settings = CircleSettings()
    lines = subdistrict(settings)
    if args.city:
        lines += city(settings)
    lines.append(
        f"\nVersions: numpy {np.__version__}, scipy {scipy.__version__}, shapely "
        f"{shapely.__version__}, networkx {nx.__version__}, geopandas {gpd.__version__}."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        record_section(text)


if __name__ == "__main__":
    main()
