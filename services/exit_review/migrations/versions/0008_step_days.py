"""exit_review: the days each ladder step took (the identification ladder's from screening's events,
the exit ladder's from its own), summed per village, day and step, for the statistics' averages

Revision ID: exit_review_0008
Revises: exit_review_0007
"""
import sqlalchemy as sa
from alembic import op

revision = "exit_review_0008"
down_revision = "exit_review_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exits", sa.Column("step_since", sa.Date))
    op.create_table(
        "case_progress",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("since", sa.Date, nullable=False),
    )
    for table in ("case_step_days", "exit_step_days"):
        op.create_table(
            table,
            sa.Column("region_code", sa.Text, primary_key=True),
            sa.Column("on", sa.Date, primary_key=True),
            sa.Column("step", sa.Text, primary_key=True),
            sa.Column("steps", sa.Integer, nullable=False),
            sa.Column("total_days", sa.Integer, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("exit_step_days")
    op.drop_table("case_step_days")
    op.drop_table("case_progress")
    op.drop_column("exits", "step_since")
