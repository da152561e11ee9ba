"""Optional basemap: none by default; GCJ-02 tile sources shift our WGS84 data for display."""

import re

import pytest

from gis.coords import wgs84_to_gcj02
from gis.features import BBox
from layers import CATALOGUE
from layers.webmap import MapSettings, layer_map, page_html

AMAP = "http://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}&style=8"
TIANANMEN = BBox(116.397428, 39.90923, 116.397428, 39.90923)


def fit_bounds(page: str) -> tuple[float, ...]:
    match = re.search(r"fitBounds\(\s*\[\[([-\d.]+), ([-\d.]+)\], \[([-\d.]+), ([-\d.]+)\]\]", page)
    assert match is not None
    return tuple(map(float, match.groups()))


def render(tiles: MapSettings) -> str:
    return page_html(layer_map([CATALOGUE["buildings"]], bounds=TIANANMEN, limit=10, tiles=tiles))


def test_no_tile_layer_without_a_tile_url() -> None:
    assert "L.tileLayer" not in render(MapSettings(tile_url=None))


@pytest.mark.parametrize(
    ("url", "crs", "shift"),
    [
        (AMAP, "auto", True),
        ("http://rt0.map.gtimg.com/tile?z={z}&x={x}&y={y}", "auto", True),
        ("http://127.0.0.1:8080/{z}/{x}/{y}.png", "auto", False),
        ("http://127.0.0.1:8080/{z}/{x}/{y}.png", "gcj02", True),
        (AMAP, "wgs84", False),
    ],
)
def test_gcj02_sources_are_recognised(url: str, crs: str, shift: bool) -> None:
    assert MapSettings(tile_url=url, tile_crs=crs).shift() is shift


def test_a_gcj02_basemap_opens_on_the_shifted_extent() -> None:
    page = render(MapSettings(tile_url=AMAP))
    assert "L.tileLayer" in page
    south, west, _, _ = fit_bounds(page)
    lon, lat = wgs84_to_gcj02(116.397428, 39.90923)
    assert (west, south) == pytest.approx((lon, lat), abs=1e-7)
    assert "var shift = true;" in page


def test_a_wgs84_basemap_keeps_the_data_where_it_is() -> None:
    page = render(MapSettings(tile_url="http://127.0.0.1:8080/{z}/{x}/{y}.png"))
    south, west, _, _ = fit_bounds(page)
    assert (west, south) == pytest.approx((116.397428, 39.90923), abs=1e-7)
    assert "var shift = false;" in page
