"""case workflow: dates, deadline, department, worker, optimistic lock, reporter; case_transition

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = (
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


def upgrade() -> None:
    for name in ("filed_at", "dispatched_at", "deadline", "closed_at"):
        op.add_column("cases", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.add_column("cases", sa.Column("limit_value", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("limit_unit", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("department", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("worker_id", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.add_column("cases", sa.Column("external_id", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("reporter_name", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("reporter_phone", sa.Text(), nullable=True))
    op.create_foreign_key(
        "cases_worker_id_fkey", "cases", "grid_worker", ["worker_id"], ["id"], ondelete="SET NULL"
    )
    op.create_unique_constraint("cases_external_id_key", "cases", ["external_id"])
    op.create_check_constraint(
        "cases_status_known", "cases", "status IN (" + ", ".join(f"'{s}'" for s in STATES) + ")"
    )
    op.create_index("ix_cases_deadline", "cases", ["deadline"], unique=False)
    op.create_index("ix_cases_filed_at", "cases", ["filed_at"], unique=False)
    op.create_index(op.f("ix_cases_department"), "cases", ["department"], unique=False)
    op.create_index(op.f("ix_cases_worker_id"), "cases", ["worker_id"], unique=False)
    op.create_table(
        "case_transition",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("receiver", sa.Text(), nullable=True),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.CheckConstraint("seq > 0", name="case_transition_seq_positive"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("case_id", "seq"),
    )
    op.create_index(
        "ix_case_transition_action_at", "case_transition", ["action", "at"], unique=False
    )
    # History is never rewritten: refuse UPDATE and DELETE on the transition log.
    op.execute(
        """
        CREATE FUNCTION case_transition_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'case_transition is append-only (% refused)', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER case_transition_append_only BEFORE UPDATE OR DELETE ON case_transition"
        " FOR EACH ROW EXECUTE FUNCTION case_transition_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER case_transition_append_only ON case_transition")
    op.execute("DROP FUNCTION case_transition_append_only()")
    op.drop_index("ix_case_transition_action_at", table_name="case_transition")
    op.drop_table("case_transition")
    op.drop_index(op.f("ix_cases_worker_id"), table_name="cases")
    op.drop_index(op.f("ix_cases_department"), table_name="cases")
    op.drop_index("ix_cases_filed_at", table_name="cases")
    op.drop_index("ix_cases_deadline", table_name="cases")
    op.drop_constraint("cases_status_known", "cases", type_="check")
    op.drop_constraint("cases_external_id_key", "cases", type_="unique")
    op.drop_constraint("cases_worker_id_fkey", "cases", type_="foreignkey")
    for name in (
        "reporter_phone",
        "reporter_name",
        "external_id",
        "version",
        "worker_id",
        "department",
        "limit_unit",
        "limit_value",
        "closed_at",
        "deadline",
        "dispatched_at",
        "filed_at",
    ):
        op.drop_column("cases", name)
