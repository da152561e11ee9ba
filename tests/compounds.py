"""Test helpers: a small OSM XML file with a residential compound, and an independent reference
for which buildings of an OSM file lie mostly inside residential land use.

The reference reads the file with a plain :class:`osmium.SimpleHandler` (its own area
assembly, not wangge's reader), merges the compound outlines with shapely and measures areas in
a Lambert azimuthal equal-area projection centred on the data (not the UTM zone the reader uses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import osmium
import shapely
from pyproj import Transformer

# A residential compound (landuse=residential, about 170 m x 220 m) in Haidian, Beijing, with an
# unnamed building=yes inside (w21), one outside (w22), one inside tagged shop (w23), one only
# about a quarter inside (w24), and a named office block inside (w25).
COMPOUND_OSM = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6">
  <node id="1" lat="39.9000" lon="116.3000" version="1"/>
  <node id="2" lat="39.9000" lon="116.3020" version="1"/>
  <node id="3" lat="39.9020" lon="116.3020" version="1"/>
  <node id="4" lat="39.9020" lon="116.3000" version="1"/>
  <way id="20" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/>
    <tag k="landuse" v="residential"/><tag k="name" v="学院路小区"/>
  </way>
{buildings}
</osm>
"""

# Building id → (west, south, east, north) in degrees and its tags.
COMPOUND_BUILDINGS: dict[int, tuple[tuple[float, float, float, float], dict[str, str]]] = {
    21: ((116.3005, 39.9010, 116.3010, 39.90112), {"building": "yes"}),
    22: ((116.3030, 39.9010, 116.3035, 39.90112), {"building": "yes"}),
    23: ((116.3012, 39.9005, 116.3017, 39.90062), {"building": "yes", "shop": "supermarket"}),
    24: ((116.3018, 39.9015, 116.3026, 39.90162), {"building": "yes"}),
    25: ((116.3005, 39.9015, 116.3010, 39.90162), {"building": "yes", "name": "科技大厦"}),
}


def write_compound_osm(path: Path) -> Path:
    """Write :data:`COMPOUND_OSM` with the buildings of :data:`COMPOUND_BUILDINGS` to ``path``."""
    parts = []
    for way_id, ((west, south, east, north), tags) in COMPOUND_BUILDINGS.items():
        base = way_id * 10
        corners = [(south, west), (south, east), (north, east), (north, west)]
        parts += [
            f'  <node id="{base + i}" lat="{lat}" lon="{lon}" version="1"/>'
            for i, (lat, lon) in enumerate(corners)
        ]
        refs = "".join(f'<nd ref="{base + i}"/>' for i in (0, 1, 2, 3, 0))
        tag_xml = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        parts.append(f'  <way id="{way_id}" version="1">{refs}{tag_xml}</way>')
    path.write_text(COMPOUND_OSM.replace("{buildings}", "\n".join(parts)), encoding="utf-8")
    return path


class AreaReader(osmium.SimpleHandler):
    """Building areas (id → tags, geometry) and residential compound outlines of a file."""

    def __init__(self) -> None:
        super().__init__()
        self.factory = osmium.geom.WKBFactory()
        self.buildings: dict[str, tuple[dict[str, str], Any]] = {}
        self.compounds: list[Any] = []

    def area(self, area: Any) -> None:
        tags = {t.k: t.v for t in area.tags}
        building = tags.get("building", "no") != "no"
        compound = not building and (
            tags.get("landuse") == "residential"
            or tags.get("place") == "neighbourhood"
            or "residential" in tags
        )
        if not (building or compound):
            return
        try:
            geom = shapely.from_wkb(bytes.fromhex(self.factory.create_multipolygon(area)))
        except (RuntimeError, osmium.InvalidLocationError):
            return  # cut by the extract boundary
        if building:
            source_id = ("w" if area.from_way() else "r") + str(area.orig_id())
            self.buildings[source_id] = (tags, shapely.make_valid(geom))
        else:
            self.compounds.append(shapely.make_valid(geom))


def reference_shares(path: Path) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """Return each building's share of area inside residential compounds, and its tags."""
    reader = AreaReader()
    reader.apply_file(str(path), locations=True)
    ids = list(reader.buildings)
    tags = {i: reader.buildings[i][0] for i in ids}
    footprints = np.array([reader.buildings[i][1] for i in ids], dtype=object)
    if not reader.compounds:
        return dict.fromkeys(ids, 0.0), tags
    west, south, east, north = shapely.total_bounds(footprints)
    laea = (
        f"+proj=laea +lat_0={(south + north) / 2} +lon_0={(west + east) / 2} +datum=WGS84 +units=m"
    )
    forward = Transformer.from_crs("EPSG:4326", laea, always_xy=True)

    def project(geom: Any) -> Any:
        return shapely.transform(geom, lambda xy: np.column_stack(forward.transform(*xy.T)))

    compound = project(shapely.unary_union(reader.compounds))
    shares = {}
    for source_id, footprint in zip(ids, footprints, strict=True):
        shape = project(footprint)
        shares[source_id] = shape.intersection(compound).area / shape.area if shape.area else 0.0
    return shares, tags
