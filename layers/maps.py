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
import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from sqlalchemy import Connection, text

from gis.circles import STANDARD, CircleSettings, Threshold, isochrones, thresholds
from gis.circles_store import AreaCache, facility_types
from gis.coords import utm_epsg
from gis.errors import InputError, NotFoundError
from gis.features import BBox, FeatureSource, extent, features_geojson
from gis.models import CASE_STATES
from gis.siting_inputs import CandidateSpec, SitingRequest, solve_siting
from layers.catalogue import CATALOGUE, OPEN_STATUSES, Category, Layer, Style
from layers.webmap import Choropleth, Lang, MapLayer, MapSettings, layer_map

WALK = "walk"
CIRCLE = "circle"

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
            title="步行等时圈（仅供显示）",
            title_en="Walking isochrones (display only)",
            source=FeatureSource(
                table="facility",
                geometry="geom",
                properties=("type", "name", "minutes", "distance_m", "shape"),
            ),
            style=Style(color="#17becf", weight=1.0, fill_color="#17becf", fill_opacity=0.08),
            popup=("name", "type", "minutes", "distance_m", "shape"),
            colour_by="shape",
            categories=(
                Category(
                    WALK,
                    "#17becf",
                    "步行可达范围（仅供显示，覆盖率按路网距离计算）",
                    "walking isochrone (display only; coverage uses network distances)",
                ),
                Category(
                    CIRCLE,
                    "#ff7f0e",
                    "标准半径圆（该处未计算步行路网）",
                    "standard-radius circle (no walking network computed here)",
                ),
            ),
        ),
        Layer(
            name="gaps",
            title="覆盖缺口（按楼栋）",
            title_en="Coverage gaps by building",
            source=FeatureSource(
                table="building",
                geometry="footprint",
                properties=(
                    "building",
                    "grid",
                    "stairwells",
                    "uncovered_households",
                    "uncovered_elderly",
                ),
            ),
            style=Style(
                color="#b2182b", weight=1.0, fill_color="#d6604d", fill_opacity=0.7, radius=4.0
            ),
            popup=("building", "grid", "stairwells", "uncovered_households", "uncovered_elderly"),
            size_by="uncovered_households",
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
_FACILITY_POINTS = """
SELECT id, ST_X(geom) AS lon, ST_Y(geom) AS lat, name FROM facility WHERE type = :type ORDER BY id
"""
# Buildings with stairwells lacking a type within the level (by the stored coverage): counts
# per building only (no stairwell rows), the most uncovered households first.
_GAPS = """
SELECT b.id, ST_PointOnSurface(b.footprint) AS geom,
       json_build_object('building', coalesce(b.name, b.number, b.source_id), 'grid', g.code,
                         'stairwells', count(*),
                         'uncovered_households', coalesce(sum(s.households), 0),
                         'uncovered_elderly', coalesce(sum(s.elderly), 0)) AS props
FROM stairwell s JOIN building b ON b.id = s.building_id LEFT JOIN grid g ON g.id = b.grid_id
WHERE s.id IN (SELECT stairwell_id FROM circle_coverage
               WHERE facility_type = ANY(:types) AND basis = :basis AND minutes = :minutes
                     AND count = 0)
GROUP BY b.id, g.code
ORDER BY coalesce(sum(s.households), 0) DESC, b.id
LIMIT :limit
"""
# Share of households whose stairwell has every type asked for within the level, per current
# grid (as gis.circles.coverage_shares, in one query); NULL where nothing is stored.
_GRID_SHARES = """
WITH stairwells AS (
    SELECT stairwell_id, bool_and(count > 0) AS covered FROM circle_coverage
    WHERE facility_type = ANY(:types) AND basis = :basis AND minutes = :minutes
    GROUP BY stairwell_id
), shares AS (
    SELECT b.grid_id,
           coalesce(sum(s.households) FILTER (WHERE c.covered), 0)::float
               / NULLIF(sum(s.households), 0) AS share
    FROM stairwells c JOIN stairwell s ON s.id = c.stairwell_id
    JOIN building b ON b.id = s.building_id
    GROUP BY b.grid_id
)
SELECT g.id, g.geom, json_build_object('code', g.code, 'kind', g.kind, 'share', x.share) AS props
FROM grid g LEFT JOIN shares x ON x.grid_id = g.id
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


def _threshold(settings: CircleSettings, group: str, level: int) -> Threshold:
    """Return the level distance of ``group`` (``standard`` or a walking group) at ``level``."""
    found = {(t.basis, t.minutes): t for t in thresholds(settings=settings)}
    if group not in {basis for basis, _ in found}:
        groups = ", ".join([STANDARD, *settings.speeds_kmh])
        raise InputError("group", f"unknown group {group!r}; groups: {groups}")
    if (group, level) not in found:
        levels = ", ".join(map(str, sorted(settings.standard_radius_m)))
        raise InputError("level", f"level {level} is not configured; levels: {levels}")
    return found[(group, level)]


def _walk_shape(
    connection: Connection,
    cache: AreaCache,
    point: gpd.GeoSeries,
    distance_m: float,
    settings: CircleSettings,
) -> shapely.Geometry | None:
    """Return the walking isochrone of one WGS84 point (None: no network computed there)."""
    lon, lat = float(point.x.iloc[0]), float(point.y.iloc[0])
    try:
        inputs = cache.get(connection, lon, lat, settings=settings)
    except InputError:
        return None
    if inputs.network is None:
        return None
    if bool(inputs.network.snap(point, max_snap_m=settings.max_snap_m).frame["too_far"].iloc[0]):
        return None
    shape = isochrones(point, inputs.network, distances_m=[distance_m], settings=settings)
    drawn = shape.geometry.iloc[0]
    return None if drawn is None or drawn.is_empty else drawn


def facility_isochrones(
    connection: Connection,
    kind: str,
    *,
    minutes: int,
    group: str = STANDARD,
    settings: CircleSettings | None = None,
    simplify_m: float = 5.0,
    cache: AreaCache | None = None,
) -> dict[str, Any]:
    """Draw the walking isochrone of every facility of one type, for display only.

    Each facility's shape is the street network reached within the level distance (the
    GB 50180 standard radius for ``standard``, else minutes x the group's walking speed),
    walked on the network stored with the newest computed area holding the facility
    (:class:`gis.circles_store.AreaCache`). Where no area was computed, or the facility lies
    farther than ``max_snap_m`` from the network, a circle of that distance is drawn instead
    (``shape`` = ``circle``). Shapes are simplified by ``simplify_m`` metres in the local UTM
    zone and rounded to 1e-6 degrees (about 0.1 m) to keep the page small.

    Parameters
    ----------
    connection
        Database connection.
    kind
        Facility type.
    minutes
        A configured level (5, 10 or 15 by default).
    group
        ``standard`` or a walking group (``adult``, ``elderly``).
    settings
        Levels, speeds, snapping distance.
    simplify_m
        Simplification tolerance, metres.
    cache
        Loaded areas kept between calls (a new one when None).

    Returns
    -------
    dict
        A GeoJSON FeatureCollection (WGS84), one feature per facility (ids: facility ids) with
        ``type``, ``name``, ``minutes``, ``distance_m`` and ``shape`` (``walk`` or ``circle``).

    Raises
    ------
    InputError
        Naming ``group`` or ``level`` when not configured.
    """
    settings = settings or CircleSettings()
    distance = _threshold(settings, group, minutes).distance_m
    rows = connection.execute(text(_FACILITY_POINTS), {"type": kind}).all()
    if not rows:
        return {"type": "FeatureCollection", "features": []}
    points = gpd.GeoSeries(
        shapely.points([(float(r.lon), float(r.lat)) for r in rows]), crs="EPSG:4326"
    )
    cache = cache if cache is not None else AreaCache()
    walked = [
        _walk_shape(connection, cache, points.iloc[[i]], distance, settings)
        for i in range(len(rows))
    ]
    is_walk = np.array([shape is not None for shape in walked])
    drawn = np.empty(len(rows), dtype=object)
    zones = np.array([utm_epsg(float(p.x), float(p.y)) for p in points])
    for zone in np.unique(zones):
        # Metric work per UTM zone of the facilities (a city's facilities share one).
        at = zones == zone
        local = CRS.from_epsg(int(zone))
        walks = gpd.GeoSeries(np.asarray(walked, dtype=object)[at], crs="EPSG:4326")
        circles = points[at].to_crs(local).buffer(distance, quad_segs=8)
        shapes = np.where(is_walk[at], walks.to_crs(local).to_numpy(), circles.to_numpy())
        local_shapes = gpd.GeoSeries(shapes, crs=local).simplify(simplify_m)
        drawn[at] = local_shapes.to_crs("EPSG:4326").to_numpy()
    small = shapely.transform(drawn, lambda xy: np.round(xy, 6))
    features = [
        {
            "type": "Feature",
            "id": int(row.id),
            "geometry": json.loads(shapely.to_geojson(shape)),
            "properties": {
                "type": kind,
                "name": row.name,
                "minutes": minutes,
                "distance_m": round(distance, 1),
                "shape": WALK if walk else CIRCLE,
            },
        }
        for row, shape, walk in zip(rows, small, is_walk, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features}


def coverage_gaps(
    connection: Connection,
    kind: str | None,
    *,
    minutes: int,
    group: str = STANDARD,
    limit: int = 2_000,
    settings: CircleSettings | None = None,
) -> str:
    """Count, per building, the stairwells lacking ``kind`` within the level, as GeoJSON.

    Without ``kind``, stairwells lacking any type required at ``minutes`` (facility mapping).
    Only stairwells with stored coverage (``wangge circles compute``) are counted.

    Returns
    -------
    str
        A GeoJSON FeatureCollection (WGS84): a point on each building's footprint with
        ``building``, ``grid``, ``stairwells``, ``uncovered_households`` and
        ``uncovered_elderly``; at most ``limit`` buildings, most uncovered households first.

    Raises
    ------
    InputError
        Naming ``group`` or ``level`` when not configured.
    """
    settings = settings or CircleSettings()
    _threshold(settings, group, minutes)
    kinds = (
        [kind]
        if kind is not None
        else [k for k, level in facility_types().items() if level == minutes]
    )
    params = {"types": kinds, "basis": group, "minutes": minutes, "limit": limit}
    return _collection(connection, _GAPS, params)


def planner_map(
    connection: Connection,
    kind: str | None,
    *,
    options: PageOptions | None = None,
    circles: CircleSettings | None = None,
    sites: int | None = None,
    level: int | None = None,
    group: str = STANDARD,
    cache: AreaCache | None = None,
) -> folium.Map:
    """Return a planner's map: coverage gaps by grid and building, isochrones, proposed sites.

    ``kind`` is a facility type of the mapping; None shows the share of households having
    every type required at the level. ``level`` (minutes; default the type's level in the
    facility mapping, else 15) and ``group`` (``standard``: the GB 50180 radius; or a
    walking group: minutes x its speed) pick the level distance. Shares come from the stored
    service-circle coverage (``wangge circles compute``); grids without stored coverage are
    grey. The gaps layer marks each building whose stairwells lack the type within the level,
    sized by its uncovered households (counts per building only; at most ``options.limit``
    buildings, the most uncovered households first). With a ``kind``, each facility's
    walking isochrone is drawn for display (a circle of the level distance where no network
    was computed, see :func:`facility_isochrones`). With ``sites`` (and a ``kind``), the
    ``sites`` new sites covering the most elderly residents within the type's standard radius
    are proposed (maximal covering on the walking network, candidates one network node per
    200 m square, 20 s solver limit) and drawn with the existing ones. ``cache`` keeps the
    walking networks of stored areas between calls (the app's cache).

    Raises
    ------
    NotFoundError
        When ``kind`` is not a facility type.
    InputError
        ``level`` or ``group`` not configured; ``sites`` without ``kind`` or below 1; errors
        of the siting inputs.
    """
    options = options or PageOptions()
    circles = circles or CircleSettings()
    types = facility_types()
    if kind is not None and kind not in types:
        msg = f"unknown facility type {kind!r}; known types: {', '.join(sorted(types))}"
        raise NotFoundError(msg)
    if level is None:
        level = (
            types[kind] if kind is not None and types[kind] > 0 else max(circles.standard_radius_m)
        )
    _threshold(circles, group, level)
    kinds = [kind] if kind is not None else [k for k, lv in types.items() if lv == level]
    share_params = {"types": kinds, "basis": group, "minutes": level}
    layers = [
        MapLayer(CATALOGUE["communities"]),
        MapLayer(
            DERIVED["coverage"],
            data=_collection(connection, _GRID_SHARES, share_params),
            choropleth=SHARE_COLOURS,
        ),
        MapLayer(CATALOGUE["buildings"], show=False),
        MapLayer(
            DERIVED["gaps"],
            data=coverage_gaps(
                connection,
                kind,
                minutes=level,
                group=group,
                limit=options.limit,
                settings=circles,
            ),
        ),
    ]
    if kind is not None:
        shapes = facility_isochrones(connection, kind, minutes=level, group=group, settings=circles)
        layers.append(MapLayer(DERIVED["isochrones"], data=json.dumps(shapes)))
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
