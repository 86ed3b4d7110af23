"""assistance: plans, measures, plan gaps, incomes and helper visits (projections of its events), and the helpers and
household facts it mirrors from notifier, intake and screening

Revision ID: assistance_0005
Revises: assistance_0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "assistance_0005"
down_revision = "assistance_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("case_id", sa.Text),
        sa.Column("category", sa.Text),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("identified_on", sa.Date, nullable=False),
        sa.Column("helper_id", sa.Text),
        sa.Column("unassigned", sa.Boolean, nullable=False),
        sa.Column("closed_reason", sa.Text),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("plans_region", "plans", ["region_code"])
    op.create_index("plans_helper", "plans", ["helper_id"])
    op.create_table(
        "measures",
        sa.Column("measure_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("nature", sa.Text, nullable=False),
        sa.Column("answers", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("department", sa.Text, nullable=False),
        sa.Column("member_id", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("amount", sa.Numeric(14, 2)),
        sa.Column("quantity", sa.Integer),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("planned_end", sa.Date),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("completed_on", sa.Date),
        sa.Column("confirmed_by", sa.Text),
        sa.Column("source_record_id", sa.Text),
        sa.Column("assigned_by", sa.Text, nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("measures_household", "measures", ["household_id"])
    op.create_table(
        "plan_gaps",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("gap", sa.Text, primary_key=True),
        sa.Column("risk_type", sa.Text, primary_key=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "incomes",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("net_income_per_person", sa.Numeric(14, 2), nullable=False),
        sa.Column("rigid_expenditure", sa.Numeric(14, 2), nullable=False),
        sa.Column("sources", pg.JSONB, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "helper_visits",
        sa.Column("visit_id", sa.Text, primary_key=True),
        sa.Column("household_id", sa.Text, nullable=False),
        sa.Column("helper_id", sa.Text, nullable=False),
        sa.Column("visited_on", sa.Date, nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("helper_visits_household", "helper_visits", ["household_id", "visited_on"])
    op.create_table(
        "helpers",
        sa.Column("helper_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_index("helpers_region", "helpers", ["region_code"])
    op.create_table(
        "household_facts",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("any_member_can_work", sa.Boolean),
        sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
    )
