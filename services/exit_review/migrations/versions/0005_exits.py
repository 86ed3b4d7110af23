"""exit_review: exit cases (a projection of its events) and the evidence it mirrors from screening,
intake and assistance

Revision ID: exit_review_0005
Revises: exit_review_0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "exit_review_0005"
down_revision = "exit_review_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exits",
        sa.Column("exit_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("notice_ends", sa.Date),
        sa.Column("passed", sa.Boolean),
        sa.Column("blockers", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("decided_on", sa.Date),
        sa.Column("look_back", sa.Text),
        sa.Column("flagged", sa.Boolean),
        sa.Column("rollback", sa.Text),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("exits_household", "exits", ["household_id"])
    op.create_index("exits_region", "exits", ["region_code"])
    op.create_index("exits_notice_ends", "exits", ["notice_ends"], postgresql_where=sa.text("step = 'public_notice'"))
    op.create_table(
        "subjects",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("protected", sa.Boolean, nullable=False),
        sa.Column("category", sa.Text),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("identified_on", sa.Date),
    )
    op.create_table(
        "household_members",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("member_ids", pg.ARRAY(sa.Text), nullable=False),
    )
    op.create_table(
        "plan_evidence",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("helper_id", sa.Text),
    )
    op.create_table(
        "measure_evidence",
        sa.Column("measure_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("answers", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("planned_end", sa.Date),
        sa.Column("completed_on", sa.Date),
    )
    op.create_index("measure_evidence_household", "measure_evidence", ["household_id"])
    op.create_table(
        "gap_evidence",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("gap", sa.Text, primary_key=True),
        sa.Column("risk_type", sa.Text, primary_key=True),
        sa.Column("found_on", sa.Date, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
    )
    op.create_table(
        "income_evidence",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
    )
    op.create_table(
        "difficulty_evidence",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("ref", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("raised_on", sa.Date, nullable=False),
    )
    op.create_index("difficulty_evidence_household", "difficulty_evidence", ["household_id"])
    op.create_table(
        "visit_evidence",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("visited_on", sa.Date, nullable=False),
    )
    op.create_index("visit_evidence_household", "visit_evidence", ["household_id"])


def downgrade() -> None:
    for table in ("visit_evidence", "difficulty_evidence", "income_evidence", "gap_evidence", "measure_evidence",
                  "plan_evidence", "household_members", "subjects", "exits"):
        op.drop_table(table)
