"""Map pages in headless Chromium: bytes and time until fully drawn.

``python -m bench.bench_maps``: a throwaway PostGIS cluster (the tests' mechanism) gets two
databases, served by a real ``uvicorn`` each:

- Nanjing Xinjiekou imported through the loader (1,277 buildings, nine grids, cases): the
  whole-area page ``/`` (every layer), target ≤ 3 MB and ≤ 3 s;
- a synthetic district of 100,000 buildings (20 m squares every 40 m, 25 grids): the whole
  district page, then zoomed to level 17 and panned (buildings fetched by bbox), target
  ≤ 3 s. Anchor, measured in the same run: folium's usual way, every building inline in one
  ``folium.GeoJson`` (Leaflet from the same local server).

Times are wall-clock from navigation to the page's own "no request in flight" marker
(``data-wangge-pending`` = 0), median of 3 visits, in Debian's ``/usr/bin/chromium`` driven by
playwright at 1280 × 800.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import folium
from playwright.sync_api import Browser, Page
from sqlalchemy import text

from bench.common import record_section
from gis.cluster import EmbeddedCluster
from gis.db import make_engine
from tests.browser.driver import VIEWPORT, browser
from tests.browser.site import load_demo, scratch_database, serve

SIDE = 317  # 317 × 317 > 100,000 squares; the extra ones are cut by LIMIT
DRAWN = (
    "document.body.getAttribute('data-wangge-ready') === '1' && "
    "document.body.getAttribute('data-wangge-pending') === '0'"
)


def synthetic_district(url: str, count: int) -> None:
    """Insert ``count`` 20 m square buildings every 40 m near Nanjing and 25 grids over them."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    """
                    INSERT INTO building (source, source_id, use, levels, footprint, area_m2)
                    SELECT 'synthetic', i || '/' || j, 'residential', 6,
                           ST_Multi(ST_MakeEnvelope(x, y, x + 0.00021, y + 0.00018, 4326)), 400
                    FROM generate_series(0, :side - 1) i, generate_series(0, :side - 1) j,
                         LATERAL (SELECT 118.70 + j * 0.00042 AS x, 32.00 + i * 0.00036 AS y) p
                    ORDER BY i, j LIMIT :count
                    """
                ),
                {"side": SIDE, "count": count},
            )
            connection.execute(
                text(
                    """
                    INSERT INTO grid (code, kind, geom)
                    SELECT '320102001002' || lpad((i * 5 + j + 1)::text, 3, '0'), 'service',
                           ST_Multi(ST_MakeEnvelope(118.70 + j * :w, 32.00 + i * :h,
                                    118.70 + (j + 1) * :w, 32.00 + (i + 1) * :h, 4326))
                    FROM generate_series(0, 4) i, generate_series(0, 4) j
                    """
                ),
                {"w": SIDE * 0.00042 / 5, "h": SIDE * 0.00036 / 5},
            )
            connection.execute(text("ANALYZE building"))
    finally:
        engine.dispose()


def anchor_page(url: str) -> str:
    """Folium's usual page: every building inline in one GeoJson layer, Leaflet local."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            geojson = connection.execute(
                text(
                    "SELECT json_build_object('type', 'FeatureCollection', 'features', "
                    "json_agg(json_build_object('type', 'Feature', 'geometry', "
                    "ST_AsGeoJSON(footprint, 7)::json, 'properties', json_build_object("
                    "'use', use, 'levels', levels))))::text FROM building"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    fmap = folium.Map(location=(32.057, 118.767), zoom_start=13, tiles=None)
    fmap.default_js = [("leaflet", "/static/leaflet/leaflet.js")]
    fmap.default_css = [("leaflet_css", "/static/leaflet/leaflet.css")]
    folium.GeoJson(geojson, name="buildings").add_to(fmap)
    return str(fmap.get_root().render())


def _page_bytes(page: Page) -> int:
    return int(
        page.evaluate(
            "performance.getEntriesByType('navigation').concat("
            "performance.getEntriesByType('resource'))"
            ".reduce((s, e) => s + e.decodedBodySize, 0)"
        )
    )


def _map_call(page: Page, call: str) -> float:
    """Run ``call`` on the page's map and return the ms until it is drawn again."""
    started = time.perf_counter()
    page.evaluate(
        "(call) => { const name = Object.keys(window).find(k => k.startsWith('map_'));"
        " new Function('map', call)(window[name]); }",
        call,
    )
    page.wait_for_function(
        "document.body.getAttribute('data-wangge-pending') === '0'", timeout=60_000
    )
    return (time.perf_counter() - started) * 1000


def visit(chromium: Browser, url: str, *, zoom: bool = False) -> dict[str, Any]:
    """Open ``url`` until drawn; with ``zoom``, then zoom to 17 and pan once."""
    context = chromium.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="load")
    page.wait_for_function(DRAWN, timeout=60_000)
    out: dict[str, Any] = {"ms": (time.perf_counter() - started) * 1000}
    out["bytes"] = _page_bytes(page)
    if zoom:
        out["zoom_ms"] = _map_call(page, "map.setView(map.getCenter(), 17, {animate: false});")
        out["buildings"] = page.locator(".wangge-layer-buildings").count()
        out["pan_ms"] = _map_call(page, "map.panBy([400, 0], {animate: false});")
    context.close()
    return out


def visit_anchor(chromium: Browser, base: str, html: str) -> dict[str, Any]:
    """Open the inline anchor page (served at ``base``/anchor.html) until its paths exist."""
    context = chromium.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    page.route(
        f"{base}/anchor.html",
        lambda route: route.fulfill(body=html, content_type="text/html; charset=utf-8"),
    )
    started = time.perf_counter()
    page.goto(f"{base}/anchor.html", wait_until="load", timeout=180_000)
    page.wait_for_function(
        "document.querySelectorAll('path.leaflet-interactive').length > 0", timeout=180_000
    )
    ms = (time.perf_counter() - started) * 1000
    context.close()
    return {"ms": ms, "bytes": len(html.encode())}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="wangge-bench-maps-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    cluster.start()
    try:
        server = cluster.url()
        with scratch_database(server) as demo_url, scratch_database(server) as big_url:
            engine = make_engine(demo_url, pool_size=1)
            with engine.begin() as connection:
                load_demo(connection)
            engine.dispose()
            synthetic_district(big_url, args.buildings)
            anchor = anchor_page(big_url)
            with serve(demo_url) as demo, serve(big_url) as big, browser() as chromium:
                demo_runs = [visit(chromium, f"{demo.base_url}/") for _ in range(args.repeats)]
                big_runs = [
                    visit(chromium, f"{big.base_url}/", zoom=True) for _ in range(args.repeats)
                ]
                anchor_run = visit_anchor(chromium, big.base_url, anchor)
    finally:
        cluster.destroy()
    load_after = os.getloadavg()[0]
    demo_ms, demo_mb = median(demo_runs, "ms"), median(demo_runs, "bytes") / 1e6
    big_ms, big_mb = median(big_runs, "ms"), median(big_runs, "bytes") / 1e6
    zoom_ms, pan_ms = median(big_runs, "zoom_ms"), median(big_runs, "pan_ms")
    drawn = int(median(big_runs, "buildings"))
    anchor_ms, anchor_mb = anchor_run["ms"], anchor_run["bytes"] / 1e6

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    big_row = (
        f"| {args.buildings:,}-building district `/` (whole district: buildings wait for "
        f"zoom 15) | {big_mb:.2f} | {big_ms:.0f} | ×{anchor_ms / big_ms:.1f} faster |"
    )
    anchor_row = (
        f"| anchor: folium.GeoJson with all {args.buildings:,} buildings inline "
        f"| {anchor_mb:.1f} | {anchor_ms:.0f} | ×1.0 |"
    )
    section = f"""
## Map pages in headless Chromium ({stamp})

`python -m bench.bench_maps`: Debian chromium {_chromium()} via playwright {version("playwright")},
1280 × 800, median of {args.repeats} visits; folium {version("folium")}, Leaflet 1.9.4. Load
average {load_before:.1f} before / {load_after:.1f} after (2 cores shared).

| page | MB | ms to fully drawn | vs anchor (ms) |
|---|---:|---:|---:|
| Nanjing Xinjiekou whole area `/` (every layer by bbox) | {demo_mb:.2f} | {demo_ms:.0f} | |
{big_row}
| same, then zoom to 17 (buildings by bbox: {drawn:,} drawn) | | {zoom_ms:.0f} | |
| same, then pan 400 px | | {pan_ms:.0f} | |
{anchor_row}

Targets: whole-area demo page ≤ 3 MB {met(demo_mb <= 3)}, ≤ 3 s {met(demo_ms <= 3000)};
{args.buildings:,}-building district page ≤ 3 s {met(big_ms <= 3000)}, zoomed and panned views
each ≤ 3 s {met(max(zoom_ms, pan_ms) <= 3000)}.
"""
    print(section)
    if not args.no_append:
        record_section(section)


def _chromium() -> str:
    import subprocess

    done = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True)
    return done.stdout.strip().split(" ")[1] if done.stdout else "?"


if __name__ == "__main__":
    main()
