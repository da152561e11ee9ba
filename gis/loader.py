"""Bulk upsert of buildings, streets and facilities into PostGIS.

Each loader copies the rows into a temporary staging table with a binary ``COPY`` (geometry
as EWKB, SRID 4326), then runs one ``INSERT ... ON CONFLICT DO UPDATE`` on the source key, so
re-importing a source updates rows in place. Areas and lengths are computed in metres by
PostGIS on ``geography``. Loaders work inside the caller's transaction and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.models import SRID
from gis.osm import OsmLayers


@dataclass(frozen=True)
class LoadResult:
    """Rows of one load: newly inserted, updated with changed values, and unchanged."""

    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        """Rows the load touched or confirmed."""
        return self.inserted + self.updated + self.unchanged


# Staging columns (name, PostgreSQL type for the binary COPY) of each target table.
_BUILDING_STAGE = (
    ("source_id", "text"),
    ("name", "text"),
    ("number", "text"),
    ("use", "text"),
    ("levels", "int4"),
    ("repaired", "bool"),
    ("tags", "text"),
    ("wkb", "bytea"),
)
_STREET_STAGE = (
    ("source_id", "text"),
    ("part", "int4"),
    ("highway", "text"),
    ("name", "text"),
    ("tags", "text"),
    ("wkb", "bytea"),
)
_FACILITY_STAGE = (
    ("source_id", "text"),
    ("type", "text"),
    ("name", "text"),
    ("capacity", "int4"),
    ("tags", "text"),
    ("wkb", "bytea"),
)

_BUILDING_UPSERT = """
WITH staged AS (
    SELECT source_id, name, number, use, levels, repaired, tags::jsonb AS tags,
           ST_Multi(ST_GeomFromEWKB(wkb)) AS footprint
    FROM pg_temp.wangge_stage
), upserted AS (
    INSERT INTO building AS b
        (source, source_id, name, number, use, levels, footprint, area_m2, repaired, tags)
    SELECT :source, source_id, name, number, use, levels, footprint,
           ST_Area(footprint::geography), repaired, tags
    FROM staged
    ON CONFLICT (source, source_id) DO UPDATE SET
        name = EXCLUDED.name, number = EXCLUDED.number, use = EXCLUDED.use,
        levels = EXCLUDED.levels, footprint = EXCLUDED.footprint, area_m2 = EXCLUDED.area_m2,
        repaired = EXCLUDED.repaired, tags = EXCLUDED.tags, imported_at = now()
    WHERE (b.name, b.number, b.use, b.levels, b.repaired, b.tags)
              IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.number, EXCLUDED.use, EXCLUDED.levels, EXCLUDED.repaired,
           EXCLUDED.tags)
       OR NOT ST_OrderingEquals(b.footprint, EXCLUDED.footprint)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       (SELECT count(*) FROM staged)
FROM upserted
"""

_STREET_UPSERT = """
WITH staged AS (
    SELECT source_id, part, highway, name, tags::jsonb AS tags,
           ST_GeomFromEWKB(wkb) AS geom
    FROM pg_temp.wangge_stage
), upserted AS (
    INSERT INTO street_segment AS s (source, source_id, part, highway, name, geom, length_m, tags)
    SELECT :source, source_id, part, highway, name, geom, ST_Length(geom::geography), tags
    FROM staged
    ON CONFLICT (source, source_id, part) DO UPDATE SET
        highway = EXCLUDED.highway, name = EXCLUDED.name, geom = EXCLUDED.geom,
        length_m = EXCLUDED.length_m, tags = EXCLUDED.tags
    WHERE (s.highway, s.name, s.tags) IS DISTINCT FROM (EXCLUDED.highway, EXCLUDED.name,
                                                        EXCLUDED.tags)
       OR NOT ST_OrderingEquals(s.geom, EXCLUDED.geom)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       (SELECT count(*) FROM staged)
FROM upserted
"""

# A way that now has fewer parts than before loses the parts beyond its new last one.
_STREET_PRUNE = """
DELETE FROM street_segment s
USING (SELECT source_id, max(part) AS last FROM pg_temp.wangge_stage GROUP BY source_id) k
WHERE s.source = :source AND s.source_id = k.source_id AND s.part > k.last
"""

_FACILITY_UPSERT = """
WITH staged AS (
    SELECT source_id, type, name, capacity, tags::jsonb AS tags, ST_GeomFromEWKB(wkb) AS geom
    FROM pg_temp.wangge_stage
), upserted AS (
    INSERT INTO facility AS f (source, source_id, type, name, capacity, geom, tags)
    SELECT :source, source_id, type, name, capacity, geom, tags
    FROM staged
    ON CONFLICT (source, source_id) DO UPDATE SET
        type = EXCLUDED.type, name = EXCLUDED.name, capacity = EXCLUDED.capacity,
        geom = EXCLUDED.geom, tags = EXCLUDED.tags
    WHERE (f.type, f.name, f.capacity, f.tags) IS DISTINCT FROM
          (EXCLUDED.type, EXCLUDED.name, EXCLUDED.capacity, EXCLUDED.tags)
       OR NOT ST_OrderingEquals(f.geom, EXCLUDED.geom)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
       (SELECT count(*) FROM staged)
FROM upserted
"""


def load_buildings(connection: Connection, buildings: Any, *, source: str = "osm") -> LoadResult:
    """Upsert building footprints on ``(source, source_id)``.

    Parameters
    ----------
    connection
        An open connection; the caller owns (and commits) the transaction.
    buildings
        GeoDataFrame in EPSG:4326 with ``source_id`` and polygonal geometries, and optionally
        ``name``, ``number``, ``use``, ``levels``, ``repaired`` and ``tags`` (dict) columns.
        Geometries should be valid (see :func:`gis.osm.clean_polygons`).
    source
        The source name stored with every row (``osm`` by default).

    Returns
    -------
    LoadResult
        Counts of inserted, updated and unchanged rows. ``area_m2`` is computed in square
        metres on the WGS84 spheroid.

    Raises
    ------
    InputError
        When the frame is not in EPSG:4326, lacks ``source_id`` or has missing geometries.
    """
    frame = _checked(buildings, "buildings", key=["source_id"])
    n = len(frame)
    columns = [
        frame["source_id"].astype(str).tolist(),
        _texts(frame, "name", n),
        _texts(frame, "number", n),
        _texts(frame, "use", n),
        _ints(frame, "levels", n),
        frame["repaired"].astype(bool).tolist() if "repaired" in frame else [False] * n,
        _json(frame, n),
        _ewkb(frame),
    ]
    _stage(connection, _BUILDING_STAGE, columns)
    return _upsert(connection, _BUILDING_UPSERT, source)


def load_streets(connection: Connection, streets: Any, *, source: str = "osm") -> LoadResult:
    """Upsert walkable street lines on ``(source, source_id, part)``.

    ``streets`` is a GeoDataFrame in EPSG:4326 with ``source_id``, ``highway``, LineString
    geometries, and optionally ``part`` (default 0), ``name`` and ``tags``. ``length_m`` is
    computed in metres on the WGS84 spheroid. Parts of a way beyond its new last part are
    deleted. Raises :class:`~gis.errors.InputError` like :func:`load_buildings`.
    """
    frame = streets if "part" in streets else streets.assign(part=0)
    frame = _checked(frame, "streets", key=["source_id", "part"])
    n = len(frame)
    columns = [
        frame["source_id"].astype(str).tolist(),
        _ints(frame, "part", n),
        _texts(frame, "highway", n),
        _texts(frame, "name", n),
        _json(frame, n),
        _ewkb(frame),
    ]
    _stage(connection, _STREET_STAGE, columns)
    return _upsert(connection, _STREET_UPSERT, source, then=_STREET_PRUNE)


def load_facilities(connection: Connection, facilities: Any, *, source: str = "osm") -> LoadResult:
    """Upsert facility points on ``(source, source_id)``.

    ``facilities`` is a GeoDataFrame in EPSG:4326 with ``source_id``, ``type``, Point
    geometries, and optionally ``name``, ``capacity`` and ``tags``; without a ``capacity``
    column the ``capacity`` or ``beds`` tag is used when it is a whole number. Raises
    :class:`~gis.errors.InputError` like :func:`load_buildings`.
    """
    frame = _checked(facilities, "facilities", key=["source_id"])
    n = len(frame)
    if "capacity" in frame:
        capacity = _ints(frame, "capacity", n)
    else:
        tags = frame["tags"].tolist() if "tags" in frame else [{}] * n
        capacity = [_capacity(t) for t in tags]
    columns = [
        frame["source_id"].astype(str).tolist(),
        _texts(frame, "type", n),
        _texts(frame, "name", n),
        capacity,
        _json(frame, n),
        _ewkb(frame),
    ]
    _stage(connection, _FACILITY_STAGE, columns)
    return _upsert(connection, _FACILITY_UPSERT, source)


def record_import(
    connection: Connection,
    *,
    kind: str,
    path: str,
    counts: dict[str, Any],
    rejected: Sequence[dict[str, str]],
) -> int:
    """Insert an ``import_run`` row (counts and rejected features); return its id."""
    row = connection.execute(
        text(
            "INSERT INTO import_run (kind, path, counts, rejected) "
            "VALUES (:kind, :path, CAST(:counts AS jsonb), CAST(:rejected AS jsonb)) "
            "RETURNING id"
        ),
        {
            "kind": kind,
            "path": path,
            "counts": json.dumps(counts, ensure_ascii=False),
            "rejected": json.dumps(list(rejected), ensure_ascii=False),
        },
    ).one()
    return int(row[0])


# --- helpers -------------------------------------------------------------------------------


def _checked(frame: Any, layer: str, *, key: list[str]) -> Any:
    if "source_id" not in frame:
        raise InputError(layer, "needs a source_id column")
    if frame.crs is None or frame.crs.to_epsg() != SRID:
        raise InputError(layer, f"must be in EPSG:{SRID}, got {frame.crs}")
    missing = frame.geometry.isna() | frame.geometry.is_empty
    if missing.any():
        first = frame.loc[missing, "source_id"].iloc[0]
        raise InputError(f"{layer} {first}", "missing geometry (reject it before loading)")
    # One row per key: ON CONFLICT cannot update the same row twice in one statement.
    return frame.drop_duplicates(key, keep="last")


def _texts(frame: Any, column: str, n: int) -> list[str | None]:
    if column not in frame:
        return [None] * n
    values = frame[column].astype(object)
    return [None if v is None or v is pd.NA or v != v else str(v) for v in values]


def _ints(frame: Any, column: str, n: int) -> list[int | None]:
    if column not in frame:
        return [None] * n
    values = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return [None if v is pd.NA else int(v) for v in values]


def _json(frame: Any, n: int) -> list[str]:
    if "tags" not in frame:
        return ["{}"] * n
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return [dumps(t) if isinstance(t, dict) else "{}" for t in frame["tags"]]


def _ewkb(frame: Any) -> list[bytes]:
    geoms = shapely.set_srid(np.asarray(frame.geometry.array, dtype=object), SRID)
    return list(shapely.to_wkb(geoms, include_srid=True))


def _capacity(tags: Any) -> int | None:
    if not isinstance(tags, dict):
        return None
    for key in ("capacity", "beds"):
        value = str(tags.get(key, "")).strip()
        if value.isdigit():
            return int(value)
    return None


def _stage(
    connection: Connection, columns: Sequence[tuple[str, str]], values: list[list[Any]]
) -> None:
    # Column names and types come from the module constants above, never from input.
    definition = ", ".join(f"{name} {kind}" for name, kind in columns)
    names = ", ".join(name for name, _ in columns)
    connection.execute(text("DROP TABLE IF EXISTS pg_temp.wangge_stage"))
    connection.execute(text(f"CREATE TEMP TABLE wangge_stage ({definition}) ON COMMIT DROP"))
    raw = connection.connection.driver_connection
    if raw is None:
        msg = "the connection has no driver connection"
        raise RuntimeError(msg)
    statement = f"COPY pg_temp.wangge_stage ({names}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([kind for _, kind in columns])
        for row in _rows(values):
            copy.write_row(row)


def _rows(values: list[list[Any]]) -> Iterator[tuple[Any, ...]]:
    return zip(*values, strict=True)


def _upsert(
    connection: Connection, sql: str, source: str, *, then: str | None = None
) -> LoadResult:
    inserted, updated, staged = connection.execute(text(sql), {"source": source}).one()
    if then is not None:
        connection.execute(text(then), {"source": source})
    connection.execute(text("DROP TABLE pg_temp.wangge_stage"))
    return LoadResult(
        inserted=int(inserted), updated=int(updated), unchanged=int(staged - inserted - updated)
    )


def store_layers(
    connection: Connection, layers: OsmLayers, *, source: str = "osm"
) -> dict[str, Any]:
    """Upsert the buildings, streets and facilities of one source file and record the run.

    Writes an ``import_run`` row (kind ``osm``) with the counts read, the rows inserted,
    updated and unchanged per table, and the rejected features. Nothing is committed.

    Returns
    -------
    dict
        The counts stored in the ``import_run`` row, plus its ``import_run_id``.
    """
    results = {
        "buildings": load_buildings(connection, layers.buildings, source=source),
        "streets": load_streets(connection, layers.streets, source=source),
        "facilities": load_facilities(connection, layers.facilities, source=source),
    }
    counts: dict[str, Any] = {
        "read": dict(layers.counts),
        **{
            name: {"inserted": r.inserted, "updated": r.updated, "unchanged": r.unchanged}
            for name, r in results.items()
        },
    }
    run_id = record_import(
        connection, kind="osm", path=layers.path, counts=counts, rejected=layers.rejected
    )
    return {**counts, "import_run_id": run_id}
