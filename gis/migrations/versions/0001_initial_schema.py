"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 16:30:05.291040
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "facility",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.CheckConstraint("capacity IS NULL OR capacity >= 0", name="facility_capacity_positive"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_id", name="facility_source_key"),
    )
    op.create_index("ix_facility_geom", "facility", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(op.f("ix_facility_type"), "facility", ["type"], unique=False)
    op.create_table(
        "grid_worker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), server_default="grid_worker", nullable=False),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "import_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "counts", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "rejected", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "street_segment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("part", sa.Integer(), server_default="0", nullable=False),
        sa.Column("highway", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_id", "part", name="street_segment_source_key"),
    )
    op.create_index(
        "ix_street_segment_geom", "street_segment", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_table(
        "subdistrict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=9), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("derived", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("source", sa.Text(), server_default="import", nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{9}$'", name="subdistrict_code_9_digits"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index(
        "ix_subdistrict_geom", "subdistrict", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_table(
        "community",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("subdistrict_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("derived", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("source", sa.Text(), server_default="import", nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{12}$'", name="community_code_12_digits"),
        sa.ForeignKeyConstraint(["subdistrict_id"], ["subdistrict.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index(
        "ix_community_geom", "community", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index(
        op.f("ix_community_subdistrict_id"), "community", ["subdistrict_id"], unique=False
    )
    op.create_table(
        "grid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.Text(), server_default="generated", nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{15}$'", name="grid_code_15_digits"),
        sa.CheckConstraint("kind IN ('unit', 'service')", name="grid_kind_known"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="grid_validity_order"),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["worker_id"], ["grid_worker.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code", "kind", "valid_from", name="grid_code_kind_valid_from_key"),
    )
    op.create_index(op.f("ix_grid_community_id"), "grid", ["community_id"], unique=False)
    op.create_index("ix_grid_geom", "grid", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(op.f("ix_grid_worker_id"), "grid", ["worker_id"], unique=False)
    op.create_table(
        "building",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("number", sa.Text(), nullable=True),
        sa.Column("use", sa.Text(), nullable=True),
        sa.Column("levels", sa.Integer(), nullable=True),
        sa.Column(
            "footprint",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("repaired", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "tags", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("levels IS NULL OR levels > 0", name="building_levels_positive"),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_id", name="building_source_key"),
    )
    op.create_index(op.f("ix_building_community_id"), "building", ["community_id"], unique=False)
    op.create_index(
        "ix_building_footprint", "building", ["footprint"], unique=False, postgresql_using="gist"
    )
    op.create_index(op.f("ix_building_grid_id"), "building", ["grid_id"], unique=False)
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="reported", nullable=False),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_cases_category_code"), "cases", ["category_code"], unique=False)
    op.create_index("ix_cases_geom", "cases", ["geom"], unique=False, postgresql_using="gist")
    op.create_index(op.f("ix_cases_grid_id"), "cases", ["grid_id"], unique=False)
    op.create_table(
        "stairwell",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("unit_no", sa.Integer(), nullable=False),
        sa.Column(
            "entrance",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=False),
        sa.Column("elderly", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "households >= 0 AND residents >= 0 AND elderly >= 0 AND elderly <= residents",
            name="stairwell_counts_consistent",
        ),
        sa.CheckConstraint("unit_no > 0", name="stairwell_unit_positive"),
        sa.ForeignKeyConstraint(["building_id"], ["building.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("building_id", "unit_no", name="stairwell_building_unit_key"),
    )
    op.create_index(op.f("ix_stairwell_building_id"), "stairwell", ["building_id"], unique=False)
    op.create_index(
        "ix_stairwell_entrance", "stairwell", ["entrance"], unique=False, postgresql_using="gist"
    )


def downgrade() -> None:
    op.drop_index("ix_stairwell_entrance", table_name="stairwell", postgresql_using="gist")
    op.drop_index(op.f("ix_stairwell_building_id"), table_name="stairwell")
    op.drop_table("stairwell")
    op.drop_index(op.f("ix_cases_grid_id"), table_name="cases")
    op.drop_index("ix_cases_geom", table_name="cases", postgresql_using="gist")
    op.drop_index(op.f("ix_cases_category_code"), table_name="cases")
    op.drop_table("cases")
    op.drop_index(op.f("ix_building_grid_id"), table_name="building")
    op.drop_index("ix_building_footprint", table_name="building", postgresql_using="gist")
    op.drop_index(op.f("ix_building_community_id"), table_name="building")
    op.drop_table("building")
    op.drop_index(op.f("ix_grid_worker_id"), table_name="grid")
    op.drop_index("ix_grid_geom", table_name="grid", postgresql_using="gist")
    op.drop_index(op.f("ix_grid_community_id"), table_name="grid")
    op.drop_table("grid")
    op.drop_index(op.f("ix_community_subdistrict_id"), table_name="community")
    op.drop_index("ix_community_geom", table_name="community", postgresql_using="gist")
    op.drop_table("community")
    op.drop_index("ix_subdistrict_geom", table_name="subdistrict", postgresql_using="gist")
    op.drop_table("subdistrict")
    op.drop_index("ix_street_segment_geom", table_name="street_segment", postgresql_using="gist")
    op.drop_table("street_segment")
    op.drop_table("import_run")
    op.drop_table("grid_worker")
    op.drop_index(op.f("ix_facility_type"), table_name="facility")
    op.drop_index("ix_facility_geom", table_name="facility", postgresql_using="gist")
    op.drop_table("facility")
