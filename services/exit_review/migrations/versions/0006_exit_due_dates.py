"""exit_review: each exit case's due date and the overdue step last reported; what the statistics
sum (each change of a subject with its deltas, the overdue steps of both ladders, a measure's nature)

Revision ID: exit_review_0006
Revises: exit_review_0005
"""
import sqlalchemy as sa
from alembic import op

revision = "exit_review_0006"
down_revision = "exit_review_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exits", sa.Column("due_date", sa.Date))
    op.add_column("exits", sa.Column("overdue_reported", sa.Text))
    op.add_column("measure_evidence", sa.Column("nature", sa.Text))
    op.create_table(
        "subject_changes",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("on", sa.Date, nullable=False),
        sa.Column("monitored_delta", sa.SmallInteger, nullable=False),
        sa.Column("eliminated_delta", sa.SmallInteger, nullable=False),
        sa.Column("protected_delta", sa.SmallInteger, nullable=False),
    )
    op.create_index("subject_changes_region_on", "subject_changes", ["region_code", "on"],
                    postgresql_ops={"region_code": "text_pattern_ops"})
    for table in ("case_overdue", "exit_overdue"):
        op.create_table(
            table,
            sa.Column("event_id", sa.Text, primary_key=True),
            sa.Column("region_code", sa.Text, nullable=False),
            sa.Column("step", sa.Text, nullable=False),
            sa.Column("due_date", sa.Date, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("exit_overdue")
    op.drop_table("case_overdue")
    op.drop_table("subject_changes")
    op.drop_column("measure_evidence", "nature")
    op.drop_column("exits", "overdue_reported")
    op.drop_column("exits", "due_date")
