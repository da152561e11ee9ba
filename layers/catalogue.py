"""Map layers: table, geometry, exposed properties, style, popup fields and minimum zoom.

Each layer is declared once here; the ``/layers`` API, the map page and later the OGC API and
vector tiles read it. Only the listed properties leave the database. Personal data stays out:
no grid worker (name, phone, or the ``worker_id`` that leads to them), no per-stairwell
residents or elderly counts (household-level data is for authorised staff only), no free-form
OSM ``tags``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gis.errors import NotFoundError
from gis.features import FeatureSource


@dataclass(frozen=True)
class Style:
    """Leaflet path style (colours as CSS hex); ``radius`` in pixels for point layers."""

    color: str
    weight: float = 1.0
    fill_color: str | None = None
    fill_opacity: float = 0.3
    radius: float | None = None


@dataclass(frozen=True)
class Layer:
    """One map layer.

    Parameters
    ----------
    name
        URL name (``/layers/{name}``).
    title
        Label in the map's layer control.
    source
        Table, geometry column and exposed property columns.
    style
        How the layer is drawn.
    popup
        Properties shown in a feature's popup, in order (a subset of the exposed ones).
    min_zoom
        Web-map zoom level below which the map page does not request the layer.
    """

    name: str
    title: str
    source: FeatureSource
    style: Style
    popup: tuple[str, ...]
    min_zoom: int = 0

    def __post_init__(self) -> None:
        hidden = set(self.popup) - set(self.source.properties)
        if hidden:
            msg = f"layer {self.name}: popup fields {sorted(hidden)} are not exposed properties"
            raise ValueError(msg)


CATALOGUE: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            name="grids",
            title="Grids (current)",
            source=FeatureSource(
                table="grid",
                geometry="geom",
                properties=("code", "kind", "community_id", "valid_from"),
                current_only=("valid_to",),
            ),
            style=Style(color="#d62728", weight=2.0, fill_color="#d62728", fill_opacity=0.05),
            popup=("code", "kind"),
            min_zoom=10,
        ),
        Layer(
            name="streets",
            title="Streets and footpaths",
            source=FeatureSource(
                table="street_segment",
                geometry="geom",
                properties=("highway", "name", "length_m"),
            ),
            style=Style(color="#7f7f7f", weight=1.5),
            popup=("name", "highway", "length_m"),
            min_zoom=14,
        ),
        Layer(
            name="buildings",
            title="Buildings",
            source=FeatureSource(
                table="building",
                geometry="footprint",
                properties=("name", "number", "use", "levels", "area_m2", "source", "source_id"),
            ),
            style=Style(color="#1f77b4", weight=1.0, fill_color="#1f77b4", fill_opacity=0.3),
            popup=("name", "number", "use", "levels", "area_m2"),
            min_zoom=15,
        ),
        Layer(
            name="stairwells",
            title="Stairwells",
            source=FeatureSource(
                table="stairwell",
                geometry="entrance",
                properties=("building_id", "unit_no", "households", "estimated"),
            ),
            style=Style(
                color="#2ca02c", weight=1.0, fill_color="#2ca02c", fill_opacity=0.8, radius=3.0
            ),
            popup=("building_id", "unit_no", "households", "estimated"),
            min_zoom=16,
        ),
        Layer(
            name="facilities",
            title="Facilities",
            source=FeatureSource(
                table="facility",
                geometry="geom",
                properties=("type", "name", "capacity", "source", "source_id"),
            ),
            style=Style(
                color="#ff7f0e", weight=1.0, fill_color="#ff7f0e", fill_opacity=0.9, radius=5.0
            ),
            popup=("name", "type", "capacity"),
            min_zoom=13,
        ),
    )
}


def get_layer(name: str) -> Layer:
    """Return the layer called ``name``.

    Raises
    ------
    NotFoundError
        When no layer has that name; the message lists the known layers.
    """
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        msg = f"unknown layer {name!r}; known layers: {known}"
        raise NotFoundError(msg) from None
