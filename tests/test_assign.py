"""In-memory point-to-cell assignment: covers, lowest-code tie rule, crs, near boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from gis.assign import CellIndex
from gis.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.errors import InputError

X0, Y0, D = 116.30, 39.90, 0.001


@dataclass(frozen=True)
class Grid:
    geoms: np.ndarray
    codes: np.ndarray
    vertices: np.ndarray  # (k, 2) every lattice vertex
    edges: np.ndarray  # (m, 4) x0, y0, x1, y1 of lattice edges
    line_x: float  # an exactly vertical lattice line
    hole: shapely.Polygon  # the island filling the hole of one cell


def make_grid(n: int = 30, seed: int = 7, *, overlap: bool = True) -> Grid:
    """A jittered n x n lattice with a gap, a holed cell plus island, a multipolygon, an overlap."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.arange(n + 1) * D + X0, np.arange(n + 1) * D + Y0, indexing="ij")
    gx = gx + rng.uniform(-0.3, 0.3, gx.shape) * D
    gy = gy + rng.uniform(-0.3, 0.3, gy.shape) * D
    line = n // 2
    gx[line, :] = X0 + line * D  # one exactly vertical line: points on it are exactly on edges
    cells: dict[tuple[int, int], shapely.Polygon] = {}
    for i in range(n):
        for j in range(n):
            ring = [
                (gx[i, j], gy[i, j]),
                (gx[i + 1, j], gy[i + 1, j]),
                (gx[i + 1, j + 1], gy[i + 1, j + 1]),
                (gx[i, j + 1], gy[i, j + 1]),
            ]
            cells[(i, j)] = shapely.Polygon(ring)
    del cells[(3, 4)]  # a gap inside the managed area
    holed = cells[(10, 10)]
    cx, cy = holed.centroid.x, holed.centroid.y
    island = shapely.box(cx - 0.1 * D, cy - 0.1 * D, cx + 0.1 * D, cy + 0.1 * D)
    cells[(10, 10)] = shapely.Polygon(holed.exterior.coords, [island.exterior.coords])
    merged = shapely.MultiPolygon([cells.pop((20, 20)), cells.pop((25, 5))])
    geoms = [*cells.values(), island, merged]
    # A cell overlapping a 3 x 3 block of others (bad data, but the tie rule must still hold).
    if overlap:
        geoms.append(shapely.box(X0 + 5.5 * D, Y0 + 20.5 * D, X0 + 8.5 * D, Y0 + 23.5 * D))
    codes = np.array(
        [f"110108011{c:06d}" for c in rng.choice(900_000, len(geoms), replace=False) + 100_000]
    )
    edges = np.concatenate(
        [
            np.column_stack(
                [gx[:-1, :].ravel(), gy[:-1, :].ravel(), gx[1:, :].ravel(), gy[1:, :].ravel()]
            ),
            np.column_stack(
                [gx[:, :-1].ravel(), gy[:, :-1].ravel(), gx[:, 1:].ravel(), gy[:, 1:].ravel()]
            ),
        ]
    )
    return Grid(
        geoms=np.array(geoms, dtype=object),
        codes=codes,
        vertices=np.column_stack([gx.ravel(), gy.ravel()]),
        edges=edges,
        line_x=float(X0 + line * D),
        hole=island,
    )


def make_points(grid: Grid, count: int = 100_000, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Random points plus points exactly on vertices, on edges, on the hole ring and far outside."""
    rng = np.random.default_rng(seed)
    n = 30
    lo_x, lo_y, hi_x, hi_y = X0 - 2 * D, Y0 - 2 * D, X0 + (n + 2) * D, Y0 + (n + 2) * D
    uniform = count - 30_000
    xs = [rng.uniform(lo_x, hi_x, uniform)]
    ys = [rng.uniform(lo_y, hi_y, uniform)]
    vertex = grid.vertices[rng.integers(0, len(grid.vertices), 10_000)]
    xs.append(vertex[:, 0])
    ys.append(vertex[:, 1])
    xs.append(np.full(10_000, grid.line_x))
    ys.append(rng.uniform(Y0 - D, Y0 + (n + 1) * D, 10_000))
    edge = grid.edges[rng.integers(0, len(grid.edges), 8_000)]
    t = rng.uniform(0, 1, 8_000)
    xs.append(edge[:, 0] + t * (edge[:, 2] - edge[:, 0]))
    ys.append(edge[:, 1] + t * (edge[:, 3] - edge[:, 1]))
    hole = np.asarray(grid.hole.exterior.coords)
    pick = hole[rng.integers(0, len(hole), 1_000)]
    xs.append(pick[:, 0])
    ys.append(pick[:, 1])
    xs.append(rng.uniform(0, 10, 1_000))
    ys.append(rng.uniform(0, 10, 1_000))
    return np.concatenate(xs), np.concatenate(ys)


def covers_reference(
    geoms: np.ndarray, codes: np.ndarray, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Independent answer: GEOS ``covers`` on bounding-box candidates, lowest code wins."""
    points = np.asarray(shapely.points(x, y), dtype=object)
    point_idx, cell_idx = shapely.STRtree(geoms).query(points)
    hit = shapely.covers(geoms[cell_idx], points[point_idx])
    point_idx, cell_idx = point_idx[hit], cell_idx[hit]
    order = np.lexsort((codes[cell_idx].astype(np.int64), point_idx))
    point_idx, cell_idx = point_idx[order], cell_idx[order]
    first = np.r_[True, point_idx[1:] != point_idx[:-1]]
    result = np.full(x.size, -1, dtype=np.int64)
    result[point_idx[first]] = cell_idx[first]
    return result


@pytest.fixture(scope="module")
def grid() -> Grid:
    return make_grid()


@pytest.fixture(scope="module")
def index(grid: Grid) -> CellIndex:
    return CellIndex.from_geometries(grid.geoms, grid.codes)


@pytest.fixture(scope="module")
def points(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    return make_points(grid)


def squares(codes: list[str]) -> CellIndex:
    """2 x 2 squares of D degrees; codes: bottom-left, bottom-right, top-left, top-right."""
    boxes = [
        shapely.box(X0, Y0, X0 + D, Y0 + D),
        shapely.box(X0 + D, Y0, X0 + 2 * D, Y0 + D),
        shapely.box(X0, Y0 + D, X0 + D, Y0 + 2 * D),
        shapely.box(X0 + D, Y0 + D, X0 + 2 * D, Y0 + 2 * D),
    ]
    return CellIndex.from_geometries(boxes, codes)


CODES = ["110108011000004", "110108011000002", "110108011000003", "110108011000001"]


def test_assignment_equals_independent_covers_test_for_100k_points(
    grid: Grid, index: CellIndex, points: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = points
    assert x.size == 100_000
    expected = covers_reference(grid.geoms, grid.codes, x, y)
    assert np.array_equal(index.assign(x, y), expected)


def test_sample_exercises_ties_outside_points_and_code_order(
    grid: Grid, points: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = points
    pts = shapely.points(x, y)
    point_idx, cell_idx = shapely.STRtree(grid.geoms).query(pts, predicate="covered_by")
    covering = np.bincount(point_idx, minlength=x.size)
    assert (covering >= 2).sum() > 20_000
    assert (covering == 0).sum() > 5_000
    # Lowest code differs from lowest input position for many ties, so the rule is really tested.
    expected = covers_reference(grid.geoms, grid.codes, x, y)
    lowest_position = np.full(x.size, len(grid.geoms))
    np.minimum.at(lowest_position, point_idx, cell_idx)
    tied = covering >= 2
    assert (expected[tied] != lowest_position[tied]).sum() > 1_000


def test_result_does_not_depend_on_bucket_resolution(
    grid: Grid, index: CellIndex, points: tuple[np.ndarray, np.ndarray]
) -> None:
    coarse = CellIndex.from_geometries(grid.geoms, grid.codes, buckets_per_cell=1)
    fine = CellIndex.from_geometries(grid.geoms, grid.codes, buckets_per_cell=2_000)
    x, y = points
    assert np.array_equal(coarse.assign(x, y), fine.assign(x, y))


def test_point_on_shared_edge_goes_to_lowest_code() -> None:
    cells = squares(CODES)
    # On the edge between bottom-left (…004) and bottom-right (…002).
    assert cells.assign([X0 + D], [Y0 + 0.5 * D]).tolist() == [1]


def test_point_on_shared_vertex_goes_to_lowest_code() -> None:
    cells = squares(CODES)
    assert cells.assign([X0 + D], [Y0 + D]).tolist() == [3]


def test_point_on_outer_boundary_counts_as_inside() -> None:
    cells = squares(CODES)
    assert cells.assign([X0, X0 + 0.5 * D], [Y0 + 0.5 * D, Y0]).tolist() == [0, 0]


def test_point_outside_every_cell_gets_minus_one() -> None:
    cells = squares(CODES)
    assert cells.assign([X0 - D, 0.0], [Y0, 0.0]).tolist() == [-1, -1]


def test_default_ids_break_ties_by_position() -> None:
    cells = CellIndex.from_geometries(
        [shapely.box(X0 + D, Y0, X0 + 2 * D, Y0 + D), shapely.box(X0, Y0, X0 + D, Y0 + D)]
    )
    assert cells.assign([X0 + D], [Y0 + 0.5 * D]).tolist() == [0]


def test_point_in_hole_goes_to_island_cell(grid: Grid, index: CellIndex) -> None:
    centre = grid.hole.centroid
    island = int(np.flatnonzero(grid.geoms == grid.hole)[0])
    assert index.assign([centre.x], [centre.y]).tolist() == [island]


def test_non_finite_points_are_outside(index: CellIndex) -> None:
    result = index.assign([np.nan, X0 + 0.5 * D, np.inf], [Y0, np.nan, Y0])
    assert result.tolist() == [-1, -1, -1]


def test_scalar_point_returns_one_element_array() -> None:
    assert squares(CODES).assign(X0 + 0.2 * D, Y0 + 0.2 * D).tolist() == [0]


def _interior(grid: Grid, index: CellIndex, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points more than ~1 cm (1e-7 degrees) from every cell boundary."""
    cells = index.assign(x, y)
    boundaries = shapely.boundary(grid.geoms)
    near = shapely.STRtree(boundaries).query(
        shapely.points(x, y), predicate="dwithin", distance=1e-7
    )
    keep = np.ones(x.size, dtype=bool)
    keep[near[0]] = False
    return keep & (cells >= 0)


def test_gcj02_points_land_in_the_same_cell_as_wgs84_originals(
    grid: Grid, index: CellIndex, points: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = points[0][:60_000], points[1][:60_000]
    keep = _interior(grid, index, x, y)
    assert keep.sum() > 40_000
    gx, gy = wgs84_to_gcj02(x[keep], y[keep])
    assert np.array_equal(index.assign(gx, gy, crs="gcj02"), index.assign(x[keep], y[keep]))


def test_bd09_points_land_in_the_same_cell_as_wgs84_originals(
    grid: Grid, index: CellIndex, points: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = points[0][:60_000], points[1][:60_000]
    keep = _interior(grid, index, x, y)
    bx, by = wgs84_to_bd09(x[keep], y[keep])
    assert np.array_equal(index.assign(bx, by, crs="bd09"), index.assign(x[keep], y[keep]))


def test_gcj02_input_treated_as_wgs84_lands_elsewhere(
    grid: Grid, index: CellIndex, points: tuple[np.ndarray, np.ndarray]
) -> None:
    # The ~500 m shift matters: skipping the conversion moves most points to another cell.
    x, y = points[0][:10_000], points[1][:10_000]
    gx, gy = wgs84_to_gcj02(x, y)
    shifted, original = index.assign(gx, gy), index.assign(x, y)
    both = (shifted >= 0) & (original >= 0)
    assert (shifted[both] != original[both]).mean() > 0.9


def test_mismatched_shapes_raise_input_error_naming_lat(index: CellIndex) -> None:
    with pytest.raises(InputError) as info:
        index.assign([X0, X0], [Y0])
    assert info.value.field == "lat"


def test_non_numeric_longitude_raises_input_error_naming_lon(index: CellIndex) -> None:
    with pytest.raises(InputError) as info:
        index.assign(["east"], [Y0])
    assert info.value.field == "lon"


def test_unknown_crs_raises_input_error_naming_crs(index: CellIndex) -> None:
    with pytest.raises(InputError) as info:
        index.assign([X0], [Y0], crs="mercator")
    assert info.value.field == "crs"


def test_invalid_polygon_raises_input_error_naming_row() -> None:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(InputError) as info:
        CellIndex.from_geometries([shapely.box(0, 0, 1, 1), bowtie])
    assert info.value.field == "geometries"
    assert "row 1" in info.value.message


def test_non_polygon_geometry_raises_input_error() -> None:
    with pytest.raises(InputError) as info:
        CellIndex.from_geometries([shapely.Point(0, 0)])
    assert info.value.field == "geometries"


def test_projected_coordinates_raise_input_error() -> None:
    with pytest.raises(InputError) as info:
        CellIndex.from_geometries([shapely.box(441_000, 4_417_000, 441_100, 4_417_100)])
    assert info.value.field == "geometries"
    assert "WGS84" in info.value.message


def test_duplicate_ids_raise_input_error_naming_ids() -> None:
    with pytest.raises(InputError) as info:
        CellIndex.from_geometries([shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)], ["a", "a"])
    assert info.value.field == "ids"


# -- near boundary ---------------------------------------------------------------------------

TO_WGS = Transformer.from_crs(32650, 4326, always_xy=True)
E0, N0 = 441_000.0, 4_417_000.0  # UTM 50N, near Tiananmen


def metric_squares() -> CellIndex:
    """Two 100 m squares side by side (codes …002 west, …001 east), built in UTM 50N."""

    def square(e: float) -> shapely.Polygon:
        xs = np.array([e, e + 100, e + 100, e])
        ys = np.array([N0, N0, N0 + 100, N0 + 100])
        lon, lat = TO_WGS.transform(xs, ys)
        return shapely.Polygon(np.column_stack([lon, lat]))

    return CellIndex.from_geometries(
        [square(E0), square(E0 + 100)], ["110108011000002", "110108011000001"]
    )


def lonlat(e: float, n: float) -> tuple[list[float], list[float]]:
    lon, lat = TO_WGS.transform(e, n)
    return [lon], [lat]


def test_point_near_shared_edge_reports_other_cell_and_distance_in_metres() -> None:
    near = metric_squares().near_boundary(*lonlat(E0 + 95, N0 + 50))
    assert near.other.tolist() == [1]
    assert near.distance_m[0] == pytest.approx(5.0, abs=0.01)


def test_point_beyond_threshold_is_not_flagged() -> None:
    near = metric_squares().near_boundary(*lonlat(E0 + 85, N0 + 50), threshold_m=10)
    assert near.flagged.tolist() == [False]
    assert np.isnan(near.distance_m[0])


def test_threshold_is_configurable() -> None:
    near = metric_squares().near_boundary(*lonlat(E0 + 85, N0 + 50), threshold_m=20)
    assert near.distance_m[0] == pytest.approx(15.0, abs=0.01)


def test_point_on_shared_edge_is_assigned_lowest_code_and_near_the_other_at_zero() -> None:
    cells = metric_squares()
    lon, lat = lonlat(E0 + 100, N0 + 50)
    own = cells.assign(lon, lat)
    near = cells.near_boundary(lon, lat, own)
    assert own.tolist() == [1]
    assert near.other.tolist() == [0]
    assert near.distance_m[0] == pytest.approx(0.0, abs=0.01)


def test_outside_point_reports_nearest_cell_within_threshold() -> None:
    near = metric_squares().near_boundary(*lonlat(E0 - 3, N0 + 50))
    assert near.other.tolist() == [0]
    assert near.distance_m[0] == pytest.approx(3.0, abs=0.01)


def near_reference(
    grid: Grid, own: np.ndarray, x: np.ndarray, y: np.ndarray, threshold_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: distance in UTM 50N from every point to every cell, nearest other one."""
    to_utm = Transformer.from_crs(4326, 32650, always_xy=True)
    cells = shapely.transform(
        grid.geoms, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )
    points = shapely.points(*to_utm.transform(x, y))
    codes = grid.codes.astype(np.int64)
    other = np.full(x.size, -1)
    distance = np.full(x.size, np.nan)
    for k in range(x.size):
        d = shapely.distance(cells, points[k])
        if own[k] >= 0:
            d[own[k]] = np.inf
        close = np.flatnonzero(d <= threshold_m)
        if close.size:
            best = close[np.lexsort((codes[close], d[close]))[0]]
            other[k], distance[k] = best, d[best]
    return other, distance


@pytest.mark.parametrize("overlap", [False, True])
def test_near_boundary_equals_brute_force_distances(overlap: bool) -> None:
    grid = make_grid(overlap=overlap)
    cells = CellIndex.from_geometries(grid.geoms, grid.codes)
    rng = np.random.default_rng(5)
    x = rng.uniform(X0 - 0.5 * D, X0 + 30.5 * D, 1_000)
    y = rng.uniform(Y0 - 0.5 * D, Y0 + 30.5 * D, 1_000)
    own = cells.assign(x, y)
    near = cells.near_boundary(x, y, own, threshold_m=12.0)
    other, distance = near_reference(grid, own, x, y, 12.0)
    assert near.flagged.sum() > 100
    assert np.array_equal(near.other, other)
    assert np.allclose(near.distance_m, distance, atol=1e-6, equal_nan=True)


def test_negative_threshold_raises_input_error() -> None:
    with pytest.raises(InputError) as info:
        metric_squares().near_boundary(*lonlat(E0, N0), threshold_m=-1)
    assert info.value.field == "threshold_m"


def test_near_boundary_uses_local_utm_zone() -> None:
    assert metric_squares().utm_epsg == 32650
