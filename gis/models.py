"""The PostGIS schema: the place hierarchy, the things on the map, and cases.

Geometries are stored in WGS84 (SRID 4326) with GiST indexes; metric work (areas,
distances) happens in metres through ``geography`` or a local projected CRS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SRID = 4326
GRID_KINDS = ("unit", "service")


def _geometry(kind: str) -> Geometry:
    # Indexes are declared explicitly in __table_args__ so models and migrations agree.
    return Geometry(geometry_type=kind, srid=SRID, spatial_index=False)


def _gist(table: str, column: str) -> Index:
    return Index(f"ix_{table}_{column}", column, postgresql_using="gist")


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONB, list[Any]: JSONB}


class Subdistrict(Base):
    """A subdistrict (街道): 6-digit district code + 3 digits."""

    __tablename__ = "subdistrict"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{9}$'", name="subdistrict_code_9_digits"),
        _gist("subdistrict", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any | None] = mapped_column(_geometry("MULTIPOLYGON"))
    derived: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    source: Mapped[str] = mapped_column(Text, default="import", server_default="import")


class Community(Base):
    """A community (社区): subdistrict code + 3 digits."""

    __tablename__ = "community"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{12}$'", name="community_code_12_digits"),
        _gist("community", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(Text)
    subdistrict_id: Mapped[int | None] = mapped_column(
        ForeignKey("subdistrict.id", ondelete="RESTRICT"), index=True
    )
    geom: Mapped[Any | None] = mapped_column(_geometry("MULTIPOLYGON"))
    derived: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    source: Mapped[str] = mapped_column(Text, default="import", server_default="import")


class GridWorker(Base):
    """A grid worker (网格员); the phone is personal data."""

    __tablename__ = "grid_worker"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, default="grid_worker", server_default="grid_worker")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Grid(Base):
    """A grid cell (网格), unit or service kind, valid from ``valid_from`` until ``valid_to``."""

    __tablename__ = "grid"
    __table_args__ = (
        CheckConstraint("kind IN ('unit', 'service')", name="grid_kind_known"),
        CheckConstraint("code ~ '^[0-9]{15}$'", name="grid_code_15_digits"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="grid_validity_order"),
        UniqueConstraint("code", "kind", "valid_from", name="grid_code_kind_valid_from_key"),
        _gist("grid", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(15))
    kind: Mapped[str] = mapped_column(String(8))
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="RESTRICT"), index=True
    )
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid_worker.id", ondelete="SET NULL"), index=True
    )
    geom: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"), nullable=False)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(Text, default="generated", server_default="generated")


class GridDefect(Base):
    """A defect found in a grid layer and accepted at import (``--accept-defects``).

    ``kind`` is a validation defect kind (overlap, gap, cut_building, ...); ``geom`` locates it
    (the overlap or gap area, the cut building) in WGS84.
    """

    __tablename__ = "grid_defect"
    __table_args__ = (_gist("grid_defect", "geom"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(Text, index=True)
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid.id", ondelete="CASCADE"), index=True
    )
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL"), index=True
    )
    import_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("import_run.id", ondelete="SET NULL"), index=True
    )
    codes: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    area_m2: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    geom: Mapped[Any | None] = mapped_column(_geometry("GEOMETRY"))
    accepted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Building(Base):
    """A building footprint (楼/幢) from a source such as OpenStreetMap."""

    __tablename__ = "building"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="building_source_key"),
        CheckConstraint("levels IS NULL OR levels > 0", name="building_levels_positive"),
        _gist("building", "footprint"),
        # Partial: imported buildings have no community or grid until linked, and every use
        # compares the column (migration 0010).
        Index(
            "ix_building_community_id",
            "community_id",
            postgresql_where=text("community_id IS NOT NULL"),
        ),
        Index("ix_building_grid_id", "grid_id", postgresql_where=text("grid_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    # Building number as used in addresses ("12" of "12号楼"), when known.
    number: Mapped[str | None] = mapped_column(Text)
    use: Mapped[str | None] = mapped_column(Text)
    levels: Mapped[int | None] = mapped_column(Integer)
    footprint: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"), nullable=False)
    area_m2: Mapped[float] = mapped_column(Float)
    # True when the source geometry was invalid and repaired with ST_MakeValid / make_valid.
    repaired: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL")
    )
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="SET NULL"))
    imported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Stairwell(Base):
    """A stairwell or unit entrance (楼门/单元) with its household counts.

    ``estimated`` is true when the entrance and counts come from the seeded estimate
    rather than from real counts.
    """

    __tablename__ = "stairwell"
    __table_args__ = (
        UniqueConstraint("building_id", "unit_no", name="stairwell_building_unit_key"),
        CheckConstraint("unit_no > 0", name="stairwell_unit_positive"),
        CheckConstraint(
            "households >= 0 AND residents >= 0 AND elderly >= 0 AND elderly <= residents",
            name="stairwell_counts_consistent",
        ),
        _gist("stairwell", "entrance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("building.id", ondelete="CASCADE"), index=True
    )
    unit_no: Mapped[int] = mapped_column(Integer)
    entrance: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)
    households: Mapped[int] = mapped_column(Integer)
    residents: Mapped[int] = mapped_column(Integer)
    elderly: Mapped[int] = mapped_column(Integer)
    estimated: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(Text)


class Facility(Base):
    """A service facility (养老院, 菜市场, …) of a type from the facility catalogue."""

    __tablename__ = "facility"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="facility_source_key"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="facility_capacity_positive"),
        _gist("facility", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[int | None] = mapped_column(Integer)
    geom: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class StreetSegment(Base):
    """A walkable street or footpath line (one OSM way may give several parts)."""

    __tablename__ = "street_segment"
    __table_args__ = (
        UniqueConstraint("source", "source_id", "part", name="street_segment_source_key"),
        _gist("street_segment", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    part: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    highway: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(_geometry("LINESTRING"), nullable=False)
    length_m: Mapped[float] = mapped_column(Float)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


CASE_STATES = (
    "reported",
    "filed",
    "dispatched",
    "handling",
    "feedback",
    "checking",
    "closed",
    "evaluated",
    "extension_requested",
    "parked",
    "voided",
)


class Case(Base):
    """A reported issue (案件): location and category; the workflow fills the rest.

    ``reporter_name`` and ``reporter_phone`` are personal data: shown to staff handling the
    case, never in public or aggregate outputs. ``version`` is bumped by every transition
    (optimistic locking, see ``gis.cases.workflow``); ``limit_value``/``limit_unit`` keep the
    time limit the case was dispatched with.
    """

    __tablename__ = "cases"
    __table_args__ = (
        # SP-GiST: same box operators for points, cheaper per inserted case (migration 0011).
        Index("ix_cases_geom", "geom", postgresql_using="spgist"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in CASE_STATES) + ")",
            name="cases_status_known",
        ),
        # Partial: a case has no deadline, filing or department until dispatched or filed, and
        # every query of these columns compares them (which implies NOT NULL); index entries
        # for the NULLs only slowed the storing of new cases (migration 0008).
        Index("ix_cases_deadline", "deadline", postgresql_where=text("deadline IS NOT NULL")),
        Index("ix_cases_filed_at", "filed_at", postgresql_where=text("filed_at IS NOT NULL")),
        Index("ix_cases_department", "department", postgresql_where=text("department IS NOT NULL")),
        Index("ix_cases_reported_at", "reported_at"),
        CheckConstraint("routed_to IN ('grid', 'subdistrict')", name="cases_routed_to_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    category_code: Mapped[str] = mapped_column(Text, index=True)
    geom: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="reported", server_default="reported")
    reported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    grid_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid.id", ondelete="RESTRICT"), index=True
    )
    filed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    limit_value: Mapped[int | None] = mapped_column(Integer)
    limit_unit: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid_worker.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)
    reporter_name: Mapped[str | None] = mapped_column(Text)
    reporter_phone: Mapped[str | None] = mapped_column(Text)
    # Kept with the row by each transition (the history stays the record) so that indicators
    # over millions of cases need one scan.
    rework_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    extension_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Assignment at report time (gis.cases.reporting); a pin move re-assigns and is recorded in
    # case_location_change. Outside every grid: inside_managed_area false, routed to the
    # subdistrict.
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("community.id", ondelete="SET NULL"), index=True
    )
    subdistrict_id: Mapped[int | None] = mapped_column(
        ForeignKey("subdistrict.id", ondelete="SET NULL")
    )
    stairwell_id: Mapped[int | None] = mapped_column(
        ForeignKey("stairwell.id", ondelete="SET NULL")
    )
    inside_managed_area: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    near_grid_code: Mapped[str | None] = mapped_column(Text)
    near_boundary_m: Mapped[float | None] = mapped_column(Float)
    routed_to: Mapped[str] = mapped_column(Text, default="grid", server_default="grid")
    address: Mapped[str | None] = mapped_column(Text)
    input_crs: Mapped[str] = mapped_column(Text, default="wgs84", server_default="wgs84")
    photo_urls: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


class CaseTransition(Base):
    """One step of a case's history (append-only: a trigger refuses UPDATE and DELETE).

    ``seq`` numbers the steps of a case from 1; ``action`` names the transition of the workflow
    table (``gis.cases.workflow.TRANSITIONS``); ``detail`` carries an extension request's limit.
    """

    __tablename__ = "case_transition"
    __table_args__ = (
        CheckConstraint("seq > 0", name="case_transition_seq_positive"),
        Index("ix_case_transition_action_at", "action", "at"),
    )

    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="RESTRICT"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    actor_role: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_state: Mapped[str] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    receiver: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class CaseLocationChange(Base):
    """A moved pin: who moved case ``case_id``, when, why, from where to where (append-only)."""

    __tablename__ = "case_location_change"
    __table_args__ = (
        CheckConstraint("length(btrim(reason)) > 0", name="case_location_change_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    actor: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reason: Mapped[str] = mapped_column(Text)
    old_geom: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)
    new_geom: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)
    old_grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))
    new_grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"))


class BuildingAddress(Base):
    """An address-table row: building ``number`` of a community is building ``building_id``.

    Loaded by ``wangge import addresses``; complements ``building.number`` from OSM names.
    """

    __tablename__ = "building_address"
    __table_args__ = (UniqueConstraint("community_id", "number", name="building_address_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("community.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(Text)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("building.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(Text, default="csv", server_default="csv")


class WalkGate(Base):
    """A gate or entrance of a walled compound (OSM ``barrier=gate``, ``entrance``).

    ``closed`` gates (a gate locked at night) are left out of the walking network.
    """

    __tablename__ = "walk_gate"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="walk_gate_source_key"),
        _gist("walk_gate", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    access: Mapped[str | None] = mapped_column(Text)
    closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    geom: Mapped[Any] = mapped_column(_geometry("POINT"), nullable=False)


class WalkBarrier(Base):
    """A wall or fence that pedestrians cannot cross except at a gate."""

    __tablename__ = "walk_barrier"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="walk_barrier_source_key"),
        _gist("walk_barrier", "geom"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_id: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(_geometry("LINESTRING"), nullable=False)


class CircleArea(Base):
    """An area whose service-circle coverage was computed.

    Its stairwells lie in ``area``; the network, facilities, gates and walls were taken from
    ``extent`` (the area widened by the largest level distance).
    """

    __tablename__ = "circle_area"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    area: Mapped[Any] = mapped_column(_geometry("MULTIPOLYGON"), nullable=False)
    extent: Mapped[Any] = mapped_column(_geometry("POLYGON"), nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Connected pieces of the walking network, largest first: nodes, edges, length_m.
    network_pieces: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CircleCoverage(Base):
    """Coverage of one stairwell by one facility type at one level distance.

    ``basis`` is ``standard`` (the GB 50180 radius) or a walking group (minutes x speed);
    ``distance_m`` is that level's walking distance, ``count`` the facilities within it,
    ``nearest_m`` the walk to the nearest facility of the type (NULL when none in reach).
    ``method`` is ``network`` or ``euclidean_fallback`` (straight line x detour factor).
    """

    __tablename__ = "circle_coverage"

    stairwell_id: Mapped[int] = mapped_column(
        ForeignKey("stairwell.id", ondelete="CASCADE"), primary_key=True
    )
    facility_type: Mapped[str] = mapped_column(Text, primary_key=True)
    basis: Mapped[str] = mapped_column(Text, primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer, primary_key=True)
    area_id: Mapped[int] = mapped_column(
        ForeignKey("circle_area.id", ondelete="CASCADE"), index=True
    )
    distance_m: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    nearest_m: Mapped[float | None] = mapped_column(Float)
    nearest_facility_id: Mapped[int | None] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(Text)
    snap_m: Mapped[float | None] = mapped_column(Float)
    too_far: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class ImportRun(Base):
    """One import: what was read, what was stored, what was repaired or rejected."""

    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    rejected: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


class AppUser(Base):
    """A user of the API with one role; a ``worker`` user is the grid worker ``worker_id``."""

    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint(
            "role IN ('admin', 'staff', 'worker', 'department', 'planner', 'reporter')",
            name="app_user_role_known",
        ),
        UniqueConstraint("name", name="app_user_name_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid_worker.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiToken(Base):
    """A bearer token of a user: only its SHA-256 (hex) is stored."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_hash", name="api_token_token_hash_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Who read personal data or wrote anything, when, and what (kept when users go)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("action IN ('read', 'write')", name="audit_log_action_known"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
