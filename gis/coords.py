"""Coordinate systems in daily use in China: WGS84, GCJ-02 and BD-09.

- **WGS84** (EPSG:4326): GPS, OpenStreetMap and PostGIS storage in this project.
- **GCJ-02** ("Mars" coordinates): the obfuscated system of Amap/Gaode, Tencent and WeChat
  location, shifted 100-700 m from WGS84 inside China and equal to WGS84 outside it.
- **BD-09**: Baidu maps, a further rotation/offset applied on top of GCJ-02.

The forward transforms are the public formulas (Krasovsky ellipsoid parameters and the
published polynomial-plus-sine offset); the inverses are computed iteratively (fixed-point
refinement of the forward transform) until the residual is below ``1e-9`` degrees, i.e. well
under a millimetre, far inside the 0.5 m the project requires.

"Inside China" is the usual rough bounding-box test used by the public implementations:
longitude in [72.004, 137.8347] and latitude in [0.8293, 55.8271] (see :func:`out_of_china`).
It also covers some neighbouring territory; GCJ-02 providers use a finer outline, so results
within a few tens of kilometres of the national border may differ from a provider's.

Every function accepts scalars or arrays (anything numpy can broadcast) and returns floats for
scalar input and ``float64`` arrays otherwise. Longitudes and latitudes are in degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal, TypeGuard, overload

import numpy as np
import numpy.typing as npt
import shapely

from gis.errors import InputError

__all__ = [
    "CRS_NAMES",
    "CoordinateSystem",
    "CrsName",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "convert",
    "detect_swapped",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "parse_crs",
    "to_wgs84",
    "utm_epsg",
    "validate_lonlat",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]
ArrayInput = npt.NDArray[Any] | Sequence[float]
LonLat = tuple[float, float]
LonLatArrays = tuple[FloatArray, FloatArray]

CrsName = Literal["wgs84", "gcj02", "bd09"]


class CoordinateSystem(StrEnum):
    """The coordinate systems accepted wherever coordinates come in (``crs`` parameter)."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


CRS_NAMES: tuple[str, ...] = tuple(member.value for member in CoordinateSystem)

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
# BD-09 constant: pi * 3000 / 180.
_X_PI = math.pi * 3000.0 / 180.0
# Rough bounding box of China used by the public GCJ-02 implementations.
CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)
# Inverse transforms stop when the forward residual is below this (degrees, ~0.1 mm).
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 30


def _arrays(lon: Any, lat: Any) -> tuple[FloatArray, FloatArray, bool]:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    scalar = x.ndim == 0 and y.ndim == 0
    x, y = np.broadcast_arrays(x, y)
    return x, y, scalar


def _result(x: FloatArray, y: FloatArray, scalar: bool) -> LonLat | LonLatArrays:
    if scalar:
        return float(x), float(y)
    return np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64)


def _out_of_china(x: FloatArray, y: FloatArray) -> npt.NDArray[np.bool_]:
    west, south, east, north = CHINA_BBOX
    inside = (x >= west) & (x <= east) & (y >= south) & (y <= north)
    return np.asarray(~inside)


@overload
def out_of_china(lon: float, lat: float) -> bool: ...
@overload
def out_of_china(lon: ArrayInput, lat: ArrayInput) -> npt.NDArray[np.bool_]: ...
def out_of_china(lon: float | ArrayInput, lat: float | ArrayInput) -> bool | npt.NDArray[np.bool_]:
    """Tell whether points lie outside the rough China bounding box where GCJ-02 applies.

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees (scalars or arrays).

    Returns
    -------
    bool or numpy.ndarray of bool
        True where the point is outside longitude [72.004, 137.8347] x latitude
        [0.8293, 55.8271]; there GCJ-02 and BD-09's GCJ step leave coordinates unchanged.
    """
    x, y, scalar = _arrays(lon, lat)
    result = _out_of_china(x, y)
    return bool(result) if scalar else result


def _gcj_offset(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 (x, y), zero outside China."""
    dlon, dlat = _gcj_shift(x, y, np)
    outside = _out_of_china(x, y)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _gcj_shift(x: Any, y: Any, xp: Any) -> tuple[Any, Any]:
    """Compute the published GCJ-02 offset (inside China); ``xp`` is numpy or math."""
    u = x - 105.0
    v = y - 35.0
    sqrt_abs_u = xp.sqrt(abs(u))
    common = (20.0 * xp.sin(6.0 * u * xp.pi) + 20.0 * xp.sin(2.0 * u * xp.pi)) * 2.0 / 3.0
    dlat = (
        -100.0
        + 2.0 * u
        + 3.0 * v
        + 0.2 * v * v
        + 0.1 * u * v
        + 0.2 * sqrt_abs_u
        + common
        + (20.0 * xp.sin(v * xp.pi) + 40.0 * xp.sin(v / 3.0 * xp.pi)) * 2.0 / 3.0
        + (160.0 * xp.sin(v / 12.0 * xp.pi) + 320.0 * xp.sin(v * xp.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + u
        + 2.0 * v
        + 0.1 * u * u
        + 0.1 * u * v
        + 0.1 * sqrt_abs_u
        + common
        + (20.0 * xp.sin(u * xp.pi) + 40.0 * xp.sin(u / 3.0 * xp.pi)) * 2.0 / 3.0
        + (150.0 * xp.sin(u / 12.0 * xp.pi) + 300.0 * xp.sin(u / 30.0 * xp.pi)) * 2.0 / 3.0
    )
    rad_lat = y / 180.0 * xp.pi
    magic = 1.0 - _EE * xp.sin(rad_lat) ** 2
    sqrt_magic = xp.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * xp.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * xp.cos(rad_lat) * xp.pi)
    return dlon, dlat


def _wgs_to_gcj(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj_offset(x, y)
    return x + dlon, y + dlat


def _gcj_to_bd(x: Any, y: Any, xp: Any = np) -> tuple[Any, Any]:
    z = xp.hypot(x, y) + 0.00002 * xp.sin(y * _X_PI)
    theta = xp.atan2(y, x) + 0.000003 * xp.cos(x * _X_PI)
    return z * xp.cos(theta) + 0.0065, z * xp.sin(theta) + 0.006


def _bd_to_gcj_approx(x: Any, y: Any, xp: Any = np) -> tuple[Any, Any]:
    # The published closed-form inverse; accurate to a few metres, used as the starting guess.
    u = x - 0.0065
    v = y - 0.006
    z = xp.hypot(u, v) - 0.00002 * xp.sin(v * _X_PI)
    theta = xp.atan2(v, u) - 0.000003 * xp.cos(u * _X_PI)
    return z * xp.cos(theta), z * xp.sin(theta)


def _invert(
    forward: Any,
    x: FloatArray,
    y: FloatArray,
    start: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(p) = (x, y)`` by fixed-point refinement from ``start``.

    The transforms are the identity plus a slowly varying offset, so ``p -= forward(p) - target``
    contracts quickly (a few iterations to 1e-9 degrees).
    """
    px = np.array(start[0], dtype=np.float64, copy=True)
    py = np.array(start[1], dtype=np.float64, copy=True)
    for _ in range(_INVERSE_MAX_ITERATIONS):
        fx, fy = forward(px, py)
        ex = fx - x
        ey = fy - y
        px -= ex
        py -= ey
        if px.size == 0 or float(np.nanmax(np.maximum(np.abs(ex), np.abs(ey)))) < (
            _INVERSE_TOLERANCE_DEG
        ):
            break
    return px, py


def _gcj_to_wgs(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj_offset(x, y)
    wx, wy = _invert(_wgs_to_gcj, x, y, (x - dlon, y - dlat))
    # Points outside the box stay as they are (GCJ-02 is WGS84 there).
    outside = _out_of_china(x, y)
    return np.where(outside, x, wx), np.where(outside, y, wy)


def _bd_to_gcj(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _invert(_gcj_to_bd, x, y, _bd_to_gcj_approx(x, y))


def _wgs_to_bd(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_bd(*_wgs_to_gcj(x, y))


def _bd_to_wgs(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj_to_wgs(*_bd_to_gcj(x, y))


# The same transforms for one point, with Python floats and ``math`` (a request's point):
# numpy's per-call overhead made a GCJ-02 inverse cost about 120 us, these about 15 us.


def _outside_china(x: float, y: float) -> bool:
    west, south, east, north = CHINA_BBOX
    return not (west <= x <= east and south <= y <= north)


def _wgs_to_gcj_point(x: float, y: float) -> LonLat:
    if _outside_china(x, y):
        return x, y
    dlon, dlat = _gcj_shift(x, y, math)
    return x + dlon, y + dlat


def _invert_point(forward: Any, x: float, y: float, start: LonLat) -> LonLat:
    """Solve ``forward(p) = (x, y)`` for one point, as :func:`_invert` does for arrays."""
    px, py = start
    for _ in range(_INVERSE_MAX_ITERATIONS):
        fx, fy = forward(px, py)
        ex, ey = fx - x, fy - y
        px, py = px - ex, py - ey
        if max(abs(ex), abs(ey)) < _INVERSE_TOLERANCE_DEG:
            break
    return px, py


def _gcj_to_wgs_point(x: float, y: float) -> LonLat:
    if _outside_china(x, y):
        return x, y
    dlon, dlat = _gcj_shift(x, y, math)
    return _invert_point(_wgs_to_gcj_point, x, y, (x - dlon, y - dlat))


def _bd_to_wgs_point(x: float, y: float) -> LonLat:
    gcj = _invert_point(
        lambda px, py: _gcj_to_bd(px, py, math), x, y, _bd_to_gcj_approx(x, y, math)
    )
    return _gcj_to_wgs_point(*gcj)


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> LonLat: ...
@overload
def wgs84_to_gcj02(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def wgs84_to_gcj02(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert WGS84 longitude/latitude (degrees) to GCJ-02; unchanged outside China."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_wgs_to_gcj(x, y), scalar)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> LonLat: ...
@overload
def gcj02_to_wgs84(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def gcj02_to_wgs84(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert GCJ-02 longitude/latitude (degrees) to WGS84 by iterative inversion (< 1 mm)."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_gcj_to_wgs(x, y), scalar)


@overload
def gcj02_to_bd09(lon: float, lat: float) -> LonLat: ...
@overload
def gcj02_to_bd09(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def gcj02_to_bd09(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert GCJ-02 longitude/latitude (degrees) to BD-09."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_gcj_to_bd(x, y), scalar)


@overload
def bd09_to_gcj02(lon: float, lat: float) -> LonLat: ...
@overload
def bd09_to_gcj02(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def bd09_to_gcj02(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert BD-09 longitude/latitude (degrees) to GCJ-02 by iterative inversion (< 1 mm)."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_bd_to_gcj(x, y), scalar)


@overload
def wgs84_to_bd09(lon: float, lat: float) -> LonLat: ...
@overload
def wgs84_to_bd09(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def wgs84_to_bd09(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert WGS84 longitude/latitude (degrees) to BD-09 (through GCJ-02)."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_wgs_to_bd(x, y), scalar)


@overload
def bd09_to_wgs84(lon: float, lat: float) -> LonLat: ...
@overload
def bd09_to_wgs84(lon: ArrayInput, lat: ArrayInput) -> LonLatArrays: ...
def bd09_to_wgs84(lon: float | ArrayInput, lat: float | ArrayInput) -> LonLat | LonLatArrays:
    """Convert BD-09 longitude/latitude (degrees) to WGS84 (through GCJ-02, iterative)."""
    x, y, scalar = _arrays(lon, lat)
    return _result(*_bd_to_wgs(x, y), scalar)


_FROM_WGS = {
    CoordinateSystem.WGS84: lambda x, y: (x, y),
    CoordinateSystem.GCJ02: _wgs_to_gcj,
    CoordinateSystem.BD09: _wgs_to_bd,
}
_POINT_TO_WGS = {
    CoordinateSystem.WGS84: lambda x, y: (x, y),
    CoordinateSystem.GCJ02: _gcj_to_wgs_point,
    CoordinateSystem.BD09: _bd_to_wgs_point,
}
_TO_WGS = {
    CoordinateSystem.WGS84: lambda x, y: (x, y),
    CoordinateSystem.GCJ02: _gcj_to_wgs,
    CoordinateSystem.BD09: _bd_to_wgs,
}


def parse_crs(crs: object, *, field: str = "crs") -> CoordinateSystem:
    """Return the :class:`CoordinateSystem` named by ``crs`` (case-insensitive).

    Parameters
    ----------
    crs
        ``"wgs84"``, ``"gcj02"``, ``"bd09"`` or a :class:`CoordinateSystem`.
    field
        Name of the field reported in the error.

    Raises
    ------
    gis.errors.InputError
        For anything else, naming ``field``.
    """
    if isinstance(crs, CoordinateSystem):
        return crs
    if isinstance(crs, str):
        try:
            return CoordinateSystem(crs.strip().lower())
        except ValueError:
            pass
    msg = f"unknown coordinate system {crs!r}; expected one of {', '.join(CRS_NAMES)}"
    raise InputError(field, msg)


def _numeric(value: object, field: str) -> FloatArray:
    if isinstance(value, bool | np.bool_):
        msg = f"expected a number, got {value!r}"
        raise InputError(field, msg)
    try:
        array = np.asarray(value)
        kind = array.dtype.kind
        result = array.astype(np.float64) if kind != "b" else None
    except (TypeError, ValueError):
        result = None
    if result is None:
        shown = repr(value)
        msg = f"expected a number, got {shown}" if len(shown) <= 80 else "expected numbers"
        raise InputError(field, msg)
    return np.asarray(result, dtype=np.float64)


def _where(bad: npt.NDArray[np.bool_]) -> str:
    if bad.ndim == 0:
        return ""
    first = np.flatnonzero(bad)
    shown = ", ".join(str(int(i)) for i in first[:5])
    more = f" and {first.size - 5} more" if first.size > 5 else ""
    return f" at index {shown}{more}"


def _plain_number(value: object) -> TypeGuard[float | str]:
    """Whether ``value`` is a float, an int (not a bool) or a numeric string."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return True
    if isinstance(value, str) and "_" not in value:  # float() takes 1_000, numpy does not
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _checked_scalars(lon: float, lat: float) -> LonLat | None:
    """Return ``(lon, lat)`` when both are finite and in range, else None (numpy path reports)."""
    if math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180.0 and abs(lat) <= 90.0:
        return lon, lat
    return None


def validate_lonlat(lon: object, lat: object) -> tuple[FloatArray, FloatArray]:
    """Check longitude/latitude values and return them as ``float64`` arrays.

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees: numbers, numeric strings or arrays of them, of
        broadcastable shapes.

    Returns
    -------
    tuple of numpy.ndarray
        The coordinates as ``float64`` arrays (0-d for scalar input).

    Raises
    ------
    gis.errors.InputError
        Field ``lon`` or ``lat`` when a value is not numeric, NaN or infinite, or out of range
        (longitude outside [-180, 180], latitude outside [-90, 90]). A latitude beyond 90 whose
        longitude would be a valid latitude is reported as possibly swapped.
    """
    x = _numeric(lon, "lon")
    y = _numeric(lat, "lat")
    for field, values in (("lon", x), ("lat", y)):
        bad = ~np.isfinite(values)
        if bad.any():
            msg = f"must be a finite number (NaN or infinity{_where(bad)})"
            raise InputError(field, msg)
    bad_lon = np.abs(x) > 180.0
    if bad_lon.any():
        msg = f"longitude must be within [-180, 180]{_where(bad_lon)}"
        raise InputError("lon", msg)
    bad_lat = np.abs(y) > 90.0
    if bad_lat.any():
        hint = ""
        try:
            xb, yb = np.broadcast_arrays(x, y)
        except ValueError:
            xb, yb = x, y
        if np.shape(xb) == np.shape(yb) and bool(np.all(np.abs(xb[bad_lat]) <= 90.0)):
            hint = "; longitude and latitude look swapped"
        msg = f"latitude must be within [-90, 90]{_where(bad_lat)}{hint}"
        raise InputError("lat", msg)
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        msg = f"shape {y.shape} does not match lon shape {x.shape}"
        raise InputError("lat", msg) from None
    return x, y


@overload
def to_wgs84(lon: float | str, lat: float | str, crs: object = ...) -> LonLat: ...
@overload
def to_wgs84(lon: ArrayInput, lat: ArrayInput, crs: object = ...) -> LonLatArrays: ...
def to_wgs84(
    lon: float | str | ArrayInput,
    lat: float | str | ArrayInput,
    crs: object = CoordinateSystem.WGS84,
) -> LonLat | LonLatArrays:
    """Validate coordinates given in ``crs`` and return them in WGS84.

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees, scalars or arrays.
    crs
        ``"wgs84"`` (default), ``"gcj02"`` or ``"bd09"``.

    Returns
    -------
    tuple
        WGS84 ``(lon, lat)`` in degrees: floats for scalar input, ``float64`` arrays otherwise.

    Raises
    ------
    gis.errors.InputError
        Field ``crs`` for an unknown system; ``lon``/``lat`` for non-numeric, NaN, infinite or
        out-of-range values (see :func:`validate_lonlat`).
    """
    system = parse_crs(crs)
    if _plain_number(lon) and _plain_number(lat):
        # One point (a request): checked and converted without numpy, several times faster.
        valid = _checked_scalars(float(lon), float(lat))
        if valid is not None:
            return _POINT_TO_WGS[system](*valid)
    x, y = validate_lonlat(lon, lat)
    scalar = x.ndim == 0 and y.ndim == 0
    x, y = np.broadcast_arrays(x, y)
    return _result(*_TO_WGS[system](x, y), scalar)


@overload
def convert(lon: float, lat: float, *, source: object, target: object) -> LonLat: ...
@overload
def convert(
    lon: ArrayInput, lat: ArrayInput, *, source: object, target: object
) -> LonLatArrays: ...
def convert(
    lon: float | ArrayInput,
    lat: float | ArrayInput,
    *,
    source: object,
    target: object,
) -> LonLat | LonLatArrays:
    """Convert coordinates between any two of ``wgs84``, ``gcj02`` and ``bd09``.

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees in the ``source`` system.
    source, target
        Coordinate system names.

    Returns
    -------
    tuple
        ``(lon, lat)`` in ``target``, degrees.

    Raises
    ------
    gis.errors.InputError
        Field ``source``/``target`` for an unknown system name.
    """
    src = parse_crs(source, field="source")
    dst = parse_crs(target, field="target")
    x, y, scalar = _arrays(lon, lat)
    if src is dst:
        return _result(x, y, scalar)
    wx, wy = _TO_WGS[src](x, y)
    return _result(*_FROM_WGS[dst](wx, wy), scalar)


Area = shapely.Geometry | tuple[float, float, float, float]


def _area_geometry(area: Area) -> shapely.Geometry:
    if isinstance(area, shapely.Geometry):
        return area
    minx, miny, maxx, maxy = (float(v) for v in area)
    return shapely.box(minx, miny, maxx, maxy)


@overload
def detect_swapped(
    lon: float | str, lat: float | str, area: Area, *, crs: object = ...
) -> bool: ...
@overload
def detect_swapped(
    lon: ArrayInput, lat: ArrayInput, area: Area, *, crs: object = ...
) -> npt.NDArray[np.bool_]: ...
def detect_swapped(
    lon: float | str | ArrayInput,
    lat: float | str | ArrayInput,
    area: Area,
    *,
    crs: object = CoordinateSystem.WGS84,
) -> bool | npt.NDArray[np.bool_]:
    """Tell whether latitude and longitude look swapped relative to a managed area.

    A point is reported as swapped when ``(lon, lat)`` lies outside ``area`` and ``(lat, lon)``
    lies inside it (boundary included). Values that cannot be coordinates in either order (NaN,
    infinite, out of range) are simply not swapped.

    Parameters
    ----------
    lon, lat
        The coordinates in the order given, degrees, in ``crs``.
    area
        The managed area in WGS84: a shapely geometry or a ``(minx, miny, maxx, maxy)`` bbox.
    crs
        Coordinate system of the input (converted to WGS84 in both orders before testing).

    Returns
    -------
    bool or numpy.ndarray of bool

    Raises
    ------
    gis.errors.InputError
        Field ``crs`` for an unknown coordinate system; ``lon``/``lat`` for non-numeric values.
    """
    system = parse_crs(crs)
    x, y, scalar = _arrays(_numeric(lon, "lon"), _numeric(lat, "lat"))
    geometry = _area_geometry(area)
    shapely.prepare(geometry)

    def inside(px: FloatArray, py: FloatArray) -> npt.NDArray[np.bool_]:
        valid = np.isfinite(px) & np.isfinite(py) & (np.abs(px) <= 180) & (np.abs(py) <= 90)
        sx = np.where(valid, px, 0.0)
        sy = np.where(valid, py, 0.0)
        wx, wy = _TO_WGS[system](sx, sy)
        return np.asarray(valid & shapely.intersects_xy(geometry, wx, wy))

    result = ~inside(x, y) & inside(y, x)
    return bool(result) if scalar else np.asarray(result)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone containing a WGS84 point (326zz north, 327zz south).

    Parameters
    ----------
    lon, lat
        Longitude and latitude in degrees (WGS84).

    Returns
    -------
    int
        For example 32650 (UTM 50N) for Beijing.

    Raises
    ------
    gis.errors.InputError
        For non-numeric, non-finite or out-of-range coordinates.
    """
    x, y = validate_lonlat(lon, lat)
    zone = min(math.floor((float(x) + 180.0) / 6.0) + 1, 60)
    return (32600 if float(y) >= 0 else 32700) + zone
