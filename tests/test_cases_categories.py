from pathlib import Path

import pytest

from gis.cases.categories import (
    DEFAULT_PATH,
    TimeLimit,
    big_classes,
    default_categories,
    get_category,
    load_categories,
)
from gis.errors import InputError

HEADER = DEFAULT_PATH.read_text(encoding="utf-8").splitlines()[0]
GOOD = "C0101,component,01,公用设施,01,上水井盖,井盖缺失,2,urgent_hours,已补齐,自来水公司,owner"


def _write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "categories.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_shipped_tree_has_the_domain_examples() -> None:
    tree = default_categories()
    assert tree["C0101"].time_limit == TimeLimit(2, "urgent_hours")  # missing manhole cover
    assert tree["E0103"].time_limit == TimeLimit(4, "working_hours")  # exposed garbage
    assert tree["E0101"].time_limit == TimeLimit(4, "working_hours")  # stop illegal building
    assert tree["E0102"].time_limit == TimeLimit(20, "working_days")  # demolish it
    assert {"非法小广告", "不文明养犬", "入室盗窃"} <= {c.small_name for c in tree.values()}


def test_shipped_tree_covers_every_big_class_of_both_kinds() -> None:
    classes = big_classes(default_categories())
    events = {name for (kind, _), name in classes.items() if kind == "event"}
    components = {name for (kind, _), name in classes.items() if kind == "component"}
    assert {"市容环境", "宣传广告", "施工管理", "街面秩序", "突发事件"} <= events
    assert {"公用设施", "道路交通", "市容环境", "园林绿化", "房屋土地"} <= components


def test_events_are_territory_first_and_components_owner_first() -> None:
    tree = default_categories().values()
    assert {c.responsibility for c in tree if c.kind == "event"} == {"territory"}
    assert {c.responsibility for c in tree if c.kind == "component"} == {"owner"}


def test_a_valid_file_loads(tmp_path: Path) -> None:
    tree = load_categories(_write(tmp_path, GOOD))
    assert tree["C0101"].department == "自来水公司"


def test_unknown_unit_names_row_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD,
        GOOD.replace("C0101", "C0102")
        .replace(",01,上", ",02,上")
        .replace("urgent_hours", "fortnights"),
    )
    with pytest.raises(InputError) as err:
        load_categories(path)
    assert err.value.field == "row 3, column limit_unit"


def test_non_positive_limit_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 2, column limit_value"):
        load_categories(_write(tmp_path, GOOD.replace(",2,urgent", ",0,urgent")))


def test_code_inconsistent_with_kind_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 2, column code"):
        load_categories(_write(tmp_path, GOOD.replace("C0101", "E0101")))


def test_duplicate_code_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 3, column code"):
        load_categories(_write(tmp_path, GOOD, GOOD))


def test_empty_department_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 2, column department"):
        load_categories(_write(tmp_path, GOOD.replace("自来水公司", "")))


def test_missing_column_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("code,kind\nC0101,component\n", encoding="utf-8")
    with pytest.raises(InputError, match="columns"):
        load_categories(path)


def test_unknown_code_lookup_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        get_category("X9999")
    assert err.value.field == "category_code"
