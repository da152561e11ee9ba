"""Read OpenStreetMap extracts and vector files into layers wangge stores.

Sources: ``.osm.pbf`` / ``.osm`` (read with pyosmium) and GeoJSON / GeoPackage (read with
pyogrio). Every layer comes back as a GeoDataFrame in WGS84 (EPSG:4326):

- buildings: closed ways and multipolygon relations tagged ``building`` (not ``no``);
- streets: walkable ``highway`` ways (the rule of ``data/*/PROVENANCE.md``);
- facilities: POIs (nodes and areas tagged ``amenity``, ``shop``, ``leisure``, ``healthcare``,
  ``social_facility`` or ``office=government``) mapped to facility types through an editable
  TOML mapping; POIs no rule matches are not facilities;
- entrances (gates and entrance nodes) and barriers (walls and fences), for the network work.

Residential compounds (小区) are read too, not stored: areas tagged ``landuse=residential``,
``place=neighbourhood`` or ``residential=*`` (closed ways and multipolygon relations). A building
whose footprint lies at least half inside them gets the derived tag ``landuse_residential=yes``
(:func:`mark_residential_landuse`), which the stairwell estimate reads. Compound outlines cut by
the extract boundary cannot be assembled and are left out silently (they are not a layer).

Invalid polygons are repaired with :func:`shapely.make_valid` (``repaired`` is true);
features with no usable geometry are listed in ``rejected`` with their source id and reason.
A truncated or unreadable file raises :class:`gis.errors.InputError`.
"""

from __future__ import annotations

import re
import struct
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from gis.errors import InputError

WGS84 = "EPSG:4326"
DEFAULT_MAPPING = Path(__file__).with_name("resources") / "facility_mapping.toml"

OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg")

#: Highway values walkable without further conditions.
WALKABLE_HIGHWAYS = frozenset(
    {
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "service",
        "pedestrian",
        "footway",
        "path",
        "steps",
        "track",
        "cycleway",
        "bridleway",
        "corridor",
        "road",
    }
)
#: Highway values walkable only with ``foot`` allowed or a sidewalk tagged.
CONDITIONAL_HIGHWAYS = frozenset({"trunk", "trunk_link"})
FOOT_ALLOWED = frozenset({"yes", "designated", "permissive"})
NO_ACCESS = frozenset({"no", "private"})

POI_KEYS = ("amenity", "shop", "leisure", "healthcare", "social_facility")
# Keys of residential compound areas (see is_residential_compound).
COMPOUND_KEYS = ("landuse", "place", "residential")
GATE_BARRIERS = frozenset(
    {"gate", "lift_gate", "swing_gate", "sliding_gate", "kissing_gate", "entrance", "turnstile"}
)
WALL_BARRIERS = frozenset({"wall", "fence", "city_wall", "retaining_wall"})
#: Share of a footprint's area that must lie inside residential land use to mark it.
MIN_RESIDENTIAL_SHARE = 0.5
#: Derived building tag: the footprint lies mostly inside a residential compound.
LANDUSE_RESIDENTIAL_TAG = "landuse_residential"
# Tags that say nothing about the feature itself.
NOISE_TAG_PREFIXES = ("source", "note", "fixme", "FIXME", "created_by", "comment")

# Columns of the files in data/*/ (and of ogr2ogr OSM exports) and the OSM tag each holds.
COLUMN_TAGS = {
    "building_levels_raw": "building:levels",
    "building_levels_underground": "building:levels:underground",
    "roof_levels": "roof:levels",
    "height_m": "height",
    "name_zh": "name:zh",
    "name_en": "name:en",
    "addr_street": "addr:street",
    "addr_housenumber": "addr:housenumber",
    "social_facility_for": "social_facility:for",
    "isced_level": "isced:level",
}
# Columns that are derived values, not tags.
DERIVED_COLUMNS = frozenset(
    {"osm_type", "osm_id", "area_m2", "length_m", "building_levels", "category", "geom_source"}
)
OSM_TYPE_PREFIX = {"node": "n", "way": "w", "relation": "r", "n": "n", "w": "w", "r": "r"}

BUILDING_COLUMNS = ["source_id", "name", "number", "use", "levels", "repaired", "tags"]
STREET_COLUMNS = ["source_id", "part", "highway", "name", "tags"]
FACILITY_COLUMNS = ["source_id", "type", "name", "tags"]
ENTRANCE_COLUMNS = ["source_id", "kind", "tags"]
BARRIER_COLUMNS = ["source_id", "kind", "tags"]


@dataclass(frozen=True)
class FacilityRule:
    """One mapping rule: tag conditions, optional name pattern and minimum area."""

    type: str
    tags: Mapping[str, tuple[str, ...] | None]
    name: re.Pattern[str] | None = None
    min_area_m2: float | None = None

    def matches(self, tags: Mapping[str, str], area_m2: float | None) -> bool:
        """Whether ``tags`` (of a feature of ``area_m2`` square metres, None for a node) match."""
        for key, values in self.tags.items():
            value = tags.get(key)
            if value is None or (values is not None and value not in values):
                return False
        if self.min_area_m2 is not None and (area_m2 is None or area_m2 < self.min_area_m2):
            return False
        if self.name is not None:
            names = (tags.get("name", ""), tags.get("name:zh", ""))
            if not any(self.name.search(n) for n in names if n):
                return False
        return True


@dataclass(frozen=True)
class FacilityMapping:
    """Facility types (code → Chinese name, level in minutes) and the ordered rules."""

    types: Mapping[str, tuple[str, int]]
    rules: tuple[FacilityRule, ...]

    def classify(self, tags: Mapping[str, str], *, area_m2: float | None = None) -> str | None:
        """Return the facility type of a POI with ``tags``, or None when no rule matches.

        ``area_m2`` is the area in square metres of an area POI (None for a node).
        """
        for rule in self.rules:
            if rule.matches(tags, area_m2):
                return rule.type
        return None


def load_facility_mapping(path: str | Path | None = None) -> FacilityMapping:
    """Read the OSM-tag → facility-type mapping from a TOML file.

    Parameters
    ----------
    path
        The TOML file; the default is the mapping shipped in ``gis/resources``.

    Raises
    ------
    InputError
        When the file is not valid TOML or a rule names an undeclared type, has no tags,
        or carries a malformed name pattern.
    """
    source = Path(path) if path is not None else DEFAULT_MAPPING
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError("mapping", f"{source}: {exc}") from exc
    types: dict[str, tuple[str, int]] = {}
    for code, spec in document.get("types", {}).items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", code):
            raise InputError("mapping", f"type code {code!r} is not snake_case")
        types[code] = (str(spec.get("name", code)), int(spec.get("level_minutes", 0)))
    rules: list[FacilityRule] = []
    for number, spec in enumerate(document.get("rules", []), start=1):
        where = f"rule {number}"
        code = spec.get("type")
        if code not in types:
            raise InputError("mapping", f"{where}: type {code!r} is not declared under [types]")
        raw_tags = spec.get("tags")
        if not isinstance(raw_tags, dict) or not raw_tags:
            raise InputError("mapping", f"{where}: needs at least one tag condition")
        conditions: dict[str, tuple[str, ...] | None] = {}
        for key, value in raw_tags.items():
            if value == "*":
                conditions[key] = None
            elif isinstance(value, list):
                conditions[key] = tuple(str(v) for v in value)
            else:
                conditions[key] = (str(value),)
        pattern = None
        if "name" in spec:
            try:
                pattern = re.compile(str(spec["name"]))
            except re.error as exc:
                raise InputError("mapping", f"{where}: bad name pattern: {exc}") from exc
        min_area = spec.get("min_area_m2")
        rules.append(
            FacilityRule(
                type=code,
                tags=conditions,
                name=pattern,
                min_area_m2=float(min_area) if min_area is not None else None,
            )
        )
    return FacilityMapping(types=types, rules=tuple(rules))


@dataclass
class OsmLayers:
    """What one source file gave: the layers to store and what was rejected."""

    path: str
    buildings: Any
    streets: Any
    facilities: Any
    entrances: Any
    barriers: Any
    rejected: list[dict[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


# --- field parsing -----------------------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CN_DIGITS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_BUILDING_NUMBER = re.compile(r"([0-9]+|[零〇一二两三四五六七八九十]+)\s*(?:号楼|号|栋|幢|座|楼)")
_LEVELS = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)")


def _chinese_number(text: str) -> int | None:
    # Numbers up to 99 as written in building names: 三, 十二, 二十, 二十三.
    if "十" in text:
        tens, _, units = text.partition("十")
        high = _CN_DIGITS.get(tens, -1) if tens else 1
        low = _CN_DIGITS.get(units, -1) if units else 0
        return None if high < 0 or low < 0 or "十" in units else high * 10 + low
    if len(text) == 1 and text in _CN_DIGITS:
        return _CN_DIGITS[text]
    return None


def parse_building_number(name: str | None) -> str | None:
    """Return the building number of a name like "10号楼", "3栋" or "君临国际广场2幢".

    Full-width digits are normalised ("１２号楼" → "12"); Chinese numerals up to 99 are
    converted ("三号楼" → "3"). The last number in the name wins. None when there is none.
    """
    if not name:
        return None
    text = unicodedata.normalize("NFKC", name)
    matches = _BUILDING_NUMBER.findall(text)
    if not matches:
        return None
    token = matches[-1]
    if token.isdigit():
        return str(int(token))
    value = _chinese_number(token)
    return None if value is None else str(value)


def parse_levels(value: object) -> int | None:
    """Return the number of floors of a ``building:levels`` value, or None.

    Accepts "6", "6.5" (→ 6), full-width digits and leading numbers ("12;14" → 12). Missing,
    unparseable and non-positive values give None.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, int | float):
        levels = int(value)
        return levels if levels > 0 else None
    match = _LEVELS.match(unicodedata.normalize("NFKC", str(value)))
    if match is None:
        return None
    levels = int(float(match.group(1)))
    return levels if levels > 0 else None


def relevant_tags(tags: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Return the tags of a feature without notes, sources and editor metadata."""
    return {k: v for k, v in tags if not k.startswith(NOISE_TAG_PREFIXES)}


def is_walkable(tags: Mapping[str, str]) -> bool:
    """Whether a ``highway`` way with ``tags`` belongs to the walkable network."""
    highway = tags.get("highway")
    if highway is None or tags.get("area") == "yes":
        return False
    foot = tags.get("foot")
    if highway in CONDITIONAL_HIGHWAYS:
        sidewalk = tags.get("sidewalk")
        has_sidewalk = sidewalk is not None and sidewalk not in ("no", "none")
        if not (foot in FOOT_ALLOWED or has_sidewalk):
            return False
    elif highway not in WALKABLE_HIGHWAYS:
        return False
    if foot in NO_ACCESS:
        return False
    return not (tags.get("access") in NO_ACCESS and foot not in FOOT_ALLOWED)


def is_residential_compound(tags: Mapping[str, str]) -> bool:
    """Whether an area with ``tags`` outlines homes: a compound, estate or neighbourhood.

    True for ``landuse=residential``, ``place=neighbourhood`` and any ``residential=*``
    (``residential=urban``, ``gated``…) on an area that is not itself a building.
    """
    if tags.get("building", "no") != "no":
        return False
    return (
        tags.get("landuse") == "residential"
        or tags.get("place") == "neighbourhood"
        or "residential" in tags
    )


def residential_share(footprints: Any, compounds: Any) -> np.ndarray[Any, Any]:
    """Return the share of each footprint's area that lies inside the compound polygons.

    Parameters
    ----------
    footprints
        Array-like of valid polygonal shapely geometries in WGS84 (EPSG:4326).
    compounds
        Array-like of polygonal shapely geometries in WGS84; they may overlap or be invalid
        (they are repaired and merged first, so overlapping compounds are not counted twice).

    Returns
    -------
    numpy.ndarray
        One share in [0, 1] per footprint, areas measured in the local UTM zone of the
        footprints (metres); 0 for a footprint without area.
    """
    footprints = np.asarray(footprints, dtype=object)
    compounds = np.asarray(compounds, dtype=object)
    share = np.zeros(len(footprints))
    present = compounds[~(shapely.is_missing(compounds) | shapely.is_empty(compounds))]
    if not len(footprints) or not len(present):
        return share
    series = gpd.GeoSeries(footprints, crs=WGS84)
    utm = series.estimate_utm_crs()
    shapes = np.asarray(series.to_crs(utm).array, dtype=object)
    areas = np.asarray(gpd.GeoSeries(present, crs=WGS84).to_crs(utm).array, dtype=object)
    merged = shapely.get_parts(shapely.union_all(shapely.make_valid(areas)))
    parts = merged[shapely.get_type_id(merged) == 3]
    if not len(parts):
        return share
    left, right = shapely.STRtree(parts).query(shapes, predicate="intersects")
    inside = shapely.area(shapely.intersection(shapes[left], parts[right]))
    covered = np.bincount(left, weights=inside, minlength=len(shapes))
    total = shapely.area(shapes)
    np.divide(covered, total, out=share, where=total > 0)
    return np.clip(share, 0.0, 1.0)


def mark_residential_landuse(
    buildings: Any, compounds: Any, *, min_share: float = MIN_RESIDENTIAL_SHARE
) -> Any:
    """Tag buildings lying mostly inside residential compounds ``landuse_residential=yes``.

    Parameters
    ----------
    buildings
        GeoDataFrame in EPSG:4326 with valid polygonal geometries and a ``tags`` column of
        dicts (see :func:`read_osm`).
    compounds
        Array-like of compound polygons in WGS84 (:func:`is_residential_compound` areas).
    min_share
        The share of the footprint area (measured in metres, local UTM) that must lie inside
        the compounds.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``buildings`` whose marked rows carry the tag in new dicts; other rows and
        the input frame are unchanged.

    Raises
    ------
    ValueError
        If ``min_share`` is not in (0, 1].
    """
    if not 0 < min_share <= 1:
        msg = f"min_share must be in (0, 1], got {min_share}"
        raise ValueError(msg)
    share = residential_share(np.asarray(buildings.geometry.array, dtype=object), compounds)
    marked = share >= min_share
    tags = [
        {**t, LANDUSE_RESIDENTIAL_TAG: "yes"} if flag else t
        for t, flag in zip(buildings["tags"], marked, strict=True)
    ]
    return buildings.assign(tags=tags)


def is_poi(tags: Mapping[str, str]) -> bool:
    """Whether a feature with ``tags`` is a point of interest (a facility candidate)."""
    return any(k in tags for k in POI_KEYS) or tags.get("office") == "government"


# --- geometry cleaning ---------------------------------------------------------------------


def clean_polygons(
    geoms: Any, source_ids: Iterable[str], *, layer: str = "buildings"
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], list[dict[str, str]]]:
    """Repair invalid polygons and reject features with no polygonal geometry.

    Parameters
    ----------
    geoms
        Array-like of shapely geometries (None for a missing geometry), any CRS.
    source_ids
        The source id of each geometry, used in rejection reports.
    layer
        Layer name written into rejection reports.

    Returns
    -------
    keep, geoms, repaired, rejected
        A boolean mask of the features kept; the geometries (None where rejected, repaired
        ones replaced by the polygonal part of :func:`shapely.make_valid`, all
        ``MultiPolygon``); a boolean mask of the repaired ones; and one report
        ``{"layer", "source_id", "reason"}`` per rejected feature.
    """
    geoms = np.asarray(geoms, dtype=object)
    ids = list(source_ids)
    rejected: list[dict[str, str]] = []
    keep = np.ones(len(geoms), dtype=bool)
    repaired = np.zeros(len(geoms), dtype=bool)
    out = geoms.copy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    type_ids = shapely.get_type_id(geoms)
    polygonal = np.isin(type_ids, (3, 6))
    for i in np.flatnonzero(missing):
        rejected.append({"layer": layer, "source_id": ids[i], "reason": "missing geometry"})
    for i in np.flatnonzero(~missing & ~polygonal):
        kind = shapely.get_type_id(geoms[i])
        reason = f"geometry is a {_TYPE_NAMES.get(int(kind), 'non-polygon')}, not a polygon"
        rejected.append({"layer": layer, "source_id": ids[i], "reason": reason})
    keep &= ~missing & polygonal
    invalid = keep & ~shapely.is_valid(np.where(keep, geoms, None))
    for i in np.flatnonzero(invalid):
        fixed = _polygonal_part(shapely.make_valid(geoms[i]))
        if fixed is None:
            reason = f"invalid polygon ({shapely.is_valid_reason(geoms[i])}) with no area left"
            rejected.append({"layer": layer, "source_id": ids[i], "reason": reason})
            keep[i] = False
        else:
            out[i] = fixed
            repaired[i] = True
    out[keep] = _as_multipolygons(out[keep])
    out[~keep] = None
    return keep, out, repaired & keep, rejected


_TYPE_NAMES = {0: "point", 1: "line", 2: "ring", 4: "multipoint", 5: "multiline", 7: "collection"}


def _polygonal_part(geom: Any) -> Any:
    parts = shapely.get_parts(geom)
    polygons = [p for p in parts if shapely.get_type_id(p) in (3, 6) and not p.is_empty]
    if not polygons:
        return None
    merged = shapely.union_all(polygons)
    return None if merged.is_empty or merged.area == 0 else merged


def _as_multipolygons(geoms: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    single = shapely.get_type_id(geoms) == 3
    out = geoms.copy()
    out[single] = [shapely.MultiPolygon([g]) for g in geoms[single]]
    return out


def _area_m2(geoms: Any) -> np.ndarray[Any, Any]:
    # Areas in square metres in the local UTM zone of the features.
    series = gpd.GeoSeries(geoms, crs=WGS84)
    if series.empty:
        return np.zeros(0)
    utm = series.estimate_utm_crs()
    return np.asarray(series.to_crs(utm).area)


# --- OSM files -----------------------------------------------------------------------------


def check_pbf_complete(path: str | Path) -> None:
    """Walk the blob headers of a PBF file; raise if it is truncated or not a PBF.

    libosmium accepts some truncated files silently (a file cut inside its first blob reads
    as empty), so the structure is checked before reading.

    Raises
    ------
    InputError
        When a blob header or blob runs past the end of the file.
    """
    where = str(path)
    size = Path(path).stat().st_size
    if size == 0:
        raise InputError(where, "file is empty")
    with open(path, "rb") as handle:
        offset = 0
        while offset < size:
            raw = handle.read(4)
            if len(raw) < 4:
                raise InputError(where, f"truncated PBF: incomplete blob length at byte {offset}")
            (header_len,) = struct.unpack(">I", raw)
            header = handle.read(header_len)
            if header_len > 64 * 1024 or len(header) < header_len:
                raise InputError(where, f"truncated or corrupt PBF: bad blob header at {offset}")
            data_size = _blob_data_size(header)
            if data_size is None:
                raise InputError(where, f"corrupt PBF: blob header at byte {offset} has no size")
            offset += 4 + header_len + data_size
            if offset > size:
                msg = f"truncated PBF: last blob needs {offset} bytes, file has {size}"
                raise InputError(where, msg)
            handle.seek(offset)


def _blob_data_size(header: bytes) -> int | None:
    # BlobHeader (protobuf): 1 type (string), 2 indexdata (bytes), 3 datasize (int32).
    pos = 0
    while pos < len(header):
        key, pos = _varint(header, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(header, pos)
            if field_no == 3:
                return value
        elif wire == 2:
            length, pos = _varint(header, pos)
            pos += length
        else:
            return None
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    msg = "truncated varint"
    raise InputError("pbf", msg)


def read_osm(
    path: str | Path,
    *,
    mapping: FacilityMapping | None = None,
    progress: Callable[[int], None] | None = None,
) -> OsmLayers:
    """Read an ``.osm.pbf`` or ``.osm`` file into WGS84 layers.

    Parameters
    ----------
    path
        The OSM file.
    mapping
        Facility mapping; the shipped default when None.
    progress
        Called now and then with the number of OSM objects read so far.

    Returns
    -------
    OsmLayers
        The layers; buildings lying at least :data:`MIN_RESIDENTIAL_SHARE` of their area
        inside residential compounds carry ``tags["landuse_residential"] = "yes"``
        (:func:`mark_residential_landuse`).

    Raises
    ------
    InputError
        When the file is truncated, unreadable or holds no OSM objects.
    """
    mapping = mapping or load_facility_mapping()
    name = str(path)
    if not Path(path).is_file():
        raise InputError(name, "no such file")
    if name.endswith(".pbf"):
        check_pbf_complete(path)
    wkb = osmium.geom.WKBFactory()
    buildings: dict[str, list[Any]] = {c: [] for c in [*BUILDING_COLUMNS, "wkb"]}
    streets: dict[str, list[Any]] = {c: [] for c in [*STREET_COLUMNS, "wkb"]}
    pois: dict[str, list[Any]] = {"source_id": [], "tags": [], "wkb": [], "is_area": []}
    entrances: dict[str, list[Any]] = {c: [] for c in [*ENTRANCE_COLUMNS, "wkb"]}
    barriers: dict[str, list[Any]] = {c: [] for c in [*BARRIER_COLUMNS, "wkb"]}
    compounds: list[bytes] = []
    rejected: list[dict[str, str]] = []
    keys = ("building", "highway", "barrier", "entrance", "office", *POI_KEYS, *COMPOUND_KEYS)
    processor = (
        osmium.FileProcessor(name)
        .with_locations()
        .with_areas(osmium.filter.KeyFilter("building", "office", *POI_KEYS, *COMPOUND_KEYS))
        .with_filter(osmium.filter.KeyFilter(*keys))
    )
    seen = 0
    try:
        for obj in processor:
            seen += 1
            if progress is not None and seen % 5000 == 0:
                progress(seen)
            tags = relevant_tags((t.k, t.v) for t in obj.tags)
            if isinstance(obj, osmium.osm.Area):
                area_id = ("w" if obj.from_way() else "r") + str(obj.orig_id())
                building = tags.get("building", "no") != "no"
                if is_residential_compound(tags):
                    outline = _compound(wkb, obj)
                    if outline is not None:
                        compounds.append(outline)
                if not (building or "office" in tags or any(k in tags for k in POI_KEYS)):
                    continue
                layer = "buildings" if building else "facilities"
                geom = _make(wkb.create_multipolygon, obj, area_id, layer, rejected)
                if building and geom is not None:
                    _add_building(buildings, area_id, tags, geom)
                if is_poi(tags) and geom is not None:
                    _append(pois, source_id=area_id, tags=tags, wkb=geom, is_area=True)
            elif isinstance(obj, osmium.osm.Node):
                node_id = f"n{obj.id}"
                if is_poi(tags):
                    point = wkb.create_point(obj)
                    _append(pois, source_id=node_id, tags=tags, wkb=point, is_area=False)
                kind = _entrance_kind(tags)
                if kind is not None:
                    point = wkb.create_point(obj)
                    _append(entrances, source_id=node_id, kind=kind, tags=tags, wkb=point)
            elif isinstance(obj, osmium.osm.Way):
                way_id = f"w{obj.id}"
                if is_walkable(tags):
                    line = _way_line(wkb, obj, way_id, "streets", rejected)
                    if line is not None:
                        _append(
                            streets,
                            source_id=way_id,
                            part=0,
                            highway=tags["highway"],
                            name=tags.get("name"),
                            tags=tags,
                            wkb=line,
                        )
                if tags.get("barrier") in WALL_BARRIERS:
                    line = _way_line(wkb, obj, way_id, "barriers", rejected)
                    if line is not None:
                        _append(
                            barriers, source_id=way_id, kind=tags["barrier"], tags=tags, wkb=line
                        )
    except RuntimeError as exc:
        raise InputError(name, f"cannot read OSM data: {exc}") from exc

    layers = OsmLayers(
        path=name,
        buildings=_frame(buildings, BUILDING_COLUMNS),
        streets=_frame(streets, STREET_COLUMNS),
        facilities=_facilities(pois, mapping),
        entrances=_frame(entrances, ENTRANCE_COLUMNS),
        barriers=_frame(barriers, BARRIER_COLUMNS),
        rejected=rejected,
    )
    layers = _finish_buildings(layers)
    if compounds and len(layers.buildings):
        layers.buildings = mark_residential_landuse(layers.buildings, shapely.from_wkb(compounds))
    return layers


def _compound(wkb: Any, obj: Any) -> bytes | None:
    # A compound cut by the extract boundary has no outline; it is simply not used.
    try:
        return bytes.fromhex(wkb.create_multipolygon(obj))
    except (RuntimeError, osmium.InvalidLocationError):
        return None


def _make(
    factory: Callable[[Any], str],
    obj: Any,
    source_id: str,
    layer: str,
    rejected: list[dict[str, str]],
) -> bytes | None:
    try:
        return bytes.fromhex(factory(obj))
    except (RuntimeError, osmium.InvalidLocationError) as exc:
        # Ways cut by the extract boundary lack node locations.
        reason = f"no geometry ({exc}): nodes missing from the extract"
        rejected.append({"layer": layer, "source_id": source_id, "reason": reason})
        return None


def _way_line(
    wkb: Any, way: Any, source_id: str, layer: str, rejected: list[dict[str, str]]
) -> bytes | None:
    try:
        return bytes.fromhex(wkb.create_linestring(way))
    except (RuntimeError, osmium.InvalidLocationError):
        pass
    # A way cut by the extract boundary keeps the part whose nodes are in the file.
    coords = [(n.lon, n.lat) for n in way.nodes if n.location.valid()]
    unique = [c for i, c in enumerate(coords) if i == 0 or c != coords[i - 1]]
    if len(unique) < 2:
        reason = f"no geometry: {len(unique)} of {len(way.nodes)} node locations in the file"
        rejected.append({"layer": layer, "source_id": source_id, "reason": reason})
        return None
    return bytes(shapely.to_wkb(shapely.LineString(unique)))


def _append(columns: dict[str, list[Any]], **values: Any) -> None:
    for key, value in values.items():
        columns[key].append(value)


def _add_building(
    columns: dict[str, list[Any]], source_id: str, tags: dict[str, str], geom: bytes
) -> None:
    name = tags.get("name") or tags.get("name:zh")
    _append(
        columns,
        source_id=source_id,
        name=name,
        number=parse_building_number(name),
        use=tags.get("building"),
        levels=parse_levels(tags.get("building:levels")),
        repaired=False,
        tags=tags,
        wkb=geom,
    )


def _entrance_kind(tags: Mapping[str, str]) -> str | None:
    barrier = tags.get("barrier")
    if barrier in GATE_BARRIERS:
        return barrier
    if "entrance" in tags:
        return "entrance"
    return None


def _frame(columns: dict[str, list[Any]], names: list[str]) -> Any:
    geometry = shapely.from_wkb(columns["wkb"]) if columns["wkb"] else np.array([], dtype=object)
    data = {name: columns[name] for name in names}
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometry, crs=WGS84), crs=WGS84)


def _facilities(pois: dict[str, list[Any]], mapping: FacilityMapping) -> Any:
    geoms = shapely.from_wkb(pois["wkb"]) if pois["wkb"] else np.array([], dtype=object)
    is_area = np.asarray(pois["is_area"], dtype=bool)
    areas = np.full(len(geoms), np.nan)
    if is_area.any():
        areas[is_area] = _area_m2(geoms[is_area])
        geoms = geoms.copy()
        geoms[is_area] = shapely.point_on_surface(geoms[is_area])
    types = [
        mapping.classify(tags, area_m2=float(a) if flag else None)
        for tags, a, flag in zip(pois["tags"], areas, is_area, strict=True)
    ]
    frame = gpd.GeoDataFrame(
        {
            "source_id": pois["source_id"],
            "type": types,
            "name": [t.get("name") or t.get("name:zh") for t in pois["tags"]],
            "tags": pois["tags"],
        },
        geometry=gpd.GeoSeries(geoms, crs=WGS84),
        crs=WGS84,
    )
    frame = frame[frame["type"].notna()]
    # A POI tagged on both a building outline and its node keeps one row per source id.
    return frame.drop_duplicates("source_id", keep="last").reset_index(drop=True)


def _finish_buildings(layers: OsmLayers) -> OsmLayers:
    buildings = layers.buildings
    geoms_in = np.asarray(buildings.geometry.array, dtype=object)
    keep, geoms, repaired, rejected = clean_polygons(geoms_in, buildings["source_id"])
    buildings = buildings.assign(
        repaired=repaired, levels=pd.array(list(buildings["levels"]), dtype="Int64")
    )
    buildings = buildings.set_geometry(gpd.GeoSeries(geoms, crs=WGS84, index=buildings.index))
    layers.buildings = buildings[keep].drop_duplicates("source_id", keep="last")
    layers.buildings = layers.buildings.reset_index(drop=True)
    layers.rejected = [*layers.rejected, *rejected]
    layers.counts = {
        "buildings": len(layers.buildings),
        "repaired": int(layers.buildings["repaired"].sum()),
        "streets": len(layers.streets),
        "facilities": len(layers.facilities),
        "entrances": len(layers.entrances),
        "barriers": len(layers.barriers),
        "rejected": len(layers.rejected),
    }
    return layers


# --- vector files --------------------------------------------------------------------------


def read_vector(path: str | Path, *, mapping: FacilityMapping | None = None) -> OsmLayers:
    """Read a GeoJSON or GeoPackage file (every layer) into WGS84 layers.

    A layer with a ``highway`` column is streets, one with a ``building`` column buildings,
    one with POI columns (``amenity``, ``shop``, …) POIs; otherwise the geometry type decides
    (polygons → buildings, lines → streets, points → POIs). Ids come from ``osm_type`` +
    ``osm_id`` ("w123") when present, else from the feature id ("f12"). The declared CRS is
    honoured (reprojected to EPSG:4326).

    Raises
    ------
    InputError
        When the file cannot be read, or has coordinates outside the lon/lat range while
        declaring WGS84 or no CRS (a wrong CRS).
    """
    mapping = mapping or load_facility_mapping()
    name = str(path)
    if not Path(path).is_file():
        raise InputError(name, "no such file")
    try:
        layer_names = [str(row[0]) for row in pyogrio.list_layers(name)]
    except Exception as exc:  # pyogrio raises several driver-specific errors
        raise InputError(name, f"cannot read: {exc}") from exc
    parts: dict[str, list[Any]] = {"buildings": [], "streets": [], "facilities": []}
    rejected: list[dict[str, str]] = []
    for layer_name in layer_names:
        try:
            frame = pyogrio.read_dataframe(name, layer=layer_name, fid_as_index=True)
        except Exception as exc:  # pyogrio raises several driver-specific errors
            raise InputError(f"{name}:{layer_name}", f"cannot read: {exc}") from exc
        frame = _to_wgs84(frame, f"{name}:{layer_name}")
        kind = _layer_kind(frame)
        ids = _source_ids(frame, default_type="w" if kind == "streets" else "n")
        if kind == "buildings":
            parts["buildings"].append(_vector_buildings(frame, ids))
        elif kind == "streets":
            part, bad = _vector_streets(frame, ids)
            parts["streets"].append(part)
            rejected.extend(bad)
        else:
            part, bad = _vector_pois(frame, ids, mapping)
            parts["facilities"].append(part)
            rejected.extend(bad)
    empty = {
        "buildings": [*BUILDING_COLUMNS],
        "streets": [*STREET_COLUMNS],
        "facilities": [*FACILITY_COLUMNS],
    }
    frames = {
        key: (
            pd.concat(value, ignore_index=True)
            if value
            else _frame({c: [] for c in [*empty[key], "wkb"]}, empty[key])
        )
        for key, value in parts.items()
    }
    layers = OsmLayers(
        path=name,
        buildings=gpd.GeoDataFrame(frames["buildings"], geometry="geometry", crs=WGS84),
        streets=gpd.GeoDataFrame(frames["streets"], geometry="geometry", crs=WGS84),
        facilities=gpd.GeoDataFrame(frames["facilities"], geometry="geometry", crs=WGS84),
        entrances=_frame({c: [] for c in [*ENTRANCE_COLUMNS, "wkb"]}, ENTRANCE_COLUMNS),
        barriers=_frame({c: [] for c in [*BARRIER_COLUMNS, "wkb"]}, BARRIER_COLUMNS),
        rejected=rejected,
    )
    return _finish_buildings(layers)


def _to_wgs84(frame: Any, where: str) -> Any:
    crs = frame.crs
    if crs is not None and not CRS.from_user_input(crs).equals(CRS.from_epsg(4326)):
        return frame.to_crs(WGS84)
    present = frame.geometry[frame.geometry.notna() & ~frame.geometry.is_empty]
    if len(present):
        minx, miny, maxx, maxy = present.total_bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            declared = "declares WGS84" if crs is not None else "declares no CRS"
            msg = (
                f"coordinates ({minx:.0f}, {miny:.0f}) – ({maxx:.0f}, {maxy:.0f}) are outside "
                f"the lon/lat range but the file {declared}: wrong CRS"
            )
            raise InputError(where, msg)
    return frame.set_crs(WGS84, allow_override=True)


def _layer_kind(frame: Any) -> str:
    columns = set(frame.columns)
    if "highway" in columns:
        return "streets"
    if "building" in columns:
        return "buildings"
    if columns & {*POI_KEYS, "office"}:
        return "pois"
    types = set(frame.geometry.dropna().geom_type)
    if types and types <= {"Polygon", "MultiPolygon"}:
        return "buildings"
    if types and types <= {"LineString", "MultiLineString"}:
        return "streets"
    return "pois"


def _source_ids(frame: Any, *, default_type: str) -> list[str]:
    if "osm_id" in frame.columns:
        kinds = (
            frame["osm_type"].map(lambda v: OSM_TYPE_PREFIX.get(str(v), default_type))
            if "osm_type" in frame.columns
            else pd.Series(default_type, index=frame.index)
        )
        ids = frame["osm_id"].map(lambda v: "" if pd.isna(v) else str(int(v)))
        fallback = [f"f{i}" for i in frame.index]
        return [k + i if i else f for k, i, f in zip(kinds, ids, fallback, strict=True)]
    return [f"f{i}" for i in frame.index]


def _row_tags(frame: Any) -> list[dict[str, str]]:
    columns = [c for c in frame.columns if c != frame.geometry.name and c not in DERIVED_COLUMNS]
    keys = [COLUMN_TAGS.get(c, c) for c in columns]
    values = frame[columns].astype(object).where(frame[columns].notna(), None)
    return [
        relevant_tags((k, _tag_text(v)) for k, v in zip(keys, row, strict=True) if v is not None)
        for row in values.itertuples(index=False, name=None)
    ]


def _tag_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _vector_buildings(frame: Any, ids: list[str]) -> Any:
    tags = _row_tags(frame)
    names = [t.get("name") or t.get("name:zh") for t in tags]
    if "building_levels_raw" in frame.columns or "building:levels" in frame.columns:
        levels = [parse_levels(t.get("building:levels")) for t in tags]
    elif "building_levels" in frame.columns:
        levels = [parse_levels(v) for v in frame["building_levels"]]
    else:
        levels = [None] * len(tags)
    out = gpd.GeoDataFrame(
        {
            "source_id": ids,
            "name": names,
            "number": [parse_building_number(n) for n in names],
            "use": [t.get("building") for t in tags],
            "levels": levels,
            "repaired": False,
            "tags": tags,
        },
        geometry=gpd.GeoSeries(frame.geometry.array, crs=WGS84),
        crs=WGS84,
    )
    # building=no marks an outline that is not a building (as in the OSM reader).
    return out[out["use"] != "no"]


def _vector_streets(frame: Any, ids: list[str]) -> tuple[Any, list[dict[str, str]]]:
    tags = _row_tags(frame)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    rejected: list[dict[str, str]] = []
    rows: dict[str, list[Any]] = {c: [] for c in [*STREET_COLUMNS, "geometry"]}
    parts: dict[str, int] = {}
    for source_id, tag, geom in zip(ids, tags, geoms, strict=True):
        if geom is None or geom.is_empty:
            rejected.append(
                {"layer": "streets", "source_id": source_id, "reason": "missing geometry"}
            )
            continue
        lines = [
            g
            for g in shapely.get_parts(
                shapely.line_merge(geom) if geom.geom_type == "MultiLineString" else geom
            )
            if g.geom_type == "LineString" and g.length > 0
        ]
        if not lines:
            reason = f"geometry is a {geom.geom_type}, not a line"
            rejected.append({"layer": "streets", "source_id": source_id, "reason": reason})
            continue
        highway = tag.get("highway")
        if highway is None:
            rejected.append(
                {"layer": "streets", "source_id": source_id, "reason": "no highway value"}
            )
            continue
        if not is_walkable(tag):
            # Motorways and private ways are simply not part of the walking network.
            continue
        for line in lines:
            part = parts.get(source_id, 0)
            parts[source_id] = part + 1
            _append(
                rows,
                source_id=source_id,
                part=part,
                highway=highway,
                name=tag.get("name"),
                tags=tag,
                geometry=line,
            )
    frame_out = gpd.GeoDataFrame(
        {c: rows[c] for c in STREET_COLUMNS},
        geometry=gpd.GeoSeries(rows["geometry"], crs=WGS84),
        crs=WGS84,
    )
    return frame_out, rejected


def _vector_pois(
    frame: Any, ids: list[str], mapping: FacilityMapping
) -> tuple[Any, list[dict[str, str]]]:
    tags = _row_tags(frame)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    rejected = [
        {"layer": "facilities", "source_id": ids[i], "reason": "missing geometry"}
        for i in np.flatnonzero(missing)
    ]
    present = ~missing
    is_area = present & np.isin(shapely.get_type_id(geoms), (3, 6))
    areas = np.full(len(geoms), np.nan)
    points = geoms.copy()
    if is_area.any():
        valid = shapely.make_valid(geoms[is_area])
        areas[is_area] = _area_m2(valid)
        points[is_area] = shapely.point_on_surface(valid)
    other = present & ~is_area
    points[other] = shapely.point_on_surface(geoms[other])
    types = [
        mapping.classify(t, area_m2=float(a) if flag else None) if ok else None
        for t, a, flag, ok in zip(tags, areas, is_area, present, strict=True)
    ]
    out = gpd.GeoDataFrame(
        {
            "source_id": ids,
            "type": types,
            "name": [t.get("name") or t.get("name:zh") for t in tags],
            "tags": tags,
        },
        geometry=gpd.GeoSeries(points, crs=WGS84),
        crs=WGS84,
    )
    out = out[out["type"].notna()].drop_duplicates("source_id", keep="last")
    return out.reset_index(drop=True), rejected


def read_source(
    path: str | Path,
    *,
    mapping: FacilityMapping | None = None,
    progress: Callable[[int], None] | None = None,
) -> OsmLayers:
    """Read an OSM file or a GeoJSON / GeoPackage file, chosen by its suffix.

    Raises
    ------
    InputError
        When the suffix is unknown or the file cannot be read (see :func:`read_osm`,
        :func:`read_vector`).
    """
    lower = str(path).lower()
    if lower.endswith(OSM_SUFFIXES):
        return read_osm(path, mapping=mapping, progress=progress)
    if lower.endswith(VECTOR_SUFFIXES):
        return read_vector(path, mapping=mapping)
    suffixes = ", ".join((*OSM_SUFFIXES, *VECTOR_SUFFIXES))
    raise InputError(str(path), f"unknown file type (expected one of {suffixes})")
