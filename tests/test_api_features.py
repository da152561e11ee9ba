"""The layer catalogue and the bbox/limit parsing of ``gis.features``."""

import math

import pytest
from sqlalchemy import Connection, text

from gis.errors import InputError
from gis.features import BBox, FeatureSource, check_limit, extent, parse_bbox
from gis.models import Base
from layers import CATALOGUE, get_layer

PERSONAL = {"phone", "worker_id", "residents", "elderly", "tags", "name_of_reporter"}


def test_parse_bbox_reads_lon_lat_order() -> None:
    assert parse_bbox(" 116.3, 39.9 ,116.4,40.0") == BBox(116.3, 39.9, 116.4, 40.0)


def test_parse_bbox_accepts_a_point() -> None:
    assert parse_bbox("116.3,39.9,116.3,39.9") == BBox(116.3, 39.9, 116.3, 39.9)


def test_parse_bbox_error_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        parse_bbox("1,2", field="box")
    assert info.value.field == "box"


def test_parse_bbox_rejects_nan() -> None:
    with pytest.raises(InputError, match="finite"):
        parse_bbox(f"{math.nan},1,2,3")


def test_check_limit_uses_default_when_absent() -> None:
    assert check_limit(None, default=20, maximum=50) == 20


def test_check_limit_rejects_above_maximum() -> None:
    with pytest.raises(InputError, match="between 1 and 50"):
        check_limit(51, default=20, maximum=50)


def test_feature_source_rejects_non_identifier() -> None:
    with pytest.raises(ValueError, match="identifier"):
        FeatureSource(table="building; DROP TABLE grid", geometry="footprint", properties=())


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_columns_exist_in_the_schema(name: str) -> None:
    source = CATALOGUE[name].source
    table = Base.metadata.tables[source.table]
    assert set(source.columns) <= set(table.columns.keys())


@pytest.mark.parametrize("name", sorted(name for name in CATALOGUE if not CATALOGUE[name].personal))
def test_public_layers_expose_no_personal_data(name: str) -> None:
    assert not PERSONAL & set(CATALOGUE[name].source.properties)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_no_layer_exposes_contacts_or_raw_tags(name: str) -> None:
    # Even role-restricted layers carry counts, never contact details or free-form tags.
    assert not {
        "phone",
        "worker_id",
        "tags",
        "name_of_reporter",
        "reporter_phone",
        "reporter_name",
    } & set(CATALOGUE[name].source.properties)


def test_household_layers_are_marked_personal() -> None:
    assert CATALOGUE["stairwells"].personal
    assert CATALOGUE["cases"].personal


def test_catalogue_has_the_foundation_layers() -> None:
    assert {"buildings", "stairwells", "facilities", "streets", "grids"} <= set(CATALOGUE)


def test_get_layer_lists_known_layers_when_unknown() -> None:
    with pytest.raises(LookupError, match="buildings"):
        get_layer("nope")


def add_grid(connection: Connection, code: str, west: float, *, retired: bool) -> None:
    connection.execute(
        text(
            "INSERT INTO grid (code, kind, geom, valid_from, valid_to) VALUES (:code, 'unit', "
            "ST_Multi(ST_MakeEnvelope(:west, -41, :west + 0.1, -40.9, 4326)), '2024-01-01', "
            "CASE WHEN :retired THEN '2025-01-01'::timestamptz END)"
        ),
        {"code": code, "west": west, "retired": retired},
    )


def test_extent_covers_current_features_and_skips_retired_ones(connection: Connection) -> None:
    add_grid(connection, "110108001001008", -20.0, retired=False)
    add_grid(connection, "110108001001009", -30.0, retired=True)
    box = extent(connection, (CATALOGUE["grids"].source,))
    assert box is not None
    assert box.minlon == pytest.approx(-20.0) and box.minlat <= -41
