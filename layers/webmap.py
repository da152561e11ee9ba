"""Render the layer catalogue to a folium map that works without internet access.

The page loads Leaflet from the server's own ``/static/leaflet/`` (no CDN, no tile server) and
fetches each layer from ``/layers/{name}?bbox=…`` for the visible area whenever the view changes,
once the zoom reaches the layer's ``min_zoom``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import folium
from branca.element import Element, MacroElement
from jinja2 import Template

from gis.features import BBox
from layers.catalogue import Layer

ATTRIBUTION = "© OpenStreetMap contributors"
# Where the map opens when the database holds nothing yet (Tiananmen, WGS84).
DEFAULT_CENTER = (39.90923, 116.397428)


class _LayerLoader(MacroElement):
    """Leaflet GeoJSON overlays filled by ``fetch`` for the current view."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
(function () {
    var map = {{ this._parent.get_name() }};
    var specs = {{ this.specs|tojson }};
    var limit = {{ this.limit|tojson }};
    // Attribution is a constant of this module; escaped because Leaflet inserts it as HTML.
    map.attributionControl.addAttribution("{{ this.attribution|e }}");
    function escapeHtml(value) {
        var div = document.createElement("div");
        div.textContent = value === null || value === undefined ? "" : String(value);
        return div.innerHTML;
    }
    var overlays = {};
    specs.forEach(function (spec) {
        spec.token = 0;
        spec.note = "";
        spec.layer = L.geoJSON(null, {
            style: function () { return spec.style; },
            pointToLayer: function (feature, latlng) {
                return L.circleMarker(latlng, spec.style);
            },
            onEachFeature: function (feature, layer) {
                var rows = spec.popup.map(function (field) {
                    return "<tr><th>" + escapeHtml(field) + "</th><td>" +
                        escapeHtml(feature.properties[field]) + "</td></tr>";
                });
                layer.bindPopup("<table>" + rows.join("") + "</table>");
            }
        }).addTo(map);
        overlays[spec.title] = spec.layer;
    });
    L.control.layers(null, overlays, {collapsed: false}).addTo(map);
    // One line per layer: how many features are drawn, or why none are.
    var status = L.control({position: "bottomright"});
    status.onAdd = function () {
        this.div = L.DomUtil.create("div", "leaflet-control-attribution wangge-status");
        return this.div;
    };
    status.addTo(map);
    function showStatus() {
        status.div.innerHTML = specs.map(function (spec) {
            return escapeHtml(spec.title + ": " + spec.note);
        }).join("<br>");
    }
    function clamp(value, low, high) { return Math.min(high, Math.max(low, value)); }
    function refresh() {
        var b = map.getBounds();
        var bbox = [
            clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90),
            clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90)
        ].map(function (v) { return v.toFixed(6); }).join(",");
        specs.forEach(function (spec) {
            var token = ++spec.token;
            if (!map.hasLayer(spec.layer) || map.getZoom() < spec.min_zoom) {
                spec.layer.clearLayers();
                spec.note = map.hasLayer(spec.layer) ? "zoom in to " + spec.min_zoom : "hidden";
                showStatus();
                return;
            }
            fetch(spec.url + "?bbox=" + bbox + "&limit=" + limit)
                .then(function (r) { return r.ok ? r.json() : null; })
                .then(function (collection) {
                    if (token !== spec.token) { return; }
                    spec.layer.clearLayers();
                    if (!collection) {
                        spec.note = "not available";
                    } else {
                        spec.layer.addData(collection);
                        spec.note = collection.numberReturned +
                            (collection.truncated ? " shown, zoom in for all" : "");
                    }
                    showStatus();
                });
        });
    }
    map.on("moveend overlayadd overlayremove", refresh);
    refresh();
})();
{% endmacro %}
"""
    )

    def __init__(self, specs: list[dict[str, Any]], *, limit: int, attribution: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LayerLoader"
        self.specs = specs
        self.limit = limit
        self.attribution = attribution


def _spec(layer: Layer, layers_url: str) -> dict[str, Any]:
    style: dict[str, Any] = {"color": layer.style.color, "weight": layer.style.weight}
    if layer.style.fill_color is not None:
        style.update(fillColor=layer.style.fill_color, fillOpacity=layer.style.fill_opacity)
    else:
        style["fill"] = False
    if layer.style.radius is not None:
        style["radius"] = layer.style.radius
    return {
        "name": layer.name,
        "title": layer.title,
        "url": f"{layers_url}/{layer.name}",
        "style": style,
        "popup": list(layer.popup),
        "min_zoom": layer.min_zoom,
    }


def layer_map(
    layers: Iterable[Layer],
    *,
    bounds: BBox | None,
    limit: int,
    static_url: str = "/static/leaflet",
    layers_url: str = "/layers",
) -> folium.Map:
    """Return a folium map drawing ``layers``, fetched by bbox from ``layers_url``.

    Parameters
    ----------
    layers
        Catalogue layers to draw, bottom first.
    bounds
        WGS84 extent of the data (degrees) to open the map on; None opens on a default centre.
    limit
        ``limit`` sent with every layer request.
    static_url
        URL path under which Leaflet 1.9.4's ``dist/`` is served.
    layers_url
        URL path of the layer API.

    Returns
    -------
    folium.Map
        A map with no tile layer and no external resources.
    """
    fmap = folium.Map(
        location=DEFAULT_CENTER, zoom_start=12, max_zoom=19, tiles=None, control_scale=True
    )
    # Per map, not folium's module-wide add_js_link: the default lists point at CDNs.
    fmap.default_js = [("leaflet", f"{static_url}/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{static_url}/leaflet.css")]
    fmap.get_root().header.add_child(Element("<title>wangge map</title>"))  # type: ignore[attr-defined]
    if bounds is not None:
        fmap.fit_bounds(
            [[bounds.minlat, bounds.minlon], [bounds.maxlat, bounds.maxlon]], max_zoom=17
        )
    specs = [_spec(layer, layers_url) for layer in layers]
    fmap.add_child(_LayerLoader(specs, limit=limit, attribution=ATTRIBUTION))
    return fmap
