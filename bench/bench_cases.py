"""Case deadlines for 1,000,000 cases and closed-loop indicators over 1,000,000 cases.

Run: ``.venv/bin/python -m bench.bench_cases [--cases N] [--grids N] [--repeats N] [--no-append]``.

1. Deadlines: ``gis.cases.deadlines.deadlines`` (cumulative working-time tables +
   ``numpy.searchsorted``) for N seeded dispatch instants spread over 2026, each with the time
   limit of a random small class of the shipped category tree (all four units). Anchor: a plain
   per-case Python implementation that walks day by day over the office intervals, asking the
   ``holidays`` package (China, with its weekend workdays) whether each day is a working day;
   it runs on a 10,000-case sample (extrapolated to N), and its answers must equal ours.
2. Indicators: a throwaway PostGIS cluster receives 10,000 grids (100 communities, one worker
   per grid, 2 stairwells of households per grid) and N cases filed over 2026 Q2 with their full
   transition history (file, dispatch, accept, feedback, check, close; 3 % returned and
   re-dispatched, 5 % extended, 4 % reworked, 2 % parked, 1 % voided, 8 % left open), loaded by
   COPY. ``gis.cases.indicators.indicators`` (one set-based SQL query) per grid for the quarter
   is timed against pandas computing the same figures from a full read of both tables
   (``COPY ... TO STDOUT`` + ``pandas.read_csv``, the fastest full read); both results must agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import psycopg
import sqlalchemy

from bench.common import record_section
from gis.cases.calendar import WorkingCalendar
from gis.cases.categories import default_categories
from gis.cases.deadlines import deadlines
from gis.cases.indicators import indicators
from gis.cluster import EmbeddedCluster
from gis.db import make_engine, migrate

SEED = 20_261_122
TZ = dt.timezone(dt.timedelta(hours=8))
OFFICE = ((8 * 3600 + 1800, 12 * 3600), (13 * 3600 + 1800, 17 * 3600 + 1800))
Q2 = (dt.datetime(2026, 4, 1, tzinfo=TZ), dt.datetime(2026, 7, 1, tzinfo=TZ))
MINUTE = 60


# ----------------------------------------------------------------------------- deadlines


def naive_deadline(start: dt.datetime, value: int, unit: str, workday: set[dt.date]) -> int:
    """Walk day by day; ``workday`` holds the working days (from the holidays package)."""
    if unit == "urgent_hours":
        return int(start.timestamp()) + value * 3600
    if unit == "calendar_days":
        return int(start.timestamp()) + value * 86_400
    intervals = OFFICE if unit == "working_hours" else ((0, 86_400),)
    remaining = value * (3600 if unit == "working_hours" else 86_400)
    day = start.date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)
    now = int(start.timestamp())
    while True:
        base = int(midnight.timestamp())
        if day in workday:
            for a, b in intervals:
                begin, end = max(now, base + a), base + b
                if begin < end:
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
        day += dt.timedelta(days=1)
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)


def library_workdays(years: range) -> set[dt.date]:
    cn = holidays.country_holidays("CN", years=years)
    days = set()
    d = dt.date(years.start, 1, 1)
    while d.year < years.stop:
        if (d.weekday() < 5 and d not in cn) or d in cn.weekend_workdays:
            days.add(d)
        d += dt.timedelta(days=1)
    return days


def bench_deadlines(n: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    tree = list(default_categories().values())
    pick = rng.integers(0, len(tree), n)
    units = np.array([c.time_limit.unit for c in tree])[pick]
    values = np.array([c.time_limit.value for c in tree])[pick]
    year0 = np.datetime64("2026-01-01T00:00:00") - np.timedelta64(8, "h")
    starts = year0 + rng.integers(0, 365 * 86_400, n).astype("timedelta64[s]")

    started = time.perf_counter()
    calendar = WorkingCalendar(2025, 2028)
    build_s = time.perf_counter() - started
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        ours = deadlines(starts, calendar, values=values, units=units)
        timings.append(time.perf_counter() - started)

    sample = min(10_000, n)
    workday = library_workdays(range(2025, 2029))
    started = time.perf_counter()
    anchor = [
        naive_deadline(dt.datetime.fromtimestamp(int(s), tz=TZ), int(v), str(u), workday)
        for s, v, u in zip(
            starts[:sample].astype(np.int64), values[:sample], units[:sample], strict=True
        )
    ]
    anchor_s = time.perf_counter() - started
    if not np.array_equal(np.array(anchor), ours[:sample].astype(np.int64)):
        msg = "deadlines differ from the day-by-day anchor"
        raise RuntimeError(msg)
    return {
        "build_s": build_s,
        "ours_s": statistics.median(timings),
        "anchor_sample_s": anchor_s,
        "anchor_s": anchor_s * n / sample,
        "sample": sample,
        "units": {u: int((units == u).sum()) for u in np.unique(units)},
    }


# ----------------------------------------------------------------------------- indicators


def iso(seconds: np.ndarray) -> np.ndarray:
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return np.where(seconds == np.iinfo(np.int64).min, "", np.char.add(text, "+00"))


NULL = np.iinfo(np.int64).min


def synthetic_cases(
    n: int, grids: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (cases, transitions) frames consistent with the workflow."""
    tree = list(default_categories().values())
    calendar = WorkingCalendar(2025, 2028)
    pick = rng.integers(0, len(tree), n)
    codes = np.array([c.code for c in tree])[pick]
    units = np.array([c.time_limit.unit for c in tree])[pick]
    values = np.array([c.time_limit.value for c in tree])[pick]
    departments = np.array([c.department for c in tree])[pick]
    q0 = int(Q2[0].timestamp())
    filed = q0 + rng.integers(-5 * 86_400, 91 * 86_400 - 3 * 86_400, n)
    u = rng.random(n)
    voided = u < 0.01
    returned = (u >= 0.01) & (u < 0.04)
    fate = rng.random(n)
    parked = ~voided & (fate < 0.02)
    open_ = ~voided & ~parked & (fate >= 0.02) & (fate < 0.10)
    extended = ~voided & (rng.random(n) < 0.05)
    reworked = ~voided & ~parked & ~open_ & (rng.random(n) < 0.04)
    closed = ~voided & ~parked & ~open_

    dispatch1 = filed + 10 * MINUTE
    back = dispatch1 + 30 * MINUTE
    dispatched = np.where(returned, dispatch1 + 60 * MINUTE, dispatch1)
    due1 = deadlines(dispatched, calendar, values=values, units=units).astype(np.int64)
    accept = dispatched + 5 * MINUTE
    request = accept + 10 * MINUTE
    approve = request + 10 * MINUTE
    due = np.where(
        extended, deadlines(due1, calendar, values=values, units=units).astype(np.int64), due1
    )
    park = np.where(extended, approve, accept) + 30 * MINUTE
    span = (due - dispatched).astype(np.float64)
    feedback = np.maximum(
        dispatched + (span * rng.uniform(0.2, 1.15, n)).astype(np.int64),
        approve + 10 * MINUTE,
    )
    check = feedback + 10 * MINUTE
    rework = check + 10 * MINUTE
    feedback2 = rework + 60 * MINUTE
    check2 = feedback2 + 10 * MINUTE
    close = np.where(reworked, check2, check) + 10 * MINUTE
    live = ~voided

    status = np.full(n, "closed", dtype=object)
    status[voided], status[parked], status[open_] = "voided", "parked", "handling"
    cases = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "category_code": codes,
            "geom": "SRID=4326;POINT(116.3 39.9)",
            "status": status,
            "reported_at": iso(filed - 10 * MINUTE),
            "grid_id": rng.integers(1, grids + 1, n),
            "filed_at": iso(filed),
            "dispatched_at": iso(np.where(live, dispatched, NULL)),
            "deadline": iso(np.where(live, due, NULL)),
            "closed_at": iso(np.where(closed, close, NULL)),
            "limit_value": pd.array(np.where(live, values, 0), dtype="Int64"),
            "limit_unit": np.where(live, units, ""),
            "department": np.where(live, departments, ""),
            "version": 1,
        }
    )
    cases["rework_count"] = reworked.astype(np.int64)
    cases["extension_count"] = extended.astype(np.int64)
    cases.loc[~live, "limit_value"] = pd.NA
    cases["worker_id"] = cases["grid_id"]
    ids = cases["id"].to_numpy()
    steps = [
        (np.ones(n, bool), "file", "reported", "filed", filed, "staff", ""),
        (voided, "void", "filed", "voided", filed + 5 * MINUTE, "staff", "重复"),
        (returned, "dispatch", "filed", "dispatched", dispatch1, "staff", ""),
        (returned, "return", "dispatched", "filed", back, "department", "非本单位职责"),
        (live, "dispatch", "filed", "dispatched", dispatched, "staff", ""),
        (live, "accept", "dispatched", "handling", accept, "department", ""),
        (
            extended,
            "request_extension",
            "handling",
            "extension_requested",
            request,
            "department",
            "延期",
        ),
        (extended, "approve_extension", "extension_requested", "handling", approve, "staff", ""),
        (parked, "park", "handling", "parked", park, "staff", "挂账"),
        (closed, "feedback", "handling", "feedback", feedback, "department", ""),
        (closed, "check", "feedback", "checking", check, "staff", ""),
        (reworked, "rework", "checking", "handling", rework, "worker", "返工"),
        (reworked, "feedback", "handling", "feedback", feedback2, "department", ""),
        (reworked, "check", "feedback", "checking", check2, "staff", ""),
        (closed, "close", "checking", "closed", close, "staff", ""),
    ]
    seq = np.zeros(n, dtype=np.int64)
    frames = []
    for mask, action, src, dst, at, role, reason in steps:
        seq[mask] += 1
        receiver = departments[mask] if action == "dispatch" else ""
        detail: object = "{}"
        if action == "return":  # names the dispatch it sends back, as the workflow does
            detail = (
                '{"dispatch_seq": 2, "dispatched_at": "'
                + pd.Series(iso(dispatch1[mask]))
                + '", "department": "'
                + departments[mask]
                + '"}'
            ).to_numpy()
        frames.append(
            pd.DataFrame(
                {
                    "case_id": ids[mask],
                    "seq": seq[mask],
                    "action": action,
                    "actor": role,
                    "actor_role": role,
                    "at": iso(at[mask]),
                    "from_state": src,
                    "to_state": dst,
                    "reason": reason,
                    "receiver": receiver,
                    "detail": detail,
                }
            )
        )
    cases["version"] = seq + 1
    return cases, pd.concat(frames, ignore_index=True)


def copy_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    columns = ", ".join(frame.columns)
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


def load(url: str, cases: pd.DataFrame, transitions: pd.DataFrame, grids: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute("INSERT INTO subdistrict (id, code, name) VALUES (1, '110108001', '八角')")
        conn.execute(
            "INSERT INTO community (id, code, name, subdistrict_id) SELECT i,"
            " '110108001' || lpad(i::text, 3, '0'), 'c' || i, 1 FROM generate_series(1, 100) i"
        )
        conn.execute(
            "INSERT INTO grid_worker (id, name) SELECT i, 'w' || i"
            " FROM generate_series(1, %(g)s) i",
            {"g": grids},
        )
        conn.execute(
            "INSERT INTO grid (id, code, kind, community_id, worker_id, geom) SELECT i,"
            " '110108001' || lpad((1 + (i - 1) %% 100)::text, 3, '0')"
            " || lpad(((i - 1) / 100 + 1)::text, 3, '0'), 'service', 1 + (i - 1) %% 100, i,"
            " ST_Multi(ST_MakeEnvelope(i * 0.001, 0, i * 0.001 + 0.001, 0.001, 4326))"
            " FROM generate_series(1, %(g)s) i",
            {"g": grids},
        )
        conn.execute(
            "INSERT INTO building (id, source, source_id, footprint, area_m2, grid_id) SELECT i,"
            " 'bench', i::text, ST_Multi(ST_MakeEnvelope(i * 0.001, 0, i * 0.001 + 0.0001,"
            " 0.0001, 4326)), 100, i FROM generate_series(1, %(g)s) i",
            {"g": grids},
        )
        conn.execute(
            "INSERT INTO stairwell (building_id, unit_no, entrance, households, residents,"
            " elderly, estimated, source) SELECT b, u, ST_Point(b * 0.001, 0, 4326),"
            " 100 + (b * 7 + u * 13) %% 200, 250, 40, true, 'bench'"
            " FROM generate_series(1, %(g)s) b, generate_series(1, 2) u",
            {"g": grids},
        )
        # Bulk load: check the foreign key and build the secondary index once, after COPY,
        # instead of row by row; the schema is the migrated one again afterwards.
        conn.execute("ALTER TABLE case_transition DROP CONSTRAINT case_transition_case_id_fkey")
        conn.execute("DROP INDEX ix_case_transition_action_at")
        copy_frame(conn, "cases", cases)
        copy_frame(conn, "case_transition", transitions)
        conn.execute(
            "ALTER TABLE case_transition ADD CONSTRAINT case_transition_case_id_fkey"
            " FOREIGN KEY (case_id) REFERENCES cases (id) ON DELETE RESTRICT"
        )
        conn.execute("CREATE INDEX ix_case_transition_action_at ON case_transition (action, at)")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def pandas_indicators(url: str) -> tuple[pd.DataFrame, float, float]:
    """Full read of both tables, then the same definitions in pandas, per grid code."""
    started = time.perf_counter()
    frames = {}
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for name, query in (
            (
                "cases",
                "SELECT c.id, g.code, c.status, c.filed_at, c.deadline, c.closed_at"
                " FROM cases c LEFT JOIN grid g ON g.id = c.grid_id",
            ),
            ("tr", "SELECT case_id, seq, action, at FROM case_transition"),
            (
                "hh",
                "SELECT g.code, s.households FROM stairwell s JOIN building b"
                " ON b.id = s.building_id JOIN grid g ON g.id = b.grid_id",
            ),
        ):
            buffer = io.BytesIO()
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)") as copy:
                for block in copy:
                    buffer.write(block)
            buffer.seek(0)
            frames[name] = pd.read_csv(buffer, dtype={"code": str})
    read_s = time.perf_counter() - started

    started = time.perf_counter()
    cases, tr, hh = frames["cases"], frames["tr"], frames["hh"]
    start, end = (pd.Timestamp(x) for x in Q2)
    for column in ("filed_at", "deadline", "closed_at"):
        cases[column] = pd.to_datetime(cases[column], utc=True, format="ISO8601")
    tr["at"] = pd.to_datetime(tr["at"], utc=True, format="ISO8601")
    filed = cases["filed_at"].ge(start) & cases["filed_at"].lt(end)
    due = (
        cases["deadline"].ge(start)
        & cases["deadline"].lt(end)
        & ~cases["status"].isin(["voided", "parked"])
    )
    closed = due & cases["closed_at"].lt(end)
    on_time = closed & cases["closed_at"].le(cases["deadline"])
    reworked_ids = tr.loc[tr["action"].eq("rework"), "case_id"].unique()
    extended_ids = tr.loc[tr["action"].eq("approve_extension"), "case_id"].unique()
    reworked = due & cases["id"].isin(reworked_ids)
    extended = due & cases["id"].isin(extended_ids)
    per_case = (
        pd.DataFrame(
            {
                "code": cases["code"],
                "filed": filed,
                "due": due,
                "closed": closed,
                "closed_on_time": on_time,
                "reworked": reworked,
                "extended": extended,
            }
        )
        .groupby("code")
        .sum()
    )
    flow = tr[tr["action"].isin(["dispatch", "return"])].sort_values(["case_id", "seq"])
    nxt = flow.groupby("case_id")["action"].shift(-1)
    disp = flow[flow["action"].eq("dispatch") & flow["at"].ge(start) & flow["at"].lt(end)]
    disp = disp.assign(returned=nxt.loc[disp.index].eq("return"))
    disp = disp.merge(cases[["id", "code"]], left_on="case_id", right_on="id")
    dispatch = disp.groupby("code").agg(
        dispatches=("returned", "size"), returned_dispatches=("returned", "sum")
    )
    households = hh.groupby("code")["households"].sum()
    result = per_case.join(dispatch, how="outer").fillna(0).astype(np.int64)
    result["households"] = households.reindex(result.index)
    active = result[["filed", "due", "dispatches"]].sum(axis=1) > 0
    result = result[active]
    result["closure_rate"] = result["closed"] / result["due"]
    result["on_time_rate"] = result["closed_on_time"] / result["due"]
    result["correct_dispatch_rate"] = (
        result["dispatches"] - result["returned_dispatches"]
    ) / result["dispatches"]
    result["incidents_per_1000_households"] = result["filed"] * 1000 / result["households"]
    compute_s = time.perf_counter() - started
    return result, read_s, compute_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--grids", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the cluster (prints its home)")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)

    dl = bench_deadlines(args.cases, args.repeats, rng)
    print(f"deadlines: ours {dl['ours_s']:.2f} s, anchor {dl['anchor_s']:.1f} s (extrapolated)")

    cases, transitions = synthetic_cases(args.cases, args.grids, rng)
    print(f"generated {len(cases):,} cases, {len(transitions):,} transitions")
    home = Path(tempfile.mkdtemp(prefix="wangge-bench-"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home)
    try:
        cluster.start()
        url = cluster.url()
        migrate(url)
        load_s = load(url, cases, transitions, args.grids)
        print(f"loaded in {load_s:.1f} s")
        engine = make_engine(url, pool_size=1)
        sql_times = []
        for _ in range(args.repeats):
            with engine.connect() as conn:
                started = time.perf_counter()
                rows = indicators(conn, start=Q2[0], end=Q2[1], group_by=("grid",))
                sql_times.append(time.perf_counter() - started)
        with engine.connect() as conn:
            started = time.perf_counter()
            by_community = indicators(conn, start=Q2[0], end=Q2[1], group_by=("community",))
            community_s = time.perf_counter() - started
        engine.dispose()
        reference, read_s, compute_s = pandas_indicators(url)
    finally:
        if args.keep:
            print(f"cluster kept: {home} ({cluster.url()})")
            cluster.stop()
        else:
            cluster.destroy()

    ours = pd.DataFrame(
        [
            {
                "code": r.key["grid"],
                "filed": r.filed,
                "due": r.due,
                "closed": r.closed,
                "closed_on_time": r.closed_on_time,
                "reworked": r.reworked,
                "extended": r.extended,
                "dispatches": r.dispatches,
                "returned_dispatches": r.returned_dispatches,
                "households": r.households,
            }
            for r in rows
        ]
    ).set_index("code")
    columns = list(ours.columns)
    expected = reference[columns].sort_index().astype(ours.dtypes.to_dict())
    if not ours.sort_index().equals(expected):
        diff = ours.sort_index().compare(expected) if ours.index.equals(expected.index) else None
        msg = f"SQL indicators differ from pandas:\n{diff}\n{ours.shape} {expected.shape}"
        raise RuntimeError(msg)
    sql_s = statistics.median(sql_times)
    total = ours.sum()
    pandas_s = read_s + compute_s
    lines = [
        "",
        "## Case deadlines and closed-loop indicators (`bench.bench_cases`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.2f} on a machine shared with other work; numpy "
        f"{np.__version__}, pandas {pd.__version__}, holidays {holidays.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}; "
        f"median of {args.repeats} runs.",
        "",
        f"Deadlines for {args.cases:,} seeded dispatch instants over 2026 (units: "
        + ", ".join(f"{k} {v:,}" for k, v in dl["units"].items())
        + ").",
        "",
        "| measured | seconds |",
        "|---|---:|",
        f"| `deadlines()` vectorised (calendar 2025-2028 built once in {dl['build_s']:.2f} s) "
        f"| {dl['ours_s']:.2f} |",
        f"| day-by-day Python + `holidays` anchor, {dl['sample']:,} cases "
        f"| {dl['anchor_sample_s']:.2f} |",
        f"| anchor extrapolated to {args.cases:,} | {dl['anchor_s']:.0f} |",
        "",
        f"Anchor / ours: ×{dl['anchor_s'] / dl['ours_s']:.0f}; the sample's deadlines are equal "
        f"to the second. Target ≤ 10 s: {'met' if dl['ours_s'] <= 10 else 'NOT met'}.",
        "",
        f"Indicators for 2026 Q2 over {args.cases:,} cases, {len(transitions):,} transitions, "
        f"{args.grids:,} grids (embedded PostGIS cluster, COPY load with VACUUM ANALYZE "
        f"{load_s:.0f} s). Quarter totals: filed {total['filed']:,}, due {total['due']:,}, "
        f"closed {total['closed']:,}, on time {total['closed_on_time']:,}, dispatches "
        f"{total['dispatches']:,} ({total['returned_dispatches']:,} returned).",
        "",
        "| measured | seconds |",
        "|---|---:|",
        f"| `indicators(group_by=('grid',))`, one SQL query, {len(rows):,} rows | {sql_s:.2f} |",
        f"| same, `group_by=('community',)`, {len(by_community)} rows | {community_s:.2f} |",
        f"| pandas: full read of cases + transitions (COPY → read_csv) | {read_s:.2f} |",
        f"| pandas: computing the same per-grid figures | {compute_s:.2f} |",
        f"| pandas total | {pandas_s:.2f} |",
        "",
        f"pandas total / SQL: ×{pandas_s / sql_s:.1f} (compute alone ×{compute_s / sql_s:.1f}); "
        f"both give identical per-grid counts. Target ≤ 2 s: "
        f"{'met' if sql_s <= 2 else 'NOT met'}.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_append:
        record_section(section)


if __name__ == "__main__":
    main()
