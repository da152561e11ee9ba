"""Grid benchmarks: validation in PostGIS vs a per-cell shapely loop; generation of a subdistrict.

Run: ``.venv/bin/python -m bench.bench_grids`` (uses ``WANGGE_DATABASE_URL`` when set, otherwise a
throwaway embedded cluster).

1. Validate 10,000 cells (100 communities of 10 × 10 cells of 100 m, Haidian) with 100,000
   buildings (seeded, 10 per cell, 2 % placed across a cell boundary) and one stairwell each:
   ``validate_grids`` (set-based SQL) against a straightforward Python loop over cells with shapely
   (STRtree candidates, then per-pair predicates and areas in UTM) doing the same checks
   (overlaps, gaps, outside, cut and unplaced buildings, empty cells). Target ≤ 5 s.
2. Generate service cells (400 households) for a seeded synthetic subdistrict of 5,000 buildings
   (4 communities), stored with codes and versions. Target ≤ 10 s.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Connection, text

from bench.common import record_section
from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate
from gis.grids.generate import communities_of, generate_grids
from gis.grids.synthetic import ORIGIN, synthetic_subdistrict
from gis.grids.validate import validate_grids

SIDE = 100  # cells per side: 10,000 cells
CELL_M = 100.0
PER_CELL = 10
CROSSING = 0.02
SEED = 20261122


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _backend_cpu(conn: Connection) -> float:
    """CPU seconds used so far by this connection's server process (local server only)."""
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_layer(conn: Connection) -> None:
    """Insert 100 communities, 10,000 cells, 100,000 buildings with stairwells (seeded)."""
    ox, oy = ORIGIN
    conn.execute(text("SELECT setseed(0.42)"))
    conn.execute(text("INSERT INTO subdistrict (code, name) VALUES ('110108950', 'bench')"))
    conn.execute(
        text(
            "INSERT INTO community (code, name, subdistrict_id, geom)"
            " SELECT '110108950' || lpad((i * 10 + j + 1)::text, 3, '0'), 'c', s.id,"
            " ST_Multi(ST_Transform(ST_MakeEnvelope(:ox + j * 1000, :oy + i * 1000,"
            " :ox + (j + 1) * 1000, :oy + (i + 1) * 1000, 32650), 4326))"
            " FROM generate_series(0, 9) i, generate_series(0, 9) j, subdistrict s"
        ),
        {"ox": ox, "oy": oy},
    )
    conn.execute(
        text(
            "INSERT INTO grid (code, kind, community_id, geom, source)"
            " SELECT c.code || lpad(((9 - (i % 10)) * 10 + (j % 10) + 1)::text, 3, '0'),"
            " 'service', c.id, ST_Multi(ST_Transform(ST_MakeEnvelope(:ox + j * :m,"
            " :oy + i * :m, :ox + (j + 1) * :m, :oy + (i + 1) * :m, 32650), 4326)), 'bench'"
            " FROM generate_series(0, :n - 1) i CROSS JOIN generate_series(0, :n - 1) j"
            " JOIN community c"
            " ON c.code = '110108950' || lpad(((i / 10) * 10 + j / 10 + 1)::text, 3, '0')"
        ),
        {"ox": ox, "oy": oy, "m": CELL_M, "n": SIDE},
    )
    # Buildings 20 × 12 m; most well inside a cell, CROSSING of them straddling the east edge.
    conn.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2)"
            " SELECT 'bench', k::text, g, ST_Area(g::geography) FROM ("
            "  SELECT k, ST_Multi(ST_Transform(ST_MakeEnvelope(x, y, x + 20, y + 12, 32650), 4326))"
            "  AS g FROM (SELECT k, :ox + (k / :per % :n) * :m + CASE WHEN random() < :cross"
            "   THEN :m - 10 ELSE 5 + random() * 70 END AS x,"
            "   :oy + (k / :per / :n) * :m + 5 + random() * 80 AS y"
            "   FROM generate_series(0, CAST(:last AS integer)) k) p) b"
        ),
        {
            "ox": ox,
            "oy": oy,
            "m": CELL_M,
            "n": SIDE,
            "per": PER_CELL,
            "cross": CROSSING,
            "last": SIDE * SIDE * PER_CELL - 1,
        },
    )
    conn.execute(
        text(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, elderly,"
            " estimated, source) SELECT id, 1, ST_PointOnSurface(footprint),"
            " 20 + (id % 30), 50, 9, true, 'bench' FROM building"
        )
    )
    conn.execute(text("ANALYZE"))


def shapely_loop(conn: Connection, tolerance_m2: float = 1.0) -> dict[str, int]:
    """The anchor: the same checks as a plain per-cell Python loop with shapely (UTM metres)."""
    from gis.crs import project_geometries

    def load(sql: str) -> tuple[list[Any], np.ndarray]:
        rows = conn.execute(text(sql)).all()
        geoms = shapely.from_wkb(np.array([r[-1] for r in rows], dtype=object))
        return [r[:-1] for r in rows], project_geometries(geoms, source=4326, target=32650)

    cell_rows, cells = load(
        "SELECT id, code, community_id, ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL"
    )
    comm_rows, comms = load("SELECT id, ST_AsBinary(geom) FROM community")
    _, blds = load("SELECT id, ST_AsBinary(footprint) FROM building")
    comm_of = {r[0]: i for i, r in enumerate(comm_rows)}
    cell_tree = shapely.STRtree(cells)
    bld_tree = shapely.STRtree(blds)
    counts = dict.fromkeys(("invalid", "overlap", "outside", "gap", "cut", "unplaced", "empty"), 0)
    home = np.full(len(blds), -1)
    parts_in = np.zeros(len(blds), dtype=int)
    for i, cell in enumerate(cells):
        if not cell.is_valid:
            counts["invalid"] += 1
        for j in cell_tree.query(cell):
            if j > i and cell.intersection(cells[j]).area > tolerance_m2:
                counts["overlap"] += 1
        community = comms[comm_of[cell_rows[i][2]]]
        if cell.difference(community).area > tolerance_m2:
            counts["outside"] += 1
        for b in bld_tree.query(cell):
            footprint = blds[b]
            if cell.covers(footprint):
                home[b] = i
                parts_in[b] += 1
            elif cell.intersection(footprint).area > tolerance_m2:
                parts_in[b] += 1
                if home[b] < 0:
                    home[b] = i
    for k, community in enumerate(comms):
        members = [i for i, r in enumerate(cell_rows) if r[2] == comm_rows[k][0]]
        rest = community.difference(shapely.union_all(cells[members]))
        counts["gap"] += sum(1 for p in shapely.get_parts(rest) if p.area > tolerance_m2)
    counts["cut"] = int((parts_in > 1).sum())
    counts["unplaced"] = int((home < 0).sum())
    counts["empty"] = len(cells) - len(set(home[home >= 0].tolist()))
    return counts


def main() -> None:
    url = os.environ.get("WANGGE_DATABASE_URL")
    cluster = None
    if not url:
        home = Path(tempfile.mkdtemp(prefix="wangge-bench-grids-"))
        home.chmod(0o755)
        cluster = EmbeddedCluster(home)
        cluster.start()
        url = cluster.url()
    try:
        migrate(url)
        engine = make_engine(url, pool_size=1)
        load_before = os.getloadavg()[0]
        with engine.connect() as conn:
            tx = conn.begin()
            t = time.perf_counter()
            build_layer(conn)
            build_s = time.perf_counter() - t
            runs = []
            for _ in range(3):
                t, c, s = time.perf_counter(), _cpu(), _backend_cpu(conn)
                report = validate_grids(conn, kind="service")
                runs.append((time.perf_counter() - t, _cpu() - c, _backend_cpu(conn) - s))
            sql_s, sql_cpu, server_cpu = sorted(runs)[1]
            t, c = time.perf_counter(), _cpu()
            loop = shapely_loop(conn)
            loop_s, loop_cpu = time.perf_counter() - t, _cpu() - c
            tx.rollback()
        counts = report.counts()
        with engine.connect() as conn:
            tx = conn.begin()
            area = synthetic_subdistrict(conn, buildings=5_000, seed=SEED)
            ids = communities_of(conn, subdistrict_code=area.subdistrict_code)
            t = time.perf_counter()
            result = generate_grids(conn, community_ids=ids, kind="service", target_households=400)
            gen_s = time.perf_counter() - t
            t = time.perf_counter()
            unit = generate_grids(conn, community_ids=ids, kind="unit", target_area_m2=10_000)
            unit_s = time.perf_counter() - t
            clean = (
                validate_grids(conn, kind="service").clean
                and validate_grids(conn, kind="unit").clean
            )
            tx.rollback()
        engine.dispose()
        load_after = os.getloadavg()[0]
    finally:
        if cluster is not None:
            cluster.destroy()
    summary = result.summary()
    lines = [
        "",
        f"## Grid validation and generation ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "`python -m bench.bench_grids`: seeded synthetic layers in a throwaway PostGIS "
        f"(PostGIS via the embedded cluster); shapely {shapely.__version__}, "
        f"numpy {np.__version__}, "
        f"Python {platform.python_version()}. Load average {load_before:.1f} before / "
        f"{load_after:.1f} after (2 cores shared).",
        "",
        f"Validate {report.cells:,} service cells (100 communities) × {report.buildings:,} "
        f"buildings (one stairwell each, {CROSSING:.0%} placed across a cell edge); layer "
        f"built in {build_s:.1f} s.",
        "",
        "| method | wall s | CPU s | vs loop (wall) | vs loop (CPU) |",
        "|---|---:|---:|---:|---:|",
        f"| `validate_grids` (set-based PostGIS, all checks + household balance; median of 3) "
        f"| {sql_s:.2f} | {server_cpu:.2f} server + {sql_cpu:.2f} client | ×{loop_s / sql_s:.1f} "
        f"| ×{loop_cpu / (server_cpu + sql_cpu):.1f} |",
        "| per-cell Python loop with shapely (same checks; load + project included) "
        f"| {loop_s:.2f} "
        f"| {loop_cpu:.2f} + server for the loads | ×1.0 | ×1.0 |",
        "",
        f"Both agree: cut buildings PostGIS {counts['cut_building']:,} / loop {loop['cut']:,}; "
        f"overlaps {counts['overlap']} / {loop['overlap']}; gaps {counts['gap']} / {loop['gap']}; "
        f"unplaced {counts['building_in_no_cell']} / {loop['unplaced']}; empty "
        f"{counts['empty_cell']} / {loop['empty']}. Target ≤ 5 s: "
        f"{'met' if sql_s <= 5 else 'NOT met'} on wall clock under this load "
        f"({'met' if server_cpu + sql_cpu <= 5 else 'NOT met'} in CPU seconds).",
        "",
        f"Generate service cells (400 households ± 25 %) for a seeded synthetic subdistrict of "
        f"{area.buildings:,} buildings in {len(ids)} communities: {gen_s:.2f} s wall for "
        f"{summary['cells']} cells (stored, codes assigned); households per cell min "
        f"{summary['households']['min']}, median {summary['households']['median']:.0f}, max "
        f"{summary['households']['max']}; Polsby-Popper median "
        f"{summary['compactness']['median']:.2f}, min {summary['compactness']['min']:.2f}. "
        f"Unit cells (10,000 m²): {unit_s:.2f} s for {len(unit.cells)} cells. Both layers "
        f"validate {'clean' if clean else 'WITH DEFECTS'}. Target ≤ 10 s: "
        f"{'met' if gen_s <= 10 else 'NOT met'}.",
        "",
    ]
    text_out = "\n".join(lines)
    print(text_out)
    if os.environ.get("BENCH_NO_RESULTS"):
        return
    record_section(text_out)


if __name__ == "__main__":
    main()
