"""Local projected coordinate systems: pick the UTM zone of a place and project to metres and back.

Storage is WGS84 (EPSG:4326, longitude/latitude in degrees). Lengths, areas and offsets are
computed in a Universal Transverse Mercator zone (WGS84 datum, EPSG:326xx north, 327xx south),
whose distortion stays below 0.04 % within a zone, well under a metre across a subdistrict.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Transformer

from gis.errors import InputError

if TYPE_CHECKING:
    import geopandas as gpd

WGS84 = 4326
# UTM is defined between 80°S and 84°N; the poles use UPS, which a subdistrict never needs.
UTM_MIN_LAT = -80.0
UTM_MAX_LAT = 84.0


def utm_zones(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Return the EPSG code of the UTM zone of each longitude/latitude pair.

    Zones are 6° wide from 180°W (zone 1), with the two exceptions of the standard: south-west
    Norway (56-64°N, 3-12°E) is zone 32, and Svalbard (72-84°N) uses zones 31, 33, 35 and 37.
    Longitude 180° belongs to zone 60.

    Parameters
    ----------
    lon, lat : array_like of float
        WGS84 longitude and latitude in degrees, broadcast together.

    Returns
    -------
    numpy.ndarray of int64
        EPSG codes, 326xx north of the equator (latitude ≥ 0), 327xx south of it.

    Raises
    ------
    InputError
        If a longitude is outside [-180, 180], a latitude outside [-80, 84] (UTM's range), or a
        value is not finite.
    """
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("lon/lat", "coordinates must be finite numbers")
    if ((x < -180) | (x > 180)).any():
        raise InputError("lon", "longitude must be within [-180, 180] degrees")
    if ((y < UTM_MIN_LAT) | (y > UTM_MAX_LAT)).any():
        msg = f"latitude must be within [{UTM_MIN_LAT:g}, {UTM_MAX_LAT:g}] degrees for UTM"
        raise InputError("lat", msg)
    zone = np.minimum(np.floor((x + 180.0) / 6.0).astype(np.int64) + 1, 60)
    zone = np.where((y >= 56) & (y < 64) & (x >= 3) & (x < 12), 32, zone)
    svalbard = (y >= 72) & (x >= 0) & (x < 42)
    zone = np.where(svalbard, np.select([x < 9, x < 21, x < 33], [31, 33, 35], 37), zone)
    return np.where(y >= 0, 32600, 32700) + zone


def utm_epsg(lon: float, lat: float) -> int:
    """Return the EPSG code of the UTM zone containing one WGS84 point.

    Parameters
    ----------
    lon, lat : float
        WGS84 longitude and latitude in degrees.

    Returns
    -------
    int
        For example 32650 (UTM 50N) for Beijing, 32735 (UTM 35S) for Johannesburg.

    Raises
    ------
    InputError
        As :func:`utm_zones`.
    """
    return int(utm_zones(lon, lat).item())


def utm_crs(lon: float, lat: float) -> CRS:
    """Return the UTM zone of one WGS84 point as a :class:`pyproj.CRS` (units: metres)."""
    return CRS.from_epsg(utm_epsg(lon, lat))


def local_crs(geometries: gpd.GeoSeries | npt.NDArray[Any]) -> CRS:
    """Return the UTM zone of the centre of the bounding box of WGS84 geometries.

    Parameters
    ----------
    geometries : geopandas.GeoSeries or numpy.ndarray of shapely geometries
        Geometries in WGS84 longitude/latitude. A GeoSeries with another CRS is refused.

    Returns
    -------
    pyproj.CRS
        The projected CRS (metres) to measure these geometries in.

    Raises
    ------
    InputError
        If the geometries are empty, not in WGS84, or outside UTM's latitude range.
    """
    _require_wgs84(geometries)
    xmin, ymin, xmax, ymax = shapely.total_bounds(np.asarray(geometries, dtype=object))
    if not np.isfinite([xmin, ymin, xmax, ymax]).all():
        raise InputError("geometry", "no non-empty geometry to choose a projection from")
    return utm_crs((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)


@lru_cache(maxsize=64)
def transformer(source: int | str, target: int | str) -> Transformer:
    """Return a cached transformer between two CRSs in longitude/latitude (x, y) axis order."""
    return Transformer.from_crs(source, target, always_xy=True)


def _epsg_key(crs: CRS | int | str) -> int | str:
    if isinstance(crs, CRS):
        epsg = crs.to_epsg()
        return epsg if epsg is not None else crs.to_wkt()
    return crs


def project_geometries(
    geometries: npt.NDArray[Any], *, source: CRS | int | str, target: CRS | int | str
) -> npt.NDArray[Any]:
    """Project an array of shapely geometries from one CRS to another.

    Parameters
    ----------
    geometries : numpy.ndarray of shapely geometries
        The geometries, in ``source`` coordinates (x = longitude/easting).
    source, target : pyproj.CRS, int or str
        The CRSs, as objects, EPSG codes or strings pyproj understands.

    Returns
    -------
    numpy.ndarray of shapely geometries
        New geometries in ``target`` coordinates; missing geometries stay ``None``.
    """
    t = transformer(_epsg_key(source), _epsg_key(target))

    def _apply(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geometries, dtype=object), _apply)


def to_metres(geometries: gpd.GeoSeries, *, crs: CRS | int | None = None) -> gpd.GeoSeries:
    """Project a WGS84 GeoSeries to a projected CRS in metres.

    Parameters
    ----------
    geometries : geopandas.GeoSeries
        Geometries in WGS84 (its ``crs`` must be EPSG:4326).
    crs : pyproj.CRS or int, optional
        Target CRS; by default the UTM zone of the centre of the data (:func:`local_crs`).

    Returns
    -------
    geopandas.GeoSeries
        The projected geometries, same index, ``crs`` set to the target.

    Raises
    ------
    InputError
        If the series has no CRS or another than WGS84, is empty when ``crs`` is not given, or
        ``crs`` is not projected.
    """
    if geometries.crs is None:
        raise InputError("crs", "the geometries have no CRS; set EPSG:4326 for longitude/latitude")
    _require_wgs84(geometries)
    target = local_crs(geometries) if crs is None else CRS.from_user_input(crs)
    if not target.is_projected:
        raise InputError("crs", f"{target.name} is not a projected CRS in metres")
    return geometries.to_crs(target)


def to_wgs84(geometries: gpd.GeoSeries) -> gpd.GeoSeries:
    """Project a GeoSeries with a known CRS back to WGS84 longitude/latitude.

    Raises
    ------
    InputError
        If the series has no CRS.
    """
    if geometries.crs is None:
        raise InputError("crs", "the geometries have no CRS to project from")
    return geometries.to_crs(WGS84)


def _require_wgs84(geometries: gpd.GeoSeries | npt.NDArray[Any]) -> None:
    crs = getattr(geometries, "crs", None)
    if crs is not None and CRS.from_user_input(crs).to_epsg() != WGS84:
        raise InputError("crs", f"expected WGS84 (EPSG:4326) longitude/latitude, got {crs}")
