"""Response models: the documented shape of API answers, also used by the tests to validate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Geometry(BaseModel):
    """A GeoJSON geometry in WGS84 longitude/latitude (RFC 7946)."""

    type: Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]
    coordinates: list[Any]


class Feature(BaseModel):
    """One feature of a layer; ``properties`` holds the layer's exposed columns only."""

    type: Literal["Feature"]
    id: int
    geometry: Geometry
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """Features of a layer within a bbox, ordered by id."""

    type: Literal["FeatureCollection"]
    features: list[Feature]
    number_returned: int = Field(alias="numberReturned")
    truncated: bool = Field(description="True when more features matched than the limit.")


class LayerInfo(BaseModel):
    """A layer of the catalogue."""

    name: str
    title: str
    properties: list[str]
    min_zoom: int


class Health(BaseModel):
    """Answer of ``/healthz``."""

    status: Literal["ok", "unavailable"]
    postgresql: str | None = None
    postgis: str | None = None
    reason: str | None = None
