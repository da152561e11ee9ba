"""The working calendar of a command centre: office hours, weekends, holidays, make-up days.

Working days are Monday to Friday, minus Chinese public holidays and substituted days off, plus
make-up workdays (调休) on weekends. The holidays come from the PyPI ``holidays`` package
(``holidays.country_holidays("CN")`` and its list of weekend workdays); a small per-year TOML file
under ``gis/resources/calendar/`` overrides it with the State Council's published schedule (or
adds what the library does not know yet).

Clocks are vectorised: instants are ``int64`` seconds since the Unix epoch (UTC). For each clock
(office hours, or whole working days) the calendar keeps the cumulative working seconds at the
start of every local day of its years, so "working time up to t" is one table look-up plus the
part of t's day, and its inverse is one ``numpy.searchsorted``.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.errors import InputError

DEFAULT_OVERRIDES = Path(__file__).resolve().parent.parent / "resources" / "calendar"
DAY = 86_400

Seconds = npt.NDArray[np.int64]


class CalendarSettings(BaseSettings):
    """Working-calendar defaults (cfg), from ``WANGGE_CALENDAR_*`` environment variables.

    ``office_hours`` is a comma-separated list of local ``HH:MM-HH:MM`` intervals.
    """

    model_config = SettingsConfigDict(env_prefix="WANGGE_CALENDAR_", extra="ignore")

    timezone: str = "Asia/Shanghai"
    office_hours: str = "08:30-12:00,13:30-17:30"
    first_year: int = Field(default=2020, ge=1990, le=2100)
    last_year: int = Field(default=2030, ge=1990, le=2100)
    overrides: Path = DEFAULT_OVERRIDES


def parse_office_hours(text: str) -> tuple[tuple[int, int], ...]:
    """Parse ``"08:30-12:00,13:30-17:30"`` into seconds after local midnight.

    Raises
    ------
    InputError
        Naming ``office_hours`` for a malformed, empty, reversed or overlapping interval.
    """
    intervals: list[tuple[int, int]] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", part)
        if not match:
            raise InputError("office_hours", f"{part.strip()!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if m1 > 59 or m2 > 59 or not 0 <= start < end <= DAY:
            raise InputError("office_hours", f"{part.strip()!r} is not a forward interval")
        if intervals and start < intervals[-1][1]:
            raise InputError("office_hours", "intervals must be in order and not overlap")
        intervals.append((start, end))
    return tuple(intervals)


@dataclass(frozen=True, slots=True)
class YearOverride:
    """The override file of one year: forced days off, forced workdays, provenance."""

    year: int
    status: str
    source: str
    off: frozenset[dt.date]
    work: frozenset[dt.date]


def load_override(path: Path) -> YearOverride:
    """Read one year's override TOML (``year``, ``status``, ``source``, ``off``, ``work``).

    Raises
    ------
    InputError
        Naming the file and key for a missing key, a date outside the year or a date both off
        and work.
    """
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    try:
        year = int(data["year"])
        off = frozenset(data.get("off", []))
        work = frozenset(data.get("work", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path.name}: year", f"missing or malformed: {exc}") from None
    for key, days in (("off", off), ("work", work)):
        for day in days:
            if not isinstance(day, dt.date) or day.year != year:
                raise InputError(f"{path.name}: {key}", f"{day!r} is not a date of {year}")
    both = off & work
    if both:
        raise InputError(f"{path.name}: work", f"{sorted(both)[0]} is also listed as off")
    return YearOverride(year, str(data.get("status", "")), str(data.get("source", "")), off, work)


class _Clock:
    """Cumulative working seconds over a run of local days with fixed daily intervals."""

    def __init__(self, workday: npt.NDArray[np.bool_], intervals: tuple[tuple[int, int], ...]):
        self.starts = np.array([a for a, _ in intervals], dtype=np.int64)
        self.ends = np.array([b for _, b in intervals], dtype=np.int64)
        lengths = self.ends - self.starts
        # working seconds of the intervals before interval k, within one day
        self.before = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        per_day = np.where(workday, self.before[-1], 0).astype(np.int64)
        self.cum = np.concatenate([[0], np.cumsum(per_day)]).astype(np.int64)
        self.workday = workday

    def forward(self, day: Seconds, sec: Seconds) -> Seconds:
        """Working seconds from the table start to local day ``day``, second ``sec``."""
        within = np.zeros(day.shape, dtype=np.int64)
        for a, b in zip(self.starts.tolist(), self.ends.tolist(), strict=True):
            within += np.clip(sec - a, 0, b - a)
        return self.cum[day] + np.where(self.workday[day], within, 0)

    def inverse(self, target: Seconds) -> tuple[Seconds, Seconds]:
        """Earliest (local day, second) whose working time reaches ``target`` (> 0)."""
        day = np.searchsorted(self.cum, target, side="left").astype(np.int64) - 1
        if target.size and (day.min() < 0 or day.max() >= self.workday.size):
            msg = "the deadline falls outside the calendar's years"
            raise InputError("deadline", msg)
        rest = target - self.cum[day]
        k = np.searchsorted(self.before, rest, side="left").astype(np.int64) - 1
        return day, self.starts[k] + rest - self.before[k]


class WorkingCalendar:
    """Working days and office hours of ``first_year``..``last_year`` in one time zone.

    Parameters
    ----------
    first_year, last_year
        Years covered (inclusive); instants outside them raise :class:`InputError`.
    office_hours
        Local office intervals in seconds after midnight (see :func:`parse_office_hours`).
    timezone
        IANA zone of the command centre; it must keep one UTC offset over the years covered
        (Asia/Shanghai has had no daylight saving time since 1991).
    overrides
        Directory of ``YYYY.toml`` override files (see :func:`load_override`).

    Raises
    ------
    InputError
        For an inverted year range or a zone whose offset changes within the years.
    """

    def __init__(
        self,
        first_year: int,
        last_year: int,
        *,
        office_hours: tuple[tuple[int, int], ...] = ((30_600, 43_200), (48_600, 63_000)),
        timezone: str = "Asia/Shanghai",
        overrides: Path | None = DEFAULT_OVERRIDES,
    ) -> None:
        if last_year < first_year:
            raise InputError("last_year", "must not be before first_year")
        self.first_year, self.last_year = first_year, last_year
        self.zone = ZoneInfo(timezone)
        self.office_hours = office_hours
        first = dt.date(first_year, 1, 1)
        self.days = np.arange(
            np.datetime64(first, "D"), np.datetime64(dt.date(last_year + 1, 1, 1), "D")
        )
        offsets = {
            self.zone.utcoffset(dt.datetime(y, m, 1, 12))
            for y in range(first_year, last_year + 1)
            for m in (1, 7)
        }
        if len(offsets) != 1:
            raise InputError("timezone", f"{timezone} changes its UTC offset in these years")
        offset = offsets.pop()
        assert offset is not None
        self.offset = int(offset.total_seconds())
        # local midnight of the first day, in UTC epoch seconds
        self.origin = int(np.datetime64(first, "s").astype(np.int64)) - self.offset
        self.overrides = self._load_overrides(overrides)
        self.workday = self._workdays()
        self.office = _Clock(self.workday, office_hours)
        self.whole_days = _Clock(self.workday, ((0, DAY),))

    @classmethod
    def from_settings(cls, settings: CalendarSettings | None = None) -> WorkingCalendar:
        """Build the calendar described by ``settings`` (default: the environment)."""
        s = settings or CalendarSettings()
        return cls(
            s.first_year,
            s.last_year,
            office_hours=parse_office_hours(s.office_hours),
            timezone=s.timezone,
            overrides=s.overrides,
        )

    def _load_overrides(self, directory: Path | None) -> dict[int, YearOverride]:
        found: dict[int, YearOverride] = {}
        if directory is None:
            return found
        for path in sorted(directory.glob("*.toml")):
            override = load_override(path)
            if self.first_year <= override.year <= self.last_year:
                found[override.year] = override
        return found

    def _workdays(self) -> npt.NDArray[np.bool_]:
        years = range(self.first_year, self.last_year + 1)
        cn = holidays.country_holidays("CN", years=years)
        off = {d for d in cn if self.first_year <= d.year <= self.last_year}
        work = {d for d in getattr(cn, "weekend_workdays", set()) if d.year in years}
        for override in self.overrides.values():
            off = (off - override.work) | override.off
            work = (work - override.off) | override.work
        weekday = ((self.days.astype(np.int64) + 3) % 7) < 5  # 1970-01-01 was a Thursday
        off_mask = np.isin(self.days, np.array(sorted(off), dtype="datetime64[D]"))
        work_mask = np.isin(self.days, np.array(sorted(work), dtype="datetime64[D]"))
        return np.asarray((weekday & ~off_mask) | work_mask, dtype=np.bool_)

    def is_workday(self, day: dt.date) -> bool:
        """Whether ``day`` (a local date inside the calendar's years) is a working day."""
        index = (np.datetime64(day, "D") - self.days[0]).astype(np.int64)
        if not 0 <= index < self.days.size:
            raise InputError("day", f"{day} is outside {self.first_year}-{self.last_year}")
        return bool(self.workday[index])

    def split(self, instants: Seconds, *, field: str = "at") -> tuple[Seconds, Seconds]:
        """Local day index and second of day of UTC epoch seconds.

        Raises
        ------
        InputError
            Naming ``field`` when an instant falls outside the calendar's years.
        """
        local = np.asarray(instants, dtype=np.int64) - self.origin
        day = local // DAY
        if local.size and (day.min() < 0 or day.max() >= self.days.size):
            msg = f"outside the calendar years {self.first_year}-{self.last_year}"
            raise InputError(field, msg)
        return day, local - day * DAY

    def join(self, day: Seconds, sec: Seconds) -> Seconds:
        """Inverse of :meth:`split`: UTC epoch seconds."""
        return self.origin + day * DAY + sec

    def to_datetime(self, instant: int) -> dt.datetime:
        """Return an epoch second as an aware datetime in the calendar's zone."""
        return dt.datetime.fromtimestamp(instant, tz=self.zone)


def epoch_seconds(moment: dt.datetime, *, field: str = "at") -> int:
    """Seconds since the Unix epoch of an aware datetime (sub-seconds dropped).

    Raises
    ------
    InputError
        Naming ``field`` when ``moment`` is naive (its time zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(field, "a time zone is required")
    return int(moment.timestamp() // 1)
