"""intake: the year each clue's priority groups are judged for (the year its facts were observed in),
so that ?priority_group=&as_of= lists a group of 'this year' (当年) for the year asked

Revision ID: intake_0009
Revises: intake_0008
"""
import sqlalchemy as sa
from alembic import op

revision = "intake_0009"
down_revision = "intake_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clues", sa.Column("period_year", sa.Integer))
    # Clues raised before were judged for the year of the clock (UTC) that raised them.
    op.execute("UPDATE clues SET period_year = extract(year FROM raised_at AT TIME ZONE 'UTC')")
    op.alter_column("clues", "period_year", nullable=False)
