"""intake: events may name the key of the topic partition they go to

Revision ID: intake_0004
Revises: intake_0003
"""
from runtime.migrations.runtime_tables import add_partition_key

revision = "intake_0004"
down_revision = "intake_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_partition_key()
