"""assistance: the relay's cursor replaces the per-event published mark

Revision ID: assistance_0002
Revises: assistance_0001
"""
from runtime.migrations.runtime_tables import add_relay_cursor

revision = "assistance_0002"
down_revision = "assistance_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_relay_cursor()
