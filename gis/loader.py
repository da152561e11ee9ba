"""Bulk upsert of buildings, streets and facilities into PostGIS.

Each loader copies the rows into a temporary staging table with a ``COPY`` (geometry as WKB,
SRID 4326), then runs one ``INSERT ... ON CONFLICT DO UPDATE`` on the source key, so
re-importing a source updates rows in place and leaves unchanged rows untouched. Buildings
go in their final types (EWKB MultiPolygons, binary jsonb tags), every column built
vectorised; their staged rows equal to the stored ones are dropped by one join before the
upsert.
Building areas are square metres on the WGS84 ellipsoid (computed vectorised before the
copy), street lengths metres on ``geography``. A big load (see :data:`BULK_MIN_ROWS`) drops
the table's secondary indexes and rebuilds them after the insert, in the same transaction:
this holds an exclusive lock on the table until the caller commits. A first big import of a
source's buildings is copied straight into ``building``, its unique constraint, foreign
keys and the indexes over copied columns dropped and added back too. Loaders never commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from psycopg.adapt import PyFormat
from psycopg.copy import QueuedLibpqWriter
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


#: Loads of at least this many rows that are also at least BULK_SHARE of the rows already in
#: the table rebuild its secondary indexes (GiST, foreign-key btrees) once, after inserting.
BULK_MIN_ROWS = 10_000
BULK_SHARE = 0.25
#: Rows prepared at a time for the COPY.
CHUNK_ROWS = 10_000
# WGS84 ellipsoid.
_A = 6_378_137.0
_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)


def ellipsoidal_area_m2(geoms: Any) -> np.ndarray[Any, Any]:
    """Area in square metres of lon/lat polygons on the WGS84 ellipsoid.

    The area in square degrees times the local scale of the ellipsoid at the middle latitude
    of each polygon's bounds (meridional × prime-vertical radius of curvature × cos latitude):
    vectorised, and within 1e-6 of the geodesic area (PostGIS ``geography``) for polygons up
    to a few kilometres across, the size of buildings and blocks.
    """
    geoms = np.asarray(geoms, dtype=object)
    bounds = shapely.bounds(geoms)
    lat = np.radians((bounds[:, 1] + bounds[:, 3]) / 2)
    w = 1 - _E2 * np.sin(lat) ** 2
    meridional = _A * (1 - _E2) / w**1.5
    prime_vertical = _A / np.sqrt(w)
    scale = meridional * prime_vertical * np.cos(lat) * (np.pi / 180) ** 2
    return np.asarray(shapely.area(geoms) * scale, dtype=float)


_GEOMETRY_COLUMN = {"building": "footprint", "street_segment": "geom", "facility": "geom"}

# Staging columns (name, PostgreSQL type) of each target table, all filled by binary COPY:
# buildings in their final types (EWKB MultiPolygon, jsonb), the others as WKB and text.
_BUILDING_STAGE = (
    ("source_id", "text"),
    ("name", "text"),
    ("number", "text"),
    ("use", "text"),
    ("levels", "int4"),
    ("repaired", "bool"),
    ("footprint", "geometry(MultiPolygon, 4326)"),
    ("area_m2", "float8"),
    ("tags", "jsonb"),
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

_RETURNING = """
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""


@dataclass(frozen=True)
class _Upsert:
    """An ``INSERT ... SELECT`` from the staging table and its ``ON CONFLICT`` clause."""

    insert: str
    conflict: str

    def sql(self, *, fresh: bool) -> str:
        # Rows known to be new need no conflict clause (nor the unique index it relies on).
        return self.insert + ("" if fresh else self.conflict) + _RETURNING


_BUILDING_INSERT = """
WITH upserted AS (
    INSERT INTO building AS b
        (source, source_id, name, number, use, levels, footprint, area_m2, repaired, tags)
    SELECT :source, source_id, name, number, use, levels, footprint, area_m2, repaired, tags
    FROM pg_temp.wangge_stage
"""
_BUILDING_CONFLICT = """
    ON CONFLICT (source, source_id) DO UPDATE SET
        name = EXCLUDED.name, number = EXCLUDED.number, use = EXCLUDED.use,
        levels = EXCLUDED.levels, footprint = EXCLUDED.footprint, area_m2 = EXCLUDED.area_m2,
        repaired = EXCLUDED.repaired, tags = EXCLUDED.tags, imported_at = now()
    WHERE (b.name, b.number, b.use, b.levels, b.repaired, b.tags)
              IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.number, EXCLUDED.use, EXCLUDED.levels, EXCLUDED.repaired,
           EXCLUDED.tags)
       OR NOT ST_OrderingEquals(b.footprint, EXCLUDED.footprint)
"""
_BUILDING_UPSERT = _Upsert(_BUILDING_INSERT, _BUILDING_CONFLICT)

# Staged rows equal to the stored ones (same test as the conflict clause) leave the staging
# table before the upsert: a re-import then neither locks nor rewrites unchanged rows, and
# only the rows left decide whether the load counts as a bulk one.
_BUILDING_UNCHANGED = """
DELETE FROM pg_temp.wangge_stage s USING building b
WHERE b.source = :source AND b.source_id = s.source_id
  AND (b.name, b.number, b.use, b.levels, b.repaired, b.tags)
          IS NOT DISTINCT FROM
      (s.name, s.number, s.use, s.levels, s.repaired, s.tags)
  AND ST_OrderingEquals(b.footprint, s.footprint)
"""

_STREET_INSERT = """
WITH staged AS (
    SELECT source_id, part, highway, name, tags::jsonb AS tags,
           ST_GeomFromWKB(wkb, 4326) AS geom
    FROM pg_temp.wangge_stage
), upserted AS (
    INSERT INTO street_segment AS s (source, source_id, part, highway, name, geom, length_m, tags)
    SELECT :source, source_id, part, highway, name, geom, ST_Length(geom::geography), tags
    FROM staged
"""
_STREET_CONFLICT = """
    ON CONFLICT (source, source_id, part) DO UPDATE SET
        highway = EXCLUDED.highway, name = EXCLUDED.name, geom = EXCLUDED.geom,
        length_m = EXCLUDED.length_m, tags = EXCLUDED.tags
    WHERE (s.highway, s.name, s.tags) IS DISTINCT FROM (EXCLUDED.highway, EXCLUDED.name,
                                                        EXCLUDED.tags)
       OR NOT ST_OrderingEquals(s.geom, EXCLUDED.geom)
"""
_STREET_UPSERT = _Upsert(_STREET_INSERT, _STREET_CONFLICT)

# A way that now has fewer parts than before loses the parts beyond its new last one.
_STREET_PRUNE = """
DELETE FROM street_segment s
USING (SELECT source_id, max(part) AS last FROM pg_temp.wangge_stage GROUP BY source_id) k
WHERE s.source = :source AND s.source_id = k.source_id AND s.part > k.last
"""

_FACILITY_INSERT = """
WITH staged AS (
    SELECT source_id, type, name, capacity, tags::jsonb AS tags, ST_GeomFromWKB(wkb, 4326) AS geom
    FROM pg_temp.wangge_stage
), upserted AS (
    INSERT INTO facility AS f (source, source_id, type, name, capacity, geom, tags)
    SELECT :source, source_id, type, name, capacity, geom, tags
    FROM staged
"""
_FACILITY_CONFLICT = """
    ON CONFLICT (source, source_id) DO UPDATE SET
        type = EXCLUDED.type, name = EXCLUDED.name, capacity = EXCLUDED.capacity,
        geom = EXCLUDED.geom, tags = EXCLUDED.tags
    WHERE (f.type, f.name, f.capacity, f.tags) IS DISTINCT FROM
          (EXCLUDED.type, EXCLUDED.name, EXCLUDED.capacity, EXCLUDED.tags)
       OR NOT ST_OrderingEquals(f.geom, EXCLUDED.geom)
"""
_FACILITY_UPSERT = _Upsert(_FACILITY_INSERT, _FACILITY_CONFLICT)


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
        When the frame is not in EPSG:4326, lacks ``source_id``, has missing geometries or
        geometries that are not polygons (the error names the first such row).
    """
    frame = _checked(buildings, "buildings", key=["source_id"])
    n = len(frame)
    kinds = shapely.get_type_id(np.asarray(frame.geometry.array, dtype=object))
    other = ~np.isin(kinds, [3, 6])  # Polygon, MultiPolygon
    if other.any():
        first = frame["source_id"].to_numpy()[other][0]
        raise InputError(f"buildings {first}", "footprint must be a Polygon or MultiPolygon")
    if _is_bulk(connection, "building", n) and _source_empty(connection, "building", source):
        # A first import of many rows goes straight into the table, indexes built afterwards.
        # Rows go in source_id order (code points, the order of the C and C.UTF-8 collations):
        # the unique index on (source, source_id) then builds from presorted input.
        keys = frame["source_id"].astype(str).to_numpy(dtype=object)
        frame = frame.iloc[np.argsort(keys, kind="stable")]
        values = _building_rows(frame, source=source)
        columns = [("source", "text"), *_BUILDING_STAGE]
        return _copy_fresh(connection, "building", columns, values, rows=n)
    _stage_rows(connection, _BUILDING_STAGE, _building_rows(frame, source=None))
    return _upsert(
        connection,
        _BUILDING_UPSERT,
        source,
        table="building",
        staged=n,
        unchanged=_BUILDING_UNCHANGED,
    )


def _building_rows(frame: Any, *, source: str | None) -> Iterator[tuple[Any, ...]]:
    """Rows for a binary ``COPY`` of buildings (columns of ``_BUILDING_STAGE``), by chunks.

    Every column is built vectorised per chunk: footprints as EWKB MultiPolygons, tags as
    binary jsonb. With a ``source``, each row starts with it (a copy straight into
    ``building``). PostgreSQL ingests one chunk while the next is prepared.
    """
    for start in range(0, len(frame), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS]
        n = len(part)
        geoms = np.asarray(part.geometry.array, dtype=object)
        columns = [
            part["source_id"].astype(str).tolist(),
            *(_optional_texts(part, column, n) for column in _BUILDING_TEXTS),
            _optional_ints(part, "levels", n),
            part["repaired"].astype(bool).tolist() if "repaired" in part else [False] * n,
            _multipolygon_ewkb(geoms),
            ellipsoidal_area_m2(geoms).tolist(),
            _jsonb_objects(part.get("tags"), n),
        ]
        if source is not None:
            columns.insert(0, [source] * n)
        yield from zip(*columns, strict=True)


_BUILDING_TEXTS = ("name", "number", "use")


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
        _wkb(frame),
    ]
    _stage(connection, _STREET_STAGE, columns)
    return _upsert(
        connection, _STREET_UPSERT, source, table="street_segment", staged=n, then=_STREET_PRUNE
    )


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
        _wkb(frame),
    ]
    _stage(connection, _FACILITY_STAGE, columns)
    return _upsert(connection, _FACILITY_UPSERT, source, table="facility", staged=n)


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


_DUMPS = json.JSONEncoder(ensure_ascii=False).encode
_DUMPS_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_QUOTE = json.encoder.encode_basestring  # the C string encoder when available


def _tags_json(tags: Any) -> str:
    if not isinstance(tags, dict):
        return "{}"
    try:
        # OSM tags are str -> str: joining quoted strings is twice as fast as the encoder.
        return "{" + ",".join([_QUOTE(k) + ":" + _QUOTE(v) for k, v in tags.items()]) + "}"
    except TypeError:
        return _DUMPS(tags)


def _json(frame: Any, n: int) -> list[str]:
    if "tags" not in frame:
        return ["{}"] * n
    return [_tags_json(t) for t in frame["tags"]]


def _wkb(frame: Any) -> list[bytes]:
    return list(shapely.to_wkb(np.asarray(frame.geometry.array, dtype=object)))


def _capacity(tags: Any) -> int | None:
    if not isinstance(tags, dict):
        return None
    for key in ("capacity", "beds"):
        value = str(tags.get(key, "")).strip()
        if value.isdigit():
            return int(value)
    return None


def _stage(
    connection: Connection,
    columns: Sequence[tuple[str, str]],
    rows: list[list[Any]] | Iterator[tuple[Any, ...]],
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
        _fast_bytes(cursor)
        copy.set_types([kind for _, kind in columns])
        for row in zip(*rows, strict=True) if isinstance(rows, list) else rows:
            copy.write_row(row)


def _fast_bytes(cursor: Any) -> None:
    # psycopg's DB-API layer makes a pure-Python dumper the default for bytea by oid; the
    # compiled one for ``bytes`` is several times faster on a 100,000-row COPY.
    dumper = cursor.adapters.get_dumper(bytes, PyFormat.BINARY)
    cursor.adapters.register_dumper(bytes, dumper)


def _known(table: str) -> None:
    # Table names reach SQL text only after this whitelist check.
    if table not in _GEOMETRY_COLUMN:
        msg = f"not a table the loader writes: {table!r}"
        raise ValueError(msg)


def _source_empty(connection: Connection, table: str, source: str) -> bool:
    _known(table)
    sql = f"SELECT NOT EXISTS (SELECT 1 FROM {table} WHERE source = :source)"  # noqa: S608
    return bool(connection.execute(text(sql), {"source": source}).scalar_one())


def _optional_texts(frame: Any, column: str, n: int) -> list[str | None]:
    """``str`` of each value of an optional column; None where missing (or no column)."""
    if column not in frame:
        return [None] * n
    objects = frame[column].to_numpy(dtype=object)
    missing = pd.isna(objects)
    strings: list[str | None] = list(map(str, objects))
    for i in np.flatnonzero(missing):
        strings[i] = None
    return strings


def _optional_ints(frame: Any, column: str, n: int) -> list[int | None]:
    if column not in frame:
        return [None] * n
    values = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    ints: list[int | None] = values.to_numpy(dtype=np.int64, na_value=0).tolist()
    for i in np.flatnonzero(values.isna().to_numpy()):
        ints[i] = None
    return ints


def _jsonb_objects(tags: Any, n: int) -> list[bytes]:
    """Binary jsonb values (format version 1, then the JSON text) of JSON objects.

    A value that is not a dict becomes ``{}``. One call of the C JSON encoder serialises the
    whole list, then it is cut at the ``},{`` between objects. A ``},{`` inside a value would
    add a piece: the count shows it and the objects are then serialised one by one.
    """
    if tags is None:
        return [_JSONB_EMPTY] * n
    objects = [t if isinstance(t, dict) else {} for t in tags.tolist()]
    if not objects:
        return []
    pieces = _DUMPS_COMPACT(objects)[2:-2].split("},{")
    if len(pieces) != n:
        pieces = [_DUMPS_COMPACT(t)[1:-1] for t in objects]
    return [b"\x01{" + piece.encode() + b"}" for piece in pieces]


_JSONB_EMPTY = b"\x01{}"
# EWKB header of a MultiPolygon with SRID 4326 (little endian: type 0x20000006, SRID).
_MULTI_EWKB = bytes.fromhex("0106000020") + SRID.to_bytes(4, "little")
_ONE_MEMBER = (1).to_bytes(4, "little")


def _multipolygon_ewkb(geoms: np.ndarray[Any, Any]) -> list[bytes]:
    """EWKB MultiPolygons (SRID 4326, 2D) of polygonal geometries, spliced from their WKB.

    A Polygon's WKB becomes the single member of a MultiPolygon by prefixing a header and a
    count of 1; a MultiPolygon's WKB gets the SRID flag and value. Cheaper than building new
    geometries.
    """
    wkbs = shapely.to_wkb(geoms, byte_order=1, output_dimension=2).tolist()
    polygon = (shapely.get_type_id(geoms) == 3).tolist()
    single = _MULTI_EWKB + _ONE_MEMBER
    return [
        single + wkb if is_polygon else _MULTI_EWKB + wkb[5:]
        for wkb, is_polygon in zip(wkbs, polygon, strict=True)
    ]


# Binary COPY types of the building rows: footprints and tags go as raw bytes, which the
# server reads with the column's own receive function (EWKB geometry, jsonb).
_BUILDING_BINARY = {"geometry(MultiPolygon, 4326)": "bytea", "jsonb": "bytea"}


def _stage_rows(
    connection: Connection, columns: Sequence[tuple[str, str]], rows: Iterator[tuple[Any, ...]]
) -> None:
    """Create the temporary staging table and fill it with a binary ``COPY`` of ``rows``."""
    # Column names and types come from the module constants above, never from input.
    definition = ", ".join(f"{name} {kind}" for name, kind in columns)
    connection.execute(text("DROP TABLE IF EXISTS pg_temp.wangge_stage"))
    connection.execute(text(f"CREATE TEMP TABLE wangge_stage ({definition}) ON COMMIT DROP"))
    _copy_rows(connection, "pg_temp.wangge_stage", columns, rows)


def _copy_rows(
    connection: Connection,
    target: str,
    columns: Sequence[tuple[str, str]],
    rows: Iterator[tuple[Any, ...]],
) -> int:
    """Binary ``COPY`` of ``rows`` into ``target`` (a whitelisted name); return the rows."""
    raw = connection.connection.driver_connection
    if raw is None:
        msg = "the connection has no driver connection"
        raise RuntimeError(msg)
    names = ", ".join(name for name, _ in columns)
    statement = f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)"
    with raw.cursor() as cursor:
        _fast_bytes(cursor)
        # A thread sends each block while the next rows are prepared.
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            copy.set_types([_BUILDING_BINARY.get(kind, kind) for _, kind in columns])
            for row in rows:
                copy.write_row(row)
        return int(cursor.rowcount)


def _foreign_keys(connection: Connection, table: str) -> list[tuple[str, str]]:
    """Name and definition of the foreign keys of ``table`` (to other tables)."""
    rows = connection.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f' ORDER BY conname"
        ),
        {"t": table},
    ).all()
    return [(str(name), str(definition)) for name, definition in rows]


def _copy_fresh(
    connection: Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    values: Iterator[tuple[Any, ...]],
    *,
    rows: int,
) -> LoadResult:
    """COPY rows known to be new straight into ``table``; rebuild its indexes afterwards.

    The unique constraints, foreign keys and indexes over copied columns are dropped and
    built again once, in the caller's transaction (a foreign key checked row by row queues a
    trigger event per row even for NULLs, 0.11 s per 100,000 rows; added back, it is validated
    by one query in 0.013 s). Indexes over columns the copy leaves NULL stay in place: the
    partial ones skip such rows altogether, a rebuild would cost about 0.03 s each.
    """
    _known(table)
    quote = connection.dialect.identifier_preparer.quote
    quoted_table = quote(table)
    copied = {name for name, _ in columns}
    indexes = [
        (name, definition)
        for name, definition, columns in _secondary_indexes(connection, table)
        if copied & set(columns)
    ]
    constraints = _unique_constraints(connection, table) + _foreign_keys(connection, table)
    for name, _ in constraints:
        connection.execute(text(f"ALTER TABLE {quoted_table} DROP CONSTRAINT {quote(name)}"))
    for name, _ in indexes:
        connection.execute(text(f"DROP INDEX {quote(name)}"))
    count = _copy_rows(connection, quoted_table, columns, values)
    if count != rows:
        msg = f"COPY stored {count} rows of {rows}"
        raise RuntimeError(msg)
    for _, definition in indexes:
        connection.execute(text(definition))
    for name, definition in constraints:
        connection.execute(
            text(f"ALTER TABLE {quoted_table} ADD CONSTRAINT {quote(name)} {definition}")
        )
    return LoadResult(inserted=count, updated=0, unchanged=0)


def _upsert(
    connection: Connection,
    upsert: _Upsert,
    source: str,
    *,
    table: str,
    staged: int,
    then: str | None = None,
    unchanged: str | None = None,
) -> LoadResult:
    # The cost estimates of big upserts switch JIT compilation on, which costs more than it saves.
    connection.execute(text("SET LOCAL jit = off"))
    left = staged
    if unchanged is not None:
        left -= connection.execute(text(unchanged), {"source": source}).rowcount
    bulk = _is_bulk(connection, table, left)
    # A bulk load of rows that are all new (a first import) skips the conflict clause, so the
    # unique constraints can be rebuilt once too; otherwise they arbitrate the upsert.
    fresh = bulk and not _any_existing(connection, table, source)
    indexes = [(n, d) for n, d, _ in _secondary_indexes(connection, table)] if bulk else []
    constraints = _unique_constraints(connection, table) if fresh else []
    quote = connection.dialect.identifier_preparer.quote
    quoted_table = quote(table)
    for name, _ in constraints:
        connection.execute(text(f"ALTER TABLE {quoted_table} DROP CONSTRAINT {quote(name)}"))
    for name, _ in indexes:
        connection.execute(text(f"DROP INDEX {quote(name)}"))
    inserted, updated = connection.execute(text(upsert.sql(fresh=fresh)), {"source": source}).one()
    for _, definition in indexes:
        connection.execute(text(definition))
    for name, definition in constraints:
        connection.execute(
            text(f"ALTER TABLE {quoted_table} ADD CONSTRAINT {quote(name)} {definition}")
        )
    if then is not None:
        connection.execute(text(then), {"source": source})
    connection.execute(text("DROP TABLE pg_temp.wangge_stage"))
    return LoadResult(
        inserted=int(inserted), updated=int(updated), unchanged=int(staged - inserted - updated)
    )


def _any_existing(connection: Connection, table: str, source: str) -> bool:
    _known(table)
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM pg_temp.wangge_stage s JOIN {table} t "  # noqa: S608
        "ON t.source = :source AND t.source_id = s.source_id)"
    )
    return bool(connection.execute(text(sql), {"source": source}).scalar_one())


def _unique_constraints(connection: Connection, table: str) -> list[tuple[str, str]]:
    """Name and definition of the UNIQUE constraints of ``table`` (not the primary key)."""
    rows = connection.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype = 'u' ORDER BY conname"
        ),
        {"t": table},
    ).all()
    return [(str(name), str(definition)) for name, definition in rows]


def _is_bulk(connection: Connection, table: str, staged: int) -> bool:
    """Whether a load is big enough to rebuild secondary indexes rather than update them.

    Building a GiST index over the whole table at once is several times cheaper than inserting
    into it row by row, once the batch is a sizeable share of the table.
    """
    if staged < BULK_MIN_ROWS:
        return False
    estimate = connection.execute(
        text("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = CAST(:t AS regclass)"),
        {"t": table},
    ).scalar_one()
    return staged >= BULK_SHARE * float(estimate)


def _secondary_indexes(connection: Connection, table: str) -> list[tuple[str, str, list[str]]]:
    """Name, definition and columns of the indexes of ``table`` that back no constraint."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid),"
            " array(SELECT a.attname FROM pg_attribute a"
            "       WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))"
            " FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT i.indisunique "
            "AND NOT i.indisprimary AND i.indexrelid NOT IN "
            "(SELECT conindid FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)) "
            "ORDER BY c.relname"
        ),
        {"t": table},
    ).all()
    return [(str(name), str(definition), list(columns)) for name, definition, columns in rows]


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
