"""Resolve the addresses staff type ("八角北路社区 12号楼3单元") to a stairwell and a point.

Accepted forms
--------------
``[community] building [unit] [anything else]``, spaces optional:

- community: a community name, with or without its "社区" suffix; may be left out when the
  building number is unique (in the subdistrict given, else among all communities);
- building: digits (full-width digits are normalised), an optional latin letter ("12A"), or a
  Chinese numeral up to 99 ("三"), followed by 号楼, 号, 栋, 幢, 座 or 楼;
- unit: digits or a Chinese numeral followed by 单元, 楼门 or 门;
- the rest (room "301室") is ignored.

Building numbers come from ``building.number`` (parsed from OSM names at import, the building's
community from ``building.community_id`` or else the community covering the footprint) and from
the address table ``building_address`` (``wangge import addresses``), which wins on conflict.

Answers are WGS84 degrees: the stairwell entrance when a unit is given (or the building has a
single stairwell), otherwise a point on the building's footprint.
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, text

from gis.errors import InputError

__all__ = [
    "AddressBook",
    "AddressMatch",
    "AmbiguousAddressError",
    "ParsedAddress",
    "UnknownAddressError",
    "import_address_table",
    "parse_address",
    "resolve_address",
]

_NUMERAL = "零〇一二两三四五六七八九十"
_CN = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_CN.update({"六": 6, "七": 7, "八": 8, "九": 9})
_ADDRESS = re.compile(
    rf"^(?P<community>.*?)\s*(?P<building>[0-9]+[A-Z]?|[A-Z]|[{_NUMERAL}]+)\s*"
    r"(?:号楼|号|栋|幢|座|楼)"
    rf"\s*(?:(?P<unit>[0-9]+|[{_NUMERAL}]+)\s*(?:单元|楼门|门))?"
    r"(?P<rest>.*)$"
)
_COMMUNITY_SUFFIX = "社区"
SUGGESTIONS = 5


class AmbiguousAddressError(InputError):
    """The address fits several stairwells or buildings; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list[AddressMatch]) -> None:
        super().__init__("address", message)
        self.candidates = candidates


class UnknownAddressError(InputError):
    """No building fits the address; ``suggestions`` are the closest known addresses."""

    def __init__(self, message: str, suggestions: list[str]) -> None:
        super().__init__("address", message)
        self.suggestions = suggestions


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """The parts of an address text: community as typed (may be empty), numbers normalised."""

    community: str
    building: str
    unit: int | None


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """A resolved address: community, building, stairwell (when known) and WGS84 point."""

    community_id: int
    community_name: str
    building_id: int
    building_number: str
    unit_no: int | None
    stairwell_id: int | None
    lon: float
    lat: float

    @property
    def label(self) -> str:
        """The address written the canonical way ("八角北路社区 12号楼3单元")."""
        unit = f"{self.unit_no}单元" if self.unit_no is not None else ""
        return f"{self.community_name} {self.building_number}号楼{unit}"


def _number(token: str) -> int | None:
    if token.isdigit():
        return int(token)
    if "十" in token:
        tens, _, units = token.partition("十")
        high = _CN.get(tens, -1) if tens else 1
        low = _CN.get(units, -1) if units else 0
        return None if high < 0 or low < 0 or "十" in units else high * 10 + low
    return _CN[token] if len(token) == 1 and token in _CN else None


def normalise_building_number(token: str) -> str | None:
    """Return a building number in canonical form ("１２" → "12", "三" → "3", "12a" → "12A")."""
    value = unicodedata.normalize("NFKC", token).strip().upper()
    if not value:
        return None
    match = re.fullmatch(r"([0-9]+)([A-Z]?)", value)
    if match:
        return f"{int(match.group(1))}{match.group(2)}"
    if re.fullmatch(r"[A-Z]", value):
        return value
    number = _number(value)
    return None if number is None else str(number)


def _community_key(name: str) -> str:
    key = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name))
    return key.removesuffix(_COMMUNITY_SUFFIX)


def parse_address(address: object) -> ParsedAddress:
    """Split an address text into community, building number and unit number.

    Raises
    ------
    gis.errors.InputError
        Field ``address`` when it is empty or has no building number ("12号楼", "3栋", ...).
    """
    if not isinstance(address, str) or not address.strip():
        msg = "must not be empty: expected e.g. '八角北路社区 12号楼3单元'"
        raise InputError("address", msg)
    value = unicodedata.normalize("NFKC", address).strip().upper()
    match = _ADDRESS.match(value)
    building = None if match is None else normalise_building_number(match["building"])
    if match is None or building is None:
        msg = f"no building number in {address!r}: expected e.g. '八角北路社区 12号楼3单元'"
        raise UnknownAddressError(msg, [])
    unit = None if match["unit"] is None else _number(match["unit"])
    if unit is not None and unit <= 0:
        raise InputError("address", f"unit number must be positive in {address!r}")
    return ParsedAddress(community=match["community"].strip(), building=building, unit=unit)


@dataclass(frozen=True, slots=True)
class _Building:
    id: int
    community_id: int
    number: str
    lon: float
    lat: float


@dataclass
class AddressBook:
    """Communities, numbered buildings and stairwells held in memory for resolution."""

    communities: dict[int, tuple[str, int | None]]  # id -> (name, subdistrict id)
    buildings: dict[tuple[int, str], _Building]  # (community id, number) -> building
    stairwells: dict[tuple[int, int], tuple[int, float, float]]  # (building, unit) -> id, lon, lat
    units: dict[int, list[int]] = field(default_factory=dict)  # building -> unit numbers
    _by_key: dict[str, list[int]] = field(default_factory=dict)
    _by_number: dict[str, list[_Building]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for cid, (name, _) in self.communities.items():
            self._by_key.setdefault(_community_key(name), []).append(cid)
        for building in self.buildings.values():
            self._by_number.setdefault(building.number, []).append(building)
        for (building_id, unit), _ in sorted(self.stairwells.items()):
            self.units.setdefault(building_id, []).append(unit)

    @classmethod
    def load(cls, connection: Connection, *, numbers: Iterable[str] | None = None) -> AddressBook:
        """Read the book from PostGIS; ``numbers`` restricts it to those building numbers."""
        wanted = None if numbers is None else sorted(set(numbers))
        communities = {
            int(r.id): (str(r.name), None if r.subdistrict_id is None else int(r.subdistrict_id))
            for r in connection.execute(text("SELECT id, name, subdistrict_id FROM community"))
        }
        rows = connection.execute(_BUILDINGS, {"numbers": wanted}).all()
        buildings: dict[tuple[int, str], _Building] = {}
        for r in rows:
            number = normalise_building_number(str(r.number))
            if number is None or r.community_id is None:
                continue
            key = (int(r.community_id), number)
            # The address table (pick 0) wins over numbers parsed from names.
            if key not in buildings:
                buildings[key] = _Building(
                    int(r.id), int(r.community_id), number, float(r.lon), float(r.lat)
                )
        ids = sorted({b.id for b in buildings.values()})
        stairwells = {
            (int(r.building_id), int(r.unit_no)): (int(r.id), float(r.lon), float(r.lat))
            for r in connection.execute(
                text(
                    "SELECT id, building_id, unit_no, ST_X(entrance) AS lon, ST_Y(entrance) AS lat"
                    " FROM stairwell WHERE building_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        }
        return cls(communities, buildings, stairwells)

    def _match(self, building: _Building, unit: int | None) -> AddressMatch:
        name = self.communities[building.community_id][0]
        units = self.units.get(building.id, [])
        chosen = unit if unit is not None else (units[0] if len(units) == 1 else None)
        if chosen is not None and (building.id, chosen) in self.stairwells:
            sid, lon, lat = self.stairwells[(building.id, chosen)]
            return AddressMatch(
                building.community_id, name, building.id, building.number, chosen, sid, lon, lat
            )
        return AddressMatch(
            building.community_id,
            name,
            building.id,
            building.number,
            None,
            None,
            building.lon,
            building.lat,
        )

    def _communities_for(self, typed: str, address: str, subdistrict_id: int | None) -> list[int]:
        key = _community_key(typed)
        found = self._by_key.get(key, [])
        if not found:
            names = {_community_key(n): n for n, _ in self.communities.values()}
            close = difflib.get_close_matches(key, list(names), n=SUGGESTIONS, cutoff=0.4)
            msg = f"unknown community {typed!r} in {address!r}"
            raise UnknownAddressError(msg, [names[k] for k in close])
        if subdistrict_id is not None:
            found = [c for c in found if self.communities[c][1] == subdistrict_id] or found
        return found

    def resolve(self, address: object, *, subdistrict_id: int | None = None) -> AddressMatch:
        """Resolve one address text; see :func:`resolve_address`."""
        parsed = parse_address(address)
        shown = str(address).strip()
        if parsed.community:
            communities = self._communities_for(parsed.community, shown, subdistrict_id)
            hits = [
                self.buildings[(c, parsed.building)]
                for c in communities
                if (c, parsed.building) in self.buildings
            ]
        else:
            hits = list(self._by_number.get(parsed.building, []))
            if subdistrict_id is not None:
                hits = [
                    b for b in hits if self.communities[b.community_id][1] == subdistrict_id
                ] or hits
            communities = []
        if not hits:
            raise UnknownAddressError(
                f"no building {parsed.building}号楼 in {shown!r}",
                self._suggest(parsed, communities),
            )
        if len(hits) > 1:
            candidates = [self._match(b, parsed.unit) for b in hits]
            names = ", ".join(c.label for c in candidates)
            msg = f"{shown!r} fits {len(hits)} buildings ({names}): name the community"
            raise AmbiguousAddressError(msg, candidates)
        building = hits[0]
        match = self._match(building, parsed.unit)
        if parsed.unit is not None and match.stairwell_id is None:
            units = self.units.get(building.id, [])
            known = "、".join(f"{u}单元" for u in units) or "none recorded"
            msg = f"building {building.number}号楼 has no unit {parsed.unit} (units: {known})"
            suggestions = [f"{match.community_name} {building.number}号楼{u}单元" for u in units][
                :SUGGESTIONS
            ]
            raise UnknownAddressError(msg, suggestions)
        if parsed.unit is None and match.stairwell_id is None and self.units.get(building.id):
            candidates = [self._match(building, u) for u in self.units[building.id]]
            msg = f"{shown!r} has {len(candidates)} units: name the unit (单元)"
            raise AmbiguousAddressError(msg, candidates)
        return match

    def _suggest(self, parsed: ParsedAddress, communities: list[int]) -> list[str]:
        pool = [
            b for b in self.buildings.values() if not communities or b.community_id in communities
        ]
        labels = {f"{self.communities[b.community_id][0]} {b.number}号楼": b.number for b in pool}
        wanted = f"{parsed.building}号楼"
        by_number = difflib.get_close_matches(
            wanted, [f"{n}号楼" for n in labels.values()], n=SUGGESTIONS, cutoff=0.3
        )
        chosen = [label for n in by_number for label, v in labels.items() if f"{v}号楼" == n]
        return list(dict.fromkeys(chosen))[:SUGGESTIONS]


_BUILDINGS = text(
    """
    SELECT a.building_id AS id, a.community_id, a.number, 0 AS pick,
           ST_X(ST_PointOnSurface(b.footprint)) AS lon, ST_Y(ST_PointOnSurface(b.footprint)) AS lat
    FROM building_address a JOIN building b ON b.id = a.building_id
    WHERE CAST(:numbers AS text[]) IS NULL OR a.number = ANY(CAST(:numbers AS text[]))
    UNION ALL
    SELECT b.id, coalesce(b.community_id, (
               SELECT c.id FROM community c
               WHERE ST_Covers(c.geom, ST_PointOnSurface(b.footprint)) ORDER BY c.code LIMIT 1
           )) AS community_id, b.number, 1 AS pick,
           ST_X(ST_PointOnSurface(b.footprint)), ST_Y(ST_PointOnSurface(b.footprint))
    FROM building b
    WHERE b.number IS NOT NULL
      AND (CAST(:numbers AS text[]) IS NULL OR b.number = ANY(CAST(:numbers AS text[])))
    ORDER BY pick, id
    """
)


def resolve_address(
    connection: Connection, address: object, *, subdistrict_id: int | None = None
) -> AddressMatch:
    """Resolve an address text to a building, its stairwell and a WGS84 point.

    Parameters
    ----------
    connection
        An open connection to the wangge database (read only).
    address
        Text such as "八角北路社区 12号楼3单元", "八角北路 １２栋 3门" or "12号楼3单元".
    subdistrict_id
        Prefer communities of this subdistrict when the community is left out.

    Returns
    -------
    AddressMatch
        Longitude/latitude in WGS84 degrees.

    Raises
    ------
    gis.errors.InputError
        Field ``address`` when the text is empty or has no building number.
    AmbiguousAddressError
        Several buildings (or units) fit; ``candidates`` lists them.
    UnknownAddressError
        No community, building or unit fits; ``suggestions`` lists the closest (difflib).
    """
    parsed = parse_address(address)
    book = AddressBook.load(connection, numbers=[parsed.building])
    try:
        return book.resolve(address, subdistrict_id=subdistrict_id)
    except UnknownAddressError as exc:
        if exc.suggestions or not str(exc.message).startswith("no building"):
            raise
        # Suggestions need the other numbers too: read the whole book only on failure.
        full = AddressBook.load(connection)
        communities = (
            full._communities_for(parsed.community, str(address), subdistrict_id)
            if parsed.community
            else []
        )
        exc.suggestions = full._suggest(parsed, communities)
        raise


def import_address_table(connection: Connection, path: Path | str) -> tuple[int, list[str]]:
    """Load an address table CSV: ``community``, ``building_number``, ``building``.

    ``community`` is a community name (with or without "社区") or 12-digit code;
    ``building_number`` the number staff type ("12", "１２号楼"); ``building`` the building's
    database id or its ``source_id``. A row for an existing (community, number) replaces it.

    Returns
    -------
    tuple
        Rows stored and the rejected rows as ``"row N: reason"`` (header = row 1).

    Raises
    ------
    gis.errors.InputError
        Field ``columns`` when a column is missing.
    """
    stored = 0
    rejected: list[str] = []
    communities = {
        **{_community_key(str(r.name)): int(r.id) for r in connection.execute(_COMMUNITIES)},
        **{str(r.code): int(r.id) for r in connection.execute(_COMMUNITIES)},
    }
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [
            c
            for c in ("community", "building_number", "building")
            if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise InputError("columns", f"missing {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            community = communities.get(_community_key(row["community"] or ""))
            if community is None:
                community = communities.get((row["community"] or "").strip())
            number_text = re.sub(
                r"(号楼|号|栋|幢|座|楼)$", "", (row["building_number"] or "").strip()
            )
            number = normalise_building_number(number_text)
            ref = (row["building"] or "").strip()
            building = connection.execute(
                text(
                    "SELECT id FROM building WHERE source_id = :ref"
                    " OR (:ref ~ '^[0-9]{1,9}$' AND id = CAST(:ref AS integer)) ORDER BY id LIMIT 1"
                ),
                {"ref": ref},
            ).scalar()
            if community is None:
                rejected.append(f"row {line}: unknown community {row['community']!r}")
            elif number is None:
                rejected.append(f"row {line}: bad building number {row['building_number']!r}")
            elif building is None:
                rejected.append(f"row {line}: unknown building {ref!r}")
            else:
                connection.execute(
                    text(
                        "INSERT INTO building_address (community_id, number, building_id)"
                        " VALUES (:c, :n, :b) ON CONFLICT ON CONSTRAINT building_address_key"
                        " DO UPDATE SET building_id = EXCLUDED.building_id"
                    ),
                    {"c": community, "n": number, "b": int(building)},
                )
                stored += 1
    return stored, rejected


_COMMUNITIES = text("SELECT id, code, name FROM community")
