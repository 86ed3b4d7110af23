"""notifier: routing (tasks, their chains), the inbox's order, preferences, subscriptions, the delivery ledger

Revision ID: notifier_0005
Revises: notifier_0004
"""
import sqlalchemy as sa
from alembic import op

revision = "notifier_0005"
down_revision = "notifier_0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("staff", sa.Column("inbox_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("staff", sa.Column("webhook_secret", sa.Text))
    for column in (sa.Column("subject_en", sa.Text, nullable=False, server_default=""), sa.Column("task_id", sa.Text),
                   sa.Column("urgent", sa.Boolean, nullable=False, server_default=sa.false()), sa.Column("due_at", TS),
                   sa.Column("inbox_seq", sa.BigInteger), sa.Column("acknowledged_at", TS)):
        op.add_column("notifications", column)
    op.create_index("notifications_inbox_seq", "notifications", ["staff_id", "inbox_seq"])
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("region_code", sa.Text, nullable=False),
        sa.Column("level", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("due_at", TS),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("escalated_to", sa.Text),
        sa.Column("schedule_at", sa.ARRAY(TS), nullable=False),
        sa.Column("next_action_at", TS),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS),
    )
    op.create_index("tasks_reference", "tasks", ["reference"], postgresql_where=sa.text("state = 'open'"))
    op.create_index("tasks_next_action", "tasks", ["next_action_at"], postgresql_where=sa.text("state = 'open'"))
    op.create_table(
        "household_helpers",
        sa.Column("household_id", sa.Text, primary_key=True),
        sa.Column("helper_id", sa.Text, nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("staff_id", sa.Text, primary_key=True),
        sa.Column("channels", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("quiet_hours", sa.Text),
        sa.Column("digest", sa.Boolean, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("department", sa.Text),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("event_types", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("region_prefix", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("notification_id", sa.Text),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("urgent", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS),
        sa.Column("lease_until", TS),
        sa.Column("detail", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        *(sa.Column(name, TS) for name in ("sent_at", "delivered_at", "read_at", "acknowledged_at", "failed_at", "dead_at")),
    )
    op.create_index("deliveries_due", "deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('queued', 'failed', 'sent')"))
    op.create_index("deliveries_notification", "deliveries", ["notification_id"])
    op.create_index("deliveries_dead", "deliveries", ["dead_at"], postgresql_where=sa.text("status = 'dead'"))
