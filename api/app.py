"""The FastAPI application: ``create_app(settings)`` with a lifespan that owns the engine.

``wangge serve`` runs ``uvicorn api.app:create_app --factory`` with ``WANGGE_DATABASE_URL`` set;
nothing is created at import time.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from api import access
from api.deps import get_principal
from api.errors import add_exception_handlers
from api.routers import (
    cases,
    circles,
    grids,
    health,
    layers,
    locate,
    maps,
    open311,
    siting,
    stats,
    workflow,
)
from gis.cases.open311 import Open311Settings
from gis.db import database_url, make_engine
from gis.settings import ApiSettings, DatabaseSettings

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class AppSettings:
    """Everything the app is configured with (read from ``WANGGE_*`` when not given)."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    open311: Open311Settings = field(default_factory=Open311Settings)


def create_app(settings: AppSettings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the API.

    Parameters
    ----------
    settings
        Database and API settings; None reads them from the environment.
    engine
        An engine to use instead of creating one from ``settings`` (left open at shutdown).

    Returns
    -------
    FastAPI
        The app; its lifespan creates the engine (without connecting) and disposes of it.
    """
    config = settings or AppSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or make_engine(
            database_url(config.database, start=False), pool_size=config.database.pool_size
        )
        # Everything built so far lives as long as the app: kept out of the collector's full
        # passes, which otherwise walk it all and stall requests for tens of milliseconds.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if owned:
                app.state.engine.dispose()

    app = FastAPI(
        title="wangge",
        summary="Grid management for city subdistricts: map layers from PostGIS.",
        lifespan=lifespan,
        # One dependency on every route: who is asking, and may they (api/access.py).
        dependencies=[Depends(get_principal)],
    )
    app.state.settings = config
    add_exception_handlers(app)
    access.install(app, max_body_bytes=config.api.max_body_bytes, exempt=("/cases/batch",))
    # GET /locate first: routes are matched in order, and it is the busiest one.
    for module in (
        locate,
        health,
        layers,
        maps,
        cases,
        workflow,
        stats,
        open311,
        circles,
        grids,
        siting,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
