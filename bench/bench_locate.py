"""GET /locate under 32 concurrent connections (wrk), against a minimal one-query FastAPI anchor.

Run: ``.venv/bin/python -m bench.bench_locate [--duration S] [--buildings N] [--no-append]``.

Needs ``wrk`` (Debian: ``apt-get install -y wrk``); without it the benchmark stops with that
message before building anything.

A throwaway PostGIS cluster (same mechanism as the tests) receives a seeded synthetic subdistrict
(:func:`gis.grids.synthetic.synthetic_subdistrict`: streets, 4 communities, slab buildings with
one stairwell each) and a 100 x 100 layer of square service cells covering it (10,000 cells, each
with a community and one of 500 workers). Two servers run in turn on 127.0.0.1, each with 1 and
then 2 uvicorn workers (uvloop + httptools, the ``uvicorn[standard]`` extras):

- **anchor**: a minimal FastAPI app (``anchor_app`` below) with one ``async`` endpoint running one
  PostGIS point-in-polygon query (the covering service cell, lowest code) through a small async
  psycopg connection pool;
- **locate**: the real app (``uvicorn api.app:create_app --factory``, as ``wangge serve`` runs it)
  answering ``GET /locate``: cell, worker, community, subdistrict, nearest other cell, nearest
  building and stairwell; with auth off and with auth on (a staff bearer token on every request).

wrk (``-t2 -c32``, fixed duration) sends points drawn uniformly over the subdistrict by a
seeded Lua generator (each thread its own seed). The load generator shares the machine's cores
with the servers and PostgreSQL, as in NOTES.md's reference figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import sqlalchemy
from fastapi import FastAPI, Query
from sqlalchemy import text

from bench.bench_layers import free_port
from bench.common import record_section
from gis.auth import add_user, issue_token
from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate
from gis.grids.synthetic import METRIC_EPSG, ORIGIN, synthetic_subdistrict

ROOT = Path(__file__).resolve().parent.parent
SEED = 20_261_122
CELLS_PER_SIDE = 100
WORKERS_IN_DB = 500
CONNECTIONS = 32
THREADS = 2
POOL_SIZE = 10  # the app's default DatabaseSettings.pool_size

# ---------------------------------------------------------------------------------------------
# The anchor: one endpoint, one point-in-polygon query, async psycopg connections.

ANCHOR_SQL = (
    "SELECT code FROM grid WHERE kind = 'service' AND valid_from <= now()"
    " AND (valid_to IS NULL OR valid_to > now())"
    " AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) ORDER BY code LIMIT 1"
)


def anchor_app() -> FastAPI:
    """Return the anchor app (reads the libpq DSN from ``WANGGE_BENCH_DSN``)."""
    import asyncio
    import gc

    import psycopg

    dsn = os.environ["WANGGE_BENCH_DSN"]
    pool: asyncio.Queue[psycopg.AsyncConnection[tuple[str]]] = asyncio.Queue()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for _ in range(POOL_SIZE):
            await pool.put(await psycopg.AsyncConnection.connect(dsn, autocommit=True))
        # As the real app does (api/app.py): startup objects kept out of full collections.
        gc.collect()
        gc.freeze()
        yield
        while not pool.empty():
            await (await pool.get()).close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/pip")
    async def pip(
        lon: Annotated[float, Query()], lat: Annotated[float, Query()]
    ) -> dict[str, str | None]:
        conn = await pool.get()
        try:
            cur = await conn.execute(ANCHOR_SQL, (lon, lat), prepare=True)
            row = await cur.fetchone()
        finally:
            pool.put_nowait(conn)
        return {"code": None if row is None else row[0]}

    return app


# ---------------------------------------------------------------------------------------------
# Data


def load_area(url: str, buildings: int) -> tuple[tuple[float, float, float, float], int, int]:
    """Insert the synthetic subdistrict and its 10,000 cells; return (bbox, buildings, cells)."""
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        area = synthetic_subdistrict(conn, buildings=buildings, seed=SEED % 10_000)
        size = float(
            conn.execute(
                text(
                    "SELECT ST_XMax(ST_Transform(geom, :epsg)) - ST_XMin(ST_Transform(geom, :epsg))"
                    " FROM subdistrict WHERE code = :code"
                ),
                {"epsg": METRIC_EPSG, "code": area.subdistrict_code},
            ).scalar_one()
        )
        conn.execute(
            text(
                "INSERT INTO grid_worker (name, phone, role)"
                " SELECT '网格员' || i, '1380000' || lpad(i::text, 4, '0'), 'grid_worker'"
                " FROM generate_series(1, :n) i"
            ),
            {"n": WORKERS_IN_DB},
        )
        step = size / CELLS_PER_SIDE
        conn.execute(
            text(
                "INSERT INTO grid (code, kind, community_id, worker_id, geom, source)"
                " SELECT :prefix || lpad((i * :side + j)::text, 6, '0'), 'service',"
                "  (SELECT c.id FROM community c WHERE ST_Covers(c.geom, ST_Centroid(g))"
                "   ORDER BY c.code LIMIT 1),"
                "  (SELECT min(id) FROM grid_worker) + (i * :side + j) % :workers, g, 'synthetic'"
                " FROM generate_series(0, :side - 1) i, generate_series(0, :side - 1) j,"
                " LATERAL (SELECT ST_Multi(ST_Transform(ST_MakeEnvelope("
                "   :ox + i * :step, :oy + j * :step, :ox + (i + 1) * :step,"
                "   :oy + (j + 1) * :step, :epsg), 4326)) AS g) x"
            ),
            {
                "prefix": area.subdistrict_code,
                "side": CELLS_PER_SIDE,
                "workers": WORKERS_IN_DB,
                "step": step,
                "ox": ORIGIN[0],
                "oy": ORIGIN[1],
                "epsg": METRIC_EPSG,
            },
        )
        add_user(conn, "bench-staff", role="staff")
        bbox = conn.execute(
            text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
                " FROM (SELECT ST_Extent(geom) AS e FROM grid) x"
            )
        ).one()
        cells = int(conn.execute(text("SELECT count(*) FROM grid")).scalar_one())
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])), area.buildings, cells


def new_token(url: str) -> str:
    """Issue a bearer token for the staff user."""
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        token = issue_token(conn, "bench-staff", days=1, label="bench")
    engine.dispose()
    return token


# ---------------------------------------------------------------------------------------------
# Servers and wrk

LUA = """
local lon0, lat0, dlon, dlat = {lon0}, {lat0}, {dlon}, {dlat}
local path, header = "{path}", "{auth}"
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", {seed} + counter)
end
function init(args)
  math.randomseed(seed)
  if header ~= "" then wrk.headers["Authorization"] = header end
end
function request()
  local lon = lon0 + math.random() * dlon
  local lat = lat0 + math.random() * dlat
  return wrk.format("GET", string.format("%s?lon=%.7f&lat=%.7f", path, lon, lat))
end
"""


@dataclass(frozen=True)
class Run:
    """One wrk run: its label, throughput and latency percentiles (ms)."""

    label: str
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    load: float


def start_server(app: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            # Every worker must be up: a few more probes let the last ones finish starting.
            time.sleep(1.0 * workers)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    msg = f"{app} did not answer within 60 s"
    raise RuntimeError(msg)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(port: int, script: Path, duration: int) -> tuple[float, float, float, int, int]:
    """Run wrk; return (req/s, p50 ms, p99 ms, requests, non-2xx + socket errors)."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s|m)\b", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    assert p50 is not None and p99 is not None
    return rps, _ms(*p50.groups()), _ms(*p99.groups()), total, errors


def write_script(
    directory: Path, name: str, bbox: tuple[float, float, float, float], path: str, auth: str
) -> Path:
    lon0, lat0, lon1, lat1 = bbox
    script = directory / f"{name}.lua"
    script.write_text(
        LUA.format(
            lon0=lon0,
            lat0=lat0,
            dlon=lon1 - lon0,
            dlat=lat1 - lat0,
            path=path,
            auth=auth,
            seed=SEED,
        )
    )
    return script


def check_answers(port: int, path: str, bbox: tuple[float, float, float, float], auth: str) -> None:
    """Fail early when the server does not answer 200 with a located cell at the centre."""
    lon = (bbox[0] + bbox[2]) / 2
    lat = (bbox[1] + bbox[3]) / 2
    headers = {"Authorization": auth} if auth else {}
    response = httpx.get(
        f"http://127.0.0.1:{port}{path}", params={"lon": lon, "lat": lat}, headers=headers
    )
    response.raise_for_status()
    body = response.json()
    located = body.get("code") if "code" in body else (body.get("grid") or {}).get("code")
    if located is None:
        msg = f"{path} located no cell at the centre of the layer: {body}"
        raise RuntimeError(msg)


# ---------------------------------------------------------------------------------------------


def report(runs: list[Run], meta: dict[str, str]) -> str:
    by = {(r.label, r.workers): r for r in runs}
    lines = [
        "",
        "## GET /locate under load (bench/bench_locate.py)",
        "",
        f"Run {meta['when']}: {meta['data']}. wrk -t{THREADS} -c{CONNECTIONS}, {meta['duration']} s"
        " per server, the servers visited in turn (req/s over all rounds; p50/p99 the median of"
        " the rounds' wrk percentiles), on 127.0.0.1, points uniform over the layer (seeded Lua);"
        " uvicorn with uvloop +"
        " httptools; wrk, the servers and PostgreSQL share the 2 cores. Anchor: a minimal FastAPI"
        " app, one async endpoint, one PostGIS point-in-polygon query (covering service cell,"
        f" lowest code) over a {POOL_SIZE}-connection async psycopg pool, same database.",
        "",
        "| server | uvicorn workers | req/s | p50 ms | p99 ms | errors | load avg (1 min) |"
        " vs anchor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        anchor = by.get(("anchor", r.workers))
        ratio = f"{r.rps / anchor.rps:.0%}" if anchor else ""
        lines.append(
            f"| {r.label} | {r.workers} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
            f" {r.errors} | {r.load:.2f} | {ratio} |"
        )
    for w in sorted({r.workers for r in runs}):
        off, on = by.get(("locate, auth off", w)), by.get(("locate, auth on", w))
        if off and on:
            lines.append("")
            lines.append(
                f"Auth overhead, {w} worker(s): {on.rps:,.0f} vs {off.rps:,.0f} req/s"
                f" ({on.rps / off.rps - 1:+.0%})."
            )
    best = max((r for r in runs if r.label.startswith("locate")), key=lambda r: r.rps)
    anchor = by[("anchor", best.workers)]
    ok = best.rps >= 2000 and best.p99_ms <= 30 and best.rps >= 0.6 * anchor.rps
    lines += [
        "",
        f"Target (>= 2,000 req/s, p99 <= 30 ms, >= 60 % of the anchor): best /locate row"
        f" ({best.label}, {best.workers} worker(s)) {best.rps:,.0f} req/s, p99"
        f" {best.p99_ms:.1f} ms, {best.rps / anchor.rps:.0%} of the anchor:"
        f" {'met' if ok else 'NOT met'}. Load average before the run: {meta['load_before']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server, in turn")
    parser.add_argument("--buildings", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up (profiling)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_locate needs wrk, which is not installed: apt-get install -y wrk")
    load_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    home = Path(tempfile.mkdtemp(prefix="wangge-bench-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    runs: list[Run] = []
    try:
        cluster.start()
        url = cluster.url()
        migrate(url)
        started = time.perf_counter()
        bbox, buildings, cells = load_area(url, args.buildings)
        print(
            f"loaded {buildings:,} buildings, {cells:,} cells"
            f" in {time.perf_counter() - started:.1f} s"
        )
        token = new_token(url)
        dsn = sqlalchemy.make_url(url).set(drivername="postgresql").render_as_string(False)
        scripts = Path(tempfile.mkdtemp(prefix="wangge-wrk-"))
        cases = [
            ("anchor", "bench.bench_locate:anchor_app", "/pip", {}, ""),
            ("locate, auth off", "api.app:create_app", "/locate",
             {"WANGGE_AUTH_REQUIRED": "false"}, ""),
            ("locate, auth on", "api.app:create_app", "/locate",
             {"WANGGE_AUTH_REQUIRED": "true"}, f"Bearer {token}"),
        ]  # fmt: skip
        for workers in args.workers:
            # The three servers run side by side; wrk visits them in turn, ``--rounds`` times,
            # so a change of machine load (the cores are shared) falls on all of them alike.
            servers: list[tuple[str, int, Path, subprocess.Popen[bytes]]] = []
            try:
                for label, app, path, extra, auth in cases:
                    env = {"WANGGE_DATABASE_URL": url, "WANGGE_BENCH_DSN": dsn, **extra}
                    port = free_port()
                    server = start_server(app, port, workers, env)
                    servers.append((label, port, Path(), server))
                    check_answers(port, path, bbox, auth)
                    script = write_script(scripts, f"{label[:6]}{workers}", bbox, path, auth)
                    servers[-1] = (label, port, script, server)
                    run_wrk(port, script, 2)  # warm-up: pools, prepared statements, caches
                samples: dict[str, list[tuple[float, float, float, int, int, float]]] = {}
                for _ in range(args.rounds):
                    for label, port, script, _server in servers:
                        result = run_wrk(port, script, args.duration)
                        samples.setdefault(label, []).append((*result, os.getloadavg()[0]))
            finally:
                for *_, server in servers:
                    stop_server(server)
            for label, rows in samples.items():
                rps = sum(r[3] for r in rows) / (args.duration * len(rows))
                p50 = float(np.median([r[1] for r in rows]))
                p99 = float(np.median([r[2] for r in rows]))
                total = sum(r[3] for r in rows)
                errors = sum(r[4] for r in rows)
                load = float(np.mean([r[5] for r in rows]))
                run = Run(label, workers, rps, p50, p99, total, errors, load)
                runs.append(run)
                print(
                    f"{label:18} w={workers} {rps:8,.0f} req/s p50 {p50:6.1f} ms"
                    f" p99 {p99:6.1f} ms errors {errors} load {run.load:.2f}"
                    f" (rounds: {', '.join(f'{r[0]:,.0f}' for r in rows)})",
                    flush=True,
                )
        if args.keep:
            print(f"cluster left running: {url}")
    finally:
        if not args.keep:
            cluster.stop()
            shutil.rmtree(home, ignore_errors=True)
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data": f"{cells:,} service cells (100 x 100), {buildings:,} buildings and stairwells,"
        f" {WORKERS_IN_DB} workers",
        "duration": f"{args.rounds} rounds x {args.duration}",
        "load_before": load_before,
    }
    text_out = report(runs, meta)
    print(text_out)
    if not args.no_append:
        record_section(text_out)


if __name__ == "__main__":
    main()
