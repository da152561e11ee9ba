"""GET /layers/buildings for a 500 m bbox over 100,000 buildings, against the bare PostGIS query.

Run: ``.venv/bin/python -m bench.bench_layers [--buildings N] [--requests N]``.

A throwaway PostGIS cluster (same mechanism as the tests) receives seeded synthetic building
footprints: rotated rectangles 10-40 m by 8-20 m, uniformly spread over a 10 km x 10 km square
in Beijing (1,000 buildings per km², four times the density of the OSM Nanjing Xinjiekou extract),
drawn in metres in UTM 50N and stored in WGS84. A real uvicorn server (one worker, the app of
``wangge serve``) answers ``GET /layers/buildings?bbox=…`` over keep-alive HTTP (httpx). For each
random 500 m x 500 m bbox, the same FeatureCollection query is also timed in-process through
SQLAlchemy/psycopg (``gis.features.features_geojson``: the bare PostGIS answer the route returns),
interleaved request by request so both see the same machine load.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pyproj
import shapely
import sqlalchemy

from bench.common import record_section
from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate
from gis.features import BBox, features_geojson, parse_bbox
from layers import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
SEED = 20_261_122
CENTRE_LONLAT = (116.35, 39.95)  # Haidian, Beijing
UTM = "EPSG:32650"
SIDE_M = 10_000.0
BBOX_M = 500.0


def synthetic_buildings(count: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``count`` MultiPolygon footprints (shapely array, lon/lat) around CENTRE_LONLAT."""
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    cx, cy = to_utm.transform(*CENTRE_LONLAT)
    centres = rng.uniform(-SIDE_M / 2, SIDE_M / 2, size=(count, 2)) + np.array([cx, cy])
    half = np.column_stack([rng.uniform(5, 20, count), rng.uniform(4, 10, count)])
    angle = rng.uniform(0, np.pi, count)
    unit = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    local = unit[None, :, :] * half[:, None, :]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = centres[:, 0:1] + local[..., 0] * cos - local[..., 1] * sin
    y = centres[:, 1:2] + local[..., 0] * sin + local[..., 1] * cos
    lon, lat = to_lonlat.transform(x, y)
    rings = np.stack([lon, lat], axis=-1)
    polygons = np.asarray(shapely.polygons(rings))
    return np.asarray(shapely.multipolygons(polygons[:, None]))


def load_buildings(url: str, footprints: np.ndarray, rng: np.random.Generator) -> float:
    """COPY the footprints into ``building``; return the seconds taken (with ANALYZE)."""
    ewkb = shapely.to_wkb(shapely.set_srid(footprints, 4326), hex=True, include_srid=True)
    levels = rng.integers(2, 30, len(footprints))
    area = rng.uniform(80, 800, len(footprints))
    dsn = sqlalchemy.make_url(url).set(drivername="postgresql").render_as_string(False)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy(
            "COPY building (source, source_id, name, use, levels, footprint, area_m2) FROM STDIN"
        ) as copy:
            for i, geom in enumerate(ewkb):
                copy.write_row(
                    (
                        "bench",
                        str(i),
                        f"{i % 40 + 1}号楼",
                        "residential",
                        int(levels[i]),
                        geom,
                        float(area[i]),
                    )
                )
        conn.commit()
        conn.execute("ANALYZE building")
    return time.perf_counter() - started


def random_bboxes(count: int, rng: np.random.Generator) -> list[BBox]:
    """Return ``count`` 500 m x 500 m boxes (as lon/lat envelopes) inside the building square."""
    to_utm = pyproj.Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    cx, cy = to_utm.transform(*CENTRE_LONLAT)
    reach = SIDE_M / 2 - BBOX_M / 2
    centres = rng.uniform(-reach, reach, size=(count, 2)) + np.array([cx, cy])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * BBOX_M / 2
    boxes = []
    for x, y in centres:
        lon, lat = to_lonlat.transform(x + corners[:, 0], y + corners[:, 1])
        boxes.append(BBox(float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())))
    return boxes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    # The figure is the layer query; the bearer-token lookup of access control is left out.
    env = {**os.environ, "WANGGE_DATABASE_URL": url, "WANGGE_AUTH_REQUIRED": "false"}
    command = [
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    msg = "uvicorn did not become healthy within 30 s"
    raise RuntimeError(msg)


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """Minimum, p50 and p95 in milliseconds (the minimum shows the cost without contention)."""
    values = np.asarray(samples) * 1000
    return float(values.min()), float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    load_before = os.getloadavg()[0]

    home = Path(tempfile.mkdtemp(prefix="wangge-bench-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    server: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        url = cluster.url()
        migrate(url)
        footprints = synthetic_buildings(args.buildings, rng)
        load_s = load_buildings(url, footprints, rng)
        print(f"loaded {args.buildings:,} buildings in {load_s:.2f} s")
        boxes = random_bboxes(args.requests + args.warmup, rng)

        port = free_port()
        server = start_server(url, port)
        engine = make_engine(url, pool_size=1)
        source = CATALOGUE["buildings"].source
        limit = 10_000
        bare: list[float] = []
        http: list[float] = []
        features: list[int] = []
        sizes: list[int] = []
        with engine.connect() as conn, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for i, exact in enumerate(boxes):
                # Both sides query the same box, as the client writes it (7 decimals).
                text = ",".join(f"{v:.7f}" for v in exact)
                box = parse_bbox(text)
                started = time.perf_counter()
                body = features_geojson(conn, source, bbox=box, limit=limit)
                bare_s = time.perf_counter() - started
                params = {"bbox": text, "limit": str(limit)}
                started = time.perf_counter()
                response = client.get("/layers/buildings", params=params)
                http_s = time.perf_counter() - started
                response.raise_for_status()
                if i < args.warmup:
                    continue
                if response.content != body.encode():
                    msg = f"HTTP answer differs from the bare query for bbox {box}"
                    raise RuntimeError(msg)
                bare.append(bare_s)
                http.append(http_s)
                features.append(response.json()["numberReturned"])
                sizes.append(len(response.content))
        engine.dispose()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        cluster.destroy()

    bare_min, bare50, bare95 = percentiles(bare)
    http_min, http50, http95 = percentiles(http)
    load = os.getloadavg()[0]
    load_start = load_before
    lines = [
        "",
        f"## GET /layers/buildings: 500 m bbox over {args.buildings:,} buildings "
        "(`bench.bench_layers`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, PostgreSQL/PostGIS embedded "
        f"cluster, {args.buildings:,} seeded synthetic footprints (10 km square, "
        f"{args.buildings / (SIDE_M / 1000) ** 2:,.0f}/km²), "
        f"{len(http):,} random 500 m x 500 m boxes after {args.warmup} warm-up requests; "
        f"one uvicorn worker on 127.0.0.1 (access control off: no token lookup), httpx "
        f"keep-alive client; 1-minute load average "
        f"{load_start:.1f} at start and {load:.1f} at end (2 cores shared with other work). "
        f"Versions: fastapi "
        f"{__import__('fastapi').__version__}, uvicorn {__import__('uvicorn').__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}.",
        "",
        f"Features per box: mean {np.mean(features):.0f} (min {min(features)}, max "
        f"{max(features)}); response mean {np.mean(sizes) / 1024:.0f} KiB of GeoJSON.",
        "",
        "| measured | min ms | p50 ms | p95 ms |",
        "|---|---:|---:|---:|",
        f"| bare PostGIS query (same SQL, in-process, psycopg) | {bare_min:.2f} | {bare50:.2f} "
        f"| {bare95:.2f} |",
        f"| GET /layers/buildings through uvicorn + httpx | {http_min:.2f} | {http50:.2f} "
        f"| {http95:.2f} |",
        "",
        f"HTTP / bare: min ×{http_min / bare_min:.2f}, p50 ×{http50 / bare50:.2f}, "
        f"p95 ×{http95 / bare95:.2f}. "
        f"Target p50 ≤ 15 ms: {'met' if http50 <= 15 else 'NOT met'}. "
        f"Bulk COPY of the footprints with ANALYZE: {load_s:.2f} s.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_append:
        record_section(section)


if __name__ == "__main__":
    main()
