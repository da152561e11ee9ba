"""Import official grid layers (GeoJSON, GeoPackage, Shapefile) drawn by the office.

The file is read with pyogrio in the CRS it declares and transformed to WGS84. Each feature is
checked (readable closed polygon, valid, 15-digit code of a known community, coordinates that
make sense after the transform); any bad feature refuses the whole file with one problem per
feature. The good layer goes to the staging table and through :func:`validate_grids`; a defective
layer is refused with the report unless ``accept_defects``, in which case each defect is stored in
``grid_defect``. Everything happens in one savepoint: nothing partial is ever written.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import shapely
from pyproj import CRS
from sqlalchemy import Connection, text

from gis.errors import InputError, WanggeError
from gis.grids.codes import CODE_PATTERN
from gis.grids.validate import (
    KINDS,
    STAGING_TABLE,
    ValidationReport,
    create_staging,
    validate_grids,
)
from gis.grids.versions import replace_from_staging


@dataclass(frozen=True, slots=True)
class FeatureProblem:
    """What is wrong with one feature of an imported file (``feature`` counts from 0)."""

    feature: int
    field: str
    problem: str
    code: str | None = None


class GridFileError(InputError):
    """The file has bad features; ``problems`` names each one. Nothing was written."""

    def __init__(self, path: str, problems: list[FeatureProblem]) -> None:
        lines = "; ".join(f"feature {p.feature} {p.field}: {p.problem}" for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(path, f"{len(problems)} bad feature(s): {lines}{more}")
        self.problems = problems


class DefectiveLayerError(WanggeError):
    """The layer has grid defects and ``accept_defects`` was not given. Nothing was written."""

    def __init__(self, report: ValidationReport) -> None:
        counts = ", ".join(f"{k} {n}" for k, n in report.counts().items() if n)
        super().__init__(f"grid layer refused, {len(report.defects)} defect(s): {counts}")
        self.report = report


@dataclass(frozen=True, slots=True)
class StagedCell:
    """A readable, valid feature of an imported file, in WGS84."""

    feature: int
    code: str
    community_id: int
    geometry: Any  # shapely Polygon or MultiPolygon


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What :func:`import_grids` stored."""

    run_id: int
    kind: str
    cells: int
    communities: list[int]
    closed: int
    valid_from: datetime
    defects_accepted: int
    report: ValidationReport = field(repr=False)


def _code_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value).strip()


def read_grid_file(
    connection: Connection,
    path: str | Path,
    *,
    layer: str | int | None = None,
    code_field: str = "code",
) -> list[StagedCell]:
    """Read and check the features of a grid file.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Used to look up community codes.
    path : str or Path
        GeoJSON, GeoPackage or Shapefile (anything GDAL reads).
    layer : str or int, optional
        Layer of a multi-layer source such as a GeoPackage.
    code_field : str
        Attribute holding the 15-digit grid code.

    Returns
    -------
    list of StagedCell
        Every feature, transformed to WGS84 (EPSG:4326).

    Raises
    ------
    InputError
        If the file declares no CRS or lacks ``code_field``.
    GridFileError
        If any feature is unreadable, unclosed, not a polygon, invalid (self-intersecting), has a
        code that is not 15 digits, names an unknown community, or lands outside longitude/latitude
        range after the transform (a wrong declared CRS).
    """
    path = str(path)
    with warnings.catch_warnings():
        # GDAL warns about unclosed rings; they are reported per feature below.
        warnings.filterwarnings("ignore", "Non closed ring", RuntimeWarning)
        meta, _, wkb, fields = pyogrio.raw.read(path, layer=layer)
    if not meta.get("crs"):
        raise InputError("crs", f"{path} declares no CRS; wangge does not guess it")
    names = list(meta["fields"])
    if code_field not in names:
        raise InputError(code_field, f"no such field in {path}; fields are {names}")
    codes = [_code_text(v) for v in fields[names.index(code_field)]]
    crs = CRS.from_user_input(meta["crs"])
    problems: list[FeatureProblem] = []
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    fixed = shapely.from_wkb(wkb, on_invalid="fix")
    if not crs.equals(CRS.from_epsg(4326)):
        from gis.crs import project_geometries

        geoms = project_geometries(geoms, source=crs, target=4326)
    communities: dict[str, int] = dict(
        connection.execute(
            text("SELECT code, id FROM community WHERE code = ANY(:codes)"),
            {"codes": sorted({c[:12] for c in codes if c})},
        ).all()
    )
    cells = []
    for i, (geom, code) in enumerate(zip(geoms, codes, strict=True)):
        before = len(problems)
        if wkb[i] is None:
            problems.append(FeatureProblem(i, "geometry", "missing", code))
        elif geom is None:
            reason = "ring not closed" if fixed[i] is not None else "unreadable geometry"
            problems.append(FeatureProblem(i, "geometry", reason, code))
        elif shapely.get_type_id(geom) not in (3, 6):
            problems.append(FeatureProblem(i, "geometry", f"{geom.geom_type}, not a polygon", code))
        elif not shapely.is_valid(geom):
            problems.append(FeatureProblem(i, "geometry", shapely.is_valid_reason(geom), code))
        else:
            x0, y0, x1, y1 = shapely.bounds(geom)
            if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
                msg = f"coordinates out of longitude/latitude range from {crs.name}: wrong CRS?"
                problems.append(FeatureProblem(i, "geometry", msg, code))
        if not code or not CODE_PATTERN.fullmatch(code) or code.endswith("000"):
            problems.append(
                FeatureProblem(i, code_field, f"{code!r} is not a 15-digit grid code", code)
            )
        elif code[:12] not in communities:
            problems.append(
                FeatureProblem(i, code_field, f"community {code[:12]} does not exist", code)
            )
        if len(problems) == before:
            cells.append(StagedCell(i, str(code), int(communities[str(code)[:12]]), geom))
    if problems:
        raise GridFileError(path, problems)
    return cells


def stage_cells(connection: Connection, cells: list[StagedCell], *, kind: str) -> None:
    """Write cells into a fresh staging table (see :func:`create_staging`)."""
    create_staging(connection)
    if cells:
        connection.execute(
            text(
                "INSERT INTO grid_staging (feature, code, kind, community_id, geom)"
                " VALUES (:f, :code, :kind, :cid, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326))"
            ),
            [
                {
                    "f": c.feature,
                    "code": c.code,
                    "kind": kind,
                    "cid": c.community_id,
                    "wkb": shapely.to_wkb(c.geometry),
                }
                for c in cells
            ],
        )
    connection.execute(text(f"CREATE INDEX ON {STAGING_TABLE} USING gist (geom)"))


def import_grids(
    connection: Connection,
    path: str | Path,
    *,
    kind: str,
    layer: str | int | None = None,
    code_field: str = "code",
    accept_defects: bool = False,
    valid_from: datetime | None = None,
    tolerance_m2: float = 1.0,
) -> ImportResult:
    """Import an official grid layer, replacing the current cells of its communities.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        The import runs in a savepoint of this connection's transaction.
    path : str or Path
        The grid file (any CRS it declares; stored in WGS84).
    kind : {"service", "unit"}
    layer, code_field :
        See :func:`read_grid_file`.
    accept_defects : bool
        Store a defective layer anyway, recording each defect in ``grid_defect``.
    valid_from : datetime, optional
        Start of the new cells' validity (default: now).
    tolerance_m2 : float
        Area noise threshold of the validation, m².

    Returns
    -------
    ImportResult

    Raises
    ------
    InputError, GridFileError
        Bad file or features (see :func:`read_grid_file`).
    DefectiveLayerError
        The layer has defects and ``accept_defects`` is false; carries the report.
    """
    if kind not in KINDS:
        raise InputError("kind", f"unknown grid kind {kind!r}; expected one of {KINDS}")
    with connection.begin_nested():
        cells = read_grid_file(connection, path, layer=layer, code_field=code_field)
        if not cells:
            raise InputError(str(path), "the file holds no feature")
        stage_cells(connection, cells, kind=kind)
        report = validate_grids(
            connection, kind=kind, layer=STAGING_TABLE, tolerance_m2=tolerance_m2
        )
        if report.defects and not accept_defects:
            raise DefectiveLayerError(report)
        replaced = replace_from_staging(
            connection, kind=kind, valid_from=valid_from, source="import"
        )
        run_id = int(
            connection.execute(
                text(
                    "INSERT INTO import_run (kind, path, counts) VALUES ('grids', :path,"
                    " CAST(:counts AS jsonb)) RETURNING id"
                ),
                {
                    "path": str(path),
                    "counts": json.dumps(
                        {
                            "kind": kind,
                            "cells": len(cells),
                            "closed": replaced.closed,
                            "defects": report.counts(),
                        }
                    ),
                },
            ).scalar_one()
        )
        store_defects(connection, report, opened=replaced.opened, import_run_id=run_id)
    return ImportResult(
        run_id=run_id,
        kind=kind,
        cells=len(cells),
        communities=replaced.community_ids,
        closed=replaced.closed,
        valid_from=replaced.valid_from,
        defects_accepted=len(report.defects),
        report=report,
    )


def store_defects(
    connection: Connection,
    report: ValidationReport,
    *,
    opened: dict[int, int],
    import_run_id: int | None = None,
) -> None:
    """Record the defects of a staged layer against the grid cells it became."""
    if not report.defects:
        return
    connection.execute(
        text(
            "INSERT INTO grid_defect (kind, grid_id, community_id, import_run_id, codes, area_m2,"
            " detail, geom) VALUES (:kind, :gid, (SELECT id FROM community WHERE code = :ccode),"
            " :run, CAST(:codes AS jsonb), :area, :detail,"
            " ST_SetSRID(ST_GeomFromGeoJSON(CAST(:geom AS text)), 4326))"
        ),
        [
            {
                "kind": d.kind,
                "gid": opened.get(d.cell_ids[0]) if d.cell_ids else None,
                "ccode": d.community_code,
                "run": import_run_id,
                "codes": json.dumps(list(d.codes)),
                "area": d.area_m2,
                "detail": d.detail,
                "geom": json.dumps(d.geometry) if d.geometry else None,
            }
            for d in report.defects
        ],
    )


def accepted_defects(
    connection: Connection, *, community_id: int | None = None, current_only: bool = True
) -> list[dict[str, Any]]:
    """List the defects accepted at import, as GeoJSON features (WGS84).

    With ``current_only``, only those of cells still current (or of no particular cell).
    """
    rows = connection.execute(
        text(
            "SELECT d.id, d.kind, d.codes, d.area_m2, d.detail, c.code, g.code,"
            " d.import_run_id, ST_AsGeoJSON(d.geom, 7) FROM grid_defect d"
            " LEFT JOIN grid g ON g.id = d.grid_id LEFT JOIN community c ON c.id = d.community_id"
            " WHERE (CAST(:cid AS integer) IS NULL OR d.community_id = :cid)"
            " AND (NOT :current OR g.id IS NULL OR g.valid_to IS NULL) ORDER BY d.id"
        ),
        {"cid": community_id, "current": current_only},
    ).all()
    return [
        {
            "type": "Feature",
            "id": r[0],
            "geometry": json.loads(r[8]) if r[8] else None,
            "properties": {
                "kind": r[1],
                "codes": r[2],
                "area_m2": r[3],
                "detail": r[4],
                "community": r[5],
                "grid_code": r[6],
                "import_run_id": r[7],
            },
        }
        for r in rows
    ]
