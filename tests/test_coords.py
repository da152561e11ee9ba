"""WGS84 / GCJ-02 / BD-09 conversions, input validation and the swapped lat/lon detector."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod

from gis.coords import (
    CoordinateSystem,
    bd09_to_gcj02,
    bd09_to_wgs84,
    convert,
    detect_swapped,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    parse_crs,
    to_wgs84,
    utm_epsg,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from gis.errors import InputError

GEOD = Geod(ellps="WGS84")
# Published reference: Tiananmen.
WGS = (116.397428, 39.90923)
GCJ = (116.403672, 39.910634)
BD = (116.410044, 39.916973)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def china_grid() -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.linspace(73.5, 134.5, 62), np.linspace(18.2, 53.4, 45))
    return lon.ravel(), lat.ravel()


def test_wgs84_to_gcj02_matches_reference_point_within_1_m() -> None:
    assert metres(wgs84_to_gcj02(*WGS), GCJ) < 1.0


def test_wgs84_to_bd09_matches_reference_point_within_1_m() -> None:
    assert metres(wgs84_to_bd09(*WGS), BD) < 1.0


def test_gcj02_to_bd09_matches_reference_point_within_1_m() -> None:
    assert metres(gcj02_to_bd09(*GCJ), BD) < 1.0


def test_gcj02_reference_point_converts_back_to_wgs84_within_1_m() -> None:
    assert metres(gcj02_to_wgs84(*GCJ), WGS) < 1.0


def test_bd09_reference_point_converts_back_to_wgs84_within_1_m() -> None:
    assert metres(bd09_to_wgs84(*BD), WGS) < 1.0


def test_gcj02_round_trip_error_is_below_half_a_metre_across_china() -> None:
    lon, lat = china_grid()
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    error = GEOD.inv(lon, lat, back_lon, back_lat)[2]
    assert np.max(error) < 0.5


def test_bd09_round_trip_error_is_below_half_a_metre_across_china() -> None:
    lon, lat = china_grid()
    back_lon, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    error = GEOD.inv(lon, lat, back_lon, back_lat)[2]
    assert np.max(error) < 0.5


def test_bd09_to_gcj02_inverts_gcj02_to_bd09_below_half_a_metre() -> None:
    lon, lat = china_grid()
    back_lon, back_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert np.max(GEOD.inv(lon, lat, back_lon, back_lat)[2]) < 0.5


def test_gcj02_shifts_points_inside_china_by_tens_to_hundreds_of_metres() -> None:
    lon, lat = china_grid()
    shifted = wgs84_to_gcj02(lon, lat)
    shift = GEOD.inv(lon, lat, shifted[0], shifted[1])[2]
    assert np.all(shift > 10.0)
    assert np.all(shift < 1000.0)


def test_gcj02_leaves_points_outside_china_unchanged() -> None:
    helsinki = (24.9384, 60.1699)
    assert wgs84_to_gcj02(*helsinki) == helsinki
    assert gcj02_to_wgs84(*helsinki) == helsinki


def test_out_of_china_uses_the_rough_bounding_box() -> None:
    result = out_of_china(np.array([116.4, 24.9, 140.0, 100.0]), np.array([39.9, 60.2, 35.0, 0.5]))
    assert result.tolist() == [False, True, True, True]


def test_scalar_input_returns_python_floats() -> None:
    lon, lat = wgs84_to_gcj02(*WGS)
    assert type(lon) is float
    assert type(lat) is float


def test_array_input_returns_arrays_of_the_same_shape() -> None:
    lon = np.full((3, 4), WGS[0])
    lat = np.full((3, 4), WGS[1])
    out_lon, out_lat = wgs84_to_bd09(lon, lat)
    assert out_lon.shape == (3, 4)
    assert out_lat.shape == (3, 4)
    assert metres((float(out_lon[2, 3]), float(out_lat[2, 3])), BD) < 1.0


def test_convert_between_gcj02_and_bd09_matches_reference() -> None:
    assert metres(convert(*BD, source="bd09", target="gcj02"), GCJ) < 1.0


def test_to_wgs84_converts_gcj02_input() -> None:
    assert metres(to_wgs84(*GCJ, "gcj02"), WGS) < 1.0


def test_to_wgs84_converts_bd09_input() -> None:
    assert metres(to_wgs84(*BD, CoordinateSystem.BD09), WGS) < 1.0


def test_to_wgs84_leaves_wgs84_input_unchanged() -> None:
    assert to_wgs84(*WGS) == WGS


def test_crs_names_are_case_insensitive() -> None:
    assert parse_crs(" GCJ02 ") is CoordinateSystem.GCJ02


def test_unknown_crs_raises_input_error_naming_crs() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(*WGS, "epsg:3857")
    assert info.value.field == "crs"


def test_non_numeric_longitude_raises_input_error_naming_lon() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84("east", 39.9)
    assert info.value.field == "lon"


def test_boolean_latitude_raises_input_error_naming_lat() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(116.4, True)
    assert info.value.field == "lat"


def test_nan_latitude_raises_input_error_naming_lat() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(116.4, float("nan"))
    assert info.value.field == "lat"


def test_infinite_longitude_in_array_names_lon_and_index() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(np.array([116.4, np.inf]), np.array([39.9, 39.9]), "gcj02")
    assert info.value.field == "lon"
    assert "index 1" in info.value.message


def test_longitude_out_of_range_raises_input_error_naming_lon() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(180.5, 39.9)
    assert info.value.field == "lon"


def test_latitude_out_of_range_raises_and_suggests_swap() -> None:
    with pytest.raises(InputError) as info:
        to_wgs84(39.9, 116.4)
    assert info.value.field == "lat"
    assert "swapped" in info.value.message


def test_numeric_strings_are_accepted() -> None:
    assert to_wgs84("116.397428", "39.90923") == WGS


def test_detect_swapped_reports_point_whose_swap_falls_inside_area() -> None:
    area = shapely.box(116.30, 39.85, 116.45, 39.95)
    assert detect_swapped(39.90923, 116.397428, area) is True


def test_detect_swapped_is_false_for_correct_order() -> None:
    area = shapely.box(116.30, 39.85, 116.45, 39.95)
    assert detect_swapped(*WGS, area) is False


def test_detect_swapped_is_false_when_neither_order_is_inside() -> None:
    assert detect_swapped(10.0, 20.0, (116.30, 39.85, 116.45, 39.95)) is False


def test_detect_swapped_accepts_arrays_and_input_crs() -> None:
    area = shapely.box(116.39, 39.90, 116.40, 39.915)
    # GCJ-02 Tiananmen is outside this WGS84 box's longitudes unless converted first.
    result = detect_swapped(
        np.array([GCJ[1], GCJ[0]]), np.array([GCJ[0], GCJ[1]]), area, crs="gcj02"
    )
    assert result.tolist() == [True, False]


def test_detect_swapped_rejects_non_numeric_input_naming_the_field() -> None:
    with pytest.raises(InputError) as info:
        detect_swapped("abc", 39.9, (116.30, 39.85, 116.45, 39.95))
    assert info.value.field == "lon"


def test_utm_epsg_picks_zone_50_north_for_beijing() -> None:
    assert utm_epsg(*WGS) == 32650


def test_utm_epsg_picks_southern_zone_for_sydney() -> None:
    assert utm_epsg(151.2, -33.9) == 32756


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_one_point_converts_as_the_same_point_in_an_array(system: str) -> None:
    """A request's single point takes a scalar path (math, not numpy): same answer."""
    rng = np.random.default_rng(7)
    lon = rng.uniform(60.0, 150.0, 500)  # inside and outside the China box
    lat = rng.uniform(-5.0, 60.0, 500)
    forward = wgs84_to_gcj02 if system == "gcj02" else wgs84_to_bd09
    given_lon, given_lat = forward(lon, lat)
    array_lon, array_lat = to_wgs84(given_lon, given_lat, system)
    for i in range(lon.size):
        one = to_wgs84(str(given_lon[i]), float(given_lat[i]), system)
        assert one == pytest.approx((array_lon[i], array_lat[i]), abs=1e-10)
        assert one == pytest.approx((lon[i], lat[i]), abs=1e-8)
