import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import CRS

from gis.crs import local_crs, project_geometries, to_metres, to_wgs84, utm_epsg, utm_zones
from gis.errors import InputError


def test_beijing_is_in_utm_50n() -> None:
    assert utm_epsg(116.397428, 39.90923) == 32650


def test_nanjing_is_in_utm_50n() -> None:
    assert utm_epsg(118.7838, 32.0415) == 32650


def test_helsinki_is_in_utm_35n() -> None:
    assert utm_epsg(24.9384, 60.1699) == 32635


def test_southern_hemisphere_uses_the_327xx_codes() -> None:
    # Johannesburg 28.05°E 26.2°S: zone 35 south; Sydney 151.2°E 33.9°S: zone 56 south.
    assert utm_epsg(28.0473, -26.2041) == 32735
    assert utm_epsg(151.2093, -33.8688) == 32756


def test_equator_belongs_to_the_northern_zone() -> None:
    assert utm_epsg(0.5, 0.0) == 32631


def test_zone_edges_and_the_antimeridian() -> None:
    assert utm_zones([-180.0, 180.0, 114.0, 113.999], [10.0] * 4).tolist() == [
        32601,
        32660,
        32650,
        32649,
    ]


def test_norway_and_svalbard_exceptions() -> None:
    # Bergen (5.3°E) is in zone 32, not 31; Longyearbyen (15.6°E, 78.2°N) in zone 33.
    assert utm_epsg(5.3221, 60.3913) == 32632
    assert utm_epsg(15.6356, 78.2232) == 32633


def test_latitude_outside_utm_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError) as info:
        utm_epsg(10.0, 85.0)
    assert info.value.field == "lat"


def test_longitude_out_of_range_is_refused() -> None:
    with pytest.raises(InputError) as info:
        utm_epsg(190.0, 10.0)
    assert info.value.field == "lon"


def test_local_crs_uses_the_centre_of_the_data() -> None:
    points = shapely.points([[116.30, 39.99], [116.34, 40.01]])
    assert local_crs(points).to_epsg() == 32650


def test_to_metres_gives_true_lengths() -> None:
    # 0.001° of latitude is about 111 m anywhere.
    line = shapely.linestrings([[116.35, 39.98], [116.35, 39.981]])
    projected = to_metres(gpd.GeoSeries([line], crs=4326))
    assert projected.crs.to_epsg() == 32650
    assert projected.length.iloc[0] == pytest.approx(111.0, abs=0.5)


def test_to_metres_refuses_a_series_without_crs() -> None:
    with pytest.raises(InputError) as info:
        to_metres(gpd.GeoSeries([shapely.Point(116.3, 39.9)]))
    assert info.value.field == "crs"


def test_to_metres_refuses_a_series_already_projected() -> None:
    with pytest.raises(InputError):
        to_metres(gpd.GeoSeries([shapely.Point(450_000, 4_420_000)], crs=32650))


def test_round_trip_to_metres_and_back_is_sub_millimetre() -> None:
    points = gpd.GeoSeries(shapely.points([[118.78, 32.04], [118.79, 32.05]]), crs=4326)
    back = to_wgs84(to_metres(points))
    assert back.crs == CRS.from_epsg(4326)
    assert (
        np.abs(shapely.get_coordinates(back.values) - shapely.get_coordinates(points.values)).max()
        < 1e-8
    )


def test_project_geometries_keeps_missing_geometries() -> None:
    geoms = np.array([shapely.Point(24.94, 60.17), None], dtype=object)
    projected = project_geometries(geoms, source=4326, target=32635)
    assert projected[1] is None
    x, y = shapely.get_coordinates(projected[0])[0]
    assert 380_000 < x < 400_000
    assert 6_660_000 < y < 6_680_000
