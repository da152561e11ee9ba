"""The case category tree (案件分类) with its filing standards (立结案标准).

The tree is shipped as data, ``gis/resources/categories.csv``, and loaded at startup rather than
stored in the database: a city edits the file (or points to its own) and restarts. Cases keep the
category code they were filed with, so a later edit never rewrites history.

Columns of the file, one row per small class:

``code``
    ``E`` (event, 事件) or ``C`` (component, 部件) + big class (2 digits) + small class (2-3
    digits), e.g. ``C0101`` (上水井盖). Event and component big classes share numbers, the
    letter keeps the codes apart.
``kind``
    ``event`` or ``component``.
``big_code``, ``big_name``, ``small_code``, ``small_name``
    The two levels of the tree; a big code has one name per kind.
``filing_condition``, ``closing_condition``
    When a report is filed (立案) and when the case may be closed (结案).
``limit_value``, ``limit_unit``
    The time limit from dispatch: a positive integer and one of :data:`LIMIT_UNITS`.
``department``
    The responsible department (责任部门), the default receiver at dispatch.
``responsibility``
    ``territory`` (events: the grid's territory is responsible first) or ``owner`` (components:
    the asset owner first). When nobody else is responsible, the territory is.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gis.errors import InputError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "resources" / "categories.csv"

#: Units of a time limit: urgent hours run continuously, working hours only inside office
#: hours on working days, working days skip weekends and holidays (make-up days count),
#: calendar days run continuously.
LIMIT_UNITS = ("urgent_hours", "working_hours", "working_days", "calendar_days")
KINDS = ("event", "component")
RESPONSIBILITIES = ("territory", "owner")
COLUMNS = (
    "code",
    "kind",
    "big_code",
    "big_name",
    "small_code",
    "small_name",
    "filing_condition",
    "limit_value",
    "limit_unit",
    "closing_condition",
    "department",
    "responsibility",
)
_KIND_LETTER = {"event": "E", "component": "C"}


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A time limit: ``value`` (positive integer) in ``unit`` (one of :data:`LIMIT_UNITS`)."""

    value: int
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in LIMIT_UNITS:
            msg = f"unit {self.unit!r} is not one of {', '.join(LIMIT_UNITS)}"
            raise InputError("unit", msg)
        if self.value <= 0:
            msg = f"value must be a positive integer, got {self.value}"
            raise InputError("value", msg)


@dataclass(frozen=True, slots=True)
class Category:
    """One small class of the tree with its filing standard."""

    code: str
    kind: str
    big_code: str
    big_name: str
    small_code: str
    small_name: str
    filing_condition: str
    time_limit: TimeLimit
    closing_condition: str
    department: str
    responsibility: str


def _field(row: dict[str, str], column: str, line: int) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InputError(f"row {line}, column {column}", "must not be empty")
    return value


def _parse_row(row: dict[str, str], line: int) -> Category:
    def where(column: str) -> str:
        return f"row {line}, column {column}"

    kind = _field(row, "kind", line)
    if kind not in KINDS:
        raise InputError(where("kind"), f"{kind!r} is not one of {', '.join(KINDS)}")
    big_code = _field(row, "big_code", line)
    if not re.fullmatch(r"[0-9]{2}", big_code):
        raise InputError(where("big_code"), f"{big_code!r} is not 2 digits")
    small_code = _field(row, "small_code", line)
    if not re.fullmatch(r"[0-9]{2,3}", small_code):
        raise InputError(where("small_code"), f"{small_code!r} is not 2-3 digits")
    code = _field(row, "code", line)
    expected = f"{_KIND_LETTER[kind]}{big_code}{small_code}"
    if code != expected:
        raise InputError(where("code"), f"{code!r} should be {expected!r} (kind+big+small)")
    raw_value = _field(row, "limit_value", line)
    if not re.fullmatch(r"[0-9]+", raw_value) or int(raw_value) <= 0:
        raise InputError(where("limit_value"), f"{raw_value!r} is not a positive integer")
    unit = _field(row, "limit_unit", line)
    if unit not in LIMIT_UNITS:
        raise InputError(where("limit_unit"), f"{unit!r} is not one of {', '.join(LIMIT_UNITS)}")
    responsibility = _field(row, "responsibility", line)
    if responsibility not in RESPONSIBILITIES:
        msg = f"{responsibility!r} is not one of {', '.join(RESPONSIBILITIES)}"
        raise InputError(where("responsibility"), msg)
    return Category(
        code=code,
        kind=kind,
        big_code=big_code,
        big_name=_field(row, "big_name", line),
        small_code=small_code,
        small_name=_field(row, "small_name", line),
        filing_condition=_field(row, "filing_condition", line),
        time_limit=TimeLimit(int(raw_value), unit),
        closing_condition=_field(row, "closing_condition", line),
        department=_field(row, "department", line),
        responsibility=responsibility,
    )


def load_categories(path: Path | str = DEFAULT_PATH) -> dict[str, Category]:
    """Read and validate a category file (UTF-8 CSV with the columns of :data:`COLUMNS`).

    Parameters
    ----------
    path
        The CSV file; defaults to the shipped tree.

    Returns
    -------
    dict
        Small classes by code, in file order.

    Raises
    ------
    InputError
        Naming ``row N, column C`` (N is the line number, the header is line 1) for an empty,
        malformed or inconsistent value, a duplicate code or a big class with two names; naming
        ``columns`` when the header lacks a column.
    """
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError("columns", f"missing {', '.join(missing)}")
        categories: dict[str, Category] = {}
        big_names: dict[tuple[str, str], str] = {}
        for line, row in enumerate(reader, start=2):
            category = _parse_row(row, line)
            if category.code in categories:
                raise InputError(f"row {line}, column code", f"duplicate code {category.code!r}")
            key = (category.kind, category.big_code)
            known = big_names.setdefault(key, category.big_name)
            if known != category.big_name:
                msg = f"big class {category.big_code} is already named {known!r}"
                raise InputError(f"row {line}, column big_name", msg)
            categories[category.code] = category
    if not categories:
        raise InputError("rows", "the category file has no rows")
    return categories


@lru_cache(maxsize=1)
def default_categories() -> dict[str, Category]:
    """Return the shipped category tree (read once per process)."""
    return load_categories(DEFAULT_PATH)


def big_classes(categories: dict[str, Category]) -> dict[tuple[str, str], str]:
    """Return the big classes of a tree: ``{(kind, big_code): big_name}`` in file order."""
    return {(c.kind, c.big_code): c.big_name for c in categories.values()}


def get_category(code: str, categories: dict[str, Category] | None = None) -> Category:
    """Return the small class ``code`` of ``categories`` (default: the shipped tree).

    Raises
    ------
    InputError
        Naming ``category_code`` when the code is not in the tree.
    """
    tree = default_categories() if categories is None else categories
    try:
        return tree[code]
    except KeyError:
        raise InputError("category_code", f"unknown category {code!r}") from None
