"""A small seeded town for the case-reporting tests: two communities, five service cells,
numbered buildings with stairwells. Everything is inserted on the test's rolled-back connection.

Layout (D = 0.001 degree, around 116.30 E 39.90 N, Beijing):

- subdistrict 110108011 八里庄街道: 20 D x 20 D around the town;
- community 110108011001 八角北路社区: 2 D x 2 D at (X0, Y0), four service cells (the squares
  of ``tests.test_locate``), worker 张三 on cell ...002;
- community 110108011002 八角南路社区: 2 D x 2 D east of it, one cell 110108011002001;
- buildings: 12号楼 in 北路 (cell ...004, units 1-3), 3号楼 in 北路 (one unit), 12号楼 and
  5号楼 in 南路 (community left unset: found by the covering community), 7号楼 in 北路 with
  no stairwell.
"""

from __future__ import annotations

from dataclasses import dataclass

import shapely
from sqlalchemy import Connection, text

X0, Y0, D = 116.30, 39.90, 0.001
NORTH = "110108011001"
SOUTH = "110108011002"
CELLS = {
    "110108011001004": shapely.box(X0, Y0, X0 + D, Y0 + D),
    "110108011001002": shapely.box(X0 + D, Y0, X0 + 2 * D, Y0 + D),
    "110108011001003": shapely.box(X0, Y0 + D, X0 + D, Y0 + 2 * D),
    "110108011001001": shapely.box(X0 + D, Y0 + D, X0 + 2 * D, Y0 + 2 * D),
    "110108011002001": shapely.box(X0 + 2 * D, Y0, X0 + 4 * D, Y0 + 2 * D),
}


@dataclass(frozen=True)
class Town:
    """Database ids of the seeded town."""

    subdistrict: int
    north: int
    south: int
    worker: int
    grids: dict[str, int]
    buildings: dict[str, int]  # "north-12", "north-3", "north-7", "south-12", "south-5"
    stairwells: dict[str, int]  # "north-12-1", ...


def _wkt(geom: shapely.Polygon) -> str:
    return str(shapely.to_wkt(shapely.MultiPolygon([geom])))


def _id(connection: Connection, sql: str, **params: object) -> int:
    return int(connection.execute(text(sql), params).scalar_one())


def building(connection: Connection, key: str, box: shapely.Polygon, community: int | None) -> int:
    number = key.split("-")[1]
    return _id(
        connection,
        "INSERT INTO building (source, source_id, name, number, footprint, area_m2, community_id)"
        " VALUES ('test', :sid, :name, :num, ST_GeomFromText(:g, 4326), 400, :c) RETURNING id",
        sid=key,
        name=f"{number}号楼",
        num=number,
        g=_wkt(box),
        c=community,
    )


def stairwell(connection: Connection, building_id: int, unit: int, lon: float, lat: float) -> int:
    return _id(
        connection,
        "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents, elderly,"
        " estimated, source) VALUES (:b, :u, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 12, 30,"
        " 6, false, 'test') RETURNING id",
        b=building_id,
        u=unit,
        lon=lon,
        lat=lat,
    )


def seed_town(connection: Connection) -> Town:
    """Insert the town described in the module docstring."""
    sub = _id(
        connection,
        "INSERT INTO subdistrict (code, name, geom) VALUES ('110108011', '八里庄街道',"
        " ST_GeomFromText(:g, 4326)) RETURNING id",
        g=_wkt(shapely.box(X0 - 10 * D, Y0 - 10 * D, X0 + 10 * D, Y0 + 10 * D)),
    )
    communities = {}
    for code, name, x in ((NORTH, "八角北路社区", X0), (SOUTH, "八角南路社区", X0 + 2 * D)):
        communities[code] = _id(
            connection,
            "INSERT INTO community (code, name, subdistrict_id, geom) VALUES (:code, :name, :s,"
            " ST_GeomFromText(:g, 4326)) RETURNING id",
            code=code,
            name=name,
            s=sub,
            g=_wkt(shapely.box(x, Y0, x + 2 * D, Y0 + 2 * D)),
        )
    worker = _id(
        connection,
        "INSERT INTO grid_worker (name, phone) VALUES ('张三', '13800000000') RETURNING id",
    )
    grids = {
        code: _id(
            connection,
            "INSERT INTO grid (code, kind, community_id, worker_id, geom, valid_from) VALUES"
            " (:code, 'service', :c, :w, ST_GeomFromText(:g, 4326), '2020-01-01') RETURNING id",
            code=code,
            c=communities[code[:12]],
            w=worker if code == "110108011001002" else None,
            g=_wkt(geom),
        )
        for code, geom in CELLS.items()
    }
    north, south = communities[NORTH], communities[SOUTH]
    b = {
        "north-12": building(
            connection,
            "north-12",
            shapely.box(X0 + 0.2 * D, Y0 + 0.3 * D, X0 + 0.8 * D, Y0 + 0.6 * D),
            north,
        ),
        "north-3": building(
            connection,
            "north-3",
            shapely.box(X0 + 0.2 * D, Y0 + 1.3 * D, X0 + 0.5 * D, Y0 + 1.6 * D),
            north,
        ),
        "north-7": building(
            connection,
            "north-7",
            shapely.box(X0 + 1.2 * D, Y0 + 1.3 * D, X0 + 1.5 * D, Y0 + 1.6 * D),
            north,
        ),
        "south-12": building(
            connection,
            "south-12",
            shapely.box(X0 + 2.2 * D, Y0 + 0.3 * D, X0 + 2.8 * D, Y0 + 0.6 * D),
            None,
        ),
        "south-5": building(
            connection,
            "south-5",
            shapely.box(X0 + 3.2 * D, Y0 + 1.3 * D, X0 + 3.5 * D, Y0 + 1.6 * D),
            None,
        ),
    }
    s = {}
    for unit in (1, 2, 3):
        s[f"north-12-{unit}"] = stairwell(
            connection, b["north-12"], unit, X0 + (0.2 + 0.15 * unit) * D, Y0 + 0.3 * D
        )
        s[f"south-12-{unit}"] = stairwell(
            connection, b["south-12"], unit, X0 + (2.2 + 0.15 * unit) * D, Y0 + 0.3 * D
        )
    s["north-3-1"] = stairwell(connection, b["north-3"], 1, X0 + 0.35 * D, Y0 + 1.3 * D)
    s["south-5-1"] = stairwell(connection, b["south-5"], 1, X0 + 3.3 * D, Y0 + 1.3 * D)
    s["south-5-2"] = stairwell(connection, b["south-5"], 2, X0 + 3.4 * D, Y0 + 1.3 * D)
    return Town(sub, north, south, worker, grids, b, s)
