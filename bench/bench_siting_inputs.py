"""Demand × candidate walking-distance matrix for siting, against networkx on the same graph.

Run: ``.venv/bin/python -m bench.bench_siting_inputs [--append]``

A seeded synthetic street grid (bench.bench_network.synthetic_area: jittered, 12 % of block
sides missing, half the streets bent), 5,000 stairwells and 1,000 candidate sites placed at
random. Ours: :func:`gis.siting_inputs.walking_costs` (snapping, bounded Dijkstra from the two
ends of each site's edge, batched; sparse within the limit). Anchor: networkx with the same
snapped points inserted into the graph (as bench.bench_network does) and one cutoff Dijkstra
per candidate. Matrices are checked equal; wall and CPU seconds, ratios in one run.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time
from collections import defaultdict
from datetime import UTC, datetime

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy.sparse as sp
import shapely

from bench.bench_network import SEED, synthetic_area
from bench.common import machine_header, record_section
from gis.network import WalkNetwork
from gis.siting_inputs import walking_costs


def networkx_matrix(
    net: WalkNetwork, demand: gpd.GeoSeries, sites: gpd.GeoSeries, limit: float
) -> tuple[sp.csr_array, float, float]:
    """Walking metres by networkx: snapped points inserted on their edges, cutoff Dijkstra."""
    o = net.snap(demand).frame
    f = net.snap(sites).frame
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
    t0, c0 = time.perf_counter(), time.process_time()
    rows, cols, vals = [], [], []
    for j in range(len(sites)):
        reach = nx.single_source_dijkstra_path_length(g, ("F", j), cutoff=limit)
        for node, d in reach.items():
            if isinstance(node, tuple) and node[0] == "O":
                rows.append(node[1])
                cols.append(j)
                vals.append(d)
    matrix = sp.csr_array((vals, (rows, cols)), shape=(len(demand), len(sites)))
    return matrix, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    """Run the comparison and print (or append) the results table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--append", action="store_true", help="append to bench/RESULTS.md")
    parser.add_argument("--stairwells", type=int, default=5_000)
    parser.add_argument("--candidates", type=int, default=1_000)
    args = parser.parse_args()
    streets, homes, _ = synthetic_area(60, 100.0, args.stairwells, 1.0)
    rng = np.random.default_rng(SEED + 1)
    extent = 59 * 100.0
    origin = np.array(streets.total_bounds[:2])
    sites = gpd.GeoSeries(
        shapely.points(rng.uniform(0, extent, (args.candidates, 2)) + origin), crs=homes.crs
    )
    net = WalkNetwork.from_lines(streets)
    lines = [
        "",
        f"## Siting: walking-distance matrix, demand × candidates "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`python -m bench.bench_siting_inputs`: synthetic grid of {net.n_nodes:,} nodes / "
        f"{net.n_edges:,} edges (bench_network.synthetic_area, 5.9 km square), "
        f"{len(homes):,} stairwells × {len(sites):,} candidates at random. Ours includes "
        "snapping both layers; networkx times exclude building its graph with the snapped "
        "points inserted. " + machine_header().replace("# Benchmark results", "").strip(),
        "",
        "| limit m | stored pairs | ours wall s | ours CPU s | networkx wall s | "
        "networkx CPU s | CPU ratio | equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for limit in (325.0, 1000.0):
        t0, c0 = time.perf_counter(), time.process_time()
        ours = walking_costs(net, homes, sites, limit_m=limit)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        anchor, a_wall, a_cpu = networkx_matrix(net, homes, sites, limit)
        same = ours.nnz == anchor.nnz and bool(
            np.allclose((ours - anchor).toarray(), 0.0, atol=1e-6)
        )
        lines.append(
            f"| {limit:g} | {ours.nnz:,} | {wall:.2f} | {cpu:.2f} | {a_wall:.2f} | "
            f"{a_cpu:.2f} | ×{a_cpu / cpu:.1f} | {same} |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak memory of the process (both methods): {peak:.0f} MB.", ""]
    text = "\n".join(lines)
    print(text)
    if args.append:
        record_section(text)


if __name__ == "__main__":
    main()
