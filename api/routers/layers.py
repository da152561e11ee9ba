"""``GET /layers`` and ``GET /layers/{name}``: the catalogue's layers as GeoJSON by bbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import ApiSettingsDep, ConnectionDep
from api.schemas import FeatureCollection, LayerInfo
from gis.features import check_limit, features_geojson, parse_bbox
from layers import CATALOGUE, get_layer

router = APIRouter(tags=["layers"])

GEOJSON = "application/geo+json"


@router.get("/layers", response_model=list[LayerInfo])
def list_layers() -> list[LayerInfo]:
    """List the layers of the catalogue."""
    return [
        LayerInfo(
            name=layer.name,
            title=layer.title,
            properties=list(layer.source.properties),
            min_zoom=layer.min_zoom,
        )
        for layer in CATALOGUE.values()
    ]


@router.get(
    "/layers/{name}",
    response_class=Response,
    responses={
        200: {"model": FeatureCollection, "content": {GEOJSON: {}}},
        404: {"description": "Unknown layer; the message lists the known ones."},
        422: {"description": "Malformed bbox or limit; the body names the parameter."},
    },
)
def layer_features(
    name: str,
    connection: ConnectionDep,
    settings: ApiSettingsDep,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in WGS84 degrees; omitted: whole layer.",
            examples=["116.30,39.98,116.31,39.99"],
        ),
    ] = None,
    limit: Annotated[int | None, Query(description="Maximum number of features.")] = None,
) -> Response:
    """Return the features of layer ``name`` intersecting ``bbox`` (GeoJSON, EPSG:4326)."""
    layer = get_layer(name)
    box = parse_bbox(bbox) if bbox is not None else None
    count = check_limit(
        limit, default=settings.layer_limit_default, maximum=settings.layer_limit_max
    )
    body = features_geojson(connection, layer.source, bbox=box, limit=count)
    return Response(content=body, media_type=GEOJSON)
