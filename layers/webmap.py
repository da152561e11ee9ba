"""Render catalogue layers to a folium map that works without internet access.

The page loads Leaflet (and, when a layer asks for them, the marker-cluster and heatmap plugins)
from the server's own ``/static/`` (no CDN, no tile server by default). Small layers travel
inline in the page; large ones are fetched from ``/layers/{name}?bbox=…`` for the visible area
whenever the view changes, once the zoom reaches the layer's ``min_zoom`` (below it the layer
stays empty and the status box says "zoom in"). Layers holding personal data are fetched with
the bearer token given in the page's fragment (``#token=…``, never sent to the server by the
browser) or kept in the tab's ``sessionStorage``.

With ``WANGGE_MAP_TILE_URL`` set, that tile layer is drawn beneath; when its coordinate system
is GCJ-02 (Amap, Tencent), our WGS84 data are shifted to GCJ-02 for display only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import folium
from branca.element import Element, MacroElement
from jinja2 import Template
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.coords import wgs84_to_gcj02
from gis.features import BBox
from layers.catalogue import Layer, field_label

ATTRIBUTION = "© OpenStreetMap contributors"
# Where the map opens when the database holds nothing yet (Tiananmen, WGS84).
DEFAULT_CENTER = (39.90923, 116.397428)
# Tile hosts serving GCJ-02 ("Mars") coordinates.
GCJ02_HOSTS = ("autonavi.com", "amap.com", "gtimg.com", "qq.com", "map.qq.com")

Lang = Literal["zh", "en"]
Render = Literal["plain", "cluster", "heat"]

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "zoom_in": "放大到第 {zoom} 级显示",
        "hidden": "已隐藏",
        "not_available": "无法读取",
        "sign_in": "需要授权令牌",
        "truncated": "（已截断，请放大）",
        "drawn": "{n} 个",
        "legend": "图例",
        "no_data": "无数据",
    },
    "en": {
        "zoom_in": "zoom in to {zoom}",
        "hidden": "hidden",
        "not_available": "not available",
        "sign_in": "needs a token",
        "truncated": " (truncated, zoom in for all)",
        "drawn": "{n} drawn",
        "legend": "Legend",
        "no_data": "no data",
    },
}


class MapSettings(BaseSettings):
    """Optional basemap of the map pages (``WANGGE_MAP_*``); none by default (offline).

    ``tile_crs`` ``auto`` treats Amap and Tencent hosts as GCJ-02, anything else as WGS84.
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_MAP_", extra="ignore")

    tile_url: str | None = None
    tile_crs: Literal["auto", "wgs84", "gcj02"] = "auto"
    tile_attribution: str = ""
    tile_max_zoom: int = 18

    def shift(self) -> bool:
        """Whether data must be shifted to GCJ-02 to sit on the tiles."""
        if not self.tile_url:
            return False
        if self.tile_crs != "auto":
            return self.tile_crs == "gcj02"
        return any(host in self.tile_url for host in GCJ02_HOSTS)


@dataclass(frozen=True)
class Choropleth:
    """Fill polygons by a numeric property: ``colors[i]`` for values below ``breaks[i]``.

    Values at or above the last break take the last colour; missing values are grey.
    """

    field: str
    breaks: tuple[float, ...]
    colors: tuple[str, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.colors) != len(self.breaks) + 1 or len(self.labels) != len(self.colors):
            msg = "a choropleth needs one colour and one label more than breaks"
            raise ValueError(msg)


@dataclass(frozen=True)
class MapLayer:
    """One layer of a map page: a catalogue layer and how this page shows it.

    Parameters
    ----------
    layer
        The catalogue layer (style, popup, colours, min zoom).
    data
        An inline GeoJSON FeatureCollection (drawn once), or None to fetch by bbox.
    url
        Where to fetch from (default ``/layers/{name}``).
    keep
        Property -> accepted values; other features are not drawn (cases by status).
    since
        ISO 8601 instant: features whose ``reported_at`` is earlier are not drawn.
    render
        ``plain``, ``cluster`` (marker clusters) or ``heat`` (heatmap) for point layers.
    choropleth
        Fill polygons by a numeric property instead of the layer's colour.
    show
        Whether the layer is on when the page opens.
    name
        Name of this layer on the page when one catalogue layer appears twice.
    title
        Title overriding the catalogue's (already in the page's language).
    """

    layer: Layer
    data: str | None = None
    url: str | None = None
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    since: str | None = None
    render: Render = "plain"
    choropleth: Choropleth | None = None
    show: bool = True
    name: str | None = None
    title: str | None = None


class _LayerLoader(MacroElement):
    """Leaflet overlays filled inline or by ``fetch`` for the current view."""

    _template = Template(
        """
{% macro script(this, kwargs) %}
(function () {
    var map = {{ this._parent.get_name() }};
    // With no tile layer Leaflet knows no zoom range; clustering needs one.
    map.options.maxZoom = map.options.maxZoom || 19;
    var specs = {{ this.specs|tojson }};
    var limit = {{ this.limit|tojson }};
    var text = {{ this.text|tojson }};
    var legend = {{ this.legend|tojson }};
    var shift = {{ this.shift|tojson }};
    // Attribution is a constant of this module; escaped because Leaflet inserts it as HTML.
    map.attributionControl.addAttribution("{{ this.attribution|e }}");
    var token = null;
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    try {
        if (match) { sessionStorage.setItem("wangge_token", decodeURIComponent(match[1])); }
        token = sessionStorage.getItem("wangge_token");
    } catch (e) { token = match ? decodeURIComponent(match[1]) : null; }
    function escapeHtml(value) {
        var div = document.createElement("div");
        div.textContent = value === null || value === undefined ? "" : String(value);
        return div.innerHTML;
    }
    // WGS84 -> GCJ-02 (the published formula), for tiles in GCJ-02 only.
    function gcj(lon, lat) {
        if (lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271) { return [lon, lat]; }
        var a = 6378245.0, ee = 0.00669342162296594323, x = lon - 105.0, y = lat - 35.0;
        var P = Math.PI, sin = Math.sin;
        var dLat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y
            + 0.2 * Math.sqrt(Math.abs(x));
        dLat += (20.0 * sin(6.0 * x * P) + 20.0 * sin(2.0 * x * P)) * 2.0 / 3.0;
        dLat += (20.0 * sin(y * P) + 40.0 * sin(y / 3.0 * P)) * 2.0 / 3.0;
        dLat += (160.0 * sin(y / 12.0 * P) + 320 * sin(y * P / 30.0)) * 2.0 / 3.0;
        var dLon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
        dLon += (20.0 * sin(6.0 * x * P) + 20.0 * sin(2.0 * x * P)) * 2.0 / 3.0;
        dLon += (20.0 * sin(x * P) + 40.0 * sin(x / 3.0 * P)) * 2.0 / 3.0;
        dLon += (150.0 * sin(x / 12.0 * P) + 300.0 * sin(x / 30.0 * P)) * 2.0 / 3.0;
        var radLat = lat / 180.0 * Math.PI, magic = Math.sin(radLat);
        magic = 1 - ee * magic * magic;
        var sqrtMagic = Math.sqrt(magic);
        dLat = (dLat * 180.0) / ((a * (1 - ee)) / (magic * sqrtMagic) * Math.PI);
        dLon = (dLon * 180.0) / (a / sqrtMagic * Math.cos(radLat) * Math.PI);
        return [lon + dLon, lat + dLat];
    }
    function toLatLng(coords) {
        var p = shift ? gcj(coords[0], coords[1]) : coords;
        return L.latLng(p[1], p[0]);
    }
    function colourOf(spec, feature) {
        var props = feature.properties || {};
        if (spec.choropleth) {
            var c = spec.choropleth, v = props[c.field];
            if (v === null || v === undefined) { return "#bdbdbd"; }
            for (var i = 0; i < c.breaks.length; i++) {
                if (v < c.breaks[i]) { return c.colors[i]; }
            }
            return c.colors[c.colors.length - 1];
        }
        if (spec.colour_by && spec.colours[props[spec.colour_by]]) {
            return spec.colours[props[spec.colour_by]];
        }
        return spec.style.fillColor || spec.style.color;
    }
    function styleOf(spec, feature) {
        var style = Object.assign({}, spec.style, {className: "wangge-layer-" + spec.name});
        var colour = colourOf(spec, feature);
        if (spec.choropleth) { style.fillColor = colour; style.fillOpacity = 0.6; }
        else if (spec.colour_by) { style.color = colour; style.fillColor = colour; }
        var size = spec.size_by ? Number((feature.properties || {})[spec.size_by]) : NaN;
        if (size >= 0) { style.radius = Math.min(24, 4 + 2 * Math.sqrt(size)); }
        return style;
    }
    function keep(spec, feature) {
        var props = feature.properties || {};
        for (var key in spec.keep) {
            if (spec.keep[key].indexOf(String(props[key])) < 0) { return false; }
        }
        var at = props.reported_at;
        if (spec.since && at && Date.parse(at) < Date.parse(spec.since)) {
            return false;
        }
        return true;
    }
    function popupOf(spec, feature) {
        var rows = spec.popup.map(function (pair) {
            return "<tr><th>" + escapeHtml(pair[1]) + "</th><td>" +
                escapeHtml(feature.properties[pair[0]]) + "</td></tr>";
        });
        return "<table>" + rows.join("") + "</table>";
    }
    function geoJson(spec, collection) {
        return L.geoJSON(collection, {
            coordsToLatLng: toLatLng,
            filter: function (feature) { return keep(spec, feature); },
            style: function (feature) { return styleOf(spec, feature); },
            pointToLayer: function (feature, latlng) {
                if (spec.render === "cluster") {
                    return L.marker(latlng, {icon: L.divIcon({
                        className: "wangge-dot wangge-layer-" + spec.name,
                        html: "<span style=\\"background:" + colourOf(spec, feature) +
                            "\\"></span>",
                        iconSize: [12, 12]
                    })});
                }
                return L.circleMarker(latlng, styleOf(spec, feature));
            },
            onEachFeature: function (feature, layer) {
                layer.bindPopup(popupOf(spec, feature));
                if (spec.label && feature.properties[spec.label] !== null) {
                    layer.bindTooltip(escapeHtml(feature.properties[spec.label]), {
                        permanent: true, direction: "center", className: "wangge-label"
                    });
                }
            }
        });
    }
    function container(spec) {
        if (spec.render === "cluster") {
            return L.markerClusterGroup({showCoverageOnHover: false});
        }
        if (spec.render === "heat") { return L.heatLayer([], {radius: 18, blur: 15}); }
        return L.featureGroup();
    }
    function fill(spec, collection) {
        var drawn = geoJson(spec, collection).getLayers();
        spec.count = drawn.length;
        if (spec.render === "heat") {
            spec.layer.setLatLngs(drawn.map(function (m) { return m.getLatLng(); }));
        } else if (spec.render === "cluster") {
            spec.layer.clearLayers();
            spec.layer.addLayers(drawn);
        } else {
            spec.layer.clearLayers();
            drawn.forEach(function (l) { spec.layer.addLayer(l); });
        }
    }
    function clear(spec) {
        spec.count = 0;
        if (spec.render === "heat") { spec.layer.setLatLngs([]); }
        else { spec.layer.clearLayers(); }
    }
    // Requests in flight; the page is fully drawn when none is left (data-wangge-drawn).
    var pending = 0;
    function busy(delta) {
        pending += delta;
        document.body.setAttribute("data-wangge-pending", pending);
        if (pending === 0) {
            document.body.setAttribute("data-wangge-drawn", Math.round(performance.now()));
        }
    }
    var overlays = {};
    specs.forEach(function (spec) {
        spec.token = 0;
        spec.note = "";
        spec.count = 0;
        spec.layer = container(spec);
        if (spec.show) { spec.layer.addTo(map); }
        overlays[spec.title] = spec.layer;
    });
    L.control.layers(null, overlays, {collapsed: false}).addTo(map);
    var status = L.control({position: "bottomright"});
    status.onAdd = function () {
        this.div = L.DomUtil.create("div", "leaflet-control-attribution wangge-status");
        return this.div;
    };
    status.addTo(map);
    function showStatus() {
        status.div.innerHTML = specs.map(function (spec) {
            return "<span class=\\"wangge-count\\" data-layer=\\"" + escapeHtml(spec.name) +
                "\\" data-count=\\"" + spec.count + "\\">" +
                escapeHtml(spec.title + ": " + spec.note) + "</span>";
        }).join("<br>");
    }
    var box = L.control({position: "bottomleft"});
    box.onAdd = function () {
        var div = L.DomUtil.create("div", "leaflet-control-layers wangge-legend");
        div.style.padding = "6px";
        div.innerHTML = "<strong>" + escapeHtml(text.legend) + "</strong>" +
            legend.map(function (entry) {
                return "<div><em>" + escapeHtml(entry.title) + "</em>" +
                    entry.items.map(function (item) {
                        return "<div><span style=\\"display:inline-block;width:10px;height:10px;" +
                            "margin-right:4px;background:" + escapeHtml(item[0]) + "\\"></span>" +
                            escapeHtml(item[1]) + "</div>";
                    }).join("") + "</div>";
            }).join("");
        return div;
    };
    if (legend.length) { box.addTo(map); }
    function clamp(value, low, high) { return Math.min(high, Math.max(low, value)); }
    function refresh() {
        var b = map.getBounds();
        // Shifted display: query with the unshifted box (GCJ-02 moves a few hundred metres).
        var pad = shift ? 0.01 : 0;
        var bbox = [
            clamp(b.getWest() - pad, -180, 180), clamp(b.getSouth() - pad, -90, 90),
            clamp(b.getEast() + pad, -180, 180), clamp(b.getNorth() + pad, -90, 90)
        ].map(function (v) { return v.toFixed(6); }).join(",");
        specs.forEach(function (spec) {
            if (spec.inline) { return; }
            var tok = ++spec.token;
            if (!map.hasLayer(spec.layer) || map.getZoom() < spec.min_zoom) {
                clear(spec);
                spec.note = map.hasLayer(spec.layer) ?
                    text.zoom_in.replace("{zoom}", spec.min_zoom) : text.hidden;
                showStatus();
                return;
            }
            var headers = {};
            if (spec.personal && token) { headers.Authorization = "Bearer " + token; }
            var sep = spec.url.indexOf("?") < 0 ? "?" : "&";
            busy(1);
            fetch(spec.url + sep + "bbox=" + bbox + "&limit=" + limit, {headers: headers})
                .then(function (r) {
                    if (r.status === 401) { return {denied: true}; }
                    return r.ok ? r.json() : null;
                })
                .then(function (collection) {
                    busy(-1);
                    if (tok !== spec.token) { return; }
                    clear(spec);
                    if (!collection) {
                        spec.note = text.not_available;
                    } else if (collection.denied) {
                        spec.note = text.sign_in;
                    } else {
                        fill(spec, collection);
                        spec.note = text.drawn.replace("{n}", spec.count) +
                            (collection.truncated ? text.truncated : "");
                    }
                    showStatus();
                }, function () {
                    busy(-1);
                    spec.note = text.not_available;
                    showStatus();
                });
        });
    }
    specs.forEach(function (spec) {
        if (spec.inline) {
            fill(spec, spec.data);
            spec.note = text.drawn.replace("{n}", spec.count);
        }
    });
    showStatus();
    map.on("moveend overlayadd overlayremove", refresh);
    busy(1);
    refresh();
    document.body.setAttribute("data-wangge-ready", "1");
    busy(-1);
})();
{% endmacro %}
"""
    )

    def __init__(
        self,
        specs: list[dict[str, Any]],
        *,
        limit: int,
        attribution: str,
        lang: Lang,
        legend: list[dict[str, Any]],
        shift: bool,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._name = "LayerLoader"
        self.specs = specs
        self.limit = limit
        self.attribution = attribution
        self.text = TEXT[lang]
        self.legend = legend
        self.shift = shift


def _style(layer: Layer) -> dict[str, Any]:
    style: dict[str, Any] = {"color": layer.style.color, "weight": layer.style.weight}
    if layer.style.fill_color is not None:
        style.update(fillColor=layer.style.fill_color, fillOpacity=layer.style.fill_opacity)
    else:
        style["fill"] = False
    if layer.style.radius is not None:
        style["radius"] = layer.style.radius
    return style


def _spec(item: MapLayer, layers_url: str, lang: Lang) -> dict[str, Any]:
    layer = item.layer
    name = item.name or layer.name
    data = None if item.data is None else json.loads(item.data)
    choropleth = None
    if item.choropleth is not None:
        c = item.choropleth
        choropleth = {"field": c.field, "breaks": list(c.breaks), "colors": list(c.colors)}
    popup = list(layer.popup)
    if item.choropleth is not None and item.choropleth.field not in popup:
        popup.append(item.choropleth.field)
    return {
        "name": name,
        "title": item.title or layer.display_title(lang),
        "url": item.url or f"{layers_url}/{layer.name}",
        "style": _style(layer),
        "popup": [[f, field_label(f, lang)] for f in popup],
        "min_zoom": layer.min_zoom,
        "colour_by": layer.colour_by,
        "colours": {c.value: c.color for c in layer.categories},
        "label": layer.label,
        "size_by": layer.size_by,
        "personal": layer.personal,
        "inline": data is not None,
        "data": data,
        "keep": {k: list(v) for k, v in item.keep.items()},
        "since": item.since,
        "render": item.render,
        "choropleth": choropleth,
        "show": item.show,
    }


def _legend(item: MapLayer, lang: Lang) -> dict[str, Any] | None:
    layer = item.layer
    title = item.title or layer.display_title(lang)
    if item.choropleth is not None:
        c = item.choropleth
        items = [[colour, label] for colour, label in zip(c.colors, c.labels, strict=True)]
        return {"title": title, "items": [*items, ["#bdbdbd", TEXT[lang]["no_data"]]]}
    if item.render == "heat":
        return None
    if layer.categories:
        keep: Iterable[str] | None = item.keep.get(layer.colour_by or "", None)
        if keep is None and item.data is not None and layer.colour_by is not None:
            # Inline data: only the values present.
            features = json.loads(item.data)["features"]
            keep = {str(f["properties"].get(layer.colour_by)) for f in features}
        return {
            "title": title,
            "items": [
                [c.color, c.en if lang == "en" else c.zh]
                for c in layer.categories
                if keep is None or c.value in keep
            ],
        }
    return {"title": title, "items": [[layer.style.fill_color or layer.style.color, title]]}


def _as_items(layers: Iterable[Layer | MapLayer]) -> list[MapLayer]:
    return [item if isinstance(item, MapLayer) else MapLayer(item) for item in layers]


def layer_map(
    layers: Iterable[Layer | MapLayer],
    *,
    bounds: BBox | None,
    limit: int,
    static_url: str = "/static",
    layers_url: str = "/layers",
    lang: Lang = "zh",
    tiles: MapSettings | None = None,
    title: str = "wangge map",
    max_zoom: int = 17,
    embed: bool = False,
) -> folium.Map:
    """Return a folium map drawing ``layers`` inline or fetched by bbox from ``layers_url``.

    Parameters
    ----------
    layers
        Catalogue layers (fetched by bbox) or :class:`MapLayer` items, bottom first.
    bounds
        WGS84 extent (degrees) to open the map on; None opens on a default centre.
    limit
        ``limit`` sent with every layer request.
    static_url
        URL path under which ``leaflet/``, ``leaflet.markercluster/`` and ``leaflet.heat/``
        are served.
    layers_url
        URL path of the layer API.
    lang
        ``zh`` (default) or ``en``: layer titles, legend, popup field names and status text.
    tiles
        Optional basemap; None or an unset ``tile_url`` draws no basemap (offline).
    title
        The page's ``<title>``.
    max_zoom
        Highest zoom the map opens on when fitting ``bounds``.
    embed
        Write Leaflet (and the plugins used) into the page itself instead of linking
        ``static_url``: for a notebook or a saved file, with no server (layers then need
        inline data).

    Returns
    -------
    folium.Map
        A map with a scale bar, layer control, legend and status box, and no external
        resource unless a tile URL is configured.
    """
    tiles = tiles or MapSettings(tile_url=None)
    shift = tiles.shift()
    fmap = folium.Map(
        location=DEFAULT_CENTER, zoom_start=12, max_zoom=19, tiles=None, control_scale=True
    )
    items = _as_items(layers)
    renders = {item.render for item in items}
    # Per map, not folium's module-wide add_js_link: the default lists point at CDNs.
    fmap.default_js = [("leaflet", f"{static_url}/leaflet/leaflet.js")]
    fmap.default_css = [("leaflet_css", f"{static_url}/leaflet/leaflet.css")]
    if "cluster" in renders:
        fmap.default_js.append(
            ("markercluster", f"{static_url}/leaflet.markercluster/leaflet.markercluster.js")
        )
        fmap.default_css += [
            ("markercluster_css", f"{static_url}/leaflet.markercluster/MarkerCluster.css"),
            (
                "markercluster_default_css",
                f"{static_url}/leaflet.markercluster/MarkerCluster.Default.css",
            ),
        ]
    if "heat" in renders:
        fmap.default_js.append(("heat", f"{static_url}/leaflet.heat/leaflet-heat.js"))
    header: Any = fmap.get_root().header  # type: ignore[attr-defined]
    if embed:
        _embed_assets(fmap, header)
    header.add_child(Element(f"<title>{_escape(title)}</title>"))
    header.add_child(Element(_CSS))
    # No /favicon.ico request (a 404 in the console).
    header.add_child(Element('<link rel="icon" href="data:,">'))
    if tiles.tile_url:
        folium.TileLayer(
            tiles=tiles.tile_url,
            attr=tiles.tile_attribution or " ",
            max_zoom=tiles.tile_max_zoom,
            name="basemap",
            control=False,
        ).add_to(fmap)
    if bounds is not None:
        corners = [(bounds.minlon, bounds.minlat), (bounds.maxlon, bounds.maxlat)]
        if shift:
            corners = [wgs84_to_gcj02(lon, lat) for lon, lat in corners]
        (w, s), (e, n) = corners
        fmap.fit_bounds([[s, w], [n, e]], max_zoom=max_zoom)
    specs = [_spec(item, layers_url, lang) for item in items]
    legend = [entry for item in items if (entry := _legend(item, lang)) is not None]
    fmap.add_child(
        _LayerLoader(
            specs, limit=limit, attribution=ATTRIBUTION, lang=lang, legend=legend, shift=shift
        )
    )
    return fmap


STATIC = Path(__file__).resolve().parent.parent / "api" / "static"


def _embed_assets(fmap: folium.Map, header: Any) -> None:
    """Replace the linked scripts and styles of ``fmap`` by their text from ``STATIC``."""
    for name, url in fmap.default_css:
        css = (STATIC / url.split("/static/", 1)[1]).read_text(encoding="utf-8")
        header.add_child(Element(f"<style>{css}</style>"), name=f"{name}_inline")
    for name, url in fmap.default_js:
        js = (STATIC / url.split("/static/", 1)[1]).read_text(encoding="utf-8")
        header.add_child(Element(f"<script>{js}</script>"), name=f"{name}_inline")
    fmap.default_js = []
    fmap.default_css = []


_CSS = """<style>
.wangge-label { background: rgba(255,255,255,0.7); border: none; box-shadow: none;
  font-size: 11px; padding: 0 2px; }
.wangge-dot span { display: block; width: 12px; height: 12px; border-radius: 6px;
  border: 1px solid #333; }
</style>"""


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page_html(fmap: folium.Map) -> str:
    """Return the complete HTML page of ``fmap``."""
    return str(fmap.get_root().render())
