"""The service circle in PostGIS: compute, store, update and report walking coverage.

:mod:`gis.circles` computes coverage in memory; this module feeds it from the database and
keeps the answers there. An *area* (a bounding box, a community or a subdistrict) is computed
as a whole: its stairwells are the origins; the walking network (``street_segment`` plus the
stored gates and walls), the facilities and the gates are taken from the area widened by the
largest level distance, so that walks leaving the area are counted. The area and its extent
are kept in ``circle_area`` and the coverage, one row per stairwell, facility type, basis
(``standard`` radius or a walking group) and level, in ``circle_coverage`` (written with
COPY). Adding, moving or removing a facility updates only the rows its catchment reaches
(:func:`gis.circles.update_coverage`), and the stored table equals a full recompute.

Facility types and their levels come from the facility mapping
(``gis/resources/facility_mapping.toml``): a type is *required* at its level. Coordinates are
WGS84 (EPSG:4326) in the database; every distance is in metres.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from sqlalchemy import Connection, text

from gis.circles import (
    FALLBACK,
    NETWORK,
    STANDARD,
    CircleSettings,
    coverage,
    coverage_shares,
    isochrones,
    missing_types,
    reachable,
    thresholds,
    update_coverage,
)
from gis.coords import to_wgs84, utm_epsg
from gis.errors import InputError, NotFoundError
from gis.network import NetworkSettings, WalkNetwork
from gis.osm import FacilityMapping, OsmLayers, load_facility_mapping

WGS84 = "EPSG:4326"
BY_COLUMNS = {"grid": "grid_code", "community": "community_code", "subdistrict": "subdistrict_code"}
UNASSIGNED = "unassigned"
ALL_REQUIRED = "all_required"
COVERAGE_COLUMNS = (
    "stairwell_id",
    "facility_type",
    "basis",
    "minutes",
    "area_id",
    "distance_m",
    "count",
    "nearest_m",
    "nearest_facility_id",
    "method",
    "snap_m",
    "too_far",
)


# --- gates and walls -----------------------------------------------------------------------


def store_gates_and_barriers(
    connection: Connection, layers: OsmLayers, *, source: str = "osm"
) -> dict[str, int]:
    """Upsert the gates (entrances) and walls of one source file into the database.

    Gates go to ``walk_gate`` (kind from ``barrier=*`` or ``entrance``, ``access`` tag); walls
    and fences to ``walk_barrier``. A re-import keeps a gate's ``closed`` flag. Nothing is
    committed.

    Parameters
    ----------
    connection
        Connection inside the caller's transaction.
    layers
        What :func:`gis.osm.read_osm` read (``entrances`` and ``barriers``, EPSG:4326).
    source
        Source name stored with every row.

    Returns
    -------
    dict
        ``gates`` and ``barriers``: rows written.
    """
    gates = layers.entrances
    gate_rows = pd.DataFrame(
        {
            "source_id": gates["source_id"].astype(str).to_numpy(),
            "kind": gates["kind"].astype(str).to_numpy(),
            "access": [_tag(t, "access") for t in gates["tags"]],
            "geom": shapely.to_wkt(gates.geometry.to_numpy(), rounding_precision=9),
        }
    )
    lines = layers.barriers
    is_line = lines.geometry.geom_type.to_numpy() == "LineString"
    bar_rows = pd.DataFrame(
        {
            "source_id": lines["source_id"].astype(str).to_numpy()[is_line],
            "kind": lines["kind"].astype(str).to_numpy()[is_line],
            "geom": shapely.to_wkt(lines.geometry.to_numpy()[is_line], rounding_precision=9),
        }
    )
    _copy_temp(
        connection,
        "wangge_gate_stage",
        "source_id text, kind text, access text, geom text",
        gate_rows,
    )
    connection.execute(
        text(
            "INSERT INTO walk_gate (source, source_id, kind, access, geom) "
            "SELECT :source, source_id, kind, access, ST_GeomFromText(geom, 4326) "
            "FROM pg_temp.wangge_gate_stage "
            "ON CONFLICT (source, source_id) DO UPDATE SET kind = EXCLUDED.kind, "
            "access = EXCLUDED.access, geom = EXCLUDED.geom"
        ),
        {"source": source},
    )
    _copy_temp(connection, "wangge_barrier_stage", "source_id text, kind text, geom text", bar_rows)
    connection.execute(
        text(
            "INSERT INTO walk_barrier (source, source_id, kind, geom) "
            "SELECT :source, source_id, kind, ST_GeomFromText(geom, 4326) "
            "FROM pg_temp.wangge_barrier_stage "
            "ON CONFLICT (source, source_id) DO UPDATE SET kind = EXCLUDED.kind, "
            "geom = EXCLUDED.geom"
        ),
        {"source": source},
    )
    return {"gates": len(gate_rows), "barriers": len(bar_rows)}


def set_gate_closed(connection: Connection, gate_id: int, *, closed: bool) -> None:
    """Close (or reopen) a stored gate; recompute the areas around it afterwards.

    Raises
    ------
    NotFoundError
        If no gate has id ``gate_id``.
    """
    done = connection.execute(
        text("UPDATE walk_gate SET closed = :closed WHERE id = :id"),
        {"closed": closed, "id": gate_id},
    ).rowcount
    if not done:
        msg = f"no gate {gate_id}"
        raise NotFoundError(msg)


def _tag(tags: Any, key: str) -> str | None:
    if isinstance(tags, str):
        tags = json.loads(tags)
    if isinstance(tags, dict):
        value = tags.get(key)
        return None if value is None else str(value)
    return None


# --- areas ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaInputs:
    """Everything the coverage of one area is computed from (read from the database).

    ``network`` is None where the extent holds no walkable way: the coverage then uses the
    straight-line fallback (``method = 'euclidean_fallback'``).
    """

    area_id: int
    computed_at: datetime | None
    extent: Any
    stairwells: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    network: WalkNetwork | None
    settings: CircleSettings = field(repr=False)


def area_geometry(
    connection: Connection,
    *,
    bbox: Sequence[float] | None = None,
    community: str | None = None,
    subdistrict: str | None = None,
) -> tuple[str, Any]:
    """Return a name and a WGS84 polygon for a bounding box, a community or a subdistrict.

    Parameters
    ----------
    connection
        Database connection.
    bbox
        ``(min lon, min lat, max lon, max lat)`` in WGS84 degrees.
    community, subdistrict
        A community (12 digits) or subdistrict (9 digits) code with a stored boundary.

    Returns
    -------
    (str, shapely geometry)

    Raises
    ------
    InputError
        If not exactly one of the three is given (``area``) or the bbox is malformed
        (``bbox``).
    NotFoundError
        If the community or subdistrict has no stored boundary.
    """
    given = [x is not None for x in (bbox, community, subdistrict)]
    if sum(given) != 1:
        raise InputError("area", "give exactly one of bbox, community, subdistrict")
    if bbox is not None:
        values = [float(v) for v in bbox]
        if len(values) != 4 or not all(np.isfinite(values)):
            raise InputError("bbox", "expected four numbers: min lon, min lat, max lon, max lat")
        x0, y0, x1, y1 = values
        if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
            raise InputError("bbox", "min must be below max, in WGS84 degrees")
        return f"bbox {x0},{y0},{x1},{y1}", shapely.box(x0, y0, x1, y1)
    table, code = (
        ("community", community) if community is not None else ("subdistrict", subdistrict)
    )
    sql = {
        "community": "SELECT name, ST_AsBinary(geom) FROM community WHERE code = :code",
        "subdistrict": "SELECT name, ST_AsBinary(geom) FROM subdistrict WHERE code = :code",
    }[table]
    row = connection.execute(text(sql), {"code": code}).first()
    if row is None or row[1] is None:
        msg = f"no {table} {code} with a boundary"
        raise NotFoundError(msg)
    return f"{table} {code} {row[0]}", shapely.from_wkb(bytes(row[1]))


def _extent(area: Any, margin_m: float) -> Any:
    """Widen the area by ``margin_m`` metres (in its UTM zone); return a WGS84 rectangle."""
    c = area.centroid
    utm = CRS.from_epsg(utm_epsg(c.x, c.y))
    fwd = Transformer.from_crs(WGS84, utm, always_xy=True)
    back = Transformer.from_crs(utm, WGS84, always_xy=True)
    local = shapely.transform(area, lambda xy: np.column_stack(fwd.transform(*xy.T)))
    wide = shapely.box(*shapely.buffer(local, margin_m).bounds)
    return shapely.box(
        *shapely.transform(wide, lambda xy: np.column_stack(back.transform(*xy.T))).bounds
    )


def _margin(settings: CircleSettings) -> float:
    limit = max(t.distance_m for t in thresholds(settings=settings))
    return max(limit, settings.nearest_limit_m or limit) + settings.max_snap_m


def load_inputs(
    connection: Connection,
    area: Any,
    extent: Any,
    *,
    area_id: int = 0,
    computed_at: datetime | None = None,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
) -> AreaInputs:
    """Read stairwells in ``area`` and the network, facilities, gates, walls in ``extent``.

    Parameters
    ----------
    connection
        Database connection.
    area, extent
        WGS84 polygons.
    area_id, computed_at
        Carried into the result (the stored area they describe).
    settings, network_settings
        Circle and network settings.

    Returns
    -------
    AreaInputs
        Stairwells indexed by id with ``households``, ``residents``, ``elderly``,
        ``grid_code``, ``community_code``, ``subdistrict_code`` (``unassigned`` when
        missing); facilities indexed by id with ``type`` and ``name``.
    """
    settings = settings or CircleSettings()
    area_wkb = shapely.to_wkb(area)
    ext_wkb = shapely.to_wkb(extent)
    stairwells = gpd.read_postgis(
        text(
            "SELECT s.id, s.households, s.residents, s.elderly, "
            "coalesce(g.code, :none) AS grid_code, coalesce(c.code, :none) AS community_code, "
            "coalesce(d.code, :none) AS subdistrict_code, s.entrance "
            "FROM stairwell s JOIN building b ON b.id = s.building_id "
            "LEFT JOIN grid g ON g.id = b.grid_id "
            "LEFT JOIN community c ON c.id = coalesce(b.community_id, g.community_id) "
            "LEFT JOIN subdistrict d ON d.id = c.subdistrict_id "
            "WHERE ST_Intersects(s.entrance, ST_GeomFromWKB(:area, 4326)) ORDER BY s.id"
        ),
        connection,
        geom_col="entrance",
        index_col="id",
        params={"area": area_wkb, "none": UNASSIGNED},
    )
    facilities = gpd.read_postgis(
        text(
            "SELECT id, type, name, geom FROM facility "
            "WHERE ST_Intersects(geom, ST_GeomFromWKB(:ext, 4326)) ORDER BY id"
        ),
        connection,
        geom_col="geom",
        index_col="id",
        params={"ext": ext_wkb},
    )
    network = build_network(connection, extent, settings=network_settings)
    return AreaInputs(
        area_id=area_id,
        computed_at=computed_at,
        extent=extent,
        stairwells=stairwells,
        facilities=facilities,
        network=network,
        settings=settings,
    )


def build_network(
    connection: Connection, extent: Any, *, settings: NetworkSettings | None = None
) -> WalkNetwork | None:
    """Build the walking network of the streets, open gates and walls within ``extent``.

    Parameters
    ----------
    connection
        Database connection.
    extent
        WGS84 polygon; streets intersecting it are taken whole.
    settings
        Network settings.

    Returns
    -------
    WalkNetwork or None
        None when no walkable way lies in the extent (the caller falls back to straight-line
        distances and says so).
    """
    ext = {"ext": shapely.to_wkb(extent)}
    lines = gpd.read_postgis(
        text(
            "SELECT source_id || ':' || part AS osm_id, highway, tags->>'foot' AS foot, "
            "tags->>'access' AS access, geom FROM street_segment "
            "WHERE ST_Intersects(geom, ST_GeomFromWKB(:ext, 4326)) ORDER BY id"
        ),
        connection,
        geom_col="geom",
        params=ext,
    )
    if lines.empty:
        return None
    barriers = gpd.read_postgis(
        text(
            "SELECT source_id AS osm_id, kind AS barrier, geom FROM walk_barrier "
            "WHERE ST_Intersects(geom, ST_GeomFromWKB(:ext, 4326)) ORDER BY id"
        ),
        connection,
        geom_col="geom",
        params=ext,
    )
    gates = gpd.read_postgis(
        text(
            "SELECT id, kind AS barrier, access, geom FROM walk_gate "
            "WHERE NOT closed AND ST_Intersects(geom, ST_GeomFromWKB(:ext, 4326)) ORDER BY id"
        ),
        connection,
        geom_col="geom",
        index_col="id",
        params=ext,
    )
    try:
        return WalkNetwork.from_lines(
            lines,
            barriers=barriers if len(barriers) else None,
            gates=gates if len(gates) else None,
            settings=settings,
        )
    except InputError as exc:
        if exc.field == "lines":
            return None
        raise


def facility_types(mapping: FacilityMapping | None = None) -> dict[str, int]:
    """Return the facility types of the mapping with their level in minutes (0: no level)."""
    mapping = mapping or load_facility_mapping()
    return {code: level for code, (_, level) in mapping.types.items()}


def compute_area(
    connection: Connection,
    area: Any,
    *,
    name: str,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
    mapping: FacilityMapping | None = None,
) -> int:
    """Compute and store the coverage of every stairwell in ``area`` for every facility type.

    Stored rows of these stairwells (from any earlier computation) are replaced. Nothing is
    committed.

    Parameters
    ----------
    connection
        Connection inside the caller's transaction.
    area
        WGS84 polygon (see :func:`area_geometry`).
    name
        Label of the area.
    settings, network_settings
        Levels, speeds, fallback; network tolerances.
    mapping
        Facility mapping naming the types (all of them are stored, also those without any
        facility: count 0).

    Returns
    -------
    int
        The ``circle_area`` id.
    """
    settings = settings or CircleSettings()
    extent = _extent(area, _margin(settings))
    area_id, computed_at = connection.execute(
        text(
            "INSERT INTO circle_area (name, area, extent, settings) VALUES (:name, "
            "ST_Multi(ST_GeomFromWKB(:area, 4326)), ST_GeomFromWKB(:ext, 4326), "
            "CAST(:settings AS jsonb)) RETURNING id, computed_at"
        ),
        {
            "name": name,
            "area": shapely.to_wkb(area),
            "ext": shapely.to_wkb(extent),
            "settings": settings.model_dump_json(),
        },
    ).one()
    inputs = load_inputs(
        connection,
        area,
        extent,
        area_id=int(area_id),
        computed_at=computed_at,
        settings=settings,
        network_settings=network_settings,
    )
    # Disconnected pieces are reported with the area, never dropped silently.
    connection.execute(
        text("UPDATE circle_area SET network_pieces = CAST(:pieces AS jsonb) WHERE id = :id"),
        {"pieces": json.dumps(network_pieces(inputs.network)), "id": int(area_id)},
    )
    types = sorted(facility_types(mapping))
    table = coverage(
        inputs.stairwells, inputs.facilities, inputs.network, types=types, settings=settings
    )
    connection.execute(
        text("DELETE FROM circle_coverage WHERE stairwell_id = ANY(:ids)"),
        {"ids": inputs.stairwells.index.to_list()},
    )
    _write(connection, table, int(area_id), settings)
    return int(area_id)


def network_pieces(network: WalkNetwork | None) -> list[dict[str, float]]:
    """Return the connected pieces of ``network``, largest first (empty without a network).

    Each piece: ``nodes``, ``edges`` and ``length_m`` (metres).
    """
    if network is None:
        return []
    table = network.components()
    nodes = table["nodes"].to_numpy(dtype=np.int64)
    edges = table["edges"].to_numpy(dtype=np.int64)
    lengths = table["length_m"].to_numpy(dtype=float)
    return [
        {"nodes": int(n), "edges": int(e), "length_m": round(float(m), 1)}
        for n, e, m in zip(nodes, edges, lengths, strict=True)
    ]


def _long_rows(table: pd.DataFrame, area_id: int, settings: CircleSettings) -> pd.DataFrame:
    thr = thresholds(settings=settings)
    n = len(table)
    k = len(thr)
    facility = pd.array(table["facility"].to_numpy(dtype=object), dtype="Int64")
    return pd.DataFrame(
        {
            "stairwell_id": np.tile(table["origin"].to_numpy(dtype=np.int64), k),
            "facility_type": np.tile(table["type"].astype(str).to_numpy(), k),
            "basis": np.repeat([t.basis for t in thr], n),
            "minutes": np.repeat([t.minutes for t in thr], n),
            "area_id": area_id,
            "distance_m": np.repeat([t.distance_m for t in thr], n),
            "count": np.concatenate([table[t.column].to_numpy(dtype=np.int64) for t in thr])
            if n
            else np.zeros(0, dtype=np.int64),
            "nearest_m": np.tile(table["distance_m"].to_numpy(dtype=float), k),
            "nearest_facility_id": pd.array(
                np.tile(np.asarray(facility, dtype=object), k), dtype="Int64"
            ),
            "method": np.tile(table["method"].astype(str).to_numpy(), k),
            "snap_m": np.tile(table["snap_m"].to_numpy(dtype=float), k),
            "too_far": np.tile(table["too_far"].to_numpy(dtype=bool), k),
        },
        columns=list(COVERAGE_COLUMNS),
    )


def _write(
    connection: Connection, table: pd.DataFrame, area_id: int, settings: CircleSettings
) -> int:
    rows = _long_rows(table, area_id, settings)
    _copy(connection, "circle_coverage", COVERAGE_COLUMNS, rows)
    return len(rows)


def _copy(connection: Connection, table: str, columns: Sequence[str], rows: pd.DataFrame) -> None:
    """COPY ``rows`` (CSV) into ``table``; names come from module constants, never input."""
    if table not in {"circle_coverage", "wangge_gate_stage", "wangge_barrier_stage"}:
        msg = f"not a table this module writes: {table!r}"
        raise ValueError(msg)
    buffer = io.StringIO()
    rows.to_csv(buffer, header=False, index=False, na_rep="")
    raw = connection.connection.driver_connection
    if raw is None:
        msg = "the connection has no driver connection"
        raise RuntimeError(msg)
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(buffer.getvalue().encode())


def _copy_temp(connection: Connection, name: str, definition: str, rows: pd.DataFrame) -> None:
    connection.execute(text(f"DROP TABLE IF EXISTS pg_temp.{name}"))
    connection.execute(text(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP"))
    _copy(connection, name, list(rows.columns), rows)


# --- reading the stored table --------------------------------------------------------------


def stored_table(
    connection: Connection,
    *,
    area_id: int | None = None,
    settings: CircleSettings | None = None,
) -> pd.DataFrame:
    """Read stored coverage back into the wide table of :func:`gis.circles.coverage`.

    Parameters
    ----------
    connection
        Database connection.
    area_id
        One stored area; every stored row when None.
    settings
        Levels and speeds naming the count columns.

    Returns
    -------
    pandas.DataFrame
        ``origin`` (stairwell id), ``type``, ``distance_m`` (to the nearest facility),
        ``facility``, ``method``, ``snap_m``, ``too_far``, ``count_<basis>_<minutes>``;
        sorted by type, then stairwell.
    """
    thr = thresholds(settings=settings)
    long = pd.read_sql_query(
        text(
            "SELECT stairwell_id, facility_type, basis, minutes, count, nearest_m, "
            "nearest_facility_id, method, snap_m, too_far FROM circle_coverage "
            "WHERE CAST(:area AS integer) IS NULL OR area_id = :area"
        ),
        connection,
        params={"area": area_id},
    )
    long["column"] = "count_" + long["basis"] + "_" + long["minutes"].astype(str)
    wide = long.pivot_table(
        index=["facility_type", "stairwell_id"], columns="column", values="count", aggfunc="first"
    )
    first = long.drop_duplicates(["facility_type", "stairwell_id"]).set_index(
        ["facility_type", "stairwell_id"]
    )
    out = pd.DataFrame(
        {
            "origin": first.index.get_level_values("stairwell_id").to_numpy(dtype=np.int64),
            "type": first.index.get_level_values("facility_type").astype(str),
            "distance_m": first["nearest_m"].to_numpy(dtype=float),
            "facility": first["nearest_facility_id"].astype("Int64").array,
            "method": first["method"].to_numpy(dtype=object),
            "snap_m": first["snap_m"].to_numpy(dtype=float),
            "too_far": first["too_far"].to_numpy(dtype=bool),
        }
    )
    for t in thr:
        values = wide.reindex(first.index)[t.column] if t.column in wide else 0
        out[t.column] = np.asarray(values, dtype=np.int64) if len(out) else np.zeros(0, np.int64)
    return out.sort_values(["type", "origin"], ignore_index=True)


# --- incremental updates -------------------------------------------------------------------


def add_facility(
    connection: Connection,
    *,
    type: str,
    lon: float | str,
    lat: float | str,
    crs: str = "wgs84",
    name: str | None = None,
    mapping: FacilityMapping | None = None,
    settings: CircleSettings | None = None,
) -> int:
    """Add a facility and update the stored coverage around it.

    Parameters
    ----------
    connection
        Connection inside the caller's transaction.
    type
        A facility type of the mapping.
    lon, lat, crs
        Position in degrees, in ``crs`` (wgs84, gcj02 or bd09).
    name
        Its name.
    mapping, settings
        Facility mapping; circle settings of the stored areas.

    Returns
    -------
    int
        The new facility id.

    Raises
    ------
    InputError
        For an unknown type (``type``) or bad coordinates (``lon``, ``lat``, ``crs``).
    """
    _check_type(type, mapping)
    x, y = to_wgs84(lon, lat, crs)
    fid = connection.execute(
        text(
            "INSERT INTO facility (source, source_id, type, name, geom) VALUES ('manual', "
            "'manual:' || nextval(pg_get_serial_sequence('facility', 'id')), :type, :name, "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326)) RETURNING id"
        ),
        {"type": type, "name": name, "x": x, "y": y},
    ).scalar_one()
    refresh(connection, [(x, y, type)], settings=settings)
    return int(fid)


def move_facility(
    connection: Connection,
    facility_id: int,
    *,
    lon: float | str,
    lat: float | str,
    crs: str = "wgs84",
    settings: CircleSettings | None = None,
) -> None:
    """Move a facility and update the stored coverage around its old and new places.

    Raises
    ------
    NotFoundError
        If no facility has id ``facility_id``.
    InputError
        For bad coordinates (``lon``, ``lat``, ``crs``).
    """
    x, y = to_wgs84(lon, lat, crs)
    old = connection.execute(
        text(
            "WITH old AS (SELECT id, type, ST_X(geom) AS x, ST_Y(geom) AS y FROM facility "
            "WHERE id = :id FOR UPDATE) UPDATE facility f SET geom = "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326) FROM old WHERE f.id = old.id "
            "RETURNING old.x, old.y, old.type"
        ),
        {"id": facility_id, "x": x, "y": y},
    ).first()
    if old is None:
        msg = f"no facility {facility_id}"
        raise NotFoundError(msg)
    refresh(connection, [(old[0], old[1], old[2]), (x, y, old[2])], settings=settings)


def remove_facility(
    connection: Connection, facility_id: int, *, settings: CircleSettings | None = None
) -> None:
    """Remove a facility and update the stored coverage around it.

    Raises
    ------
    NotFoundError
        If no facility has id ``facility_id``.
    """
    old = connection.execute(
        text("DELETE FROM facility WHERE id = :id RETURNING ST_X(geom), ST_Y(geom), type"),
        {"id": facility_id},
    ).first()
    if old is None:
        msg = f"no facility {facility_id}"
        raise NotFoundError(msg)
    refresh(connection, [(old[0], old[1], old[2])], settings=settings)


def refresh(
    connection: Connection,
    touched: Iterable[tuple[float, float, str]],
    *,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
) -> int:
    """Update the stored coverage of every area whose extent holds a touched place.

    Parameters
    ----------
    connection
        Connection inside the caller's transaction; the facility table already changed.
    touched
        ``(lon, lat, type)`` of each place that changed (WGS84): the old place of a moved or
        removed facility and the new place of a moved or added one.
    settings, network_settings
        The settings the stored areas were computed with.

    Returns
    -------
    int
        Coverage rows rewritten.
    """
    settings = settings or CircleSettings()
    points = list(touched)
    if not points:
        return 0
    frame = gpd.GeoDataFrame(
        {"type": [p[2] for p in points]},
        geometry=gpd.points_from_xy([p[0] for p in points], [p[1] for p in points]),
        crs=WGS84,
    )
    multi = shapely.to_wkb(shapely.multipoints(frame.geometry.to_numpy()))
    areas = connection.execute(
        text(
            "SELECT id, ST_AsBinary(area), ST_AsBinary(extent), computed_at FROM circle_area a "
            "WHERE ST_Intersects(extent, ST_GeomFromWKB(:pts, 4326)) "
            "AND EXISTS (SELECT 1 FROM circle_coverage c WHERE c.area_id = a.id) ORDER BY id"
        ),
        {"pts": multi},
    ).all()
    written = 0
    for area_id, area_wkb, ext_wkb, computed_at in areas:
        inputs = load_inputs(
            connection,
            shapely.from_wkb(bytes(area_wkb)),
            shapely.from_wkb(bytes(ext_wkb)),
            area_id=int(area_id),
            computed_at=computed_at,
            settings=settings,
            network_settings=network_settings,
        )
        before = stored_table(connection, area_id=int(area_id), settings=settings)
        stairs = inputs.stairwells.loc[inputs.stairwells.index.isin(before["origin"])]
        if inputs.network is not None:
            after = update_coverage(
                before, stairs, inputs.facilities, inputs.network, touched=frame, settings=settings
            )
        else:
            kinds = sorted(set(frame["type"]))
            fresh = coverage(stairs, inputs.facilities, None, types=kinds, settings=settings)
            keep = before.loc[~before["type"].isin(kinds)]
            after = pd.concat([keep, fresh], ignore_index=True)
        written += _rewrite_changed(connection, before, after, int(area_id), settings)
    return written


def _rewrite_changed(
    connection: Connection,
    before: pd.DataFrame,
    after: pd.DataFrame,
    area_id: int,
    settings: CircleSettings,
) -> int:
    key = ["type", "origin"]
    cols = [c for c in after.columns if c not in key]
    a = after.assign(type=after["type"].astype(str)).set_index(key).sort_index()
    b = before.set_index(key).reindex(a.index)
    same = np.ones(len(a), dtype=bool)
    for c in cols:
        same &= _same_values(a[c], b[c])
    changed = a.loc[~same].reset_index()
    if changed.empty:
        return 0
    connection.execute(
        text(
            "DELETE FROM circle_coverage c USING unnest(CAST(:ids AS integer[]), "
            "CAST(:types AS text[])) AS k(id, type) "
            "WHERE c.stairwell_id = k.id AND c.facility_type = k.type"
        ),
        {"ids": changed["origin"].astype(int).tolist(), "types": changed["type"].tolist()},
    )
    return _write(connection, changed, area_id, settings)


def _same_values(x: pd.Series, y: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Element-wise equality, missing equal to missing; floats to within a micrometre."""
    x_na = x.isna().to_numpy()
    y_na = y.isna().to_numpy()
    both = ~x_na & ~y_na
    out = x_na & y_na
    if pd.api.types.is_float_dtype(x) or pd.api.types.is_float_dtype(y):
        xv = x.to_numpy(dtype=float, na_value=np.nan)
        yv = y.to_numpy(dtype=float, na_value=np.nan)
        out[both] = np.abs(xv[both] - yv[both]) <= 1e-6
    else:
        xo = x.astype(object).to_numpy()
        yo = y.astype(object).to_numpy()
        out[both] = xo[both] == yo[both]
    return out


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportQuery:
    """A validated report request (see :func:`check_query`)."""

    basis: str
    levels: tuple[int, ...]
    types: tuple[str, ...] | None
    by: str


def _check_type(kind: str, mapping: FacilityMapping | None) -> None:
    known = facility_types(mapping)
    if kind not in known:
        msg = f"unknown facility type {kind!r}; known: {', '.join(sorted(known))}"
        raise InputError("type", msg)


def check_query(
    *,
    level: int | None = None,
    type: str | None = None,
    group: str = STANDARD,
    by: str = "grid",
    settings: CircleSettings | None = None,
    mapping: FacilityMapping | None = None,
) -> ReportQuery:
    """Validate report parameters.

    Raises
    ------
    InputError
        Naming ``level`` (not a configured level), ``type`` (not a facility type), ``group``
        (neither ``standard`` nor a configured walking group) or ``by``.
    """
    settings = settings or CircleSettings()
    levels = sorted(settings.standard_radius_m)
    if level is not None and level not in levels:
        msg = f"level {level} is not configured; levels: {', '.join(map(str, levels))}"
        raise InputError("level", msg)
    if type is not None:
        _check_type(type, mapping)
    groups = [STANDARD, *settings.speeds_kmh]
    if group not in groups:
        raise InputError("group", f"unknown group {group!r}; groups: {', '.join(groups)}")
    if by not in BY_COLUMNS:
        raise InputError("by", f"unknown grouping {by!r}; one of {', '.join(BY_COLUMNS)}")
    return ReportQuery(
        basis=group,
        levels=(level,) if level is not None else tuple(levels),
        types=(type,) if type is not None else None,
        by=by,
    )


def _population(connection: Connection, ids: Sequence[int]) -> pd.DataFrame:
    frame = pd.read_sql_query(
        text(
            "SELECT s.id, s.households, s.residents, s.elderly, "
            "coalesce(g.code, :none) AS grid_code, coalesce(c.code, :none) AS community_code, "
            "coalesce(d.code, :none) AS subdistrict_code "
            "FROM stairwell s JOIN building b ON b.id = s.building_id "
            "LEFT JOIN grid g ON g.id = b.grid_id "
            "LEFT JOIN community c ON c.id = coalesce(b.community_id, g.community_id) "
            "LEFT JOIN subdistrict d ON d.id = c.subdistrict_id WHERE s.id = ANY(:ids)"
        ),
        connection,
        params={"ids": list(ids), "none": UNASSIGNED},
        index_col="id",
    )
    return frame


def coverage_report(
    connection: Connection,
    *,
    level: int | None = None,
    type: str | None = None,
    group: str = STANDARD,
    by: str = "grid",
    area_id: int | None = None,
    settings: CircleSettings | None = None,
    mapping: FacilityMapping | None = None,
) -> pd.DataFrame:
    """Share of households, residents and elderly within each level of each required type.

    Without ``type``, each level reports the types required at it (the mapping's
    ``level_minutes``) and a row ``all_required``: the share that has every one of them.
    With ``type``, that type at each level asked for.

    Parameters
    ----------
    connection
        Database connection.
    level
        Minutes (a configured level); every level when None.
    type
        One facility type.
    group
        ``standard`` (the GB 50180 radius) or a walking group (minutes x its speed).
    by
        ``grid``, ``community`` or ``subdistrict``: stairwells without one count as
        ``unassigned``, so the totals add up to the stairwell table.
    area_id
        Restrict to one stored area.
    settings, mapping
        Levels and speeds; facility mapping.

    Returns
    -------
    pandas.DataFrame
        One row per unit, type and level: ``<by>``, ``type``, ``group``, ``minutes``,
        ``distance_m``, ``method``, ``households``, ``residents``, ``elderly``, the covered
        counts ``<population>_covered`` and ``share_<population>``.

    Raises
    ------
    InputError
        As :func:`check_query`.
    """
    settings = settings or CircleSettings()
    query = check_query(
        level=level, type=type, group=group, by=by, settings=settings, mapping=mapping
    )
    table = stored_table(connection, area_id=area_id, settings=settings)
    pop = _population(connection, table["origin"].unique().tolist())
    required = facility_types(mapping)
    column = BY_COLUMNS[query.by]
    pieces = []
    for minutes in query.levels:
        kinds = (
            list(query.types)
            if query.types is not None
            else sorted(k for k, lv in required.items() if lv == minutes)
        )
        part = table.loc[table["type"].isin(kinds)]
        if part.empty:
            continue
        shares = coverage_shares(part, pop, by=column, settings=settings)
        pick = (shares["basis"] == query.basis) & (shares["minutes"] == minutes)
        if query.types is not None:
            pick &= shares["type"] != "*"
        pieces.append(shares.loc[pick])
    if not pieces:
        return _empty_report(column)
    out = pd.concat(pieces, ignore_index=True)
    out["type"] = out["type"].replace({"*": ALL_REQUIRED})
    out = out.rename(columns={"basis": "group", column: by})
    return out.sort_values([by, "minutes", "type"], ignore_index=True)


def _empty_report(column: str) -> pd.DataFrame:
    pops = ["households", "residents", "elderly"]
    names = ["type", "group", "minutes", "distance_m", "method", *pops]
    names += [f"{p}_covered" for p in pops] + [f"share_{p}" for p in pops]
    return pd.DataFrame(columns=[column.removesuffix("_code"), *names])


def missing_report(
    connection: Connection,
    *,
    level: int = 15,
    group: str = STANDARD,
    limit: int = 20,
    area_id: int | None = None,
    settings: CircleSettings | None = None,
    mapping: FacilityMapping | None = None,
) -> pd.DataFrame:
    """List the stairwells missing the most types required at ``level``.

    Returns
    -------
    pandas.DataFrame
        ``stairwell_id``, ``building``, ``unit_no``, ``households``, ``missing``, ``types``,
        ``method``; most missing first, at most ``limit`` rows.

    Raises
    ------
    InputError
        As :func:`check_query`, or ``limit`` below 1.
    """
    settings = settings or CircleSettings()
    check_query(level=level, group=group, settings=settings, mapping=mapping)
    if limit < 1:
        raise InputError("limit", "must be at least 1")
    kinds = [k for k, lv in facility_types(mapping).items() if lv == level]
    table = stored_table(connection, area_id=area_id, settings=settings)
    table = table.loc[table["type"].isin(kinds)]
    if table.empty:
        return pd.DataFrame(
            columns=["stairwell_id", "building", "unit_no", "households", "missing", "types"]
        )
    ranked = missing_types(table, basis=group, minutes=level, settings=settings).head(limit)
    info = pd.read_sql_query(
        text(
            "SELECT s.id AS stairwell_id, coalesce(b.name, b.source_id) AS building, s.unit_no, "
            "s.households FROM stairwell s JOIN building b ON b.id = s.building_id "
            "WHERE s.id = ANY(:ids)"
        ),
        connection,
        params={"ids": [int(i) for i in ranked.index]},
        index_col="stairwell_id",
    )
    out = info.reindex(ranked.index).join(ranked)
    out.index.name = "stairwell_id"
    return out.reset_index()


# --- point queries and display shapes ------------------------------------------------------


class AreaCache:
    """Inputs of recently used stored areas, keyed by area id and computation time."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: dict[tuple[int, datetime | None], AreaInputs] = {}

    def get(
        self,
        connection: Connection,
        lon: float,
        lat: float,
        *,
        settings: CircleSettings | None = None,
        network_settings: NetworkSettings | None = None,
    ) -> AreaInputs:
        """Return the inputs of the newest stored area whose extent holds the point.

        Raises
        ------
        InputError
            Naming ``lon`` when no computed area holds the point.
        """
        row = connection.execute(
            text(
                "SELECT id, ST_AsBinary(area), ST_AsBinary(extent), computed_at "
                "FROM circle_area WHERE ST_Intersects(extent, ST_SetSRID(ST_MakePoint(:x, :y), "
                "4326)) ORDER BY computed_at DESC, id DESC LIMIT 1"
            ),
            {"x": lon, "y": lat},
        ).first()
        if row is None:
            msg = f"({lon}, {lat}) lies outside every area with a computed walking network"
            raise InputError("lon", msg)
        key = (int(row[0]), row[3])
        if key not in self._items:
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = load_inputs(
                connection,
                shapely.from_wkb(bytes(row[1])),
                shapely.from_wkb(bytes(row[2])),
                area_id=key[0],
                computed_at=key[1],
                settings=settings,
                network_settings=network_settings,
            )
        return self._items[key]


def _speed(settings: CircleSettings, group: str) -> float:
    if group not in settings.speeds_kmh:
        groups = ", ".join(settings.speeds_kmh)
        raise InputError("group", f"unknown group {group!r}; groups: {groups}")
    return settings.speeds_kmh[group] * 1000.0 / 60.0


def reachable_at(
    inputs: AreaInputs,
    lon: float,
    lat: float,
    *,
    group: str = "adult",
) -> dict[str, Any]:
    """List the facilities within walking reach of a WGS84 point, per level, nearest first.

    Parameters
    ----------
    inputs
        The area holding the point (:meth:`AreaCache.get`).
    lon, lat
        WGS84 degrees.
    group
        Walking group: the levels are its minutes x speed.

    Returns
    -------
    dict
        ``group``, ``method``, ``snap_m`` and ``levels``: per configured level (minutes),
        its ``distance_m`` and the ``facilities`` within it (``id``, ``type``, ``name``,
        ``distance_m``, ``minutes``), sorted by distance.

    Raises
    ------
    InputError
        Unknown ``group``; ``lon`` when the point is farther than ``max_snap_m`` from the
        network.
    """
    settings = inputs.settings
    speed = _speed(settings, group)
    point = gpd.GeoSeries([shapely.Point(lon, lat)], crs=WGS84)
    facilities = inputs.facilities
    if inputs.network is not None:
        snap = inputs.network.snap(point, max_snap_m=settings.max_snap_m).frame
        if bool(snap["too_far"].iloc[0]):
            msg = f"the point is {snap['snap_m'].iloc[0]:.0f} m from the nearest walkable way"
            raise InputError("lon", msg)
        found = reachable(point, facilities, inputs.network, settings=settings)
        method, snap_m = NETWORK, float(snap["snap_m"].iloc[0])
    else:
        local = _local_crs(lon, lat)
        p = point.to_crs(local).iloc[0]
        f = facilities.geometry.to_crs(local)
        dist = np.hypot(f.x.to_numpy() - p.x, f.y.to_numpy() - p.y) * settings.detour_factor
        found = pd.DataFrame(
            {"facility": facilities.index, "type": facilities["type"], "distance_m": dist}
        ).sort_values("distance_m", ignore_index=True)
        method, snap_m = FALLBACK, None
    names = facilities["name"]
    levels = []
    for minutes in sorted(settings.standard_radius_m):
        limit = minutes * speed
        inside = found.loc[found["distance_m"] <= limit]
        levels.append(
            {
                "minutes": minutes,
                "distance_m": round(limit, 1),
                "facilities": [
                    {
                        "id": int(fid),
                        "type": str(kind),
                        "name": None if pd.isna(names.loc[fid]) else str(names.loc[fid]),
                        "distance_m": round(float(d), 1),
                        "minutes": round(float(d) / speed, 1),
                    }
                    for fid, kind, d in zip(
                        inside["facility"], inside["type"], inside["distance_m"], strict=True
                    )
                ],
            }
        )
    return {"group": group, "method": method, "snap_m": snap_m, "levels": levels}


def _local_crs(lon: float, lat: float) -> CRS:
    return CRS.from_epsg(utm_epsg(lon, lat))


def isochrone_shapes(
    inputs: AreaInputs,
    lon: float,
    lat: float,
    *,
    minutes: Sequence[int],
    group: str = "adult",
) -> dict[str, Any]:
    """Draw the streets reached within each number of minutes, as display-only GeoJSON.

    Parameters
    ----------
    inputs
        The area holding the point.
    lon, lat
        WGS84 degrees.
    minutes
        Walking minutes, one shape each.
    group
        Walking group giving the speed.

    Returns
    -------
    dict
        A GeoJSON FeatureCollection (WGS84); each feature has ``minutes``, ``distance_m``,
        ``reached_m`` and ``display_only: true``.

    Raises
    ------
    InputError
        Unknown ``group``; ``minutes`` not positive; ``lon`` when the area has no network.
    """
    settings = inputs.settings
    speed = _speed(settings, group)
    if not minutes or any(m <= 0 for m in minutes):
        raise InputError("minutes", "give one or more positive numbers of minutes")
    if inputs.network is None:
        raise InputError("lon", "no walking network around this point to draw a shape from")
    point = gpd.GeoSeries([shapely.Point(lon, lat)], crs=WGS84)
    shapes = isochrones(
        point, inputs.network, distances_m=[m * speed for m in minutes], settings=settings
    )
    shapes.insert(0, "minutes", list(minutes))
    shapes["group"] = group
    collection: dict[str, Any] = json.loads(shapes.to_json(drop_id=True))
    collection["display_only"] = True
    collection["note"] = (
        "display only: coverage figures come from walking distances on the network, "
        "never from these shapes"
    )
    return collection


def facility_point(connection: Connection, facility_id: int) -> tuple[float, float]:
    """Return the WGS84 position of a facility.

    Raises
    ------
    NotFoundError
        If no facility has id ``facility_id``.
    """
    row = connection.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM facility WHERE id = :id"), {"id": facility_id}
    ).first()
    if row is None:
        msg = f"no facility {facility_id}"
        raise NotFoundError(msg)
    return float(row[0]), float(row[1])


def area_summary(connection: Connection, area_id: int) -> dict[str, Any]:
    """Summarise a stored area: stairwells, rows, methods, stairwells far from the network.

    Raises
    ------
    NotFoundError
        If no area has id ``area_id``.
    """
    row = connection.execute(
        text(
            "SELECT a.name, a.computed_at, a.network_pieces, count(c.*) AS rows, "
            "count(DISTINCT c.stairwell_id) AS stairwells, "
            "count(DISTINCT c.stairwell_id) FILTER (WHERE c.too_far) AS too_far, "
            "coalesce(array_agg(DISTINCT c.method) FILTER (WHERE c.method IS NOT NULL), "
            "'{}') AS methods "
            "FROM circle_area a LEFT JOIN circle_coverage c ON c.area_id = a.id "
            "WHERE a.id = :id GROUP BY a.id"
        ),
        {"id": area_id},
    ).first()
    if row is None:
        msg = f"no computed area {area_id}"
        raise NotFoundError(msg)
    return {
        "area_id": area_id,
        "name": row.name,
        "computed_at": row.computed_at.isoformat(),
        "stairwells": int(row.stairwells),
        "rows": int(row.rows),
        "stairwells_far_from_network": int(row.too_far),
        "methods": sorted(row.methods),
        "network_pieces": len(row.network_pieces),
        "network_pieces_largest_first": row.network_pieces[:10],
    }


def area_inputs(
    connection: Connection,
    area_id: int,
    *,
    settings: CircleSettings | None = None,
    network_settings: NetworkSettings | None = None,
) -> AreaInputs:
    """Load the inputs (stairwells, facilities, network) of a stored area.

    Raises
    ------
    NotFoundError
        If no area has id ``area_id``.
    """
    row = connection.execute(
        text(
            "SELECT ST_AsBinary(area), ST_AsBinary(extent), computed_at FROM circle_area "
            "WHERE id = :id"
        ),
        {"id": area_id},
    ).first()
    if row is None:
        msg = f"no computed area {area_id}"
        raise NotFoundError(msg)
    return load_inputs(
        connection,
        shapely.from_wkb(bytes(row[0])),
        shapely.from_wkb(bytes(row[1])),
        area_id=area_id,
        computed_at=row[2],
        settings=settings,
        network_settings=network_settings,
    )
