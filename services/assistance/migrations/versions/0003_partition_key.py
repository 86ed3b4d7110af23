"""assistance: events may name the key of the topic partition they go to

Revision ID: assistance_0003
Revises: assistance_0002
"""
from runtime.migrations.runtime_tables import add_partition_key

revision = "assistance_0003"
down_revision = "assistance_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_partition_key()
