"""exit_review: the relay's cursor replaces the per-event published mark

Revision ID: exit_review_0002
Revises: exit_review_0001
"""
from runtime.migrations.runtime_tables import add_relay_cursor

revision = "exit_review_0002"
down_revision = "exit_review_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_relay_cursor()
