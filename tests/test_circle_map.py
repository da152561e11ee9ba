"""layers.circle_map: the audit map renders to HTML with Leaflet inside and nothing external."""

from __future__ import annotations

import re

import geopandas as gpd
import pytest
import shapely

from layers.circle_map import circle_map

# A resource the page would load (scripts, images, style sheets); plain links do not count.
EXTERNAL = re.compile(r"src=[\"']https?://|<link[^>]+href=[\"']https?://", re.IGNORECASE)


def _layers() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    stairs = gpd.GeoDataFrame(
        {"missing": [0, 3, 9]},
        geometry=[shapely.Point(116.35, 40.0 + i / 1000) for i in range(3)],
        crs=4326,
    )
    facilities = gpd.GeoDataFrame(
        {"type": ["kindergarten"], "name": ["幼儿园"]},
        geometry=[shapely.Point(116.351, 40.001)],
        crs=4326,
    )
    return stairs, facilities


def test_map_html_loads_nothing_from_the_internet() -> None:
    html = circle_map(*_layers()).get_root().render()
    assert not EXTERNAL.search(html)


def test_map_html_carries_leaflet_inline() -> None:
    html = circle_map(*_layers()).get_root().render()
    assert "L.circleMarker" in html
    assert "leaflet" in html.lower() and "Leaflet 1.9.4" in html


def test_map_draws_one_marker_per_stairwell_and_facility() -> None:
    html = circle_map(*_layers()).get_root().render()
    assert html.count("L.circleMarker(") == 4


def test_map_without_the_missing_column_names_it() -> None:
    stairs, facilities = _layers()
    with pytest.raises(ValueError, match="missing"):
        circle_map(stairs.drop(columns="missing"), facilities)
