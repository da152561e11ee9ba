"""locate(): grid, worker, places, near boundary and nearest building/stairwell in PostGIS."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely
import shapely.ops
from pyproj import Geod
from sqlalchemy import Connection, text

from gis.assign import CellIndex
from gis.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.errors import InputError
from gis.locate import locate

X0, Y0, D = 116.30, 39.90, 0.001
GEOD = Geod(ellps="WGS84")
PAST = datetime(2020, 1, 1, tzinfo=UTC)


def ewkb(geom: shapely.Geometry) -> str:
    if isinstance(geom, shapely.Polygon):
        geom = shapely.MultiPolygon([geom])
    return str(shapely.to_wkb(geom, hex=True, include_srid=False))


def insert_places(connection: Connection) -> int:
    """A subdistrict and a community covering the 2 x 2 squares; returns the community id."""
    sid = connection.execute(
        text(
            "INSERT INTO subdistrict (code, name, geom) VALUES ('110108011', '八里庄街道',"
            " ST_SetSRID(ST_GeomFromWKB(decode(:g, 'hex')), 4326)) RETURNING id"
        ),
        {"g": ewkb(shapely.box(X0 - 10 * D, Y0 - 10 * D, X0 + 10 * D, Y0 + 10 * D))},
    ).scalar_one()
    return int(
        connection.execute(
            text(
                "INSERT INTO community (code, name, subdistrict_id, geom) VALUES"
                " ('110108011001', '八角北路社区', :sid,"
                " ST_SetSRID(ST_GeomFromWKB(decode(:g, 'hex')), 4326)) RETURNING id"
            ),
            {"sid": sid, "g": ewkb(shapely.box(X0, Y0, X0 + 2 * D, Y0 + 2 * D))},
        ).scalar_one()
    )


def insert_worker(connection: Connection, name: str, phone: str) -> int:
    return int(
        connection.execute(
            text("INSERT INTO grid_worker (name, phone) VALUES (:n, :p) RETURNING id"),
            {"n": name, "p": phone},
        ).scalar_one()
    )


def insert_grid(
    connection: Connection,
    code: str,
    geom: shapely.Geometry,
    *,
    community_id: int | None = None,
    worker_id: int | None = None,
    kind: str = "service",
    valid_from: datetime = PAST,
    valid_to: datetime | None = None,
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO grid (code, kind, community_id, worker_id, geom, valid_from, valid_to)"
                " VALUES (:code, :kind, :cid, :wid,"
                " ST_SetSRID(ST_GeomFromWKB(decode(:g, 'hex')), 4326), :vf, :vt) RETURNING id"
            ),
            {
                "code": code,
                "kind": kind,
                "cid": community_id,
                "wid": worker_id,
                "g": ewkb(geom),
                "vf": valid_from,
                "vt": valid_to,
            },
        ).scalar_one()
    )


# Bottom-left, bottom-right, top-left, top-right squares of D degrees.
SQUARES = {
    "110108011001004": shapely.box(X0, Y0, X0 + D, Y0 + D),
    "110108011001002": shapely.box(X0 + D, Y0, X0 + 2 * D, Y0 + D),
    "110108011001003": shapely.box(X0, Y0 + D, X0 + D, Y0 + 2 * D),
    "110108011001001": shapely.box(X0 + D, Y0 + D, X0 + 2 * D, Y0 + 2 * D),
}


@pytest.fixture
def squares(connection: Connection) -> dict[str, int]:
    """Four current service cells with one worker on the bottom-right cell."""
    community = insert_places(connection)
    worker = insert_worker(connection, "张三", "13800000000")
    return {
        code: insert_grid(
            connection,
            code,
            geom,
            community_id=community,
            worker_id=worker if code.endswith("002") else None,
        )
        for code, geom in SQUARES.items()
    }


def insert_building(connection: Connection, footprint: shapely.Polygon, number: str) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO building (source, source_id, name, number, footprint, area_m2)"
                " VALUES ('test', :sid, :name, :num,"
                " ST_SetSRID(ST_GeomFromWKB(decode(:g, 'hex')), 4326), 100) RETURNING id"
            ),
            {"sid": number, "name": f"{number}号楼", "num": number, "g": ewkb(footprint)},
        ).scalar_one()
    )


def insert_stairwell(
    connection: Connection, building: int, unit: int, lon: float, lat: float
) -> int:
    return int(
        connection.execute(
            text(
                "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
                " elderly, estimated, source) VALUES (:b, :u, ST_SetSRID(ST_MakePoint(:lon, :lat),"
                " 4326), 10, 26, 5, false, 'test') RETURNING id"
            ),
            {"b": building, "u": unit, "lon": lon, "lat": lat},
        ).scalar_one()
    )


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def test_point_inside_a_cell_gets_its_grid_worker_community_and_subdistrict(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + 1.5 * D, Y0 + 0.5 * D)
    assert found.inside_managed_area
    assert found.grid is not None
    assert found.grid.code == "110108011001002"
    assert found.grid.worker_name == "张三"
    assert found.community is not None and found.community.code == "110108011001"
    assert found.subdistrict is not None and found.subdistrict.code == "110108011"


def test_answer_never_contains_the_workers_phone(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + 1.5 * D, Y0 + 0.5 * D)
    assert "13800000000" not in repr(dataclasses.asdict(found))


def test_point_on_shared_edge_goes_to_lowest_code_and_is_near_the_other(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + D, Y0 + 0.5 * D)
    assert found.grid is not None and found.grid.code == "110108011001002"
    assert found.near_boundary is not None
    assert found.near_boundary.code == "110108011001004"
    assert found.near_boundary.distance_m == pytest.approx(0.0, abs=1e-6)


def test_point_on_shared_vertex_goes_to_lowest_code(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + D, Y0 + D)
    assert found.grid is not None and found.grid.code == "110108011001001"


def test_point_on_outer_boundary_is_inside_the_managed_area(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0, Y0 + 0.5 * D)
    assert found.inside_managed_area
    assert found.grid is not None and found.grid.code == "110108011001004"


def test_point_near_boundary_reports_other_code_and_distance_in_metres(
    connection: Connection, squares: dict[str, int]
) -> None:
    lon = X0 + D - 5.0 / 85_000  # about 5 m west of the edge x = X0 + D
    found = locate(connection, lon, Y0 + 0.5 * D)
    assert found.grid is not None and found.grid.code == "110108011001004"
    assert found.near_boundary is not None
    assert found.near_boundary.code == "110108011001002"
    expected = metres((lon, Y0 + 0.5 * D), (X0 + D, Y0 + 0.5 * D))
    assert 4.0 < expected < 6.0
    assert found.near_boundary.distance_m == pytest.approx(expected, abs=0.01)


def test_point_beyond_confirmation_distance_is_not_near_boundary(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + 0.5 * D, Y0 + 0.5 * D, near_boundary_m=10)
    assert found.near_boundary is None


def test_confirmation_distance_is_configurable(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 + 0.5 * D, Y0 + 0.5 * D, near_boundary_m=60)
    assert found.near_boundary is not None


def test_point_outside_every_cell_is_flagged_and_keeps_its_subdistrict(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, X0 - 5 * D, Y0 - 5 * D)
    assert not found.inside_managed_area
    assert found.grid is None
    assert found.community is None
    assert found.subdistrict is not None and found.subdistrict.code == "110108011"


def test_gcj02_input_lands_in_the_same_cell_as_wgs84(
    connection: Connection, squares: dict[str, int]
) -> None:
    wgs = (X0 + 1.3 * D, Y0 + 1.6 * D)
    found = locate(connection, *wgs84_to_gcj02(*wgs), crs="gcj02")
    assert found.grid is not None and found.grid.code == "110108011001001"
    assert metres((found.lon, found.lat), wgs) < 0.01


def test_bd09_input_lands_in_the_same_cell_as_wgs84(
    connection: Connection, squares: dict[str, int]
) -> None:
    wgs = (X0 + 0.3 * D, Y0 + 1.6 * D)
    found = locate(connection, *wgs84_to_bd09(*wgs), crs="bd09")
    assert found.grid is not None and found.grid.code == "110108011001003"


def test_gcj02_coordinates_read_as_wgs84_land_elsewhere(
    connection: Connection, squares: dict[str, int]
) -> None:
    found = locate(connection, *wgs84_to_gcj02(X0 + 1.3 * D, Y0 + 1.6 * D))
    assert found.grid is None or found.grid.code != "110108011001001"


def test_expired_cell_is_ignored_now_but_found_as_of_its_time(
    connection: Connection, squares: dict[str, int]
) -> None:
    old_area = shapely.box(X0 + 3 * D, Y0, X0 + 4 * D, Y0 + D)
    closed = datetime.now(UTC) - timedelta(days=30)
    insert_grid(connection, "110108011001009", old_area, valid_to=closed)
    assert locate(connection, X0 + 3.5 * D, Y0 + 0.5 * D).grid is None
    past = locate(connection, X0 + 3.5 * D, Y0 + 0.5 * D, as_of=closed - timedelta(days=1))
    assert past.grid is not None and past.grid.code == "110108011001009"


def test_unit_kind_answers_from_unit_cells(connection: Connection, squares: dict[str, int]) -> None:
    insert_grid(connection, "110108011001101", shapely.box(X0, Y0, X0 + 2 * D, Y0 + D), kind="unit")
    found = locate(connection, X0 + 1.5 * D, Y0 + 0.5 * D, kind="unit")
    assert found.grid is not None
    assert (found.grid.code, found.grid.kind) == ("110108011001101", "unit")


def test_nearest_building_and_stairwell_with_distances_in_metres(
    connection: Connection, squares: dict[str, int]
) -> None:
    near = insert_building(
        connection, shapely.box(X0 + 0.2 * D, Y0 + 0.2 * D, X0 + 0.4 * D, Y0 + 0.4 * D), "12"
    )
    insert_building(
        connection, shapely.box(X0 + 0.7 * D, Y0 + 0.7 * D, X0 + 0.9 * D, Y0 + 0.9 * D), "13"
    )
    entrance = (X0 + 0.4 * D, Y0 + 0.3 * D)
    stair = insert_stairwell(connection, near, 3, *entrance)
    point = (X0 + 0.5 * D, Y0 + 0.3 * D)
    found = locate(connection, *point)
    assert found.building is not None and found.building.number == "12"
    assert found.building.distance_m == pytest.approx(metres(point, entrance), abs=0.01)
    assert found.stairwell is not None
    assert (found.stairwell.id, found.stairwell.unit_no) == (stair, 3)
    assert found.stairwell.distance_m == pytest.approx(metres(point, entrance), abs=0.01)


def test_point_inside_a_building_is_zero_metres_from_it(
    connection: Connection, squares: dict[str, int]
) -> None:
    insert_building(
        connection, shapely.box(X0 + 0.2 * D, Y0 + 0.2 * D, X0 + 0.4 * D, Y0 + 0.4 * D), "12"
    )
    found = locate(connection, X0 + 0.3 * D, Y0 + 0.3 * D)
    assert found.building is not None and found.building.distance_m == 0.0


def test_no_building_within_search_distance_gives_none(
    connection: Connection, squares: dict[str, int]
) -> None:
    insert_building(
        connection, shapely.box(X0 + 0.2 * D, Y0 + 0.2 * D, X0 + 0.4 * D, Y0 + 0.4 * D), "12"
    )
    found = locate(connection, X0 + 1.8 * D, Y0 + 1.8 * D, search_m=50)
    assert found.building is None
    assert found.stairwell is None


def test_swapped_coordinates_inside_managed_area_raise_input_error(connection: Connection) -> None:
    # Where both orders are valid coordinates (longitude below 90°), the swap is detected.
    insert_grid(connection, "650102001001001", shapely.box(50.0, 30.0, 50.01, 30.01))
    with pytest.raises(InputError) as info:
        locate(connection, 30.005, 50.005)
    assert "swapped" in info.value.message


def test_unknown_crs_raises_input_error_naming_crs(connection: Connection) -> None:
    with pytest.raises(InputError) as info:
        locate(connection, X0, Y0, crs="utm")
    assert info.value.field == "crs"


def test_nan_latitude_raises_input_error_naming_lat(connection: Connection) -> None:
    with pytest.raises(InputError) as info:
        locate(connection, X0, float("nan"))
    assert info.value.field == "lat"


def test_non_numeric_longitude_raises_input_error_naming_lon(connection: Connection) -> None:
    with pytest.raises(InputError) as info:
        locate(connection, "東経116度", Y0)
    assert info.value.field == "lon"


def test_negative_confirmation_distance_raises_input_error(connection: Connection) -> None:
    with pytest.raises(InputError) as info:
        locate(connection, X0, Y0, near_boundary_m=-1)
    assert info.value.field == "near_boundary_m"


def test_naive_as_of_raises_input_error(connection: Connection) -> None:
    with pytest.raises(InputError) as info:
        locate(connection, X0, Y0, as_of=datetime(2026, 1, 1))
    assert info.value.field == "as_of"


def test_locate_agrees_with_cell_index_on_random_points_and_vertices(
    connection: Connection,
) -> None:
    rng = np.random.default_rng(3)
    n = 8
    gx, gy = np.meshgrid(np.arange(n + 1) * D + X0, np.arange(n + 1) * D + Y0, indexing="ij")
    gx = gx + rng.uniform(-0.3, 0.3, gx.shape) * D
    gy = gy + rng.uniform(-0.3, 0.3, gy.shape) * D
    cells = [
        shapely.Polygon(
            [
                (gx[i, j], gy[i, j]),
                (gx[i + 1, j], gy[i + 1, j]),
                (gx[i + 1, j + 1], gy[i + 1, j + 1]),
                (gx[i, j + 1], gy[i, j + 1]),
            ]
        )
        for i in range(n)
        for j in range(n)
    ]
    codes = [f"110108011{c:06d}" for c in rng.choice(900_000, len(cells), replace=False) + 100_000]
    for code, cell in zip(codes, cells, strict=True):
        insert_grid(connection, code, cell)
    vertices = np.column_stack([gx.ravel(), gy.ravel()])[rng.integers(0, gx.size, 60)]
    random = np.column_stack(
        [rng.uniform(X0 - D, X0 + (n + 1) * D, 140), rng.uniform(Y0 - D, Y0 + (n + 1) * D, 140)]
    )
    points = np.concatenate([vertices, random])
    index = CellIndex.from_geometries(cells, codes)
    expected = [codes[k] if k >= 0 else None for k in index.assign(points[:, 0], points[:, 1])]
    found = [locate(connection, float(x), float(y)).grid for x, y in points]
    assert [g.code if g else None for g in found] == expected
    assert sum(e is None for e in expected) > 10


def _box_east_of(lon: float, lat: float, metres_east: float) -> shapely.Polygon:
    west = lon + metres_east / 85_000.0
    return shapely.box(west, lat - 0.0001, west + 0.0002, lat + 0.0001)


def test_nearest_building_beyond_the_first_ring_is_the_nearest_one(
    connection: Connection, squares: dict[str, int]
) -> None:
    point = (X0 + 1.8 * D, Y0 + 1.8 * D)
    insert_building(connection, _box_east_of(*point, 400.0), "40")
    insert_building(connection, _box_east_of(*point, 120.0), "12")
    found = locate(connection, *point)
    assert found.building is not None and found.building.number == "12"
    edge = (point[0] + 120.0 / 85_000.0, point[1])
    assert found.building.distance_m == pytest.approx(metres(point, edge), abs=0.01)


def test_nearest_building_in_the_outer_ring_up_to_the_search_distance(
    connection: Connection, squares: dict[str, int]
) -> None:
    point = (X0 + 1.8 * D, Y0 + 1.8 * D)
    insert_building(connection, _box_east_of(*point, 600.0), "60")
    assert locate(connection, *point, search_m=500).building is None
    found = locate(connection, *point, search_m=1_000)
    assert found.building is not None and found.building.number == "60"
    assert 590.0 < found.building.distance_m < 610.0


def test_nearest_building_and_stairwell_equal_an_independent_geodesic_search(
    connection: Connection, squares: dict[str, int]
) -> None:
    """Seeded buildings and entrances, dense in one corner and sparse elsewhere.

    Points near the dense corner are answered by the one-round-trip statement, points far
    from everything by the exhaustive one (rings up to the search distance); both must name
    the thing nearest on the spheroid (pyproj's geodesic) and its distance.
    """
    rng = np.random.default_rng(20261122)
    centres = np.column_stack(
        (
            np.concatenate((rng.uniform(X0, X0 + D, 60), rng.uniform(X0, X0 + 8 * D, 15))),
            np.concatenate((rng.uniform(Y0, Y0 + D, 60), rng.uniform(Y0, Y0 + 8 * D, 15))),
        )
    )
    half = 0.00004
    footprints = {}
    entrances = {}
    for i, (x, y) in enumerate(centres):
        footprint = shapely.box(x - half, y - half / 2, x + half, y + half / 2)
        building = insert_building(connection, footprint, str(i + 1))
        footprints[building] = footprint
        entrance = (float(x), float(y - half / 2))
        entrances[insert_stairwell(connection, building, 1, *entrance)] = entrance
    points = np.column_stack(
        (rng.uniform(X0 - 2 * D, X0 + 10 * D, 150), rng.uniform(Y0 - 2 * D, Y0 + 10 * D, 150))
    )
    checked = 0
    for lon, lat in points:
        found = locate(connection, float(lon), float(lat))
        point = (float(lon), float(lat))
        # Geodesic distance to an entrance; to a footprint, to its nearest point (exact for
        # these small boxes within the 1e-4 relative tolerance below).
        to_entrance = {k: metres(point, e) for k, e in entrances.items()}
        to_building = {
            k: metres(point, shapely.ops.nearest_points(f, shapely.Point(point))[0].coords[0])
            for k, f in footprints.items()
        }
        for answer, distances in ((found.stairwell, to_entrance), (found.building, to_building)):
            ranked = sorted(distances.items(), key=lambda item: item[1])
            if ranked[0][1] > 1_000.0:
                assert answer is None
                continue
            assert answer is not None
            assert answer.distance_m == pytest.approx(ranked[0][1], rel=1e-4, abs=0.01)
            if ranked[1][1] - ranked[0][1] > 0.05:  # a clear winner
                assert answer.id == ranked[0][0]
                checked += 1
    assert checked > 250


def test_cell_without_community_takes_the_community_covering_the_point(
    connection: Connection,
) -> None:
    community = insert_places(connection)
    insert_grid(connection, "110108011001001", shapely.box(X0, Y0, X0 + D, Y0 + D))
    found = locate(connection, X0 + 0.5 * D, Y0 + 0.5 * D)
    assert found.grid is not None and found.grid.code == "110108011001001"
    assert found.community is not None and found.community.id == community
    assert found.subdistrict is not None and found.subdistrict.code == "110108011"
