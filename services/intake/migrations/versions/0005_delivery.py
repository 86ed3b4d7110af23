"""intake: idempotency claims name their process; the inbox records replayed dead letters

Revision ID: intake_0005
Revises: intake_0004
"""
from runtime.migrations.runtime_tables import add_delivery_columns

revision = "intake_0005"
down_revision = "intake_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_delivery_columns()
