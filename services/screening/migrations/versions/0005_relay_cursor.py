"""screening: the relay's cursor replaces the per-event published mark

Revision ID: screening_0005
Revises: screening_0004
"""
from runtime.migrations.runtime_tables import add_relay_cursor

revision = "screening_0005"
down_revision = "screening_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_relay_cursor()
