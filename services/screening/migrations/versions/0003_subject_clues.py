"""screening: clues taken as new risks of a monitored subject

Revision ID: screening_0003
Revises: screening_0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "screening_0003"
down_revision = "screening_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subjects", sa.Column("clue_ids", pg.ARRAY(sa.Text), nullable=False, server_default="{}"))
