"""intake: runtime tables, registry, warnings, clues

Revision ID: intake_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from runtime.migrations.runtime_tables import create_runtime_tables

revision = "intake_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables()
    op.create_table(
        "households",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("group", sa.Text),
        sa.Column("poverty_status", sa.Text, nullable=False),
        sa.Column("grid_worker_id", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("households_region", "households", ["region_code"])
    op.create_table(
        "members",
        sa.Column("member_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("id_hash", sa.Text, nullable=False, unique=True),
        sa.Column("id_cipher", sa.LargeBinary, nullable=False),
        sa.Column("name_cipher", sa.LargeBinary, nullable=False),
        sa.Column("relation", sa.Text, nullable=False),
        sa.Column("birth_date", sa.Date, nullable=False),
        sa.Column("labor_capacity", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("in_school", sa.Boolean, nullable=False),
    )
    op.create_index("members_household", "members", ["household_id"])
    op.create_table(
        "warnings",
        sa.Column("department", sa.Text, primary_key=True),
        sa.Column("source_record_id", sa.Text, primary_key=True),
        sa.Column("warning_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("household_id", sa.Text),
        sa.Column("id_hash", sa.Text),
        sa.Column("clue_id", sa.Text),
        sa.Column("indicator", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(14, 2)),
        sa.Column("observed_at", sa.DateTime(timezone=True)),
        sa.Column("detail", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("warnings_unmatched", "warnings", ["id_hash"], postgresql_where=sa.text("status = 'unmatched'"))
    op.create_table(
        "clues",
        sa.Column("clue_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("source", pg.JSONB, nullable=False),
        sa.Column("indicator", sa.Text),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("clues_region", "clues", ["region_code"])
