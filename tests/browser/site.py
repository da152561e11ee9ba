"""A demo area in its own database, served by a real ``uvicorn`` for browser tests.

The browser talks to a server process, which reads committed rows; the test session's
database serves other tests in rolled-back transactions, so the demo area gets a throwaway
database of its own on the same PostgreSQL server. Nanjing Xinjiekou's OSM extract is imported
with the loader's functions (buildings, streets, facilities, estimated stairwells); nine
service grids (a 3 × 3 split of the buildings' extent) and a few cases are added.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import shapely
from sqlalchemy import Connection, text

from gis.circles_store import compute_area
from gis.db import make_engine
from gis.loader import store_layers
from gis.osm import load_facility_mapping, read_source
from gis.stairwells import building_ids_for, estimate_stairwells
from tests.scratch import scratch_database

ROOT = Path(__file__).resolve().parents[2]
NANJING = ROOT / "data" / "nanjing_xinjiekou" / "raw" / "source_osm_bbox.osm.pbf"
GRID_PREFIX = "320102001001"
# Cases: every third building gets one; statuses cycle through these.
CASE_STATUSES = ("reported", "dispatched", "closed")


@dataclass(frozen=True)
class Site:
    """A running server on a demo database."""

    base_url: str
    database_url: str


def load_demo(connection: Connection) -> None:
    """Import Nanjing Xinjiekou, add nine service grids and cases (one per 3 buildings).

    The service circle (walking coverage of every stairwell) is computed over the grids.
    """
    layers = read_source(NANJING, mapping=load_facility_mapping())
    store_layers(connection, layers, source="osm")
    ids = building_ids_for(connection, "osm", list(layers.buildings["source_id"]))
    estimate_stairwells(connection, building_ids=ids)
    connection.execute(
        text(
            """
            INSERT INTO grid (code, kind, geom)
            SELECT :prefix || lpad((i * 3 + j + 1)::text, 3, '0'), 'service',
                   ST_Multi(ST_MakeEnvelope(
                       x0 + (x1 - x0) * j / 3.0, y0 + (y1 - y0) * i / 3.0,
                       x0 + (x1 - x0) * (j + 1) / 3.0, y0 + (y1 - y0) * (i + 1) / 3.0, 4326))
            FROM (SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1
                  FROM (SELECT ST_Extent(footprint) e FROM building) b) ext,
                 generate_series(0, 2) i, generate_series(0, 2) j
            """
        ),
        {"prefix": GRID_PREFIX},
    )
    connection.execute(
        text(
            """
            INSERT INTO cases (category_code, geom, status, reported_at, grid_id)
            SELECT 'E0101', p.pt, (CAST(:statuses AS text[]))[1 + (p.n % 3)],
                   timestamptz '2026-03-01 08:00+08' + p.n * interval '1 hour',
                   (SELECT g.id FROM grid g WHERE ST_Covers(g.geom, p.pt) ORDER BY g.id LIMIT 1)
            FROM (SELECT ST_PointOnSurface(footprint) pt, row_number() OVER (ORDER BY id) n
                  FROM building) p
            WHERE p.n % 3 = 0
            """
        ),
        {"statuses": list(CASE_STATUSES)},
    )
    extent = connection.execute(
        text("SELECT ST_AsBinary(ST_Envelope(ST_Collect(geom))) FROM grid")
    ).scalar_one()
    compute_area(connection, shapely.from_wkb(bytes(extent)), name="demo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(database_url: str) -> Iterator[Site]:
    """Run ``uvicorn api.app:create_app`` on a free local port, access control off."""
    port = _free_port()
    env = {
        **os.environ,
        "WANGGE_DATABASE_URL": database_url,
        "WANGGE_AUTH_REQUIRED": "false",
    }
    env.pop("WANGGE_MAP_TILE_URL", None)
    command = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"server did not start (exit {process.poll()})"
                raise RuntimeError(msg)
            time.sleep(0.2)
        yield Site(base_url=base, database_url=database_url)
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def demo_site(server_url: str) -> Iterator[Site]:
    """A scratch database holding the demo area, served on a local port."""
    with scratch_database(server_url, "browser") as url:
        engine = make_engine(url, pool_size=1)
        try:
            with engine.begin() as connection:
                load_demo(connection)
        finally:
            engine.dispose()
        with serve(url) as site:
            yield site
