"""exit_review: events may name the key of the topic partition they go to

Revision ID: exit_review_0003
Revises: exit_review_0002
"""
from runtime.migrations.runtime_tables import add_partition_key

revision = "exit_review_0003"
down_revision = "exit_review_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_partition_key()
