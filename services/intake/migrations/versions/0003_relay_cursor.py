"""intake: the relay's cursor replaces the per-event published mark

Revision ID: intake_0003
Revises: intake_0002
"""
from runtime.migrations.runtime_tables import add_relay_cursor

revision = "intake_0003"
down_revision = "intake_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_relay_cursor()
