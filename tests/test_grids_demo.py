"""Generated grids on the real OSM demo areas validate clean."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from sqlalchemy import Connection, text

from gis.grids.communities import derive_communities, read_study_area
from gis.grids.generate import generate_grids
from gis.grids.validate import validate_grids

DATA = Path(__file__).resolve().parent.parent / "data"
AREAS = {"beijing_haidian_xueyuanlu": "110108950", "nanjing_xinjiekou": "320102950"}
HOMES = {"yes", "residential", "apartments", "dormitory", "house"}


def _load(connection: Connection, area: str) -> list[int]:
    folder = DATA / area
    streets = gpd.read_file(folder / "streets.geojson")
    connection.execute(
        text(
            "INSERT INTO street_segment (source, source_id, part, highway, geom, length_m)"
            " VALUES ('osm', :sid, :part, :hw, ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), :len)"
        ),
        [
            {"sid": str(r.osm_id), "part": i, "hw": r.highway, "wkb": r.geometry.wkb, "len": 0.0}
            for i, r in enumerate(streets.itertuples())
            if r.geometry is not None and r.geometry.geom_type == "LineString"
        ],
    )
    buildings = gpd.read_file(folder / "buildings.geojson")
    buildings["geometry"] = shapely.make_valid(buildings.geometry.values)
    connection.execute(
        text(
            "INSERT INTO building (source, source_id, footprint, area_m2)"
            " VALUES ('osm', :sid, ST_Multi(ST_CollectionExtract("
            " ST_SetSRID(ST_GeomFromWKB(:wkb), 4326), 3)), :area)"
        ),
        [
            {"sid": f"{r.osm_type}/{r.osm_id}", "wkb": r.geometry.wkb, "area": r.area_m2}
            for r in buildings.itertuples()
        ],
    )
    # One stairwell per home building, six floors of 90 m² flats: enough to size service cells.
    homes = buildings[buildings["building"].isin(HOMES)]
    hh = np.maximum(1, (homes["area_m2"].to_numpy() * 6 / 90).round()).astype(int)
    connection.execute(
        text(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
            " elderly, estimated, source) SELECT id, 1, ST_PointOnSurface(footprint), :h, :h * 2,"
            " 0, true, 'test' FROM building WHERE source = 'osm' AND source_id = :sid"
        ),
        [
            {"sid": f"{r.osm_type}/{r.osm_id}", "h": int(h)}
            for r, h in zip(homes.itertuples(), hh, strict=True)
        ],
    )
    study = read_study_area(folder / "study_area.geojson")
    return derive_communities(connection, study, subdistrict_code=AREAS[area])


@pytest.mark.parametrize("area", sorted(AREAS))
@pytest.mark.parametrize("kind", ["service", "unit"])
def test_generated_grids_on_demo_areas_validate_clean(
    connection: Connection, area: str, kind: str
) -> None:
    communities = _load(connection, area)
    result = generate_grids(connection, community_ids=communities, kind=kind)
    report = validate_grids(connection, kind=kind)
    assert [(d.kind, d.codes, d.detail) for d in report.defects] == []
    assert report.cells == len(result.cells) > len(communities)
