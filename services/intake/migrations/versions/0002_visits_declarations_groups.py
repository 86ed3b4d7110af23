"""intake: priority groups on clues, grid-worker visits, self-declarations

Revision ID: intake_0002
Revises: intake_0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "intake_0002"
down_revision = "intake_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clues", sa.Column("priority_groups", pg.ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.create_index("clues_priority_groups", "clues", ["priority_groups"], postgresql_using="gin")
    op.add_column("households", sa.Column("last_visited_at", sa.DateTime(timezone=True)))
    op.create_index("households_region_last_visit", "households", ["region_code", "last_visited_at"])
    op.create_table(
        "visits",
        sa.Column("visit_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("notes", sa.Text),
        sa.Column("clue_id", sa.Text),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("visits_household", "visits", ["household_id", "visited_at"])
    op.create_table(
        "declarations",
        sa.Column("declaration_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("phone_cipher", sa.LargeBinary),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("clue_id", sa.Text, nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("declarations_household", "declarations", ["household_id"])
