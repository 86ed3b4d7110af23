"""exit_review: the sums the statistics read without scanning every change or joining every plan:
subject_changes per village, day and category; one row of plan figures a household (filled from the
tables already there); each township's and county's monthly filing

Revision ID: exit_review_0007
Revises: exit_review_0006
"""
import sqlalchemy as sa
from alembic import op

revision = "exit_review_0007"
down_revision = "exit_review_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_days",
        sa.Column("region_code", sa.Text, primary_key=True),
        sa.Column("on", sa.Date, primary_key=True),
        sa.Column("category", sa.Text, primary_key=True),
        *(sa.Column(name, sa.Integer, nullable=False) for name in (
            "monitored", "risk_eliminated", "protected", "identified_n", "risk_eliminated_n", "rolled_back_n", "removed_n")),
    )
    op.create_table(
        "household_plans",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("region_code", sa.Text),
        sa.Column("monitored", sa.Boolean, nullable=False),
        sa.Column("measures", sa.Integer, nullable=False),
        sa.Column("developmental", sa.Integer, nullable=False),
        sa.Column("open_gaps", sa.Integer, nullable=False),
    )
    op.create_table(
        "filings",
        sa.Column("region_code", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("level", sa.Text, primary_key=True),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True)),
        sa.Column("late", sa.Boolean),
        sa.Column("overdue", sa.Boolean, nullable=False),
    )
    op.execute("""
        insert into subject_days
        select region_code, "on", coalesce(category, ''), sum(monitored_delta), sum(eliminated_delta), sum(protected_delta),
               count(*) filter (where change = 'identified'), count(*) filter (where change = 'risk_eliminated'),
               count(*) filter (where change = 'rolled_back'), count(*) filter (where change = 'removed')
        from subject_changes group by 1, 2, 3""")
    op.execute("""
        insert into household_plans
        select h.household_id, s.region_code, coalesce(s.status = 'monitored', false), coalesce(m.measures, 0),
               coalesce(m.developmental, 0), coalesce(g.gaps, 0)
        from (select household_id from subjects union select household_id from measure_evidence
              union select household_id from gap_evidence) h
        left join subjects s using (household_id)
        left join (select household_id, count(*) filter (where status in ('active', 'completed')) measures,
                          count(*) filter (where status in ('active', 'completed') and nature = 'developmental') developmental
                   from measure_evidence group by household_id) m using (household_id)
        left join (select household_id, count(*) gaps from gap_evidence group by household_id) g using (household_id)""")


def downgrade() -> None:
    op.drop_table("filings")
    op.drop_table("household_plans")
    op.drop_table("subject_days")
