"""intake: households by grid worker (the workers' loads after each import chunk, GET /v1/grid-workers,
GET /v1/households?grid_worker_id=)

Revision ID: intake_0007
Revises: intake_0006
"""
from alembic import op

revision = "intake_0007"
down_revision = "intake_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("households_grid_worker", "households", ["grid_worker_id"])

