"""screening: events may name the key of the topic partition they go to

Revision ID: screening_0006
Revises: screening_0005
"""
from runtime.migrations.runtime_tables import add_partition_key

revision = "screening_0006"
down_revision = "screening_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_partition_key()
