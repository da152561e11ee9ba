"""The three maps in headless Chromium on Nanjing Xinjiekou: drawn features, offline, no errors.

One server and one browser for the module; each map is visited once and the tests read that
visit. Expected counts come from SQL on the same database, independently of the page's code.
Screenshots go to ``tests/output/``.
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from gis.circles_store import facility_types
from gis.db import make_engine
from layers.catalogue import OPEN_STATUSES
from tests.browser.driver import Visit, browser, visit
from tests.browser.site import GRID_PREFIX, Site, demo_site

GRID = f"{GRID_PREFIX}005"


@pytest.fixture(scope="module")
def site(database_url: str) -> Iterator[Site]:
    with demo_site(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def demo(site: Site) -> Iterator[Engine]:
    engine = make_engine(site.database_url, pool_size=1)
    yield engine
    engine.dispose()


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


@pytest.fixture(scope="module")
def planner_type(demo: Engine) -> str:
    with demo.connect() as connection:
        return str(
            connection.execute(
                text("SELECT type FROM facility GROUP BY type ORDER BY count(*) DESC, type LIMIT 1")
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def visits(site: Site, planner_type: str) -> Iterator[dict[str, Visit]]:
    with browser() as chromium:
        yield {
            "grid": visit(
                chromium,
                f"{site.base_url}/maps/grids/{GRID}",
                layers=("grids", "facilities", "cases", "buildings", "circle"),
                shot="map_grid",
            ),
            "planner": visit(
                chromium,
                f"{site.base_url}/maps/planner?type={planner_type}&sites=2",
                layers=("coverage", "gaps", "facilities", "isochrones", "proposals"),
                shot="map_planner",
            ),
            "cases": visit(
                chromium,
                f"{site.base_url}/maps/cases?status=reported&lang=en",
                layers=("incidents", "cases"),
                shot="map_cases",
            ),
        }


def test_grid_map_draws_its_boundary_and_15_minute_circle(visits: dict[str, Visit]) -> None:
    assert visits["grid"].paths["grids"] == 1
    assert visits["grid"].paths["circle"] == 1


def test_grid_map_draws_facilities_within_1000_m(visits: dict[str, Visit], demo: Engine) -> None:
    expected = scalar(
        demo,
        "SELECT count(*) FROM facility f, grid g WHERE g.code = :code "
        "AND ST_Distance(f.geom::geography, g.geom::geography) <= 1000",
        code=GRID,
    )
    assert expected > 0
    assert visits["grid"].paths["facilities"] == expected


def test_grid_map_draws_the_grids_open_cases(visits: dict[str, Visit], demo: Engine) -> None:
    expected = scalar(
        demo,
        "SELECT count(*) FROM cases c JOIN grid g ON g.id = c.grid_id "
        "WHERE g.code = :code AND c.status = ANY(:open)",
        code=GRID,
        open=list(OPEN_STATUSES),
    )
    assert expected > 0
    assert visits["grid"].paths["cases"] == expected


def test_grid_map_draws_buildings_when_zoomed_to_the_grid(visits: dict[str, Visit]) -> None:
    drawn = visits["grid"]
    assert drawn.paths["buildings"] == drawn.counts["buildings"] > 0


def test_planner_map_draws_every_grid_and_the_types_facilities(
    visits: dict[str, Visit], demo: Engine, planner_type: str
) -> None:
    facilities = scalar(demo, "SELECT count(*) FROM facility WHERE type = :t", t=planner_type)
    drawn = visits["planner"]
    assert drawn.paths["coverage"] == scalar(demo, "SELECT count(*) FROM grid") == 9
    assert drawn.paths["facilities"] == drawn.paths["isochrones"] == facilities


def test_planner_map_draws_a_walking_isochrone_per_facility(
    visits: dict[str, Visit], demo: Engine, planner_type: str
) -> None:
    # Every facility of the type lies in the computed area: none falls back to a circle.
    walking = scalar(
        demo,
        "SELECT count(*) FROM facility f JOIN circle_area a ON ST_Intersects(a.extent, f.geom) "
        "WHERE f.type = :t",
        t=planner_type,
    )
    assert walking == scalar(demo, "SELECT count(*) FROM facility WHERE type = :t", t=planner_type)
    assert visits["planner"].paths["isochrones"] == walking > 0


def test_planner_map_marks_each_building_with_uncovered_stairwells(
    visits: dict[str, Visit], demo: Engine, planner_type: str
) -> None:
    level = facility_types()[planner_type] or 15
    uncovered = scalar(
        demo,
        "SELECT count(DISTINCT s.building_id) FROM stairwell s JOIN circle_coverage c "
        "ON c.stairwell_id = s.id WHERE c.facility_type = :t AND c.basis = 'standard' "
        "AND c.minutes = :m AND c.count = 0",
        t=planner_type,
        m=level,
    )
    assert visits["planner"].paths["gaps"] == uncovered > 0


def test_planner_map_draws_two_proposed_sites_with_the_existing_ones(
    visits: dict[str, Visit], demo: Engine, planner_type: str
) -> None:
    existing = scalar(
        demo,
        "SELECT count(*) FROM facility, (SELECT ST_Extent(g) e FROM (SELECT footprint g "
        "FROM building UNION ALL SELECT geom FROM grid) u) x "
        "WHERE type = :t AND ST_Intersects(geom, ST_SetSRID(x.e::geometry, 4326))",
        t=planner_type,
    )
    assert visits["planner"].paths["proposals"] == 2 + existing


def test_cases_map_draws_every_grid_and_clusters_the_reported_cases(
    visits: dict[str, Visit], demo: Engine
) -> None:
    reported = scalar(demo, "SELECT count(*) FROM cases WHERE status = 'reported'")
    drawn = visits["cases"]
    assert drawn.paths["incidents"] == 9
    assert drawn.counts["cases"] == reported
    # Each case is either inside a cluster (counted on its icon) or drawn alone.
    assert drawn.clustered + drawn.paths["cases"] == reported


@pytest.mark.parametrize("name", ["grid", "planner", "cases"])
def test_maps_log_no_console_error(visits: dict[str, Visit], name: str) -> None:
    assert visits[name].errors == []


@pytest.mark.parametrize("name", ["grid", "planner", "cases"])
def test_maps_request_nothing_beyond_localhost(visits: dict[str, Visit], name: str) -> None:
    assert visits[name].foreign == []


@pytest.mark.parametrize("name", ["grid", "planner", "cases"])
def test_maps_leave_a_screenshot(visits: dict[str, Visit], name: str) -> None:
    shot = visits[name].screenshot
    assert shot is not None and shot.read_bytes().startswith(b"\x89PNG")
