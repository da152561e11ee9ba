"""Load 100,000 building footprints: gis.loader.load_buildings vs GeoDataFrame.to_postgis.

Run: ``.venv/bin/python -m bench.bench_load [--buildings N] [--repeats N] [--no-append]``.

A throwaway PostGIS cluster (same mechanism as the tests) receives the same seeded synthetic
footprints (rotated rectangles 8-40 m by 8-20 m over a 10 km square in Haidian, Beijing, built in
UTM 50N and stored as WGS84 polygons) with the same attribute columns (source id, name like
"12号楼", use, levels, a small tags dict). Each repeat runs both loaders back to back, so they
see the same machine load; the median over repeats is reported.

- anchor: ``frame.to_postgis("bench_to_postgis", engine, if_exists="replace")`` (creates the
  table with its GiST index through GeoAlchemy2 and writes rows with geopandas' text COPY;
  ``tags`` serialised to JSON inside the timing, stored as JSONB).
- second anchor: ``to_postgis("building", if_exists="append")`` into the real ``building`` table
  (what loading our schema with geopandas costs: its unique, GiST and foreign-key indexes), with
  MultiPolygons and areas prepared outside the timing.
- ``load_buildings(connection, frame)`` inside ``engine.begin()`` (commit timed), a first
  import: area on the WGS84 ellipsoid, a binary COPY whose columns are built vectorised
  (EWKB, binary jsonb), rows in source_id order, copied straight into ``building`` with its
  GiST index, unique constraint and foreign keys dropped and built again after the copy (the
  partial community and grid indexes stay: the copy leaves those columns NULL).
  ``building`` is truncated before it (not timed).
- the same load again onto the full table, the re-import path: binary COPY into a temporary
  staging table, the staged rows equal to the stored ones deleted by one join, the rest
  (none here) upserted with ``INSERT ... ON CONFLICT DO UPDATE``.

Then the full ``wangge import osm`` of each area in ``data/*/raw`` (the CLI in a subprocess:
read, store, estimate stairwells, commit), plus its read and store parts timed in-process.
Peak memory is the maximum resident set size of this process (both loaders and the data).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyproj
import shapely
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import JSONB

from bench.common import record_section
from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate
from gis.loader import load_buildings, store_layers
from gis.osm import read_source

ROOT = Path(__file__).resolve().parent.parent
SEED = 20_261_122
CENTRE_LONLAT = (116.35, 39.95)  # Haidian, Beijing
UTM = "EPSG:32650"
SIDE_M = 10_000.0
USES = np.array(["residential", "apartments", "yes", "commercial", "school"])


def synthetic_frame(count: int, rng: np.random.Generator) -> Any:
    """Return a GeoDataFrame of ``count`` rectangle footprints (WGS84) with building columns."""
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    cx, cy = to_utm.transform(*CENTRE_LONLAT)
    centres = rng.uniform(-SIDE_M / 2, SIDE_M / 2, size=(count, 2)) + np.array([cx, cy])
    half = np.column_stack([rng.uniform(4, 20, count), rng.uniform(4, 10, count)])
    angle = rng.uniform(0, np.pi, count)
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    local = unit[None, :, :] * half[:, None, :]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = centres[:, 0:1] + local[..., 0] * cos - local[..., 1] * sin
    y = centres[:, 1:2] + local[..., 0] * sin + local[..., 1] * cos
    lon, lat = to_lonlat.transform(x, y)
    polygons = shapely.polygons(np.stack([lon, lat], axis=-1))
    uses = USES[rng.integers(0, len(USES), count)].tolist()
    levels = rng.integers(1, 30, count).tolist()
    numbers = rng.integers(1, 40, count)
    return gpd.GeoDataFrame(
        {
            "source_id": [f"w{i}" for i in range(count)],
            "name": [f"{n}号楼" for n in numbers],
            "number": [str(n) for n in numbers],
            "use": uses,
            "levels": levels,
            "repaired": False,
            "tags": [
                {"building": u, "building:levels": str(v)}
                for u, v in zip(uses, levels, strict=True)
            ],
        },
        geometry=polygons,
        crs="EPSG:4326",
    )


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a PostgreSQL backend process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(fn: Any, pid: int) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of this process plus the database backend, of ``fn()``.

    CPU seconds barely change with the load of a shared machine, where wall time does.
    """
    cpu = time.process_time() + backend_cpu_seconds(pid)
    wall = timed(fn)
    return wall, time.process_time() + backend_cpu_seconds(pid) - cpu


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def osm_imports(url: str) -> list[tuple[str, int, float, float, float, int]]:
    """Per area: name, buildings, read s, store s (in-process), CLI wall s, CLI exit code."""
    rows = []
    engine = make_engine(url, pool_size=1)
    wangge = Path(sys.executable).with_name("wangge")
    for path in sorted(ROOT.glob("data/*/raw/*.osm.pbf")):
        started = time.perf_counter()
        layers = read_source(path)
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as conn:
            store_layers(conn, layers, source="bench-osm")
        store_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM building WHERE source = 'bench-osm'"))
            conn.execute(text("DELETE FROM street_segment WHERE source = 'bench-osm'"))
            conn.execute(text("DELETE FROM facility WHERE source = 'bench-osm'"))
        started = time.perf_counter()
        done = subprocess.run(
            [str(wangge), "import", "osm", str(path)],
            env={**os.environ, "WANGGE_DATABASE_URL": url},
            capture_output=True,
            check=False,
        )
        cli_s = time.perf_counter() - started
        area = path.parent.parent.name
        rows.append((area, len(layers.buildings), read_s, store_s, cli_s, done.returncode))
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    load_start = os.getloadavg()[0]

    home = Path(tempfile.mkdtemp(prefix="wangge-bench-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    anchor: list[tuple[float, float]] = []
    appended: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    again: list[tuple[float, float]] = []
    try:
        cluster.start()
        url = cluster.url()
        migrate(url)
        # One pooled connection, so every statement runs in the same (measured) backend.
        engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0)
        with engine.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        frame = synthetic_frame(args.buildings, rng)
        rss_data = peak_rss_mib()

        def to_postgis() -> None:
            # geopandas writes through COPY text, so tags go as JSON text (serialising timed).
            plain = frame.assign(tags=[json.dumps(t, ensure_ascii=False) for t in frame["tags"]])
            plain.to_postgis(
                "bench_to_postgis", engine, if_exists="replace", index=False, dtype={"tags": JSONB}
            )

        # The same rows as the building table wants them (MultiPolygon, area): prepared
        # outside the timing, which favours the anchor.
        append_frame = frame.assign(
            source="bench-append",
            area_m2=frame.to_crs(UTM).area,
            tags=[json.dumps(t, ensure_ascii=False) for t in frame["tags"]],
            footprint=gpd.GeoSeries(
                shapely.multipolygons(np.asarray(frame.geometry.array)[:, None]), crs=4326
            ),
        )
        append_frame = append_frame.drop(columns="geometry").set_geometry("footprint")

        def to_postgis_append() -> None:
            append_frame.to_postgis(
                "building", engine, if_exists="append", index=False, dtype={"tags": JSONB}
            )

        def ours_load() -> None:
            with engine.begin() as conn:
                result = load_buildings(conn, frame, source="bench")
            assert result.inserted == args.buildings, result

        def ours_again() -> None:
            with engine.begin() as conn:
                result = load_buildings(conn, frame, source="bench")
            assert result.unchanged == args.buildings, result

        for _ in range(args.repeats):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE building CASCADE"))
            anchor.append(measured(to_postgis, pid))
            appended.append(measured(to_postgis_append, pid))
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE building CASCADE"))
            ours.append(measured(ours_load, pid))
            again.append(measured(ours_again, pid))
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*), sum(area_m2) FROM building")).one()
            anchor_rows = conn.execute(text("SELECT count(*) FROM bench_to_postgis")).scalar_one()
        assert stored[0] == anchor_rows == args.buildings
        rss_peak = peak_rss_mib()
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE building CASCADE"))
        engine.dispose()
        areas = osm_imports(url)
    finally:
        cluster.destroy()

    n = args.buildings
    runs = {
        "`GeoDataFrame.to_postgis` (new table + GiST index)": anchor,
        '`to_postgis("building", if_exists="append")` into the real table (unique, GiST and '
        "foreign-key indexes; MultiPolygon + area prepared untimed)": appended,
        "`gis.loader.load_buildings`, first import (area on the ellipsoid, vectorised binary COPY "
        "straight into `building`, indexes and constraints built after, commit)": ours,
        f"`load_buildings` again on the full table (staging, unchanged rows dropped by one join, "
        f"upsert of the rest; all {n:,} unchanged)": again,
    }
    base_wall = statistics.median(w for w, _ in anchor)
    base_min = min(w for w, _ in anchor)
    base_cpu = statistics.median(c for _, c in anchor)
    rows = []
    for label, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        best = min(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        rows.append(
            f"| {label} | {wall:.2f} | ×{base_wall / wall:.2f} | {best:.2f} | "
            f"×{base_min / best:.2f} | {cpu:.2f} | ×{base_cpu / cpu:.2f} |"
        )
    ours_wall = statistics.median(w for w, _ in ours)
    ours_cpu = statistics.median(c for _, c in ours)
    append_wall = statistics.median(w for w, _ in appended)
    ratio = base_wall / ours_wall
    lines = [
        "",
        f"## Loading {n:,} building footprints into PostGIS (`bench.bench_load`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, embedded PostgreSQL/PostGIS "
        f"cluster, {n:,} seeded synthetic rectangles over a 10 km square (Haidian) with name, "
        f"number, use, levels and a tags dict, {args.repeats} interleaved repeats; load average "
        f"at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} on 2 cores shared with other "
        f"work, so wall times vary run to run: CPU seconds (this process + its PostgreSQL "
        f"backend, parallel index-build workers not counted) vary much less. Versions: geopandas "
        f"{gpd.__version__}, shapely {shapely.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg {psycopg.__version__}.",
        "",
        "| loader | median wall s | speed-up | best wall s | speed-up | median CPU s | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "All runs (wall s / CPU s): "
        + "; ".join(
            f"{label.split('`')[1]}: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in values)
            for label, values in runs.items()
        )
        + ".",
        "",
        f"Peak RSS of the benchmark process {rss_peak:,.0f} MiB (after building the data "
        f"{rss_data:,.0f} MiB). Targets: ≥ 3× to_postgis "
        f"{'met' if ratio >= 3 else 'NOT met'} on median wall time (×{ratio:.2f}; CPU "
        f"×{base_cpu / ours_cpu:.2f}); against to_postgis appending into the same table "
        f"×{append_wall / ours_wall:.2f}; peak memory ≤ 1 GiB "
        f"{'met' if rss_peak <= 1024 else 'NOT met'}.",
        "",
        "Full OSM import of each area (`wangge import osm FILE` in a subprocess: read, store in "
        "one transaction, estimate stairwells, commit; process start-up included), and its read "
        "and store parts timed in-process:",
        "",
        "| area | buildings | read s | store s | CLI wall s | exit |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {area} | {count:,} | {read_s:.2f} | {store_s:.2f} | {cli_s:.2f} | {code} |"
            for area, count, read_s, store_s, cli_s, code in areas
        ),
        "",
        "Exit 1 means some features were rejected and reported (Helsinki: street ways with fewer "
        "than two of their nodes inside the bbox extract); the rest is stored.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_append:
        record_section(section)


if __name__ == "__main__":
    main()
