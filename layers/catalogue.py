"""Map layers: table, geometry, exposed properties, style, popup fields and minimum zoom.

Each layer is declared once here; the ``/layers`` API, the map page and later the OGC API and
vector tiles read it. Only the listed properties leave the database. Personal data stays out:
no grid worker (name, phone, or the ``worker_id`` that leads to them), no reporter contact, no
free-form OSM ``tags``. Layers marked ``personal`` (stairwells with household and elderly
counts, cases) answer only roles allowed household-level data, scoped to a worker's grids.

Titles, legend entries and popup field names come in Chinese and English (``lang``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

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
class Category:
    """One value of a layer's ``colour_by`` property: its colour and legend labels."""

    value: str
    color: str
    zh: str
    en: str


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
    title_en
        English label (``title`` is Chinese).
    personal
        Household-level or personal rows: only roles allowed such data may read the layer.
    colour_by
        A property whose value picks the colour among ``categories`` (others: ``style``).
    categories
        Colours and legend labels of ``colour_by`` values.
    label
        A property drawn as a permanent label on each feature (a grid's code).
    size_by
        A numeric property setting a point marker's radius (pixels grow with its square
        root, 4 to 24), so markers compare by area.
    """

    name: str
    title: str
    source: FeatureSource
    style: Style
    popup: tuple[str, ...]
    min_zoom: int = 0
    title_en: str = ""
    personal: bool = False
    colour_by: str | None = None
    categories: tuple[Category, ...] = ()
    label: str | None = None
    size_by: str | None = None

    def __post_init__(self) -> None:
        named = (self.colour_by, self.label, self.size_by)
        used = {*self.popup, *(f for f in named if f is not None)}
        hidden = used - set(self.source.properties)
        if hidden:
            msg = f"layer {self.name}: fields {sorted(hidden)} are not exposed properties"
            raise ValueError(msg)
        if self.categories and self.colour_by is None:
            msg = f"layer {self.name}: categories need colour_by"
            raise ValueError(msg)

    def display_title(self, lang: str) -> str:
        """Return the layer's title in ``lang`` (``zh`` or ``en``)."""
        return self.title_en if lang == "en" and self.title_en else self.title


GRID_KINDS = (
    Category("service", "#d62728", "服务网格", "service grid"),
    Category("unit", "#9467bd", "万米单元网格", "unit cell"),
)
# Facility types, Chinese names and order come from the service-circle mapping.
_MAPPING = Path(__file__).resolve().parent.parent / "gis" / "resources" / "facility_mapping.toml"
_PALETTE = (
    "#e377c2",
    "#8c564b",
    "#d62728",
    "#9467bd",
    "#1f77b4",
    "#17becf",
    "#393b79",
    "#2ca02c",
    "#bcbd22",
    "#ff7f0e",
    "#98df8a",
    "#c49c94",
    "#f7b6d2",
    "#aec7e8",
    "#ffbb78",
    "#dbdb8d",
)


def _facility_types() -> tuple[Category, ...]:
    with _MAPPING.open("rb") as handle:
        types = tomllib.load(handle)["types"]
    return tuple(
        Category(code, _PALETTE[i % len(_PALETTE)], str(spec["name"]), code.replace("_", " "))
        for i, (code, spec) in enumerate(types.items())
    )


FACILITY_TYPES = _facility_types()
CASE_STATUSES = (
    Category("reported", "#d62728", "已上报", "reported"),
    Category("filed", "#ff7f0e", "已立案", "filed"),
    Category("dispatched", "#ffbb78", "已派遣", "dispatched"),
    Category("handling", "#bcbd22", "处置中", "handling"),
    Category("feedback", "#17becf", "已反馈", "feedback"),
    Category("checking", "#1f77b4", "核查中", "checking"),
    Category("closed", "#2ca02c", "已结案", "closed"),
    Category("evaluated", "#98df8a", "已评价", "evaluated"),
    Category("voided", "#7f7f7f", "已作废", "voided"),
)
# Statuses of a case still being worked on.
OPEN_STATUSES = ("reported", "filed", "dispatched", "handling", "feedback", "checking")

# Popup field names: Chinese, English.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "code": ("编码", "code"),
    "kind": ("类型", "kind"),
    "name": ("名称", "name"),
    "number": ("门牌", "number"),
    "use": ("用途", "use"),
    "levels": ("层数", "levels"),
    "area_m2": ("面积 (m²)", "area (m²)"),
    "highway": ("道路等级", "road class"),
    "length_m": ("长度 (m)", "length (m)"),
    "building_id": ("楼栋", "building"),
    "unit_no": ("单元", "unit"),
    "households": ("户数", "households"),
    "elderly": ("老年人", "elderly"),
    "estimated": ("估算", "estimated"),
    "type": ("类型", "type"),
    "capacity": ("容量", "capacity"),
    "category_code": ("小类", "category"),
    "status": ("状态", "status"),
    "reported_at": ("上报时间", "reported"),
    "deadline": ("处置时限", "deadline"),
    "share": ("覆盖率", "coverage"),
    "cases": ("案件数", "cases"),
    "minutes": ("步行分钟", "walking minutes"),
    "distance_m": ("距离 (m)", "distance (m)"),
    "shape": ("图形", "shape"),
    "building": ("楼栋", "building"),
    "grid": ("网格", "grid"),
    "stairwells": ("未覆盖单元", "uncovered stairwells"),
    "uncovered_households": ("未覆盖户数", "uncovered households"),
    "uncovered_elderly": ("未覆盖老年人", "uncovered elderly"),
}


def field_label(field: str, lang: str) -> str:
    """Return the label of property ``field`` in ``lang`` (the field name when none is known)."""
    zh, en = FIELD_LABELS.get(field, (field, field))
    return en if lang == "en" else zh


CATALOGUE: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            name="communities",
            title="社区",
            title_en="Communities",
            source=FeatureSource(
                table="community", geometry="geom", properties=("code", "name", "derived")
            ),
            style=Style(color="#393b79", weight=3.0, fill_color="#393b79", fill_opacity=0.02),
            popup=("name", "code"),
            min_zoom=0,
        ),
        Layer(
            name="grids",
            title="网格",
            title_en="Grids (current)",
            source=FeatureSource(
                table="grid",
                geometry="geom",
                properties=("code", "kind", "community_id", "valid_from"),
                current_only=("valid_to",),
            ),
            style=Style(color="#d62728", weight=2.0, fill_color="#d62728", fill_opacity=0.05),
            popup=("code", "kind"),
            min_zoom=10,
            colour_by="kind",
            categories=GRID_KINDS,
            label="code",
        ),
        Layer(
            name="streets",
            title="道路",
            title_en="Streets and footpaths",
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
            title="建筑",
            title_en="Buildings",
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
            title="楼道单元",
            title_en="Stairwells",
            source=FeatureSource(
                table="stairwell",
                geometry="entrance",
                properties=("building_id", "unit_no", "households", "elderly", "estimated"),
            ),
            style=Style(
                color="#2ca02c", weight=1.0, fill_color="#2ca02c", fill_opacity=0.8, radius=3.0
            ),
            popup=("building_id", "unit_no", "households", "elderly", "estimated"),
            min_zoom=16,
            personal=True,
        ),
        Layer(
            name="facilities",
            title="设施",
            title_en="Facilities",
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
            colour_by="type",
            categories=FACILITY_TYPES,
        ),
        Layer(
            name="cases",
            title="案件",
            title_en="Cases",
            source=FeatureSource(
                table="cases",
                geometry="geom",
                properties=("category_code", "status", "reported_at", "deadline", "grid_id"),
            ),
            style=Style(
                color="#333333", weight=1.0, fill_color="#7f7f7f", fill_opacity=0.9, radius=6.0
            ),
            popup=("category_code", "status", "reported_at", "deadline"),
            min_zoom=12,
            personal=True,
            colour_by="status",
            categories=CASE_STATUSES,
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
