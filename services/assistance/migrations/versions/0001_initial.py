"""assistance: runtime tables

Revision ID: assistance_0001
Revises:
"""
from runtime.migrations.runtime_tables import create_runtime_tables

revision = "assistance_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables()
