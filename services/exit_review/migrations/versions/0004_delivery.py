"""exit_review: idempotency claims name their process; the inbox records replayed dead letters

Revision ID: exit_review_0004
Revises: exit_review_0003
"""
from runtime.migrations.runtime_tables import add_delivery_columns

revision = "exit_review_0004"
down_revision = "exit_review_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_delivery_columns()
