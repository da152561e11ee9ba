"""A self-contained folium map of a service-circle audit (works with no internet access).

Leaflet 1.9.4 (the copy shipped under ``api/static/leaflet``) is written into the page itself,
so the HTML opens from a notebook or a file with no CDN and no tile server. Stairwells are
coloured by how many required facility types they lack; facilities are dots; walking shapes
around a facility are drawn and labelled display-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
from branca.element import Element

from layers.webmap import ATTRIBUTION

LEAFLET = Path(__file__).resolve().parent.parent / "api" / "static" / "leaflet"
# Missing types -> colour, none missing first.
COLOURS = ("#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027")


def _inline_leaflet(fmap: folium.Map) -> None:
    # Per map, never folium's module-wide defaults: those point at CDNs.
    fmap.default_js = []
    fmap.default_css = []
    css = (LEAFLET / "leaflet.css").read_text(encoding="utf-8")
    js = (LEAFLET / "leaflet.js").read_text(encoding="utf-8")
    header: Any = fmap.get_root().header  # type: ignore[attr-defined]
    header.add_child(Element(f"<style>{css}</style>"), name="leaflet_css")
    header.add_child(Element(f"<script>{js}</script>"), name="leaflet_js")


def circle_map(
    stairwells: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    *,
    shapes: gpd.GeoDataFrame | None = None,
    missing_column: str = "missing",
) -> folium.Map:
    """Draw stairwells by missing types, facilities, and display-only walking shapes.

    Parameters
    ----------
    stairwells
        Points (any CRS) with an integer column ``missing_column``.
    facilities
        Points (any CRS) with ``type`` and optionally ``name``.
    shapes
        Display-only walking shapes (polygons) with ``minutes``; drawn beneath the points.
    missing_column
        Column of ``stairwells`` holding the number of missing types.

    Returns
    -------
    folium.Map
        A map with no tile layer and no external resource (Leaflet inline).

    Raises
    ------
    ValueError
        If ``stairwells`` lacks ``missing_column`` or ``facilities`` lacks ``type``.
    """
    if missing_column not in stairwells.columns:
        msg = f"stairwells have no column {missing_column!r}"
        raise ValueError(msg)
    if "type" not in facilities.columns:
        msg = "facilities have no column 'type'"
        raise ValueError(msg)
    st = stairwells.to_crs(4326)
    fa = facilities.to_crs(4326)
    x0, y0, x1, y1 = st.total_bounds if len(st) else fa.total_bounds
    fmap = folium.Map(location=((y0 + y1) / 2, (x0 + x1) / 2), tiles=None, zoom_start=15)
    _inline_leaflet(fmap)
    fmap.fit_bounds([[y0, x0], [y1, x1]])
    fmap.get_root().header.add_child(  # type: ignore[attr-defined]
        Element("<title>wangge service circle audit</title>")
    )
    if shapes is not None and len(shapes):
        folium.GeoJson(
            shapes.to_crs(4326).to_json(drop_id=True),
            name="walking shapes (display only)",
            style_function=lambda _: {"color": "#3182bd", "weight": 1, "fillOpacity": 0.08},
            tooltip=folium.GeoJsonTooltip(fields=["minutes"], aliases=["display only, minutes"]),
        ).add_to(fmap)
    for geom, missing in zip(st.geometry, st[missing_column], strict=True):
        colour = COLOURS[min(int(missing), len(COLOURS) - 1)]
        folium.CircleMarker(
            (geom.y, geom.x),
            radius=3,
            color=colour,
            fill=True,
            fill_opacity=0.9,
            weight=0,
            tooltip=f"missing {int(missing)} type(s)",
        ).add_to(fmap)
    names = fa["name"] if "name" in fa.columns else fa["type"]
    for geom, kind, name in zip(fa.geometry, fa["type"], names, strict=True):
        folium.CircleMarker(
            (geom.y, geom.x),
            radius=5,
            color="#542788",
            fill=True,
            fill_opacity=1.0,
            tooltip=f"{kind}: {name}" if name is not None else str(kind),
        ).add_to(fmap)
    fmap.get_root().html.add_child(  # type: ignore[attr-defined]
        Element(f"<div style='font: 11px sans-serif'>{ATTRIBUTION}</div>")
    )
    return fmap
