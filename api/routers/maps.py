"""``GET /``: the map page, drawing every catalogue layer from the data in the database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import ApiSettingsDep, ReadConnectionDep
from gis.features import extent
from layers import CATALOGUE
from layers.webmap import layer_map

router = APIRouter(tags=["maps"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(connection: ReadConnectionDep, settings: ApiSettingsDep) -> HTMLResponse:
    """Return the map page, opened on the extent of the data."""
    layers = list(CATALOGUE.values())
    bounds = extent(connection, tuple(layer.source for layer in layers))
    fmap = layer_map(layers, bounds=bounds, limit=settings.layer_limit_default)
    return HTMLResponse(fmap.get_root().render())
