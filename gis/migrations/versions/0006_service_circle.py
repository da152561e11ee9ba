"""service circle: stored gates and walls, computed areas and per-stairwell coverage

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _geometry(kind: str) -> Geometry:
    return Geometry(geometry_type=kind, srid=4326, spatial_index=False)


def upgrade() -> None:
    op.create_table(
        "walk_gate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("access", sa.Text(), nullable=True),
        sa.Column("closed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("geom", _geometry("POINT"), nullable=False),
        sa.UniqueConstraint("source", "source_id", name="walk_gate_source_key"),
    )
    op.create_index("ix_walk_gate_geom", "walk_gate", ["geom"], postgresql_using="gist")
    op.create_table(
        "walk_barrier",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("geom", _geometry("LINESTRING"), nullable=False),
        sa.UniqueConstraint("source", "source_id", name="walk_barrier_source_key"),
    )
    op.create_index("ix_walk_barrier_geom", "walk_barrier", ["geom"], postgresql_using="gist")
    op.create_table(
        "circle_area",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("area", _geometry("MULTIPOLYGON"), nullable=False),
        sa.Column("extent", _geometry("POLYGON"), nullable=False),
        sa.Column(
            "settings", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_table(
        "circle_coverage",
        sa.Column(
            "stairwell_id",
            sa.Integer(),
            sa.ForeignKey("stairwell.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("facility_type", sa.Text(), primary_key=True),
        sa.Column("basis", sa.Text(), primary_key=True),
        sa.Column("minutes", sa.Integer(), primary_key=True),
        sa.Column(
            "area_id",
            sa.Integer(),
            sa.ForeignKey("circle_area.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("nearest_m", sa.Float(), nullable=True),
        sa.Column("nearest_facility_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("snap_m", sa.Float(), nullable=True),
        sa.Column("too_far", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_index("ix_circle_coverage_area_id", "circle_coverage", ["area_id"])


def downgrade() -> None:
    op.drop_index("ix_circle_coverage_area_id", table_name="circle_coverage")
    op.drop_table("circle_coverage")
    op.drop_table("circle_area")
    op.drop_index("ix_walk_barrier_geom", table_name="walk_barrier")
    op.drop_table("walk_barrier")
    op.drop_index("ix_walk_gate_geom", table_name="walk_gate")
    op.drop_table("walk_gate")
