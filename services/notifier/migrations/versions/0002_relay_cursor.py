"""notifier: the relay's cursor replaces the per-event published mark

Revision ID: notifier_0002
Revises: notifier_0001
"""
from runtime.migrations.runtime_tables import add_relay_cursor

revision = "notifier_0002"
down_revision = "notifier_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_relay_cursor()
