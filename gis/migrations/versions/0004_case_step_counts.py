"""case step counts: rework and approved-extension counters kept with the case row

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "cases", sa.Column("rework_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "cases", sa.Column("extension_count", sa.Integer(), server_default="0", nullable=False)
    )
    # Cases moved by the workflow before this revision get their counts from the history.
    op.execute(
        "UPDATE cases c SET rework_count = s.reworks, extension_count = s.extensions FROM ("
        " SELECT case_id, count(*) FILTER (WHERE action = 'rework') AS reworks,"
        " count(*) FILTER (WHERE action = 'approve_extension') AS extensions"
        " FROM case_transition GROUP BY case_id) s WHERE s.case_id = c.id"
    )


def downgrade() -> None:
    op.drop_column("cases", "extension_count")
    op.drop_column("cases", "rework_count")
