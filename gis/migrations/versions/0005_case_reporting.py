"""case reporting: assignment columns on cases, pin-move history, address table

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _point() -> Geometry:
    return Geometry(geometry_type="POINT", srid=4326, spatial_index=False)


def upgrade() -> None:
    op.add_column("cases", sa.Column("community_id", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("subdistrict_id", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("stairwell_id", sa.Integer(), nullable=True))
    op.add_column(
        "cases",
        sa.Column("inside_managed_area", sa.Boolean(), server_default="true", nullable=False),
    )
    op.add_column("cases", sa.Column("near_grid_code", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("near_boundary_m", sa.Float(), nullable=True))
    op.add_column("cases", sa.Column("routed_to", sa.Text(), server_default="grid", nullable=False))
    op.add_column("cases", sa.Column("address", sa.Text(), nullable=True))
    op.add_column(
        "cases", sa.Column("input_crs", sa.Text(), server_default="wgs84", nullable=False)
    )
    op.add_column(
        "cases",
        sa.Column(
            "photo_urls",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )
    op.create_foreign_key(
        "cases_community_id_fkey",
        "cases",
        "community",
        ["community_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        "cases_subdistrict_id_fkey",
        "cases",
        "subdistrict",
        ["subdistrict_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        "cases_stairwell_id_fkey",
        "cases",
        "stairwell",
        ["stairwell_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        "cases_routed_to_known", "cases", "routed_to IN ('grid', 'subdistrict')"
    )
    op.create_index(op.f("ix_cases_community_id"), "cases", ["community_id"], unique=False)
    op.create_index("ix_cases_reported_at", "cases", ["reported_at"], unique=False)
    op.create_table(
        "case_location_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("old_geom", _point(), nullable=False),
        sa.Column("new_geom", _point(), nullable=False),
        sa.Column("old_grid_id", sa.Integer(), nullable=True),
        sa.Column("new_grid_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="case_location_change_reason"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["old_grid_id"], ["grid.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["new_grid_id"], ["grid.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_case_location_change_case_id"), "case_location_change", ["case_id"], unique=False
    )
    op.create_table(
        "building_address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), server_default="csv", nullable=False),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["building_id"], ["building.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("community_id", "number", name="building_address_key"),
    )
    op.create_index(
        op.f("ix_building_address_building_id"), "building_address", ["building_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_building_address_building_id"), table_name="building_address")
    op.drop_table("building_address")
    op.drop_index(op.f("ix_case_location_change_case_id"), table_name="case_location_change")
    op.drop_table("case_location_change")
    op.drop_index("ix_cases_reported_at", table_name="cases")
    op.drop_index(op.f("ix_cases_community_id"), table_name="cases")
    op.drop_constraint("cases_routed_to_known", "cases", type_="check")
    for name in ("stairwell_id", "subdistrict_id", "community_id"):
        op.drop_constraint(f"cases_{name}_fkey", "cases", type_="foreignkey")
    for name in (
        "photo_urls",
        "input_crs",
        "address",
        "routed_to",
        "near_boundary_m",
        "near_grid_code",
        "inside_managed_area",
        "stairwell_id",
        "subdistrict_id",
        "community_id",
    ):
        op.drop_column("cases", name)
