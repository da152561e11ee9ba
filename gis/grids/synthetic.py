"""Seeded synthetic places for tests, benchmarks and demos: communities, buildings, cells.

Geometries are written in a projected CRS (default EPSG:32650, UTM 50N around Beijing, metres)
and stored in WGS84 by PostGIS (``ST_Transform``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import Connection, text

# UTM 50N; (440000, 4427000) is near Haidian, Beijing (116.297 E, 39.991 N).
METRIC_EPSG = 32650
ORIGIN = (440_000.0, 4_427_000.0)


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    """WKT of a rectangle given in metres east/north of :data:`ORIGIN`."""
    ox, oy = ORIGIN
    return shapely.box(ox + x0, oy + y0, ox + x1, oy + y1).wkt


def insert_subdistrict(
    connection: Connection, code: str, wkt: str | None = None, *, epsg: int = METRIC_EPSG
) -> int:
    """Insert a subdistrict (9-digit code) with an optional boundary; return its id."""
    return int(
        connection.execute(
            text(
                "INSERT INTO subdistrict (code, name, geom) VALUES (:code, :name,"
                " ST_Multi(ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326))) RETURNING id"
            ),
            {"code": code, "name": code, "wkt": wkt, "epsg": epsg},
        ).scalar_one()
    )


def insert_community(
    connection: Connection, code: str, wkt: str, *, epsg: int = METRIC_EPSG, name: str | None = None
) -> int:
    """Insert a community (12-digit code), creating its subdistrict if missing; return its id."""
    sub = connection.execute(
        text("SELECT id FROM subdistrict WHERE code = :c"), {"c": code[:9]}
    ).scalar_one_or_none()
    if sub is None:
        sub = insert_subdistrict(connection, code[:9])
    return int(
        connection.execute(
            text(
                "INSERT INTO community (code, name, subdistrict_id, geom) VALUES (:code, :name,"
                " :sub, ST_Multi(ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326))) RETURNING id"
            ),
            {"code": code, "name": name or code, "sub": sub, "wkt": wkt, "epsg": epsg},
        ).scalar_one()
    )


def insert_building(
    connection: Connection,
    wkt: str,
    *,
    households: int = 0,
    epsg: int = METRIC_EPSG,
    source: str = "synthetic",
) -> int:
    """Insert a building footprint and, when ``households`` > 0, one stairwell; return its id."""
    bid = int(
        connection.execute(
            text(
                "INSERT INTO building (source, source_id, footprint, area_m2)"
                " SELECT :source, 'b' || nextval('building_id_seq'), g, ST_Area(g::geography)"
                " FROM (SELECT ST_Multi(ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326)) AS g) x"
                " RETURNING id"
            ),
            {"wkt": wkt, "epsg": epsg, "source": source},
        ).scalar_one()
    )
    if households:
        connection.execute(
            text(
                "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
                " elderly, estimated, source) SELECT id, 1, ST_PointOnSurface(footprint), :h,"
                " :h * 2, 0, true, :source FROM building WHERE id = :id"
            ),
            {"id": bid, "h": households, "source": source},
        )
    return bid


def insert_cell(
    connection: Connection,
    code: str,
    community_id: int | None,
    wkt: str,
    *,
    kind: str = "service",
    epsg: int = METRIC_EPSG,
) -> int:
    """Insert a current grid cell; return its id."""
    return int(
        connection.execute(
            text(
                "INSERT INTO grid (code, kind, community_id, geom, source) VALUES (:code, :kind,"
                " :cid, ST_Multi(ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326)), 'synthetic')"
                " RETURNING id"
            ),
            {"code": code, "kind": kind, "cid": community_id, "wkt": wkt, "epsg": epsg},
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class SyntheticArea:
    """What :func:`synthetic_subdistrict` inserted."""

    subdistrict_code: str
    community_ids: list[int]
    buildings: int
    streets: int


def synthetic_subdistrict(
    connection: Connection,
    *,
    code: str = "110108901",
    buildings: int = 5_000,
    communities: tuple[int, int] = (2, 2),
    block_m: float = 150.0,
    seed: int = 42,
) -> SyntheticArea:
    """Insert a seeded synthetic subdistrict: street grid, communities, buildings, stairwells.

    The area is a square of blocks ``block_m`` wide separated by streets; communities split it
    along every few streets (``communities`` = columns × rows). Buildings are slab rectangles
    (12 m deep, 30-60 m long) placed without overlap inside the blocks, each with one stairwell
    of 6-60 households.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    code : str
        9-digit subdistrict code; communities get ``code + 001...``.
    buildings : int
        About how many buildings to create (the exact number is returned).
    communities : tuple of int
        Community columns and rows.
    block_m : float
        Block side in metres.
    seed : int
        Seed of the random generator.

    Returns
    -------
    SyntheticArea
    """
    rng = np.random.default_rng(seed)
    per_block = 8
    blocks_needed = max(1, buildings // per_block)
    side = int(np.ceil(np.sqrt(blocks_needed)))
    cols, rows = communities
    side = max(side, cols, rows)
    size = side * block_m
    ox, oy = ORIGIN
    # Streets along every block edge (x and y), a little inside the outer boundary too.
    lines = []
    for i in range(side + 1):
        t = i * block_m
        highway = "secondary" if i % max(1, side // cols) == 0 else "residential"
        lines.append((shapely.LineString([(ox + t, oy), (ox + t, oy + size)]).wkt, highway))
        highway = "secondary" if i % max(1, side // rows) == 0 else "residential"
        lines.append((shapely.LineString([(ox, oy + t), (ox + size, oy + t)]).wkt, highway))
    connection.execute(
        text(
            "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m)"
            " SELECT 'synthetic', :sid, 0, :hw, g, ST_Length(g::geography) FROM"
            " (SELECT ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326) AS g) x"
        ),
        [
            {"sid": f"{code}-s{i}", "hw": hw, "wkt": wkt, "epsg": METRIC_EPSG}
            for i, (wkt, hw) in enumerate(lines)
        ],
    )
    insert_subdistrict(connection, code, box(0, 0, size, size))
    ids = []
    # Community boundaries follow streets, as real ones follow roads.
    xs = [round(side * c / cols) * block_m for c in range(cols + 1)]
    ys = [round(side * r / rows) * block_m for r in range(rows + 1)]
    for r in range(rows):
        for c in range(cols):
            ccode = f"{code}{r * cols + c + 1:03d}"
            ids.append(insert_community(connection, ccode, box(xs[c], ys[r], xs[c + 1], ys[r + 1])))
    # Buildings: per block, two rows of slabs along the block's x axis.
    footprints = []
    for bx in range(side):
        for by in range(side):
            x0, y0 = bx * block_m + 10, by * block_m + 10
            inner = block_m - 20
            for row in range(4):
                y = y0 + row * inner / 4 + rng.uniform(0, inner / 4 - 14)
                x = x0
                for _ in range(2):
                    length = rng.uniform(30, 55)
                    if x + length > x0 + inner:
                        break
                    footprints.append(box(x, y, x + length, y + 12))
                    x += length + rng.uniform(5, 10)
            if len(footprints) >= buildings:
                break
        if len(footprints) >= buildings:
            break
    households = rng.integers(6, 61, size=len(footprints))
    connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2)"
            " SELECT 'synthetic', :sid, g, ST_Area(g::geography) FROM"
            " (SELECT ST_Multi(ST_Transform(ST_GeomFromText(:wkt, :epsg), 4326)) AS g) x"
        ),
        [
            {"sid": f"{code}-b{i}", "wkt": wkt, "epsg": METRIC_EPSG}
            for i, wkt in enumerate(footprints)
        ],
    )
    connection.execute(
        text(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
            " elderly, estimated, source)"
            " SELECT b.id, 1, ST_PointOnSurface(b.footprint), h.n, h.n * 2, 0, true, 'synthetic'"
            " FROM building b JOIN unnest(CAST(:sids AS text[]), CAST(:hh AS integer[]))"
            " AS h(sid, n) ON b.source = 'synthetic' AND b.source_id = h.sid"
        ),
        {"sids": [f"{code}-b{i}" for i in range(len(footprints))], "hh": households.tolist()},
    )
    return SyntheticArea(code, ids, len(footprints), len(lines))
