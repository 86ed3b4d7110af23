"""intake: warnings under their indicator's threshold are kept (status below_threshold), with the
threshold they were held to and the department's own judgement of it

Revision ID: intake_0008
Revises: intake_0007
"""
import sqlalchemy as sa
from alembic import op

revision = "intake_0008"
down_revision = "intake_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("warnings", sa.Column("over_threshold", sa.Boolean))
    op.add_column("warnings", sa.Column("threshold", sa.Numeric(14, 2)))
    op.create_index("warnings_below_threshold", "warnings", ["department", "source_record_id"],
                    postgresql_where=sa.text("status = 'below_threshold'"))
