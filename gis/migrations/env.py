"""Alembic environment: runs migrations against the URL set by ``gis.db.alembic_config``."""

from alembic import context
from sqlalchemy import create_engine, pool

from gis.models import Base

target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # PostGIS owns spatial_ref_sys and the tiger/topology schemas.
    return not (type_ == "table" and name == "spatial_ref_sys")


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
