"""grid_defect: defects accepted at grid import

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:40:00
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grid_defect",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("import_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "codes", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("area_m2", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="GEOMETRY",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "accepted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["community_id"], ["community.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["import_run_id"], ["import_run.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_grid_defect_geom", "grid_defect", ["geom"], unique=False, postgresql_using="gist"
    )
    op.create_index(op.f("ix_grid_defect_kind"), "grid_defect", ["kind"], unique=False)
    op.create_index(op.f("ix_grid_defect_grid_id"), "grid_defect", ["grid_id"], unique=False)
    op.create_index(
        op.f("ix_grid_defect_community_id"), "grid_defect", ["community_id"], unique=False
    )
    op.create_index(
        op.f("ix_grid_defect_import_run_id"), "grid_defect", ["import_run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("grid_defect")
