"""Grid codes: 15 digits = 6 admin + 3 subdistrict + 3 community + 3 sequence.

Beijing DB11/T 2157-2023 (also GB/T 30428.1) numbers the cells of a community west→east, then
north→south. wangge makes that reading order precise:

1. each cell is represented by its ``ST_PointOnSurface`` (a point always inside the cell),
   projected to metres (local UTM);
2. cells fall into horizontal *rows*: row ``r = floor((y_top - y) / band_m)`` where ``y_top`` is
   the northernmost representative point and ``band_m`` the row height (by default the median
   side of a square of the cells' median area, i.e. about one cell high);
3. rows are numbered north to south; inside a row cells are numbered west to east (by ``x``),
   ties broken by ``y`` descending.

Codes are stable: a cell that keeps its code keeps it when unrelated cells change; new cells take
the next free sequence numbers of the community (never reusing a number used before, including by
closed cells), in reading order among themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gis.errors import InputError

CODE_PATTERN = re.compile(r"^[0-9]{15}$")
COMMUNITY_PATTERN = re.compile(r"^[0-9]{12}$")
MAX_SEQUENCE = 999


@dataclass(frozen=True, slots=True)
class GridCode:
    """The parts of a 15-digit grid code."""

    admin: str
    subdistrict: str
    community: str
    sequence: int

    @property
    def community_code(self) -> str:
        """The 12-digit code of the community (admin + subdistrict + community)."""
        return f"{self.admin}{self.subdistrict}{self.community}"

    def __str__(self) -> str:
        return f"{self.community_code}{self.sequence:03d}"


def parse_code(code: str, *, field: str = "code") -> GridCode:
    """Split a grid code into its parts.

    Parameters
    ----------
    code : str
        A 15-digit grid code.
    field : str, optional
        Name of the offending field in the error (e.g. ``"feature 3: code"``).

    Returns
    -------
    GridCode

    Raises
    ------
    InputError
        If the code is not exactly 15 ASCII digits or its sequence is 000.
    """
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        msg = (
            "grid code must be 15 digits (6 admin + 3 subdistrict + 3 community"
            f" + 3 sequence), got {code!r}"
        )
        raise InputError(field, msg)
    sequence = int(code[12:])
    if sequence == 0:
        raise InputError(field, f"grid code {code} has sequence 000; sequences start at 001")
    return GridCode(code[:6], code[6:9], code[9:12], sequence)


def validate_code(code: str, *, community_code: str | None = None, field: str = "code") -> GridCode:
    """Check a grid code, and that it belongs to ``community_code`` when given.

    Raises
    ------
    InputError
        If the code is malformed or its first 12 digits are not ``community_code``.
    """
    parsed = parse_code(code, field=field)
    if community_code is not None and parsed.community_code != community_code:
        msg = f"grid code {code} does not start with its community code {community_code}"
        raise InputError(field, msg)
    return parsed


def make_code(community_code: str, sequence: int) -> str:
    """Build the 15-digit code of cell ``sequence`` (1-999) of a community.

    Raises
    ------
    InputError
        If the community code is not 12 digits or the sequence is outside 1-999.
    """
    if not COMMUNITY_PATTERN.fullmatch(community_code):
        raise InputError("community_code", f"must be 12 digits, got {community_code!r}")
    if not 1 <= sequence <= MAX_SEQUENCE:
        msg = f"a community holds at most {MAX_SEQUENCE} cells; sequence {sequence} is out of range"
        raise InputError("sequence", msg)
    return f"{community_code}{sequence:03d}"


def reading_order(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    band_m: float | None = None,
    areas_m2: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int64]:
    """Order cells west→east in rows taken north→south.

    Parameters
    ----------
    x, y : array_like
        Representative points of the cells in a projected CRS (metres, y to the north).
    band_m : float, optional
        Row height in metres. By default ``sqrt(median(areas_m2))`` (about one cell high) when
        areas are given, otherwise 100 m.
    areas_m2 : array_like, optional
        Cell areas in m², used for the default row height.

    Returns
    -------
    numpy.ndarray of int
        Indices of the cells in reading order.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length or ``band_m`` is not positive.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape:
        msg = "x and y must have the same length"
        raise ValueError(msg)
    if xs.size == 0:
        return np.zeros(0, dtype=np.int64)
    if band_m is None:
        if areas_m2 is not None and np.asarray(areas_m2).size:
            band_m = float(np.sqrt(np.median(np.asarray(areas_m2, dtype=float))))
        else:
            band_m = 100.0
    if not band_m > 0:
        msg = f"band_m must be positive, got {band_m}"
        raise ValueError(msg)
    rows = np.floor((ys.max() - ys) / band_m)
    # lexsort: last key is primary → row, then x, then northernmost first.
    return np.lexsort((-ys, xs, rows)).astype(np.int64)


def next_sequences(used: Iterable[int], count: int) -> list[int]:
    """Return the ``count`` smallest sequence numbers above every used one.

    Numbers are never reused, so a closed cell's code keeps naming the same place in history.

    Raises
    ------
    InputError
        If the community would exceed 999 cells.
    """
    start = max(used, default=0) + 1
    if start + count - 1 > MAX_SEQUENCE:
        msg = (
            f"a community holds at most {MAX_SEQUENCE} sequence numbers; {start + count - 1} needed"
        )
        raise InputError("sequence", msg)
    return list(range(start, start + count))


def assign_codes(
    community_code: str,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    keep: Sequence[str | None] | None = None,
    used: Iterable[int] = (),
    band_m: float | None = None,
    areas_m2: npt.ArrayLike | None = None,
) -> list[str]:
    """Give each cell of a community a code, keeping existing codes.

    Parameters
    ----------
    community_code : str
        12-digit community code.
    x, y : array_like
        Representative points of the cells (metres, projected CRS).
    keep : sequence of str or None, optional
        Per cell, the code it already has (kept as is) or ``None`` for a new cell.
    used : iterable of int, optional
        Sequence numbers already used in the community, including by closed cells.
    band_m, areas_m2 :
        Row height for :func:`reading_order`.

    Returns
    -------
    list of str
        One 15-digit code per cell, in input order.

    Raises
    ------
    InputError
        If a kept code belongs to another community, codes repeat, or 999 is exceeded.
    """
    xs = np.asarray(x, dtype=float)
    n = xs.size
    kept = list(keep) if keep is not None else [None] * n
    if len(kept) != n:
        msg = "keep must give one entry per cell"
        raise ValueError(msg)
    taken = {validate_code(c, community_code=community_code).sequence for c in kept if c}
    if len(taken) != sum(1 for c in kept if c):
        raise InputError("keep", "the same code is kept for two cells")
    order = reading_order(xs, y, band_m=band_m, areas_m2=areas_m2)
    fresh = [int(i) for i in order if kept[int(i)] is None]
    sequences = next_sequences([*used, *taken], len(fresh))
    codes: list[str] = [c if c else "" for c in kept]
    for i, seq in zip(fresh, sequences, strict=True):
        codes[i] = make_code(community_code, seq)
    return codes
