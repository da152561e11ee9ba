"""The map pages: ``/`` (every layer), ``/maps/grids/{code}``, ``/maps/planner``, ``/maps/cases``.

Pages are public shells: they carry only public layers and aggregates; layers with personal
data are fetched by the page with the caller's token (``#token=…`` in the address). ``?lang=en``
gives English labels (Chinese by default). An unknown grid, facility type or layer answers a
404 HTML page saying so.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import ApiSettingsDep, ReadConnectionDep
from api.routers.circles import AreaCacheDep
from gis.errors import NotFoundError
from gis.features import extent
from layers import CATALOGUE
from layers.maps import PageOptions, cases_map, grid_map, planner_map
from layers.webmap import MapSettings, layer_map, page_html

router = APIRouter(tags=["maps"])

LangQuery = Annotated[Literal["zh", "en"], Query(description="zh (default) or en.")]


def _options(settings: ApiSettingsDep, lang: Literal["zh", "en"]) -> PageOptions:
    return PageOptions(lang=lang, limit=settings.layer_limit_default, tiles=MapSettings())


def not_found_page(message: str) -> HTMLResponse:
    """Return a 404 HTML page stating ``message``."""
    body = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>404 未找到 / Not found</title>'
        f"</head><body><h1>404 未找到 / Not found</h1><p>{html.escape(message, quote=False)}</p>"
        '<p><a href="/">地图 / map</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=404)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def map_page(
    connection: ReadConnectionDep, settings: ApiSettingsDep, lang: LangQuery = "zh"
) -> HTMLResponse:
    """Return the map page of every catalogue layer, opened on the extent of the data."""
    layers = list(CATALOGUE.values())
    bounds = extent(connection, tuple(layer.source for layer in layers))
    fmap = layer_map(
        layers,
        bounds=bounds,
        limit=settings.layer_limit_default,
        lang=lang,
        tiles=MapSettings(),
    )
    return HTMLResponse(page_html(fmap))


@router.get("/maps/grids/{code}", response_class=HTMLResponse, include_in_schema=False)
def grid_page(
    code: str, connection: ReadConnectionDep, settings: ApiSettingsDep, lang: LangQuery = "zh"
) -> HTMLResponse:
    """Return a grid worker's map of one current grid (404 page for an unknown code)."""
    try:
        fmap = grid_map(connection, code, options=_options(settings, lang))
    except NotFoundError as exc:
        return not_found_page(str(exc))
    return HTMLResponse(page_html(fmap))


@router.get("/maps/planner", response_class=HTMLResponse, include_in_schema=False)
def planner_page(
    connection: ReadConnectionDep,
    settings: ApiSettingsDep,
    cache: AreaCacheDep,
    type: Annotated[str | None, Query(description="A facility type.")] = None,
    sites: Annotated[int | None, Query(description="New sites to propose (with type).")] = None,
    level: Annotated[
        int | None, Query(description="Level in minutes (default: the type's level).")
    ] = None,
    group: Annotated[
        str, Query(description="standard (GB 50180 radius) or a walking group.")
    ] = "standard",
    lang: LangQuery = "zh",
) -> HTMLResponse:
    """Coverage gaps by grid and building, isochrones, proposed sites (404 for unknown type)."""
    try:
        fmap = planner_map(
            connection,
            type or None,
            options=_options(settings, lang),
            sites=sites,
            level=level,
            group=group,
            cache=cache,
        )
    except NotFoundError as exc:
        return not_found_page(str(exc))
    return HTMLResponse(page_html(fmap))


@router.get("/maps/cases", response_class=HTMLResponse, include_in_schema=False)
def cases_page(
    connection: ReadConnectionDep,
    settings: ApiSettingsDep,
    status: Annotated[str | None, Query(description="A case state.")] = None,
    since: Annotated[
        datetime | None, Query(description="Reported at or after (with zone).")
    ] = None,
    view: Annotated[Literal["cluster", "heat"], Query(description="cluster or heat.")] = "cluster",
    lang: LangQuery = "zh",
) -> HTMLResponse:
    """Cases clustered or as a heatmap, with the number of cases per grid (422 on bad filters)."""
    fmap = cases_map(
        connection,
        status=status or None,
        since=since,
        heat=view == "heat",
        options=_options(settings, lang),
    )
    return HTMLResponse(page_html(fmap))
