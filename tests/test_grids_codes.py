import numpy as np
import pytest

from gis.errors import InputError
from gis.grids.codes import (
    assign_codes,
    make_code,
    next_sequences,
    parse_code,
    reading_order,
    validate_code,
)

COMMUNITY = "110108001001"


def test_reading_order_runs_west_to_east_in_rows_north_to_south() -> None:
    # A 3 × 2 layout of 100 m cells given in scrambled order; points jitter inside their row.
    x = np.array([250, 50, 150, 50, 250, 150])
    y = np.array([40, 160, 150, 45, 155, 60])
    order = reading_order(x, y, band_m=100)
    assert [(int(x[i]), int(y[i])) for i in order] == [
        (50, 160),
        (150, 150),
        (250, 155),
        (50, 45),
        (150, 60),
        (250, 40),
    ]


def test_default_row_height_is_one_cell() -> None:
    x = np.array([0.0, 100.0])
    y = np.array([0.0, 60.0])  # the eastern cell is 60 m further north: same 100 m row
    assert reading_order(x, y, areas_m2=[10_000, 10_000]).tolist() == [0, 1]
    assert reading_order(x, y, band_m=50).tolist() == [1, 0]


def test_new_layout_is_numbered_in_reading_order() -> None:
    codes = assign_codes(COMMUNITY, [150, 50, 50], [150, 150, 50], band_m=100)
    assert codes == [COMMUNITY + "002", COMMUNITY + "001", COMMUNITY + "003"]


def test_kept_codes_stay_and_new_cells_take_the_next_free_numbers() -> None:
    keep = [COMMUNITY + "002", None, COMMUNITY + "001", None]
    codes = assign_codes(COMMUNITY, [0, 300, 100, 200], [0, 0, 0, 0], keep=keep, used=[3])
    # 1-3 are taken (3 by a closed cell): the new cells get 4 and 5, west first.
    assert codes == [COMMUNITY + "002", COMMUNITY + "005", COMMUNITY + "001", COMMUNITY + "004"]


def test_numbers_are_never_reused() -> None:
    assert next_sequences([1, 2, 7], 2) == [8, 9]


def test_a_community_holds_at_most_999_cells() -> None:
    with pytest.raises(InputError, match="999"):
        next_sequences([998], 2)


def test_code_parts() -> None:
    code = parse_code("110108001001012")
    assert (code.admin, code.subdistrict, code.community, code.sequence) == (
        "110108",
        "001",
        "001",
        12,
    )
    assert str(code) == "110108001001012"


@pytest.mark.parametrize("bad", ["11010800100101", "1101080010010123", "11010800100101a", ""])
def test_codes_of_wrong_length_or_characters_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="15 digits"):
        parse_code(bad)


def test_sequence_000_is_refused() -> None:
    with pytest.raises(InputError, match="000"):
        parse_code(COMMUNITY + "000")


def test_code_must_start_with_its_community() -> None:
    with pytest.raises(InputError, match="community code"):
        validate_code("110108001002001", community_code=COMMUNITY)


def test_make_code_pads_the_sequence() -> None:
    assert make_code(COMMUNITY, 7) == COMMUNITY + "007"
