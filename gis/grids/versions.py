"""Grid versions: replace a community's cells without deleting history, query as of a date.

A cell is current from ``valid_from`` until ``valid_to`` (open when NULL). Replacing the cells of
some communities closes their current cells of that kind and opens the new ones at the same
instant, carries each worker over to the new cell of the same code, and re-links buildings, all
in the caller's transaction. Stairwells follow their building (``stairwell.building_id``), so
they move with it.

``building.grid_id`` points at the building's current *service* cell (the workload cell of its
grid worker); where no service cell covers a building, at its unit cell. A building belongs to
the cell holding its ``ST_PointOnSurface``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from gis.errors import InputError, NotFoundError
from gis.grids.validate import KINDS


@dataclass(frozen=True, slots=True)
class ReplaceResult:
    """What :func:`replace_from_staging` changed."""

    kind: str
    community_ids: list[int]
    valid_from: datetime
    closed: int
    opened: dict[int, int]  # staging row id → new grid id
    buildings_relinked: int


@dataclass(frozen=True, slots=True)
class CellCounts:
    """What lies in a cell: buildings and the stairwell sums of their households."""

    buildings: int
    stairwells: int
    households: int
    residents: int
    elderly: int


@dataclass(frozen=True, slots=True)
class GridCell:
    """One cell as the public sees it (no personal data)."""

    id: int
    code: str
    kind: str
    community_code: str | None
    community_name: str | None
    worker_name: str | None
    worker_role: str | None
    valid_from: datetime
    valid_to: datetime | None
    area_m2: float
    counts: CellCounts
    geometry: dict[str, Any]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError("kind", f"unknown grid kind {kind!r}; expected one of {KINDS}")


def replace_from_staging(
    connection: Connection,
    *,
    kind: str,
    community_ids: list[int] | None = None,
    valid_from: datetime | None = None,
    source: str = "import",
) -> ReplaceResult:
    """Replace the current cells of the staged communities by the staged cells.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Connection whose transaction holds the staging table (:func:`create_staging`).
    kind : {"service", "unit"}
        Kind of the cells replaced and opened.
    community_ids : list of int, optional
        Communities whose current cells are closed (default: those of the staged cells).
    valid_from : datetime, optional
        When the new cells start and the old ones end (default: the current clock time).
    source : str
        Recorded in ``grid.source`` (``import``, ``generated``...).

    Returns
    -------
    ReplaceResult

    Raises
    ------
    InputError
        If the kind is unknown, or ``valid_from`` is not after the start of a cell it closes.
    """
    _check_kind(kind)
    t = valid_from or connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    if community_ids is None:
        community_ids = [
            int(r)
            for r in connection.execute(
                text(
                    "SELECT DISTINCT community_id FROM grid_staging"
                    " WHERE community_id IS NOT NULL ORDER BY 1"
                )
            ).scalars()
        ]
    early = connection.execute(
        text(
            "SELECT count(*) FROM grid WHERE kind = :kind AND community_id = ANY(:ids)"
            " AND valid_to IS NULL AND valid_from >= :t"
        ),
        {"kind": kind, "ids": community_ids, "t": t},
    ).scalar_one()
    if early:
        raise InputError("valid_from", f"{early} current cell(s) start at or after {t}")
    closed = connection.execute(
        text(
            "UPDATE grid SET valid_to = :t WHERE kind = :kind AND community_id = ANY(:ids)"
            " AND valid_to IS NULL RETURNING id, code, worker_id"
        ),
        {"kind": kind, "ids": community_ids, "t": t},
    ).all()
    workers = {code: worker for _, code, worker in closed if worker is not None}
    rows = connection.execute(
        text(
            "INSERT INTO grid (code, kind, community_id, geom, valid_from, source, worker_id)"
            " SELECT s.code, :kind, s.community_id,"
            " ST_Multi(ST_CollectionExtract(s.geom, 3)), :t, :source,"
            " CAST(CAST(:workers AS jsonb) ->> s.code AS integer)"
            " FROM grid_staging s ORDER BY s.id RETURNING id"
        ),
        {"kind": kind, "t": t, "source": source, "workers": json.dumps(workers)},
    ).scalars()
    new_ids = [int(r) for r in rows]
    staged = [
        int(r)
        for r in connection.execute(text("SELECT id FROM grid_staging ORDER BY id")).scalars()
    ]
    relinked = relink_buildings(connection, community_ids=community_ids)
    return ReplaceResult(
        kind=kind,
        community_ids=community_ids,
        valid_from=t,
        closed=len(closed),
        opened=dict(zip(staged, new_ids, strict=True)),
        buildings_relinked=relinked,
    )


def relink_buildings(connection: Connection, *, community_ids: list[int]) -> int:
    """Point ``building.grid_id`` of buildings in these communities at their current cell.

    The current service cell holding the building's ``ST_PointOnSurface`` wins, otherwise the
    current unit cell; buildings in no current cell get NULL. Returns the buildings changed.
    """
    # Cells outer, buildings through their index: one prepared cell per loop. The result goes
    # to an analysed temporary table: rows written in this transaction have no statistics, and
    # with a CTE the planner joins it to `building` by a nested loop (n² comparisons).
    connection.execute(text("DROP TABLE IF EXISTS pg_temp._relink"))
    connection.execute(
        text(
            "CREATE TEMP TABLE _relink ON COMMIT DROP AS"
            " SELECT DISTINCT ON (b.id) b.id AS bid, c.id AS cid FROM grid c"
            " CROSS JOIN LATERAL (SELECT b.id FROM building b WHERE b.footprint && c.geom"
            " AND ST_Intersects(c.geom, ST_PointOnSurface(b.footprint))) b"
            " WHERE c.valid_to IS NULL AND c.community_id = ANY(:ids)"
            " ORDER BY b.id, c.kind = 'service' DESC, c.id"
        ),
        {"ids": community_ids},
    )
    connection.execute(text("ANALYZE _relink"))
    result = connection.execute(
        text(
            "UPDATE building b SET grid_id = h.cid FROM _relink h"
            " WHERE b.id = h.bid AND b.grid_id IS DISTINCT FROM h.cid"
        )
    )
    # Buildings still pointing at a closed cell of these communities lie in no current cell.
    orphans = connection.execute(
        text(
            "UPDATE building SET grid_id = NULL WHERE grid_id IN (SELECT id FROM grid"
            " WHERE valid_to IS NOT NULL AND community_id = ANY(:ids))"
        ),
        {"ids": community_ids},
    )
    result_count = int(result.rowcount) + int(orphans.rowcount)
    return result_count


_CELL_SELECT = (
    "SELECT g.id, g.code, g.kind, c.code, c.name, w.name, w.role, g.valid_from, g.valid_to,"
    " ST_Area(g.geom::geography), ST_AsGeoJSON(g.geom, 7),"
    " (SELECT count(*) FROM building b WHERE b.footprint && g.geom"
    "  AND ST_Intersects(g.geom, ST_PointOnSurface(b.footprint))),"
    " s.n, s.households, s.residents, s.elderly"
    " FROM grid g LEFT JOIN community c ON c.id = g.community_id"
    " LEFT JOIN grid_worker w ON w.id = g.worker_id"
    " LEFT JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(st.households), 0) AS households,"
    "  coalesce(sum(st.residents), 0) AS residents, coalesce(sum(st.elderly), 0) AS elderly"
    "  FROM building b JOIN stairwell st ON st.building_id = b.id"
    "  WHERE b.footprint && g.geom AND ST_Intersects(g.geom, ST_PointOnSurface(b.footprint))) s"
    " ON true"
)

_VALID_AT = "g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"


def _cell(row: Any) -> GridCell:
    return GridCell(
        id=int(row[0]),
        code=row[1],
        kind=row[2],
        community_code=row[3],
        community_name=row[4],
        worker_name=row[5],
        worker_role=row[6],
        valid_from=row[7],
        valid_to=row[8],
        area_m2=float(row[9]),
        geometry=json.loads(row[10]),
        counts=CellCounts(int(row[11]), int(row[12]), int(row[13]), int(row[14]), int(row[15])),
    )


def cell_by_code(
    connection: Connection, code: str, *, kind: str | None = None, as_of: datetime | None = None
) -> GridCell:
    """Return the cell with this code valid at ``as_of`` (default now), with its counts.

    Raises
    ------
    NotFoundError
        If no cell had that code at that moment.
    """
    rows = connection.execute(
        text(
            _CELL_SELECT
            + " WHERE g.code = :code AND (CAST(:kind AS text) IS NULL OR g.kind = :kind)"
            " AND " + _VALID_AT + " ORDER BY g.kind = 'service' DESC, g.id"
        ),
        {"code": code, "kind": kind, "as_of": as_of or _now(connection)},
    ).all()
    if not rows:
        msg = f"no grid cell {code}" + (f" of kind {kind}" if kind else "")
        msg += f" as of {as_of.isoformat()}" if as_of else ""
        raise NotFoundError(msg)
    return _cell(rows[0])


def _now(connection: Connection) -> datetime:
    value: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    return value


def cells_as_of(
    connection: Connection,
    *,
    as_of: datetime | None = None,
    kind: str | None = None,
    community_id: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """Return the cells valid at ``as_of`` (default now) as a GeoJSON FeatureCollection.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    as_of : datetime, optional
        The moment ("the grids as of 2026-03-01").
    kind : {"service", "unit"}, optional
    community_id : int, optional
    bbox : tuple of float, optional
        ``(west, south, east, north)`` in WGS84 degrees.
    limit : int
        At most this many features.

    Returns
    -------
    dict
        GeoJSON FeatureCollection (WGS84); properties: code, kind, community, valid_from,
        valid_to, area_m2. No personal data.

    Raises
    ------
    InputError
        If the kind is unknown or the bbox is malformed.
    """
    if kind is not None:
        _check_kind(kind)
    if bbox is not None and (len(bbox) != 4 or bbox[0] > bbox[2] or bbox[1] > bbox[3]):
        raise InputError("bbox", "expected west,south,east,north with west<=east, south<=north")
    west, south, east, north = bbox if bbox else (None, None, None, None)
    rows = connection.execute(
        text(
            "SELECT g.code, g.kind, c.code, g.valid_from, g.valid_to,"
            " ST_Area(g.geom::geography), ST_AsGeoJSON(g.geom, 7) FROM grid g"
            " LEFT JOIN community c ON c.id = g.community_id"
            " WHERE g.valid_from <= :as_of AND (g.valid_to IS NULL OR g.valid_to > :as_of)"
            " AND (CAST(:kind AS text) IS NULL OR g.kind = :kind)"
            " AND (CAST(:cid AS integer) IS NULL OR g.community_id = :cid)"
            " AND (CAST(:w AS float8) IS NULL OR g.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326))"
            " ORDER BY g.kind, g.code LIMIT :limit"
        ),
        {
            "as_of": as_of or _now(connection),
            "kind": kind,
            "cid": community_id,
            "w": west,
            "s": south,
            "e": east,
            "n": north,
            "limit": limit,
        },
    ).all()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r[0],
                "geometry": json.loads(r[6]),
                "properties": {
                    "code": r[0],
                    "kind": r[1],
                    "community": r[2],
                    "valid_from": r[3].isoformat(),
                    "valid_to": r[4].isoformat() if r[4] else None,
                    "area_m2": round(float(r[5]), 1),
                },
            }
            for r in rows
        ],
    }
