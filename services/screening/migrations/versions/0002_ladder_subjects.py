"""screening: the ladder's state on cases, monitoring subjects

Revision ID: screening_0002
Revises: screening_0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "screening_0002"
down_revision = "screening_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("notice_ends", sa.Date))
    op.add_column("cases", sa.Column("outcome", sa.Text))  # identified | rejected, once closed
    op.create_index("cases_notice_ends", "cases", ["notice_ends"], postgresql_where=sa.text("step = 'public_notice'"))
    op.create_table(
        "subjects",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("risk_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # monitored | risk_eliminated | removed
        sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("identified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("subjects_region", "subjects", ["region_code"])
