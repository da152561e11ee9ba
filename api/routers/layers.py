"""``GET /layers`` and ``GET /layers/{name}``: the catalogue's layers as GeoJSON by bbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import ApiSettingsDep, PrincipalDep, ReadConnectionDep
from api.schemas import FeatureCollection, LayerInfo
from gis.auth import HOUSEHOLD_ROLES, AuthenticationError, audit, grid_scope_sql, require_roles
from gis.features import BBox, check_limit, features_geojson, parse_bbox
from layers import CATALOGUE, Layer, get_layer

router = APIRouter(tags=["layers"])

GEOJSON = "application/geo+json"
# Layers with household-level rows (personal data): role-checked, scoped and audited.
HOUSEHOLD_LAYERS = frozenset(name for name, layer in CATALOGUE.items() if layer.personal)


@router.get("/layers", response_model=list[LayerInfo])
async def list_layers() -> list[LayerInfo]:
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


@dataclass(frozen=True)
class LayerQuery:
    """A validated ``/layers/{name}`` request."""

    layer: Layer
    bbox: BBox | None
    limit: int


async def layer_query(
    name: Annotated[str, Path(description=f"One of: {', '.join(CATALOGUE)}.")],
    settings: ApiSettingsDep,
    bbox: Annotated[
        str | None,
        Query(
            description="minlon,minlat,maxlon,maxlat in WGS84 degrees; omitted: whole layer.",
            examples=["116.30,39.98,116.31,39.99"],
        ),
    ] = None,
    limit: Annotated[int | None, Query(description="Maximum number of features.")] = None,
) -> LayerQuery:
    """Validate the request; declared before the connection so bad input never checks one out."""
    return LayerQuery(
        layer=get_layer(name),
        bbox=parse_bbox(bbox) if bbox is not None else None,
        limit=check_limit(
            limit, default=settings.layer_limit_default, maximum=settings.layer_limit_max
        ),
    )


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
    query: Annotated[LayerQuery, Depends(layer_query)],
    connection: ReadConnectionDep,
    principal: PrincipalDep,
) -> Response:
    """Return the features of layer ``name`` intersecting ``bbox`` (GeoJSON, EPSG:4326).

    Other layers are public (no token needed). Household layers (``stairwells``, ``cases``)
    need a token (401 without) and answer staff and admins, and workers for their own
    current grids only (filtered in the query); planners and reporters get 403 (they read
    aggregates). Each read of a household layer is recorded in the audit log.
    """
    source = query.layer.source
    scope = None
    if query.layer.name in HOUSEHOLD_LAYERS:
        if not principal.roles:
            # The route is public for the other layers: no token reaches here as a public caller.
            name = query.layer.name
            msg = f"layer {name} holds personal data: send Authorization: Bearer <token>"
            raise AuthenticationError(msg)
        require_roles(principal, HOUSEHOLD_ROLES)
        scope = grid_scope_sql(principal, geometry=f"{source.table}.{source.geometry}")
        detail = {"layer": query.layer.name, "bbox": query.bbox, "limit": query.limit}
        audit(connection, principal, "read", source.table, detail)
    body = features_geojson(connection, source, bbox=query.bbox, limit=query.limit, scope=scope)
    return Response(content=body, media_type=GEOJSON)
