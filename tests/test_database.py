import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from gis.cluster import EmbeddedCluster
from gis.db import check_database
from gis.errors import ClusterError
from gis.models import Base


def test_postgis_answers_with_versions(engine: Engine) -> None:
    versions = check_database(engine)
    assert versions["postgis"].startswith("3.")


def test_migrations_match_the_models(connection: Connection) -> None:
    context = MigrationContext.configure(
        connection, opts={"include_object": lambda o, n, t, r, c: n != "spatial_ref_sys"}
    )
    assert compare_metadata(context, Base.metadata) == []


def test_each_test_runs_in_a_rolled_back_transaction_part_one(connection: Connection) -> None:
    connection.execute(text("INSERT INTO grid_worker (name) VALUES ('rollback probe')"))
    count = connection.execute(text("SELECT count(*) FROM grid_worker")).scalar_one()
    assert count >= 1


def test_each_test_runs_in_a_rolled_back_transaction_part_two(connection: Connection) -> None:
    count = connection.execute(
        text("SELECT count(*) FROM grid_worker WHERE name = 'rollback probe'")
    ).scalar_one()
    assert count == 0


def test_stairwell_counts_must_be_consistent(connection: Connection) -> None:
    from sqlalchemy.exc import IntegrityError

    connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2) VALUES ('t', '1', "
            "ST_Multi(ST_GeomFromText('POLYGON((0 0,0 0.001,0.001 0.001,0.001 0,0 0))', 4326)), 1)"
        )
    )
    with pytest.raises(IntegrityError, match="stairwell_counts_consistent"):
        connection.execute(
            text(
                "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
                " elderly, estimated, source) SELECT id, 1, ST_Point(0, 0, 4326), 10, 5, 6, true,"
                " 't' FROM building WHERE source = 't'"
            )
        )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A temporary directory the service user can traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="wangge-cluster-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_cluster_starts_stops_and_keeps_its_port(open_dir: Path) -> None:
    cluster = EmbeddedCluster(open_dir / "home")
    cluster.start()
    try:
        port = cluster.resolved_port()
        assert cluster.running()
        cluster.stop()
        assert not cluster.running()
        cluster.start()
        assert cluster.resolved_port() == port
        assert f":{port}/wangge" in cluster.url()
    finally:
        cluster.destroy()
    assert not (open_dir / "home").exists()


def test_embedded_cluster_explains_an_untraversable_home(open_dir: Path) -> None:
    locked = open_dir / "locked"
    locked.mkdir(mode=0o700)
    cluster = EmbeddedCluster(locked / "home")
    if cluster.run_as is None:
        pytest.fail("this test needs root, as the suite runs in CI")
    with pytest.raises(ClusterError, match="not traversable"):
        cluster.init()
