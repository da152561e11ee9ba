"""The three map pages: a grid worker's grid, the planner's coverage map, the cases map.

Each builder reads the small layers from PostGIS into the page (a grid's boundary, facilities
near it, per-grid aggregates) and leaves the large or personal ones (buildings, streets,
stairwells, cases) to be fetched by bbox from ``/layers`` as the map moves, with the caller's
token for the personal ones. Aggregates (shares, counts per grid) carry no personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import folium
from sqlalchemy import Connection, text

from gis.circles import CircleSettings
from gis.circles_store import coverage_report, facility_types
from gis.errors import InputError, NotFoundError
from gis.features import BBox, FeatureSource, extent, features_geojson
from gis.models import CASE_STATES
from gis.siting_inputs import CandidateSpec, SitingRequest, solve_siting
from layers.catalogue import CATALOGUE, OPEN_STATUSES, Category, Layer, Style
from layers.webmap import Choropleth, Lang, MapLayer, MapSettings, layer_map

# Layers derived for one page (aggregates and display-only shapes); not served by /layers.
# Their source names the table they are derived from and the properties they carry.
DERIVED: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            name="circle",
            title="15分钟生活圈（标准半径）",
            title_en="15-minute circle (standard radius)",
            source=FeatureSource(table="grid", geometry="geom", properties=("code", "minutes")),
            style=Style(color="#9467bd", weight=2.0, fill_color="#9467bd", fill_opacity=0.04),
            popup=("code", "minutes"),
        ),
        Layer(
            name="coverage",
            title="覆盖率（按网格）",
            title_en="Coverage by grid",
            source=FeatureSource(
                table="grid", geometry="geom", properties=("code", "kind", "share")
            ),
            style=Style(color="#555555", weight=1.0, fill_color="#bdbdbd", fill_opacity=0.6),
            popup=("code", "share"),
            label="code",
        ),
        Layer(
            name="isochrones",
            title="设施服务半径",
            title_en="Facility service radius",
            source=FeatureSource(
                table="facility", geometry="geom", properties=("type", "name", "minutes")
            ),
            style=Style(color="#17becf", weight=1.0, fill_color="#17becf", fill_opacity=0.08),
            popup=("name", "type", "minutes"),
        ),
        Layer(
            name="proposals",
            title="选址方案",
            title_en="Proposed sites",
            source=FeatureSource(
                table="facility",
                geometry="geom",
                properties=("site", "kind", "proposed", "served"),
            ),
            style=Style(
                color="#000000", weight=2.0, fill_color="#ffff33", fill_opacity=1.0, radius=8.0
            ),
            popup=("site", "kind", "proposed", "served"),
            colour_by="proposed",
            categories=(
                Category("true", "#ffff33", "新增选址", "proposed site"),
                Category("false", "#999999", "现有设施", "existing facility"),
            ),
        ),
        Layer(
            name="incidents",
            title="案件数（按网格）",
            title_en="Cases by grid",
            source=FeatureSource(table="grid", geometry="geom", properties=("code", "cases")),
            style=Style(color="#555555", weight=1.0, fill_color="#bdbdbd", fill_opacity=0.6),
            popup=("code", "cases"),
            label="code",
        ),
    )
}

_COLLECTION = """
SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(
    json_build_object('type', 'Feature', 'id', f.id, 'geometry', ST_AsGeoJSON(f.geom, 7)::json,
                      'properties', f.props) ORDER BY f.id), '[]'::json))::text
FROM ({inner}) AS f
"""

_GRID = """
SELECT id, geom, json_build_object('code', code, 'kind', kind) AS props
FROM grid WHERE code = :code AND valid_to IS NULL
"""
_CIRCLE = """
SELECT id, ST_Buffer(geom::geography, :radius)::geometry AS geom,
       json_build_object('code', code, 'minutes', :minutes) AS props
FROM grid WHERE id = :grid_id
"""
_FACILITIES_NEAR = """
SELECT f.id, f.geom, json_build_object('type', f.type, 'name', f.name, 'capacity', f.capacity)
       AS props
FROM facility f JOIN grid g ON g.id = :grid_id
WHERE ST_DWithin(f.geom::geography, g.geom::geography, :radius)
"""
_FACILITIES_OF_TYPE = """
SELECT id, geom, json_build_object('type', type, 'name', name, 'capacity', capacity) AS props
FROM facility WHERE CAST(:type AS text) IS NULL OR type = :type
"""
_SERVICE_RADIUS = """
SELECT id, ST_Buffer(geom::geography, :radius)::geometry AS geom,
       json_build_object('type', type, 'name', name, 'minutes', :minutes) AS props
FROM facility WHERE type = :type
"""
_GRID_SHARES = """
SELECT g.id, g.geom, json_build_object('code', g.code, 'kind', g.kind,
       'share', s.share) AS props
FROM grid g
LEFT JOIN (SELECT * FROM jsonb_to_recordset(CAST(:shares AS jsonb)) AS x(code text, share float))
    AS s ON s.code = g.code
WHERE g.valid_to IS NULL
"""
_GRID_CASES = """
SELECT g.id, g.geom, json_build_object('code', g.code, 'cases', count(c.id)) AS props
FROM grid g
LEFT JOIN cases c ON c.grid_id = g.id
    AND (CAST(:status AS text) IS NULL OR c.status = :status)
    AND (CAST(:since AS timestamptz) IS NULL OR c.reported_at >= :since)
WHERE g.valid_to IS NULL
GROUP BY g.id
"""

SHARE_COLOURS = Choropleth(
    field="share",
    breaks=(0.5, 0.8, 0.95),
    colors=("#d73027", "#fc8d59", "#fee08b", "#1a9850"),
    labels=("< 50 %", "50–80 %", "80–95 %", "≥ 95 %"),
)
CASE_COUNT_COLOURS = Choropleth(
    field="cases",
    breaks=(1, 3, 10, 30),
    colors=("#f7f7f7", "#fee0d2", "#fc9272", "#de2d26", "#a50f15"),
    labels=("0", "1–2", "3–9", "10–29", "≥ 30"),
)
PUBLIC_SOURCES = tuple(CATALOGUE[n].source for n in ("communities", "grids", "buildings"))


@dataclass(frozen=True)
class PageOptions:
    """What every map page shares: language, feature limit per request, optional basemap."""

    lang: Lang = "zh"
    limit: int = 2_000
    tiles: MapSettings | None = None


def _collection(connection: Connection, inner: str, params: dict[str, Any]) -> str:
    # ``inner`` is one of this module's constant queries; values are bound.
    return str(connection.execute(text(_COLLECTION.format(inner=inner)), params).scalar_one())


def _text(lang: Lang, zh: str, en: str) -> str:
    return en if lang == "en" else zh


def grid_map(
    connection: Connection,
    code: str,
    *,
    options: PageOptions | None = None,
    circles: CircleSettings | None = None,
    embed: bool = False,
) -> folium.Map:
    """Return a grid worker's map of grid ``code``.

    Boundary, the facilities within its 15-minute circle (GB 50180 standard radius, metres
    on the geography) and that circle inline; buildings, streets, stairwells (households and
    elderly) and the grid's open cases fetched by bbox. With ``embed`` (a notebook, a saved
    file: no server), those are read now for the circle's extent (up to ``options.limit``
    each) and everything, Leaflet included, is written into the page.

    Raises
    ------
    NotFoundError
        When no current grid has that code.
    """
    options = options or PageOptions()
    circles = circles or CircleSettings()
    row = connection.execute(
        text(
            "SELECT id, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
            "FROM grid WHERE code = :code AND valid_to IS NULL"
        ),
        {"code": code},
    ).first()
    if row is None:
        msg = f"unknown grid {code!r}: no current grid has this code"
        raise NotFoundError(msg)
    grid_id = int(row[0])
    radius = float(circles.standard_radius_m[max(circles.standard_radius_m)])
    minutes = max(circles.standard_radius_m)
    near = {"grid_id": grid_id, "radius": radius, "minutes": minutes}
    layers = [
        MapLayer(CATALOGUE["streets"]),
        MapLayer(CATALOGUE["buildings"]),
        MapLayer(DERIVED["circle"], data=_collection(connection, _CIRCLE, near)),
        MapLayer(CATALOGUE["grids"], data=_collection(connection, _GRID, {"code": code})),
        MapLayer(CATALOGUE["facilities"], data=_collection(connection, _FACILITIES_NEAR, near)),
        MapLayer(CATALOGUE["stairwells"]),
        MapLayer(
            CATALOGUE["cases"],
            keep={"status": OPEN_STATUSES, "grid_id": (str(grid_id),)},
            title=_text(options.lang, "未结案件", "Open cases"),
        ),
    ]
    bounds = BBox(float(row[1]), float(row[2]), float(row[3]), float(row[4]))
    if embed:
        area = _circle_extent(connection, grid_id, radius)
        layers = [
            item
            if item.data is not None
            else replace(
                item,
                data=features_geojson(
                    connection, item.layer.source, bbox=area, limit=options.limit
                ),
            )
            for item in layers
        ]
    return layer_map(
        layers,
        embed=embed,
        bounds=bounds,
        limit=options.limit,
        lang=options.lang,
        tiles=options.tiles,
        title=_text(options.lang, f"网格 {code}", f"Grid {code}"),
        max_zoom=18,
    )


def _circle_extent(connection: Connection, grid_id: int, radius: float) -> BBox:
    row = connection.execute(
        text(
            "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT "
            "ST_Buffer(geom::geography, :radius)::geometry AS b FROM grid WHERE id = :id) AS c"
        ),
        {"id": grid_id, "radius": radius},
    ).one()
    return BBox(*(float(v) for v in row))


def _shares(connection: Connection, kind: str | None, level: int) -> list[dict[str, Any]]:
    """Share of households covered per grid code (empty when no coverage is stored)."""
    report = coverage_report(connection, type=kind, level=level, by="grid")
    if report.empty:
        return []
    if kind is None:
        report = report.loc[report["type"] == "all_required"]
    return [
        {"code": str(code), "share": float(share)}
        for code, share in zip(report["grid_code"], report["share_households"], strict=True)
    ]


def planner_map(
    connection: Connection,
    kind: str | None,
    *,
    options: PageOptions | None = None,
    circles: CircleSettings | None = None,
    sites: int | None = None,
) -> folium.Map:
    """Return a planner's map: coverage by grid, facilities and their service radius.

    ``kind`` is a facility type of the mapping; None shows the share of households having
    every required type at 15 minutes. Shares come from the stored service-circle coverage
    (``wangge circles compute``); grids without stored coverage are grey. With ``sites``
    (and a ``kind``), the ``sites`` new sites covering the most elderly residents within the
    type's standard radius are proposed (maximal covering on the walking network, candidates
    one network node per 200 m square, 20 s solver limit) and drawn with the existing ones.

    Raises
    ------
    NotFoundError
        When ``kind`` is not a facility type.
    InputError
        ``sites`` without ``kind`` or below 1; errors of the siting inputs.
    """
    options = options or PageOptions()
    circles = circles or CircleSettings()
    types = facility_types()
    if kind is not None and kind not in types:
        msg = f"unknown facility type {kind!r}; known types: {', '.join(sorted(types))}"
        raise NotFoundError(msg)
    level = types[kind] if kind is not None and types[kind] > 0 else max(circles.standard_radius_m)
    shares = _shares(connection, kind, level)
    layers = [
        MapLayer(CATALOGUE["communities"]),
        MapLayer(
            DERIVED["coverage"],
            data=_collection(connection, _GRID_SHARES, {"shares": json.dumps(shares)}),
            choropleth=SHARE_COLOURS,
        ),
        MapLayer(CATALOGUE["buildings"], show=False),
    ]
    if kind is not None:
        radius = float(
            circles.standard_radius_m.get(level, max(circles.standard_radius_m.values()))
        )
        params = {"type": kind, "radius": radius, "minutes": level}
        layers.append(
            MapLayer(DERIVED["isochrones"], data=_collection(connection, _SERVICE_RADIUS, params))
        )
    layers.append(
        MapLayer(
            CATALOGUE["facilities"],
            data=_collection(connection, _FACILITIES_OF_TYPE, {"type": kind}),
        )
    )
    bounds = extent(connection, PUBLIC_SOURCES)
    if sites is not None:
        if kind is None:
            raise InputError("sites", "give a facility type (type) to site")
        if sites < 1:
            raise InputError("sites", f"must be at least 1, got {sites}")
        radii = circles.standard_radius_m
        answer = solve_siting(
            connection,
            SitingRequest(
                problem="mclp",
                facility_type=kind,
                candidates=CandidateSpec(node_spacing_m=200.0),
                k=sites,
                service_distance_m=float(radii.get(level, max(radii.values()))),
                time_limit_s=20.0,
                bbox=tuple(bounds) if bounds is not None else None,
            ),
            settings=circles,
        )
        layers.append(MapLayer(DERIVED["proposals"], data=json.dumps(_proposals(answer["layer"]))))
    return layer_map(
        layers,
        bounds=bounds,
        limit=options.limit,
        lang=options.lang,
        tiles=options.tiles,
        title=_text(options.lang, "规划：设施覆盖", "Planning: facility coverage"),
    )


def _proposals(layer: dict[str, Any]) -> dict[str, Any]:
    """Siting answer features with ids and ``proposed`` as text (the colour key)."""
    features = []
    for i, feature in enumerate(layer["features"]):
        props = feature["properties"]
        features.append(
            {
                **feature,
                "id": i,
                "properties": {
                    "site": props.get("site"),
                    "kind": props.get("kind"),
                    "proposed": "true" if props.get("proposed") else "false",
                    "served": props.get("served"),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def cases_map(
    connection: Connection,
    *,
    status: str | None = None,
    since: datetime | None = None,
    heat: bool = False,
    options: PageOptions | None = None,
) -> folium.Map:
    """Return the cases map: cases clustered (or a heatmap) and the number of cases per grid.

    Raises
    ------
    InputError
        ``status`` not a case state; ``since`` without a time zone.
    """
    options = options or PageOptions()
    if status is not None and status not in CASE_STATES:
        msg = f"unknown status {status!r}; expected one of {', '.join(CASE_STATES)}"
        raise InputError("status", msg)
    if since is not None and since.tzinfo is None:
        raise InputError("since", "must carry a time zone (e.g. 2026-11-01T00:00:00+08:00)")
    counts = _collection(connection, _GRID_CASES, {"status": status, "since": since})
    layers = [
        MapLayer(CATALOGUE["communities"]),
        MapLayer(DERIVED["incidents"], data=counts, choropleth=CASE_COUNT_COLOURS),
        MapLayer(
            CATALOGUE["cases"],
            keep={"status": (status,)} if status is not None else {},
            since=since.isoformat() if since is not None else None,
            render="heat" if heat else "cluster",
        ),
    ]
    return layer_map(
        layers,
        bounds=extent(connection, PUBLIC_SOURCES),
        limit=options.limit,
        lang=options.lang,
        tiles=options.tiles,
        title=_text(options.lang, "案件分布", "Cases"),
    )
