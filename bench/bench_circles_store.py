"""Storing service-circle coverage: COPY against pandas ``to_sql``; incremental against full.

A seeded synthetic subdistrict (gis.grids.synthetic: 150 m street blocks, streets split where
they cross) with ``--buildings`` stairwells and 12 facility types is computed with
:func:`gis.circles_store.compute_area`. Measured side by side in one run:

- writing the coverage rows: our COPY (CSV) against the anchor ``DataFrame.to_sql`` (pandas'
  multi-row INSERT, the usual way), same rows into the same table;
- updating after one facility is added: :func:`gis.circles_store.refresh` against the anchor
  of recomputing the whole area with :func:`gis.circles_store.compute_area`.

Wall seconds and CPU seconds (this process + the PostgreSQL backend) are reported: the
machine is shared, and CPU time barely changes with its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
import sqlalchemy
from pyproj import Transformer
from sqlalchemy import text

from bench.bench_load import measured
from bench.common import record_section
from gis.circles import CircleSettings, coverage
from gis.circles_store import (
    COVERAGE_COLUMNS,
    _long_rows,
    _write,
    area_geometry,
    compute_area,
    facility_types,
    load_inputs,
    refresh,
)
from gis.cluster import EmbeddedCluster
from gis.db import migrate
from gis.grids.synthetic import METRIC_EPSG, ORIGIN, synthetic_subdistrict

SEED = 20261122
CODE = "110108961"
TYPES = 12
ANCHOR_ROWS = 50_000


def _node_streets(conn: sqlalchemy.Connection) -> None:
    lines = conn.execute(
        text("DELETE FROM street_segment WHERE source = 'synthetic' RETURNING ST_AsBinary(geom)")
    ).scalars()
    pieces = shapely.get_parts(shapely.union_all([shapely.from_wkb(bytes(w)) for w in lines]))
    conn.execute(
        text(
            "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m) "
            "VALUES ('synthetic', :sid, 0, 'residential', ST_GeomFromText(:wkt, 4326), 1)"
        ),
        [{"sid": f"n{i}", "wkt": g.wkt} for i, g in enumerate(pieces)],
    )


def _facilities(conn: sqlalchemy.Connection, size_m: float, rng: np.random.Generator) -> None:
    kinds = sorted(facility_types())[:TYPES]
    to_wgs = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True)
    n = max(TYPES * 4, int(size_m / 100) * TYPES // 2)
    xy = rng.uniform(0, size_m, size=(n, 2))
    lon, lat = to_wgs.transform(ORIGIN[0] + xy[:, 0], ORIGIN[1] + xy[:, 1])
    conn.execute(
        text(
            "INSERT INTO facility (source, source_id, type, geom) VALUES ('bench', :sid, :kind, "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
        ),
        [
            {"sid": f"f{i}", "kind": kinds[i % TYPES], "x": float(x), "y": float(y)}
            for i, (x, y) in enumerate(zip(lon, lat, strict=True))
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=5_000)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="wangge-bench-circles-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    try:
        cluster.start()
        url = cluster.url()
        migrate(url)
        engine = sqlalchemy.create_engine(url, pool_size=1, max_overflow=0)
        with engine.begin() as conn:
            made = synthetic_subdistrict(conn, code=CODE, buildings=args.buildings, seed=SEED)
            _node_streets(conn)
            size = conn.execute(
                text("SELECT sqrt(ST_Area(geom::geography)) FROM subdistrict WHERE code = :c"),
                {"c": CODE},
            ).scalar_one()
            _facilities(conn, float(size), rng)
        with engine.connect() as conn:
            pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            _, area = area_geometry(conn, subdistrict=CODE)
            conn.rollback()
            area_id = compute_area(conn, area, name="bench")
            conn.commit()
            settings = CircleSettings()
            ext = shapely.from_wkb(
                bytes(
                    conn.execute(
                        text("SELECT ST_AsBinary(extent) FROM circle_area WHERE id = :a"),
                        {"a": area_id},
                    ).scalar_one()
                )
            )
            inputs = load_inputs(conn, area, ext)
            started = time.perf_counter()
            table = coverage(
                inputs.stairwells,
                inputs.facilities,
                inputs.network,
                types=sorted(facility_types()),
                settings=settings,
            )
            coverage_s = time.perf_counter() - started
            rows = _long_rows(table, area_id, settings)
            stairwells = len(inputs.stairwells)
            nodes = inputs.network.n_nodes if inputs.network is not None else 0

            def clear() -> None:
                conn.execute(text("DELETE FROM circle_coverage WHERE area_id = :a"), {"a": area_id})

            clear()
            ours = measured(lambda: _write(conn, table, area_id, settings), pid)
            conn.rollback()
            clear()
            # The anchor is slow: measured on a sample, compared per row.
            sample = rows.iloc[: min(len(rows), ANCHOR_ROWS)]
            anchor = measured(
                lambda: sample.to_sql(
                    "circle_coverage",
                    conn,
                    if_exists="append",
                    index=False,
                    method="multi",
                    chunksize=5_000,
                ),
                pid,
            )
            stored = conn.execute(
                text("SELECT count(*) FROM circle_coverage WHERE area_id = :a"), {"a": area_id}
            ).scalar_one()
            conn.rollback()
            assert stored == len(sample)

            lon, lat = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True).transform(
                ORIGIN[0] + float(size) / 2, ORIGIN[1] + float(size) / 2
            )
            conn.execute(
                text(
                    "INSERT INTO facility (source, source_id, type, geom) VALUES ('bench', 'new',"
                    " 'kindergarten', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                ),
                {"x": lon, "y": lat},
            )
            written: list[int] = []
            incremental = measured(
                lambda: written.append(refresh(conn, [(lon, lat, "kindergarten")])), pid
            )
            full = measured(lambda: compute_area(conn, area, name="bench full"), pid)
            conn.rollback()
        engine.dispose()
    finally:
        cluster.destroy()
    load_end = os.getloadavg()[0]
    lines = _section(
        args.buildings,
        made.buildings,
        stairwells,
        nodes,
        len(rows),
        len(sample),
        coverage_s,
        ours,
        anchor,
        incremental,
        full,
        written[0],
        (load_start, load_end),
    )
    print("\n".join(lines))
    if not args.no_append:
        record_section("\n" + "\n".join(lines) + "\n")


def _section(
    asked: int,
    buildings: int,
    stairwells: int,
    nodes: int,
    rows: int,
    sampled: int,
    coverage_s: float,
    ours: tuple[float, float],
    anchor: tuple[float, float],
    incremental: tuple[float, float],
    full: tuple[float, float],
    written: int,
    load: tuple[float, float],
) -> list[str]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions: dict[str, Any] = {"numpy": np.__version__, "pandas": pd.__version__}
    return [
        f"## Service-circle coverage stored in PostGIS ({now})",
        "",
        f"`python -m bench.bench_circles_store --buildings {asked}`: synthetic subdistrict of "
        f"{buildings:,} buildings / {stairwells:,} stairwells, {nodes:,} network nodes, "
        f"{len(facility_types())} facility types stored ({TYPES} with facilities); "
        f"{rows:,} coverage rows ({len(COVERAGE_COLUMNS)} columns). In-memory coverage "
        f"{coverage_s:.2f} s. numpy {versions['numpy']}, pandas {versions['pandas']}. "
        f"Load average {load[0]:.1f} before / {load[1]:.1f} after (2 shared cores).",
        "",
        "| measured | wall s | CPU s (client + backend) | vs anchor (CPU) |",
        "|---|---:|---:|---:|",
        f"| write {rows:,} rows: COPY (ours) | {ours[0]:.2f} | {ours[1]:.2f} | "
        f"×{anchor[1] / sampled / (ours[1] / rows):.1f} per row |",
        f"| write {sampled:,} rows (sample): anchor `DataFrame.to_sql(method='multi')` | "
        f"{anchor[0]:.2f} | {anchor[1]:.2f} | ×1.0 |",
        f"| one facility added: `refresh` (ours, {written:,} rows rewritten) | "
        f"{incremental[0]:.2f} | {incremental[1]:.2f} | ×{full[1] / incremental[1]:.1f} |",
        f"| one facility added: anchor full `compute_area` | {full[0]:.2f} | "
        f"{full[1]:.2f} | ×1.0 |",
    ]


if __name__ == "__main__":
    main()
