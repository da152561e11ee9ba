"""Engine and session factory, migrations, and driver-error translation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gis.cluster import EmbeddedCluster
from gis.errors import DatabaseUnavailableError
from gis.settings import DatabaseSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def embedded_cluster(settings: DatabaseSettings) -> EmbeddedCluster:
    """Return the embedded cluster described by ``settings`` (not started)."""
    return EmbeddedCluster(settings.home, settings.db_port)


def database_url(settings: DatabaseSettings, *, start: bool = True) -> str:
    """Return the URL wangge works on, starting the embedded cluster when it is the default."""
    if settings.database_url:
        return settings.database_url
    cluster = embedded_cluster(settings)
    if start:
        cluster.start()
    return cluster.url()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create an engine; the pool checks connections so a restarted server is reconnected."""
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory of ``engine``."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema of the database at ``url`` up to ``revision``."""
    with translate_errors():
        command.upgrade(alembic_config(url), revision)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors that mean 'no database' into :class:`DatabaseUnavailableError`."""
    try:
        yield
    except OperationalError as exc:
        raise DatabaseUnavailableError(str(exc.orig).strip().splitlines()[0]) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailableError("connection to PostGIS lost") from exc
        raise


def check_database(engine: Engine) -> dict[str, str]:
    """Query PostGIS and return its versions; raises :class:`DatabaseUnavailableError`."""
    with translate_errors(), engine.connect() as conn:
        row = conn.execute(
            text("SELECT current_setting('server_version'), postgis_lib_version()")
        ).one()
    return {"postgresql": str(row[0]), "postgis": str(row[1])}
