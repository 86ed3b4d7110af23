"""screening: the out-of-loop check's progress in a table of its own (a projection of
AllowanceWatchesChecked), apart from the watches it checks (a mirror of intake's clues)

Revision ID: screening_0008
Revises: screening_0007
"""
import sqlalchemy as sa
from alembic import op

revision = "screening_0008"
down_revision = "screening_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allowance_watch_checks",
        sa.Column("clue_id", sa.Text, primary_key=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("insert into allowance_watch_checks (clue_id, checked_at) "
               "select clue_id, checked_at from allowance_watch where checked_at is not null")
    op.drop_index("allowance_watch_pending", table_name="allowance_watch")
    op.drop_column("allowance_watch", "checked_at")
    op.create_index("allowance_watch_observed", "allowance_watch", ["observed_at"])
