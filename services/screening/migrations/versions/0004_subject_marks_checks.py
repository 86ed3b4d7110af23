"""screening: pending removal / protection on subjects, members' labour, checks that catch what slips through

Revision ID: screening_0004
Revises: screening_0003
"""
import sqlalchemy as sa
from alembic import op

revision = "screening_0004"
down_revision = "screening_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subjects", sa.Column("removal_pending", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("subjects", sa.Column("protection_pending", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("cases", sa.Column("overdue_reported", sa.Text))  # "<step>@<due date>" already published
    op.create_table(
        "household_labour",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("any_member_can_work", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "allowance_watch",
        sa.Column("clue_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("indicator", sa.Text, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("allowance_watch_pending", "allowance_watch", ["observed_at"],
                    postgresql_where=sa.text("checked_at is null"))
    op.create_table(
        "quality_issues",
        sa.Column("issue_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("quality_issues_region", "quality_issues", ["region_code"])
