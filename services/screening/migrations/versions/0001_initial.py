"""screening: runtime tables and verification cases

Revision ID: screening_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from runtime.migrations.runtime_tables import create_runtime_tables

revision = "screening_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables()
    op.create_table(
        "cases",
        sa.Column("case_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("clue_ids", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # One open case per household, whatever the number of consumers.
    op.create_index("cases_one_open_per_household", "cases", ["household_id"], unique=True,
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index("cases_region", "cases", ["region_code"])
