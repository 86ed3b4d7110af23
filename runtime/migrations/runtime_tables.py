"""Tables every service has: the event store (also the relay's outbox), the inbox of consumed
events, and stored answers to idempotent requests. Called by each service's first migration."""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg


def create_runtime_tables() -> None:
    op.create_table(
        "events",
        sa.Column("global_position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("stream_id", sa.Text, nullable=False),
        sa.Column("stream_position", sa.Integer, nullable=False),
        sa.Column("household_id", sa.Text),
        sa.Column("region_code", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("producer", sa.Text, nullable=False),
        sa.Column("actor", pg.JSONB, nullable=False),
        sa.Column("correlation_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("causation_id", pg.UUID(as_uuid=True)),
        sa.Column("traceparent", sa.Text),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        # The writing transaction: catch-up readers stay below the oldest one still running.
        sa.Column("txid", sa.BigInteger, nullable=False, server_default=sa.text("(pg_current_xact_id()::text)::bigint")),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("stream_id", "stream_position", name="events_stream_position_key"),
    )
    op.create_index(
        "events_unpublished", "events", ["global_position"], postgresql_where=sa.text("published_at is null")
    )
    op.create_index("events_household", "events", ["household_id"])
    op.create_table(
        "inbox",
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("content_type", sa.Text),
        sa.Column("body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def add_relay_cursor() -> None:
    """The relay keeps a position per topic instead of marking each published row (an UPDATE per
    event doubled the database's work at bulk rates)."""
    op.create_table(
        "relay_cursor",
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    # The topic's name depends on settings, so the relay makes its row at start, from position 0:
    # a store that was running before publishes its events once more, and inboxes absorb them.
    op.drop_index("events_unpublished", table_name="events")
    op.drop_column("events", "published_at")


def add_partition_key() -> None:
    """An event about many households (a batch of clues) names the household whose topic partition
    it goes to; an event about one household goes to that household's partition as before."""
    op.add_column("events", sa.Column("partition_key", sa.Text))


def add_delivery_columns() -> None:
    """What delivery under faults needs to remember: which process holds an idempotency key in
    progress (so a key whose process died is released), and which dead letters were replayed."""
    # The session advisory lock each process holds while it lives (runtime.liveness); a claim whose
    # owner's lock is gone belongs to a dead process.
    op.add_column("idempotency_keys", sa.Column("owner", sa.BigInteger))
    op.add_column("inbox", sa.Column("replayed_at", sa.DateTime(timezone=True)))
