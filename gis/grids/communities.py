"""Community and subdistrict boundaries: import them, or derive them along major roads.

Official boundaries come from a file with admin codes (9 digits for a subdistrict, 12 for a
community). Where none exist (the OSM demo areas), communities are derived from a study area by
cutting it along major roads (``street_segment`` primary/secondary/tertiary by default) and
merging pieces smaller than ``min_area_m2`` into the neighbour sharing the longest boundary; they
are marked ``derived`` so nobody mistakes them for official ones.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import shapely
from pyproj import CRS
from sqlalchemy import Connection, text

from gis.crs import project_geometries, utm_crs
from gis.errors import InputError
from gis.grids.codes import reading_order
from gis.grids.generate import adjust_to_buildings, blocks, group_geoms, group_labels, owner_of
from gis.grids.io import FeatureProblem, GridFileError

MAJOR_ROADS = ("trunk", "primary", "secondary", "tertiary")
LEVELS = {"subdistrict": 9, "community": 12}


@dataclass(frozen=True, slots=True)
class BoundaryImport:
    """What :func:`import_boundaries` stored."""

    level: str
    codes: list[str]
    inserted: int
    updated: int


def _read_polygons(
    path: str, *, layer: str | int | None, fields: tuple[str, ...]
) -> tuple[npt.NDArray[Any], dict[str, list[Any]], CRS]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Non closed ring", RuntimeWarning)
        meta, _, wkb, values = pyogrio.raw.read(path, layer=layer)
    if not meta.get("crs"):
        raise InputError("crs", f"{path} declares no CRS; wangge does not guess it")
    names = list(meta["fields"])
    out: dict[str, list[Any]] = {}
    for name in fields:
        if name not in names:
            raise InputError(name, f"no such field in {path}; fields are {names}")
        out[name] = list(values[names.index(name)])
    crs = CRS.from_user_input(meta["crs"])
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    if not crs.equals(CRS.from_epsg(4326)):
        geoms = project_geometries(geoms, source=crs, target=4326)
    return geoms, out, crs


def import_boundaries(
    connection: Connection,
    path: str | Path,
    *,
    level: str,
    code_field: str = "code",
    name_field: str = "name",
    layer: str | int | None = None,
) -> BoundaryImport:
    """Import subdistrict or community boundaries with their admin codes.

    Parameters
    ----------
    connection : sqlalchemy.Connection
        Writes happen in a savepoint: all features or none.
    path : str or Path
        GeoJSON, GeoPackage or Shapefile with a declared CRS (stored in WGS84).
    level : {"subdistrict", "community"}
    code_field, name_field : str
        Attributes with the 9- or 12-digit code and the name.
    layer : str or int, optional
        Layer of a multi-layer file.

    Returns
    -------
    BoundaryImport

    Raises
    ------
    InputError
        Unknown level, no CRS, missing field.
    GridFileError
        Per feature: unreadable or non-polygon geometry, code of the wrong length, a community
        whose subdistrict does not exist, a code given twice.
    """
    if level not in LEVELS:
        raise InputError("level", f"expected one of {sorted(LEVELS)}, got {level!r}")
    digits = LEVELS[level]
    path = str(path)
    geoms, values, _ = _read_polygons(path, layer=layer, fields=(code_field, name_field))
    codes = [None if v is None else str(v).strip() for v in values[code_field]]
    names = [None if v is None else str(v) for v in values[name_field]]
    subdistricts: dict[str, int] = {}
    if level == "community":
        subdistricts = dict(
            connection.execute(
                text("SELECT code, id FROM subdistrict WHERE code = ANY(:c)"),
                {"c": sorted({c[:9] for c in codes if c})},
            ).all()
        )
    problems: list[FeatureProblem] = []
    seen: set[str] = set()
    rows = []
    for i, (geom, code, name) in enumerate(zip(geoms, codes, names, strict=True)):
        before = len(problems)
        if geom is None or shapely.get_type_id(geom) not in (3, 6):
            problems.append(FeatureProblem(i, "geometry", "missing, unreadable or not a polygon"))
        if not code or not re.fullmatch(rf"[0-9]{{{digits}}}", code):
            problems.append(FeatureProblem(i, code_field, f"{code!r} is not a {digits}-digit code"))
        elif code in seen:
            problems.append(FeatureProblem(i, code_field, f"code {code} given twice", code))
        elif level == "community" and code[:9] not in subdistricts:
            msg = f"subdistrict {code[:9]} does not exist; import subdistricts first"
            problems.append(FeatureProblem(i, code_field, msg, code))
        if len(problems) == before and code:
            seen.add(code)
            fixed = shapely.make_valid(geom)
            parts = shapely.get_parts(fixed)
            polygonal = shapely.union_all(parts[shapely.get_type_id(parts) >= 3])
            rows.append(
                {
                    "code": code,
                    "name": name or code,
                    "wkb": shapely.to_wkb(polygonal),
                    "sub": subdistricts.get(code[:9]),
                }
            )
    if problems:
        raise GridFileError(path, problems)
    table = level  # whitelisted by LEVELS above
    extra_cols, extra_vals = ("", "") if level == "subdistrict" else (", subdistrict_id", ", :sub")
    existing = set(
        connection.execute(
            text(f"SELECT code FROM {table} WHERE code = ANY(:c)"),  # noqa: S608
            {"c": [r["code"] for r in rows]},
        ).scalars()
    )
    with connection.begin_nested():
        connection.execute(
            text(
                f"INSERT INTO {table} (code, name, geom, derived, source{extra_cols})"  # noqa: S608
                " VALUES (:code, :name, ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326)),"
                f" false, 'import'{extra_vals}) ON CONFLICT (code) DO UPDATE SET"
                " name = EXCLUDED.name, geom = EXCLUDED.geom, derived = false, source = 'import'"
            ),
            rows,
        )
    return BoundaryImport(
        level=level,
        codes=[str(r["code"]) for r in rows],
        inserted=len(rows) - len(existing),
        updated=len(existing),
    )


def read_study_area(path: str | Path) -> Any:
    """Return the union of the polygons of a file as one WGS84 (Multi)Polygon.

    Raises
    ------
    InputError
        If the file has no CRS or no polygon.
    """
    geoms, _, _ = _read_polygons(str(path), layer=None, fields=())
    polys = [g for g in geoms if g is not None and shapely.get_type_id(g) in (3, 6)]
    if not polys:
        raise InputError(str(path), "holds no polygon")
    return shapely.union_all(polys)


def _merge_small(faces: npt.NDArray[Any], min_area_m2: float) -> list[Any]:
    """Merge faces under ``min_area_m2`` into the neighbour sharing the longest boundary."""
    out = list(faces)
    while len(out) > 1:
        areas = shapely.area(np.array(out, dtype=object))
        i = int(np.argmin(areas))
        if areas[i] >= min_area_m2:
            break
        others = np.array([g for j, g in enumerate(out) if j != i], dtype=object)
        shared = shapely.length(shapely.intersection(shapely.boundary(others), out[i].boundary))
        j = (
            int(np.argmax(shared))
            if shared.max() > 0
            else int(np.argmin(shapely.distance(others, out[i])))
        )
        merged = shapely.union(others[j], out[i])
        out = [g for k, g in enumerate(others.tolist()) if k != j] + [merged]
    return out


def derive_communities(
    connection: Connection,
    study_area: Any,
    *,
    subdistrict_code: str,
    subdistrict_name: str | None = None,
    roads: tuple[str, ...] = MAJOR_ROADS,
    min_area_m2: float = 100_000.0,
) -> list[int]:
    """Cut a study area along major roads into derived communities and store them.

    Parameters
    ----------
    connection : sqlalchemy.Connection
    study_area : shapely Polygon or MultiPolygon
        The area in WGS84 longitude/latitude.
    subdistrict_code : str
        9-digit code of the (derived) subdistrict; communities get ``code + 001...`` in reading
        order (west→east in rows north→south).
    subdistrict_name : str, optional
        Name of the subdistrict created when it does not exist.
    roads : tuple of str
        ``street_segment.highway`` kinds that separate communities.
    min_area_m2 : float
        Pieces smaller than this (m²) join a neighbour.

    Returns
    -------
    list of int
        Ids of the new communities.

    Raises
    ------
    InputError
        If the code is not 9 digits, the area is empty, or the subdistrict already has
        communities.
    """
    if not re.fullmatch(r"[0-9]{9}", subdistrict_code):
        raise InputError("subdistrict_code", f"must be 9 digits, got {subdistrict_code!r}")
    if study_area is None or shapely.is_empty(study_area):
        raise InputError("study_area", "is empty")
    existing = connection.execute(
        text(
            "SELECT count(*) FROM community c JOIN subdistrict s ON s.id = c.subdistrict_id"
            " WHERE s.code = :code"
        ),
        {"code": subdistrict_code},
    ).scalar_one()
    if existing:
        msg = f"subdistrict {subdistrict_code} already has {existing} communities"
        raise InputError("subdistrict_code", msg)
    centre = shapely.centroid(study_area)
    crs = utm_crs(centre.x, centre.y)
    area_m = project_geometries(np.array([study_area], dtype=object), source=4326, target=crs)[0]
    lines = connection.execute(
        text(
            "SELECT ST_AsBinary(geom) FROM street_segment WHERE highway = ANY(:roads)"
            " AND geom && ST_GeomFromWKB(:area, 4326)"
            " AND ST_Intersects(geom, ST_GeomFromWKB(:area, 4326))"
        ),
        {"roads": list(roads), "area": shapely.to_wkb(study_area)},
    ).scalars()
    streets = shapely.from_wkb(np.array(list(lines), dtype=object))
    if len(streets):
        streets = project_geometries(streets, source=4326, target=crs)
    faces = np.array(_merge_small(blocks(area_m, streets), min_area_m2), dtype=object)
    # A building over or beside a road goes wholly to the community holding most of it.
    footprints = shapely.from_wkb(
        np.array(
            list(
                connection.execute(
                    text(
                        "SELECT ST_AsBinary(footprint) FROM building"
                        " WHERE footprint && ST_GeomFromWKB(:area, 4326)"
                        " AND ST_Intersects(footprint, ST_GeomFromWKB(:area, 4326))"
                    ),
                    {"area": shapely.to_wkb(study_area)},
                ).scalars()
            ),
            dtype=object,
        )
    )
    if len(footprints):
        footprints = project_geometries(footprints, source=4326, target=crs)
        count, labels = group_labels(footprints)
        groups = group_geoms(footprints, count, labels, area_m)
        faces = adjust_to_buildings(faces, groups, owner_of(groups, faces))
    arr = faces
    reps = shapely.get_coordinates(shapely.point_on_surface(arr))
    order = reading_order(reps[:, 0], reps[:, 1], areas_m2=shapely.area(arr))
    wgs = project_geometries(arr, source=crs, target=4326)
    sub = connection.execute(
        text("SELECT id FROM subdistrict WHERE code = :code"), {"code": subdistrict_code}
    ).scalar_one_or_none()
    if sub is None:
        sub = connection.execute(
            text(
                "INSERT INTO subdistrict (code, name, geom, derived, source) VALUES (:code, :name,"
                " ST_Multi(ST_SetSRID(ST_GeomFromWKB(:wkb), 4326)), true, 'derived') RETURNING id"
            ),
            {
                "code": subdistrict_code,
                "name": subdistrict_name or f"derived subdistrict {subdistrict_code}",
                "wkb": shapely.to_wkb(study_area),
            },
        ).scalar_one()
    ids = []
    for n, i in enumerate(order.tolist(), start=1):
        code = f"{subdistrict_code}{n:03d}"
        geom = shapely.make_valid(wgs[i])
        ids.append(
            int(
                connection.execute(
                    text(
                        "INSERT INTO community (code, name, subdistrict_id, geom, derived, source)"
                        " VALUES (:code, :name, :sub, ST_Multi(ST_CollectionExtract("
                        " ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), 3)),"
                        " true, 'derived') RETURNING id"
                    ),
                    {
                        "code": code,
                        "name": f"derived community {code}",
                        "sub": sub,
                        "wkb": shapely.to_wkb(geom),
                    },
                ).scalar_one()
            )
        )
    return ids
