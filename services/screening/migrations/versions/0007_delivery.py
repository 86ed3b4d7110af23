"""screening: idempotency claims name their process; the inbox records replayed dead letters

Revision ID: screening_0007
Revises: screening_0006
"""
from runtime.migrations.runtime_tables import add_delivery_columns

revision = "screening_0007"
down_revision = "screening_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_delivery_columns()
