"""assistance: idempotency claims name their process; the inbox records replayed dead letters

Revision ID: assistance_0004
Revises: assistance_0003
"""
from runtime.migrations.runtime_tables import add_delivery_columns

revision = "assistance_0004"
down_revision = "assistance_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_delivery_columns()
