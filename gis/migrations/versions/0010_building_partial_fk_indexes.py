"""building: community_id and grid_id indexes hold only non-NULL values

Buildings are imported without community or grid (they are linked later), and every use of
these indexes compares the column (``community_id = :id``, the ``ON DELETE SET NULL`` of the
foreign keys), which implies NOT NULL, so partial indexes serve the same queries. A first
import then has nothing to index in them: they stay in place instead of being dropped and
built again over 100,000 NULLs (about 0.03 s each).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("community_id", "grid_id")


def upgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_building_{column}", table_name="building")
        op.create_index(
            f"ix_building_{column}",
            "building",
            [column],
            unique=False,
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for column in _COLUMNS:
        op.drop_index(f"ix_building_{column}", table_name="building")
        op.create_index(f"ix_building_{column}", "building", [column], unique=False)
