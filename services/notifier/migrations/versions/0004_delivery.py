"""notifier: idempotency claims name their process; the inbox records replayed dead letters

Revision ID: notifier_0004
Revises: notifier_0003
"""
from runtime.migrations.runtime_tables import add_delivery_columns

revision = "notifier_0004"
down_revision = "notifier_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_delivery_columns()
